"""Messages as the JSON API shows them: summaries from the cached ENVELOPE and
BODYSTRUCTURE (no message is read to list a folder), and the full view and body parts
from the raw bytes.

Everything MIME comes from `casarray.mailstore.mime`, the parser the IMAP server
uses, so part numbers, sizes and decoded text agree with what an IMAP client fetches:
its parse tree (`_parse`, `_resolve`), its header value parsing (`_token`,
`_parse_params`) and text decoding (`_decoded_body`, `decoded_header`), and its reader
of the cached IMAP values (`_imap_values`). Those are module-private there; a public
"parts of a message" function in mime.py would let this module (and the web mail) drop
the underscores.

The view:
- `text`: the first text/plain part that is not an attachment (depth first), decoded;
  `html`: likewise the first text/html part, decoded and sanitized with nh3 (scripts,
  styles, event handlers and javascript: URLs removed; cid: URLs kept, as they name
  inline parts by Content-ID), so a client may show it.
- `attachments`: every other leaf part (and every message/rfc822 part, whose inside is
  not walked), with its IMAP part number for `.../parts/{part}`.
- Header values are unfolded and RFC 2047-decoded; 8-bit header bytes are read as UTF-8,
  else Latin-1, as the IMAP SEARCH does. Strings never carry lone surrogates (they
  could not be encoded as JSON text).
"""

from __future__ import annotations

import binascii
import datetime
import email.utils
import itertools
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nh3

from casarray.mailstore import mime
from casarray.mailstore.interface import CachedParts, MessageInfo

_TEXT, _HTML = (b"text", b"plain"), (b"text", b"html")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
# nh3's safe schemes plus cid:, so inline images can be matched to their parts.
_URL_SCHEMES = nh3.ALLOWED_URL_SCHEMES | {"cid"}


def clean(text: str) -> str:
    """`text` with any lone surrogate (from surrogateescape or a broken charset) as
    U+FFFD, so that it can be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _header_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _decoded(value: bytes | None) -> str | None:
    """A header value (or an envelope string) RFC 2047-decoded."""
    if value is None:
        return None
    return clean(mime.decoded_header(_header_text(value)))


def _iso(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.isoformat()


def _date(value: bytes | None) -> str | None:
    """The Date header as ISO 8601, or None when it doesn't parse."""
    if not value:
        return None
    try:
        return _iso(email.utils.parsedate_to_datetime(_header_text(value)))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


# -- the cached ENVELOPE and BODYSTRUCTURE ----------------------------------------------


@dataclass(frozen=True)
class Envelope:
    date: str | None
    subject: str | None
    addresses: dict[str, list[dict[str, Any]]]  # from, sender, reply_to, to, cc, bcc
    in_reply_to: str | None
    message_id: str | None


_ADDRESS_FIELDS = ("from", "sender", "reply_to", "to", "cc", "bcc")


def _addresses(value: object) -> list[dict[str, Any]]:
    """ENVELOPE addresses as {name, address}; group markers are left out."""
    out: list[dict[str, Any]] = []
    if not isinstance(value, list):
        return out
    for item in value:
        if not isinstance(item, list) or len(item) < 4:
            continue
        name, _route, mailbox, host = item[:4]
        if host is None:  # the start (mailbox = group name) or the end of a group
            continue
        local = _header_text(mailbox) if isinstance(mailbox, bytes) else ""
        domain = _header_text(host) if isinstance(host, bytes) else ""
        out.append(
            {
                "name": _decoded(name) if isinstance(name, bytes) else None,
                "address": clean(f"{local}@{domain}" if domain else local),
            }
        )
    return out


def envelope(text: str) -> Envelope:
    """The cached IMAP ENVELOPE, read back."""
    values = mime._imap_values(text)
    items = values[0] if values and isinstance(values[0], list) else []
    items = [*items, *([None] * (10 - len(items)))]
    date, subject = items[0], items[1]
    fields = {name: _addresses(items[2 + i]) for i, name in enumerate(_ADDRESS_FIELDS)}
    in_reply_to, message_id = items[8], items[9]
    return Envelope(
        date=_date(date) if isinstance(date, bytes) else None,
        subject=_decoded(subject) if isinstance(subject, bytes) else None,
        addresses=fields,
        in_reply_to=_decoded(in_reply_to) if isinstance(in_reply_to, bytes) else None,
        message_id=_decoded(message_id) if isinstance(message_id, bytes) else None,
    )


