"""SORT (RFC 5256) with SORT=DISPLAY (RFC 5957): the sort keys, the base subject of
RFC 5256 section 2.1, and ordering the messages a search found.

Every key comes from data the store already keeps per message, never from the message
itself: ARRIVAL and SIZE from the folder's metadata (one `messages()` read), DATE,
SUBJECT, FROM, TO, CC, DISPLAYFROM and DISPLAYTO from the ENVELOPE cached at APPEND
(one `envelopes()` read for the folder). What a SORT derives from an envelope (the
parsed date, the base subject, the first addresses) is computed once per envelope and
kept in a bounded cache, so a client sorting its INBOX again, or another session of
the same worker sorting the same messages, parses nothing.

Order: strings compare after ASCII-casemap style upper-casing (RFC 5256 names
i;ascii-casemap; upper case, as Dovecot, puts "[" and "_" after letters), dates as UTC
instants, and messages equal under every key keep their mailbox order (sequence
numbers), REVERSE or not.
"""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from casarray.access.imap.commands import SortCriterion
from casarray.access.imap.search import MessageSource
from casarray.mailstore.mime import decoded_header, envelope_items

# -- the base subject (RFC 5256 section 2.1) ----------------------------------------------

_BLANKS = re.compile(r"[ \t\r\n]+")
_BLOB = r"\[[^\[\]]*\] *"
# subj-leader: blobs then "re", "fw" or "fwd", an optional blob and a colon; or blanks.
_REFWD = re.compile(rf"(?:{_BLOB})*(?:re|fwd?) *(?:{_BLOB})?:", re.I)
_LEADING_BLOB = re.compile(_BLOB)


def base_subject(subject: str | None) -> tuple[str, bool]:
    """The base subject of a Subject (RFC 2047 encoded words decoded) and whether it
    was a reply or forward (a "Re:"/"Fwd:" leader, a "(fwd)" trailer or "[fwd: ...]"
    was removed), which THREAD=REFERENCES uses to group by subject."""
    if not subject:
        return "", False
    text = _BLANKS.sub(" ", decoded_header(subject))
    reply = False
    while True:
        # (2) trailers: "(fwd)" and blanks
        while True:
            text = text.rstrip(" ")
            if text[-5:].lower() == "(fwd)":
                text = text[:-5]
                reply = True
                continue
            break
        # (3)-(5) leaders and blobs, until neither is left
        while True:
            stripped = text.lstrip(" ")
            m = _REFWD.match(stripped)
            if m is not None:
                text = stripped[m.end() :]
                reply = True
                continue
            m = _LEADING_BLOB.match(stripped)
            if m is not None and stripped[m.end() :].strip(" "):
                text = stripped[m.end() :]
                continue
            text = stripped
            break
        # (6) "[fwd: subject]"
        if text[:5].lower() == "[fwd:" and text.endswith("]"):
            text = text[5:-1]
            reply = True
            continue
        return text, reply


# -- what a message's envelope gives --------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvelopeFacts:
    """What SORT and THREAD read from one cached ENVELOPE."""

    date: float | None  # the Date header as a UTC timestamp; None when absent or bad
    subject: str  # the base subject, upper case
    reply: bool  # the subject was a reply or forward
    first: dict[str, str]  # "from"/"to"/"cc": the first address's mailbox, upper case
    display: dict[str, str]  # "from"/"to": the display form of the first address
    message_id: str | None  # without the angle brackets
    in_reply_to: str | None  # the first message-id in In-Reply-To


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


_MSG_ID = re.compile(r"<([^<>]*)>")


def message_ids(value: str) -> list[str]:
    """The message-ids (without angle brackets) in a References or In-Reply-To value."""
    return [m for m in _MSG_ID.findall(value) if m.strip()]


def _first_address(value: object) -> list[object] | None:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, list) and len(item) >= 4:
                return item
    return None


def _upper(text: str) -> str:
    return text.upper()


