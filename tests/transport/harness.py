"""Test support for the transport: an organization with a Hub Transport server (MBX01,
Mailbox and HubTransport, 127.77.1.21, with setup's Default and Client receive
connectors), its database DB01 in a SQLite file, users, and `casarray transport run`
as a real process on free ports.

Not a conftest: the test modules import what they use."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casarray.directory import Directory

PASSWORD = "P@ssw0rd-lab"
SERVER = "MBX01"
ADDRESS = "127.77.1.21"


@dataclass
class Org:
    home: Path
    url: str
    directory: Directory
    password_hash: str
    users: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CASARRAY_HOME"] = str(self.home)
        env.pop("CASARRAY_DIRECTORY", None)
        return env

    def add_user(self, alias: str) -> str:
        from casarray.mailstore.provisioning import provision_mailbox

        mailbox = self.directory.mailboxes.new(
            name=alias.title(), alias=alias, database="DB01", password_hash=self.password_hash
        )
        provision_mailbox(self.directory.databases.one("DB01"), mailbox.guid)
        self.users[alias] = mailbox.guid
        return mailbox.primary_smtp_address

    def inbox(self, alias: str) -> list[bytes]:
        """The messages in the user's INBOX, as an IMAP client would FETCH them."""
        from casarray.mailstore.provisioning import open_mailbox

        mailbox = self.directory.mailboxes.one(alias)
        store = open_mailbox(self.directory.databases.one(mailbox.database), mailbox.guid)
        uids = [m.uid for m in store.messages("INBOX")]
        bodies = store.bodies("INBOX", uids)
        return [bodies[uid] for uid in uids]


def make_org(home: Path, password_hash: str) -> Org:
    home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{home / 'directory.db'}"
    directory = Directory.open(url)
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.servers.new("CAS01", "ClientAccess", "127.77.1.11")
    directory.servers.new(SERVER, "Mailbox, HubTransport", ADDRESS)
    directory.databases.new(
        "DB01", SERVER, mounted=True, store_location=str(home / "databases" / "DB01.db")
    )
    return Org(home=home, url=url, directory=directory, password_hash=password_hash)


class TransportProcess:
    """`casarray transport run MBX01` on its address, ports 25 and 587 mapped to free
    ones."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.log = org.home / "transport.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[int, int] = {}

    @property
    def status_path(self) -> Path:
        return self.org.home / "run" / f"transport-{SERVER.lower()}.json"

    def start(self, timeout: float = 30) -> TransportProcess:
        with contextlib.suppress(FileNotFoundError):
            self.status_path.unlink()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "casarray",
                "transport",
                "run",
                SERVER,
                "--directory",
                self.org.url,
                "--port",
                "25=0",
                "--port",
                "587=0",
                "--log-file",
                str(self.log),
            ],
            env=self.org.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"transport exited {self.proc.returncode}: {err}\n{self.logs()}")
            with contextlib.suppress(OSError, ValueError):
                status = json.loads(self.status_path.read_text())
                if status.get("pid") == self.proc.pid:
                    self.ports = {int(k): int(v) for k, v in status["ports"].items()}
                    return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"transport did not start in {timeout} s\n{self.logs()}")

    def logs(self) -> str:
        try:
            return self.log.read_text()
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def smtp(self, port: int = 25) -> smtplib.SMTP:
        return smtplib.SMTP(ADDRESS, self.ports[port], timeout=10)

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.org.home / "transport" / SERVER.lower() / "smtp.pem")
        )
        context.check_hostname = False
        return context


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)
