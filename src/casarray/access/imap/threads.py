"""THREAD (RFC 5256 section 3): ORDEREDSUBJECT and REFERENCES over the messages a
search found, and the `* THREAD (1 (2 4)(3))(5)` response.

ORDEREDSUBJECT reads only the cached ENVELOPE (base subject, Date) and the internal
date. REFERENCES needs the References header, which the ENVELOPE does not carry: it is
read from the message header once per message and kept in a bounded per-process cache
keyed by (mailbox owner, folder, UIDVALIDITY, UID, cached ENVELOPE), which never
changes its meaning.
Message-ID and In-Reply-To come from the cached ENVELOPE.

Where RFC 5256 leaves room this follows Dovecot (the imaptest groups thread..thread8
check it): a duplicate Message-ID makes the later message one without an id; when a
message's new parent would make a loop, its old parent link is still broken (so the
message becomes a root); dates are sent dates (the Date header, else the internal
date), and equal dates keep mailbox order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from casarray.access.imap.search import MessageSource
from casarray.access.imap.sorting import facts_of, message_ids, sent_date

ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


class _Node:
    __slots__ = ("children", "parent", "uid")

    def __init__(self, uid: int | None = None) -> None:
        self.uid = uid  # None: a dummy (a message-id seen only in references)
        self.parent: _Node | None = None
        self.children: list[_Node] = []

    def is_ancestor_of(self, other: _Node) -> bool:
        node: _Node | None = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def unlink(self) -> None:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def link(self, child: _Node) -> None:
        child.parent = self
        self.children.append(child)


# -- References headers, cached per process -------------------------------------------

_CACHE_SIZE = 100_000
_references: OrderedDict[tuple[str, str, int, int, str], tuple[str, ...]] = OrderedDict()
_lock = threading.Lock()


def references_of(
    key: tuple[str, str, int],
    uid: int,
    source: MessageSource,
    read: Callable[[int], tuple[str, ...]],
) -> tuple[str, ...]:
    """The message-ids of a message's References header; `key` is (owner, folder,
    UIDVALIDITY), `read` reads them when they are not cached. The cached ENVELOPE is
    part of the key too, so that a mailbox made again under the same name (whose
    UIDVALIDITY could repeat) never meets another message's entry."""
    full = (*key, uid, source.envelope_text(uid) or "")
    with _lock:
        found = _references.get(full)
        if found is not None:
            _references.move_to_end(full)
            return found
    found = read(uid)
    with _lock:
        _references[full] = found
        if len(_references) > _CACHE_SIZE:
            _references.popitem(last=False)
    return found


def forget_references() -> None:
    """Empties the References cache (for tests)."""
    with _lock:
        _references.clear()


def reader(source: MessageSource) -> Callable[[int], tuple[str, ...]]:
    """Reads a message's References from its header (through `source`)."""
    from casarray.mailstore.mime import header_values

    def read(uid: int) -> tuple[str, ...]:
        raw = source.raw(uid)
        return parse_references(header_values(raw, "References")) if raw else ()

    return read


def parse_references(values: Sequence[str]) -> tuple[str, ...]:
    """The message-ids of the References header fields (all of them, in order)."""
    out: list[str] = []
    for value in values:
        out.extend(message_ids(value))
    return tuple(out)


# -- the algorithms -------------------------------------------------------------------


def _date_of(node: _Node, dates: Callable[[int], float]) -> float:
    """A node's date: its message's, or a dummy's first child's (children sorted)."""
    while node.uid is None and node.children:
        node = node.children[0]
    return dates(node.uid) if node.uid is not None else 0.0


def _descendants(roots: list[_Node]) -> list[_Node]:
    """Every node under `roots` (roots included), parents before their children: walked
    without recursion, as a reply chain can be thousands of messages deep."""
    out: list[_Node] = []
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.children))
    return out


def _sort_tree(roots: list[_Node], dates: Callable[[int], float], order: dict[int, int]) -> None:
    """Step 6: every node's children by date (a dummy's date is its first child's once
    sorted, so children before parents), then the roots."""

    def key(node: _Node) -> tuple[float, int]:
        first = node
        while first.uid is None and first.children:
            first = first.children[0]
        return (_date_of(node, dates), order.get(first.uid or 0, 0))

    for node in reversed(_descendants(roots)):
        if len(node.children) > 1:
            node.children.sort(key=key)
    roots.sort(key=key)


def ordered_subject(uids: Sequence[int], source: MessageSource) -> list[_Node]:
    """THREAD=ORDEREDSUBJECT: messages grouped by base subject; in each group the first
    (by sent date) is the root and the others its children in date order; threads in
    the order of their roots' dates."""
    order = {uid: i for i, uid in enumerate(uids)}
    dated = sorted(uids, key=lambda uid: (facts_of(source, uid).subject, sent_date(source, uid)))
    roots: list[_Node] = []
    last_subject: str | None = None
    current: _Node | None = None
    for uid in dated:
        subject = facts_of(source, uid).subject
        node = _Node(uid)
        if current is not None and subject == last_subject:
            current.link(node)
        else:
            current = node
            last_subject = subject
            roots.append(node)
    roots.sort(key=lambda n: (sent_date(source, n.uid or 0), order[n.uid or 0]))
    return roots


