"""Delivery into a real mailbox database: the message lands in INBOX with Return-Path
and Received on top; temporary and permanent failures; relay recipients fail without a
send connector and wait for a smart host that is down; and the
recovery after a crash at each point of an attempt delivers exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from casarray.transport.config import SendConnector, TransportConfig
from casarray.transport.delivery import Deliverer
from casarray.transport.headers import received_header
from casarray.transport.mailboxes import DirectoryMailboxes
from casarray.transport.queue import (
    DELIVERED,
    FAILED,
    RELAY,
    RETRY,
    NewMessage,
    NewRecipient,
    SqliteQueue,
    new_queue_id,
)
from tests.transport.harness import Org, make_org

BODY = b"From: x@far.net\r\nSubject: hello\r\n\r\nHi.\r\n"


@pytest.fixture
def org(tmp_path: Path, password_hash: str) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("alice")
    org.add_user("bob")
    yield org
    org.directory.close()


class Clock:
    def __init__(self) -> None:
        self.now = time.time() + 1  # after whatever the test enqueues

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def parts(org: Org, tmp_path: Path) -> Iterator[tuple[SqliteQueue, DirectoryMailboxes, Clock]]:
    queue = SqliteQueue(tmp_path / "queue.db")
    mailboxes = DirectoryMailboxes(org.directory)
    yield queue, mailboxes, Clock()
    mailboxes.close()
    queue.close()


CONFIG = TransportConfig(
    server="MBX01",
    fqdn="mbx01.lab.net",
    message_retry_interval=timedelta(seconds=60),
    message_expiration_timeout=timedelta(days=2),
)


def enqueue(queue: SqliteQueue, *recipients: NewRecipient, sender: str = "x@far.net") -> str:
    queue_id = new_queue_id()
    from datetime import UTC, datetime

    data = (
        received_header(
            helo="client.far.net",
            client_address="127.0.0.1",
            by="mbx01.lab.net",
            queue_id=queue_id,
            recipient=None,
            protocol="ESMTP",
            when=datetime.now(UTC),
        )
        + BODY
    )
    return queue.enqueue(
        NewMessage(sender=sender, recipients=recipients, data=data, queue_id=queue_id)
    )


def deliverer(parts: tuple[SqliteQueue, DirectoryMailboxes, Clock]) -> Deliverer:
    queue, mailboxes, clock = parts
    return Deliverer(queue, mailboxes, lambda: CONFIG, clock=clock)


def test_local_delivery_lands_in_inbox(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, _, clock = parts
    queue_id = enqueue(queue, NewRecipient("alice@lab.net"), NewRecipient("bob@lab.net"))
    run = deliverer(parts)
    outcomes = [run.deliver(r) for r in queue.take_due(clock.now)]
    assert [o.state for o in outcomes] == ["delivered", "delivered"]
    for alias in ("alice", "bob"):
        [message] = org.inbox(alias)
        assert message.startswith(b"Return-Path: <x@far.net>\r\nReceived: from client.far.net")
        assert f"id {queue_id}".encode() in message and message.endswith(BODY)
    assert {r.state for r in queue.recipients(queue_id)} == {DELIVERED}
    assert queue.in_flight() == []


def test_null_sender_gets_an_empty_return_path(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, _, clock = parts
    enqueue(queue, NewRecipient("alice@lab.net"), sender="")
    run = deliverer(parts)
    [taken] = queue.take_due(clock.now)
    assert run.deliver(taken).state == "delivered"
    assert org.inbox("alice")[0].startswith(b"Return-Path: <>\r\n")


def test_failures_and_relay(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, _, clock = parts
    queue_id = enqueue(
        queue, NewRecipient("gone@lab.net"), NewRecipient("bob@far.net", RELAY, "far.net")
    )
    run = deliverer(parts)
    outcomes = [run.deliver(r) for r in queue.take_due(clock.now)]
    assert [o.state for o in outcomes] == ["failed", "failed"]
    gone, far = queue.recipients(queue_id)
    assert gone.state == FAILED and gone.last_error.startswith("550 5.1.1")
    assert far.state == FAILED and far.last_error.startswith("550 5.4.4 Unable to route")
    # with a send connector whose smart host is down: retried after the interval, then
    # twice the interval
    down = SendConnector("Out", (("*", 1),), smart_hosts=("127.0.0.1",), port=1)
    run = Deliverer(queue, parts[1], lambda: replace(CONFIG, send_connectors=(down,)), clock=clock)
    queue_id = enqueue(queue, NewRecipient("bob@far.net", RELAY, "far.net"))
    [taken] = queue.take_due(clock.now)
    assert run.deliver(taken).state == "retry"
    [far] = queue.recipients(queue_id)
    assert far.state == RETRY and far.last_error.startswith("451 4.4.1 127.0.0.1 can't be reached")
    assert far.next_attempt == clock.now + 60
    [taken] = queue.take_due(clock.now + 60)
    assert run.deliver(taken).state == "retry"
    assert queue.recipients(queue_id)[0].next_attempt == clock.now + 120


def test_a_full_mailbox_refuses_the_message(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, mailboxes, clock = parts
    org.directory.mailboxes.set(
        "alice",
        quota_values={
            "IssueWarningQuota": "100B",
            "ProhibitSendQuota": "100B",
            "ProhibitSendReceiveQuota": "100B",
        },
        use_database_quota_defaults=False,
    )
    mailboxes.topology_changed()
    queue_id = enqueue(queue, NewRecipient("alice@lab.net"))
    run = deliverer(parts)
    [taken] = queue.take_due(clock.now)
    outcome = run.deliver(taken)
    assert outcome.state == "failed" and outcome.error.startswith("550 5.2.2")
    assert org.inbox("alice") == []
    assert queue.recipients(queue_id)[0].state == FAILED


def test_messages_to_one_mailbox_go_in_together(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    """Recipients taken together for one address are appended in one transaction; one
    over the quota is refused alone."""
    from casarray.transport.delivery import by_mailbox

    queue, _, clock = parts
    ids = [enqueue(queue, NewRecipient("alice@lab.net")) for _ in range(3)]
    enqueue(queue, NewRecipient("bob@lab.net"), NewRecipient("x@far.net", RELAY, "far.net"))
    groups = by_mailbox(queue.take_due(clock.now))
    assert [[r.address for r in group] for group in groups] == [
        ["alice@lab.net"] * 3,
        ["bob@lab.net"],
        ["x@far.net"],
    ]
    run = deliverer(parts)
    assert [o.state for o in run.deliver_all(groups[0])] == ["delivered"] * 3
    assert len(org.inbox("alice")) == 3
    assert {queue.recipients(i)[0].state for i in ids} == {DELIVERED}
    # one more, with room for one message only
    inbox = org.inbox("alice")
    room = sum(len(m) for m in inbox) + len(inbox[0]) + 10
    org.directory.mailboxes.set(
        "alice",
        quota_values={
            "IssueWarningQuota": f"{room}B",
            "ProhibitSendQuota": f"{room}B",
            "ProhibitSendReceiveQuota": f"{room}B",
        },
        use_database_quota_defaults=False,
    )
    run.mailboxes.topology_changed()
    more = [enqueue(queue, NewRecipient("alice@lab.net")) for _ in range(2)]
    outcomes = run.deliver_all(queue.take_due(clock.now + 1))
    assert [o.state for o in outcomes] == ["delivered", "failed"]
    assert queue.recipients(more[1])[0].last_error.startswith("550 5.2.2")


def test_a_dismounted_database_is_retried(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, _, clock = parts
    queue_id = enqueue(queue, NewRecipient("alice@lab.net"))
    org.directory.databases.set_mounted("DB01", False)
    run = deliverer(parts)
    [taken] = queue.take_due(clock.now)
    outcome = run.deliver(taken)
    assert outcome.state == "retry" and "dismounted" in outcome.error
    org.directory.databases.set_mounted("DB01", True)
    assert queue.take_due(clock.now + 59) == []
    [again] = queue.take_due(clock.now + 60)
    assert run.deliver(again).state == "delivered"
    assert len(org.inbox("alice")) == 1
    assert queue.recipients(queue_id)[0].attempts == 2


def test_expired_messages_fail(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, _, clock = parts
    queue_id = enqueue(queue, NewRecipient("bob@far.net", RELAY, "far.net"))
    clock.now = 4_000_000_000.0  # long after it was received
    run = deliverer(parts)
    [taken] = queue.take_due(clock.now)
    assert run.deliver(taken).state == "failed"
    assert queue.recipients(queue_id)[0].last_error.startswith("550 5.4.7 Message expired")


def test_crash_after_the_append_is_not_delivered_twice(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    """The attempt taken, the message appended, then the process dies before the queue
    records it: after the restart it is found in INBOX and recorded."""
    queue, mailboxes, clock = parts
    queue_id = enqueue(queue, NewRecipient("alice@lab.net"))
    queue.take_due(time.time())
    store = mailboxes.open("alice@lab.net")
    store.append("INBOX", b"Return-Path: <x@far.net>\r\n" + queue.message_data(queue_id))
    # -- crash; a new process recovers
    run = deliverer(parts)
    assert run.recover() == 1
    assert queue.recipients(queue_id)[0].state == DELIVERED
    assert queue.take_due(clock.now + 3600) == []
    assert len(org.inbox("alice")) == 1


def test_crash_before_the_append_delivers_once(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    queue, mailboxes, clock = parts
    queue_id = enqueue(queue, NewRecipient("alice@lab.net"))
    # other messages in INBOX, of before and during the attempt, do not count
    mailboxes.open("alice@lab.net").append("INBOX", b"Subject: other\r\n\r\nx\r\n")
    queue.take_due(time.time())
    mailboxes.open("alice@lab.net").append("INBOX", b"Subject: another\r\n\r\nx\r\n")
    # -- crash before the append
    run = deliverer(parts)
    assert run.recover() == 0
    [again] = queue.take_due(clock.now)
    assert again.attempts == 2
    assert run.deliver(again).state == "delivered"
    assert len(org.inbox("alice")) == 3
    assert queue.recipients(queue_id)[0].state == DELIVERED


def test_mailboxes_are_read_again_after_a_directory_change(org: Org, parts) -> None:  # type: ignore[no-untyped-def]
    _, mailboxes, _ = parts
    assert mailboxes.exists("carol@lab.net") is False
    org.add_user("carol")
    assert mailboxes.exists("carol@lab.net") is True  # a miss is never kept
    assert mailboxes.exists("Carol") is False  # an alias is no address
    org.directory.mailboxes.remove("carol")
    assert mailboxes.exists("carol@lab.net") is True  # kept until the version changes
    mailboxes.topology_changed()
    assert mailboxes.exists("carol@lab.net") is False
