"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267): `RETURN (UPDATE)` keeps a result live;
the session's own changes and other sessions' (seen at the next command or while
idling) bring `ADDTO`/`REMOVEFROM`, expunged messages leave the result before their
EXPUNGE, CANCELUPDATE and closing the mailbox end the contexts, and a bad
CANCELUPDATE changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from casarray.access.imap.search_context import MAX_CONTEXTS
from tests.access.imap.fakes import FakeMailboxStore, message, rx, selected, sent, transcript

BASE = datetime(2024, 1, 1, tzinfo=UTC)


def store_of(count: int) -> FakeMailboxStore:
    store = FakeMailboxStore()
    for n in range(1, count + 1):
        raw = message(f"s{n}{n}", f"Body {n}.")
        store.append("INBOX", raw, [], BASE + timedelta(hours=(n * 7) % 5))
    return store


def test_update_follows_the_sessions_own_changes_until_cancelled() -> None:
    session, store = selected(store_of(5))
    transcript(
        session,
        [
            (b"a1 CAPABILITY\r\n", rx(rb".* CONTEXT=SEARCH CONTEXT=SORT.*")),
            (
                b"a2 SEARCH RETURN (UPDATE) BODY body SEEN\r\n",
                b'* ESEARCH (TAG "a2")\r\na2 OK SEARCH completed\r\n',
            ),
            (
                b"a3 STORE 1,2,4 +FLAGS.SILENT (\\Seen)\r\n",
                b'* ESEARCH (TAG "a2") ADDTO (0 1:2,4)\r\na3 OK STORE completed\r\n',
            ),
            (
                b"a4 STORE 1,2 -FLAGS.SILENT (\\Seen)\r\n",
                b'* ESEARCH (TAG "a2") REMOVEFROM (0 1:2)\r\na4 OK STORE completed\r\n',
            ),
            (b"a5 STORE 3:5 +FLAGS.SILENT (\\Deleted)\r\n", b"a5 OK STORE completed\r\n"),
            (
                b"a6 EXPUNGE\r\n",
                # numbered while message 4 still exists: before its EXPUNGE
                b'* ESEARCH (TAG "a2") REMOVEFROM (0 4)\r\n'
                b"* 3 EXPUNGE\r\n* 3 EXPUNGE\r\n* 3 EXPUNGE\r\na6 OK EXPUNGE completed\r\n",
            ),
        ],
    )
    store.append("INBOX", message("new", "body"), ["\\Seen"])
    transcript(
        session,
        [
            (
                b"a7 NOOP\r\n",
                b'* 3 EXISTS\r\n* 3 RECENT\r\n* ESEARCH (TAG "a2") ADDTO (0 3)\r\n'
                b"a7 OK NOOP completed\r\n",
            ),
            (b'a8 CANCELUPDATE "a2"\r\n', b"a8 OK CANCELUPDATE completed\r\n"),
            (b"a9 STORE 1 +FLAGS.SILENT (\\Seen)\r\n", b"a9 OK STORE completed\r\n"),
        ],
    )


def test_uid_context_with_all_sees_other_sessions_changes() -> None:
    store = store_of(5)
    session, _ = selected(store)
    other, _ = selected(store)
    transcript(
        session,
        [
            (b"a1 STORE 1,2 +FLAGS.SILENT (\\Seen)\r\n", b"a1 OK STORE completed\r\n"),
            (
                b"a2 UID SEARCH RETURN (UPDATE ALL) OR SEEN SUBJECT s33\r\n",
                b'* ESEARCH (TAG "a2") UID ALL 1:3\r\na2 OK UID SEARCH completed\r\n',
            ),
        ],
    )
    sent(other.feed(b"b1 STORE 1 -FLAGS.SILENT (\\Seen)\r\nb2 STORE 5 +FLAGS.SILENT (\\Seen)\r\n"))
    sent(other.feed(b"b3 STORE 2 +FLAGS.SILENT (\\Deleted)\r\nb4 EXPUNGE\r\n"))
    transcript(
        session,
        [
            (
                b"a3 NOOP\r\n",
                b'* ESEARCH (TAG "a2") UID REMOVEFROM (0 2)\r\n'
                b"* 2 EXPUNGE\r\n"
                b"* 1 FETCH (FLAGS (\\Recent))\r\n"
                b"* 4 FETCH (FLAGS (\\Recent \\Seen))\r\n"
                b'* ESEARCH (TAG "a2") UID REMOVEFROM (0 1) ADDTO (0 5)\r\n'
                b"a3 OK NOOP completed\r\n",
            ),
        ],
    )


