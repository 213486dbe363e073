"""What FETCH needs: the cached parts of a message, and the bytes of a `BODY[section]`.

`cached_parts(raw)` is computed once, at APPEND, and kept beside the message; FETCH
sends those strings as they are (`to_wire`). `fetch_section` cuts the bytes of a
section out of the raw message by the offsets `structure` found, so what a client
fetches is always exactly what the sizes in BODYSTRUCTURE count.
"""

from __future__ import annotations

import re
from functools import lru_cache

from casarray.mailstore.interface import CachedParts
from casarray.mailstore.mime.serialisation import _write_body, _write_envelope
from casarray.mailstore.mime.structure import (
    _MESSAGE,
    _MULTIPART,
    _bytes,
    _Entity,
    _parse,
    _parse_header,
)


def to_wire(text: str) -> bytes:
    """The IMAP bytes of a `CachedParts` string (they may hold 8-bit literals)."""
    return text.encode("utf-8", "surrogateescape")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def normalize_newlines(raw: bytes) -> bytes:
    """Bare LF line ends as CRLF (what an IMAP server stores for a bare-LF APPEND)."""
    lines = raw.count(b"\n")
    if lines == raw.count(b"\r\n"):
        return raw
    # every LF as CRLF, those already after a CR included (the same bytes as a regex
    # on LFs without a CR before them, at a fraction of its cost)
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def cached_parts(raw: bytes) -> CachedParts:
    """ENVELOPE, BODYSTRUCTURE and BODY of a message, each in IMAP syntax."""
    raw = _bytes(raw)
    root = _parse(raw)
    envelope: list[bytes] = []
    _write_envelope(root, envelope)
    structure: list[bytes] = []
    _write_body(raw, root, True, structure)
    body: list[bytes] = []
    _write_body(raw, root, False, body)
    return CachedParts(
        envelope=_text(b"".join(envelope)),
        bodystructure=_text(b"".join(structure)),
        body=_text(b"".join(body)),
    )


_PART_NUMBER = re.compile(r"[0-9]+", re.ASCII)
_ASTRING_ATOM = re.compile(r'[^\s()"{\\\x00-\x1f\x7f]+')


def _parse_section(section: str) -> tuple[list[int], str, frozenset[bytes]]:
    """(part numbers, "" | HEADER | TEXT | MIME | FIELDS | FIELDS.NOT, field names)."""
    if not isinstance(section, str):
        raise ValueError(f"section spec must be a string, not {type(section).__name__}")
    numbers, kind, names = _parsed_section(section)
    return list(numbers), kind, names


@lru_cache(maxsize=64)
def _parsed_section(section: str) -> tuple[tuple[int, ...], str, frozenset[bytes]]:
    """`_parse_section`, remembered: a FETCH asks the same section of every message."""
    rest = section.strip()
    numbers: list[int] = []
    while token := _PART_NUMBER.match(rest):
        digits = token.group()
        if digits[0] == "0":
            raise ValueError(f"bad section {section!r}: part numbers start at 1")
        numbers.append(int(digits) if len(digits) <= 10 else 1 << 40)
        rest = rest[token.end() :]
        if not rest:
            break
        if rest[0] != "." or len(rest) == 1:
            raise ValueError(f"bad section {section!r}: expected '.' after a part number")
        rest = rest[1:]
    upper = rest.upper()
    if upper in ("", "HEADER", "TEXT", "MIME"):
        if upper == "MIME" and not numbers:
            raise ValueError(f"bad section {section!r}: MIME needs a part number")
        return tuple(numbers), upper, frozenset()
    for kind in ("HEADER.FIELDS.NOT", "HEADER.FIELDS"):
        if upper.startswith(kind):
            names = _parse_header_list(section, rest[len(kind) :])
            return tuple(numbers), kind[7:], frozenset(names)
    raise ValueError(
        f"bad section {section!r}: expected HEADER, HEADER.FIELDS (...), "
        "HEADER.FIELDS.NOT (...), TEXT, MIME or a part number"
    )


