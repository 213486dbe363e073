"""Transcripts of the selected state: FETCH (every item, sections, partials, \\Seen),
STORE, COPY, MOVE, EXPUNGE, the UID forms, and SEARCH with every RFC 3501 key; FETCH
responses also go through imaplib's parser (and IMAPClient's, on top of it)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from imapclient import IMAPClient

from casarray.mailstore.mime import cached_parts, fetch_section
from tests.access.imap.fakes import (
    FakeMailboxStore,
    LoopbackIMAP4,
    logged_in,
    rx,
    selected,
    sent,
    transcript,
)

REPORT = (
    b"From: Alice Liddell <alice@lab.net>\r\n"
    b"To: Bob <bob@lab.net>\r\n"
    b"Cc: carol@lab.net\r\n"
    b"Date: Thu, 01 Feb 2024 09:30:00 +0100\r\n"
    b"Subject: Quarterly report\r\n"
    b"Message-ID: <report@lab.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Numbers are up.\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=us-ascii\r\n"
    b"\r\n"
    b"<p>Numbers are <b>up</b>.</p>\r\n"
    b"--b1--\r\n"
)
CAFE = (
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@lab.net>\r\n"
    b"To: alice@lab.net\r\n"
    b"Date: Sat, 09 Mar 2024 23:10:00 -0800\r\n"
    b"Subject: =?utf-8?b?Q2Fmw6k=?=\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Let's meet at the caf\xc3\xa9.\r\n"
)
SPAM = (
    b"From: bob@lab.net\r\n"
    b"To: alice@lab.net\r\n"
    b"Bcc: dave@lab.net\r\n"
    b"X-Spam: yes\r\n"
    b"Subject: Buy now\r\n"
    b"\r\n" + b"Cheap watches. " * 100 + b"\r\n"
)


def store3() -> FakeMailboxStore:
    store = FakeMailboxStore()
    store.append("INBOX", REPORT, ["\\Seen"], datetime(2024, 2, 1, 8, 31, 5, tzinfo=UTC))
    store.append("INBOX", CAFE, ["\\Flagged", "$Work"], datetime(2024, 3, 10, 7, 11, tzinfo=UTC))
    store.append(
        "INBOX",
        SPAM,
        ["\\Deleted", "\\Answered", "\\Draft"],
        datetime(2024, 4, 1, 12, 0, tzinfo=UTC),
    )
    return store


def session3(**options: object):  # type: ignore[no-untyped-def]
    return selected(store3(), **options)


def lit(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


# -- FETCH --------------------------------------------------------------------------


def test_fetch_metadata_items_in_a_stable_order() -> None:
    session, _ = session3()
    transcript(
        session,
        [
            (
                b"a1 FETCH 1:2 (RFC822.SIZE FLAGS INTERNALDATE UID)\r\n",
                b'* 1 FETCH (UID 1 FLAGS (\\Recent \\Seen) INTERNALDATE "01-Feb-2024 08:31:05 '
                b'+0000" RFC822.SIZE %d)\r\n'
                b'* 2 FETCH (UID 2 FLAGS (\\Recent \\Flagged $Work) INTERNALDATE "10-Mar-2024 '
                b'07:11:00 +0000" RFC822.SIZE %d)\r\n'
                b"a1 OK FETCH completed\r\n" % (len(REPORT), len(CAFE)),
            ),
            (
                b"a2 FETCH * FAST\r\n",
                b"* 3 FETCH (FLAGS (\\Recent \\Answered \\Deleted \\Draft) INTERNALDATE "
                b'"01-Apr-2024 12:00:00 +0000" RFC822.SIZE %d)\r\na2 OK FETCH completed\r\n'
                % len(SPAM),
            ),
            (b"a3 FETCH 4 FLAGS\r\n", rx(rb"a3 BAD FETCH: invalid message set: .*beyond.*")),
            (
                b"a4 FETCH 3:1 UID\r\n",
                rx(rb"\* 1 FETCH \(UID 1\).*\* 3 FETCH \(UID 3\)\r\na4 OK.*"),
            ),
        ],
    )


def test_fetch_cached_parts() -> None:
    session, _ = session3()
    parts = cached_parts(REPORT)
    env, structure, body = (
        parts.envelope.encode(),
        parts.bodystructure.encode(),
        parts.body.encode(),
    )
    transcript(
        session,
        [
            (
                b"a1 FETCH 1 (BODYSTRUCTURE ENVELOPE BODY)\r\n",
                b"* 1 FETCH (ENVELOPE %s BODY %s BODYSTRUCTURE %s)\r\na1 OK FETCH completed\r\n"
                % (env, body, structure),
            ),
            (
                b"a2 FETCH 1 ALL\r\n",
                rx(
                    rb"\* 1 FETCH \(FLAGS \(\\Recent \\Seen\) INTERNALDATE \"01-Feb-2024 "
                    rb"08:31:05 \+0000\" RFC822.SIZE \d+ ENVELOPE \(\"Thu, 01 Feb 2024.*\)\)\r\n"
                    rb"a2 OK FETCH completed\r\n"
                ),
            ),
            (
                b"a3 FETCH 1 FULL\r\n",
                rx(rb".* BODY \(\(\"text\" \"plain\".*a3 OK FETCH completed\r\n"),
            ),
        ],
    )


def test_fetch_body_sections_and_partials() -> None:
    session, _ = session3()
    header = fetch_section(REPORT, "HEADER")
    text = fetch_section(REPORT, "TEXT")
    transcript(
        session,
        [
            (
                b"a1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (subject from)] BODY.PEEK[1] "
                b"BODY.PEEK[2.MIME])\r\n",
                b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT FROM)] %s BODY[1] %s BODY[2.MIME] %s)\r\n"
                b"a1 OK FETCH completed\r\n"
                % (
                    lit(
                        b"From: Alice Liddell <alice@lab.net>\r\nSubject: Quarterly report\r\n\r\n"
                    ),
                    lit(b"Numbers are up."),
                    lit(b"Content-Type: text/html; charset=us-ascii\r\n\r\n"),
                ),
            ),
            (
                b"a2 FETCH 1 (BODY.PEEK[]<0.4> BODY.PEEK[TEXT]<6.7> BODY.PEEK[]<100000.10>)\r\n",
                b"* 1 FETCH (BODY[]<0> {4}\r\nFrom BODY[TEXT]<6> {7}\r\nContent BODY[]<100000> "
                b"{0}\r\n)\r\na2 OK FETCH completed\r\n",
            ),
            (
                b"a3 FETCH 1 (RFC822.HEADER RFC822.TEXT)\r\n",
                b"* 1 FETCH (RFC822.HEADER %s RFC822.TEXT %s)\r\na3 OK FETCH completed\r\n"
                % (lit(header), lit(text)),
            ),
            (
                b"a4 FETCH 1 (BODY.PEEK[HEADER.FIELDS.NOT (Cc To From Date Message-ID)] "
                b"BODY.PEEK[9])\r\n",
                rx(
                    rb"\* 1 FETCH \(BODY\[HEADER.FIELDS.NOT \(CC TO FROM DATE MESSAGE-ID\)\] "
                    rb"\{\d+\}\r\nSubject: Quarterly report\r\nMIME-Version: 1.0\r\n.*"
                    rb"BODY\[9\] \{0\}\r\n\)\r\na4 OK FETCH completed\r\n"
                ),
            ),
        ],
    )


def test_fetch_body_sets_seen_and_reports_flags() -> None:
    session, store = session3()
    transcript(
        session,
        [
            (
                b"a1 FETCH 2 (BODY.PEEK[TEXT])\r\n",
                b"* 2 FETCH (BODY[TEXT] %s)\r\na1 OK FETCH completed\r\n"
                % lit(b"Let's meet at the caf\xc3\xa9.\r\n"),
            ),
            (
                b"a2 FETCH 2 (BODY[TEXT])\r\n",
                b"* 2 FETCH (FLAGS (\\Recent \\Seen \\Flagged $Work) BODY[TEXT] %s)\r\n"
                b"a2 OK FETCH completed\r\n" % lit(b"Let's meet at the caf\xc3\xa9.\r\n"),
            ),
            (  # already \Seen: no FLAGS
                b"a3 FETCH 2 (BODY[TEXT]<0.3>)\r\n",
                b"* 2 FETCH (BODY[TEXT]<0> {3}\r\nLet)\r\na3 OK FETCH completed\r\n",
            ),
            (
                b"a4 UID FETCH 3 (RFC822.HEADER)\r\n",
                rx(rb"\* 3 FETCH \(UID 3 RFC822.HEADER \{\d+\}\r\n.*\)\r\na4 OK UID FETCH .*"),
            ),
            (
                b"a5 UID FETCH 3 RFC822\r\n",
                b"* 3 FETCH (UID 3 FLAGS (\\Recent \\Seen \\Answered \\Deleted \\Draft) "
                b"RFC822 %s)\r\na5 OK UID FETCH completed\r\n" % lit(SPAM),
            ),
        ],
    )
    assert [sorted(i.flags) for i in store.messages("INBOX")][1:] == [
        ["$Work", "\\Flagged", "\\Seen"],
        ["\\Answered", "\\Deleted", "\\Draft", "\\Seen"],
    ]


def test_fetch_in_a_read_only_mailbox_does_not_set_seen() -> None:
    session, store = logged_in(store3())
    session.feed(b"a1 EXAMINE INBOX\r\n")
    out = sent(session.feed(b"a2 FETCH 2 BODY[]\r\n"))
    assert out.startswith(b"* 2 FETCH (BODY[] {") and b"FLAGS" not in out
    assert "\\Seen" not in store.messages("INBOX")[1].flags


def test_fetch_uses_cached_parts_and_reads_no_body_for_envelopes() -> None:
    session, store = session3()
    store.calls.clear()
    out = sent(session.feed(b"a1 FETCH 1:* (FLAGS ENVELOPE)\r\n"))
    assert out.count(b" FETCH (FLAGS ") == 3
    assert store.calls == {"cached": 1, "changes_since": 1}


def test_fetch_responses_parse_with_imaplib_and_imapclient() -> None:
    session, _ = logged_in(store3())
    client = LoopbackIMAP4(session)
    client.state = "AUTH"
    typ, _ = client.select("INBOX")
    assert typ == "OK"
    typ, data = client.fetch("1:3", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)] RFC822.SIZE)")
    assert typ == "OK"
    literals = [item for item in data if isinstance(item, tuple)]
    assert len(literals) == 3
    assert literals[0][0].startswith(b"1 (UID 1 FLAGS (\\Recent \\Seen) RFC822.SIZE ")
    assert literals[1][1] == b"Subject: =?utf-8?b?Q2Fmw6k=?=\r\n\r\n"
    typ, data = client.uid("FETCH", "2", "(BODY[])")
    assert typ == "OK" and data[0][1] == CAFE  # type: ignore[index]
    typ, data = client.list()
    assert typ == "OK" and b'(\\HasNoChildren \\Sent) "/" "Sent"' in data

    class Client(IMAPClient):
        def _create_IMAP4(self):  # type: ignore[no-untyped-def]
            return LoopbackIMAP4(session2)

    session2, _ = logged_in(store3())
    with Client("loopback", ssl=False) as imap:
        imap._imap.state = "AUTH"
        imap.select_folder("INBOX")
        fetched = imap.fetch([1, 2, 3], ["FLAGS", "ENVELOPE", "BODYSTRUCTURE", "INTERNALDATE"])
        envelope = fetched[1][b"ENVELOPE"]
        assert envelope.subject == b"Quarterly report"
        assert envelope.from_[0].mailbox == b"alice" and envelope.from_[0].host == b"lab.net"
        assert fetched[1][b"BODYSTRUCTURE"].is_multipart
        assert fetched[2][b"FLAGS"] == (b"\\Recent", b"\\Flagged", b"$Work")
        assert fetched[3][b"INTERNALDATE"].year == 2024
        assert imap.search(["UNSEEN", "FROM", "joerg"]) == [2]
        folders = imap.list_folders()
        assert ((b"\\HasNoChildren", b"\\Sent"), b"/", "Sent") in folders
        assert imap.folder_status("INBOX", ["MESSAGES", "UNSEEN"]) == {
            b"MESSAGES": 3,
            b"UNSEEN": 2,
        }


# -- STORE --------------------------------------------------------------------------


def test_store() -> None:
    session, store = session3()
    transcript(
        session,
        [
            (
                b"a1 STORE 1:2 +FLAGS (\\Answered $Done)\r\n",
                b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Done $Work)\r\n"
                b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Done $Work "
                b"\\*)] Flags permitted\r\n"
                b"* 1 FETCH (FLAGS (\\Recent \\Seen \\Answered $Done))\r\n"
                b"* 2 FETCH (FLAGS (\\Recent \\Answered \\Flagged $Done $Work))\r\n"
                b"a1 OK STORE completed\r\n",
            ),
            (
                b"a2 STORE 2 -FLAGS.SILENT \\Flagged $Work\r\n",
                b"a2 OK STORE completed\r\n",
            ),
            (
                b"a3 UID STORE 2:3 FLAGS (\\Seen)\r\n",
                b"* 2 FETCH (UID 2 FLAGS (\\Recent \\Seen))\r\n"
                b"* 3 FETCH (UID 3 FLAGS (\\Recent \\Seen))\r\n"
                b"a3 OK UID STORE completed\r\n",
            ),
            (
                b"a4 STORE 1 FLAGS ()\r\n",
                b"* 1 FETCH (FLAGS (\\Recent))\r\na4 OK STORE completed\r\n",
            ),
            (
                b"a5 STORE 1 +FLAGS (\\Recent)\r\n",
                b"* 1 FETCH (FLAGS (\\Recent))\r\na5 OK STORE completed\r\n",
            ),
            (b"a6 UID STORE 99 +FLAGS (\\Seen)\r\n", b"a6 OK UID STORE completed\r\n"),
            (b"a7 STORE 9 +FLAGS (\\Seen)\r\n", rx(rb"a7 BAD STORE: invalid message set.*")),
            (b"a8 STORE 1 +FLAGS (\\Bogus)\r\n", rx(rb"a8 BAD STORE: Unknown system flag.*")),
        ],
    )
    assert [i.flags for i in store.messages("INBOX")] == [
        frozenset(),
        frozenset({"\\Seen"}),
        frozenset({"\\Seen"}),
    ]


def test_store_and_expunge_refused_read_only() -> None:
    session, _ = logged_in(store3())
    session.feed(b"a1 EXAMINE INBOX\r\n")
    transcript(
        session,
        [
            (
                b"a2 STORE 1 +FLAGS (\\Seen)\r\n",
                b"a2 NO The mailbox is open read-only (EXAMINE)\r\n",
            ),
            (b"a3 EXPUNGE\r\n", b"a3 NO The mailbox is open read-only (EXAMINE)\r\n"),
            (b"a4 UID EXPUNGE 1\r\n", b"a4 NO The mailbox is open read-only (EXAMINE)\r\n"),
            (b"a5 MOVE 1 Trash\r\n", b"a5 NO The mailbox is open read-only (EXAMINE)\r\n"),
            (b"a6 COPY 1 Trash\r\n", b"a6 OK [COPYUID 1004 1 1] COPY completed\r\n"),
        ],
    )


# -- COPY, MOVE, EXPUNGE ------------------------------------------------------------


def test_copy() -> None:
    session, store = session3()
    transcript(
        session,
        [
            (b"a1 COPY 1:2 Archive\r\n", b"a1 OK [COPYUID 1006 1:2 1:2] COPY completed\r\n"),
            (
                b"a2 UID COPY 3,1 Archive\r\n",
                b"a2 OK [COPYUID 1006 1,3 3:4] UID COPY completed\r\n",
            ),
            (b"a3 COPY 1 Nowhere\r\n", b"a3 NO [TRYCREATE] Mailbox doesn't exist: Nowhere\r\n"),
            (b"a4 UID COPY 50:60 Archive\r\n", b"a4 OK UID COPY completed (no messages)\r\n"),
            (
                b"a5 COPY 1 INBOX\r\n",
                b"* 4 EXISTS\r\n* 4 RECENT\r\na5 OK [COPYUID 1001 1 4] COPY completed\r\n",
            ),
        ],
    )
    assert [i.uid for i in store.messages("Archive")] == [1, 2, 3, 4]
    assert store.messages("Archive")[1].flags == frozenset({"\\Flagged", "$Work"})


def test_move() -> None:
    session, store = session3()
    transcript(
        session,
        [
            (
                b"a1 MOVE 2:3 Trash\r\n",
                b"* OK [COPYUID 1004 2:3 1:2] Moved\r\n"
                b"* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n"
                b"a1 OK MOVE completed\r\n",
            ),
            (
                b"a2 UID MOVE 1:* Junk\r\n",
                b"* OK [COPYUID 1005 1 1] Moved\r\n* 1 EXPUNGE\r\na2 OK MOVE completed\r\n",
            ),
            (b"a3 UID MOVE 1:* Junk\r\n", b"a3 OK UID MOVE completed (no messages)\r\n"),
            (b"a4 FETCH 1:* FLAGS\r\n", b"a4 OK FETCH completed\r\n"),
        ],
    )
    assert len(store.messages("Trash")) == 2 and not store.messages("INBOX")
    session, _ = selected(store, "Trash")
    transcript(
        session,
        [
            (b"b1 MOVE 1 Nowhere\r\n", b"b1 NO [TRYCREATE] Mailbox doesn't exist: Nowhere\r\n"),
        ],
    )


def test_move_into_the_selected_mailbox_itself_gives_new_uids() -> None:
    """RFC 6851 allows it; like Dovecot, the messages get new UIDs: COPYUID first, then
    the expunges of the old ones, then EXISTS for the new ones."""
    session, store = session3()
    transcript(
        session,
        [
            (
                b"a1 MOVE 1:2 INBOX\r\n",
                b"* OK [COPYUID 1001 1:2 4:5] Moved\r\n* 1 EXPUNGE\r\n* 1 EXPUNGE\r\n"
                b"* 3 EXISTS\r\n* 3 RECENT\r\na1 OK MOVE completed\r\n",
            ),
            (b"a2 UID FETCH 1:* FLAGS\r\n", rx(rb"\* 1 FETCH \(UID 3 .*\* 3 FETCH \(UID 5 .*")),
        ],
    )
    assert [i.uid for i in store.messages("INBOX")] == [3, 4, 5]


def test_expunge_and_uid_expunge() -> None:
    store = store3()
    for _ in range(3):
        store.append("INBOX", b"Subject: more\r\n\r\nx\r\n")
    store.store_flags("INBOX", [1, 3, 4, 6], "add", ["\\Deleted"])
    session, _ = selected(store)
    transcript(
        session,
        [
            (
                b"a1 UID EXPUNGE 4:6\r\n",
                b"* 4 EXPUNGE\r\n* 5 EXPUNGE\r\na1 OK UID EXPUNGE completed\r\n",
            ),
            (b"a2 EXPUNGE\r\n", b"* 1 EXPUNGE\r\n* 2 EXPUNGE\r\na2 OK EXPUNGE completed\r\n"),
            (
                b"a3 FETCH 1:* UID\r\n",
                b"* 1 FETCH (UID 2)\r\n* 2 FETCH (UID 5)\r\na3 OK FETCH completed\r\n",
            ),
            (b"a4 EXPUNGE\r\n", b"a4 OK EXPUNGE completed\r\n"),
        ],
    )


# -- SEARCH -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ("ALL", "1 2 3"),
        ("ANSWERED", "3"),
        ("UNANSWERED", "1 2"),
        ("DELETED", "3"),
        ("UNDELETED", "1 2"),
        ("DRAFT", "3"),
        ("UNDRAFT", "1 2"),
        ("FLAGGED", "2"),
        ("UNFLAGGED", "1 3"),
        ("SEEN", "1"),
        ("UNSEEN", "2 3"),
        ("KEYWORD $Work", "2"),
        ("UNKEYWORD $Work", "1 3"),
        ("RECENT", "1 2 3"),
        ("NEW", "2 3"),
        ("OLD", ""),
        ("FROM alice", "1"),
        ("FROM jörg", "2"),
        ("TO bob@LAB.net", "1"),
        ("CC carol", "1"),
        ("BCC dave", "3"),
        ("SUBJECT café", "2"),
        ('SUBJECT "quarterly REPORT"', "1"),
        ("HEADER X-Spam yes", "3"),
        ('HEADER X-Spam ""', "3"),
        ('HEADER Message-ID "report@"', "1"),
        ("BODY watches", "3"),
        ("BODY Quarterly", ""),
        ("TEXT Quarterly", "1"),
        ("TEXT café", "2"),
        ("BODY <b>up", "1"),
        ("LARGER 1000", "3"),
        ("SMALLER 400", "2"),
        ("BEFORE 10-Mar-2024", "1"),
        ("ON 10-Mar-2024", "2"),
        ("SINCE 10-Mar-2024", "2 3"),
        ("SENTBEFORE 9-Mar-2024", "1"),
        ("SENTON 9-Mar-2024", "2"),
        ("SENTSINCE 9-Mar-2024", "2 3"),  # no Date: the internal date
        ("NOT SEEN", "2 3"),
        ("OR SEEN FLAGGED", "1 2"),
        ("OR (SEEN ANSWERED) (FLAGGED KEYWORD $Work)", "2"),
        ("2:*", "2 3"),
        ("*", "3"),
        ("1,3 UNSEEN", "3"),
        ("5:9", ""),
        ("UID 2:3", "2 3"),
        ("UID 7:*", "3"),
        ("NOT UID 1", "2 3"),
        ("CHARSET UTF-8 SUBJECT café", "2"),
        ("CHARSET us-ascii ALL", "1 2 3"),
    ],
)
def test_search_keys(criteria: str, expected: str) -> None:
    session, _ = session3()
    command = b"a1 SEARCH " + criteria.encode() + b"\r\n"
    out = sent(session.feed(command))
    assert out == (f"* SEARCH {expected}".rstrip() + "\r\na1 OK SEARCH completed\r\n").encode()


def test_search_with_literal_and_uids() -> None:
    session, store = session3()
    store.expunge("INBOX")  # UID 3 goes; message 3 stays in the map until EXPUNGE may be sent
    transcript(
        session,
        [
            (b"a1 SEARCH CHARSET UTF-8 TEXT {5}\r\n", b"+ Ready for literal data\r\n"),
            ("café\r\n".encode(), b"* SEARCH 2\r\na1 OK SEARCH completed\r\n"),
            (b"a2 SEARCH DELETED\r\n", b"* SEARCH 3\r\na2 OK SEARCH completed\r\n"),
            (
                b"a3 UID SEARCH ALL\r\n",
                b"* 3 EXPUNGE\r\n* SEARCH 1 2\r\na3 OK UID SEARCH completed\r\n",
            ),
            (
                b"a4 SEARCH CHARSET ISO-8859-1 ALL\r\n",
                b"a4 NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset ISO-8859-1\r\n",
            ),
            (b"a5 SEARCH\r\n", rx(rb"a5 BAD SEARCH: Expected a space after SEARCH.*")),
            (b"a6 SEARCH FROB\r\n", b"a6 BAD SEARCH: Unknown search key FROB\r\n"),
        ],
    )


def test_search_on_flags_and_uids_reads_no_bodies() -> None:
    session, store = session3()
    store.calls.clear()
    sent(session.feed(b"a1 UID SEARCH UNSEEN NOT DELETED UID 1:* OR FLAGGED RECENT\r\n"))
    sent(session.feed(b"a2 SEARCH LARGER 10 SINCE 1-Jan-2024\r\n"))
    assert "body" not in store.calls and store.calls.get("messages") == 1
    # FROM/TO/CC/BCC/SUBJECT match the cached envelope (RFC 3501): no body is read.
    sent(session.feed(b"a3 SEARCH FROM bob UNSEEN NOT DELETED\r\n"))
    assert "body" not in store.calls and store.calls.get("cached") == 1
    # Another header is read from the message, only for those the cheaper keys left in.
    sent(session.feed(b"a4 SEARCH HEADER X-Mailer casarray UNSEEN NOT DELETED\r\n"))
    assert store.calls["body"] == 1


def test_search_uid_results_are_uids() -> None:
    store = store3()
    store.store_flags("INBOX", [1], "add", ["\\Deleted"])
    store.expunge("INBOX", [1])
    session, _ = selected(store)
    transcript(
        session,
        [
            (b"a1 UID SEARCH ALL\r\n", b"* SEARCH 2 3\r\na1 OK UID SEARCH completed\r\n"),
            (b"a2 SEARCH ALL\r\n", b"* SEARCH 1 2\r\na2 OK SEARCH completed\r\n"),
        ],
    )


def test_fetch_response_line_shape() -> None:
    session, _ = session3()
    out = sent(session.feed(b"a1 FETCH 1:* (UID FLAGS)\r\n"))
    assert re.fullmatch(
        rb"(\* \d+ FETCH \(UID \d+ FLAGS \([^)]*\)\)\r\n){3}a1 OK FETCH completed\r\n", out
    )


def test_search_from_matches_the_decoded_envelope_field_only() -> None:
    session, _ = session3()
    message = (
        b"From: =?UTF-8?B?5L2g5aW9?= <zed@lab.net>\r\nTo: bob@lab.net\r\nSubject: x\r\n\r\nhi\r\n"
    )
    sent(session.feed(b"a0 APPEND INBOX {%d+}\r\n%s\r\n" % (len(message), message)))
    sent(session.feed(b"n NOOP\r\n"))
    out = sent(session.feed(b'a1 UID SEARCH CHARSET UTF-8 FROM "\xe4\xbd\xa0\xe5\xa5\xbd"\r\n'))
    assert out.startswith(b"* SEARCH 4\r\n"), out
    out = sent(session.feed(b"a2 UID SEARCH FROM zed TO bob\r\n"))
    assert out.startswith(b"* SEARCH 4\r\n"), out
    out = sent(session.feed(b"a3 UID SEARCH FROM bob@lab.net\r\n"))
    assert b" 4" not in out.split(b"\r\n")[0]