def _lower(value: object) -> bytes:
    return value.lower() if isinstance(value, bytes) else b""


def _has_attachments(body: object) -> bool:
    """Whether a cached BODYSTRUCTURE has a part marked attachment, with a file name, or
    an encapsulated message."""
    if not isinstance(body, list) or not body:
        return False
    if isinstance(body[0], list):  # multipart: the parts, then the subtype and extensions
        parts = itertools.takewhile(lambda item: isinstance(item, list), body)
        return any(_has_attachments(part) for part in parts)
    ctype, subtype = _lower(body[0]), _lower(body[1] if len(body) > 1 else None)
    if (ctype, subtype) == (b"message", b"rfc822"):
        return True
    params = body[2] if len(body) > 2 and isinstance(body[2], list) else []
    if any(_lower(key) in (b"name", b"name*") for key in params[::2]):
        return True
    # body-fld-dsp follows md5: after size (7 fields), text has lines, message/rfc822
    # envelope, body and lines.
    where = 9 if ctype == b"text" else 8
    disposition = body[where] if len(body) > where else None
    if isinstance(disposition, list) and disposition:
        if _lower(disposition[0]) == b"attachment":
            return True
        dparams = (
            disposition[1] if len(disposition) > 1 and isinstance(disposition[1], list) else []
        )
        return any(_lower(key) in (b"filename", b"filename*") for key in dparams[::2])
    return False


def summary(info: MessageInfo, parts: CachedParts | None) -> dict[str, Any]:
    """A message of a folder listing (a MessageSummary)."""
    env = envelope(parts.envelope) if parts is not None else envelope("")
    structure = mime._imap_values(parts.bodystructure) if parts is not None else []
    return {
        "uid": info.uid,
        "flags": sorted(info.flags),
        "size": info.size,
        "internal_date": _iso(info.internal_date),
        "date": env.date,
        "subject": env.subject,
        "from": env.addresses["from"],
        "to": env.addresses["to"],
        "cc": env.addresses["cc"],
        "has_attachments": bool(structure) and _has_attachments(structure[0]),
    }


# -- the parsed message -------------------------------------------------------------------


def _extended(value: bytes) -> str:
    """An RFC 2231 extended value (charset'language'percent-encoded), decoded."""
    charset, _, rest = value.partition(b"'")
    _language, _, encoded = rest.partition(b"'")
    data = urllib.parse.unquote_to_bytes(encoded)
    codec = mime._codec(charset.decode("ascii", "replace"))
    return clean(data.decode(codec, "replace"))


def _filename(e: Any) -> str | None:
    disposition = e.first(b"content-disposition")
    params: list[tuple[bytes, bytes]] = []
    if disposition is not None:
        i, _kind = mime._token(disposition, mime._skip_cfws(disposition, 0))
        params = mime._parse_params(disposition, mime._skip_cfws(disposition, i))
    for source, name in ((params, b"filename"), (e.params, b"name")):
        extended = mime._param(source, name + b"*")
        if extended is not None:
            return _extended(extended)
        plain = mime._param(source, name)
        if plain is not None:
            return _decoded(plain)
    return None


def _disposition(e: Any) -> str | None:
    value = e.first(b"content-disposition")
    if value is None:
        return None
    _, kind = mime._token(value, mime._skip_cfws(value, 0))
    return kind.decode("ascii", "replace").lower() or None


def _content_type(e: Any) -> str:
    return f"{_header_text(e.ctype)}/{_header_text(e.subtype)}".lower()


@dataclass(frozen=True)
class _Leaf:
    part: str
    entity: Any


