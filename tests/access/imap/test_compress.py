"""COMPRESS=DEFLATE (RFC 4978): the session's part as transcripts (the command, its
state, COMPRESSIONACTIVE, bad input, what the client sent after it handed back to the
transport) and the deflate streams of `compression.py` (raw deflate both ways, a sync
flush per batch, inflating in bounded chunks, corrupt input refused), then the asyncio
server with a real session over a socket: compressed commands pipelined right behind
COMPRESS, a 3 MB APPEND inflated in chunks, a corrupt stream answered BYE."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable

import pytest

from casarray.access.imap.compression import CompressionError, DeflateStream
from casarray.access.imap.events import Compress, Send
from casarray.access.imap.server import ImapServer
from tests.access.imap.fakes import FakeBackend, logged_in, make_session, rx, sent, transcript


def test_advertised_after_login_only() -> None:
    backend = FakeBackend()
    session = make_session(backend)
    assert b"COMPRESS=DEFLATE" not in sent(session.greeting())
    session, _ = logged_in()
    assert b" COMPRESS=DEFLATE" in sent(session.feed(b"c CAPABILITY\r\n"))


def test_compress_deflate_starts_compression_after_the_tagged_ok() -> None:
    session, _ = logged_in()
    events = session.feed(b"z1 COMPRESS DEFLATE\r\n")
    assert events == [Send(b"z1 OK DEFLATE active\r\n"), Compress(b"")]
    # the transport inflates; the session goes on with plain commands
    transcript(
        session,
        [
            (b"n NOOP\r\n", b"n OK NOOP completed\r\n"),
            (
                b"z2 compress deflate\r\n",
                b"z2 NO [COMPRESSIONACTIVE] DEFLATE compression is already active\r\n",
            ),
        ],
    )


def test_what_follows_the_command_goes_back_to_the_transport() -> None:
    session, _ = logged_in()
    deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    early = deflater.compress(b"n NOOP\r\n") + deflater.flush(zlib.Z_SYNC_FLUSH)
    events = session.feed(b"z COMPRESS DEFLATE\r\n" + early)
    assert events == [Send(b"z OK DEFLATE active\r\n"), Compress(early)]


def test_in_the_selected_state_too() -> None:
    session, _ = logged_in()
    sent(session.feed(b"s SELECT INBOX\r\n"))
    assert session.feed(b"z COMPRESS DEFLATE\r\n")[1] == Compress(b"")


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"z COMPRESS GZIP\r\n", b"z NO Unsupported compression mechanism GZIP; use DEFLATE\r\n"),
        (b"z COMPRESS\r\n", rx(rb"z BAD COMPRESS: Expected a space .*\r\n")),
        (b"z COMPRESS DEFLATE extra\r\n", rx(rb"z BAD COMPRESS: .*\r\n")),
        (b'z COMPRESS "DEFLATE"\r\n', rx(rb"z BAD COMPRESS: Expected a compression mechanism.*")),
    ],
)
def test_bad_input_changes_nothing(line: bytes, answer: bytes) -> None:
    session, _ = logged_in()
    transcript(session, [(line, answer)])
    # still uncompressed: COMPRESS may be given properly now
    assert session.feed(b"z2 COMPRESS DEFLATE\r\n")[1] == Compress(b"")


def test_not_before_login() -> None:
    session = make_session(FakeBackend())
    session.greeting()
    transcript(
        session,
        [(b"z COMPRESS DEFLATE\r\n", b"z BAD COMPRESS is not allowed before logging in\r\n")],
    )


# -- the streams ---------------------------------------------------------------------


def test_each_batch_is_sync_flushed_raw_deflate() -> None:
    stream = DeflateStream()
    client = zlib.decompressobj(-15)
    for batch in (b"* OK first\r\n", b"* 3 EXISTS\r\na OK done\r\n" * 50):
        wire = stream.deflate(batch)
        assert wire.endswith(b"\x00\x00\xff\xff")  # the sync flush marker
        assert client.decompress(wire) == batch  # decodable at once, nothing held back
    assert len(stream.deflate(b"x" * 10_000)) < 100


def test_inflate_in_bounded_chunks() -> None:
    stream = DeflateStream(max_chunk=1000)
    client = zlib.compressobj(9, zlib.DEFLATED, -15)
    wire = client.compress(b"a" * 100_000) + client.flush(zlib.Z_SYNC_FLUSH)
    out = [stream.inflate(wire)]
    while stream.has_input:
        out.append(stream.inflate(b""))
    assert all(len(chunk) <= 1000 for chunk in out)
    assert b"".join(out) == b"a" * 100_000
    # byte by byte works as well
    stream = DeflateStream()
    wire = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = wire.compress(b"b NOOP\r\n") + wire.flush(zlib.Z_SYNC_FLUSH)
    assert b"".join(stream.inflate(data[i : i + 1]) for i in range(len(data))) == b"b NOOP\r\n"


def test_corrupt_input_is_an_error() -> None:
    with pytest.raises(CompressionError):
        DeflateStream().inflate(b"\xff\xff\xff\xff not deflate")
    finished = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = finished.compress(b"a NOOP\r\n") + finished.flush()  # Z_FINISH
    with pytest.raises(CompressionError):
        DeflateStream().inflate(data + b"more")


# -- the transport: a real ImapServer, a raw client ------------------------------------


class DeflateClient:
    """A raw asyncio client that compresses after COMPRESS, as a real client does."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        self.plain = b""

    def deflate(self, data: bytes) -> bytes:
        return self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)

    async def line(self) -> bytes:
        return await asyncio.wait_for(self.reader.readline(), 10)

    async def inflated_until(self, end: bytes) -> bytes:
        while end not in self.plain:
            chunk = await asyncio.wait_for(self.reader.read(65536), 10)
            if not chunk:
                break
            self.plain += self.inflater.decompress(chunk)
        data, _, self.plain = self.plain.partition(end)
        return data + end


