"""Messages as the JSON API shows them: summaries from the cached ENVELOPE and
BODYSTRUCTURE (no message is read to list a folder), and the full view and body parts
from the raw bytes.

Everything MIME comes from `casarray.mailstore.mime`, the parser the IMAP server
uses, so part numbers, sizes and decoded text agree with what an IMAP client fetches:
`message_parts`, `message_part`, `part_text` and `decoded_part` for the message,
`decoded_headers` for its header, `read_envelope` and `bodystructure_parts` for the
cached ENVELOPE and BODYSTRUCTURE.

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

import datetime
import email.utils
import re
from dataclasses import dataclass
from typing import Any

import nh3

from casarray.mailstore import mime
from casarray.mailstore.interface import CachedParts, MessageInfo

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
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


def _decoded(value: str | None) -> str | None:
    """A header value RFC 2047-decoded."""
    if value is None:
        return None
    return clean(mime.decoded_header(value))


def _iso(value: datetime.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.isoformat()


def _date(value: str | None) -> str | None:
    """The Date header as ISO 8601, or None when it doesn't parse."""
    if not value:
        return None
    try:
        return _iso(email.utils.parsedate_to_datetime(value))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


# -- the cached ENVELOPE and BODYSTRUCTURE ----------------------------------------------


def _addresses(addresses: tuple[mime.Address, ...]) -> list[dict[str, Any]]:
    """ENVELOPE addresses as {name, address} (group markers are left out)."""
    return [{"name": a.name, "address": a.address} for a in addresses]


def _has_attachments(parts: list[mime.MessagePart]) -> bool:
    """Whether a leaf part is marked attachment, has a file name, or is a message."""
    return any(
        p.is_attachment or p.content_type == "message/rfc822" for p in parts if not p.is_multipart
    )


def summary(info: MessageInfo, parts: CachedParts | None) -> dict[str, Any]:
    """A message of a folder listing (a MessageSummary)."""
    env = mime.read_envelope(parts.envelope if parts is not None else "")
    structure = mime.bodystructure_parts(parts.bodystructure) if parts is not None else []
    return {
        "uid": info.uid,
        "flags": sorted(info.flags),
        "size": info.size,
        "internal_date": _iso(info.internal_date),
        "date": _date(env.date),
        "subject": env.subject,
        "from": _addresses(env.addresses["from"]),
        "to": _addresses(env.addresses["to"]),
        "cc": _addresses(env.addresses["cc"]),
        "has_attachments": _has_attachments(structure),
    }


# -- the parsed message -------------------------------------------------------------------


def _is_body(part: mime.MessagePart, content_type: str) -> bool:
    return not part.is_multipart and part.content_type == content_type and not part.is_attachment


def view(raw: bytes, info: MessageInfo, folder: str, parts: CachedParts | None) -> dict[str, Any]:
    """The whole message (a Message)."""
    raw = bytes(raw)
    base = summary(info, parts)
    env = mime.read_envelope(parts.envelope if parts is not None else "")
    headers = [{"name": name, "value": value} for name, value in mime.decoded_headers(raw)]
    leaves = [p for p in mime.message_parts(raw) if not p.is_multipart]
    text_part = next((p for p in leaves if _is_body(p, "text/plain")), None)
    html_part = next((p for p in leaves if _is_body(p, "text/html")), None)
    text = mime.part_text(raw, text_part.number) if text_part else None
    html = (
        nh3.clean(mime.part_text(raw, html_part.number), url_schemes=_URL_SCHEMES)
        if html_part
        else None
    )
    attachments = [
        {
            "part": p.number,
            "content_type": p.content_type,
            "filename": p.filename,
            "size": p.size,
            "disposition": p.disposition,
            "content_id": _decoded(p.content_id),
        }
        for p in leaves
        if p is not text_part and p is not html_part
    ]
    return {
        **base,
        "folder": folder,
        "sender": _addresses(env.addresses["sender"]),
        "reply_to": _addresses(env.addresses["reply-to"]),
        "bcc": _addresses(env.addresses["bcc"]),
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


def part(raw: bytes, number: str) -> Part | None:
    """The leaf part `number` ("2", "1.3") of the message, or None when there is none
    (or it is a multipart)."""
    try:
        found = mime.message_part(raw, number)
    except KeyError:
        return None
    if found.is_multipart:
        return None
    ctype, _, subtype = found.content_type.partition("/")
    if _TOKEN.fullmatch(ctype) and _TOKEN.fullmatch(subtype):
        media_type = found.content_type
    else:
        media_type = "application/octet-stream"
    charset = found.charset
    if ctype == "text" and charset is not None and _TOKEN.fullmatch(charset):
        media_type += f"; charset={charset.lower()}"
    return Part(mime.decoded_part(raw, number), media_type, found.filename)
