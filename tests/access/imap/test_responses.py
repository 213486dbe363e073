"""Serialising responses: strings as quoted strings or literals, response text that
can't break the framing, flag lists, UID sets and dates; and store failures in the
selected state (response codes, SERVERBUG) leaving the session usable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from casarray.access.imap import responses as r
from casarray.mailstore.interface import DatabaseUnavailable
from tests.access.imap.fakes import FakeMailboxStore, rx, selected, transcript


def test_strings() -> None:
    assert r.string("INBOX") == b'"INBOX"'
    assert r.string('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    assert r.string("caf\u00e9") == b"{5}\r\ncaf\xc3\xa9"
    assert r.string(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert r.string(b"x" * 2000).startswith(b"{2000}\r\n")
    assert r.literal(b"") == b"{0}\r\n"
    assert r.mailbox("Entw\u00fcrfe") == b'"Entw&APw-rfe"'


def test_response_text_is_one_safe_line() -> None:
    assert r.tagged("a1", "NO", "bad\r\nname", "X") == b"a1 NO [X] bad name\r\n"
    assert r.tagged("a1", "OK", "caf\u00e9 \x00") == b"a1 OK caf?\r\n"
    assert r.tagged("a1", "OK", "") == b"a1 OK -\r\n"


def test_flag_lists_and_uid_sets() -> None:
    flags = frozenset({"$b", "\\Draft", "$a", "\\Seen", "\\Answered"})
    assert r.flag_list(flags) == b"(\\Seen \\Answered \\Draft $a $b)"
    assert r.flag_list(flags, True) == b"(\\Recent \\Seen \\Answered \\Draft $a $b)"
    assert r.flag_list(frozenset()) == b"()"
    assert r.uid_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
    assert r.uid_set([4]) == "4"
    assert r.uid_set([]) == ""


def test_date_time() -> None:
    assert r.date_time(datetime(2024, 2, 1, 8, 3, 5, tzinfo=UTC)) == b'"01-Feb-2024 08:03:05 +0000"'
    minus = timezone(-timedelta(hours=7, minutes=30))
    assert r.date_time(datetime(1996, 7, 17, 2, 44, 25, tzinfo=minus)) == (
        b'"17-Jul-1996 02:44:25 -0730"'
    )
    assert r.date_time(datetime(2024, 12, 31, 23, 59, 59)) == b'"31-Dec-2024 23:59:59 +0000"'


class FlakyStore(FakeMailboxStore):
    """A store whose `cached` and `store_flags` fail on demand."""

    fail: Exception | None = None

    def cached(self, folder, uids):  # type: ignore[no-untyped-def]
        if self.fail is not None:
            raise self.fail
        return super().cached(folder, uids)

    def store_flags(self, folder, uids, mode, flags, unchanged_since=None):  # type: ignore[no-untyped-def]
        if self.fail is not None:
            raise self.fail
        return super().store_flags(folder, uids, mode, flags, unchanged_since)


def test_store_failures_in_the_selected_state() -> None:
    store = FlakyStore()
    store.append("INBOX", b"Subject: x\r\n\r\ny\r\n")
    session, _ = selected(store)
    store.fail = DatabaseUnavailable("The mailbox database DB01 is dismounted.")
    transcript(
        session,
        [
            (
                b"a1 FETCH 1 ENVELOPE\r\n",
                b"a1 NO [UNAVAILABLE] The mailbox database DB01 is dismounted.\r\n",
            ),
        ],
    )
    store.fail = RuntimeError("bug")
    transcript(
        session,
        [
            (
                b"a2 STORE 1 +FLAGS (\\Seen)\r\n",
                b"a2 NO [SERVERBUG] Internal server error; the server log has the details\r\n",
            ),
        ],
    )
    store.fail = None
    transcript(
        session,
        [
            (
                b"a3 FETCH 1 (FLAGS ENVELOPE)\r\n",
                rx(rb"\* 1 FETCH \(FLAGS .*\r\na3 OK FETCH completed\r\n"),
            )
        ],
    )
