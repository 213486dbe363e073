"""Test support for the cmdlet tests: a shell session on a test directory whose
output, errors and confirmation answers are strings, and a bulk loader of databases.

Not a conftest: the cmdlet test modules import what they use."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import insert

from casarray.directory import Directory
from casarray.directory.schema import MailboxDatabaseRow
from casarray.shell.errors import ErrorRecord
from casarray.shell.runtime import Host, Session

CONFIRM_QUESTION = "Are you sure you want to perform this action?"


def what_if(cmdlet: str, target: str) -> str:
    return f'What if: Performing the operation "{cmdlet}" on target "{target}".'


@dataclass
class Result:
    """What one `Shell.run` did."""

    ok: bool
    out: str
    err: str
    errors: list[ErrorRecord] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [
            line.removeprefix("WARNING: ")
            for line in self.out.splitlines()
            if line.startswith("WARNING: ")
        ]

    @property
    def prompts(self) -> int:
        return self.out.count(CONFIRM_QUESTION)

    def error(self) -> ErrorRecord:
        """The one error written."""
        assert len(self.errors) == 1, [e.message for e in self.errors]
        return self.errors[0]


class Shell:
    """A shell session on the directory at `url`, talking to string buffers."""

    def __init__(self, url: str, width: int = 120) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.host = Host(
            out=self.out, err=self.err, stdin=io.StringIO(""), terminal=False, width=width
        )
        self.session = Session(directory_url=url, host=self.host)

    def run(self, source: str, stdin: str = "") -> Result:
        """Run `source`; `stdin` holds the answers to confirmation prompts."""
        self.host.stdin = io.StringIO(stdin)
        out_at, err_at, errors_at = self.out.tell(), self.err.tell(), len(self.session.errors)
        ok = self.session.run(source)
        return Result(
            ok,
            self.out.getvalue()[out_at:],
            self.err.getvalue()[err_at:],
            list(self.session.errors[errors_at:]),
        )

    def ok(self, source: str, stdin: str = "") -> Result:
        """Run `source` and check that it wrote no error."""
        result = self.run(source, stdin)
        assert result.ok and not result.errors, result.err
        return result

    def close(self) -> None:
        self.session.close()


def add_databases(
    d: Directory, count: int, server: str = "MBX01", prefix: str = "BULK", rpc: str | None = None
) -> list[str]:
    """Insert `count` mailbox databases on `server` in one transaction (much faster
    than `databases.new` per database), each naming `rpc` (default: the server's first
    Client Access server's FQDN, as `databases.new` would without an array). Returns
    their names."""
    names = [f"{prefix}{i:05d}" for i in range(count)]
    now = datetime.now(UTC)
    with d.store.write() as session:
        server_row = d.servers.resolve_row(session, server)
        target = rpc or d.databases.default_rpc_client_access_server(session, server_row)
        session.execute(
            insert(MailboxDatabaseRow),
            [
                {
                    "guid": str(uuid.uuid4()),
                    "name": name,
                    "name_key": name.lower(),
                    "server_id": server_row.id,
                    "rpc_client_access_server": target,
                    "rpc_client_access_server_key": target.lower(),
                    "store_location": f"/tmp/{name}.db",
                    "mounted": False,
                    "when_created": now,
                }
                for name in names
            ],
        )
    return names


def rpc_of(d: Directory) -> dict[str, str]:
    """Every database's RpcClientAccessServer, by name."""
    return {db.name: db.rpc_client_access_server for db in d.databases.get()}
