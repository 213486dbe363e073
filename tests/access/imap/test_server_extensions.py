"""`casarray server run CAS01` (its worker processes sharing the ports) driven by imaplib
for what no imaptest group covers: COMPRESS=DEFLATE after STARTTLS and on the IMAPS
port, QUOTA against limits an administrator sets with the shell, and the login cache:
a login verified by one connection is served to the next from the directory (seen in
the server's log and in the directory's table, not by timing), while a wrong password
and a changed password are still refused.

One server process for the module; each test has users of its own."""

from __future__ import annotations

import imaplib
import itertools
import re
import zlib
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from casarray.directory.schema import VerifiedLoginRow
from tests.access.imap.server_harness import PASSWORD, Lab, ServerProcess, make_lab

_ids = itertools.count(1)
# imaplib knows neither command (its own table says in which states a command is sent).
imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("MOVE", ("SELECTED",))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path_factory.mktemp("imap-ext-lab"), password_hash)
    yield lab
    lab.directory.close()


@pytest.fixture(scope="module")
def cas01(lab: Lab) -> Iterator[ServerProcess]:
    server = ServerProcess(lab, "CAS01").start()
    yield server
    assert server.stop() == 0
    server.close()


@pytest.fixture
def user(lab: Lab) -> str:
    return lab.add_user(f"ext{next(_ids)}")


