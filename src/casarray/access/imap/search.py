"""SEARCH (RFC 3501 section 6.4.4): the search keys as a tree of frozen dataclasses,
and their evaluation over the selected mailbox.

Keys are compiled into closures and every AND is ordered cheapest first, so flags,
sequence numbers and UIDs are decided from the session's UID/flags map alone; sizes and
internal dates need the folder's metadata (one `messages()` call); only header and text
keys read message bodies, and only for messages the cheaper keys left in."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import ModuleType

from casarray.access.imap.sequence import SequenceSet
from casarray.mailstore.interface import MailboxStore, MailstoreError, MessageInfo

# -- the keys ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class FlagKey:
    """ANSWERED, DELETED, DRAFT, FLAGGED, SEEN, KEYWORD and their UN- forms."""

    flag: str
    present: bool


@dataclass(frozen=True, slots=True)
class RecentKey:
    """RECENT (True) and OLD (False); NEW is RECENT UNSEEN."""

    present: bool


@dataclass(frozen=True, slots=True)
class SequenceKey:
    messages: SequenceSet


@dataclass(frozen=True, slots=True)
class UidKey:
    messages: SequenceSet


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """MODSEQ (RFC 7162): messages changed at or after `modseq` (the optional entry
    name and type are accepted and, flags having no modseqs of their own, ignored)."""

    modseq: int


@dataclass(frozen=True, slots=True)
class SizeKey:
    larger: bool
    size: int


@dataclass(frozen=True, slots=True)
class DateKey:
    """BEFORE/ON/SINCE (internal date) and SENTBEFORE/SENTON/SENTSINCE (Date: header)."""

    sent: bool
    op: str  # "before", "on", "since"
    day: date


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """FROM, TO, CC, BCC, SUBJECT and HEADER: a substring of the decoded header."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    """BODY (body_only) and TEXT."""

    value: str
    body_only: bool


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[SearchKey, ...]


SearchKey = (
    All
    | FlagKey
    | RecentKey
    | SequenceKey
    | UidKey
    | ModSeqKey
    | SizeKey
    | DateKey
    | HeaderKey
    | TextKey
    | Not
    | Or
    | And
)

# -- evaluation ----------------------------------------------------------------

COST_MAP, COST_INFO, COST_HEADER, COST_TEXT = 0, 1, 2, 3


def cost(key: SearchKey) -> int:
    """How much deciding a key costs: 0 the UID/flags map, 1 the folder's metadata, 2 a
    message's header, 3 its text."""
    match key:
        case SizeKey() | DateKey(sent=False) | ModSeqKey():
            return COST_INFO
        case HeaderKey() | DateKey():
            return COST_HEADER
        case TextKey():
            return COST_TEXT
        case Not(key=inner):
            return cost(inner)
        case Or(left=left, right=right):
            return max(cost(left), cost(right))
        case And(keys=keys):
            return max((cost(k) for k in keys), default=COST_MAP)
    return COST_MAP


class MessageSource:
    """What evaluation reads beyond the map, loaded on first use: the folder's metadata
    (one call for all messages) and the raw message (the last one kept)."""

    def __init__(
        self,
        infos: Callable[[], Mapping[int, MessageInfo]],
        body: Callable[[int], bytes | None],
        envelopes: Callable[[], Mapping[int, str]] | None = None,
    ) -> None:
        self._infos_loader = infos
        self._infos: Mapping[int, MessageInfo] | None = None
        self._body = body
        self._raw_uid = -1
        self._raw: bytes | None = None
        self._envelopes_loader = envelopes
        self._envelopes: Mapping[int, str] | None = None

    def envelope_text(self, uid: int) -> str | None:
        """The message's cached ENVELOPE (all loaded at once), or None when there is no
        cache to read."""
        if self._envelopes_loader is None:
            return None
        if self._envelopes is None:
            self._envelopes = self._envelopes_loader()
        return self._envelopes.get(uid)

    def info(self, uid: int) -> MessageInfo | None:
        if self._infos is None:
            self._infos = self._infos_loader()
        return self._infos.get(uid)

    def raw(self, uid: int) -> bytes | None:
        if uid != self._raw_uid:
            self._raw_uid = uid
            self._raw = self._body(uid)
        return self._raw


def source_for(store: MailboxStore, name: str, uids: Sequence[int]) -> MessageSource:
    """The MessageSource of the selected folder `name` (whose map holds `uids`)."""

    def infos() -> dict[int, MessageInfo]:
        return {info.uid: info for info in store.messages(name)}

    def body(uid: int) -> bytes | None:
        try:
            return store.body(name, uid)
        except MailstoreError:
            return None

    def envelopes() -> dict[int, str]:
        return store.envelopes(name, uids)

    return MessageSource(infos, body, envelopes)


def uses_sequence_numbers(key: SearchKey) -> bool:
    """Whether the key names messages by sequence number (whose meaning shifts with every
    expunge, so a context update evaluates it over the whole mailbox again)."""
    match key:
        case SequenceKey():
            return True
        case Not(key=inner):
            return uses_sequence_numbers(inner)
        case Or(left=left, right=right):
            return uses_sequence_numbers(left) or uses_sequence_numbers(right)
        case And(keys=keys):
            return any(uses_sequence_numbers(k) for k in keys)
    return False


def _mime() -> ModuleType:
    """The MIME module, imported when a key needs message content."""
    from casarray.mailstore import mime

    return mime


Predicate = Callable[[int], bool]  # of a message index
ENVELOPE_KEYS = frozenset({"from", "to", "cc", "bcc", "subject"})