def test_min_max_count_are_sent_again_when_they_change() -> None:
    session, _ = selected(store_of(4))
    transcript(
        session,
        [
            (
                b"a1 SEARCH RETURN (UPDATE MIN MAX COUNT) FLAGGED\r\n",
                b'* ESEARCH (TAG "a1") COUNT 0\r\na1 OK SEARCH completed\r\n',
            ),
            (
                b"a2 STORE 2:3 +FLAGS.SILENT (\\Flagged)\r\n",
                b'* ESEARCH (TAG "a1") MIN 2 MAX 3 COUNT 2\r\na2 OK STORE completed\r\n',
            ),
            # a change that leaves them as they are says nothing
            (b"a3 STORE 1 +FLAGS.SILENT (\\Seen)\r\n", b"a3 OK STORE completed\r\n"),
        ],
    )


def test_sort_context_places_messages_by_position() -> None:
    # arrival hours: 1 -> 2, 2 -> 4, 3 -> 1, 4 -> 3, 5 -> 0
    session, _ = selected(store_of(5))
    transcript(
        session,
        [
            (b"a1 STORE 1:3 +FLAGS.SILENT (\\Flagged)\r\n", b"a1 OK STORE completed\r\n"),
            (
                b"a2 SORT RETURN (UPDATE ALL) (ARRIVAL) US-ASCII FLAGGED\r\n",
                b'* ESEARCH (TAG "a2") ALL 3,1:2\r\na2 OK SORT completed\r\n',
            ),
            (
                b"a3 STORE 4:5 +FLAGS.SILENT (\\Flagged)\r\n",
                b'* ESEARCH (TAG "a2") ADDTO (3 4) ADDTO (1 5)\r\na3 OK STORE completed\r\n',
            ),
            (
                b"a4 STORE 1 -FLAGS.SILENT (\\Flagged)\r\n",
                b'* ESEARCH (TAG "a2") REMOVEFROM (3 1)\r\na4 OK STORE completed\r\n',
            ),
            (
                b"a5 SORT RETURN (ALL) (ARRIVAL) US-ASCII FLAGGED\r\n",
                b'* ESEARCH (TAG "a5") ALL 5,3:4,2\r\na5 OK SORT completed\r\n',
            ),
        ],
    )


def test_idle_sends_updates_for_other_sessions_changes() -> None:
    store = store_of(2)
    session, _ = selected(store)
    other, _ = selected(store)
    sent(session.feed(b"a1 SEARCH RETURN (UPDATE) SEEN\r\n"))
    assert sent(session.feed(b"a2 IDLE\r\n")) == b"+ idling\r\n"
    sent(other.feed(b"b1 STORE 2 +FLAGS.SILENT (\\Seen)\r\n"))
    out = sent(session.poll())
    assert out == b'* 2 FETCH (FLAGS (\\Recent \\Seen))\r\n* ESEARCH (TAG "a1") ADDTO (0 2)\r\n'
    assert sent(session.feed(b"DONE\r\n")) == b"a2 OK IDLE terminated\r\n"