def _parse_header_list(section: str, text: str) -> list[bytes]:
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        raise ValueError(f"bad section {section!r}: expected a parenthesised list of fields")
    inner = text[1:-1].strip()
    names: list[bytes] = []
    i = 0
    while i < len(inner):
        if inner[i].isspace():
            i += 1
            continue
        if inner[i] == '"':
            j = i + 1
            value = []
            while j < len(inner) and inner[j] != '"':
                if inner[j] == "\\" and j + 1 < len(inner):
                    j += 1
                value.append(inner[j])
                j += 1
            if j >= len(inner):
                raise ValueError(f"bad section {section!r}: unterminated quoted field name")
            name = "".join(value)
            i = j + 1
        else:
            m = _ASTRING_ATOM.match(inner, i)
            if m is None:
                raise ValueError(f"bad section {section!r}: bad field name at {inner[i:]!r}")
            name = m.group()
            i = m.end()
        if not name or ":" in name:
            raise ValueError(f"bad section {section!r}: bad field name {name!r}")
        names.append(name.encode("utf-8", "surrogateescape").lower())
    if not names:
        raise ValueError(f"bad section {section!r}: the field list is empty")
    return names


def _resolve(root: _Entity, numbers: list[int]) -> _Entity | None:
    entity: _Entity | None = None
    message: _Entity | None = root  # set while we stand at a message's top
    for k in numbers:
        if message is None:
            assert entity is not None
            if entity.kind == _MESSAGE and entity.inner is not None:
                message = entity.inner
            elif entity.kind != _MULTIPART:
                return None
        if message is not None:
            entity, message = message, None
            if entity.kind != _MULTIPART:
                if k != 1:
                    return None
                continue
        assert entity is not None
        if k > len(entity.children):
            return None
        entity = entity.children[k - 1]
    return entity


def _header_fields(raw: bytes, e: _Entity, wanted: frozenset[bytes], exclude: bool) -> bytes:
    header = raw[e.start : e.body_start]
    crlf = b"\n" if b"\n" in header and b"\r\n" not in header else b"\r\n"
    out = bytearray()
    for name, _, start, end in e.fields:
        if (name in wanted) == exclude:
            continue
        line = raw[start:end]
        if not exclude and not line.endswith(b"\n"):
            line += crlf
        out += line
    if exclude:
        last_end = e.fields[-1][3] if e.fields else e.start
        out += raw[last_end : e.body_start]
    else:
        out += crlf
    return bytes(out)


def fetch_section(raw: bytes, section: str) -> bytes:
    """The bytes of `BODY[section]` ("" for a part that does not exist).

    `section` is what stands between the brackets, in any case: "", "HEADER", "TEXT",
    "HEADER.FIELDS (DATE FROM)", "HEADER.FIELDS.NOT (X-A)", "1", "1.2", "1.2.MIME",
    "1.2.HEADER", "1.2.TEXT", "2.HEADER.FIELDS (SUBJECT)". Raises ValueError when the
    spec is malformed.
    """
    raw = _bytes(raw)
    numbers, kind, names = _parse_section(section)
    if not numbers:
        if kind == "":
            return raw
        target: _Entity | None = _parse_header(raw)
    else:
        entity = _resolve(_parse(raw), numbers)
        if entity is None:
            return b""
        if kind == "":
            return raw[entity.body_start : entity.end]
        if kind == "MIME":
            return raw[entity.start : entity.body_start]
        target = entity.inner if entity.kind == _MESSAGE else None
    if target is None:
        return b""
    if kind == "HEADER":
        return raw[target.start : target.body_start]
    if kind == "TEXT":
        return raw[target.body_start : target.end]
    return _header_fields(raw, target, names, exclude=kind == "FIELDS.NOT")
