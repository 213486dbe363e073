"""Inputs the fuzzers found (bench/fuzz.py, tests/fuzz_targets.py) in the IMAP session,
each the smallest that broke it, kept as transcripts of what a client sees."""

from __future__ import annotations

import pytest

from tests.access.imap.fakes import FakeMailboxStore, selected, sent


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (b"a1 SEARCH 2:*", b"* SEARCH\r\na1 OK SEARCH completed\r\n"),
        (b"a1 UID SEARCH 2:*", b"* SEARCH\r\na1 OK UID SEARCH completed\r\n"),
        (b"a1 UID SORT (ARRIVAL) US-ASCII 2:*", b"* SORT\r\na1 OK UID SORT completed\r\n"),
        (
            b"a1 UID SORT RETURN () (ARRIVAL) US-ASCII 2:*",
            b'* ESEARCH (TAG "a1") UID\r\na1 OK UID SORT completed\r\n',
        ),
    ],
)
def test_a_range_to_star_in_an_empty_mailbox_matches_nothing(command: bytes, answer: bytes) -> None:
    # `*` of an empty mailbox stood for message 0, and 2:* matched the index -1: NO
    # [SERVERBUG] with an IndexError in the log
    session, _ = selected(FakeMailboxStore())
    assert sent(session.feed(command + b"\r\n")) == answer
