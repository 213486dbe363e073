"""FETCH responses (RFC 3501 sections 6.4.5 and 7.4.2).

Items come out in one stable order whatever the client asked: UID, FLAGS, MODSEQ,
INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY, BODYSTRUCTURE, then the body sections
(RFC822, RFC822.HEADER, RFC822.TEXT, BODY[...], BINARY[...], BINARY.SIZE[...]) in the
order requested. ENVELOPE, BODY and BODYSTRUCTURE come from the store's cached parts (one
`cached()` call for the whole set), INTERNALDATE, RFC822.SIZE and MODSEQ from its
metadata (one `messages()` call); only body sections read messages. Every line is built
as bytes and joined once by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

from casarray.access.imap import binary
from casarray.access.imap import responses as r
from casarray.access.imap.commands import FetchAttribute
from casarray.access.imap.selected import SelectedMailbox
from casarray.mailstore.interface import (
    CachedParts,
    MailboxStore,
    MailstoreError,
    MessageInfo,
    StorageFull,
)

_ORDER = {
    name: i
    for i, name in enumerate(
        (
            "UID",
            "FLAGS",
            "MODSEQ",
            "INTERNALDATE",
            "RFC822.SIZE",
            "ENVELOPE",
            "BODY",
            "BODYSTRUCTURE",
        )
    )
}
_CACHED = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE"})
_INFO = frozenset({"INTERNALDATE", "RFC822.SIZE", "MODSEQ"})
_RAW = frozenset({"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY[]", "BINARY[]", "BINARY.SIZE"})
BODY_BATCH = 50  # messages whose bytes one read brings (and memory holds at once)


@dataclass(slots=True)
class FetchResult:
    lines: list[bytes]
    missing: int  # messages that could not be read (expunged by another session)
    unknown_cte: int = 0  # messages whose BINARY part has an encoding not known (RFC 3516)


def _section_name(item: FetchAttribute) -> bytes:
    assert item.section is not None
    name = b"BODY[" + item.section.spec.encode("ascii", "replace") + b"]"
    if item.partial is not None:
        name += b"<%d>" % item.partial[0]
    return name


def _mime() -> ModuleType:
    from casarray.mailstore import mime

    return mime


def fetch(
    store: MailboxStore,
    view: SelectedMailbox,
    indexes: Sequence[int],
    items: Sequence[FetchAttribute],
    uid_command: bool,
) -> FetchResult:
    """The FETCH responses for the messages at `indexes`; sets \\Seen first where a
    non-PEEK body item asks for it in a read-write mailbox."""
    names = {item.name for item in items}
    if uid_command:
        names.add("UID")
    simple = sorted((n for n in names if n in _ORDER), key=_ORDER.__getitem__)
    sections = [item for item in items if item.name in _RAW]
    uids = view.uids
    flags_added: set[int] = set()
    if not view.readonly and any(item.sets_seen for item in sections):
        unseen = [
            uids[i]
            for i in indexes
            if "\\Seen" not in view.flags[i] and uids[i] not in view.pending_expunge
        ]
        if unseen:
            try:
                changed = store.store_flags(view.name, unseen, "add", ["\\Seen"])
            except StorageFull:
                changed = []  # no room to set \Seen: the messages are served all the same
            flags_added.update(view.set_flags(changed))
    wanted = [uids[i] for i in indexes]
    cached: dict[int, CachedParts] = {}
    if names & _CACHED:
        cached = store.cached(view.name, wanted)
    infos: dict[int, MessageInfo] = {}
    if names & _INFO:
        infos = store.infos(view.name, wanted)
    mime = _mime() if sections else None

    context = _Context(view.flags, view.recent, cached, infos)
    lines: list[bytes] = []
    append = lines.append
    missing = unknown_cte = 0
    renderers = [_RENDER[name] for name in simple]
    # Messages whose \Seen the fetch just set report FLAGS even if not asked (6.4.5).
    seen_names = sorted({*simple, "FLAGS"}, key=_ORDER.__getitem__)
    seen_renderers = [_RENDER[name] for name in seen_names]
    raws: dict[int, bytes] = {}
    for n, i in enumerate(indexes):
        uid = uids[i]
        if sections and n % BODY_BATCH == 0:  # the next batch's messages, in one read
            raws = store.bodies(view.name, wanted[n : n + BODY_BATCH])
        try:
            parts = [
                render(uid, i, context)
                for render in (seen_renderers if i in flags_added else renderers)
            ]
            if sections:
                raw = raws[uid]
                parts.extend(_render_section(mime, item, raw) for item in sections)
        except (KeyError, MailstoreError):
            missing += 1
            continue
        except binary.UnknownCte:
            unknown_cte += 1
            continue
        append(b"* %d FETCH (%s)\r\n" % (i + 1, b" ".join(parts)))
    return FetchResult(lines, missing, unknown_cte)


@dataclass(slots=True)
class _Context:
    flags: list[frozenset[str]]
    recent: set[int]
    cached: dict[int, CachedParts]
    infos: dict[int, MessageInfo]


Renderer = Callable[[int, int, _Context], bytes]  # (uid, index, context)


def _uid(uid: int, i: int, c: _Context) -> bytes:
    return b"UID %d" % uid


def _flags(uid: int, i: int, c: _Context) -> bytes:
    return b"FLAGS " + r.flag_list(c.flags[i], uid in c.recent)


def _modseq(uid: int, i: int, c: _Context) -> bytes:
    return b"MODSEQ (%d)" % c.infos[uid].modseq


def _internaldate(uid: int, i: int, c: _Context) -> bytes:
    return b"INTERNALDATE " + r.date_time(c.infos[uid].internal_date)


def _size(uid: int, i: int, c: _Context) -> bytes:
    return b"RFC822.SIZE %d" % c.infos[uid].size


def _envelope(uid: int, i: int, c: _Context) -> bytes:
    return b"ENVELOPE " + c.cached[uid].envelope.encode("utf-8", "surrogateescape")


def _body(uid: int, i: int, c: _Context) -> bytes:
    return b"BODY " + c.cached[uid].body.encode("utf-8", "surrogateescape")


def _bodystructure(uid: int, i: int, c: _Context) -> bytes:
    return b"BODYSTRUCTURE " + c.cached[uid].bodystructure.encode("utf-8", "surrogateescape")


_RENDER: dict[str, Renderer] = {
    "UID": _uid,
    "FLAGS": _flags,
    "MODSEQ": _modseq,
    "INTERNALDATE": _internaldate,
    "RFC822.SIZE": _size,
    "ENVELOPE": _envelope,
    "BODY": _body,
    "BODYSTRUCTURE": _bodystructure,
}


def _render_section(mime: ModuleType | None, item: FetchAttribute, raw: bytes) -> bytes:
    assert mime is not None
    if item.name.startswith("BINARY"):
        return binary.render(item, raw)
    if item.name == "RFC822":
        return b"RFC822 " + r.literal(raw)
    if item.name == "RFC822.HEADER":
        return b"RFC822.HEADER " + r.literal(mime.fetch_section(raw, "HEADER"))
    if item.name == "RFC822.TEXT":
        return b"RFC822.TEXT " + r.literal(mime.fetch_section(raw, "TEXT"))
    assert item.section is not None
    spec = item.section.spec
    data = raw if not spec else mime.fetch_section(raw, spec)
    if item.partial is not None:
        origin, length = item.partial
        data = data[origin : origin + length]
    return _section_name(item) + b" " + r.literal(data)
