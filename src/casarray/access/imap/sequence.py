"""Message sequence sets (RFC 3501 `sequence-set`): ranges in any order, `*` for the
last message, resolved against sequence numbers or against the session's UID list."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from casarray.errors import CasarrayError


class SequenceError(CasarrayError, ValueError):
    """A message sequence number beyond the mailbox (RFC 3501: the command is BAD)."""


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """`1:4,7,9:*` as ranges (lo, hi) in the client's order; 0 stands for `*`."""

    ranges: tuple[tuple[int, int], ...]

    def indexes(self, exists: int) -> list[int]:
        """0-based message indexes for sequence numbers, ascending, without repeats."""
        if exists == 0:
            if all(lo == 0 or hi == 0 for lo, hi in self.ranges):
                return []
            raise SequenceError("the mailbox is empty")
        spans: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            a = exists if lo == 0 else lo
            b = exists if hi == 0 else hi
            if a > b:
                a, b = b, a
            if b > exists:
                raise SequenceError(
                    f"message sequence number {b} is beyond the last message ({exists})"
                )
            spans.append((a - 1, b))
        return _union(spans)

    def uid_indexes(self, uids: Sequence[int]) -> list[int]:
        """0-based indexes of the messages whose UIDs are in the set (RFC 3501: `n:*`
        always includes the last message, whatever n)."""
        if not uids:
            return []
        last = uids[-1]
        spans: list[tuple[int, int]] = []
        for lo, hi in self.ranges:
            a = last if lo == 0 else lo
            b = last if hi == 0 else hi
            if a > b:
                a, b = b, a
            start = bisect_left(uids, a)
            end = bisect_right(uids, b, lo=start)
            if start < end:
                spans.append((start, end))
        return _union(spans)

    def contains_uid(self, uid: int, last: int) -> bool:
        for lo, hi in self.ranges:
            a = last if lo == 0 else lo
            b = last if hi == 0 else hi
            if a > b:
                a, b = b, a
            if a <= uid <= b:
                return True
        return False


def _union(spans: list[tuple[int, int]]) -> list[int]:
    if len(spans) == 1:
        return list(range(*spans[0]))
    spans.sort()
    out: list[int] = []
    upto = -1
    for start, end in spans:
        start = max(start, upto)
        if start < end:
            out.extend(range(start, end))
            upto = end
    return out