def _leaves(e: Any, number: str) -> Iterator[_Leaf]:
    """The leaf parts (and message/rfc822 parts) below `e`, with IMAP part numbers; a
    single-part message's body is part "1"."""
    if e.kind == mime._MULTIPART:
        for index, child in enumerate(e.children, 1):
            child_number = f"{number}.{index}" if number else str(index)
            yield from _leaves(child, child_number)
    else:
        yield _Leaf(number or "1", e)


def _is_body(leaf: _Leaf, kind: tuple[bytes, bytes]) -> bool:
    e = leaf.entity
    return (
        e.kind == mime._LEAF
        and (e.ctype.lower(), e.subtype.lower()) == kind
        and _disposition(e) != "attachment"
        and _filename(e) is None
    )


def view(raw: bytes, info: MessageInfo, folder: str, parts: CachedParts | None) -> dict[str, Any]:
    """The whole message (a Message)."""
    raw = bytes(raw)
    root = mime._parse(raw)
    base = summary(info, parts)
    env = envelope(parts.envelope) if parts is not None else envelope("")
    headers = []
    for name, value, start, _end in root.fields:
        if name is None:
            continue
        original = raw[start : start + len(name)]  # the name as written
        headers.append({"name": clean(_header_text(original)), "value": _decoded(value) or ""})
    leaves = list(_leaves(root, ""))
    text_leaf = next((leaf for leaf in leaves if _is_body(leaf, _TEXT)), None)
    html_leaf = next((leaf for leaf in leaves if _is_body(leaf, _HTML)), None)
    text = clean(mime._decoded_body(raw, text_leaf.entity)) if text_leaf else None
    html = (
        nh3.clean(clean(mime._decoded_body(raw, html_leaf.entity)), url_schemes=_URL_SCHEMES)
        if html_leaf
        else None
    )
    attachments = [
        {
            "part": leaf.part,
            "content_type": clean(_content_type(leaf.entity)),
            "filename": _filename(leaf.entity),
            "size": leaf.entity.end - leaf.entity.body_start,
            "disposition": _disposition(leaf.entity),
            "content_id": _decoded(leaf.entity.first(b"content-id")),
        }
        for leaf in leaves
        if leaf is not text_leaf and leaf is not html_leaf
    ]
    return {
        **base,
        "folder": folder,
        "sender": env.addresses["sender"],
        "reply_to": env.addresses["reply_to"],
        "bcc": env.addresses["bcc"],
        "message_id": env.message_id,
        "in_reply_to": env.in_reply_to,
        "headers": headers,
        "text": text,
        "html": html,
        "attachments": attachments,
        "has_attachments": base["has_attachments"] or bool(attachments),
    }


# -- one body part ---------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """A body part's content, transfer encoding undone."""

    content: bytes
    media_type: str  # safe to put in a Content-Type header
    filename: str | None


def _transfer_decoded(data: bytes, encoding: bytes) -> bytes:
    if encoding == b"base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone sextet carries no octet
        try:
            return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            return data
    if encoding == b"quoted-printable":
        return binascii.a2b_qp(data)
    return data


def part(raw: bytes, number: str) -> Part | None:
    """The leaf part `number` ("2", "1.3") of the message, or None when there is none
    (or it is a multipart)."""
    raw = bytes(raw)
    root = mime._parse(raw)
    numbers = [int(n) for n in number.split(".")]
    e = mime._resolve(root, numbers)
    if e is None or e.kind == mime._MULTIPART:
        return None
    encoding = e.first(b"content-transfer-encoding")
    encoding = mime._token_value(encoding).lower() if encoding is not None else b""
    content = _transfer_decoded(raw[e.body_start : e.end], encoding)
    ctype, subtype = e.ctype.lower(), e.subtype.lower()
    if _TOKEN.fullmatch(ctype) and _TOKEN.fullmatch(subtype):
        media_type = f"{ctype.decode()}/{subtype.decode()}"
    else:
        media_type = "application/octet-stream"
    charset = mime._param(e.params, b"charset")
    if ctype == b"text" and charset is not None and _TOKEN.fullmatch(charset):
        media_type += f"; charset={charset.decode().lower()}"
    return Part(content, media_type, _filename(e))
