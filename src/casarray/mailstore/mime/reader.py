"""A message as a reader sees it (web mail, JSON API): its parts in IMAP numbering,
one part's decoded body or text, its header fields decoded, its cached ENVELOPE read
back.

Strings here are for display: header bytes are read as UTF-8, else Latin-1; RFC 2047
encoded words and RFC 2231 parameters are decoded; no lone surrogates, no NUL. The
parts come from the same parse as the BODYSTRUCTURE an IMAP client sees (or from that
cached BODYSTRUCTURE, `bodystructure_parts`), so web mail and IMAP number and describe
them alike.
"""

from __future__ import annotations

import dataclasses
import re
import types
import urllib.parse
from collections.abc import Mapping

from casarray.mailstore.mime.fetch import _resolve
from casarray.mailstore.mime.header_values import _parse_params, _skip_cfws, _token, _token_value
from casarray.mailstore.mime.search import (
    ENVELOPE_FIELDS,
    _codec,
    _decode,
    _encoding,
    _header_text,
    _imap_values,
    _transfer_decoded,
    decoded_header,
)
from casarray.mailstore.mime.serialisation import _one_line
from casarray.mailstore.mime.structure import (
    _MESSAGE,
    _MULTIPART,
    _PLAIN,
    _TEXT,
    _US_ASCII_PARAM,
    _bytes,
    _Entity,
    _parse,
)

_SURROGATE = re.compile("[\ud800-\udfff]")
_PART_NUMBER_TEXT = re.compile(r"[1-9][0-9]*(?:\.[1-9][0-9]*)*", re.ASCII)


