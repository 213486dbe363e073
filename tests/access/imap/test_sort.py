"""SORT (RFC 5256), SORT=DISPLAY (RFC 5957) and ESORT (RFC 5267): the base subject of
RFC 5256 section 2.1, transcripts of every sort key with REVERSE and ties, `SORT
RETURN (...)` with ranges in sort order and PARTIAL, the bad inputs; and that sorting
reads the cached envelopes and metadata, never a message body."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casarray.access.imap.sorting import base_subject
from tests.access.imap.fakes import FakeMailboxStore, selected, sent, transcript

BASE = datetime(2008, 2, 22, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("subject", "base", "reply"),
    [
        ("a", "a", False),
        ("Re: [FWD: c]", "c", True),
        ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b", True),
        ("b (a)", "b (a)", False),
        ("[xyz]", "[xyz]", False),
        ("[xyz] hello", "hello", False),
        ("=?iso-8859-1?q?RE:_C?=", "C", True),
        ("=?us-ascii?b?UmU6IGM=?=", "c", True),
        ("=?iso-8859-1?q?_?=", "", False),
        ("Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x", False),
        ("re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon", True),
        ("Report: numbers", "Report: numbers", False),
        ("  Re:   spaced \t  out  ", "spaced out", True),
        (None, "", False),
    ],
)
def test_base_subject(subject: str | None, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def mailbox_of(*messages: tuple[bytes, datetime]) -> FakeMailboxStore:
    store = FakeMailboxStore()
    for raw, when in messages:
        store.append("INBOX", raw, [], when)
    return store


def at(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


def sort(session, criteria: str) -> bytes:  # type: ignore[no-untyped-def]
    out = sent(session.feed(f"s1 SORT {criteria}\r\n".encode()))
    assert out.endswith(b"s1 OK SORT completed\r\n"), out
    return out[: -len(b"s1 OK SORT completed\r\n")]


SUBJECTS = [
    "a",
    "C",
    "b",
    "_",
    "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)",
    "b (a)",
    "Re: [FWD: c]",
    "[xyz]",
    None,
    "=?iso-8859-1?q?_?=",
]


def test_sort_by_subject_upper_cases_and_keeps_mailbox_order_for_ties() -> None:
    raws = [
        (f"Subject: {s}\r\n\r\n{n}\r\n" if s else f"X: y\r\n\r\n{n}\r\n").encode()
        for n, s in enumerate(SUBJECTS, 1)
    ]
    store = mailbox_of(*((raw, BASE) for raw in raws))
    session, _ = selected(store)
    assert sort(session, "(SUBJECT) US-ASCII ALL") == b"* SORT 9 10 1 3 5 6 2 7 8 4\r\n"
    assert sort(session, "(REVERSE SUBJECT) UTF-8 ALL") == b"* SORT 4 8 2 7 6 3 5 1 9 10\r\n"
    # UID SORT answers UIDs; a search key narrows the set
    out = sent(session.feed(b"s2 UID SORT (SUBJECT) US-ASCII 1:4\r\n"))
    assert out == b"* SORT 1 3 2 4\r\ns2 OK UID SORT completed\r\n"


def test_sort_by_arrival_date_and_size() -> None:
    store = mailbox_of(
        (b"Date: Fri, 22 Feb 2008 00:00:00 +0200\r\n\r\n1\r\n", at(23)),
        (b"Date: Fri, 22 Feb 2008 02:00:00 +0200\r\n\r\n2\r\n", at(22)),
        (b"Date: Fri, 22 Feb 2008 01:00:00 +0200\r\n\r\n33\r\n", at(21)),
        (b"Subject: no date, arrived at 23:30 UTC the day before\r\n\r\n4444\r\n", at(-0.5)),
        (b"Date: not a date\r\n\r\n5\r\n", at(-1.5)),
    )
    session, _ = selected(store)
    assert sort(session, "(ARRIVAL) US-ASCII ALL") == b"* SORT 5 4 3 2 1\r\n"
    # DATE: the Date header in UTC, the internal date when it is missing or bad
    assert sort(session, "(DATE) US-ASCII ALL") == b"* SORT 1 5 3 4 2\r\n"
    assert sort(session, "(REVERSE DATE) US-ASCII ALL") == b"* SORT 2 4 3 5 1\r\n"
    assert sort(session, "(SIZE) US-ASCII ALL") == b"* SORT 5 1 2 3 4\r\n"
    assert sort(session, "(REVERSE SIZE ARRIVAL) US-ASCII ALL") == b"* SORT 4 3 2 1 5\r\n"


def test_sort_by_address_keys_uses_the_first_mailbox() -> None:
    store = mailbox_of(
        (b"From: user2@domain2.org\r\nTo: Foo <user2@domain2.org>\r\n\r\n1\r\n", at(0)),
        (b"From: user2@domain1.org\r\nCc: user2: blah@domain1.org;\r\n\r\n2\r\n", at(1)),
        (b"From: user1@domain1.org\r\nTo: user1@x, a@y\r\nCc: user1@y\r\n\r\n3\r\n", at(2)),
    )
    session, _ = selected(store)
    assert sort(session, "(FROM) US-ASCII ALL") == b"* SORT 3 1 2\r\n"
    assert sort(session, "(REVERSE FROM) US-ASCII ALL") == b"* SORT 1 2 3\r\n"
    assert sort(session, "(FROM REVERSE ARRIVAL) US-ASCII ALL") == b"* SORT 3 2 1\r\n"
    # no To sorts first (the empty string); a group's name is its first mailbox
    assert sort(session, "(TO) US-ASCII ALL") == b"* SORT 2 3 1\r\n"
    assert sort(session, "(CC) US-ASCII ALL") == b"* SORT 1 3 2\r\n"


def test_sort_display_uses_the_display_name_or_the_address() -> None:
    store = mailbox_of(
        (b"From: foo bar <a@b.c>\r\nTo: z: aa@aa.org;\r\n\r\n1\r\n", BASE),
        (b"From: b@c.d\r\nTo: =?iso-8859-1?q?foo_aar?= <e@f.g>\r\n\r\n2\r\n", BASE),
        (b"From: d\r\nTo: a: xx@xx.org, yy@yy.org;\r\n\r\n3\r\n", BASE),
        (b"From: =?iso-8859-1?q?foo_aar?= <e@f.g>\r\nTo: empty:;\r\n\r\n4\r\n", BASE),
    )
    session, _ = selected(store)
    assert b" SORT=DISPLAY " in sent(session.feed(b"c CAPABILITY\r\n"))
    assert sort(session, "(DISPLAYFROM) US-ASCII ALL") == b"* SORT 2 3 4 1\r\n"
    assert sort(session, "(REVERSE DISPLAYFROM) US-ASCII ALL") == b"* SORT 1 4 3 2\r\n"
    assert sort(session, "(DISPLAYTO) US-ASCII ALL") == b"* SORT 3 4 2 1\r\n"


def test_esort_return_options_fold_runs_in_sort_order() -> None:
    store = mailbox_of(
        *(
            (f"Subject: {n}\r\n\r\n{n}\r\n".encode(), at(h))
            for n, h in enumerate([0, 2, 1, 1, 3], 1)
        )
    )
    session, _ = selected(store)
    transcript(
        session,
        [
            (
                b"a1 SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) US-ASCII ALL\r\n",
                b'* ESEARCH (TAG "a1") MIN 1 MAX 5 ALL 1,3:4,2,5 COUNT 5\r\n'
                b"a1 OK SORT completed\r\n",
            ),
            (
                b"a2 SORT RETURN (PARTIAL 2:4) (REVERSE ARRIVAL) US-ASCII ALL\r\n",
                b'* ESEARCH (TAG "a2") PARTIAL (2:4 2:4)\r\na2 OK SORT completed\r\n',
            ),
            (
                b"a3 UID SORT RETURN () (ARRIVAL) US-ASCII 2:5\r\n",
                b'* ESEARCH (TAG "a3") UID ALL 3:4,2,5\r\na3 OK UID SORT completed\r\n',
            ),
            (
                b"a4 SORT RETURN (COUNT) (ARRIVAL) US-ASCII 100\r\n",
                b'* ESEARCH (TAG "a4") COUNT 0\r\na4 OK SORT completed\r\n',
            ),
        ],
    )


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (b"SORT (FROB) US-ASCII ALL", b"BAD SORT: Unknown sort key FROB"),
        (b"SORT (REVERSE) US-ASCII ALL", b"BAD SORT: Expected a space after REVERSE"),
        (b"SORT () US-ASCII ALL", b"BAD SORT: Expected a sort key"),
        (b"SORT ARRIVAL US-ASCII ALL", b"BAD SORT: Expected '(' to open the sort criteria"),
        (b"SORT (ARRIVAL) ALL", b"BAD SORT: Expected a space after the charset"),
        (b"SORT (ARRIVAL) US-ASCII", b"BAD SORT: Expected a space after the charset"),
        (b"SORT RETURN (PARTIAL 1:*) (ARRIVAL) US-ASCII ALL", b"BAD SORT: Invalid PARTIAL"),
        (b"SORT (ARRIVAL) KOI8-R ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"),
    ],
)
def test_bad_sort_commands(command: bytes, answer: bytes) -> None:
    session, _ = selected(mailbox_of((b"Subject: x\r\n\r\n1\r\n", BASE)))
    out = sent(session.feed(b"a1 " + command + b"\r\n"))
    assert out.startswith(b"a1 " + answer), out
    assert sent(session.feed(b"a2 SORT (SIZE) UTF-8 ALL\r\n")).startswith(b"* SORT 1\r\n")


def test_sort_reads_no_message_body() -> None:
    store = mailbox_of(
        *((f"Subject: {n % 3}\r\nFrom: u{n}@x\r\n\r\nbody\r\n".encode(), at(n)) for n in range(9))
    )
    session, _ = selected(store)
    before = dict(store.calls)
    out = sort(session, "(SUBJECT REVERSE DATE FROM DISPLAYTO SIZE ARRIVAL) US-ASCII ALL")
    assert out == b"* SORT 7 4 1 8 5 2 9 6 3\r\n"
    assert store.calls.get("body", 0) == before.get("body", 0)
    # one read of the cached envelopes (the fake serves them through `cached`), one of
    # the metadata
    assert store.calls.get("cached", 0) - before.get("cached", 0) == 1
    assert store.calls.get("messages", 0) - before.get("messages", 0) == 1


def test_a_second_sort_parses_no_envelope_again() -> None:
    """What SORT derives from an envelope is computed once per envelope (per process):
    sorting the folder again by any key costs the store read and the ordering only."""
    from casarray.access.imap.sorting import envelope_facts

    count = 500
    store = mailbox_of(
        *(
            (
                f"Subject: Re: topic {n % 37}\r\nFrom: u{n}@lab.net\r\n\r\nb\r\n".encode(),
                at(n),
            )
            for n in range(count)
        )
    )
    session, _ = selected(store)
    before = envelope_facts.cache_info()
    first = sort(session, "(SUBJECT DATE) US-ASCII ALL")
    middle = envelope_facts.cache_info()
    assert middle.misses - before.misses == count  # each message's envelope differs
    assert sort(session, "(SUBJECT DATE) US-ASCII ALL") == first
    assert sort(session, "(REVERSE FROM) UTF-8 ALL").startswith(b"* SORT 100 ")
    after = envelope_facts.cache_info()
    assert after.misses == middle.misses
    assert store.calls.get("body", 0) == 0
