"""Message tracking end to end: `casarray transport run MBX01` as a real process takes a
message over SMTP and delivers it, and Get-MessageTrackingLog shows its RECEIVE and
DELIVER by its Message-ID; a delivery that fails for now shows DEFER."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shell.cmdlet_shell import Shell
from tests.transport.harness import Org, TransportProcess, make_org, wait_for

MESSAGE = (
    b"From: x@far.net\r\nTo: alice@lab.net\r\nSubject: tracked\r\n"
    b"Message-ID: <tracked-1@far.net>\r\n\r\nHello.\r\n"
)


@pytest.fixture
def org(tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("alice")
    monkeypatch.setenv("CASARRAY_HOME", str(org.home))
    yield org
    org.directory.close()


@pytest.fixture
def transport(org: Org) -> Iterator[TransportProcess]:
    process = TransportProcess(org).start()
    yield process
    process.close()


@pytest.fixture
def shell(org: Org) -> Iterator[Shell]:
    sh = Shell(org.url, width=200)
    yield sh
    sh.close()


def send(transport: TransportProcess, message: bytes = MESSAGE) -> str:
    with transport.smtp() as client:
        client.ehlo("mta.far.net")
        client.mail("x@far.net")
        assert client.rcpt("alice@lab.net")[0] == 250
        code, text = client.data(message)
        assert code == 250, text
    return text.decode().split("<")[1].split(">")[0]


def events(shell: Shell, message_id: str) -> list[str]:
    out = shell.ok(
        f"Get-MessageTrackingLog -MessageId '{message_id}' | ForEach-Object {{ "
        "$_.EventId + '|' + $_.Source + '|' + $_.InternalMessageId + '|' + $_.ConnectorId + "
        "'|' + $_.Sender + '|' + ($_.Recipients -join ',') + '|' + $_.MessageSubject }"
    ).out
    return out.splitlines()


def test_receive_and_deliver_are_tracked(
    org: Org, transport: TransportProcess, shell: Shell
) -> None:
    queue_id = send(transport)
    wait_for(lambda: org.inbox("alice"))
    found = wait_for(
        lambda: (
            len(events(shell, "<tracked-1@far.net>")) >= 2 and events(shell, "<tracked-1@far.net>")
        )
    )
    assert found == [
        f"RECEIVE|SMTP|{queue_id}|MBX01\\Default MBX01|x@far.net|alice@lab.net|tracked",
        f"DELIVER|STOREDRIVER|{queue_id}||x@far.net|alice@lab.net|tracked",
    ], transport.logs()
    out = shell.ok("Get-MessageTrackingLog -Server MBX01 -EventId RECEIVE | Format-List").out
    assert "ClientIp                : 127." in out
    assert "ClientHostname          : mta.far.net" in out
    assert "ServerHostname          : MBX01.lab.net" in out
    assert "TotalBytes              : " in out
    # the running process names its log in its status file
    assert transport.status_path.read_text().count("MessageTracking") == 1


def test_a_retry_is_tracked_as_defer(org: Org, transport: TransportProcess, shell: Shell) -> None:
    org.directory.databases.set_mounted("DB01", False)
    queue_id = send(transport, MESSAGE.replace(b"tracked-1", b"tracked-2"))
    found = wait_for(lambda: "DEFER" in "".join(events(shell, "<tracked-2@far.net>")))
    assert found, transport.logs()
    out = shell.ok(f"Get-MessageTrackingLog -InternalMessageId {queue_id} -EventId DEFER").out
    assert "DEFER" in out and "STOREDRIVER" in out