def test_closing_the_mailbox_ends_every_context() -> None:
    session, _ = selected(store_of(2))
    transcript(
        session,
        [
            (
                b"a1 SEARCH RETURN (UPDATE) SEEN\r\n",
                b'* ESEARCH (TAG "a1")\r\na1 OK SEARCH completed\r\n',
            ),
            (b"a2 UNSELECT\r\n", b"a2 OK UNSELECT completed\r\n"),
            (b"a3 SELECT INBOX\r\n", rx(rb".*a3 OK \[READ-WRITE\] SELECT completed\r\n")),
            (b"a4 STORE 1 +FLAGS.SILENT (\\Seen)\r\n", b"a4 OK STORE completed\r\n"),
            (
                b'a5 CANCELUPDATE "a1"\r\n',
                b"a5 BAD No search context has the tag 'a1'; none was ended\r\n",
            ),
        ],
    )


def test_bad_cancelupdate_changes_nothing() -> None:
    session, _ = selected(store_of(2))
    transcript(
        session,
        [
            (
                b"a1 SEARCH RETURN (UPDATE) SEEN\r\n",
                b'* ESEARCH (TAG "a1")\r\na1 OK SEARCH completed\r\n',
            ),
            (
                b'a2 CANCELUPDATE "a1" "zz"\r\n',
                b"a2 BAD No search context has the tag 'zz'; none was ended\r\n",
            ),
            (b"a3 CANCELUPDATE\r\n", rx(rb"a3 BAD CANCELUPDATE: CANCELUPDATE needs the tag.*")),
            (
                b"a4 CANCELUPDATE a1\r\n",
                rx(rb"a4 BAD CANCELUPDATE: Expected the tag of a search.*"),
            ),
            # a1 is still live
            (
                b"a5 STORE 2 +FLAGS.SILENT (\\Seen)\r\n",
                b'* ESEARCH (TAG "a1") ADDTO (0 2)\r\na5 OK STORE completed\r\n',
            ),
            (
                b"a6 SEARCH RETURN (UPDATE PARTIAL 1:2) ALL\r\n",
                rx(rb"a6 BAD SEARCH: RETURN PARTIAL with UPDATE.*"),
            ),
        ],
    )


def test_a_context_keyed_on_sequence_numbers_is_evaluated_again_after_expunges() -> None:
    session, _ = selected(store_of(4))
    transcript(
        session,
        [
            (
                b"a1 SEARCH RETURN (UPDATE ALL) 2\r\n",
                b'* ESEARCH (TAG "a1") ALL 2\r\na1 OK SEARCH completed\r\n',
            ),
            (b"a2 STORE 1 +FLAGS.SILENT (\\Deleted)\r\n", b"a2 OK STORE completed\r\n"),
            (
                b"a3 EXPUNGE\r\n",
                # the message that was 3 is number 2 now
                b"* 1 EXPUNGE\r\n"
                b'* ESEARCH (TAG "a1") REMOVEFROM (0 1) ADDTO (0 2)\r\n'
                b"a3 OK EXPUNGE completed\r\n",
            ),
        ],
    )


def test_too_many_contexts_are_refused_with_noupdate() -> None:
    session, _ = selected(store_of(2))
    for n in range(MAX_CONTEXTS):
        out = sent(session.feed(f"c{n} SEARCH RETURN (UPDATE) SEEN\r\n".encode()))
        assert out.endswith(f"c{n} OK SEARCH completed\r\n".encode()), out
    transcript(
        session,
        [
            (
                b"a1 SORT RETURN (UPDATE COUNT) (SIZE) US-ASCII SEEN\r\n",
                b'* ESEARCH (TAG "a1") COUNT 0\r\n'
                b'* NO [NOUPDATE "a1"] Too many live results to keep this one updated\r\n'
                b"a1 OK SORT completed\r\n",
            ),
            # the same tag again replaces its context
            (b"c0 SEARCH RETURN (UPDATE) SEEN\r\n", rx(rb".*c0 OK SEARCH completed\r\n")),
            (b'a2 CANCELUPDATE "c1"\r\n', b"a2 OK CANCELUPDATE completed\r\n"),
            (b"a3 SEARCH RETURN (UPDATE) SEEN\r\n", rx(rb".*a3 OK SEARCH completed\r\n")),
        ],
    )
