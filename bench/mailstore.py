"""Mailbox store benchmark: what an IMAP session waits for on a big folder.

1. APPEND of a 5 KB message (parsing included): median and 99th percentile.
   Goal: a few ms.
2. `messages(folder)` of MESSAGES messages (default 10,000): what SELECT and FETCH
   FLAGS read. Goal: well under 50 ms.
3. `cached(folder, uids)` of every message: what FETCH ENVELOPE/BODYSTRUCTURE reads.
   Goal: well under 100 ms.
4. `folder()` (STATUS/SELECT counts) and `changes_since()` with nothing new (the
   IDLE poll, every ~200 ms per session).

    .venv/bin/python bench/mailstore.py [--messages N] [--runs N] [--location PATH|URL]

Without --location the store is a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from casarray.mailstore.store import SqlDatabaseStore

GUID = "bench-mailbox"


def message(n: int, size: int = 5 * 1024) -> bytes:
    head = (
        f"From: Sender {n} <sender{n}@example.com>\r\nTo: alice@lab.net\r\n"
        f"Subject: Benchmark message {n}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
        f"Message-ID: <{n}@bench.example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again.\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--location", help="a store location (default: a temporary file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        location = args.location or str(Path(folder) / "bench.db")
        store = SqlDatabaseStore(location)
        store.remove_mailbox(GUID)
        box = store.create_mailbox(GUID)
        appends = []
        for n in range(args.messages):
            data = message(n)
            start = time.perf_counter()
            box.append("INBOX", data, ["\\Seen"] if n % 3 else [])
            appends.append((time.perf_counter() - start) * 1000)
        appends.sort()
        print(f"store: {store.dialect} ({store.synchronous}), {args.messages} messages")
        print(
            f"append 5 KB: median {statistics.median(appends):.2f} ms, "
            f"p99 {appends[int(len(appends) * 0.99) - 1]:.2f} ms"
        )
        uids = [m.uid for m in box.messages("INBOX")]
        for name, fn in (
            ("messages()", lambda: box.messages("INBOX")),
            ("cached(all)", lambda: box.cached("INBOX", uids)),
            ("folder()", lambda: box.folder("INBOX")),
            ("changes_since(now)", lambda: box.changes_since("INBOX", 1 << 40)),
        ):
            median, worst = timed(fn, args.runs)
            print(f"{name}: median {median:.1f} ms, max {worst:.1f} ms")
        store.remove_mailbox(GUID)
        store.engine.dispose()


if __name__ == "__main__":
    main()
