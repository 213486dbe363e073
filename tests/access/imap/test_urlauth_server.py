"""URLAUTH on real `casarray server run` processes: a URL that alice authorizes through
CAS01 is fetched by bob through CAS02 and through CAS01 after a restart (the key lives
in the mailbox database, not in a process), and RESETKEY through CAS02 revokes it
everywhere. Also the end to end of MULTIAPPEND, CATENATE and BINARY through imaplib."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.access.imap.server_harness import PASSWORD, Lab, ServerProcess, make_lab, running

MESSAGE = b"From: alice@lab.net\r\nSubject: shared\r\n\r\nThe shared body.\r\n"


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path / "lab", password_hash)
    lab.add_user("alice", "DB01")
    lab.add_user("bob", "DB01")
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"; '
        "Get-MailboxDatabase DB01 | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net"
    )
    yield lab
    lab.directory.close()


def login(server: ServerProcess, user: str) -> imaplib.IMAP4:
    client = server.imap()
    client.login(user, PASSWORD)
    return client


def command(client: imaplib.IMAP4, name: str, *args: str) -> list[object]:
    """An extension command; its untagged responses of the same name."""
    typ, data = client.xatom(name, *args)
    assert typ == "OK", (typ, data)
    return client.untagged_responses.pop(name, [])


def urlfetch(server: ServerProcess, user: str, url: str) -> bytes | None:
    client = login(server, user)
    try:
        answer = command(client, "URLFETCH", f'"{url}"')[0]
    finally:
        client.logout()
    if isinstance(answer, tuple):
        return bytes(answer[1])
    assert isinstance(answer, bytes) and answer.endswith(b" NIL"), answer
    return None


def test_a_url_authorized_on_one_server_is_fetched_on_another_and_after_a_restart(
    lab: Lab,
) -> None:
    with running(lab, "CAS01") as cas01, running(lab, "CAS02") as cas02:
        alice = login(cas01, "alice@lab.net")
        typ, data = alice.append("INBOX", "", None, MESSAGE)
        assert typ == "OK"
        uid = re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1).decode()  # type: ignore[union-attr]
        rump = f"imap://alice@lab.net/INBOX/;uid={uid};urlauth=authuser"
        [generated] = command(alice, "GENURLAUTH", f'"{rump}"', "INTERNAL")
        alice.logout()
        url = bytes(generated).decode().strip('"')  # type: ignore[arg-type]
        assert url.startswith(rump + ":internal:")

        assert urlfetch(cas02, "bob@lab.net", url) == MESSAGE
        cas01.stop()
        cas01.start()
        assert urlfetch(cas01, "bob@lab.net", url) == MESSAGE

        alice = login(cas02, "alice@lab.net")
        command(alice, "RESETKEY", "INBOX")
        alice.logout()
        assert urlfetch(cas01, "bob@lab.net", url) is None


def test_multiappend_catenate_and_binary_end_to_end(lab: Lab) -> None:
    with running(lab, "CAS01") as cas01:
        alice = login(cas01, "alice@lab.net")
        caps = alice.capabilities
        for cap in ("BINARY", "MULTIAPPEND", "CATENATE", "URLAUTH", "URLAUTH=BINARY"):
            assert cap in caps
        binary = b"From: a@lab.net\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01binary\r\n"
        # imaplib sends literals itself: a MULTIAPPEND of two literals as raw bytes
        alice.send(
            b"m1 APPEND INBOX {%d+}\r\n%s ~{%d+}\r\n%s\r\n"
            % (len(MESSAGE), MESSAGE, len(binary), binary)
        )
        line = alice.readline()
        assert re.fullmatch(rb"m1 OK \[APPENDUID \d+ 1:2\] APPEND completed\r\n", line), line
        alice.send(
            b"m2 APPEND INBOX CATENATE (TEXT {10+}\r\nNew: x\r\n\r\n "
            b'URL "/INBOX/;uid=1/;section=text")\r\n'
        )
        line = alice.readline()
        assert re.fullmatch(rb"m2 OK \[APPENDUID \d+ 3\] APPEND completed\r\n", line), line
        alice.select("INBOX")
        typ, data = alice.fetch("1:3", "(BODY.PEEK[TEXT] BINARY.SIZE[1])")
        assert typ == "OK"
        texts = [item[1] for item in data if isinstance(item, tuple)]
        assert texts == [b"The shared body.\r\n", b"AAFiaW5hcnkNCg==\r\n", b"The shared body.\r\n"]
        alice.logout()
