"""What the benchmark against Dovecot exercises, on 10,000 messages in the fake store:
SELECT, FETCH 1:* (FLAGS ENVELOPE) from the cached parts, UID SEARCH on flags and
APPEND; and the memory a session keeps (an idle authenticated one, and the UID/flags map
of a selected mailbox). The bounds are loose (slow CI machines); the numbers measured
are printed with -s."""

from __future__ import annotations

import gc
import time
import tracemalloc

import pytest

from tests.access.imap.fakes import FakeBackend, FakeMailboxStore, make_session, sent

COUNT = 10_000


@pytest.fixture(scope="module")
def big_store() -> FakeMailboxStore:
    store = FakeMailboxStore()
    for i in range(COUNT):
        raw = (
            b"From: Sender %d <sender%d@lab.net>\r\nTo: alice@lab.net\r\n"
            b"Date: Mon, 5 Feb 2024 10:00:00 +0000\r\nSubject: Message number %d\r\n"
            b"Message-ID: <%d@lab.net>\r\n\r\nHello.\r\n" % (i, i, i, i)
        )
        store.append("INBOX", raw, ["\\Seen"] if i % 4 else ())
    store.cached("INBOX", range(1, COUNT + 1))  # the real store caches at APPEND
    store.take_recent("INBOX")
    return store


def timed(session, command: bytes) -> tuple[float, bytes]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = sent(session.feed(command))
    return time.perf_counter() - start, out


def test_benchmark_commands_on_10000_messages(big_store: FakeMailboxStore) -> None:
    backend = FakeBackend()
    backend.add_user("alice@lab.net", "pw", big_store)
    session = make_session(backend)
    session.feed(b"a0 LOGIN alice@lab.net pw\r\n")
    select, out = timed(session, b"a1 SELECT INBOX\r\n")
    assert b"* 10000 EXISTS\r\n" in out
    best = float("inf")
    for _ in range(3):
        big_store.calls.clear()
        elapsed, out = timed(session, b"a2 FETCH 1:* (FLAGS ENVELOPE)\r\n")
        best = min(best, elapsed)
        assert out.count(b" FETCH (FLAGS (") == COUNT and out.endswith(b"a2 OK FETCH completed\r\n")
        assert big_store.calls == {"cached": 1, "changes_since": 1}
    search, out = timed(session, b"a3 UID SEARCH UNSEEN\r\n")
    assert out.count(b" ") == COUNT // 4 + 5
    append, out = timed(session, b"a4 APPEND INBOX {5+}\r\nhello\r\n")
    assert out.endswith(b"APPEND completed\r\n")
    print(
        f"\nSELECT {select * 1000:.1f} ms, FETCH 1:* (FLAGS ENVELOPE) {best * 1000:.1f} ms, "
        f"UID SEARCH UNSEEN {search * 1000:.1f} ms, APPEND {append * 1000:.1f} ms"
    )
    assert (
        best < 10 and select < 10 and search < 5
    )  # a guard against runaway (quadratic) time, 10x the usual: bench/ measures speed


def measure(action) -> int:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = action()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    del kept
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def test_memory_of_an_idle_authenticated_session() -> None:
    backend = FakeBackend()
    backend.add_user("alice@lab.net", "pw")
    warm = make_session(backend)
    warm.greeting()
    warm.feed(b'a0 LOGIN alice@lab.net pw\r\na1 NOOP\r\na2 LIST "" *\r\n')

    def sessions():  # type: ignore[no-untyped-def]
        kept = []
        for _ in range(50):
            session = make_session(backend)
            session.greeting()
            session.feed(b'a0 LOGIN alice@lab.net pw\r\na1 NOOP\r\na2 LIST "" *\r\n')
            kept.append(session)
        return kept

    per_session = measure(sessions) / 50
    print(f"\nidle authenticated session: {per_session:.0f} bytes")
    assert per_session < 10 * 1024


def test_memory_of_the_selected_map(big_store: FakeMailboxStore) -> None:
    backend = FakeBackend()
    backend.add_user("alice@lab.net", "pw", big_store)
    session = make_session(backend)
    session.feed(b"a0 LOGIN alice@lab.net pw\r\n")
    session.feed(b"a1 SELECT INBOX\r\na2 UNSELECT\r\n")

    def select():  # type: ignore[no-untyped-def]
        session.feed(b"a1 SELECT INBOX\r\n")
        return None

    size = measure(select)
    print(f"\nselected mailbox of {COUNT} messages: {size / 1024:.0f} KiB")
    assert size < 40 * COUNT  # a UID and a flag-set pointer per message, not objects
