"""The Hub Transport when a disk fills up (a small tmpfs, really filled; root).

The queue's disk: the receive service in this process (aiosmtpd on a free port) with
its queue on the tmpfs, smtplib as the client. MAIL is answered `452 4.3.1
Insufficient system storage` (Postfix's answer) while less than the queue's reserve is
free, or too little for the SIZE declared; DATA the same when the queue's write finds
no room; nothing is queued then, what was queued before is intact (integrity check,
bytes), and mail is taken again once the filler is gone.

A mailbox database's disk: delivery from the queue to it is deferred (Retry with
`452 4.3.1`, the message kept in the queue, no report to the sender), then delivered
at the next attempt once there is room."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import smtplib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from casarray.mailstore.store import close_all
from casarray.transport.config import (
    ANONYMOUS_USERS,
    AUTHORITATIVE,
    Connector,
    Domain,
    TransportConfig,
)
from casarray.transport.delivery import Deliverer
from casarray.transport.mailboxes import DirectoryMailboxes
from casarray.transport.queue import (
    RETRY,
    NewMessage,
    NewRecipient,
    QueueError,
    QueueFull,
    SqliteQueue,
    is_disk_full,
)
from casarray.transport.receive import QUEUE_MIN_FREE, ReceiveContext, bind, serve
from tests.small_disk import SmallDisk, small_disk
from tests.transport.harness import Org, make_org, wait_for
from tests.transport.test_delivery import BODY, CONFIG, Clock, enqueue
from tests.transport.test_receive import FakeUsers

CONNECTOR = Connector(
    name="Default MBX01",
    bindings=(("0.0.0.0", 25),),
    permission_groups=frozenset({ANONYMOUS_USERS}),
    max_message_size=10_000_000,
)
FULL = (452, b"4.3.1 Insufficient system storage")


def message(n: int, size: int) -> bytes:
    return b"From: x@far.net\r\nTo: alice@lab.net\r\nSubject: %d\r\n\r\n" % n + (
        b"line of the message body\r\n" * (size // 26)
    )


@dataclass
class Receiving:
    queue: SqliteQueue
    port: int
    disk: SmallDisk

    def smtp(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, timeout=10)
        client.ehlo("client.far.net")
        return client


@pytest.fixture
async def receiving(tmp_path: Path) -> AsyncIterator[Receiving]:
    with small_disk(tmp_path / "queue", "8m") as disk:
        queue = SqliteQueue(disk.path / "queue.db")
        users = FakeUsers()
        context = ReceiveContext(
            config=TransportConfig(
                server="MBX01",
                fqdn="mbx01.lab.net",
                domains=(Domain("lab.net", AUTHORITATIVE),),
                connectors=(CONNECTOR,),
            ),
            queue=queue,
            recipients=users,
            authenticator=users,
        )
        sock = bind("127.0.0.1", 0)
        server = await serve(context, sock, 25)
        try:
            yield Receiving(queue, sock.getsockname()[1], disk)
        finally:
            server.close()
            await server.wait_closed()
            queue.close()


def send(receiving: Receiving, data: bytes, size: int | None = None) -> tuple[int, bytes]:
    """One message through MAIL, RCPT and DATA: the first reply that isn't a success."""
    with receiving.smtp() as client:
        options = [f"SIZE={size}"] if size is not None else []
        reply = client.mail("x@far.net", options)
        if reply[0] != 250:
            return reply
        reply = client.rcpt("alice@lab.net")
        if reply[0] != 250:
            return reply
        return client.data(data)


