"""The framing of the IMAP command stream (`access.imap.framing`): commands, literals,
continuations and limits, whatever the chunk boundaries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from casarray.access.imap.framing import (
    CommandReader,
    LineTooLong,
    LiteralTooBig,
    NeedContinuation,
    RawCommand,
)


def drain(reader: CommandReader) -> list[object]:
    out = []
    while (event := reader.next_event()) is not None:
        out.append(event)
    return out


def test_reader_simple_lines_and_pipelining() -> None:
    reader = CommandReader(1000, 1000)
    reader.feed(b"a1 NOOP\r\na2 CAPABILITY\r\na3 LOG")
    assert drain(reader) == [RawCommand((b"a1 NOOP",), ()), RawCommand((b"a2 CAPABILITY",), ())]
    reader.feed(b"OUT\n")  # a bare LF is accepted too
    assert drain(reader) == [RawCommand((b"a3 LOGOUT",), ())]


def test_reader_synchronising_literal_asks_for_continuation() -> None:
    reader = CommandReader(1000, 1000)
    reader.feed(b"a1 LOGIN {5}\r\n")
    assert drain(reader) == [NeedContinuation()]
    reader.feed(b"alice {3}\r\n")
    assert drain(reader) == [NeedContinuation()]
    reader.feed(b"p\r\n\r\n")
    assert drain(reader) == [
        RawCommand((b"a1 LOGIN {5}", b" {3}", b""), (b"alice", b"p\r\n")),
    ]


def test_reader_literal_plus_needs_no_continuation() -> None:
    reader = CommandReader(1000, 1000)
    reader.feed(b"a1 LOGIN {5+}\r\nalice {0+}\r\n\r\n")
    assert drain(reader) == [RawCommand((b"a1 LOGIN {5+}", b" {0+}", b""), (b"alice", b""))]


def test_reader_byte_by_byte() -> None:
    data = b"a1 APPEND INBOX (\\Seen) {12}\r\nhello\r\nworld\r\na2 NOOP\r\n"
    reader = CommandReader(1000, 1000)
    events: list[object] = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        events.extend(drain(reader))
    assert events == [
        NeedContinuation(),
        RawCommand((b"a1 APPEND INBOX (\\Seen) {12}", b""), (b"hello\r\nworld",)),
        RawCommand((b"a2 NOOP",), ()),
    ]


def test_reader_line_too_long_is_discarded_to_its_end() -> None:
    reader = CommandReader(50, 1000)
    reader.feed(b"t1 NOOP " + b"x" * 30)
    assert drain(reader) == []
    reader.feed(b"y" * 100)  # over the limit: dropped as it comes
    assert drain(reader) == []
    assert reader.buffered == 0
    reader.feed(b"z" * 100 + b"\r\na2 NOOP\r\n")
    assert drain(reader) == [LineTooLong("t1", 50), RawCommand((b"a2 NOOP",), ())]


def test_reader_line_limit_counts_every_segment() -> None:
    reader = CommandReader(40, 1000)
    reader.feed(b"t1 LOGIN {1+}\r\na " + b"x" * 40 + b"\r\na2 NOOP\r\n")
    assert drain(reader) == [LineTooLong("t1", 40), RawCommand((b"a2 NOOP",), ())]


def test_reader_synchronising_literal_too_big() -> None:
    reader = CommandReader(1000, 100)
    reader.feed(b"a1 APPEND INBOX {101}\r\na2 NOOP\r\n")
    assert drain(reader) == [
        LiteralTooBig("a1", "APPEND", 101, 100, synchronizing=True),
        RawCommand((b"a2 NOOP",), ()),
    ]


def test_reader_non_synchronising_literal_too_big_is_read_and_dropped() -> None:
    reader = CommandReader(1000, 100)
    reader.feed(b"a1 APPEND INBOX {150+}\r\n" + b"m" * 100)
    assert drain(reader) == []
    reader.feed(b"m" * 50 + b"\r\na2 NOOP\r\n")
    assert drain(reader) == [
        LiteralTooBig("a1", "APPEND", 150, 100, synchronizing=False),
        RawCommand((b"a2 NOOP",), ()),
    ]


def test_reader_literals_of_one_command_add_up() -> None:
    reader = CommandReader(1000, 10)
    reader.feed(b"a1 LOGIN {6+}\r\nabcdef {6+}\r\nghijkl\r\na2 NOOP\r\n")
    assert drain(reader) == [
        LiteralTooBig("a1", "LOGIN", 6, 10, synchronizing=False),
        RawCommand((b"a2 NOOP",), ()),
    ]


def test_reader_huge_literal_count_is_too_big() -> None:
    reader = CommandReader(1000, 10)
    reader.feed(b"a1 LOGIN {99999999999999999999999}\r\n")
    [event] = drain(reader)
    assert isinstance(event, LiteralTooBig) and event.synchronizing


def test_reader_clear_forgets_buffered_input() -> None:
    reader = CommandReader(1000, 1000)
    reader.feed(b"a1 NOOP\r\na2 LOGIN {3}\r\nab")
    reader.clear()
    assert drain(reader) == []
    assert not reader.in_command


def test_reader_raw_lines() -> None:
    reader = CommandReader(20, 1000)
    reader.feed(b"DONE\r\n" + b"x" * 30 + b"\r\n*\r\n")
    assert reader.next_line() == b"DONE"
    assert isinstance(reader.next_line(), LineTooLong)
    assert reader.next_line() == b"*"
    assert reader.next_line() is None


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20))
def test_reader_never_fails_and_chunking_does_not_matter(data: bytes, cuts: list[int]) -> None:
    whole = CommandReader(64, 64)
    whole.feed(data)
    expected = drain(whole)
    chunked = CommandReader(64, 64)
    got: list[object] = []
    pos = 0
    for size in [*cuts, len(data)]:
        chunked.feed(data[pos : pos + size])
        got.extend(drain(chunked))
        pos += size
    # Chunking can only change how much of an over-long line is seen before its end.
    strip = [e if not isinstance(e, LineTooLong) else LineTooLong(None, 0) for e in expected]
    got_strip = [e if not isinstance(e, LineTooLong) else LineTooLong(None, 0) for e in got]
    assert got_strip == strip