def _clean(text: str) -> str:
    """`text` with lone surrogates (from a broken charset) as U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def _reader_text(b: bytes) -> str:
    """A header string as text: UTF-8, else Latin-1; NUL as U+FFFD (as IMAP sends it)."""
    if b"\0" in b:
        b = b.replace(b"\0", "\ufffd".encode())
    return _header_text(b)


def transfer_decode(data: bytes, encoding: str) -> bytes:
    """`data` with its Content-Transfer-Encoding undone: base64 (non-alphabet bytes
    skipped) and quoted-printable; 7bit, 8bit, binary and unknown ones as they are."""
    return _transfer_decoded(data, encoding.strip().lower().encode("ascii", "replace"))


def charset_decode(data: bytes, charset: str | None) -> str:
    """`data` as text in a MIME charset. An unknown or unusable charset (or none, or
    us-ascii) is read as UTF-8; bytes that do not decode become U+FFFD."""
    return _clean(_decode(data, _codec(charset or "")))


def _rfc2231(value: bytes) -> str:
    """An extended parameter value, charset'language'percent-encoded, decoded (without
    the charset'language' prefix, as UTF-8)."""
    charset, _, rest = value.partition(b"'")
    _language, quote, encoded = rest.partition(b"'")
    if not quote:
        charset, encoded = b"", value
    data = urllib.parse.unquote_to_bytes(encoded)
    return charset_decode(data, charset.decode("ascii", "replace"))


def _reader_params(params: list[tuple[bytes, bytes]]) -> Mapping[str, str]:
    """Parameters by lower-case name, values decoded: an extended one (`name*`, RFC
    2231) wins over a plain one (RFC 2047 words decoded); else the first one wins."""
    out: dict[str, str] = {}
    extended: set[str] = set()
    for key, value in params:
        name = _reader_text(key).lower()
        if len(name) > 1 and name.endswith("*"):
            name = name[:-1]
            if name not in extended:
                extended.add(name)
                out[name] = _rfc2231(value)
        elif name not in out:
            out[name] = _clean(decoded_header(_reader_text(value)))
    return types.MappingProxyType(out)


@dataclasses.dataclass(frozen=True)
class MessagePart:
    """One part of a message, as its BODYSTRUCTURE describes it, decoded for people.

    A multipart's entry has only its type, parameters and disposition (`content_id`
    None, `encoding` "7bit", `size` 0: IMAP tells no more of a multipart)."""

    number: str  # IMAP part number ("1", "1.2"); "" for the message's own multipart
    content_type: str  # lower case, "text/plain"
    params: Mapping[str, str] = dataclasses.field(hash=False)  # Content-Type parameters, decoded
    disposition: str | None  # lower case, "attachment", "inline"
    disposition_params: Mapping[str, str] = dataclasses.field(hash=False)
    content_id: str | None  # as sent, angle brackets included
    encoding: str  # Content-Transfer-Encoding, lower case, "7bit" when absent
    size: int  # octets of the body as stored (transfer-encoded)

    @property
    def is_multipart(self) -> bool:
        return self.content_type.startswith("multipart/")

    @property
    def charset(self) -> str | None:
        """The charset parameter (us-ascii for a text part without one, RFC 2045)."""
        return self.params.get("charset")

    @property
    def filename(self) -> str | None:
        """The Content-Disposition filename, else the Content-Type name (decoded)."""
        return self.disposition_params.get("filename") or self.params.get("name") or None

    @property
    def is_attachment(self) -> bool:
        """Marked as an attachment or named as a file."""
        return self.disposition == "attachment" or self.filename is not None


def _reader_part(
    number: str,
    ctype: bytes,
    subtype: bytes,
    params: list[tuple[bytes, bytes]],
    content_id: bytes | None,
    encoding: bytes,
    size: int,
    disposition: bytes | None,
    disposition_params: list[tuple[bytes, bytes]],
) -> MessagePart:
    return MessagePart(
        number=number,
        content_type=f"{_reader_text(ctype)}/{_reader_text(subtype)}".lower(),
        params=_reader_params(params),
        disposition=None if disposition is None else _reader_text(disposition).lower() or None,
        disposition_params=_reader_params(disposition_params),
        content_id=None if content_id is None else _reader_text(content_id),
        encoding=_reader_text(encoding).lower() or "7bit",
        size=size,
    )


def _empty_part(number: str) -> MessagePart:
    """The empty text/plain part IMAP reports for a multipart without parts."""
    return _reader_part(number, _TEXT, _PLAIN, [_US_ASCII_PARAM], None, b"7bit", 0, None, [])


def _entity_part(e: _Entity, number: str) -> MessagePart:
    """The `MessagePart` of an entity: what `_write_body` says of it, decoded."""
    dsp = e.first(b"content-disposition")
    kind: bytes | None = None
    dparams: list[tuple[bytes, bytes]] = []
    if dsp is not None:
        i, kind = _token(dsp, _skip_cfws(dsp, 0))
        dparams = _parse_params(dsp, _skip_cfws(dsp, i))
    if e.kind == _MULTIPART:
        return _reader_part(number, b"multipart", e.subtype, e.params, None, b"", 0, kind, dparams)
    params = e.params
    if e.ctype.lower() == _TEXT and not any(k.lower() == b"charset" for k, _ in params):
        params = [*params, _US_ASCII_PARAM]
    content_id = e.first(b"content-id")
    encoding = e.first(b"content-transfer-encoding")
    return _reader_part(
        number,
        e.ctype,
        e.subtype,
        params,
        None if content_id is None else _one_line(content_id),
        _token_value(encoding) if encoding is not None else b"",
        e.end - e.body_start,
        kind,
        dparams,
    )


def message_parts(raw: bytes) -> list[MessagePart]:
    """The parts of a message, depth first, each multipart before its parts, numbered
    as IMAP (and `fetch_section`) numbers them. A single-part message has one part,
    "1"; a multipart message starts with its own multipart, numbered "". An attached
    message (message/rfc822) is one part: its own parts are not listed (`message_part`
    finds them). A multipart without parts has one empty text/plain part, as in IMAP."""
    raw = _bytes(raw)
    out: list[MessagePart] = []
    stack: list[tuple[_Entity, str]] = [(_parse(raw), "")]
    while stack:
        e, number = stack.pop()
        if e.kind != _MULTIPART:
            out.append(_entity_part(e, number or "1"))
            continue
        out.append(_entity_part(e, number))
        prefix = f"{number}." if number else ""
        if not e.children:
            out.append(_empty_part(f"{prefix}1"))
        children = [(child, f"{prefix}{k}") for k, child in enumerate(e.children, 1)]
        stack.extend(reversed(children))  # depth first, in order
    return out


def _bodystructure_pairs(items: list[object], i: int) -> list[tuple[bytes, bytes]]:
    value = items[i] if len(items) > i else None
    if not isinstance(value, list):
        return []
    flat = [v if isinstance(v, bytes) else b"" for v in value]
    return list(zip(flat[::2], flat[1::2], strict=False))


def _bodystructure_bytes(items: list[object], i: int) -> bytes | None:
    value = items[i] if len(items) > i else None
    return value if isinstance(value, bytes) else None


def _bodystructure_disposition(
    items: list[object], i: int
) -> tuple[bytes | None, list[tuple[bytes, bytes]]]:
    value = items[i] if len(items) > i else None
    if not isinstance(value, list) or not value:
        return None, []
    return _bodystructure_bytes(value, 0) or b"", _bodystructure_pairs(value, 1)


def bodystructure_parts(bodystructure: str) -> list[MessagePart]:
    """`message_parts` of a message from its cached BODYSTRUCTURE (see `cached_parts`),
    without reading the message: the same list, as both come from one parse."""
    values = _imap_values(bodystructure)
    out: list[MessagePart] = []
    if not values or not isinstance(values[0], list) or not values[0]:
        return out
    stack: list[tuple[list[object], str]] = [(values[0], "")]
    while stack:
        items, number = stack.pop()
        if isinstance(items[0], list):
            # (part part ... subtype params disposition language location)
            split = next((k for k, v in enumerate(items) if not isinstance(v, list)), len(items))
            subtype = _bodystructure_bytes(items, split) or b"mixed"
            kind, dparams = _bodystructure_disposition(items, split + 2)
            params = _bodystructure_pairs(items, split + 1)
            out.append(
                _reader_part(number, b"multipart", subtype, params, None, b"", 0, kind, dparams)
            )
            prefix = f"{number}." if number else ""
            children = [
                (child, f"{prefix}{k}")
                for k, child in enumerate(
                    (c for c in items[:split] if isinstance(c, list) and c), 1
                )
            ]
            stack.extend(reversed(children))
            continue
        ctype = _bodystructure_bytes(items, 0) or b""
        subtype = _bodystructure_bytes(items, 1) or b""
        # body-fld-dsp follows md5, which follows the basic fields (7 of them) and, for
        # text, the line count, for message/rfc822 envelope, body and line count.
        if ctype.lower() == _TEXT:
            md5 = 8
        elif (ctype.lower(), subtype.lower()) == (b"message", b"rfc822"):
            md5 = 10
        else:
            md5 = 7
        kind, dparams = _bodystructure_disposition(items, md5 + 1)
        size = _bodystructure_bytes(items, 6) or b""
        out.append(
            _reader_part(
                number or "1",
                ctype,
                subtype,
                _bodystructure_pairs(items, 2),
                _bodystructure_bytes(items, 3),
                _bodystructure_bytes(items, 5) or b"",
                int(size) if size.isdigit() else 0,
                kind,
                dparams,
            )
        )
    return out


def _find_part(raw: bytes, part: str) -> tuple[MessagePart, _Entity | None]:
    """The part numbered `part` and its entity (None: the empty stand-in part of a
    multipart without parts); KeyError when there is none."""
    root = _parse(raw)
    if part == "" and root.kind == _MULTIPART:
        return _entity_part(root, ""), root
    if not _PART_NUMBER_TEXT.fullmatch(part):
        raise KeyError(part)
    numbers = [int(n) for n in part.split(".")]
    e = _resolve(root, numbers)
    if e is not None:
        return _entity_part(e, part), e
    parent = root if len(numbers) == 1 else _resolve(root, numbers[:-1])
    if parent is not None and parent.kind == _MESSAGE and len(numbers) > 1:
        parent = parent.inner
    if (
        parent is not None
        and parent.kind == _MULTIPART
        and not parent.children
        and numbers[-1] == 1
    ):
        return _empty_part(part), None
    raise KeyError(part)


def message_part(raw: bytes, part: str) -> MessagePart:
    """The part numbered `part` ("2", "1.3"): any one `message_parts` lists, or one
    inside an attached message ("3.1"). Raises KeyError when there is none."""
    return _find_part(_bytes(raw), part)[0]


def decoded_part(raw: bytes, part: str) -> bytes:
    """The body of part `part` (see `message_part`) with its transfer encoding undone.
    An attached message is the whole message; a multipart its parts, as sent. Raises
    KeyError when there is no such part."""
    raw = _bytes(raw)
    _, e = _find_part(raw, part)
    return b"" if e is None else _transfer_decoded(raw[e.body_start : e.end], _encoding(e))


def part_text(raw: bytes, part: str) -> str:
    """The text of part `part`: transfer encoding undone, then decoded in its charset
    (see `charset_decode` for unknown and broken ones). Raises KeyError when there is
    no such part."""
    raw = _bytes(raw)
    found, e = _find_part(raw, part)
    if e is None:
        return ""
    return charset_decode(_transfer_decoded(raw[e.body_start : e.end], _encoding(e)), found.charset)


def decoded_headers(raw: bytes) -> list[tuple[str, str]]:
    """The message's header fields in order: (name as written, value unfolded and RFC
    2047 decoded)."""
    raw = _bytes(raw)
    return [
        (
            _clean(_header_text(raw[start : start + len(name)])),
            _clean(decoded_header(_header_text(value))),
        )
        for name, value, start, _ in _parse(raw).fields
        if name is not None
    ]


@dataclasses.dataclass(frozen=True)
class Address:
    """One address of an ENVELOPE (group syntax left out)."""

    name: str | None  # the display name, decoded
    mailbox: str
    host: str  # "" when the address has none

    @property
    def address(self) -> str:
        """mailbox@host (the mailbox alone without a host)."""
        return f"{self.mailbox}@{self.host}" if self.host else self.mailbox


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A cached ENVELOPE read back, strings decoded for people."""

    date: str | None  # the Date header, as written
    subject: str | None
    # "from", "sender", "reply-to", "to", "cc", "bcc" (RFC 3501: an absent Sender or
    # Reply-To is the From)
    addresses: Mapping[str, tuple[Address, ...]] = dataclasses.field(hash=False)
    in_reply_to: str | None
    message_id: str | None


