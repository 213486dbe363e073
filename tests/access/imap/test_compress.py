"""COMPRESS=DEFLATE (RFC 4978): the session's part as transcripts (the command, its
state, COMPRESSIONACTIVE, bad input, what the client sent after it handed back to the
transport) and the deflate streams of `compression.py` (raw deflate both ways, a sync
flush per batch, inflating in bounded chunks, corrupt input refused)."""

from __future__ import annotations

import zlib

import pytest

from casarray.access.imap.compression import CompressionError, DeflateStream
from casarray.access.imap.events import Compress, Send
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
