"""ESEARCH (RFC 4731) and the result options of RFC 5267: what `SEARCH RETURN (...)` and
`SORT RETURN (...)` ask for, and the `* ESEARCH (TAG "a1") UID MIN 2 ...` response that
answers them.

A result is the list of matching message numbers (sequence numbers, or UIDs for the UID
forms), ascending for SEARCH and in sort order for SORT: MIN and MAX are its first and
last items (for SORT the first and last in sort order, as RFC 5267 section 3.1 has it),
ALL and PARTIAL fold consecutive ascending runs into ranges (RFC 5267 section 3.2), and
an empty result leaves out MIN, MAX and ALL (RFC 4731 section 3.1) but answers
`COUNT 0` and `PARTIAL (1:10 NIL)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from casarray.access.imap import responses as r


@dataclass(frozen=True, slots=True)
class ReturnOptions:
    """The RETURN options of one SEARCH or SORT. `RETURN ()` is ALL (RFC 4731); UPDATE
    keeps the result live (RFC 5267 CONTEXT=SEARCH/SORT); `partial` is the range of
    positions (low, high), 1-based and low <= high."""

    min: bool = False
    max: bool = False
    all: bool = False
    count: bool = False
    update: bool = False
    partial: tuple[int, int] | None = None

    @property
    def wants_values(self) -> bool:
        """Whether the result itself is asked for (an UPDATE alone only starts the
        context: its first response carries the tag alone)."""
        return self.min or self.max or self.all or self.count or self.partial is not None

    def returned(self, found: Sequence[int]) -> Sequence[int]:
        """Of a result in ascending order, the items the response names: MIN's and MAX's
        alone when only they are asked for, else all (RFC 7162 3.1.5 takes the highest
        modseq of these)."""
        if self.all or self.count or self.partial is not None or not (self.min or self.max):
            return found
        return [*found[:1]] * self.min + [*found[-1:]] * self.max


def sequence_text(numbers: Sequence[int]) -> str:
    """`1:3,7,5` for a result in its order: ascending runs folded into ranges."""
    return r.uid_set(numbers)


def partial_slice(numbers: Sequence[int], low: int, high: int) -> Sequence[int]:
    """The items at positions low..high (1-based, inclusive) of a result."""
    return numbers[low - 1 : high]


def esearch_line(
    tag: str,
    uid: bool,
    options: ReturnOptions,
    numbers: Sequence[int],
    modseq: int | None = None,
) -> bytes:
    """The ESEARCH response for a result (`numbers` in result order); `modseq` when the
    search named MODSEQ (RFC 7162 3.1.5)."""
    parts = [b"* ESEARCH (TAG " + r.string(tag) + b")"]
    if uid:
        parts.append(b"UID")
    if numbers:
        if options.min:
            parts.append(b"MIN %d" % numbers[0])
        if options.max:
            parts.append(b"MAX %d" % numbers[-1])
        if options.all:
            parts.append(b"ALL " + sequence_text(numbers).encode("ascii"))
    if options.partial is not None:
        low, high = options.partial
        chosen = partial_slice(numbers, low, high)
        text = sequence_text(chosen) if chosen else "NIL"
        parts.append(f"PARTIAL ({low}:{high} {text})".encode("ascii"))
    if options.count:
        parts.append(b"COUNT %d" % len(numbers))
    if modseq is not None:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


def update_line(tag: str, uid: bool, items: Sequence[tuple[str, int, Sequence[int]]]) -> bytes:
    """An unsolicited context update (RFC 5267): ADDTO and REMOVEFROM
    items, each (name, position, numbers)."""
    parts = [b"* ESEARCH (TAG " + r.string(tag) + b")"]
    if uid:
        parts.append(b"UID")
    for name, position, numbers in items:
        parts.append(f"{name} ({position} {sequence_text(numbers)})".encode("ascii"))
    return b" ".join(parts) + b"\r\n"