@functools.lru_cache(maxsize=16384)
def envelope_facts(envelope: str) -> EnvelopeFacts:
    """The facts of a cached ENVELOPE (cached: immutable per envelope text)."""
    items = envelope_items(envelope)
    date_text = _text(items[0])
    date: float | None = None
    if date_text:
        parsed = email.utils.parsedate_tz(date_text)
        if parsed is not None:
            try:
                date = float(email.utils.mktime_tz(parsed))
            except (OverflowError, ValueError):
                date = None
    subject, reply = base_subject(_text(items[1]) if items[1] is not None else None)
    first: dict[str, str] = {}
    display: dict[str, str] = {}
    for name, index in (("from", 2), ("to", 5), ("cc", 6)):
        address = _first_address(items[index])
        if address is None:
            first[name] = ""
            display[name] = ""
            continue
        shown, _route, mailbox, host = (_text(v) for v in address[:4])
        first[name] = _upper(mailbox)
        # RFC 5957: the display name, else the address (a group's name for a group).
        name_text = _BLANKS.sub(" ", decoded_header(shown)).strip() if shown else ""
        where = f"{mailbox}@{host}" if host else mailbox
        display[name] = _upper(name_text or where)
    message_id = None
    ids = message_ids(_text(items[9]))
    if ids:
        message_id = ids[0]
    in_reply = message_ids(_text(items[8]))
    return EnvelopeFacts(
        date=date,
        subject=_upper(subject),
        reply=reply,
        first=first,
        display=display,
        message_id=message_id,
        in_reply_to=in_reply[0] if in_reply else None,
    )


_EMPTY = envelope_facts("(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)")


def facts_of(source: MessageSource, uid: int) -> EnvelopeFacts:
    text = source.envelope_text(uid)
    return envelope_facts(text) if text else _EMPTY


def sent_date(source: MessageSource, uid: int) -> float:
    """RFC 5256's sent date: the Date header, else the internal date."""
    date = facts_of(source, uid).date
    if date is not None:
        return date
    return arrival(source, uid)


def arrival(source: MessageSource, uid: int) -> float:
    info = source.info(uid)
    return info.internal_date.timestamp() if info is not None else 0.0


def _size(source: MessageSource, uid: int) -> int:
    info = source.info(uid)
    return info.size if info is not None else 0


def key_function(key: str, source: MessageSource) -> Callable[[int], object]:
    """The sort value of a message (by UID) under `key`."""
    if key == "ARRIVAL":
        return lambda uid: arrival(source, uid)
    if key == "SIZE":
        return lambda uid: _size(source, uid)
    if key == "DATE":
        return lambda uid: sent_date(source, uid)
    if key == "SUBJECT":
        return lambda uid: facts_of(source, uid).subject
    if key in ("FROM", "TO", "CC"):
        field = key.lower()
        return lambda uid: facts_of(source, uid).first[field]
    if key in ("DISPLAYFROM", "DISPLAYTO"):
        field = key[7:].lower()
        return lambda uid: facts_of(source, uid).display[field]
    raise ValueError(f"not a sort key: {key}")


def sort_uids(
    criteria: Sequence[SortCriterion], uids: Sequence[int], source: MessageSource
) -> list[int]:
    """`uids` (in mailbox order) ordered by `criteria`; ties keep mailbox order."""
    ordered = list(uids)
    # Stable sorts from the last key to the first: each REVERSE applies to its key only,
    # and messages equal under every key stay in mailbox order.
    for criterion in reversed(criteria):
        function = key_function(criterion.key, source)
        values: dict[int, Any] = {uid: function(uid) for uid in ordered}
        ordered.sort(key=values.__getitem__, reverse=criterion.reverse)
    return ordered


def sort_value(
    criteria: Sequence[SortCriterion], source: MessageSource, position: Callable[[int], int]
) -> Callable[[int], tuple[object, ...]]:
    """One message's comparable value under all `criteria` (REVERSE keys negated through
    a wrapper), with `position` (its mailbox order) last: what a SORT context update
    uses to place a message in an existing result."""
    functions = [(key_function(c.key, source), c.reverse) for c in criteria]

    def value(uid: int) -> tuple[object, ...]:
        parts: list[object] = [
            _Reversed(f(uid)) if reverse else _Plain(f(uid)) for f, reverse in functions
        ]
        parts.append(position(uid))
        return tuple(parts)

    return value


@functools.total_ordering
class _Plain:
    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Plain) and self.value == other.value

    def __lt__(self, other: _Plain) -> bool:
        return self.value < other.value  # type: ignore[operator,no-any-return]

    __hash__ = None  # type: ignore[assignment]


@functools.total_ordering
class _Reversed(_Plain):
    __slots__ = ()

    def __lt__(self, other: _Plain) -> bool:
        return other.value < self.value  # type: ignore[operator,no-any-return]