def _on_day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def evaluate(
    key: SearchKey,
    uids: Sequence[int],
    flags: Sequence[frozenset[str]],
    recent: set[int] | frozenset[int],
    source: MessageSource,
    candidates: Sequence[int] | None = None,
) -> list[int]:
    """The 0-based indexes of the messages matching `key`, ascending; only those among
    `candidates` (ascending indexes) when given, as a context update asks of the
    messages that changed."""
    exists = len(uids)
    last_uid = uids[-1] if uids else 0

    def compile_key(k: SearchKey) -> Predicate:
        match k:
            case All():
                return lambda i: True
            case FlagKey(flag=flag, present=True):
                return lambda i: flag in flags[i]
            case FlagKey(flag=flag, present=False):
                return lambda i: flag not in flags[i]
            case RecentKey(present=present):
                return lambda i: (uids[i] in recent) is present
            case SequenceKey(messages=messages):
                wanted = _clipped_indexes(messages, exists)
                return wanted.__contains__
            case UidKey(messages=messages):
                return lambda i: messages.contains_uid(uids[i], last_uid)
            case ModSeqKey(modseq=modseq):

                def by_modseq(i: int) -> bool:
                    info = source.info(uids[i])
                    return info is not None and info.modseq >= modseq

                return by_modseq
            case SizeKey(larger=larger, size=size):

                def by_size(i: int) -> bool:
                    info = source.info(uids[i])
                    if info is None:
                        return False
                    return info.size > size if larger else info.size < size

                return by_size
            case DateKey(sent=sent, op=op, day=day):
                mime = _mime()

                def by_date(i: int) -> bool:
                    uid = uids[i]
                    value: datetime | date | None = None
                    if sent:
                        raw = source.raw(uid)
                        if raw is not None:
                            value = mime.sent_date(raw)
                    if value is None:
                        info = source.info(uid)
                        if info is None:
                            return False
                        value = info.internal_date
                    on = _on_day(value)
                    if op == "before":
                        return on < day
                    if op == "on":
                        return on == day
                    return on >= day

                return by_date
            case HeaderKey(name=name, value=value):
                needle = value.casefold()
                mime = _mime()

                envelope_field = name.lower() if name.lower() in ENVELOPE_KEYS else None
                # The envelope keeps mailbox and host apart: "bob@lab.net" is "bob" and
                # "lab.net" there, so the quick test looks for the pieces.
                pieces = [p.strip() for p in re.split(r"[<>@,]", needle) if p.strip()]

                def by_header(i: int) -> bool:
                    # An empty string asks whether the field is there at all (RFC 3501:
                    # it matches every message that has the field): only the header
                    # says so, an empty envelope field may be an absent or empty one.
                    if envelope_field is not None and needle:
                        # RFC 3501: FROM/TO/CC/BCC/SUBJECT match the envelope's field,
                        # which the store keeps cached: no message is read.
                        text = source.envelope_text(uids[i])
                        if text is not None:
                            # Without encoded words a field can only match if the
                            # whole envelope does: most messages are ruled out here.
                            if "=?" not in text:
                                folded = text.casefold()
                                if not all(piece in folded for piece in pieces):
                                    return False
                            fields = _mime().envelope_fields(text)
                            return needle in fields.get(envelope_field, "").casefold()
                    raw = source.raw(uids[i])
                    if raw is None:
                        return False
                    for header in mime.header_values(raw, name):
                        if not needle or needle in mime.decoded_header(header).casefold():
                            return True
                    return False

                return by_header
            case TextKey(value=value, body_only=body_only):
                mime = _mime()

                def by_text(i: int) -> bool:
                    raw = source.raw(uids[i])
                    return raw is not None and mime.search_text(raw, value, body_only=body_only)

                return by_text
            case Not(key=inner):
                test = compile_key(inner)
                return lambda i: not test(i)
            case Or(left=left, right=right):
                first, second = sorted((left, right), key=cost)
                a, b = compile_key(first), compile_key(second)
                return lambda i: a(i) or b(i)
            case And(keys=keys):
                tests = [compile_key(x) for x in sorted(keys, key=cost)]
                if len(tests) == 1:
                    return tests[0]
                return lambda i: all(t(i) for t in tests)
        raise TypeError(f"not a search key: {k!r}")

    if candidates is not None:
        test = compile_key(key)
        return [i for i in candidates if test(i)]
    # The common shapes skip the per-message calls altogether.
    if isinstance(key, All):
        return list(range(exists))
    if isinstance(key, UidKey):
        return key.messages.uid_indexes(uids)
    if isinstance(key, SequenceKey):
        return sorted(_clipped_indexes(key.messages, exists))
    test = compile_key(key)
    return [i for i in range(exists) if test(i)]


def _clipped_indexes(messages: SequenceSet, exists: int) -> set[int]:
    """Sequence numbers in SEARCH: numbers beyond the mailbox match nothing (`*` of an
    empty mailbox, 0, included)."""
    out: set[int] = set()
    for lo, hi in messages.ranges:
        a = exists if lo == 0 else lo
        b = exists if hi == 0 else hi
        if a > b:
            a, b = b, a
        out.update(range(max(a, 1) - 1, min(b, exists)))
    return out


def uses_modseq(key: SearchKey) -> bool:
    """Whether the key has a MODSEQ (its result then carries the highest modseq)."""
    match key:
        case ModSeqKey():
            return True
        case Not(key=inner):
            return uses_modseq(inner)
        case Or(left=left, right=right):
            return uses_modseq(left) or uses_modseq(right)
        case And(keys=keys):
            return any(uses_modseq(k) for k in keys)
    return False


def highest_modseq(found: Sequence[int], uids: Sequence[int], source: MessageSource) -> int:
    """The highest modseq of the messages at indexes `found` (RFC 7162 3.1.5)."""
    best = 0
    for i in found:
        info = source.info(uids[i])
        if info is not None and info.modseq > best:
            best = info.modseq
    return best
