"""Test support for the IMAP server tests: a lab organization in a folder of its own
(directory, mailbox databases, users with their folders) and `casarray server run`
as a real process on a lab address, with free ports.

Not a conftest: the server test modules import what they use."""

from __future__ import annotations

import contextlib
import imaplib
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casarray.access.tls import client_context
from casarray.directory import Directory
from tests.process_harness import ManagedProcess

PASSWORD = "P@ssw0rd-lab"
ADDRESSES = {"CAS01": "127.77.1.11", "CAS02": "127.77.1.12", "CAS03": "127.77.2.11"}


@dataclass
class Lab:
    """A BJ/SH organization (tests.conftest.build_bj) with DB01 (MBX01, site BJ) and
    DB03 (MBX02, site SH) mounted, each in its own SQLite file under `home`."""

    home: Path
    url: str
    directory: Directory
    password_hash: str
    users: dict[str, str] = field(default_factory=dict)  # alias -> mailbox GUID

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CASARRAY_HOME"] = str(self.home)
        env.pop("CASARRAY_DIRECTORY", None)
        return env

    def add_user(self, alias: str, database: str = "DB01") -> str:
        """A mailbox with the standard folders (INBOX, Sent, ...); its address."""
        from casarray.mailstore.provisioning import provision_mailbox

        mailbox = self.directory.mailboxes.new(
            name=alias.title(), alias=alias, database=database, password_hash=self.password_hash
        )
        provision_mailbox(self.directory.databases.one(database), mailbox.guid)
        self.users[alias] = mailbox.guid
        return mailbox.primary_smtp_address

    def mailbox_store(self, alias: str) -> Any:
        from casarray.mailstore.provisioning import open_mailbox

        mailbox = self.directory.mailboxes.one(alias)
        return open_mailbox(self.directory.databases.one(mailbox.database), mailbox.guid)

    def shell(self, command: str) -> str:
        """Run cmdlets with `casarray shell -c` (as an administrator would)."""
        proc = subprocess.run(
            [sys.executable, "-m", "casarray", "shell", "--directory", self.url, "-c", command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout


def make_lab(home: Path, password_hash: str) -> Lab:
    from tests.conftest import build_bj

    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'directory.db'}"
    directory = Directory.open(url)
    build_bj(directory)
    for name, server in (("DB01", "MBX01"), ("DB03", "MBX02")):
        directory.databases.new(
            name, server, mounted=True, store_location=str(home / "databases" / f"{name}.db")
        )
    return Lab(home=home, url=url, directory=directory, password_hash=password_hash)


class ServerProcess(ManagedProcess):
    """`casarray server run NAME` on the server's lab address, on free ports."""

    def __init__(self, lab: Lab, name: str = "CAS01", *args: str) -> None:
        super().__init__(name, lab.home / f"{name}.log")
        self.lab = lab
        self.host = ADDRESSES[name]
        self.args = args
        self.imap_port = 0
        self.imaps_port = 0

    @property
    def certificate(self) -> Path:
        return self.lab.home / "certs" / f"{self.name}.pem"

    def start(self, timeout: float = 30) -> ServerProcess:
        from casarray.access.cas_process import status_file

        argv = [sys.executable, "-m", "casarray", "server", "run", self.name]
        argv += ["--directory", self.lab.url, "--imap-port", "0", "--imaps-port", "0"]
        argv += ["--log-file", str(self.log), *self.args]
        status = self.launch(
            argv, self.lab.env, status_file(self.name, self.lab.home).path, timeout
        )
        self.imap_port, self.imaps_port = status["imap"], status["imaps"]
        return self

    # -- clients ------------------------------------------------------------------------

    def tls_context(self) -> ssl.SSLContext:
        return client_context(self.certificate)

    def imap(self, *, starttls: bool = True, source: str | None = None) -> imaplib.IMAP4:
        """imaplib on 143 (STARTTLS done unless `starttls` is False)."""
        client = SourceIMAP4(self.host, self.imap_port, timeout=10, source=source)
        if starttls:
            client.starttls(ssl_context=self.tls_context())
        return client

    def imaps(self) -> imaplib.IMAP4_SSL:
        """imaplib on 993 (implicit TLS)."""
        return imaplib.IMAP4_SSL(
            self.host, self.imaps_port, ssl_context=self.tls_context(), timeout=10
        )

    def imapclient(self, *, implicit: bool = True) -> Any:
        from imapclient import IMAPClient

        if implicit:
            return IMAPClient(
                self.host,
                port=self.imaps_port,
                ssl=True,
                ssl_context=self.tls_context(),
                timeout=10,
            )
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=10)
        client.starttls(self.tls_context())
        return client


class SourceIMAP4(imaplib.IMAP4):
    """imaplib.IMAP4 that connects from a chosen source address (the throttling tests
    need clients at distinct addresses)."""

    def __init__(self, host: str, port: int, timeout: float, source: str | None) -> None:
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        source = (self._source, 0) if self._source else None
        return socket.create_connection((self.host, self.port), timeout, source)


@contextlib.contextmanager
def running(lab: Lab, name: str = "CAS01", *args: str) -> Iterator[ServerProcess]:
    server = ServerProcess(lab, name, *args).start()
    try:
        yield server
    finally:
        server.close()


def free_offset(wanted: list[tuple[str, tuple[int, ...]]]) -> int:
    """An offset N with port+N free on each host of `wanted` (pairs of a host and its
    ports), probed from a free port on the first host."""
    first_host, first_ports = wanted[0]
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((first_host, 0))
            offset = probe.getsockname()[1] - first_ports[0]
        if offset <= 0 or max(max(ports) for _, ports in wanted) + offset > 65535:
            continue
        try:
            with contextlib.ExitStack() as held:
                for host, ports in wanted:
                    for port in ports:
                        held.enter_context(socket.socket()).bind((host, port + offset))
        except OSError:
            continue
        return offset
    raise RuntimeError("no free ports")


def start_casarray(args: list[str], lab: Lab, log: Path) -> subprocess.Popen[bytes]:
    """`casarray ARGS` on the lab's directory, logging to `log`."""
    return subprocess.Popen(
        [sys.executable, "-m", "casarray", *args, "--directory", lab.url, "--log-file", str(log)],
        env=lab.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL after 20 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
