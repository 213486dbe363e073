"""RFC 3501 message structure for IMAP, computed from the raw bytes of a message.

What it gives the rest of the mail store:

- `cached_parts(raw)`: the ENVELOPE, BODYSTRUCTURE (extensible) and BODY (basic) of a
  message, serialised in IMAP syntax, ready to be cached at APPEND and sent by FETCH.
- `fetch_section(raw, section)`: the bytes of a `BODY[section]` (whole message, HEADER,
  TEXT, HEADER.FIELDS[.NOT], part numbers, `n.MIME`, `n.HEADER`, `n.TEXT`, ...).
- `header_values`, `decoded_header`, `search_text`, `sent_date`, `envelope_fields`:
  what SEARCH needs.
- For readers (web mail, JSON API), strings decoded for people: `message_parts(raw)`,
  the parts as `MessagePart`s in IMAP numbering (`bodystructure_parts` reads the same
  from a cached BODYSTRUCTURE), `message_part`, `decoded_part` and `part_text` for one
  part, `transfer_decode` and `charset_decode` for bytes already fetched,
  `decoded_headers(raw)`, and `read_envelope` for a cached ENVELOPE.
- `to_wire(text)`: the bytes to send for a string of `CachedParts` (see below), and
  `normalize_newlines(raw)`: bare LF to CRLF, as an IMAP server stores a message.

Why the core is our own and not the stdlib `email` package: IMAP reports octet and line
counts of every body part and hands out exact byte ranges (`BODY[1.2]`, `BODY[1.MIME]`),
so the parser must know where each part starts and ends in the original bytes.
`email.parser` rebuilds a tree of objects, normalises line endings and whitespace,
decodes along the way and keeps no offsets, so sizes computed from it drift from what
the client fetches. It also decodes what IMAP must pass on as sent: encoded words in
the ENVELOPE, RFC 2231 parameters (`email.utils.collapse_rfc2231_value` decodes them,
where IMAP servers send `name*` with its percent-encoded value). And its address parser
drops group syntax, routes and the missing-host cases ENVELOPE has to report. The
splitter here walks the bytes once (header lines, then RFC 2046 delimiter lines found
with `bytes.find`), records offsets and never copies a body. The stdlib is still used
where it fits: `email.utils.parsedate_tz` for SENT* dates, `codecs`/`base64`/`binascii`
to decode encoded words and text parts for SEARCH.

Behaviour follows RFC 3501/2045/2046/2231 and, where those leave room, what Dovecot 2.3
answers (the differential test in tests/mailstore compares the two):

- Header values are unfolded (the line breaks before folded lines are removed) and
  never decoded: encoded words stay as sent. After the colon all blanks are skipped,
  except when the first line holds only blanks (then one). ENVELOPE's subject and
  display names have runs of white space collapsed to one space and none at the ends,
  as Dovecot does; other strings only lose stray CR/LF characters. 8-bit bytes are
  passed on as they are (in literals); NUL becomes U+FFFD.
- When a header field appears twice, ENVELOPE takes the last subject/date/message-id/
  in-reply-to and joins the address lists; MIME fields (Content-*) take the first.
- Addresses without a mailbox or host get "MISSING_MAILBOX" / "MISSING_DOMAIN" (a NIL
  host would mean group syntax); a lone comment is the display name of a bare address.
- A text part always has a charset parameter (us-ascii added when absent). A missing or
  syntactically invalid Content-Type is text/plain (RFC 2045 section 5.2); in a
  multipart/digest it is message/rfc822. RFC 2231 continuations are merged (`name*0`,
  `name*1` -> `name`; extended ones -> `name*` with the value still percent-encoded,
  charset'language' prefix included), placed after the plain parameters.
- Delimiter lines match a boundary as a prefix (trailing garbage allowed), the longest
  of the open boundaries wins; the line break before a delimiter line belongs to the
  delimiter. A missing close delimiter ends the part at the enclosing boundary or at the
  end of the message. A multipart without boundary or without parts has one empty
  text/plain part. A message/rfc822 part is always parsed as a message, whatever its
  Content-Transfer-Encoding says (RFC 2046 allows only 7bit, 8bit and binary).
- Octets and lines are counted on the bytes as given (lines = LF count). IMAP servers
  store messages with CRLF; a store that receives bare-LF input should keep
  `normalize_newlines(raw)` so that counts, sizes and fetched bytes agree with them.

Hostile input: nesting deeper than `MAX_DEPTH` and parts beyond `MAX_PARTS` are not
split further (such a part is opaque application/octet-stream; after the part limit the
rest of each open multipart counts as its epilogue). Parsing is linear in the size of
the message.

Where this module and Dovecot 2.3 knowingly differ (the differential test lists them):
a syntactically invalid Content-Type ("text", ";;;") is text/plain here, ("text" "") or
("" "") there; Dovecot counts the line break before a delimiter in a part whose own
header runs into that delimiter (no blank line), here it belongs to the delimiter as
everywhere else; Dovecot answers BODY[1.1] of a text part with that part, here a body
part inside a multipart has no part 1 (""), as RFC 3501 numbers only messages so.

The last few parses are cached (keyed by the message bytes), so a FETCH of several
sections of one message parses it once.

Strings in `CachedParts` may carry 8-bit header bytes (as IMAP literals, like Dovecot).
They are the IMAP bytes decoded as UTF-8 with `surrogateescape`: `to_wire(s)` gives back
the exact bytes (literal lengths count those bytes).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import dataclasses
import datetime
import email.utils
import functools
import re
import types
import urllib.parse
from collections.abc import Iterator, Mapping
from functools import lru_cache

from casarray.mailstore.interface import CachedParts

__all__ = [
    "ENVELOPE_FIELDS",
    "MAX_DEPTH",
    "MAX_PARTS",
    "Address",
    "Envelope",
    "MessagePart",
    "bodystructure_parts",
    "cached_parts",
    "charset_decode",
    "decoded_header",
    "decoded_headers",
    "decoded_part",
    "envelope_fields",
    "fetch_section",
    "header_values",
    "message_part",
    "message_parts",
    "normalize_newlines",
    "part_text",
    "read_envelope",
    "search_text",
    "sent_date",
    "to_wire",
    "transfer_decode",
]

MAX_DEPTH = 100
MAX_PARTS = 10_000

_LEAF = 0
_MULTIPART = 1
_MESSAGE = 2

_NL = 10
_CR = 13
_SP = 32
_TAB = 9

_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'
_TEXT = b"text"
_PLAIN = b"plain"
_US_ASCII_PARAM = (b"charset", b"us-ascii")


# -- the parsed structure ----------------------------------------------------------


class _Entity:
    """One MIME entity: a message (top level or encapsulated) or a body part.

    `raw[start:body_start]` is its header (with the blank line, if any),
    `raw[body_start:end]` its body. `fields` are the header fields as
    [name lowercased or None, unfolded value, start, end] lists.
    """

    __slots__ = (
        "body_start",
        "children",
        "ctype",
        "end",
        "fields",
        "inner",
        "kind",
        "params",
        "start",
        "subtype",
    )

    def __init__(self, start: int, body_start: int, fields: list[list]) -> None:
        self.start = start
        self.body_start = body_start
        self.end = body_start
        self.fields = fields
        self.kind = _LEAF
        self.ctype = _TEXT
        self.subtype = _PLAIN
        self.params: list[tuple[bytes, bytes]] = []
        self.children: list[_Entity] = []
        self.inner: _Entity | None = None

    def first(self, name: bytes) -> bytes | None:
        for field in self.fields:
            if field[0] == name:
                return field[1]
        return None


class _Parser:
    """Splits `raw` into entities; one instance per message."""

    __slots__ = ("count", "n", "raw")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.n = len(raw)
        self.count = 0

    # header ---------------------------------------------------------------------

    def header(
        self, pos: int, prefixes: tuple[bytes, ...], nest: bool = True
    ) -> tuple[list[list], int, bool]:
        """The fields from `pos` to the blank line (or a delimiter line, or the end):
        (fields, body_start, stopped_at_delimiter). `nest`: whether a multipart
        entity here may have parts (depth and part limits)."""
        fields, body_start, at_delimiter = self._header_lines(pos, prefixes, nest)
        for field in fields:
            if field[4] is not None:
                field[1] = b"".join(field[4])
            del field[4]
        return fields, body_start, at_delimiter

    def _header_lines(
        self, pos: int, prefixes: tuple[bytes, ...], nest: bool
    ) -> tuple[list[list], int, bool]:
        raw = self.raw
        n = self.n
        start = pos
        fields: list[list] = []
        last: list | None = None
        while pos < n:
            nl = raw.find(b"\n", pos)
            if nl < 0:
                line_end = cend = n
            else:
                line_end = nl + 1
                cend = nl - 1 if nl > pos and raw[nl - 1] == _CR else nl
            if cend == pos:
                # A blank line; directly followed by a delimiter line of an enclosing
                # multipart it is the line break that belongs to that delimiter.
                if (
                    prefixes
                    and raw.startswith(prefixes, line_end)
                    and not _opens_own(raw, line_end, prefixes, fields, nest)
                ):
                    return fields, pos, True
                return fields, line_end, False
            if prefixes and raw.startswith(prefixes, pos):
                hend = _trim(raw, start, pos)
                if last is not None and last[3] > hend:
                    last[3] = hend
                return fields, hend, True
            c = raw[pos]
            if c in (_SP, _TAB) and last is not None:
                if last[4] is None:
                    last[4] = [last[1]]
                last[4].append(raw[pos:cend])
                last[3] = line_end
            else:
                colon = raw.find(b":", pos, cend)
                if colon < 0 or c in (_SP, _TAB):
                    last = [None, b"", pos, line_end, None]
                else:
                    value = raw[colon + 1 : cend]
                    if value[:1] in (b" ", b"\t"):
                        stripped = value.lstrip(b" \t")
                        value = stripped if stripped else value[1:]
                    last = [raw[pos:colon].rstrip(b" \t").lower(), value, pos, line_end, None]
                fields.append(last)
            pos = line_end
        return fields, n, False

    # entities -------------------------------------------------------------------

    def entity(
        self,
        start: int,
        depth: int,
        prefixes: tuple[bytes, ...],
        in_digest: bool = False,
    ) -> tuple[_Entity, int]:
        """Parses the entity at `start`; returns it and the position of the delimiter
        line that ends it (-1: the end of the message)."""
        self.count += 1
        nest = depth < MAX_DEPTH and self.count < MAX_PARTS
        fields, body_start, at_delimiter = self.header(start, prefixes, nest)
        e = _Entity(start, body_start, fields)
        _content_type(e, in_digest)
        if e.kind != _LEAF and not nest:
            e.kind = _LEAF
            e.ctype, e.subtype, e.params = b"application", b"octet-stream", []
        if e.kind == _MESSAGE:
            inner, delim = self.entity(body_start, depth + 1, prefixes)
            e.inner = inner
            e.end = inner.end
            return e, delim
        if e.kind == _MULTIPART:
            boundary = _param(e.params, b"boundary")
            if boundary and not at_delimiter:
                return self.multipart_body(e, b"--" + boundary, depth, prefixes)
            return self.leaf_body(e, prefixes)
        return self.leaf_body(e, prefixes)

    def leaf_body(self, e: _Entity, prefixes: tuple[bytes, ...]) -> tuple[_Entity, int]:
        delim = _find_delimiter(self.raw, e.body_start, prefixes)
        e.end = self.n if delim < 0 else _trim(self.raw, e.body_start, delim)
        return e, delim

    def multipart_body(
        self, e: _Entity, own: bytes, depth: int, outer: tuple[bytes, ...]
    ) -> tuple[_Entity, int]:
        raw = self.raw
        prefixes = (*outer, own)
        # Longest first: of the open boundaries, the longest one a line starts with.
        by_length = sorted(set(prefixes), key=len, reverse=True)
        digest = e.subtype.lower() == b"digest"
        region = e.body_start
        delim = _find_delimiter(raw, region, prefixes)
        end_at_delim = -1 if delim < 0 else _trim(raw, region, delim)
        while True:
            if delim < 0:
                e.end = self.n
                return e, -1
            matched = next(p for p in by_length if raw.startswith(p, delim))
            if matched != own:
                e.end = end_at_delim
                return e, delim
            after = _line_end(raw, delim)
            if raw.startswith(b"--", delim + len(own)) or self.count >= MAX_PARTS:
                # The close delimiter (its whole line belongs to this multipart), or too
                # many parts: the rest is epilogue, up to an enclosing delimiter.
                region = after if raw.startswith(b"--", delim + len(own)) else delim
                nxt = _find_delimiter(raw, region, outer)
                e.end = self.n if nxt < 0 else _trim(raw, region, nxt)
                return e, nxt
            child, delim = self.entity(after, depth + 1, prefixes, digest)
            e.children.append(child)
            end_at_delim = child.end


def _opens_own(
    raw: bytes, pos: int, outer: tuple[bytes, ...], fields: list[list], nest: bool
) -> bool:
    """Whether the delimiter line at `pos` (right after a header's blank line) is the
    first delimiter of the multipart that header declares, rather than one of an
    enclosing multipart (the longest matching boundary wins, the innermost on a tie)."""
    if not nest:
        return False
    field = next((f for f in fields if f[0] == b"content-type"), None)
    if field is None:
        return False
    probe = _Entity(0, 0, [[b"content-type", b"".join(field[4] or [field[1]]), 0, 0]])
    _content_type(probe, False)
    boundary = _param(probe.params, b"boundary") if probe.kind == _MULTIPART else None
    if not boundary or not raw.startswith(b"--" + boundary, pos):
        return False
    longest_outer = max(len(p) for p in outer if raw.startswith(p, pos))
    return len(boundary) + 2 >= longest_outer


def _trim(raw: bytes, region: int, delim: int) -> int:
    """Where content that runs from `region` up to the delimiter line at `delim` ends:
    the line break before the delimiter line belongs to the delimiter."""
    if delim <= region:
        return region
    end = delim - 1
    if end > region and raw[end - 1] == _CR:
        end -= 1
    return end


def _line_end(raw: bytes, pos: int) -> int:
    nl = raw.find(b"\n", pos)
    return len(raw) if nl < 0 else nl + 1


def _find_delimiter(raw: bytes, pos: int, prefixes: tuple[bytes, ...]) -> int:
    """The start of the first line at or after `pos` that begins with one of
    `prefixes` ("--" + boundary), or -1."""
    if not prefixes:
        return -1
    if raw.startswith(prefixes, pos) and (pos == 0 or raw[pos - 1] == _NL):
        return pos
    i = pos
    while True:
        i = raw.find(b"\n--", i)
        if i < 0:
            return -1
        i += 1
        if raw.startswith(prefixes, i):
            return i


def _bytes(raw: bytes) -> bytes:
    """bytearray or memoryview as bytes (hashable for the cache, slices as bytes)."""
    return raw if type(raw) is bytes else bytes(raw)


@lru_cache(maxsize=8)
def _parse(raw: bytes) -> _Entity:
    """The parsed message (cached for the last few messages)."""
    parser = _Parser(raw)
    root, _ = parser.entity(0, 0, ())
    root.end = len(raw)
    return root


# -- MIME header values --------------------------------------------------------------

_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?= \t\r\n')
_LWSP = frozenset(b" \t\r\n")


def _skip_cfws(v: bytes, i: int) -> int:
    n = len(v)
    while i < n:
        c = v[i]
        if c in _LWSP:
            i += 1
        elif c == 0x28:  # (
            i = _skip_comment(v, i)[0]
        else:
            break
    return i


def _skip_comment(v: bytes, i: int) -> tuple[int, bytes]:
    """Skips the comment at v[i] == "("; returns the position after it and its text
    (backslash escapes removed)."""
    n = len(v)
    depth = 0
    out = bytearray()
    while i < n:
        c = v[i]
        if c == 0x5C and i + 1 < n:  # backslash
            out.append(v[i + 1])
            i += 2
            continue
        if c == 0x28:
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1, bytes(out)
            out.append(c)
        else:
            out.append(c)
        i += 1
    return n, bytes(out)


def _quoted(v: bytes, i: int) -> tuple[int, bytes]:
    """The quoted string at v[i] == '"': position after it and its unescaped text."""
    n = len(v)
    i += 1
    out = bytearray()
    while i < n:
        c = v[i]
        if c == 0x5C and i + 1 < n:
            out.append(v[i + 1])
            i += 2
            continue
        if c == 0x22:
            return i + 1, bytes(out)
        if c != _CR and c != _NL:
            out.append(c)
        i += 1
    return n, bytes(out)


def _closed(v: bytes, end: int, closer: int) -> bool:
    """Whether the comment or quoted string that `_skip_comment` / `_quoted` ended at
    `end` was terminated (by an unescaped `closer`)."""
    if end < len(v):
        return True
    if not v or v[-1] != closer:
        return False
    backslashes = len(v) - 1 - len(v[:-1].rstrip(b"\\"))
    return backslashes % 2 == 0


def _token(v: bytes, i: int) -> tuple[int, bytes]:
    n = len(v)
    j = i
    while j < n and v[j] not in _TSPECIALS and v[j] >= 0x20 and v[j] != 0x7F:
        j += 1
    return j, v[i:j]


def _token_value(v: bytes) -> bytes:
    """The value's one token (surrounded by CFWS only), else b""."""
    i, token = _token(v, _skip_cfws(v, 0))
    return token if _skip_cfws(v, i) >= len(v) else b""


def _parse_params(v: bytes, i: int) -> list[tuple[bytes, bytes]]:
    """`;`-separated parameters from v[i:], RFC 2231 continuations merged."""
    plain: list[tuple[bytes, bytes]] = []
    sections: list[tuple[bytes, int, bool, bytes]] = []
    n = len(v)
    while i < n:
        # One `; key = value`; on broken input skip one character and try again
        # (so the parameter after a broken one is lost, as in Dovecot).
        if v[i] != 0x3B:  # ;
            i += 1
            continue
        j = _skip_cfws(v, i + 1)
        j, key = _token(v, j)
        j = _skip_cfws(v, j)
        if j >= n or v[j] != 0x3D:  # =
            i = j + 1
            continue
        j = _skip_cfws(v, j + 1)
        if j < n and v[j] == 0x22:
            j, value = _quoted(v, j)
        elif j < n and v[j] == 0x3D:
            # name==?utf-8?b?...?= from broken mailers: take up to blank or ";"
            k = j
            while k < n and v[k] not in b"; \t\r\n":
                k += 1
            j, value = k, v[j:k]
        else:
            j, value = _token(v, j)
        i = _skip_cfws(v, j)
        star = key.find(b"*")
        if star < 0:
            plain.append((key, value))
            continue
        rest = key[star + 1 :]
        extended = not rest or rest.endswith(b"*")  # "name*" is one extended section
        digits = rest[:-1] if rest.endswith(b"*") else rest
        if digits and not digits.isdigit():
            plain.append((key, value))
            continue
        index = int(digits[:9]) if digits else 0
        sections.append((key[:star], index, extended, value))
    if not sections:
        return plain
    sections.sort(key=lambda s: (s[0].lower(), s[1]))
    out = plain
    i = 0
    while i < len(sections):
        name = sections[i][0].lower()
        j = i
        while j < len(sections) and sections[j][0].lower() == name:
            j += 1
        group = sections[i:j]
        if any(s[1] != k for k, s in enumerate(group)):
            # missing sections: these are not RFC 2231 continuations after all
            for key, index, extended, value in group:
                suffix = b"*%d*" % index if extended else b"*%d" % index
                out.append((key + suffix, value))
        else:
            have_extended = any(s[2] for s in group)
            value = bytearray()
            if have_extended and not group[0][2]:
                value += b"''"
            for _, _, extended, piece in group:
                value += piece.replace(b"%", b"%25") if have_extended and not extended else piece
            out.append((group[0][0] + (b"*" if have_extended else b""), bytes(value)))
        i = j
    return out


def _param(params: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in params:
        if key.lower() == name:
            return value
    return None


def _content_type(e: _Entity, in_digest: bool) -> None:
    value = e.first(b"content-type")
    parsed = None
    if value is not None:
        i = _skip_cfws(value, 0)
        i, ctype = _token(value, i)
        i = _skip_cfws(value, i)
        if ctype and i < len(value) and value[i] == 0x2F:  # /
            i, subtype = _token(value, _skip_cfws(value, i + 1))
            if subtype:
                parsed = ctype, subtype, _parse_params(value, _skip_cfws(value, i))
    if parsed is None:
        if in_digest:
            e.ctype, e.subtype, e.kind = b"message", b"rfc822", _MESSAGE
        return
    e.ctype, e.subtype, e.params = parsed
    lower = e.ctype.lower()
    if lower == b"multipart":
        e.kind = _MULTIPART
    elif lower == b"message" and e.subtype.lower() == b"rfc822":
        e.kind = _MESSAGE


# -- IMAP serialisation ----------------------------------------------------------------

_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")
_PLAIN_QUOTABLE = re.compile(rb'[^\x00\r\n\x80-\xff"\\]*')
_NEWLINE = re.compile(rb"[\r\n]")
_NEWLINE_NOT_BEFORE_BLANK = re.compile(rb"[\r\n](?![ \t\r\n]|\Z)")
_BLANKS = re.compile(rb"[ \t\r\n]+")
_NIL = b"NIL"


def _string(b: bytes) -> bytes:
    if _PLAIN_QUOTABLE.fullmatch(b):
        return b'"' + b + b'"'
    if b"\0" in b:
        b = b.replace(b"\0", "\ufffd".encode())  # no NUL in IMAP strings
    if _NEEDS_LITERAL.search(b):
        return b"{%d}\r\n%b" % (len(b), b)
    if b'"' in b or b"\\" in b:
        b = b.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + b + b'"'


def _one_line(b: bytes) -> bytes:
    """`b` with stray CR/LF removed (a space instead, unless blanks follow)."""
    if b"\r" in b or b"\n" in b:
        b = _NEWLINE.sub(b"", _NEWLINE_NOT_BEFORE_BLANK.sub(b" ", b))
    return b


def _nstring(b: bytes | None) -> bytes:
    """A string with stray CR/LF removed, or NIL."""
    return _NIL if b is None else _string(_one_line(b))


def _for_humans(b: bytes) -> bytes:
    """Subject and display names: runs of blanks as one space, none at the ends."""
    return _string(b" ".join(part for part in _BLANKS.split(b) if part))


def _write_params(params: list[tuple[bytes, bytes]], text: bool, out: list[bytes]) -> None:
    if text and not any(k.lower() == b"charset" for k, _ in params):
        params = [*params, _US_ASCII_PARAM]
    if not params:
        out.append(_NIL)
        return
    out.append(b"(")
    out.append(b" ".join(_string(k) + b" " + _string(v) for k, v in params))
    out.append(b")")


def _write_extension(e: _Entity, out: list[bytes]) -> None:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc, each preceded by SP."""
    dsp = e.first(b"content-disposition")
    out.append(b" ")
    if dsp is None:
        out.append(_NIL)
    else:
        i, kind = _token(dsp, _skip_cfws(dsp, 0))
        out.append(b"(" + _string(kind) + b" ")
        _write_params(_parse_params(dsp, _skip_cfws(dsp, i)), False, out)
        out.append(b")")
    lang = e.first(b"content-language")
    langs: list[bytes] = []
    if lang is not None:
        i = _skip_cfws(lang, 0)
        while True:
            j = i
            while j < len(lang) and lang[j] not in _TSPECIALS and lang[j] > 0x20:
                j += 1
            if j == i:
                break
            langs.append(lang[i:j])
            i = _skip_cfws(lang, j)
            if i >= len(lang) or lang[i] != 0x2C:  # ,
                break
            i = _skip_cfws(lang, i + 1)
    out.append(b" ")
    out.append(b"(" + b" ".join(_string(x) for x in langs) + b")" if langs else _NIL)
    out.append(b" ")
    out.append(_nstring(e.first(b"content-location")))


def _write_body(raw: bytes, e: _Entity, extended: bool, out: list[bytes]) -> None:
    out.append(b"(")
    if e.kind == _MULTIPART:
        if e.children:
            for child in e.children:
                _write_body(raw, child, extended, out)
        else:
            out.append(_EMPTY_BODYSTRUCTURE if extended else _EMPTY_BODY)
        out.append(b" ")
        out.append(_string(e.subtype))
        if extended:
            out.append(b" ")
            _write_params(e.params, False, out)
            _write_extension(e, out)
        out.append(b")")
        return
    text = e.ctype.lower() == _TEXT
    out.append(_string(e.ctype) + b" " + _string(e.subtype) + b" ")
    _write_params(e.params, text, out)
    encoding = e.first(b"content-transfer-encoding")
    encoding = _token_value(encoding) if encoding is not None else b""
    out.append(
        b" %b %b %b %d"
        % (
            _nstring(e.first(b"content-id")),
            _nstring(e.first(b"content-description")),
            _string(encoding or b"7bit"),
            e.end - e.body_start,
        )
    )
    if text:
        out.append(b" %d" % raw.count(b"\n", e.body_start, e.end))
    elif e.kind == _MESSAGE and e.inner is not None:
        out.append(b" ")
        _write_envelope(e.inner, out)
        out.append(b" ")
        _write_body(raw, e.inner, extended, out)
        out.append(b" %d" % raw.count(b"\n", e.body_start, e.end))
    if extended:
        out.append(b" ")
        out.append(_nstring(e.first(b"content-md5")))
        _write_extension(e, out)
    out.append(b")")


# -- ENVELOPE and addresses --------------------------------------------------------

_ENVELOPE_STRINGS = (b"date", b"subject", b"in-reply-to", b"message-id")
_ENVELOPE_ADDRESSES = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")
_MISSING_MAILBOX = b"MISSING_MAILBOX"
_MISSING_DOMAIN = b"MISSING_DOMAIN"
_SYNTAX_ERROR = b"SYNTAX_ERROR"

_Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]

# token kinds (_BROKEN: an unterminated comment or quoted string)
_ATOM, _QUOTED, _LITERAL, _SPECIAL, _COMMENT, _BROKEN = range(6)
_ADDRESS_SPECIALS = frozenset(b"<>@,;:")
_ATOM_STOP = frozenset(b'<>@,;:()"[ \t\r\n')


def _address_tokens(v: bytes) -> list[tuple[int, bytes]]:
    tokens: list[tuple[int, bytes]] = []
    n = len(v)
    i = 0
    while i < n:
        c = v[i]
        if c in _LWSP:
            i += 1
        elif c == 0x28:
            i, text = _skip_comment(v, i)
            tokens.append((_COMMENT, text))
            if not _closed(v, i, 0x29):
                tokens.append((_BROKEN, b""))
        elif c == 0x22:
            i, text = _quoted(v, i)
            tokens.append((_QUOTED, text))
            if not _closed(v, i, 0x22):
                tokens.append((_BROKEN, b""))
        elif c == 0x5B:  # [
            j = v.find(b"]", i)
            j = n if j < 0 else j + 1
            tokens.append((_LITERAL, v[i:j]))
            i = j
        elif c in _ADDRESS_SPECIALS:
            tokens.append((_SPECIAL, v[i : i + 1]))
            i += 1
        else:
            j = i + 1
            while j < n and v[j] not in _ATOM_STOP:
                j += 1
            tokens.append((_ATOM, v[i:j]))
            i = j
    return tokens


def _phrase(tokens: list[tuple[int, bytes]]) -> bytes:
    return b" ".join(t for kind, t in tokens if kind in (_ATOM, _QUOTED, _LITERAL))


def _joined(tokens: list[tuple[int, bytes]]) -> bytes:
    return b"".join(t for kind, t in tokens if kind != _COMMENT)


def _domain(token: bytes) -> bytes:
    """A dot-atom domain with an empty label ("lab.") is no domain (as in Dovecot)."""
    if token.startswith(b"[") or b"" not in token.split(b"."):
        return token
    return _MISSING_DOMAIN


def _addr_spec(tokens: list[tuple[int, bytes]]) -> tuple[_Address, bool]:
    """local-part "@" domain (a lone comment is the display name) and whether the list
    may go on after it. As in Dovecot: several words before the "@" are a display name
    without an address, a domain of more than one token or an unterminated comment
    ends the list, and a part that cannot be read is MISSING_MAILBOX / MISSING_DOMAIN."""
    comments = [t for kind, t in tokens if kind == _COMMENT and t.strip()]
    name = comments[-1] if comments else None
    at = next((k for k, t in enumerate(tokens) if t == (_SPECIAL, b"@")), len(tokens))
    local = [t for t in tokens[:at] if t[0] != _COMMENT]
    domain = [t for t in tokens[at + 1 :] if t[0] != _COMMENT]
    if any(kind == _BROKEN for kind, _ in local):
        return (name, None, _MISSING_MAILBOX, _MISSING_DOMAIN), False
    if len(local) > 1:
        return (_phrase(local), None, _MISSING_MAILBOX, _MISSING_DOMAIN), False
    if at == len(tokens) and local and local[0][0] == _QUOTED:
        return (local[0][1], None, _MISSING_MAILBOX, _MISSING_DOMAIN), True
    mailbox = _joined(local) or _MISSING_MAILBOX
    if any(kind == _BROKEN for kind, _ in domain):
        return (name, None, mailbox, _MISSING_DOMAIN), False
    host = _domain(domain[0][1]) if domain else _MISSING_DOMAIN
    return (name, None, mailbox, host), len(domain) <= 1


def _mailbox(tokens: list[tuple[int, bytes]]) -> tuple[_Address, bool]:
    """One mailbox (name-addr or addr-spec) and whether the list may go on after it.

    As in Dovecot: the words at the start are a display name if "<" follows them;
    otherwise the element is an addr-spec (a lone comment is its display name), and
    several words without "@" are a display name without an address."""
    words = [(kind, t) for kind, t in tokens if kind != _COMMENT]
    if not words:
        return (None, None, _MISSING_MAILBOX, _MISSING_DOMAIN), True
    first_special = next((k for k, (kind, _) in enumerate(tokens) if kind == _SPECIAL), -1)
    broken = any(kind == _BROKEN for kind, _ in tokens)
    if first_special < 0 or tokens[first_special][1] != b"<":
        if first_special < 0 and len(words) > 1 and not broken:
            return (_phrase(words), None, _MISSING_MAILBOX, _MISSING_DOMAIN), True
        return _addr_spec(tokens)
    lt = first_special
    name = _phrase(tokens[:lt]) or None
    gt = next((k for k in range(lt + 1, len(tokens)) if tokens[k] == (_SPECIAL, b">")), None)
    inside = tokens[lt + 1 : gt]
    after = [] if gt is None else [t for t in tokens[gt + 1 :] if t[0] != _COMMENT]
    route = None
    if inside and inside[0] == (_SPECIAL, b"@"):
        colon = next((k for k, t in enumerate(inside) if t == (_SPECIAL, b":")), -1)
        if colon >= 0:
            route = _joined(inside[:colon]) or None
            inside = inside[colon + 1 :]
    (_, _, mailbox, host), valid = _addr_spec(inside)
    if gt is None or broken:
        return (name, route, mailbox, _SYNTAX_ERROR), False
    return (name, route, mailbox, host), valid and not after


def _address_list(v: bytes) -> list[_Address]:
    """An address list in ENVELOPE form; group syntax gives (NIL NIL name NIL) ...
    (NIL NIL NIL NIL). An empty element is an address with both parts missing; after a
    syntax error the rest of the list is dropped (Dovecot's recovery)."""
    tokens = _address_tokens(v)
    out: list[_Address] = []
    n = len(tokens)
    comma = (_SPECIAL, b",")
    semicolon = (_SPECIAL, b";")

    def element(i: int, stops: bytes) -> tuple[list[tuple[int, bytes]], int]:
        j = i
        angle = False
        while j < n:
            kind, t = tokens[j]
            if kind == _SPECIAL:
                if t == b"<":
                    angle = True
                elif t == b">":
                    angle = False
                elif not angle and t in stops:
                    break
            j += 1
        return tokens[i:j], j

    i = 0
    while i < n:
        if tokens[i] == semicolon:
            i += 1
            continue
        # group: a phrase followed by ":" (before any of < @ , ;)
        j = i
        while j < n and not (tokens[j][0] == _SPECIAL and tokens[j][1] in b":<@,;"):
            j += 1
        if j < n and tokens[j][1] == b":" and _phrase(tokens[i:j]):
            out.append((None, None, _phrase(tokens[i:j]), None))
            i = j + 1
            while i < n and tokens[i] != semicolon:
                part, i = element(i, b",;")
                address, valid = _mailbox(part)
                out.append(address)
                if not valid:
                    out.append((None, None, None, None))
                    return out
                if i < n and tokens[i] == comma:
                    i += 1
            i += 1
            out.append((None, None, None, None))
        else:
            part, i = element(i, b",")
            address, valid = _mailbox(part)
            out.append(address)
            if not valid:
                return out
        if i < n:
            if tokens[i] != comma:
                return out  # no comma between two addresses: the rest is dropped
            i += 1
    return out


def _envelope_values(
    e: _Entity,
) -> tuple[dict[bytes, bytes], dict[bytes, list[_Address]]]:
    strings: dict[bytes, bytes] = {}
    addresses: dict[bytes, list[_Address]] = {}
    for name, value, _, _ in e.fields:
        if name in _ENVELOPE_STRINGS:
            strings[name] = value  # the last one wins, as in Dovecot
        elif name in _ENVELOPE_ADDRESSES:
            addresses.setdefault(name, []).extend(_address_list(value))
    return strings, addresses


def _write_addresses(addresses: list[_Address] | None, out: list[bytes]) -> None:
    if not addresses:
        out.append(_NIL)
        return
    out.append(b"(")
    for name, route, mailbox, host in addresses:
        out.append(
            b"(%b %b %b %b)"
            % (
                _NIL if name is None else _for_humans(name),
                _nstring(route),
                _nstring(mailbox),
                _nstring(host),
            )
        )
    out.append(b")")


def _write_envelope(e: _Entity, out: list[bytes]) -> None:
    strings, addresses = _envelope_values(e)
    subject = strings.get(b"subject")
    out.append(b"(")
    out.append(_nstring(strings.get(b"date")))
    out.append(b" ")
    out.append(_NIL if subject is None else _for_humans(subject))
    sender = addresses.get(b"from")
    for name in _ENVELOPE_ADDRESSES:
        out.append(b" ")
        # RFC 3501: an absent or empty Sender / Reply-To is the From
        value = addresses.get(name) or (sender if name in (b"sender", b"reply-to") else None)
        _write_addresses(value, out)
    out.append(b" ")
    out.append(_nstring(strings.get(b"in-reply-to")))
    out.append(b" ")
    out.append(_nstring(strings.get(b"message-id")))
    out.append(b")")


# -- public API: FETCH ------------------------------------------------------------------


def to_wire(text: str) -> bytes:
    """The IMAP bytes of a `CachedParts` string (they may hold 8-bit literals)."""
    return text.encode("utf-8", "surrogateescape")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def normalize_newlines(raw: bytes) -> bytes:
    """Bare LF line ends as CRLF (what an IMAP server stores for a bare-LF APPEND)."""
    if b"\n" not in raw:
        return raw
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


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


def _parse_section(section: str) -> tuple[list[int], str, list[bytes]]:
    """(part numbers, "" | HEADER | TEXT | MIME | FIELDS | FIELDS.NOT, field names)."""
    if not isinstance(section, str):
        raise ValueError(f"section spec must be a string, not {type(section).__name__}")
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
        return numbers, upper, []
    for kind in ("HEADER.FIELDS.NOT", "HEADER.FIELDS"):
        if upper.startswith(kind):
            names = _parse_header_list(section, rest[len(kind) :])
            return numbers, kind[7:], names
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


def _header_fields(raw: bytes, e: _Entity, names: list[bytes], exclude: bool) -> bytes:
    wanted = set(names)
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
    root = _parse(raw)
    if not numbers:
        target: _Entity | None = root
        if kind == "":
            return raw
    else:
        entity = _resolve(root, numbers)
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


# -- public API: SEARCH ---------------------------------------------------------------


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


# -- public API: a message as a reader sees it (web mail, JSON API) ---------------------
#
# Strings here are for display: header bytes are read as UTF-8, else Latin-1; RFC 2047
# encoded words and RFC 2231 parameters are decoded; no lone surrogates, no NUL.

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