@pytest.mark.root
async def test_a_full_queue_disk_refuses_mail_with_452(receiving: Receiving) -> None:
    queue, disk = receiving.queue, receiving.disk
    sent = {}
    for n in range(3):
        data = message(n, 20_000)
        code, text = await asyncio.to_thread(send, receiving, data)
        assert code == 250, text
        sent[text.decode().split("<")[1].split(">")[0]] = data

    def queued() -> dict[str, bytes]:
        return {m.message_id: queue.message_data(m.message_id) for m in queue.messages()}

    before = queued()
    disk.fill()  # no room at all: refused at MAIL
    assert await asyncio.to_thread(send, receiving, message(9, 1000)) == FULL
    disk.free_up()
    disk.fill(leave=QUEUE_MIN_FREE + 500_000)  # room for small mail only
    assert await asyncio.to_thread(send, receiving, message(9, 2_000_000), 2_000_000) == FULL
    # a sender that declares no SIZE: the queue's write finds no room, DATA says so
    assert await asyncio.to_thread(send, receiving, message(9, 2_000_000)) == FULL
    assert queued() == before  # nothing queued, nothing queued before touched
    with sqlite3.connect(disk.path / "queue.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]

    disk.free_up()  # room again: taken at once, no restart
    code, text = await asyncio.to_thread(send, receiving, message(9, 2_000_000), 2_000_000)
    assert code == 250, text
    after = queued()
    assert len(after) == 4
    for queue_id, data in before.items():
        assert after[queue_id] == data
    for queue_id, data in sent.items():
        assert after[queue_id].endswith(data)  # our Received header on top


# -- delivery into a mailbox database whose disk is full ------------------------------------


@pytest.fixture
def org_on_small_disk(tmp_path: Path, password_hash: str) -> Iterator[tuple[Org, SmallDisk]]:
    home = tmp_path / "org"
    with small_disk(home / "databases", "4m") as disk:  # DB01's file is made there
        org = make_org(home, password_hash)
        org.add_user("alice")
        try:
            yield org, disk
        finally:
            org.directory.close()
            close_all()


@pytest.mark.root
def test_delivery_to_a_full_database_is_deferred(
    org_on_small_disk: tuple[Org, SmallDisk], tmp_path: Path
) -> None:
    org, disk = org_on_small_disk
    queue = SqliteQueue(tmp_path / "queue.db")
    mailboxes = DirectoryMailboxes(org.directory)
    clock = Clock()
    run = Deliverer(queue, mailboxes, lambda: CONFIG, clock=clock)
    try:
        enqueue(queue, NewRecipient("alice@lab.net"))
        [taken] = queue.take_due(clock.now)
        assert run.deliver(taken).state == "delivered"
        [first] = org.inbox("alice")

        disk.fill()
        queue_id = enqueue(queue, NewRecipient("alice@lab.net"))
        [taken] = queue.take_due(clock.now)
        outcome = run.deliver(taken)
        assert outcome.state == "retry"
        assert outcome.error.startswith("452 4.3.1 Insufficient system storage"), outcome.error
        [recipient] = queue.recipients(queue_id)
        assert recipient.state == RETRY and recipient.last_error == outcome.error
        assert queue.reports_due() == []  # deferred, not bounced
        assert queue.message_data(queue_id).endswith(BODY)  # kept in the queue
        assert org.inbox("alice") == [first]

        disk.free_up()
        assert queue.take_due(clock.now + 59) == []  # not before MessageRetryInterval
        [again] = queue.take_due(clock.now + 60)
        assert run.deliver(again).state == "delivered"
        inbox = org.inbox("alice")
        assert inbox[0] == first and len(inbox) == 2
        assert f"id {queue_id}".encode() in inbox[1] and inbox[1].endswith(BODY)
        database = org.directory.databases.one("DB01").store_location
        with sqlite3.connect(database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        mailboxes.close()
        queue.close()


@pytest.mark.root
async def test_delivery_waits_for_room_in_the_queue(
    tmp_path: Path, password_hash: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Taking a message for delivery is a write of the queue: with the queue's disk full
    the delivery loop waits (saying so once, not every second) and delivers by itself
    once there is room."""
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("alice")
    mailboxes = DirectoryMailboxes(org.directory)
    try:
        with small_disk(tmp_path / "queue", "4m") as disk:
            queue = SqliteQueue(disk.path / "queue.db")
            queue_id = enqueue(queue, NewRecipient("alice@lab.net"))
            disk.fill()
            task = asyncio.create_task(Deliverer(queue, mailboxes, lambda: CONFIG).run())
            try:
                seen = 0  # half-seconds since the loop said it waits (it looks each second)
                for _ in range(40):
                    await asyncio.sleep(0.5)
                    seen += "delivery waits for room" in caplog.text
                    if seen == 3:
                        break
                assert seen == 3, caplog.text
                assert org.inbox("alice") == []
                disk.free_up()
                inbox = await asyncio.to_thread(wait_for, lambda: org.inbox("alice"))
                assert len(inbox) == 1 and f"id {queue_id}".encode() in inbox[0]
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                queue.close()
        assert caplog.text.count("delivery waits for room in the queue") == 1
        assert "the queue has room again" in caplog.text
    finally:
        mailboxes.close()
        org.directory.close()
        close_all()


# -- which store errors are a full disk ----------------------------------------------------


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), True),
        (sqlite_error("database is locked", sqlite3.SQLITE_BUSY), False),
        (psycopg.errors.DiskFull("could not extend file"), True),  # a PostgreSQL queue
        (psycopg.errors.QueryCanceled("canceling statement"), False),
    ],
    ids=["SQLITE_FULL", "SQLITE_BUSY", "53100", "57014"],
)
def test_a_full_disk_is_queue_full(tmp_path: Path, error: Exception, full: bool) -> None:
    """The queue's write that meets `error` raises QueueFull (the receive service's 452
    4.3.1) for a full disk, else QueueError (451 4.3.0); nothing is queued either way,
    and the queue goes on. (A PostgreSQL queue is this store with psycopg's errors.)"""
    assert is_disk_full(error) is full
    queue = SqliteQueue(tmp_path / "queue.db")
    queue._ERRORS = (sqlite3.Error, psycopg.Error)
    try:
        with pytest.raises(QueueError) as refused, queue._lock, queue._transaction(True) as db:
            db.execute(
                "INSERT INTO message (id, sender, received, client_address, client_helo, "
                "size, hop_count, authenticated_as, data) VALUES ('X', '', 0, '', '', 0, "
                "0, '', x'00')"
            )
            raise error
        assert isinstance(refused.value, QueueFull) is full
        assert queue.messages() == []  # rolled back
        new = NewMessage(sender="", recipients=(NewRecipient("alice@lab.net"),), data=BODY)
        queue.enqueue(new)  # the next write works
        assert len(queue.messages()) == 1
    finally:
        queue.close()


def test_enospc_and_edquot_are_a_full_disk() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not is_disk_full(OSError(errno.EIO, "Input/output error"))
