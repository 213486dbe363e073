"""Several `casarray server run` processes on one directory, as the stateless Client
Access tier: IDLE on CAS01 sees a message appended through CAS02, referrals follow
Set-MailboxDatabase -RpcClientAccessServer at once, cross-site access follows
Set-ClientAccessServer -AllowCrossSiteRpcClientAccess, a dismounted database answers
UNAVAILABLE, SIGTERM says BYE, and kill -9 right after an APPEND was answered OK loses
nothing."""

from __future__ import annotations

import imaplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.access.cas_process import read_status
from tests.access.imap.server_harness import PASSWORD, Lab, ServerProcess, make_lab, running


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path / "lab", password_hash)
    lab.add_user("alice", "DB01")
    lab.add_user("carol", "DB03")
    yield lab
    lab.directory.close()


def message(subject: str) -> bytes:
    return (
        f"From: bob@lab.net\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@lab.net>\r\n\r\nbody of {subject}\r\n"
    ).encode()


def login_error(server: ServerProcess, user: str) -> str:
    client = server.imap()
    try:
        client.login(user, PASSWORD)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        client.logout()
    return "OK"


def test_idle_on_cas01_sees_append_through_cas02(lab: Lab) -> None:
    """The seed's array: both members serve DB01; a message appended through CAS02
    shows in a session idling on CAS01, pushed to it."""
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"; '
        "Get-MailboxDatabase DB01 | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net"
    )
    with running(lab, "CAS01") as cas01, running(lab, "CAS02") as cas02:
        with cas01.imapclient() as watcher, cas02.imapclient() as writer:
            watcher.login("alice", PASSWORD)
            writer.login("alice@lab.net", PASSWORD)
            assert watcher.select_folder("INBOX")[b"EXISTS"] == 0
            watcher.idle()
            time.sleep(0.3)
            writer.append("INBOX", message("through CAS02"))
            responses = watcher.idle_check(timeout=5)  # pushed at once; 5 s bounds the wait
            watcher.idle_done()
            assert (1, b"EXISTS") in responses
            uid = watcher.search(["ALL"])[0]
            envelope = watcher.fetch([uid], ["ENVELOPE"])[uid][b"ENVELOPE"]
            assert envelope.subject == b"through CAS02"
        # the certificate of each covers the array's name
        assert "bj-cas.lab.net" in (cas01.logs() + cas02.logs())


def test_referral_follows_set_mailboxdatabase(lab: Lab) -> None:
    with running(lab, "CAS01") as cas01, running(lab, "CAS02") as cas02:
        assert login_error(cas01, "alice") == "OK"
        assert "REFERRAL imap://alice@CAS01.lab.net/" in login_error(cas02, "alice")
        lab.shell("Set-MailboxDatabase DB01 -RpcClientAccessServer CAS02.lab.net")
        changed = time.monotonic()
        error = login_error(cas01, "alice")
        assert time.monotonic() - changed < 5  # followed at once, not at a cache's expiry
        assert error.startswith("b'[REFERRAL imap://alice@CAS02.lab.net/]"), error
        assert login_error(cas02, "alice") == "OK"
        # the raw answer, as RFC 2221 has it
        client = cas01.imap()
        tag = client._command("LOGIN", "alice", client._quote(PASSWORD))  # type: ignore[attr-defined]
        typ, data = client._command_complete("LOGIN", tag)  # type: ignore[attr-defined]
        assert typ == "NO"
        assert data[0].startswith(b"[REFERRAL imap://alice@CAS02.lab.net/] ")
        client.logout()
        # the mailbox was not opened on CAS01 for it
        assert "referred to CAS02.lab.net" in cas01.logs()


def test_cross_site_access_allowed_by_the_setting(lab: Lab) -> None:
    """carol's DB03 (site SH) names CAS03: CAS01 (site BJ) refers her there until it
    allows cross-site access."""
    with running(lab, "CAS01") as cas01:
        assert "REFERRAL imap://carol@CAS03.lab.net/" in login_error(cas01, "carol")
        lab.shell("Set-ClientAccessServer -Identity CAS01 -AllowCrossSiteRpcClientAccess $true")
        out = lab.shell("(Get-ClientAccessServer CAS01).AllowCrossSiteRpcClientAccess")
        assert out.strip() == "True"
        lab.mailbox_store("carol").append("INBOX", message("for carol in SH"))
        with cas01.imapclient() as client:
            client.login("carol", PASSWORD)
            client.select_folder("INBOX")
            uids = client.search(["SUBJECT", "carol"])
            assert len(uids) == 1
        assert "database DB03, cross-site" in cas01.logs()
        lab.shell("Set-ClientAccessServer CAS01 -AllowCrossSiteRpcClientAccess $false")
        assert "REFERRAL" in login_error(cas01, "carol")


def test_dismounted_database(lab: Lab) -> None:
    with running(lab, "CAS01") as cas01:
        lab.shell("Dismount-Database DB01 -Confirm:$false")
        error = login_error(cas01, "alice")
        assert "[UNAVAILABLE]" in error and "DB01" in error
        lab.shell("Mount-Database DB01")
        assert login_error(cas01, "alice") == "OK"


def test_sigterm_says_bye_and_exits_cleanly(lab: Lab) -> None:
    server = ServerProcess(lab, "CAS01").start()
    try:
        assert read_status("CAS01", lab.home) is not None
        client = server.imaps()
        client.login("alice", PASSWORD)
        client.select("INBOX")
        assert server.stop() == 0
        client.sock.settimeout(5)
        rest = client.file.read()  # what the server sent before it closed the connection
        assert b"* BYE Server shutting down" in rest
        assert read_status("CAS01", lab.home) is None
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.imap_port), timeout=1)
        assert "IMAP stopped (1 sessions closed" in server.logs()
    finally:
        server.close()


@pytest.mark.parametrize("attempt", range(3))
def test_kill_9_right_after_append_loses_nothing(lab: Lab, attempt: int) -> None:
    server = ServerProcess(lab, "CAS01").start()
    raw = message(f"durable {attempt}")
    try:
        client = server.imapclient()
        client.login("alice", PASSWORD)
        result = client.append("INBOX", raw, flags=[b"\\Flagged"])
        server.kill()  # kill -9 as soon as the OK was read
        assert b"APPENDUID" in result
        uid = int(result.split(b"APPENDUID", 1)[1].split()[1].rstrip(b"]"))
    finally:
        server.close()
    # the store has it, and so does a new server process
    store = lab.mailbox_store("alice")
    assert store.body("INBOX", uid) == raw
    with running(lab, "CAS01") as again, again.imapclient() as client:
        client.login("alice", PASSWORD)
        client.select_folder("INBOX")
        fetched = client.fetch([uid], ["BODY.PEEK[]", "FLAGS"])
        assert fetched[uid][b"BODY[]"] == raw
        assert b"\\Flagged" in fetched[uid][b"FLAGS"]
