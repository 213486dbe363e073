"""Transcripts of CONDSTORE and QRESYNC (RFC 7162): ENABLE, the enabling commands and
HIGHESTMODSEQ, FETCH MODSEQ and CHANGEDSINCE, STORE UNCHANGEDSINCE with MODIFIED,
SEARCH MODSEQ, STATUS HIGHESTMODSEQ, SELECT (QRESYNC ...) with VANISHED (EARLIER),
VANISHED instead of EXPUNGE, and the CLOSED response code."""

from __future__ import annotations

from tests.access.imap.fakes import FakeMailboxStore, logged_in, message, rx, selected, transcript


def three() -> FakeMailboxStore:
    """INBOX with three messages at modseqs 2, 3 and 4."""
    store = FakeMailboxStore()
    for n in range(3):
        store.append("INBOX", message(f"m{n}"))
    return store


def test_enable_reports_only_what_it_turned_on() -> None:
    session, _ = logged_in(three())
    transcript(
        session,
        [
            (
                b"a1 ENABLE QRESYNC X-UNKNOWN\r\n",
                b"* ENABLED QRESYNC\r\na1 OK ENABLE completed\r\n",
            ),
            (b"a2 ENABLE CONDSTORE QRESYNC\r\n", b"* ENABLED\r\na2 OK ENABLE completed\r\n"),
            (b"a3 SELECT INBOX\r\n", rx(rb".*\* OK \[HIGHESTMODSEQ 4\] .*a3 OK \[READ-WRITE\].*")),
        ],
    )


def test_select_condstore_and_fetch_modseq() -> None:
    session, _ = logged_in(three())
    transcript(
        session,
        [
            (b"a1 SELECT INBOX (CONDSTORE)\r\n", rx(rb".*\* OK \[HIGHESTMODSEQ 4\] .*a1 OK.*")),
            (
                b"a2 FETCH 2:3 (MODSEQ)\r\n",
                b"* 2 FETCH (MODSEQ (3))\r\n* 3 FETCH (MODSEQ (4))\r\na2 OK FETCH completed\r\n",
            ),
            (
                b"a3 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 3)\r\n",
                b"* 3 FETCH (UID 3 FLAGS (\\Recent) MODSEQ (4))\r\na3 OK UID FETCH completed\r\n",
            ),
        ],
    )


def test_fetch_modseq_enables_condstore_with_highestmodseq() -> None:
    session, _ = selected(three())
    transcript(
        session,
        [
            (
                b"a1 FETCH 1 MODSEQ\r\n",
                b"* OK [HIGHESTMODSEQ 4] Highest\r\n* 1 FETCH (MODSEQ (2))\r\n"
                b"a1 OK FETCH completed\r\n",
            ),
            (  # from now on flag changes carry the modseq
                b"a2 STORE 1 +FLAGS (\\Seen)\r\n",
                b"* 1 FETCH (FLAGS (\\Recent \\Seen) MODSEQ (5))\r\na2 OK STORE completed\r\n",
            ),
            (
                b"a3 STORE 1 +FLAGS.SILENT (\\Flagged)\r\n",
                rx(rb"\* 1 FETCH \(MODSEQ \(6\)\)\r\na3 OK.*"),
            ),
            (  # \Seen set by a body fetch: its FLAGS come with the MODSEQ
                b"a4 FETCH 2 BODY[TEXT]\r\n",
                rx(rb"\* 2 FETCH \(FLAGS \(\\Recent \\Seen\) MODSEQ \(7\) BODY\[TEXT\] .*a4 OK.*"),
            ),
        ],
    )


def test_store_unchangedsince_reports_modified() -> None:
    store = three()
    session, _ = selected(store)
    other, _ = selected(store)
    transcript(other, [(b"b1 STORE 2 +FLAGS (x)\r\n", rx(rb".*b1 OK.*"))])  # 2 is at 5 now
    transcript(
        session,
        [
            (
                b"a1 STORE 1:3 (UNCHANGEDSINCE 4) +FLAGS.SILENT (\\Deleted)\r\n",
                rx(
                    rb"\* OK \[HIGHESTMODSEQ 4\] Highest\r\n"
                    rb"\* 1 FETCH \(MODSEQ \(6\)\)\r\n\* 3 FETCH \(MODSEQ \(6\)\)\r\n"
                    rb".*a1 OK \[MODIFIED 2\] Conditional STORE failed.*"
                ),
            ),
            (
                b"a2 UID STORE 1:3 (UNCHANGEDSINCE 0) -FLAGS (\\Deleted)\r\n",
                b"a2 OK [MODIFIED 1:3] Conditional STORE failed for some messages\r\n",
            ),
        ],
    )
    assert [sorted(m.flags) for m in store.messages("INBOX")] == [
        ["\\Deleted"],
        ["x"],
        ["\\Deleted"],
    ]


def test_search_modseq_and_status_highestmodseq() -> None:
    session, _ = selected(three())
    transcript(
        session,
        [
            (
                b'a1 SEARCH MODSEQ "/flags/\\\\seen" all 3\r\n',
                b"* OK [HIGHESTMODSEQ 4] Highest\r\n* SEARCH 2 3 (MODSEQ 4)\r\n"
                b"a1 OK SEARCH completed\r\n",
            ),
            (b"a2 UID SEARCH MODSEQ 9\r\n", b"* SEARCH\r\na2 OK UID SEARCH completed\r\n"),
            (
                b"a3 STATUS INBOX (MESSAGES HIGHESTMODSEQ)\r\n",
                b'* STATUS "INBOX" (MESSAGES 3 HIGHESTMODSEQ 4)\r\na3 OK STATUS completed\r\n',
            ),
            (b"a4 SEARCH MODSEQ x\r\n", rx(rb"a4 BAD .*mod-sequence.*")),
            (b'a5 SEARCH MODSEQ "/x" all 1\r\n', rx(rb"a5 BAD .*entry name.*")),
        ],
    )