def message(subject: str, size: int) -> bytes:
    body = b"".join(b"line %06d of a rather repetitive report\r\n" % i for i in range(size // 40))
    head = f"From: carol@lab.net\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n\r\n"
    return head.encode() + body


class Compressed:
    """Turns an imaplib client's traffic into deflate streams after COMPRESS DEFLATE
    (imaplib has no COMPRESS of its own): its send, read and readline are replaced on
    the instance; counts what crosses the wire."""

    def __init__(self, client: imaplib.IMAP4) -> None:
        self.client = client
        self.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflater = zlib.decompressobj(-15)
        self.buffer = b""
        self.wire_in = 0
        self.plain_in = 0
        self._send = client.send
        client.send = self.send  # type: ignore[method-assign]
        client.read = self.read  # type: ignore[method-assign]
        client.readline = self.readline  # type: ignore[method-assign]

    def send(self, data: bytes) -> None:
        self._send(self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self) -> None:
        chunk = self.client.file.read1(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("connection closed")
        self.wire_in += len(chunk)
        plain = self.inflater.decompress(chunk)
        self.plain_in += len(plain)
        self.buffer += plain

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def readline(self) -> bytes:
        while b"\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"


def compress(client: imaplib.IMAP4) -> Compressed:
    typ, data = client._simple_command("COMPRESS", "DEFLATE")
    assert typ == "OK", data
    return Compressed(client)


# -- COMPRESS=DEFLATE ------------------------------------------------------------------


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["starttls", "imaps"])
def test_compress_deflate(cas01: ServerProcess, user: str, implicit_tls: bool) -> None:
    client = cas01.imaps() if implicit_tls else cas01.imap()
    client.login(user, PASSWORD)
    assert b"COMPRESS=DEFLATE" in client.capability()[1][0]  # type: ignore[operator]
    wire = compress(client)
    raw = message("Compressed", 200_000)
    typ, data = client.append("INBOX", "", None, raw)
    assert typ == "OK", data
    client.select("INBOX")
    typ, data = client.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][1] == raw  # type: ignore[index]
    assert wire.plain_in > len(raw) > 10 * wire.wire_in  # it went over the wire compressed
    typ, data = client._simple_command("COMPRESS", "DEFLATE")
    assert typ == "NO"
    assert b"[COMPRESSIONACTIVE]" in data[-1]  # type: ignore[operator]
    typ, data = client.noop()
    assert typ == "OK"
    client.logout()


# -- QUOTA -----------------------------------------------------------------------------


def test_quota_set_by_the_administrator(cas01: ServerProcess, lab: Lab, user: str) -> None:
    alias = user.split("@")[0]
    client = cas01.imap()
    client.login(user, PASSWORD)
    typ, data = client.getquotaroot("INBOX")
    assert typ == "OK"
    # DB01's defaults (2.3 GB, in KB) until the administrator gives the mailbox its own
    assert data == [[b'"INBOX" ""'], [b'"" (STORAGE 0 2411520)']]
    lab.shell(
        f"Set-Mailbox {alias} -UseDatabaseQuotaDefaults $false -IssueWarningQuota 40KB "
        "-ProhibitSendQuota 45KB -ProhibitSendReceiveQuota 50KB"
    )
    raw = message("Fits", 30_000)
    typ, data = client.append("INBOX", "", None, raw)
    assert typ == "OK", data
    typ, data = client.append("INBOX", "", None, raw)  # a second one doesn't fit
    assert typ == "NO"
    assert data[0].startswith(b"[OVERQUOTA] Over quota")  # type: ignore[union-attr]
    typ, data = client.getquota('""')
    assert data == [b'"" (STORAGE %d 50)' % ((len(raw) + 1023) // 1024)]
    typ, data = client.status("INBOX", "(SIZE MESSAGES)")
    assert data == [b'"INBOX" (SIZE %d MESSAGES 1)' % len(raw)]
    client.select("INBOX")
    typ, data = client.copy("1", "Archive")
    assert typ == "NO" and b"[OVERQUOTA]" in data[0]  # type: ignore[operator]
    typ, data = client._simple_command("MOVE", "1", "Archive")
    assert typ == "OK"  # a move keeps the mailbox's size
    typ, data = client.setquota('""', "(STORAGE 100000)")
    assert typ == "NO" and b"[NOPERM]" in data[0]  # type: ignore[operator]
    # Unlimited: no quota root, and everything fits
    lab.shell(
        f"Set-Mailbox {alias} -IssueWarningQuota Unlimited -ProhibitSendQuota Unlimited "
        "-ProhibitSendReceiveQuota Unlimited"
    )
    typ, data = client.getquotaroot("INBOX")
    assert (typ, data) == ("OK", [[b'"INBOX"'], [None]])  # no QUOTA response
    assert client.append("INBOX", "", None, raw)[0] == "OK"
    client.logout()


# -- the login cache ---------------------------------------------------------------------


def verified_rows(lab: Lab) -> list[str]:
    with lab.directory.store.read() as session:
        return list(session.scalars(select(VerifiedLoginRow.user_key)))


def login_lines(server: ServerProcess, user: str) -> list[str]:
    return [line for line in server.logs().splitlines() if f"login {user!r}" in line]


def test_a_second_login_is_served_from_the_cache(cas01: ServerProcess, lab: Lab, user: str) -> None:
    first = cas01.imap()
    first.login(user, PASSWORD)
    assert f"user:{user}" in verified_rows(lab)
    # another connection (possibly to the other worker process) logs in again
    second = cas01.imaps()
    second.login(user, PASSWORD)
    lines = [line for line in login_lines(cas01, user) if ": ok (" in line]
    assert len(lines) == 2, lines
    assert "verified lately" not in lines[0]
    assert "verified lately" in lines[1]
    # a wrong password is refused, not taken from the cache
    third = cas01.imap()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        third.login(user, PASSWORD + "!")
    third.logout()
    # a password changed by the administrator: the old one stops working at once
    alias = user.split("@")[0]
    lab.directory.mailboxes.set(alias, password="N3w-P@ssw0rd")
    assert f"user:{user}" not in verified_rows(lab)
    fourth = cas01.imap()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        fourth.login(user, PASSWORD)
    fourth.login(user, "N3w-P@ssw0rd")
    oks = [line for line in login_lines(cas01, user) if ": ok (" in line]
    assert len(oks) == 3 and "verified lately" not in oks[2]
    for client in (first, second, fourth):
        client.logout()


def test_lockout_forgets_the_cached_login(cas01: ServerProcess, lab: Lab, user: str) -> None:
    client = cas01.imap()
    client.login(user, PASSWORD)
    client.logout()
    assert f"user:{user}" in verified_rows(lab)
    for _ in range(5):  # from an address of their own: this one stays unblocked
        bad = cas01.imap(source="127.0.0.77")
        with pytest.raises(imaplib.IMAP4.error):
            bad.login(user, "wrong")
        bad.logout()
    assert f"user:{user}" not in verified_rows(lab)
    locked = cas01.imap()
    with pytest.raises(imaplib.IMAP4.error, match=re.escape("[UNAVAILABLE]")):
        locked.login(user, PASSWORD)  # right password, but locked out: as before
    locked.logout()
