"""Transcripts of BINARY (RFC 3516): FETCH BINARY[part]<partial>, BINARY.PEEK and
BINARY.SIZE with base64 and quoted-printable parts decoded, literal8 where the data
holds a NUL, UNKNOWN-CTE, APPEND of a literal8 (stored with its binary parts as base64),
and bad input answered BAD with nothing changed."""

from __future__ import annotations

from casarray.mailstore.mime.binary import (
    bodypart_structure,
    decode_base64,
    decode_quoted_printable,
    encode_binary_parts,
)
from tests.access.imap.fakes import FakeMailboxStore, logged_in, rx, selected, transcript

MIXED = (
    b"From: alice@lab.net\r\n"
    b"Subject: parts\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGVsbG8g\r\n"
    b"  d29ybGQ= \r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9  \r\n"
    b"soft=\r\n"
    b"break\r\n"
    b"--b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"--b--\r\n"
)


def mixed() -> FakeMailboxStore:
    store = FakeMailboxStore()
    store.append("INBOX", MIXED)
    return store


def test_binary_decodes_base64_and_quoted_printable() -> None:
    session, _ = selected(mixed())
    transcript(
        session,
        [
            (
                b"f1 FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2])\r\n",
                b"* 1 FETCH (BINARY[1] {11}\r\nhello world BINARY.SIZE[2] 16 "
                b"BINARY[2] {16}\r\ncaf\xc3\xa9\r\nsoftbreak)\r\n"
                b"f1 OK FETCH completed\r\n",
            ),
            (
                b"f2 FETCH 1 (BINARY.PEEK[1]<6.100> BINARY.PEEK[1]<0.5>)\r\n",
                b"* 1 FETCH (BINARY[1]<6> {5}\r\nworld BINARY[1]<0> {5}\r\nhello)\r\n"
                b"f2 OK FETCH completed\r\n",
            ),
            (  # a NUL goes out as a literal8
                b"f3 FETCH 1 (BINARY.PEEK[3] BINARY.SIZE[3])\r\n",
                b"* 1 FETCH (BINARY[3] ~{3}\r\n\x00\x01\x02 BINARY.SIZE[3] 3)\r\n"
                b"f3 OK FETCH completed\r\n",
            ),
            (  # no such part: empty
                b"f4 FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])\r\n",
                b"* 1 FETCH (BINARY[9] {0}\r\n BINARY.SIZE[9] 0)\r\nf4 OK FETCH completed\r\n",
            ),
            (
                b"f5 FETCH 1 (BINARY.PEEK[4])\r\n",
                b"f5 NO [UNKNOWN-CTE] A part has a Content-Transfer-Encoding not known\r\n",
            ),
        ],
    )


def test_binary_sets_seen_and_peek_does_not() -> None:
    session, store = selected(mixed())
    transcript(
        session,
        [
            (b"f1 FETCH 1 (BINARY.PEEK[1])\r\n", rx(rb"\* 1 FETCH \(BINARY\[1\] .*f1 OK .*")),
            (
                b"f2 FETCH 1 (BINARY[1])\r\n",
                b"* 1 FETCH (FLAGS (\\Recent \\Seen) BINARY[1] {11}\r\nhello world)\r\n"
                b"f2 OK FETCH completed\r\n",
            ),
        ],
    )
    assert "\\Seen" in store.messages("INBOX")[0].flags


def test_binary_of_the_whole_message_replaces_each_encoding() -> None:
    session, _ = selected(mixed())
    out = b"".join(
        e.data  # type: ignore[union-attr]
        for e in session.feed(b"f1 UID FETCH 1 (BINARY.PEEK[1.2])\r\n")
    )
    assert out.startswith(b"* 1 FETCH (UID 1 BINARY[1.2] {0}")  # a leaf has no part 2
    transcript(
        session,
        [
            (
                b"f2 FETCH 1 BINARY.SIZE[]\r\n",
                b"f2 NO [UNKNOWN-CTE] A part has a Content-Transfer-Encoding not known\r\n",
            ),
        ],
    )


def test_bad_binary_items_are_answered_bad() -> None:
    session, store = selected(mixed())
    transcript(
        session,
        [
            (b"b1 FETCH 1 BINARY[HEADER]\r\n", rx(rb"b1 BAD FETCH: Expected a number .*\r\n")),
            (b"b2 FETCH 1 BINARY.PEEK[1.]\r\n", rx(rb"b2 BAD FETCH: Expected a number .*\r\n")),
            (b"b3 FETCH 1 BINARY[0]\r\n", rx(rb"b3 BAD FETCH: The number .* not be 0\r\n")),
            (b"b4 FETCH 1 BINARY.SIZE[1]<0.5>\r\n", rx(rb"b4 BAD FETCH: Unexpected .*\r\n")),
            (b"b5 FETCH 1 BINARY[1]<0.0>\r\n", rx(rb"b5 BAD FETCH: The number .*\r\n")),
        ],
    )
    assert store.messages("INBOX")[0].flags == frozenset()  # nothing marked \Seen


BINARY_MESSAGE = (
    b"From: alice@lab.net\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"\r\n"
    b"\x00-\xe4\n\r\n\n"
)


def test_append_of_a_literal8_stores_base64_and_binary_gives_it_back() -> None:
    session, store = logged_in()
    size = len(BINARY_MESSAGE)
    transcript(
        session,
        [
            (b"a1 APPEND INBOX ~{%d}\r\n" % size, b"+ Ready for literal data\r\n"),
            (BINARY_MESSAGE + b"\r\n", rx(rb"a1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n")),
            (b"s1 SELECT INBOX\r\n", rx(rb".*s1 OK .*")),
            (
                b"f1 FETCH 1 (BODY.PEEK[1] BINARY.SIZE[1] BINARY.PEEK[1])\r\n",
                b"* 1 FETCH (BODY[1] {14}\r\nAC3kCg0KCg==\r\n BINARY.SIZE[1] 7 "
                b"BINARY[1] ~{7}\r\n\x00-\xe4\n\r\n\n)\r\nf1 OK FETCH completed\r\n",
            ),
        ],
    )
    stored = store.body("INBOX", 1)
    assert b"Content-Transfer-Encoding: base64\r\n" in stored and b"\x00" not in stored


def test_mime_binary_helpers() -> None:
    assert decode_base64(b" aGVs\r\nbG8=junk") == b"hello"
    assert decode_base64(b"aGVsbA") == b"hell"  # missing padding
    assert decode_quoted_printable(b"a=3D1 \t\r\nb= \r\nc=ZZ\r\n") == b"a=1\r\nbc=ZZ\r\n"
    # a multipart's binary leaf is re-encoded, its text part left alone
    message = (
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
        b"Content-Transfer-Encoding: binary\r\n\r\n\x00\x00\r\n--x\r\n\r\ntext\r\n--x--\r\n"
    )
    assert encode_binary_parts(message) == (
        b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAA=\r\n--x\r\n\r\ntext\r\n--x--\r\n"
    )
    # a NUL in a part without an encoding that could carry it is re-encoded too
    assert encode_binary_parts(b"Subject: x\r\n\r\na\x00b") == (
        b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nYQBi\r\n"
    )
    assert encode_binary_parts(b"Subject: x\r\n\r\nplain\r\n") == b"Subject: x\r\n\r\nplain\r\n"
    assert bodypart_structure(MIXED, (1,)) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "base64" 21 1 NIL NIL NIL NIL)'
    )
    assert bodypart_structure(MIXED, (1,), binary=True) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "base64" 11 0 NIL NIL NIL NIL)'
    )
    assert bodypart_structure(MIXED, (7,)) is None
