"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 section 4): results a client keeps live
with `RETURN (UPDATE)`, and the `ADDTO`/`REMOVEFROM` updates sent when the mailbox
changes, until CANCELUPDATE or the mailbox is closed.

After each command (and while idling) the session hands the selected mailbox's map to
`SearchContexts.updates`. Only what changed is looked at again: the messages that are
new or whose flags changed since the last look are evaluated against each context's
key (a key naming sequence numbers is evaluated over the whole mailbox, since an
expunge shifts them), and the messages that left the map are removed from every
result. Nothing of this runs while no context is open.

Positions: a SEARCH result is a set, so its updates carry position 0; a SORT result is
ordered, and each update carries the 1-based position at which the message is inserted
(or from which it is removed), applied in the order sent. Message numbers are sequence
numbers in a SEARCH/SORT context and UIDs in a UID one; a message that was expunged
keeps the number it had before its EXPUNGE (as Dovecot answers).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from casarray.access.imap.commands import SortCriterion
from casarray.access.imap.esearch import ReturnOptions, esearch_line, update_line
from casarray.access.imap.search import (
    MessageSource,
    SearchKey,
    evaluate,
    source_for,
    uses_sequence_numbers,
)
from casarray.access.imap.selected import SelectedMailbox
from casarray.mailstore.interface import MailboxStore

MAX_CONTEXTS = 16  # per session: each costs a re-evaluation of what changed


@dataclass
class SearchContext:
    """One live result: `result` holds UIDs, ascending (SEARCH) or in sort order
    (SORT, with each message's sort value in `values`)."""

    tag: str
    uid: bool
    key: SearchKey
    options: ReturnOptions
    result: list[int]
    criteria: tuple[SortCriterion, ...] | None = None
    values: list[tuple[object, ...]] = field(default_factory=list)


class SearchContexts:
    """The contexts of one session's selected mailbox."""

    __slots__ = ("_contexts", "_flags", "_uids")

    def __init__(self) -> None:
        self._contexts: dict[str, SearchContext] = {}
        self._uids: array[int] = array("I")
        self._flags: list[frozenset[str]] = []

    def __bool__(self) -> bool:
        return bool(self._contexts)

    def start(self, context: SearchContext, view: SelectedMailbox, source: MessageSource) -> bool:
        """Keeps `context` live from the mailbox as `view` shows it now; False when the
        session has MAX_CONTEXTS already (the client is told `* NO [NOUPDATE "tag"]`, as
        Dovecot does; RFC 5267 NOUPDATE)."""
        self._contexts.pop(context.tag, None)  # a tag used again replaces its context
        if len(self._contexts) >= MAX_CONTEXTS:
            return False
        if context.criteria is not None:
            from casarray.access.imap.sorting import sort_value

            value = sort_value(context.criteria, source, _position)
            context.values = [value(uid) for uid in context.result]
        if not self._contexts:
            self._snapshot(view)
        view.before_expunge = lambda positions: self.expunging(view, positions)
        self._contexts[context.tag] = context
        return True

    def cancel(self, tags: Sequence[str]) -> list[str]:
        """Ends the contexts of `tags`; returns the tags that name none (and then ends
        nothing)."""
        unknown = [tag for tag in tags if tag not in self._contexts]
        if not unknown:
            for tag in tags:
                self._contexts.pop(tag, None)
        return unknown

    def expunging(self, view: SelectedMailbox, positions: list[int]) -> list[bytes]:
        """REMOVEFROM for messages about to be announced expunged (`positions`: their
        indexes in the map), sent before the EXPUNGE responses so that their sequence
        numbers still name them."""
        uids = view.uids
        doomed = {uids[i]: i for i in positions}
        lines: list[bytes] = []
        for context in self._contexts.values():
            removed = [uid for uid in context.result if uid in doomed]
            if not removed:
                continue

            def number(uid: int, uid_context: bool = context.uid) -> int:
                if uid_context:
                    return uid
                index = view.index_of(uid)  # still in the map: numbers before EXPUNGE
                return index + 1 if index is not None else 0

            before = _values_shown(context)
            items = _remove(context, removed, number)
            lines.extend(_lines(context, items, before, number))
        return lines

    def _snapshot(self, view: SelectedMailbox) -> None:
        self._uids = array("I", view.uids)
        self._flags = list(view.flags)

    def updates(self, view: SelectedMailbox, store: MailboxStore) -> list[bytes]:
        """ADDTO/REMOVEFROM (and new MIN/MAX/COUNT) for what changed since the last call."""
        if not self._contexts:
            return []
        old_uids, old_flags = self._uids, self._flags
        if view.uids == old_uids and view.flags == old_flags:
            return []
        old_index = {uid: i for i, uid in enumerate(old_uids)}
        now_index = {uid: i for i, uid in enumerate(view.uids)}
        gone = [uid for uid in old_uids if uid not in now_index]
        changed = []
        for i, uid in enumerate(view.uids):
            j = old_index.get(uid)
            if j is None or old_flags[j] != view.flags[i]:
                changed.append(i)
        self._snapshot(view)
        source = source_for(store, view.name, view.uids)
        lines: list[bytes] = []
        for context in self._contexts.values():
            lines.extend(_refresh(context, view, source, changed, gone, old_index, now_index))
        return lines


