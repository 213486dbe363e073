"""Transcripts of APPEND's extensions: MULTIAPPEND (RFC 3502: several messages, all or
none, APPENDUID with a UID set) and CATENATE (RFC 4469: TEXT and URL parts, IMAP URLs to
parts of the user's own messages, BADURL, TOOBIG, TRYCREATE), and IMAP URL parsing
(RFC 5092); bad input is answered BAD or NO with nothing stored."""

from __future__ import annotations

import pytest

from casarray.access.imap.imapurl import BadUrl, parse
from casarray.access.imap.session import Limits
from tests.access.imap.fakes import FakeMailboxStore, logged_in, message, rx, transcript

HELLO = b"From: foo@example.com\r\n\r\nHello world body\r\n"


def literal(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def store_with_hello() -> tuple[FakeMailboxStore, int]:
    store = FakeMailboxStore()
    store.append("INBOX", HELLO)
    return store, store.folder("INBOX").uid_validity


def bodies(store: FakeMailboxStore, folder: str) -> list[bytes]:
    return [store.body(folder, info.uid) for info in store.messages(folder)]


def test_multiappend_stores_all_messages_in_one_go() -> None:
    session, store = logged_in()
    one, two = message("mail1"), message("mail2")
    validity = store.folder("Sent").uid_validity
    transcript(
        session,
        [
            (
                b"a1 APPEND Sent (\\Seen) " + literal(one) + b' (\\Flagged) "05-Jan-2024 10:00:00 '
                b'+0100" ' + literal(two) + b"\r\n",
                b"a1 OK [APPENDUID %d 1:2] APPEND completed\r\n" % validity,
            ),
        ],
    )
    assert bodies(store, "Sent") == [one, two]
    assert [sorted(m.flags) for m in store.messages("Sent")] == [["\\Seen"], ["\\Flagged"]]
    assert store.calls["append_many"] == 1


def test_multiappend_is_all_or_none() -> None:
    session, store = logged_in(limits=Limits(max_literal=1000))
    transcript(
        session,
        [
            (  # the second message is empty: nothing is stored
                b"a1 APPEND INBOX " + literal(message("x")) + b" {0+}\r\n\r\n",
                b"a1 NO An empty message can't be appended\r\n",
            ),
            (
                b"a2 APPEND Nowhere "
                + literal(message("x"))
                + b" "
                + literal(message("y"))
                + b"\r\n",
                b"a2 NO [TRYCREATE] Mailbox doesn't exist: Nowhere\r\n",
            ),
            (
                b"a3 APPEND INBOX " + literal(message("x")) + b" hello\r\n",
                rx(rb"a3 BAD APPEND: Expected the message as a literal .*\r\n"),
            ),
        ],
    )
    assert store.folder("INBOX").exists == 0


def test_catenate_joins_text_and_url_parts() -> None:
    store, validity = store_with_hello()
    session, store = logged_in(store)
    transcript(
        session,
        [
            (
                b'c1 APPEND Sent CATENATE (URL "/INBOX/;uid=1/;section=header" TEXT '
                + literal(b"body1\r\n")
                + b")\r\n",
                rx(rb"c1 OK \[APPENDUID \d+ 1\] APPEND completed\r\n"),
            ),
            (
                b'c2 APPEND Sent (\\Seen) CATENATE (TEXT {14+}\r\nSubject: new\r\n URL "/INBOX;'
                b'UIDVALIDITY=%d/;UID=1/;SECTION=TEXT" URL "/inbox/;uid=1/;partial=6.5")\r\n'
                % validity,
                rx(rb"c2 OK \[APPENDUID \d+ 2\] APPEND completed\r\n"),
            ),
            (  # MULTIAPPEND of a CATENATE and a literal
                b'c3 APPEND Sent CATENATE (URL "/INBOX/;uid=1") '
                + literal(b"New: x\r\n\r\n4\r\n")
                + b"\r\n",
                rx(rb"c3 OK \[APPENDUID \d+ 3:4\] APPEND completed\r\n"),
            ),
        ],
    )
    assert bodies(store, "Sent") == [
        b"From: foo@example.com\r\n\r\nbody1\r\n",
        b"Subject: new\r\nHello world body\r\nfoo@e",
        HELLO,
        b"New: x\r\n\r\n4\r\n",
    ]
    assert sorted(store.messages("Sent")[1].flags) == ["\\Seen"]


def test_catenate_with_a_bad_url_stores_nothing() -> None:
    store, _ = store_with_hello()
    session, store = logged_in(store)
    text = literal(b"hdr: 1\r\n\r\n")
    transcript(
        session,
        [
            (
                b"c1 APPEND Sent CATENATE (TEXT " + text + b' URL "/INBOX;UIDVALIDITY=12345/;'
                b'UID=1/;SECTION=HEADER")\r\n',
                b"c1 NO [BADURL /INBOX;UIDVALIDITY=12345/;UID=1/;SECTION=HEADER] The "
                b"UIDVALIDITY of INBOX is not 12345\r\n",
            ),
            (
                b'c2 APPEND Sent CATENATE (URL "/INBOX/;UID=9")\r\n',
                b"c2 NO [BADURL /INBOX/;UID=9] No message with UID 9 in INBOX\r\n",
            ),
            (
                b'c3 APPEND Sent CATENATE (URL "imap://bob@lab.net/INBOX/;UID=1")\r\n',
                rx(rb"c3 NO \[BADURL imap://bob@lab.net/INBOX/;UID=1\] .*another user.*\r\n"),
            ),
            (
                b'c4 APPEND Sent CATENATE (URL "/INBOX/;UID=1/;SECTION=BOGUS")\r\n',
                rx(rb"c4 NO \[BADURL /INBOX/;UID=1/;SECTION=BOGUS\] Invalid section .*\r\n"),
            ),
            (
                b'c5 APPEND Sent CATENATE (URL "http://x/") ' + literal(message("ok")) + b"\r\n",
                rx(rb"c5 NO \[BADURL http://x/\] Not an IMAP URL .*\r\n"),
            ),
            (  # the destination is checked first
                b'c6 APPEND Nowhere CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=1")\r\n',
                b"c6 NO [TRYCREATE] Mailbox doesn't exist: Nowhere\r\n",
            ),
            (b"c7 APPEND Sent CATENATE (BODY {1+}\r\nx)\r\n", rx(rb"c7 BAD .*TEXT or URL\r\n")),
            (b"c8 APPEND Sent CATENATE ()\r\n", rx(rb"c8 BAD .*TEXT or URL.*\r\n")),
            (b'c9 APPEND Sent CATENATE (TEXT "x")\r\n', rx(rb"c9 BAD .*literal.*\r\n")),
        ],
    )
    assert store.folder("Sent").exists == 0


def test_catenate_too_big() -> None:
    store, _ = store_with_hello()
    session, store = logged_in(store, limits=Limits(max_literal=60))
    transcript(
        session,
        [
            (
                b'c1 APPEND Sent CATENATE (URL "/INBOX/;UID=1" URL "/INBOX/;UID=1")\r\n',
                b"c1 NO [TOOBIG] The message would be 86 bytes; the limit is 60\r\n",
            ),
        ],
    )
    assert store.folder("Sent").exists == 0


def test_imap_urls() -> None:
    url = parse(
        "imap://alice@lab.net/Sent%20Items;UIDVALIDITY=7/;UID=3/;SECTION=1.2/;PARTIAL=0.10"
        ";EXPIRE=2030-01-01T00:00:00Z;URLAUTH=user+bob%40lab.net:internal:" + "ab" * 16
    )
    assert (url.user, url.host, url.owner) == ("alice", "lab.net", "alice@lab.net")
    assert (url.mailbox, url.uid_validity, url.uid, url.section) == ("Sent Items", 7, 3, "1.2")
    assert url.partial == (0, 10) and url.expire is not None and url.expire.year == 2030
    assert (url.access, url.mechanism, url.token) == ("user+bob@lab.net", "internal", "ab" * 16)
    assert url.rump.endswith(";URLAUTH=user+bob%40lab.net")
    assert url.owned_by("ALICE@lab.net") and not url.owned_by("bob@lab.net")
    relative = parse("/INBOX/;uid=1")
    assert relative.owner is None and relative.owned_by("anyone@lab.net")
    for bad, reason in [
        ("INBOX/;UID=1", "Not an IMAP URL"),
        ("/INBOX", "names no message"),
        ("/INBOX/;UID=0", "Invalid UID"),
        ("/INBOX/;UID=1/;FOO=2", "Unknown URL parameter FOO"),
        ("/INBOX/;UID=1/;UID=2", "twice"),
        ("/INBOX/;UID=1;URLAUTH=anonymous:internal:12", "verifier"),
        ("imap://lab.net/INBOX/;UID=1", "names no user"),
        ("/INBOX/;UID=1/;PARTIAL=x", "Invalid PARTIAL"),
    ]:
        with pytest.raises(BadUrl, match=reason):
            parse(bad)
