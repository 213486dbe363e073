"""The parsed structure of a message: its entities with their offsets in the raw bytes.

`_parse(raw)` splits a message once (header lines, then RFC 2046 delimiter lines found
with `bytes.find`) into `_Entity`s that record where each header and body starts and
ends, and never copy a body: IMAP reports octet and line counts of every part and hands
out exact byte ranges, so everything else in the package works from these offsets. The
last few parses are cached, keyed by the message bytes.

The Content-Type of each entity is read here too (`_content_type`), since it decides
how the splitter goes on: into the parts of a multipart, into an encapsulated message,
or to the next delimiter.
"""

from __future__ import annotations

from functools import lru_cache

from casarray.mailstore.mime.header_values import (
    _CR,
    _NL,
    _param,
    _parse_params,
    _skip_cfws,
    _token,
)

MAX_DEPTH = 100
MAX_PARTS = 10_000

_LEAF = 0
_MULTIPART = 1
_MESSAGE = 2

_SP = 32
_TAB = 9

_TEXT = b"text"
_PLAIN = b"plain"
_US_ASCII_PARAM = (b"charset", b"us-ascii")


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


HEADER_CACHE_ENTRIES = 2048  # parsed top-level headers a process keeps
HEADER_CACHE_MAX = 8 * 1024  # bytes of the largest header kept


def _parse_header(raw: bytes) -> _Entity:
    """The top-level entity with its header fields only, its parts not split (all that
    `BODY[HEADER]`, `BODY[HEADER.FIELDS ...]` and `BODY[TEXT]` need). Its `fields` may
    be shared with other calls: read them, never change them.

    The header's fields are kept, keyed by the header's bytes (up to the blank line that
    ends it), as Dovecot keeps them in its cache file: clients fetch the same few fields
    of the same messages again and again (every sync of a folder view), and the same
    message delivered to many mailboxes has one entry."""
    cut = _header_end(raw)
    if 0 < cut <= HEADER_CACHE_MAX:
        # the header parser reads no further than the blank line: the same result
        fields, body_start = _cached_header(raw[:cut])
    else:
        fields, body_start, _ = _Parser(raw).header(0, ())
    root = _Entity(0, body_start, fields)
    root.end = len(raw)
    return root


def _header_end(raw: bytes) -> int:
    """Where the top-level header's blank line ends (0: the message starts with it; the
    whole length when there is none)."""
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return 0
    lf = raw.find(b"\n\n")
    crlf = raw.find(b"\n\r\n")
    if lf < 0 and crlf < 0:
        return len(raw)
    if crlf < 0 or 0 <= lf < crlf:
        return lf + 2
    return crlf + 3


@lru_cache(maxsize=HEADER_CACHE_ENTRIES)
def _cached_header(header: bytes) -> tuple[list[list], int]:
    fields, body_start, _ = _Parser(header).header(0, ())
    return fields, body_start


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
