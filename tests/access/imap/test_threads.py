"""THREAD (RFC 5256): REFERENCES (linking by References and In-Reply-To, duplicate and
missing Message-IDs, loops, dummies pruned, roots gathered by base subject, children
and roots by date) and ORDEREDSUBJECT, the UID form, the `* THREAD` syntax, the bad
inputs; and that a message's References is read from its body once per process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from casarray.access.imap import threads
from tests.access.imap.fakes import FakeMailboxStore, selected, sent

BASE = datetime(2008, 2, 22, 15, 6, 23, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _forget_references() -> None:
    """Every test's fake store starts at the same UIDVALIDITY: no test sees the
    References another read."""
    threads.forget_references()


def mailbox_of(*messages: tuple[str, float]) -> FakeMailboxStore:
    """Messages from header text (one line per field, "|" between lines) and the hour
    they arrived, relative to BASE."""
    store = FakeMailboxStore()
    for headers, hours in messages:
        raw = ("\r\n".join(headers.split("|")) + "\r\n\r\nbody\r\n").encode()
        store.append("INBOX", raw, [], BASE + timedelta(hours=hours))
    return store


def thread(session, algorithm: str = "REFERENCES", criteria: str = "ALL") -> bytes:  # type: ignore[no-untyped-def]
    out = sent(session.feed(f"t1 THREAD {algorithm} US-ASCII {criteria}\r\n".encode()))
    assert out.endswith(b"t1 OK THREAD completed\r\n"), out
    return out[: -len(b"t1 OK THREAD completed\r\n")]


def test_references_chain_breaks_an_old_parent_rather_than_loop() -> None:
    session, _ = selected(
        mailbox_of(
            ("Message-ID: <a@b>", 2),
            ("Message-Id: <b@b>|References: <a@b> <c@b>", 0),
            ("Message-Id: <c@b>|References: <b@b>", 1.00001),
        )
    )
    assert b" THREAD=REFERENCES " in sent(session.feed(b"c CAPABILITY\r\n"))
    assert thread(session) == b"* THREAD (3 2)(1)\r\n"
    sent(session.feed(b"s STORE 1 +FLAGS.SILENT (\\Deleted)\r\ne EXPUNGE\r\n"))
    assert thread(session) == b"* THREAD (2 1)\r\n"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        # a duplicate Message-ID counts as none
        ((("Message-Id: <a@b>", 0), ("Message-Id: <a@b>", 0)), b"(1)(2)"),
        # ...and the subject still joins them: a reply under the original
        (
            (("Message-Id: <a@b>|Subject: foo", 0), ("Message-Id: <a@b>|Subject: Re: foo", 1)),
            b"(1 2)",
        ),
        # a dummy root with one child is promoted, then the subject joins
        (
            (
                ("Message-Id: <a@b>|Subject: foo", 0),
                ("Message-Id: <b@b>|References: <c@b>|Subject: Re: foo", 1),
            ),
            b"(1 2)",
        ),
        # a dummy root with two children stays
        ((("References: <a@b>", 0), ("References: <a@b>", 1)), b"((1)(2))"),
        # a duplicate id keeps its references; children by date, ties in mailbox order
        (
            (
                ("Message-Id: <a@b>", 0),
                ("Message-Id: <b@b>|References: <a@b>", 0),
                ("Message-Id: <c@b>|References: <b@b>", 0),
                ("Message-Id: <b@b>|References: <a@b>", 0),
            ),
            b"(1 (2 3)(4))",
        ),
        # In-Reply-To when there is no References
        (
            (
                ("Message-ID: <1@b>", 2),
                ("Message-Id: <2@b>|In-Reply-To: <1@b>", 0),
                ("Message-Id: <3@b>|In-Reply-To: <1@b>", 0),
                ("Message-Id: <4@b>|In-Reply-To: <2@b>", 0),
            ),
            b"(1 (2 4)(3))",
        ),
        # two originals with one subject under a dummy; roots by date
        ((("Subject: x", 1), ("Subject: y", 0), ("Subject: x", 2)), b"(2)((1)(3))"),
    ],
)
def test_references(messages: tuple[tuple[str, float], ...], expected: bytes) -> None:
    session, _ = selected(mailbox_of(*messages))
    assert thread(session) == b"* THREAD " + expected + b"\r\n"


def test_references_after_expunge_and_append_and_uid_thread() -> None:
    store = mailbox_of(
        ("Message-ID: <1@b>", 2),
        ("Message-Id: <2@b>|In-Reply-To: <1@b>", 0),
        ("Message-Id: <3@b>|In-Reply-To: <1@b>", 0),
        ("Message-Id: <4@b>|In-Reply-To: <2@b>", 0),
    )
    session, _ = selected(store)
    sent(session.feed(b"s STORE 1,2 +FLAGS.SILENT (\\Deleted)\r\ne EXPUNGE\r\n"))
    assert thread(session) == b"* THREAD (1)(2)\r\n"
    store.append("INBOX", b"Message-Id: <5@b>\r\nIn-Reply-To: <2@b>\r\n\r\nb\r\n", [], BASE)
    assert sent(session.feed(b"n NOOP\r\n")).startswith(b"* 3 EXISTS\r\n")
    assert thread(session) == b"* THREAD (1)((2)(3))\r\n"
    out = sent(session.feed(b"u UID THREAD REFERENCES UTF-8 ALL\r\n"))
    assert out == b"* THREAD (3)((4)(5))\r\nu OK UID THREAD completed\r\n"
    # the search key narrows what is threaded
    assert thread(session, criteria="2:3") == b"* THREAD ((2)(3))\r\n"
    assert thread(session, criteria="1:2") == b"* THREAD (1)(2)\r\n"
    assert thread(session, criteria="100") == b"* THREAD\r\n"


def test_references_are_read_once_per_message_and_process() -> None:
    store = mailbox_of(("Message-Id: <x1@b>", 0), ("Message-Id: <x2@b>|References: <x1@b>", 1))
    session, _ = selected(store)
    assert thread(session) == b"* THREAD (1 2)\r\n"
    reads = store.calls.get("body", 0)
    assert reads == 2
    assert thread(session) == b"* THREAD (1 2)\r\n"
    assert store.calls.get("body", 0) == reads


def test_ordered_subject() -> None:
    subjects = ["a", "b", "a", "b", "a", "b", "a", "b"]
    dates = [10, 9, 8, 7, 30, 29, 28, 27]
    store = mailbox_of(
        *(
            (f"Subject: {s}|Date: Fri, 22 Feb 2008 22:00:{d:02d} +0200", 0)
            for s, d in zip(subjects, dates, strict=True)
        )
    )
    session, _ = selected(store)
    assert b" THREAD=ORDEREDSUBJECT " in sent(session.feed(b"c CAPABILITY\r\n"))
    assert thread(session, "ORDEREDSUBJECT") == b"* THREAD (4 (2)(8)(6))(3 (1)(7)(5))\r\n"
    # one message of a subject: a thread of one; two: a chain
    assert thread(session, "ORDEREDSUBJECT", "1:3") == b"* THREAD (3 1)(2)\r\n"


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        (b"THREAD FROB US-ASCII ALL", b"BAD THREAD: Unknown threading algorithm FROB"),
        (b"THREAD REFERENCES", b"BAD THREAD: Expected a space after the threading algorithm"),
        (b"THREAD REFERENCES US-ASCII", b"BAD THREAD: Expected a space after the charset"),
        (b"THREAD REFERENCES KOI8-R ALL", b"NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported"),
    ],
)
def test_bad_thread_commands(command: bytes, answer: bytes) -> None:
    session, _ = selected(mailbox_of(("Subject: x", 0)))
    out = sent(session.feed(b"a1 " + command + b"\r\n"))
    assert out.startswith(b"a1 " + answer), out
    assert thread(session) == b"* THREAD (1)\r\n"


def test_thread_needs_a_selected_mailbox() -> None:
    from tests.access.imap.fakes import logged_in

    session, _ = logged_in()
    out = sent(session.feed(b"a1 THREAD REFERENCES US-ASCII ALL\r\n"))
    assert out.startswith(b"a1 BAD THREAD needs a selected mailbox"), out


def test_a_reply_chain_thousands_deep_threads_without_recursion() -> None:
    depth = 3000
    store = FakeMailboxStore()
    for n in range(depth):
        refs = f"References: <m{n - 1}@b>\r\n" if n else ""
        raw = f"Message-Id: <m{n}@b>\r\n{refs}Subject: deep\r\n\r\nb\r\n".encode()
        store.append("INBOX", raw, [], BASE + timedelta(seconds=n))
    # and a branch at the very end: two replies to the last one
    for n in (depth, depth + 1):
        raw = f"Message-Id: <m{n}@b>\r\nReferences: <m{depth - 1}@b>\r\n\r\nb\r\n".encode()
        store.append("INBOX", raw, [], BASE + timedelta(seconds=n))
    session, _ = selected(store)
    chain = " ".join(str(n) for n in range(1, depth + 1))
    expected = f"* THREAD ({chain} ({depth + 1})({depth + 2}))\r\n".encode()
    assert thread(session) == expected
    ordered = thread(session, "ORDEREDSUBJECT")
    assert ordered.startswith(b"* THREAD (1 (2)(3)(4)")
