"""What SEARCH needs: header values, RFC 2047 decoding, the decoded text of a message,
its Date, and the fields of a cached ENVELOPE.

SEARCH compares what people read, so here (unlike in FETCH) encoded words, transfer
encodings and charsets are decoded; what cannot be decoded becomes U+FFFD rather than
an error. SEARCH FROM/TO/CC/BCC/SUBJECT read the ENVELOPE cached at APPEND
(`envelope_fields`), so they don't parse the message again.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import datetime
import email.utils
import functools
import re
import types
from collections.abc import Iterator, Mapping

from casarray.mailstore.mime.fetch import _text, to_wire
from casarray.mailstore.mime.header_values import _param, _token_value
from casarray.mailstore.mime.structure import _MESSAGE, _MULTIPART, _TEXT, _bytes, _Entity, _parse


def _header_text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def header_values(raw: bytes, name: str) -> list[str]:
    """The values of the message's header fields called `name` (any case), unfolded
    and not decoded, in order."""
    raw = _bytes(raw)
    key = name.strip().lower().encode("utf-8", "surrogateescape")
    return [_header_text(value) for field, value, _, _ in _parse(raw).fields if field == key]


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=")
_ONLY_BLANKS = re.compile(r"[ \t\r\n]*\Z")


def _codec(charset: str) -> str:
    """A Python text codec for a MIME charset name (UTF-8 for us-ascii and unknowns)."""
    charset = charset.split("*", 1)[0].strip().lower()  # RFC 2231 language suffix
    if charset in ("us-ascii", "ascii", ""):
        return "utf-8"
    try:
        info = codecs.lookup(charset)
    except (LookupError, ValueError):
        return "utf-8"
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def _decode_word(encoding: str, text: str) -> bytes:
    data = text.encode("ascii", "replace")
    if encoding in "Bb":
        data = data.rstrip(b"=")
        try:
            return base64.b64decode(data + b"=" * (-len(data) % 4))
        except (binascii.Error, ValueError):
            return b""
    return binascii.a2b_qp(data, header=True)


def decoded_header(value: str) -> str:
    """RFC 2047 decoding of a header value (white space between encoded words goes)."""
    if "=?" not in value:
        return value
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""
    last = 0

    def flush() -> None:
        if pending:
            out.append(_decode(b"".join(pending), pending_charset))
            pending.clear()

    for m in _ENCODED_WORD.finditer(value):
        between = value[last : m.start()]
        if not (pending and _ONLY_BLANKS.match(between)):
            flush()
            out.append(between)
        charset = _codec(m.group(1))
        if pending and charset != pending_charset:
            flush()
        pending_charset = charset
        pending.append(_decode_word(m.group(2), m.group(3)))
        last = m.end()
    flush()
    out.append(value[last:])
    return "".join(out)


def _decode(data: bytes, codec: str) -> str:
    """`data` decoded with `codec` (from `_codec`), undecodable bytes as U+FFFD; as UTF-8
    when the codec cannot decode with replacement (idna, punycode, undefined)."""
    try:
        return data.decode(codec, "replace")
    except (UnicodeError, LookupError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def _transfer_decoded(data: bytes, encoding: bytes) -> bytes:
    """`data` with the Content-Transfer-Encoding `encoding` (a lower-case token) undone:
    base64 (garbage skipped) and quoted-printable; anything else as it is."""
    if encoding == b"base64":
        cleaned = _NOT_BASE64.sub(b"", data)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone sextet carries no octet
        cleaned += b"=" * (-len(cleaned) % 4)
        with contextlib.suppress(binascii.Error, ValueError):
            return base64.b64decode(cleaned)
        return data
    if encoding == b"quoted-printable":
        return binascii.a2b_qp(data)
    return data


def _encoding(e: _Entity) -> bytes:
    """The entity's Content-Transfer-Encoding token, lower case (b"" when none)."""
    encoding = e.first(b"content-transfer-encoding")
    return _token_value(encoding).lower() if encoding is not None else b""


def _decoded_body(raw: bytes, e: _Entity) -> str:
    data = _transfer_decoded(raw[e.body_start : e.end], _encoding(e))
    charset = _param(e.params, b"charset")
    codec = _codec(charset.decode("ascii", "replace")) if charset else "utf-8"
    return _decode(data, codec)


def _texts(raw: bytes, e: _Entity, headers: bool) -> Iterator[str]:
    """The searchable texts of an entity: decoded header fields (if `headers`) and
    decoded text parts, encapsulated messages included."""
    if headers:
        for name, value, _, _ in e.fields:
            if name is not None:
                yield _header_text(name) + ": " + decoded_header(_header_text(value))
    if e.kind == _MULTIPART:
        for child in e.children:
            yield from _texts(raw, child, False)
    elif e.kind == _MESSAGE and e.inner is not None:
        yield from _texts(raw, e.inner, True)
    elif e.ctype.lower() == _TEXT:
        yield _decoded_body(raw, e)


