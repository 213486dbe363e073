"""Test support for the transport: an organization with a Hub Transport server (MBX01,
Mailbox and HubTransport, 127.77.1.21, with setup's Default and Client receive
connectors), its database DB01 in a SQLite file, users, and `casarray transport run`
as a real process on free ports.

Not a conftest: the test modules import what they use."""

from __future__ import annotations

import os
import smtplib
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casarray.directory import Directory
from tests.process_harness import ManagedProcess

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


class TransportProcess(ManagedProcess):
    """`casarray transport run MBX01` on its address, ports 25 and 587 mapped to free
    ones."""

    def __init__(self, org: Org, queue: str | None = None) -> None:
        super().__init__("transport", org.home / "transport.log")
        self.org = org
        self.queue = queue  # the queue store's URL (None: the server's SQLite file)
        self.ports: dict[int, int] = {}

    @property
    def status_path(self) -> Path:
        return self.org.home / "run" / f"transport-{SERVER.lower()}.json"

    def start(self, timeout: float = 30) -> TransportProcess:
        argv = [sys.executable, "-m", "casarray", "transport", "run", SERVER]
        argv += ["--directory", self.org.url, "--port", "25=0", "--port", "587=0"]
        argv += ["--log-file", str(self.log)]
        if self.queue is not None:
            argv += ["--queue", self.queue]
        status = self.launch(argv, self.org.env, self.status_path, timeout)
        self.ports = {int(k): int(v) for k, v in status["ports"].items()}
        return self

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