def references(
    uids: Sequence[int], source: MessageSource, refs: Callable[[int], tuple[str, ...]]
) -> list[_Node]:
    """THREAD=REFERENCES (RFC 5256 section 3, steps 1 to 6)."""
    order = {uid: i for i, uid in enumerate(uids)}
    table: dict[str, _Node] = {}

    def container(message_id: str) -> _Node:
        node = table.get(message_id)
        if node is None:
            node = table[message_id] = _Node()
        return node

    nodes: list[_Node] = []
    for uid in uids:
        facts = facts_of(source, uid)
        # (1A) the message's container; a duplicate id counts as no id
        node: _Node | None = None
        if facts.message_id is not None:
            existing = table.get(facts.message_id)
            if existing is None:
                node = table[facts.message_id] = _Node(uid)
            elif existing.uid is None:
                existing.uid = uid
                node = existing
        if node is None:
            node = _Node(uid)
        nodes.append(node)
        # (1B) link the references in order, never making a loop or relinking
        chain = list(refs(uid))
        if not chain and facts.in_reply_to:
            chain = [facts.in_reply_to]
        previous: _Node | None = None
        for message_id in chain:
            current = container(message_id)
            if (
                previous is not None
                and current.parent is None
                and current is not previous
                and not current.is_ancestor_of(previous)
            ):
                previous.link(current)
            previous = current
        # (1C) the last reference is the message's parent
        node.unlink()
        if previous is not None and previous is not node and not node.is_ancestor_of(previous):
            previous.link(node)
    # (2) the roots, (4) dummies pruned
    roots = [n for n in _unique(list(table.values()) + nodes) if n.parent is None]
    roots = _prune(roots)
    # (5) roots gathered by base subject
    roots = _group_by_subject(roots, source)
    # (6) children and roots sorted by date
    _sort_tree(roots, lambda uid: sent_date(source, uid), order)
    return roots


def _unique(nodes: list[_Node]) -> list[_Node]:
    seen: set[int] = set()
    out = []
    for node in nodes:
        if id(node) not in seen:
            seen.add(id(node))
            out.append(node)
    return out


def _prune(roots: list[_Node]) -> list[_Node]:
    """Step 4: dummies without children go; a dummy's children take its place, except
    at the root level when there are several of them (children before parents)."""
    for node in reversed(_descendants(roots)):
        node.children = _pruned(node, node.children, root_level=False)
    return _pruned(None, roots, root_level=True)


def _pruned(parent: _Node | None, nodes: list[_Node], root_level: bool) -> list[_Node]:
    out: list[_Node] = []
    for node in nodes:
        node.parent = parent
        if node.uid is not None:
            out.append(node)
        elif not node.children:
            continue
        elif root_level and len(node.children) > 1:
            out.append(node)
        else:
            for child in node.children:
                child.parent = parent
            out.extend(node.children)
    return out


def _subject_of(node: _Node, source: MessageSource) -> tuple[str, bool]:
    if node.uid is None:
        if not node.children:
            return "", False
        node = node.children[0]
    facts = facts_of(source, node.uid or 0)
    return facts.subject, facts.reply


def _group_by_subject(roots: list[_Node], source: MessageSource) -> list[_Node]:
    """Step 5: roots with the same base subject become one thread."""
    subjects: dict[str, _Node] = {}
    for root in roots:
        subject, reply = _subject_of(root, source)
        if not subject:
            continue
        old = subjects.get(subject)
        if (
            old is None
            or (root.uid is None and old.uid is not None)
            or (old.uid is not None and _subject_of(old, source)[1] and not reply)
        ):
            subjects[subject] = root
    out: list[_Node] = []
    slot: dict[int, int] = {}  # id of a node in `out` -> its index there

    def replace(old: _Node, new: _Node) -> None:
        """`new` takes the place of `old` among the roots (or joins them)."""
        index = slot.pop(id(old), None)
        if index is None:
            slot[id(new)] = len(out)
            out.append(new)
        else:
            slot[id(new)] = index
            out[index] = new

    for root in roots:
        if root.parent is not None:
            continue  # already placed under a dummy made for an earlier root
        subject, reply = _subject_of(root, source)
        target = subjects.get(subject) if subject else None
        if target is None or target is root:
            slot[id(root)] = len(out)
            out.append(root)
        elif target.uid is None and root.uid is None:
            for child in root.children:
                target.link(child)
            root.children = []
        elif target.uid is None:
            target.link(root)
        elif root.uid is None:
            # the table's message joins the dummy: the dummy takes its place
            root.link(target)
            subjects[subject] = root
            replace(target, root)
        elif reply and not _subject_of(target, source)[1]:
            target.link(root)
        else:
            dummy = _Node()
            dummy.link(target)
            dummy.link(root)
            subjects[subject] = dummy
            replace(target, dummy)
    return out


# -- the response -----------------------------------------------------------------------


def _members(roots: Sequence[_Node], number: Callable[[int], int]) -> str:
    """`(1 2)(3 (4)(5))`: each node's chain of only children as numbers, its children
    as parenthesised threads after it (without recursion: threads can be deep)."""
    out: list[str] = []
    stack: list[_Node | str] = []
    for root in reversed(roots):
        stack.extend((")", root, "("))
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        parts: list[str] = []
        current = item
        while True:
            if current.uid is not None:
                parts.append(str(number(current.uid)))
            if len(current.children) == 1 and current.uid is not None:
                current = current.children[0]
                continue
            break
        out.append(" ".join(parts))
        if current.children:
            if parts:
                out.append(" ")
            for kid in reversed(current.children):
                stack.extend((")", kid, "("))
    return "".join(out)


def thread_line(roots: Sequence[_Node], number: Callable[[int], int]) -> bytes:
    """`* THREAD (1 2)(3 (4)(5))`: `number` gives the number to show for a UID."""
    threads = _members(roots, number)
    return b"* THREAD" + (b" " + threads.encode("ascii") if threads else b"") + b"\r\n"
