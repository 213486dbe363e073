"""What IMAP BINARY (RFC 3516) and URLAUTH=BINARY (RFC 5524) need from a message: a
section with its Content-Transfer-Encoding removed, its decoded size, the
BODYPARTSTRUCTURE of a section, and the conversion of a binary APPEND.

- `binary_section(raw, part)`: `BINARY[part]`. A leaf part is its body decoded
  (base64, quoted-printable; 7bit, 8bit and binary as they are). A message or a
  multipart (the whole message for `()`) keeps its structure with every leaf inside
  decoded and its Content-Transfer-Encoding field replaced by `binary`, as Dovecot does.
  An encoding this module can't decode raises `UnknownEncoding` (the session answers
  `NO [UNKNOWN-CTE]`); a part that doesn't exist is empty.
- `bodypart_structure(raw, part)`: the extensible BODYSTRUCTURE of one section (what
  URLFETCH's BODYPARTSTRUCTURE returns), None when there is no such part.
- `encode_binary_parts(raw)`: what APPEND stores for a message sent as a literal8 (RFC
  3516 section 4.4): every leaf part declared `Content-Transfer-Encoding: binary`, or
  holding a NUL without an encoding that could carry it, is re-encoded as base64
  (76-column lines), so that BODY[] never hands a NUL or a bare line break to a client
  that did not ask for BINARY, while BINARY[] gives back the bytes as sent.

Decoding is lenient, as mail readers are: base64 ignores every byte outside its
alphabet and stops at the padding; quoted-printable drops trailing blanks, treats "="
before the line end (blanks allowed between) as a soft line break and keeps an "="
not followed by two hex digits as it is.
"""

from __future__ import annotations

import binascii
import re

from casarray.errors import CasarrayError
from casarray.mailstore.mime.fetch import _resolve
from casarray.mailstore.mime.header_values import _token_value
from casarray.mailstore.mime.serialisation import _write_body
from casarray.mailstore.mime.structure import _MESSAGE, _MULTIPART, _bytes, _Entity, _parse

_AS_IS = frozenset({b"", b"7bit", b"8bit", b"binary"})
_DECODED = frozenset({b"base64", b"quoted-printable"})
_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_LINE = re.compile(rb"([^\n]*?)(\r?\n|\Z)")
_BINARY_CTE = b"Content-Transfer-Encoding: binary\r\n"
_BASE64_CTE = b"Content-Transfer-Encoding: base64\r\n"
_BASE64_LINE = 57  # input bytes per 76-column line


class UnknownEncoding(CasarrayError, ValueError):
    """A Content-Transfer-Encoding that can't be decoded (RFC 3516 UNKNOWN-CTE)."""


def _encoding(e: _Entity) -> bytes:
    value = e.first(b"content-transfer-encoding")
    return _token_value(value).lower() if value is not None else b""


def decode_base64(data: bytes) -> bytes:
    """Base64 with anything outside the alphabet skipped, up to the first padding."""
    end = data.find(b"=")
    text = _BASE64_JUNK.sub(b"", data if end < 0 else data[:end])
    text = text[: len(text) - len(text) % 4 if len(text) % 4 == 1 else len(text)]
    return binascii.a2b_base64(text + b"=" * (-len(text) % 4))


def decode_quoted_printable(data: bytes) -> bytes:
    """RFC 2045 section 6.7 quoted-printable, decoded leniently (see the docstring)."""
    out = bytearray()
    for m in _LINE.finditer(data):
        line, newline = m.group(1), m.group(2)
        if not line and not newline:
            break
        line = line.rstrip(b" \t\r")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out += _QP_ESCAPE.sub(lambda h: bytes((int(h.group(1), 16),)), line)
        if newline and not soft:
            out += b"\r\n"
    return bytes(out)


def _decoded_leaf(raw: bytes, e: _Entity) -> bytes:
    body = raw[e.body_start : e.end]
    encoding = _encoding(e)
    if encoding == b"base64":
        return decode_base64(body)
    if encoding == b"quoted-printable":
        return decode_quoted_printable(body)
    if encoding in _AS_IS:
        return body
    raise UnknownEncoding(f"Unknown Content-Transfer-Encoding {encoding.decode('latin-1')!r}")


