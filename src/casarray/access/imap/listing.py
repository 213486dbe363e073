"""LIST and LSUB (RFC 3501 6.3.8-9) with the mailbox attributes of CHILDREN (RFC 3348)
and SPECIAL-USE (RFC 6154): the reference and pattern make one pattern, "*" matches
anything and "%" anything but the delimiter; a "%" at the end also lists levels of
hierarchy that aren't mailboxes, as \\Noselect.

The extended LIST (RFC 5258) takes several patterns, selection options (SUBSCRIBED
lists subscriptions, also those whose mailbox is gone, as \\NonExistent; SPECIAL-USE
only the special folders; RECURSIVEMATCH adds the parents of selected mailboxes the
patterns leave out, with CHILDINFO) and return options (SUBSCRIBED, CHILDREN,
SPECIAL-USE; STATUS is LIST-STATUS's, RFC 5819, answered by the session)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache

from casarray.access.imap import responses as r
from casarray.mailstore.interface import DELIMITER, Folder

_EMPTY = b'* LIST (\\Noselect) "/" ""\r\n'


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The pattern as a regex, and the same ignoring case (to match INBOX)."""
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            parts.append(re.escape(ch))
    text = "".join(parts)
    return re.compile(text, re.DOTALL), re.compile(text, re.DOTALL | re.IGNORECASE)


def _matcher(reference: str, pattern: str) -> tuple[Callable[[str], bool], bool]:
    """A test of names against reference + pattern, and whether "%" ends it."""
    full = reference + pattern
    exact, folded = _pattern(full)

    def matches(name: str) -> bool:
        if exact.fullmatch(name):
            return True
        # INBOX is case-insensitive: "inbox", "Inbox/%" and the like match it.
        return (name == "INBOX" or name.startswith("INBOX" + DELIMITER)) and bool(
            folded.fullmatch(name)
        )

    return matches, full.endswith("%")


def _parents(name: str) -> Iterable[str]:
    pieces = name.split(DELIMITER)
    for i in range(1, len(pieces)):
        yield DELIMITER.join(pieces[:i])


def _line(command: bytes, attributes: list[str], name: str) -> bytes:
    attrs = " ".join(attributes).encode("ascii", "replace")
    return b'* %s (%s) "/" %s\r\n' % (command, attrs, r.mailbox(name))


def _order(name: str) -> tuple[int, str]:
    return (0 if name == "INBOX" else 1, name)


def list_lines(folders: Iterable[Folder], reference: str, pattern: str) -> list[bytes]:
    if not pattern:
        return [_EMPTY]
    matches, with_levels = _matcher(reference, pattern)
    by_name = {f.name: f for f in folders}
    parents: set[str] = set()
    for name in by_name:
        parents.update(_parents(name))
    lines: list[tuple[tuple[int, str], bytes]] = []
    for name, folder in by_name.items():
        if not matches(name):
            continue
        children = folder.has_children or name in parents
        attributes = ["\\HasChildren" if children else "\\HasNoChildren"]
        if folder.special_use:
            attributes.append(folder.special_use)
        lines.append((_order(name), _line(b"LIST", attributes, name)))
    if with_levels:
        for name in parents - by_name.keys():
            if matches(name):
                lines.append((_order(name), _line(b"LIST", ["\\Noselect", "\\HasChildren"], name)))
    lines.sort()
    return [line for _, line in lines]


def lsub_lines(subscriptions: Iterable[str], reference: str, pattern: str) -> list[bytes]:
    if not pattern:
        return [_EMPTY.replace(b"LIST", b"LSUB")]
    matches, with_levels = _matcher(reference, pattern)
    subscribed = set(subscriptions)
    lines = [(_order(n), _line(b"LSUB", [], n)) for n in subscribed if matches(n)]
    if with_levels:
        parents: set[str] = set()
        for name in subscribed:
            parents.update(_parents(name))
        for name in parents - subscribed:
            if matches(name):
                lines.append((_order(name), _line(b"LSUB", ["\\Noselect"], name)))
    lines.sort()
    return [line for _, line in lines]


@dataclass(frozen=True, slots=True)
class Listed:
    """One mailbox an extended LIST returns: its LIST line, and whether it can be
    selected (so LIST-STATUS may report on it)."""

    name: str
    line: bytes
    selectable: bool


def extended_list(
    folders: Iterable[Folder],
    subscriptions: Iterable[str],
    reference: str,
    patterns: Collection[str],
    selection: Collection[str],
    returns: Collection[str],
) -> list[Listed]:
    """The mailboxes an extended LIST returns, in order."""
    matchers = [_matcher(reference, p) for p in patterns if p]
    by_name = {f.name: f for f in folders}
    subscribed = set(subscriptions)
    parents: set[str] = set()
    for name in by_name:
        parents.update(_parents(name))

    def matches(name: str) -> bool:
        return any(m(name) for m, _ in matchers)

    # What the selection options pick (None: every mailbox), and the CHILDINFO word.
    chosen: set[str] | None = None
    childinfo = ""
    if "SUBSCRIBED" in selection:
        chosen, childinfo = set(subscribed), "SUBSCRIBED"
    if "SPECIAL-USE" in selection:
        special = {n for n, f in by_name.items() if f.special_use}
        chosen = special if chosen is None else chosen & special
        childinfo = childinfo or "SPECIAL-USE"
    show_subscribed = "SUBSCRIBED" in returns or "SUBSCRIBED" in selection

    def attributes(name: str) -> tuple[list[str], bool]:
        folder = by_name.get(name)
        attrs: list[str] = []
        if folder is None and name not in parents:
            attrs.append("\\NonExistent")
        elif folder is None:
            attrs += ["\\Noselect", "\\HasChildren"]
        else:
            children = folder.has_children or name in parents
            attrs.append("\\HasChildren" if children else "\\HasNoChildren")
            if folder.special_use:
                attrs.append(folder.special_use)
        if show_subscribed and name in subscribed:
            attrs.append("\\Subscribed")
        return attrs, folder is not None

    # RECURSIVEMATCH: mailboxes that have chosen descendants the patterns leave out.
    with_childinfo: set[str] = set()
    if chosen is not None and "RECURSIVEMATCH" in selection:
        with_childinfo = {p for n in chosen if not matches(n) for p in _parents(n)}
    candidates = set(by_name) if chosen is None else chosen | with_childinfo
    if chosen is None and any(levels for _, levels in matchers):  # a trailing "%"
        candidates |= {p for p in parents if any(m(p) and lv for m, lv in matchers)}
    out: list[tuple[tuple[int, str], Listed]] = []
    for name in candidates:
        if not matches(name):
            continue
        attrs, selectable = attributes(name)
        line = _line(b"LIST", attrs, name)
        if name in with_childinfo:
            line = line[:-2] + b' ("CHILDINFO" ("%s"))\r\n' % childinfo.encode("ascii")
        out.append((_order(name), Listed(name, line, selectable)))
    out.sort(key=lambda item: item[0])
    return [listed for _, listed in out]