def _envelope_string(value: object, decode: bool = True) -> str | None:
    if not isinstance(value, bytes):
        return None
    text = _header_text(value)
    return _clean(decoded_header(text) if decode else text)


def read_envelope(envelope: str) -> Envelope:
    """A cached ENVELOPE (as `cached_parts` writes it), read back: the subject, display
    names, In-Reply-To and Message-ID RFC 2047 decoded; group markers left out."""
    values = _imap_values(envelope)
    items = values[0] if values and isinstance(values[0], list) else []
    items = [*items, *([None] * (10 - len(items)))]
    addresses: dict[str, tuple[Address, ...]] = {}
    for name, value in zip(ENVELOPE_FIELDS[2:], items[2:8], strict=True):
        found: list[Address] = []
        for item in value if isinstance(value, list) else []:
            if not isinstance(item, list) or len(item) < 4 or item[3] is None:
                continue  # the start or the end of a group
            display, _route, mailbox, host = item[:4]
            found.append(
                Address(
                    name=_envelope_string(display),
                    mailbox=_envelope_string(mailbox, decode=False) or "",
                    host=_envelope_string(host, decode=False) or "",
                )
            )
        addresses[name] = tuple(found)
    return Envelope(
        date=_envelope_string(items[0], decode=False),
        subject=_envelope_string(items[1]),
        addresses=types.MappingProxyType(addresses),
        in_reply_to=_envelope_string(items[8]),
        message_id=_envelope_string(items[9]),
    )
