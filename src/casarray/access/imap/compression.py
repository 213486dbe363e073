"""COMPRESS=DEFLATE (RFC 4978) on the wire: both directions of a connection as raw
deflate streams (RFC 1951, no zlib header: wbits -15), for the asyncio transport.

The session says when compression starts (`events.Compress`); from then on the
connection passes what it reads through `inflate` and what it writes through
`deflate`. Every batch of responses ends with a sync flush (Z_SYNC_FLUSH), so the
client can decode all of it at once instead of waiting for more; compression lives
above TLS, so it works after STARTTLS and on the implicit-TLS port alike.

A small compressed input can stand for a huge one (a "zip bomb"): `inflate` yields at
most `max_chunk` bytes per call and keeps the rest of its input; while `has_input` is
true the transport calls it again (with no new bytes) before reading more, so what a
client sends is never inflated faster than the session consumes it.
"""

from __future__ import annotations

import zlib

from casarray.errors import CasarrayError

WBITS = -15  # raw deflate: no zlib or gzip header
LEVEL = 6  # zlib's default, as Dovecot's imap_compress_deflate_level
MAX_CHUNK = 256 * 1024


class CompressionError(CasarrayError):
    """The client's deflate stream is corrupt."""


class DeflateStream:
    """One connection's deflate and inflate state (used by one connection at a time)."""

    __slots__ = ("_deflater", "_inflater", "_tail", "max_chunk")

    def __init__(self, level: int = LEVEL, max_chunk: int = MAX_CHUNK) -> None:
        self._deflater = zlib.compressobj(level, zlib.DEFLATED, WBITS)
        self._inflater = zlib.decompressobj(WBITS)
        self._tail = b""
        self.max_chunk = max_chunk

    def deflate(self, data: bytes) -> bytes:
        """`data` compressed and sync-flushed: the client can inflate all of it now."""
        return self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)

    def inflate(self, data: bytes) -> bytes:
        """What `data` (appended to input kept from before) inflates to, at most
        `max_chunk` bytes; the rest stays for the next call (see `has_input`)."""
        pending = self._tail + data if self._tail else data
        try:
            out = self._inflater.decompress(pending, self.max_chunk)
        except zlib.error as exc:
            raise CompressionError(f"invalid deflate data: {exc}") from None
        self._tail = self._inflater.unconsumed_tail
        if self._inflater.eof and self._inflater.unused_data:
            # The client ended its stream (Z_FINISH): nothing may follow it.
            raise CompressionError("data after the end of the deflate stream")
        return out

    @property
    def has_input(self) -> bool:
        """Input is held that `inflate(b"")` will turn into more output."""
        return bool(self._tail)
