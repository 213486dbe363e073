"""`casarray transport run MBX01` as a real process on the directory's receive
connectors (setup's Default MBX01 on 25 and Client MBX01 on 587, on free ports): mail
from outside reaches alice's INBOX, submission with AUTH after STARTTLS, the directory
followed live, and kill -9 between `250` and delivery loses nothing and delivers once."""

from __future__ import annotations

import imaplib
import json
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.transport.harness import PASSWORD, Org, TransportProcess, make_org, wait_for

MESSAGE = b"From: x@far.net\r\nTo: alice@lab.net\r\nSubject: from outside\r\n\r\nHello.\r\n"


@pytest.fixture
def org(tmp_path: Path, password_hash: str) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("alice")
    org.add_user("bob")
    yield org
    org.directory.close()


@pytest.fixture
def transport(org: Org) -> Iterator[TransportProcess]:
    process = TransportProcess(org).start()
    yield process
    process.close()


def send(process: TransportProcess, recipient: str = "alice@lab.net") -> bytes:
    with process.smtp() as client:
        client.ehlo("mta.far.net")
        client.mail("x@far.net")
        code, _ = client.rcpt(recipient)
        assert code == 250
        code, text = client.data(MESSAGE)
        assert code == 250, text
        return text


def test_mail_from_outside_reaches_the_inbox(org: Org, transport: TransportProcess) -> None:
    text = send(transport)
    queue_id = text.decode().split("<")[1].split(">")[0]
    [message] = wait_for(lambda: org.inbox("alice"))
    assert message.startswith(b"Return-Path: <x@far.net>\r\nReceived: from mta.far.net (")
    assert f"by MBX01.lab.net with ESMTP id {queue_id}".encode() in message
    assert message.endswith(MESSAGE)
    assert transport.stop() == 0
    assert not transport.status_path.exists()


def test_submission_relay_and_unknown_users(org: Org, transport: TransportProcess) -> None:
    with transport.smtp() as client:
        client.ehlo("mta.far.net")
        client.mail("x@far.net")
        assert client.rcpt("nobody@lab.net")[0] == 550
        assert client.rcpt("someone@far.net")[0] == 550
    with transport.smtp(587) as client:
        client.starttls(context=transport.tls_context())
        client.login("alice@lab.net", PASSWORD)
        client.mail("alice@lab.net")
        assert client.rcpt("bob@lab.net")[0] == 250
        code, text = client.rcpt("someone@far.net")  # relay allowed, but no way out:
        assert (code, text[:5]) == (550, b"5.4.4")  # no send connector routes far.net
        assert client.data(b"Subject: hi bob\r\n\r\nx\r\n")[0] == 250
    [message] = wait_for(lambda: org.inbox("bob"))
    assert b"with ESMTPSA id" in message


def test_connectors_follow_the_directory(org: Org, transport: TransportProcess) -> None:
    org.directory.transport.set_receive_connector(
        "MBX01\\Default MBX01", banner="220 lab.net mail, changed"
    )

    def banner() -> bytes:
        client = smtplib.SMTP(timeout=10)
        try:
            return client.connect("127.77.1.21", transport.ports[25])[1]
        finally:
            client.close()

    assert wait_for(lambda: banner() == b"lab.net mail, changed", timeout=5)


def test_kill_9_between_250_and_delivery(org: Org, transport: TransportProcess) -> None:
    """The database dismounted: the message is acknowledged and waits. The process is
    killed; the database mounted; a new process delivers it, once."""
    org.directory.databases.set_mounted("DB01", False)
    send(transport)
    send(transport, "bob@lab.net")
    assert wait_for(lambda: "will be retried" in transport.logs())
    transport.kill()
    org.directory.databases.set_mounted("DB01", True)
    assert org.inbox("alice") == [] and org.inbox("bob") == []
    transport.start()
    assert len(wait_for(lambda: org.inbox("alice"))) == 1, transport.logs()
    assert len(wait_for(lambda: org.inbox("bob"))) == 1
    # nothing more comes
    time.sleep(1.5)
    assert len(org.inbox("alice")) == 1 and len(org.inbox("bob")) == 1


def test_mail_is_read_over_imap(org: Org, transport: TransportProcess, tmp_path: Path) -> None:
    """What the transport delivered is what an IMAP client of a Client Access server
    sees."""
    from tests.access.imap.server_harness import Lab, ServerProcess

    send(transport)
    wait_for(lambda: org.inbox("alice"))
    lab = Lab(home=org.home, url=org.url, directory=org.directory, password_hash=org.password_hash)
    cas = ServerProcess(lab, "CAS01").start()
    try:
        client: imaplib.IMAP4 = cas.imap()
        client.login("alice@lab.net", PASSWORD)
        client.select("INBOX")
        status, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (RETURN-PATH SUBJECT)])")
        assert status == "OK"
        header = data[0][1]  # type: ignore[index]
        assert b"Return-Path: <x@far.net>" in header and b"Subject: from outside" in header
        client.logout()
    finally:
        cas.close()


def test_kill_9_while_delivering_delivers_each_message_once(
    org: Org, transport: TransportProcess
) -> None:
    """Messages acknowledged one after another, the process killed right after the last
    `250` (some delivered, some perhaps half way): after the restart each is in INBOX
    exactly once."""
    _kill_9_while_delivering(org, transport)


def test_kill_9_with_the_queue_on_postgresql(org: Org, postgres_server: Any) -> None:
    """The same with the queue in a PostgreSQL database (`--queue postgresql://...`):
    nothing acknowledged is lost, nothing delivered twice; Get-Queue's store reads it."""
    url = postgres_server.url(postgres_server.create_database())
    transport = TransportProcess(org, queue=url).start()
    try:
        status = json.loads(transport.status_path.read_text())
        assert status["queue"].endswith("(schema transport_mbx01)")
        _kill_9_while_delivering(org, transport)
    finally:
        transport.close()


def _kill_9_while_delivering(org: Org, transport: TransportProcess) -> None:
    ids = []
    with transport.smtp() as client:
        client.ehlo("mta.far.net")
        for n in range(20):
            client.mail("x@far.net")
            client.rcpt("alice@lab.net")
            code, text = client.data(MESSAGE.replace(b"Hello.", f"Message {n}.".encode()))
            assert code == 250
            ids.append(text.decode().split("<")[1].split(">")[0])
        transport.kill()
    transport.start()
    assert len(wait_for(lambda: len(org.inbox("alice")) >= 20 and org.inbox("alice"))) == 20
    time.sleep(1.5)
    inbox = org.inbox("alice")
    assert len(inbox) == 20
    for n, queue_id in enumerate(ids):
        [found] = [m for m in inbox if f"id {queue_id}".encode() in m]
        assert found.endswith(f"Message {n}.\r\n".encode())