def search_text(raw: bytes, needle: str, *, body_only: bool) -> bool:
    """SEARCH BODY (`body_only`) / TEXT: whether the decoded text of the message
    contains `needle`, ignoring case."""
    raw = _bytes(raw)
    wanted = needle.casefold()
    if not wanted:
        return True
    root = _parse(raw)
    return any(wanted in text.casefold() for text in _texts(raw, root, not body_only))


def sent_date(raw: bytes) -> datetime.date | None:
    """The date of the Date header, as written (time and zone disregarded, RFC 3501)."""
    raw = _bytes(raw)
    dates = [value for name, value, _, _ in _parse(raw).fields if name == b"date"]
    if not dates:
        return None
    parsed = email.utils.parsedate_tz(_header_text(dates[-1]))
    if parsed is None:
        return None
    try:
        return datetime.date(parsed[0], parsed[1], parsed[2])
    except (ValueError, OverflowError, TypeError):
        return None


# -- reading a cached ENVELOPE back (for SEARCH FROM/TO/CC/BCC/SUBJECT) ----------------

ENVELOPE_FIELDS = ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc")


_IMAP_TOKEN = re.compile(rb'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n|([^\s()"]+))', re.S)
_UNESCAPE = re.compile(rb"\\(.)", re.S)


def _imap_values(text: str) -> list[object]:
    """Parse an IMAP parenthesised value (as `cached_parts` writes it): lists, quoted
    strings, literals and NIL (None)."""
    data = to_wire(text)
    if b"{" not in data:
        return _imap_values_without_literals(data)
    stack: list[list[object]] = [[]]
    i, n = 0, len(data)
    match = _IMAP_TOKEN.match
    while i < n:
        m = match(data, i)
        if m is None:
            break
        i = m.end()
        opening, closing, quoted, literal, atom = m.groups()
        if opening:
            stack.append([])
        elif closing:
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
        elif quoted is not None:
            stack[-1].append(_UNESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
        elif literal is not None:
            size = int(literal)
            stack[-1].append(data[i : i + size])
            i += size
        elif atom is not None:
            stack[-1].append(None if atom.upper() == b"NIL" else atom)
    return stack[0]


_PLAIN_TOKEN = re.compile(rb'[()]|"(?:[^"\\]|\\.)*"|[^\s()"]+', re.S)


def _imap_values_without_literals(data: bytes) -> list[object]:
    """`_imap_values` for the common case of no literal: every token found in one pass
    (SORT parses every envelope of a folder the first time it sorts it)."""
    stack: list[list[object]] = [[]]
    top = stack[0]
    for token in _PLAIN_TOKEN.findall(data):
        first = token[0]
        if first == 0x28:  # (
            top = []
            stack.append(top)
        elif first == 0x29:  # )
            if len(stack) > 1:
                done = stack.pop()
                top = stack[-1]
                top.append(done)
        elif first == 0x22:  # "
            quoted = token[1:-1]
            top.append(_UNESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted)
        else:
            top.append(None if token == b"NIL" or token.upper() == b"NIL" else token)
    return stack[0]


def envelope_items(envelope: str) -> list[object]:
    """The ten items of a cached ENVELOPE as parsed values (strings as bytes, NIL as
    None, address lists as lists of four-item lists, group markers kept), for SORT and
    THREAD, which need the first address of a list as written and the Message-ID."""
    values = _imap_values(envelope)
    items = values[0] if values and isinstance(values[0], list) else []
    return [*items[:10], *([None] * (10 - len(items)))]


@functools.lru_cache(maxsize=8192)
def envelope_fields(envelope: str) -> Mapping[str, str]:
    """The searchable text of each ENVELOPE field, RFC 2047 decoded: the subject, and
    for address fields every address as `Display Name <mailbox@host>`. Cached (read-only
    result): a client repeating a SEARCH over its INBOX parses each envelope once."""
    values = _imap_values(envelope)
    items = values[0] if values and isinstance(values[0], list) else []
    fields: dict[str, str] = {}
    for name, value in zip(ENVELOPE_FIELDS, items, strict=False):
        if isinstance(value, list):
            parts = []
            for address in value:
                if not isinstance(address, list) or len(address) < 4:
                    continue
                display, _, mailbox, host = (
                    _text(v) if isinstance(v, bytes) else "" for v in address[:4]
                )
                where = f"{mailbox}@{host}" if host else mailbox
                if not where and not display:
                    continue  # the end of a group
                parts.append(f"{decoded_header(display)} <{where}>" if display else where)
            fields[name] = ", ".join(parts)
        elif isinstance(value, bytes):
            fields[name] = decoded_header(_text(value))
        else:
            fields[name] = ""
    return types.MappingProxyType(fields)
