"""Untagged updates for changes made by other sessions (RFC 3501 5.2, 7.4.1) and IDLE
(RFC 2177): two sessions share one fake store, as two Client Access servers share a
mailbox database."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from casarray.access.imap.events import Close, Idling, Send
from casarray.access.imap.session import ImapSession
from casarray.mailstore.interface import Changes
from tests.access.imap.fakes import (
    FakeMailboxStore,
    logged_in,
    message,
    rx,
    selected,
    sent,
    transcript,
)


def shared(count: int = 3) -> tuple[FakeMailboxStore, ImapSession, ImapSession]:
    store = FakeMailboxStore()
    for i in range(count):
        store.append("INBOX", message(f"message {i + 1}"))
    store.take_recent("INBOX")  # as an earlier session would have
    one, _ = selected(store)
    two, _ = selected(store)
    return store, one, two


def test_idle_sees_a_message_appended_by_another_session() -> None:
    _, one, two = shared()
    assert one.feed(b"i1 IDLE\r\n") == [Send(b"+ idling\r\n"), Idling(True)]
    assert one.idling
    assert one.poll() == []
    transcript(
        two,
        [
            (
                b"t1 APPEND INBOX {5+}\r\nhello\r\n",
                b"* 4 EXISTS\r\n* 1 RECENT\r\nt1 OK [APPENDUID 1001 4] APPEND completed\r\n",
            )
        ],
    )
    assert one.poll() == [Send(b"* 4 EXISTS\r\n* 0 RECENT\r\n")]
    assert one.poll() == []
    assert one.feed(b"DONE\r\n") == [Idling(False), Send(b"i1 OK IDLE terminated\r\n")]
    assert not one.idling


def test_recent_never_counts_a_message_not_yet_announced() -> None:
    """A message committed between the session's change check and its taking of
    \\Recent is taken too, but RECENT counts it only once its EXISTS has gone out
    (imaptest's stress load caught `* 2 RECENT` after `* 1 EXISTS`)."""
    store, one, _ = shared()
    check = store.changes_since
    late: list[int] = []

    def racing(folder: str, modseq: int) -> Changes:
        changes = check(folder, modseq)
        if changes.changed and not late:  # another session commits right after the check
            late.append(store.append("INBOX", message("late")).uid)
        return changes

    store.changes_since = racing  # type: ignore[method-assign]
    store.append("INBOX", message("first"))
    transcript(
        one,
        [
            (b"n1 NOOP\r\n", b"* 4 EXISTS\r\n* 1 RECENT\r\nn1 OK NOOP completed\r\n"),
            (b"n2 NOOP\r\n", b"* 5 EXISTS\r\n* 2 RECENT\r\nn2 OK NOOP completed\r\n"),
            (
                b"f1 FETCH 4:5 (FLAGS)\r\n",
                b"* 4 FETCH (FLAGS (\\Recent))\r\n* 5 FETCH (FLAGS (\\Recent))\r\n"
                b"f1 OK FETCH completed\r\n",
            ),
        ],
    )


def test_idle_reports_flags_and_expunges_at_once() -> None:
    _, one, two = shared()
    one.feed(b"i1 IDLE\r\n")
    sent(two.feed(b"t1 STORE 2 +FLAGS (\\Flagged)\r\n"))
    assert one.poll() == [Send(b"* 2 FETCH (FLAGS (\\Flagged))\r\n")]
    sent(two.feed(b"t2 STORE 1,3 +FLAGS.SILENT (\\Deleted)\r\nt3 EXPUNGE\r\n"))
    assert one.poll() == [Send(b"* 1 EXPUNGE\r\n* 2 EXPUNGE\r\n")]
    transcript(
        one,
        [
            (b"done\r\n", b"i1 OK IDLE terminated\r\n"),
            (
                b"i2 FETCH 1:* (UID FLAGS)\r\n",
                b"* 1 FETCH (UID 2 FLAGS (\\Flagged))\r\ni2 OK FETCH completed\r\n",
            ),
        ],
    )


def test_idle_in_the_authenticated_state_and_bad_done() -> None:
    session, _ = logged_in()
    assert session.feed(b"i1 IDLE\r\n") == [Send(b"+ idling\r\n"), Idling(True)]
    assert session.poll() == []
    assert session.feed(b"NOOP\r\n") == [
        Idling(False),
        Send(b"i1 BAD Expected DONE to end IDLE\r\n"),
    ]
    assert sent(session.feed(b"i2 NOOP\r\n")) == b"i2 OK NOOP completed\r\n"


def test_idle_done_split_across_chunks() -> None:
    _, one, _ = shared()
    one.feed(b"i1 IDLE\r\n")
    assert one.feed(b"DO") == []
    assert one.feed(b"NE\r\ni2 NOOP\r\n") == [
        Idling(False),
        Send(b"i1 OK IDLE terminated\r\ni2 OK NOOP completed\r\n"),
    ]


def test_poll_outside_idle_sends_nothing() -> None:
    _, one, two = shared()
    sent(two.feed(b"t1 STORE 1 +FLAGS (\\Seen)\r\n"))
    assert one.poll() == []
    assert sent(one.feed(b"a1 NOOP\r\n")) == (
        b"* 1 FETCH (FLAGS (\\Seen))\r\na1 OK NOOP completed\r\n"
    )


def test_no_expunge_during_fetch_store_search_copy() -> None:
    _, one, two = shared(4)
    sent(two.feed(b"t1 STORE 2 +FLAGS (\\Deleted)\r\nt2 EXPUNGE\r\n"))
    transcript(
        one,
        [
            # Message 2 is gone from the store but keeps its number until EXPUNGE may go.
            (  # answered from the session's map
                b"a0 FETCH 1:* (UID)\r\n",
                b"* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\n"
                b"* 4 FETCH (UID 4)\r\na0 OK FETCH completed\r\n",
            ),
            (  # the store has no envelope for it any more
                b"a1 FETCH 1:* (UID ENVELOPE)\r\n",
                rx(
                    rb"\* 1 FETCH \(UID 1 ENVELOPE .*\* 3 FETCH \(UID 3 ENVELOPE .*"
                    rb"\* 4 FETCH \(UID 4 ENVELOPE .*\)\r\n"
                    rb"a1 OK \[EXPUNGEISSUED\] Some messages were already expunged\r\n"
                ),
            ),
            (b"a2 FETCH 2 FLAGS\r\n", b"* 2 FETCH (FLAGS ())\r\na2 OK FETCH completed\r\n"),
            (b"a3 FETCH 2 ENVELOPE\r\n", rx(rb"a3 OK \[EXPUNGEISSUED\] .*\r\n")),
            (
                b"a4 STORE 1:* +FLAGS (\\Seen)\r\n",
                b"* 1 FETCH (FLAGS (\\Seen))\r\n* 2 FETCH (FLAGS ())\r\n"
                b"* 3 FETCH (FLAGS (\\Seen))\r\n* 4 FETCH (FLAGS (\\Seen))\r\n"
                b"a4 OK STORE completed\r\n",
            ),
            (b"a5 SEARCH SEEN\r\n", b"* SEARCH 1 3 4\r\na5 OK SEARCH completed\r\n"),
            (b"a6 COPY 1:2 Trash\r\n", b"a6 OK [COPYUID 1004 1 1] COPY completed\r\n"),
            (b"a7 NOOP\r\n", b"* 2 EXPUNGE\r\na7 OK NOOP completed\r\n"),
            (
                b"a8 FETCH 1:* (UID)\r\n",
                rx(rb"(\* \d FETCH \(UID \d\)\r\n){3}a8 OK FETCH completed\r\n"),
            ),
        ],
    )


def test_uid_commands_may_report_expunges() -> None:
    _, one, two = shared(4)
    sent(two.feed(b"t1 STORE 2 +FLAGS (\\Deleted)\r\nt2 EXPUNGE\r\n"))
    transcript(
        one,
        [
            (  # the expunge is learnt after the command: message 2 answered from the map
                b"a1 UID FETCH 1:* (FLAGS)\r\n",
                b"* 1 FETCH (UID 1 FLAGS ())\r\n* 2 FETCH (UID 2 FLAGS ())\r\n"
                b"* 3 FETCH (UID 3 FLAGS ())\r\n* 4 FETCH (UID 4 FLAGS ())\r\n"
                b"* 2 EXPUNGE\r\na1 OK UID FETCH completed\r\n",
            ),
            (b"a2 UID SEARCH ALL\r\n", b"* SEARCH 1 3 4\r\na2 OK UID SEARCH completed\r\n"),
        ],
    )
    sent(two.feed(b"t3 STORE 1 +FLAGS (\\Deleted)\r\nt4 EXPUNGE\r\n"))
    transcript(
        one,
        [
            (b"a3 FETCH 1 UID\r\n", b"* 1 FETCH (UID 1)\r\na3 OK FETCH completed\r\n"),
            (  # known before the command: announced first
                b"a4 UID FETCH 1:* UID\r\n",
                b"* 1 EXPUNGE\r\n* 1 FETCH (UID 3)\r\n* 2 FETCH (UID 4)\r\n"
                b"a4 OK UID FETCH completed\r\n",
            ),
        ],
    )


def test_updates_after_other_commands() -> None:
    _, one, two = shared(2)
    sent(two.feed(b"t1 STORE 1 +FLAGS ($Important)\r\n"))
    sent(two.feed(b"t2 APPEND INBOX {3+}\r\nabc\r\n"))
    transcript(
        one,
        [
            (
                b"a1 CHECK\r\n",
                b"* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Important)\r\n"
                b"* OK [PERMANENTFLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft $Important "
                b"\\*)] Flags permitted\r\n"
                b"* 3 EXISTS\r\n* 0 RECENT\r\n"
                b"* 1 FETCH (FLAGS ($Important))\r\n"
                b"a1 OK CHECK completed\r\n",
            ),
            (b"a2 NOOP\r\n", b"a2 OK NOOP completed\r\n"),
        ],
    )


def test_a_new_message_is_recent_for_one_session_only() -> None:
    store, one, two = shared(0)
    store.append("INBOX", b"Subject: new\r\n\r\nx\r\n")
    assert sent(one.feed(b"a1 NOOP\r\n")) == b"* 1 EXISTS\r\n* 1 RECENT\r\na1 OK NOOP completed\r\n"
    assert sent(two.feed(b"a1 NOOP\r\n")) == b"* 1 EXISTS\r\n* 0 RECENT\r\na1 OK NOOP completed\r\n"
    assert sent(one.feed(b"a2 FETCH 1 FLAGS\r\n")) == (
        b"* 1 FETCH (FLAGS (\\Recent))\r\na2 OK FETCH completed\r\n"
    )
    assert sent(one.feed(b"a3 SEARCH RECENT\r\n")) == b"* SEARCH 1\r\na3 OK SEARCH completed\r\n"
    assert sent(two.feed(b"a3 SEARCH RECENT\r\n")) == b"* SEARCH\r\na3 OK SEARCH completed\r\n"


def test_selected_mailbox_deleted_by_another_session() -> None:
    store = FakeMailboxStore()
    store.create_folder("Work")
    one, _ = selected(store, "Work")
    store.delete_folder("Work")
    assert one.feed(b"a1 NOOP\r\n") == [
        Send(b"* BYE The selected mailbox was deleted or renamed by another session\r\n"),
        Close(),
    ]
    assert not one.wants_input


def test_selected_mailbox_recreated_under_the_session_while_idle() -> None:
    store = FakeMailboxStore()
    store.create_folder("Work")
    one, _ = selected(store, "Work")
    one.feed(b"i1 IDLE\r\n")
    store.delete_folder("Work")
    store.create_folder("Work")
    store.append("Work", b"Subject: x\r\n\r\ny\r\n")
    assert one.poll() == [
        Send(b"* BYE The selected mailbox was deleted or renamed by another session\r\n"),
        Idling(False),
        Close(),
    ]


_UNTAGGED = re.compile(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH)")


class ClientView:
    """What a client knows of the mailbox from the responses: the message count, kept
    with EXISTS and EXPUNGE; every FETCH must name a message that exists."""

    def __init__(self, exists: int) -> None:
        self.exists = exists

    def read(self, data: bytes) -> None:
        for line in data.split(b"\r\n"):
            m = _UNTAGGED.match(line)
            if m is None:
                continue
            n, kind = int(m.group(1)), m.group(2)
            if kind == b"EXISTS":
                assert n >= self.exists, (n, self.exists)  # only EXPUNGE shrinks it
                self.exists = n
            elif kind == b"EXPUNGE":
                assert 1 <= n <= self.exists, (n, self.exists)
                self.exists -= 1
            else:
                assert 1 <= n <= self.exists, (n, self.exists)


OTHER = st.sampled_from(
    [
        b"o APPEND INBOX {3+}\r\nabc\r\n",
        b"o STORE 1:* +FLAGS (\\Deleted)\r\n",
        b"o UID STORE 2:4 +FLAGS (\\Deleted)\r\n",
        b"o STORE 1 -FLAGS (\\Deleted)\r\n",
        b"o EXPUNGE\r\n",
        b"o UID EXPUNGE 1:3\r\n",
        b"o MOVE 1 Trash\r\n",
        b"o STORE 1:2 FLAGS ($Seen1)\r\n",
    ]
)
MINE = st.sampled_from(
    [
        b"m NOOP\r\n",
        b"m FETCH 1:* (FLAGS)\r\n",
        b"m FETCH 1:* (UID ENVELOPE)\r\n",
        b"m SEARCH ALL\r\n",
        b"m STORE 1:* +FLAGS ($Mine)\r\n",
        b"m UID FETCH 1:* FLAGS\r\n",
        b"m UID SEARCH ALL\r\n",
        b"m COPY 1:* Archive\r\n",
        b"m EXPUNGE\r\n",
        b"m APPEND INBOX {1+}\r\nx\r\n",
        b"IDLE",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.lists(OTHER, max_size=3), MINE), max_size=12))
def test_sequence_numbers_stay_consistent(steps: list[tuple[list[bytes], bytes]]) -> None:
    store, one, two = shared(4)
    client = ClientView(4)
    for others, mine in steps:
        for command in others:
            sent(two.feed(command))
        if mine == b"IDLE":
            client.read(sent(one.feed(b"i IDLE\r\n")))
            client.read(sent(one.poll()))
            client.read(sent(one.feed(b"DONE\r\n")))
        else:
            out = sent(one.feed(mine))
            assert b"SERVERBUG" not in out and b" BAD " not in out, out
            client.read(out)
    client.read(sent(one.feed(b"z NOOP\r\n")))
    uids = [info.uid for info in store.messages("INBOX")]
    assert client.exists == len(uids)
    out = sent(one.feed(b"y FETCH 1:* (UID)\r\n"))
    assert [int(u) for u in re.findall(rb"\(UID (\d+)\)", out)] == uids
