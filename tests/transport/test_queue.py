"""The durable queue: what enqueue commits, the recipients' states, and that a commit
is on disk (WAL, synchronous=FULL) when enqueue returns, also for another process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from casarray.transport.queue import (
    DELIVERED,
    FAILED,
    LOCAL,
    READY,
    RELAY,
    RETRY,
    NewMessage,
    NewRecipient,
    QueueError,
    SqliteQueue,
    new_queue_id,
)
from casarray.transport.queue_stores import open_queue

MESSAGE = b"From: a@x.net\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteQueue]:
    """The queue on each store: a SQLite file, and a schema in a PostgreSQL database."""
    if request.param == "sqlite":
        store = SqliteQueue(tmp_path / "queue.db")
    else:
        server = request.getfixturevalue("postgres_server")
        store = open_queue("MBX01", server.url(server.create_database()))
    yield store
    store.close()


@pytest.fixture
def sqlite_queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    store = SqliteQueue(tmp_path / "queue.db")
    yield store
    store.close()


def two_recipients(**extra: object) -> NewMessage:
    return NewMessage(
        sender="a@x.net",
        recipients=(NewRecipient("alice@lab.net"), NewRecipient("bob@far.net", RELAY, "far.net")),
        data=MESSAGE,
        client_address="127.0.0.1",
        client_helo="client.x.net",
        hop_count=1,
        **extra,  # type: ignore[arg-type]
    )


def test_queue_ids_are_hex_and_sort_by_time() -> None:
    first, second = new_queue_id(1000.0), new_queue_id(1000.5)
    assert len(first) == 16 and int(first, 16) >= 0 and first.upper() == first
    assert first < second


def test_enqueue_commits_message_and_recipients(queue: SqliteQueue) -> None:
    message_id = queue.enqueue(two_recipients())
    message = queue.message(message_id)
    assert message is not None
    assert message.sender == "a@x.net" and message.size == len(MESSAGE)
    assert message.client_helo == "client.x.net" and message.hop_count == 1
    assert [(r.address, r.state, r.route) for r in message.recipients] == [
        ("alice@lab.net", READY, LOCAL),
        ("bob@far.net", READY, RELAY),
    ]
    assert message.recipients[1].next_hop == "far.net"
    assert queue.message_data(message_id) == MESSAGE
    assert message.status == READY


def test_null_sender_and_given_queue_id(queue: SqliteQueue) -> None:
    message_id = queue.enqueue(
        NewMessage(sender="", recipients=(NewRecipient("alice@lab.net"),), data=b"x", queue_id="AB")
    )
    assert message_id == "AB"
    message = queue.message("AB")
    assert message is not None and message.sender == ""


def test_bad_input_changes_nothing(queue: SqliteQueue) -> None:
    with pytest.raises(QueueError):
        queue.enqueue(NewMessage(sender="a@x.net", recipients=(), data=b"x"))
    with pytest.raises(QueueError):
        queue.enqueue(
            NewMessage(sender="a@x.net", recipients=(NewRecipient("b@x", "Carrier"),), data=b"x")
        )
    assert queue.messages() == []
    with pytest.raises(QueueError):
        queue.messages("Pending")


def test_take_due_marks_the_attempt_and_outcomes_settle_it(queue: SqliteQueue) -> None:
    message_id = queue.enqueue(two_recipients())
    taken = queue.take_due(now=2e9)
    assert [(r.address, r.attempts) for r in taken] == [("alice@lab.net", 1), ("bob@far.net", 1)]
    assert all(r.attempt_started == 2e9 for r in taken)
    assert queue.take_due(now=2e9) == []  # taken once
    assert len(queue.in_flight()) == 2
    queue.note_attempt(message_id, 0, "5:7")
    assert queue.in_flight()[0].attempt_note == "5:7"
    queue.delivered(message_id, 0)
    queue.retry(message_id, 1, "no send connector yet", next_attempt=2e9 + 60)
    assert queue.in_flight() == []
    recipients = queue.recipients(message_id)
    assert [(r.state, r.last_error) for r in recipients] == [
        (DELIVERED, ""),
        (RETRY, "no send connector yet"),
    ]
    assert queue.take_due(now=2e9 + 30) == []
    again = queue.take_due(now=2e9 + 60)
    assert [(r.address, r.attempts) for r in again] == [("bob@far.net", 2)]
    queue.failed(message_id, 1, "550 5.1.2 no such domain")
    message = queue.message(message_id)
    assert message is not None and message.status == FAILED


def test_retry_now(queue: SqliteQueue) -> None:
    message_id = queue.enqueue(two_recipients())
    for recipient in queue.take_due(now=2e9):
        queue.retry(message_id, recipient.index, "later", 2e9 + 600)
    assert queue.take_due(now=2e9 + 1) == []
    assert queue.retry_now(2e9 + 1) == 2
    assert len(queue.take_due(now=2e9 + 1)) == 2


def test_suspend_and_resume(queue: SqliteQueue) -> None:
    message_id = queue.enqueue(two_recipients())
    queue.suspend(message_id)
    assert queue.take_due(now=2e9) == []
    assert {r.state for r in queue.recipients(message_id)} == {"Suspended"}
    queue.suspend(message_id, False)
    assert len(queue.take_due(now=2e9)) == 2


def test_queues_group_waiting_recipients_by_route_and_domain(queue: SqliteQueue) -> None:
    first = queue.enqueue(two_recipients())
    queue.enqueue(two_recipients())
    taken = queue.take_due(now=2e9)
    for recipient in taken:
        if recipient.route == RELAY and recipient.message_id == first:
            queue.retry(first, recipient.index, "no send connector yet", 2e9 + 60)
        elif recipient.route == LOCAL:
            queue.delivered(recipient.message_id, recipient.index)
        else:
            queue.retry(recipient.message_id, recipient.index, "", 0)
    queues = {q.next_hop: q for q in queue.queues()}
    assert set(queues) == {"far.net"}
    assert queues["far.net"].delivery_type == "SmtpRelay"
    assert queues["far.net"].message_count == 2
    assert queues["far.net"].last_error == "no send connector yet"


def test_the_file_is_wal_with_full_sync(sqlite_queue: SqliteQueue) -> None:
    row = sqlite_queue._full_db.execute("PRAGMA journal_mode").fetchone()
    assert row[0] == "wal"
    assert sqlite_queue._full_db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert sqlite_queue._normal_db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_commit_survives_kill_9(tmp_path: Path) -> None:
    """A process enqueues, says so, and is killed with SIGKILL before it closes
    anything: the message is in the file."""
    path = tmp_path / "queue.db"
    script = (
        "import os, signal, sys\n"
        "from casarray.transport.queue import SqliteQueue, NewMessage, NewRecipient\n"
        f"q = SqliteQueue({str(path)!r})\n"
        "mid = q.enqueue(NewMessage(sender='', recipients=(NewRecipient('a@lab.net'),),"
        " data=b'hello'))\n"
        "print(mid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == -9, proc.stderr
    message_id = proc.stdout.strip()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT data FROM message WHERE id = ?", (message_id,)).fetchone() == (
            b"hello",
        )


def test_open_queue_by_url(tmp_path: Path) -> None:
    store = open_queue("MBX01", f"sqlite:///{tmp_path / 'q.db'}")
    store.close()
    with pytest.raises(QueueError, match="not one casarray knows"):
        open_queue("MBX01", "mysql://x/y")
    with pytest.raises(QueueError, match="can't be opened"):
        open_queue("MBX01", "postgresql://nobody@127.0.0.1:1/none")


def test_postgresql_servers_share_a_database_in_schemas_of_their_own(
    postgres_server: Any,
) -> None:
    """Two Hub Transport servers' queues in one PostgreSQL database keep apart; the
    durable writes commit with synchronous_commit on, the others off; a cmdlet's
    Remove-Message (another connection) and a delivery taking the same recipient
    serialize on the queue's advisory lock."""
    url = postgres_server.url(postgres_server.create_database())
    first, second = open_queue("MBX01", url), open_queue("HUB-01", url)
    try:
        assert first.where.endswith("(schema transport_mbx01)")
        assert second.where.endswith("(schema transport_hub_01)")
        mid = first.enqueue(two_recipients())
        assert second.messages() == [] and first.message(mid) is not None
        durable = first._full_db.execute("SHOW synchronous_commit").fetchone()[0]
        relaxed = first._normal_db.execute("SHOW synchronous_commit").fetchone()[0]
        assert (durable, relaxed) == ("on", "off")
        # a second opening of the same queue (a cmdlet) fails what waits, atomically
        cmdlet = open_queue("MBX01", url)
        try:
            assert cmdlet.fail_unless_in_flight(mid, [0], "removed", report=False) == [0]
        finally:
            cmdlet.close()
        taken = first.take_due(time.time() + 1)
        assert [(r.message_id, r.index) for r in taken] == [(mid, 1)]
    finally:
        first.close()
        second.close()


def test_concurrent_enqueues_are_committed_together(queue: SqliteQueue) -> None:
    """Threads enqueueing at once (group commit) each get their own id back, and every
    message is there, readable from other threads."""
    from concurrent.futures import ThreadPoolExecutor

    def one(n: int) -> str:
        return queue.enqueue(
            NewMessage(sender="", recipients=(NewRecipient(f"u{n}@lab.net"),), data=b"%d" % n)
        )

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(one, range(200)))
        datas = list(pool.map(queue.message_data, ids))
    assert len(set(ids)) == 200
    assert datas == [b"%d" % n for n in range(200)]
    assert len(queue.messages()) == 200