def _header_with_encoding(raw: bytes, e: _Entity, field: bytes) -> bytes:
    """The entity's header with its Content-Transfer-Encoding field replaced by `field`
    at the end (before the blank line)."""
    out = bytearray()
    pos = e.start
    last = e.start
    for name, _value, start, end in e.fields:
        last = end
        if name == b"content-transfer-encoding":
            out += raw[pos:start]
            pos = end
    out += raw[pos:last]
    out += field
    out += raw[last : e.body_start]
    return bytes(out)


def _converted(raw: bytes, e: _Entity, with_header: bool, out: bytearray) -> None:
    """`e` with every leaf decoded (its header too when `with_header`)."""
    if e.kind == _MULTIPART or (e.kind == _MESSAGE and e.inner is not None):
        if with_header:
            out += raw[e.start : e.body_start]
        pos = e.body_start
        children = e.children if e.kind == _MULTIPART else [e.inner]
        for child in children:
            assert child is not None
            out += raw[pos : child.start]
            _converted(raw, child, True, out)
            pos = child.end
        out += raw[pos : e.end]
        return
    encoding = _encoding(e)
    if with_header:
        converted = encoding in _DECODED
        out += (
            _header_with_encoding(raw, e, _BINARY_CTE) if converted else raw[e.start : e.body_start]
        )
    out += _decoded_leaf(raw, e)


def _find(raw: bytes, part: tuple[int, ...]) -> _Entity | None:
    root = _parse(raw)
    return root if not part else _resolve(root, list(part))


def binary_section(raw: bytes, part: tuple[int, ...]) -> bytes:
    """`BINARY[part]` (`()` for the whole message); raises UnknownEncoding."""
    raw = _bytes(raw)
    e = _find(raw, part)
    if e is None:
        return b""
    out = bytearray()
    if not part:
        _converted(raw, e, True, out)
    elif e.kind == _MESSAGE and e.inner is not None:
        _converted(raw, e.inner, True, out)
    else:
        _converted(raw, e, False, out)
    return bytes(out)


def bodypart_structure(raw: bytes, part: tuple[int, ...], binary: bool = False) -> bytes | None:
    """The extensible BODYSTRUCTURE of one section, in IMAP syntax; with `binary`, the
    sizes and line counts are those of the decoded parts (as Dovecot answers URLFETCH's
    BODYPARTSTRUCTURE beside BINARY). Raises UnknownEncoding with `binary` only."""
    raw = _bytes(raw)
    e = _find(raw, part)
    if e is None:
        return None

    def decoded_sizes(entity: _Entity) -> tuple[int, int]:
        out = bytearray()
        if entity.kind == _MESSAGE and entity.inner is not None:
            _converted(raw, entity.inner, True, out)
        else:
            _converted(raw, entity, False, out)
        return len(out), out.count(b"\n")

    out: list[bytes] = []
    _write_body(raw, e, True, out, decoded_sizes if binary else None)
    return b"".join(out)


def _base64_lines(data: bytes) -> bytes:
    return b"".join(
        binascii.b2a_base64(data[i : i + _BASE64_LINE], newline=False) + b"\r\n"
        for i in range(0, len(data), _BASE64_LINE)
    )


def _encode_leaves(raw: bytes, e: _Entity, out: bytearray) -> None:
    if e.kind == _MULTIPART or (e.kind == _MESSAGE and e.inner is not None):
        out += raw[e.start : e.body_start]
        pos = e.body_start
        for child in e.children if e.kind == _MULTIPART else [e.inner]:
            assert child is not None
            out += raw[pos : child.start]
            _encode_leaves(raw, child, out)
            pos = child.end
        out += raw[pos : e.end]
        return
    encoding = _encoding(e)
    body = raw[e.body_start : e.end]
    if encoding != b"binary" and not (encoding in _AS_IS and b"\x00" in body):
        out += raw[e.start : e.end]
        return
    out += _header_with_encoding(raw, e, _BASE64_CTE)
    encoded = _base64_lines(body)
    # inside a multipart the line break before the delimiter is the original's
    out += encoded if e.end >= len(raw) else encoded[:-2]


def encode_binary_parts(raw: bytes) -> bytes:
    """The message with its `binary` leaf parts as base64 (for an APPEND of a literal8)."""
    raw = _bytes(raw)
    root = _parse(raw)
    out = bytearray()
    _encode_leaves(raw, root, out)
    out += raw[root.end :]
    return bytes(out)