def _position(uid: int) -> int:
    return uid  # UID order is mailbox order


def _refresh(
    context: SearchContext,
    view: SelectedMailbox,
    source: MessageSource,
    changed: list[int],
    gone: list[int],
    old_index: dict[int, int],
    now_index: dict[int, int],
) -> list[bytes]:
    uids = view.uids
    candidates = list(range(len(uids))) if uses_sequence_numbers(context.key) else changed
    matched = {
        uids[i] for i in evaluate(context.key, uids, view.flags, view.recent, source, candidates)
    }
    in_result = set(context.result)
    removed = [uid for uid in gone if uid in in_result]
    removed += [
        uid for uid in (uids[i] for i in candidates) if uid in in_result and uid not in matched
    ]
    added = [
        uid
        for uid in (uids[i] for i in candidates)
        if uid not in in_result and uid in matched and uid not in view.pending_expunge
    ]
    if not removed and not added:
        return []

    def number(uid: int) -> int:
        if context.uid:
            return uid
        i = now_index.get(uid)
        return i + 1 if i is not None else old_index[uid] + 1

    before = _values_shown(context)
    items = _remove(context, removed, number)
    if context.criteria is None:
        if added:
            items.append(("ADDTO", 0, sorted(number(u) for u in added)))
        context.result = sorted(set(context.result) | set(added))
    else:
        from casarray.access.imap.sorting import sort_value

        value = sort_value(context.criteria, source, _position)
        for uid in sorted(added):
            v = value(uid)
            at = bisect_right(context.values, v)
            context.values.insert(at, v)
            context.result.insert(at, uid)
            items.append(("ADDTO", at + 1, [number(uid)]))
    return _lines(context, items, before, number)


def _remove(
    context: SearchContext, removed: Sequence[int], number: Callable[[int], int]
) -> list[tuple[str, int, Sequence[int]]]:
    """Takes `removed` (UIDs in the result) out of the result: the REMOVEFROM items."""
    if not removed:
        return []
    if context.criteria is None:
        doomed = set(removed)
        context.result = [uid for uid in context.result if uid not in doomed]
        return [("REMOVEFROM", 0, sorted(number(uid) for uid in removed))]
    items: list[tuple[str, int, Sequence[int]]] = []
    for uid in removed:
        at = context.result.index(uid)
        del context.result[at]
        del context.values[at]
        items.append(("REMOVEFROM", at + 1, [number(uid)]))
    return items


def _lines(
    context: SearchContext,
    items: list[tuple[str, int, Sequence[int]]],
    before: tuple[int, ...] | None,
    number: Callable[[int], int],
) -> list[bytes]:
    """The ESEARCH responses for a change: ADDTO/REMOVEFROM when the context reports
    its whole result, new MIN/MAX/COUNT values when it reports those."""
    lines = []
    options = context.options
    if items and (options.all or not options.wants_values):
        lines.append(update_line(context.tag, context.uid, items))
    if _values_shown(context) != before:
        shown = ReturnOptions(min=options.min, max=options.max, count=options.count)
        numbers = [number(uid) for uid in context.result]
        lines.append(esearch_line(context.tag, context.uid, shown, numbers))
    return lines


def _values_shown(context: SearchContext) -> tuple[int, ...] | None:
    """The MIN, MAX and COUNT a context reports (None when it reports none)."""
    options = context.options
    if not (options.min or options.max or options.count):
        return None
    result = context.result
    return (
        result[0] if result and options.min else 0,
        result[-1] if result and options.max else 0,
        len(result) if options.count else 0,
    )
