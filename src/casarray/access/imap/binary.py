"""FETCH BINARY[part]<partial>, BINARY.PEEK and BINARY.SIZE (RFC 3516), without I/O.

The data is the section with its Content-Transfer-Encoding removed
(`mailstore.mime.binary`); a partial range counts in the decoded bytes. It goes out as
a literal8 (`~{n}`) when it holds a NUL, the one byte a plain literal can't carry (RFC
3501 CHAR8), and as an ordinary literal otherwise. An encoding the server can't decode
raises `UnknownCte`: the command answers `NO [UNKNOWN-CTE]`. (The MIME package is
imported at the first BINARY fetch, as `fetch` imports it at the first body section.)
"""

from __future__ import annotations

from casarray.access.imap import responses as r
from casarray.access.imap.commands import FetchAttribute
from casarray.errors import CasarrayError

__all__ = ["UnknownCte", "literal8", "render"]


class UnknownCte(CasarrayError):
    """A part's Content-Transfer-Encoding can't be decoded: NO [UNKNOWN-CTE]."""


def literal8(data: bytes) -> bytes:
    """A literal8 when the data holds a NUL, else a plain literal."""
    if b"\x00" in data:
        return b"~{%d}\r\n%s" % (len(data), data)
    return r.literal(data)


def render(item: FetchAttribute, raw: bytes) -> bytes:
    """The `BINARY[...]` or `BINARY.SIZE[...]` item of one message's FETCH response."""
    assert item.section is not None
    part = item.section.part
    spec = ".".join(str(p) for p in part).encode("ascii")
    from casarray.mailstore.mime.binary import UnknownEncoding, binary_section

    try:
        data = binary_section(raw, part)
    except UnknownEncoding as exc:
        raise UnknownCte(str(exc)) from exc
    if item.name == "BINARY.SIZE":
        return b"BINARY.SIZE[%s] %d" % (spec, len(data))
    name = b"BINARY[%s]" % spec
    if item.partial is not None:
        origin, length = item.partial
        data = data[origin : origin + length]
        name += b"<%d>" % origin
    return name + b" " + literal8(data)