async def _serve_and(script: Callable[[DeflateClient], Awaitable[None]]) -> None:
    backend = FakeBackend()
    backend.add_user("alice@lab.net", "s3cret pw")
    server = ImapServer(backend, name="T", host="127.0.0.1", ssl_context=None, allow_plaintext=True)
    (listener,) = await server.start(port=0, tls_port=None)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        client = DeflateClient(reader, writer)
        assert (await client.line()).startswith(b"* OK")
        writer.write(b'a LOGIN alice@lab.net "s3cret pw"\r\n')
        assert (await client.line()).startswith(b"a OK")
        await script(client)
        writer.close()
    finally:
        await server.shutdown(grace=1)


def test_transport_pipelined_after_compress() -> None:
    async def script(client: DeflateClient) -> None:
        # the client sends compressed commands right behind COMPRESS, in one write
        client.writer.write(b"z COMPRESS DEFLATE\r\n" + client.deflate(b"n1 NOOP\r\n"))
        assert await client.line() == b"z OK DEFLATE active\r\n"
        assert await client.inflated_until(b"\r\n") == b"n1 OK NOOP completed\r\n"
        client.writer.write(client.deflate(b"z2 COMPRESS DEFLATE\r\n"))
        answer = await client.inflated_until(b"\r\n")
        assert answer.startswith(b"z2 NO [COMPRESSIONACTIVE]")
        # a large, very compressible APPEND goes through the bounded inflating
        raw = b"Subject: big\r\n\r\n" + b"x" * 3_000_000 + b"\r\n"
        client.writer.write(client.deflate(b"ap APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n"))
        assert (await client.inflated_until(b"\r\n")).startswith(b"ap OK [APPENDUID")
        client.writer.write(client.deflate(b"l LOGOUT\r\n"))
        assert (await client.inflated_until(b"l OK LOGOUT completed\r\n")).startswith(b"* BYE")

    asyncio.run(_serve_and(script))


def test_transport_corrupt_stream_ends_the_connection() -> None:
    async def script(client: DeflateClient) -> None:
        client.writer.write(b"z COMPRESS DEFLATE\r\n")
        assert await client.line() == b"z OK DEFLATE active\r\n"
        client.writer.write(b"\xff\xfe not deflate at all\r\n")
        assert await client.inflated_until(b"\r\n") == b"* BYE Internal server error\r\n"
        assert await asyncio.wait_for(client.reader.read(), 10) == b""  # closed

    asyncio.run(_serve_and(script))