def test_qresync_select_reports_vanished_earlier_and_changed_flags() -> None:
    store = three()
    uid_validity = store.folder("INBOX").uid_validity
    store.store_flags("INBOX", [2], "add", ["\\Deleted"])  # modseq 5
    store.expunge("INBOX", [2])  # modseq 6
    store.store_flags("INBOX", [3], "add", ["\\Seen"])  # modseq 7
    session, _ = logged_in(store)
    transcript(
        session,
        [
            (b"a1 SELECT INBOX (QRESYNC (1 1))\r\n", rx(rb"a1 BAD .*ENABLE QRESYNC.*")),
            (b"a2 ENABLE QRESYNC\r\n", rx(rb"\* ENABLED QRESYNC\r\na2 OK.*")),
            (
                b"a3 SELECT INBOX (QRESYNC (%d 4 1:9))\r\n" % uid_validity,
                rx(
                    rb".*\* OK \[HIGHESTMODSEQ 7\] Highest\r\n"
                    rb"\* VANISHED \(EARLIER\) 2\r\n"
                    rb"\* 2 FETCH \(UID 3 FLAGS \(\\Recent \\Seen\) MODSEQ \(7\)\)\r\n"
                    rb"a3 OK \[READ-WRITE\] SELECT completed\r\n"
                ),
            ),
            (  # another UIDVALIDITY: nothing but the SELECT; and the previous one CLOSED
                b"a4 EXAMINE INBOX (QRESYNC (1 3))\r\n",
                rx(rb"\* OK \[CLOSED\] (?!.*VANISHED).*a4 OK \[READ-ONLY\].*"),
            ),
            (
                b"a5 UID FETCH 1:* FLAGS (CHANGEDSINCE 4 VANISHED)\r\n",
                rx(
                    rb"\* VANISHED \(EARLIER\) 2\r\n"
                    rb"\* 2 FETCH \(UID 3 FLAGS \(\\Seen\) MODSEQ \(7\)\)\r\na5 OK.*"
                ),
            ),
            (  # with QRESYNC every FETCH response has the UID
                b"a6 FETCH 2 FLAGS\r\n",
                b"* 2 FETCH (UID 3 FLAGS (\\Seen) MODSEQ (7))\r\na6 OK FETCH completed\r\n",
            ),
            (b"a6 FETCH 1:* FLAGS (CHANGEDSINCE 3 VANISHED)\r\n", rx(rb"a6 BAD .*VANISHED.*")),
            (b"a7 UID FETCH 1:* FLAGS (VANISHED)\r\n", rx(rb"a7 BAD .*CHANGEDSINCE.*")),
            (b"a8 SELECT INBOX (QRESYNC (1))\r\n", rx(rb"a8 BAD .*after the UIDVALIDITY.*")),
        ],
    )


def test_expunges_go_out_as_vanished_once_qresync_is_on() -> None:
    store = three()
    session, _ = logged_in(store)
    transcript(
        session,
        [
            (b"a1 ENABLE QRESYNC\r\n", rx(rb".*a1 OK.*")),
            (b"a2 SELECT INBOX\r\n", rx(rb".*a2 OK.*")),
            (b"a3 STORE 1:2 +FLAGS.SILENT (\\Deleted)\r\n", rx(rb".*a3 OK.*")),
            (b"a4 EXPUNGE\r\n", b"* VANISHED 1:2\r\na4 OK EXPUNGE completed\r\n"),
        ],
    )
    other, _ = selected(store)
    transcript(other, [(b"b1 STORE 1 +FLAGS (\\Deleted)\r\n", rx(rb".*b1 OK.*"))])
    transcript(other, [(b"b2 EXPUNGE\r\n", rx(rb"\* 1 EXPUNGE\r\nb2 OK.*"))])
    transcript(
        session,
        [
            (b"a5 UID EXPUNGE 1:*\r\n", b"* VANISHED 3\r\na5 OK UID EXPUNGE completed\r\n"),
            (b"a6 FETCH 1:* UID\r\n", b"a6 OK FETCH completed\r\n"),
        ],
    )


def test_malformed_modifiers_are_bad() -> None:
    session, store = selected(three())
    transcript(
        session,
        [
            (b"a1 STORE 1 (FOO 1) +FLAGS x\r\n", rx(rb"a1 BAD .*Unknown store modifier FOO.*")),
            (b"a2 FETCH 1 FLAGS (CHANGEDSINCE)\r\n", rx(rb"a2 BAD .*")),
            (b"a3 FETCH 1 FLAGS (FOO)\r\n", rx(rb"a3 BAD .*Unknown fetch modifier FOO.*")),
            (b"a4 SELECT INBOX (FOO)\r\n", rx(rb"a4 BAD .*Unknown SELECT parameter FOO.*")),
            (b"a5 STORE 1 (UNCHANGEDSINCE 99999999999999999999) +FLAGS x\r\n", rx(rb"a5 BAD .*")),
        ],
    )
    assert all("x" not in m.flags for m in store.messages("INBOX"))
