"""`casarray mailbox run MBX01`: the process of one server's Mailbox role.

The Client Access servers read and write the mailbox databases themselves (the stores
are SQLite files or PostgreSQL schemas that any process may open); what the Mailbox
server owns is whether its databases are in service: a database is used only while it
is mounted (`Mount-Database`). This process:

- mounts every database of the server (`databases.set_mounted`) and opens each store
  once to check it (its schema, and on SQLite the WAL replayed by the open); a
  database still mounted at start was left so by a process that didn't stop cleanly,
  which the log says;
- follows the directory (`Directory.watch`): a database of the server mounted or
  dismounted by cmdlet meanwhile is opened or closed (it does not mount it again:
  `Dismount-Database` keeps a database out of service until `Mount-Database`);
- on SQLite, runs a passive WAL checkpoint of each store every CHECKPOINT_INTERVAL
  seconds, so the write-ahead logs don't grow while clients keep a reader open;
- says `ready` on its stdout when that is a pipe (a supervisor reading it), and writes
  its status file, `$CASARRAY_HOME/run/mailbox-<server>.json` (its databases, its
  pid), while it runs;
- at a clean stop (SIGTERM, SIGINT) dismounts the databases it holds and removes the
  status file. Killed with kill -9 it leaves them mounted, as a crashed Exchange store
  leaves its databases until the next start: clients go on using them meanwhile, and
  the next start finds them mounted and checks them.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.process import status
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess, run_process
from casarray.process.pool import announce_ready

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.directory.objects import MailboxDatabase
    from casarray.mailstore.store import SqlDatabaseStore

log = logging.getLogger("casarray.mailbox")

CHECKPOINT_INTERVAL = 60.0
FOLLOW_INTERVAL = 0.2


@dataclass
class MailboxOptions:
    server: str
    directory: str | None = None
    log_file: str | None = None
    log_level: str = "INFO"
    checkpoint_interval: float = CHECKPOINT_INTERVAL


def status_file(server: str, home: Path | None = None) -> status.StatusFile:
    return status.status_file(status.MAILBOX, server, home)


def read_status(server: str, home: Path | None = None) -> dict[str, Any] | None:
    """What a running Mailbox role says of its databases, or None when none runs."""
    return status_file(server, home).read()


def checkpoint(store: SqlDatabaseStore) -> tuple[int, int] | None:
    """A passive WAL checkpoint of a SQLite store: (frames in the WAL, frames copied to
    the database file); None for PostgreSQL."""
    if store.is_postgres:
        return None
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            row = cursor.fetchone()
        finally:
            cursor.close()
    finally:
        raw.close()
    if row is None:
        return None
    return int(row[1]), int(row[2])


class MailboxProcess(ServiceProcess):
    """The databases of one Mailbox server, held mounted while this runs."""

    log = log

    def __init__(self, options: MailboxOptions) -> None:
        super().__init__()
        self.label = options.server
        self.options = options
        self.directory: Directory | None = None
        self.name = options.server
        self.fqdn = ""
        self.stores: dict[str, SqlDatabaseStore] = {}  # database name -> store
        self.locations: dict[str, str] = {}
        self._status: status.StatusFile | None = None
        self._started = ""
        self._opened = False  # the server is a Mailbox server: its databases are ours

    # -- blocking steps (run in a thread) -------------------------------------------

    def _open(self) -> list[MailboxDatabase]:
        from casarray.directory import Directory, DirectoryError

        try:
            directory = Directory.open(self.options.directory)
        except DirectoryError as exc:
            raise StartupError(str(exc)) from exc
        self.directory = directory
        try:
            record = directory.servers.one(self.options.server)
        except DirectoryError as exc:
            raise StartupError(str(exc)) from exc
        if not record.is_mailbox_server:
            raise StartupError(
                f"The server '{record.name}' isn't a Mailbox server (its roles: "
                f"{record.roles}); only Mailbox servers hold mailbox databases."
            )
        self.name, self.fqdn = record.name, record.fqdn
        self._opened = True
        databases = directory.databases.get(server=record.name)
        mounted: list[MailboxDatabase] = []
        for database in databases:
            if database.mounted:
                log.warning(
                    "%s: %s was left mounted (its store wasn't stopped cleanly); checking it",
                    self.name,
                    database.name,
                )
            mounted.append(directory.databases.set_mounted(database.guid, True))
        return mounted

    def _check(self, database: MailboxDatabase) -> SqlDatabaseStore:
        """Open the database's store once and read its schema (on SQLite the open
        replays what a crash left in the WAL)."""
        from casarray.mailstore.interface import MailstoreError
        from casarray.mailstore.store import open_database_store

        try:
            store = open_database_store(database.store_location)
            version = store.schema_version()
            mailboxes = len(store.mailbox_guids())
        except (MailstoreError, ValueError) as exc:
            raise StartupError(f"{self.name}: the store of {database.name}: {exc}") from exc
        log.info(
            "%s: %s mounted (%s, store schema %d, %d mailbox%s)",
            self.name,
            database.name,
            database.store_location,
            version,
            mailboxes,
            "" if mailboxes == 1 else "es",
        )
        return store

    def _sync(self) -> bool:
        """Open the stores of databases mounted meanwhile and close those dismounted or
        removed; whether anything changed."""
        assert self.directory is not None
        databases = {
            db.name: db for db in self.directory.databases.get(server=self.name) if db.mounted
        }
        changed = False
        for name in list(self.stores):
            if name not in databases or databases[name].store_location != self.locations[name]:
                log.info("%s: %s is dismounted", self.name, name)
                del self.stores[name], self.locations[name]
                changed = True
        for name, database in databases.items():
            if name not in self.stores:
                try:
                    self.stores[name] = self._check(database)
                except StartupError as exc:
                    log.error("%s", exc)
                    continue
                self.locations[name] = database.store_location
                changed = True
        return changed

    def _checkpoint_all(self) -> None:
        for name, store in list(self.stores.items()):
            try:
                result = checkpoint(store)
            except Exception as exc:  # a busy or vanished file: next time
                log.warning("%s: checkpoint of %s failed: %s", self.name, name, exc)
                continue
            if result is not None and result[0] > 0:
                log.debug("%s: %s checkpoint: %d of %d WAL frames", self.name, name, *result[::-1])

    def _dismount(self) -> None:
        """Dismount every database of the server (those it held, and any mounted
        before a failed start)."""
        assert self.directory is not None
        try:
            databases = self.directory.databases.get(server=self.name)
        except Exception as exc:
            log.error("%s: can't read its databases to dismount them: %s", self.name, exc)
            databases = []
        for database in databases:
            if not database.mounted:
                continue
            try:
                self.directory.databases.set_mounted(database.guid, False)
            except Exception as exc:
                log.error("%s: can't dismount %s: %s", self.name, database.name, exc)
            else:
                log.info("%s: %s dismounted", self.name, database.name)
        self.stores.clear()
        self.locations.clear()

    # -- the process -----------------------------------------------------------------

    def _write_status(self) -> None:
        if self._status is None:
            return
        self._status.write(
            {
                "server": self.name,
                "fqdn": self.fqdn,
                "pid": os.getpid(),
                "databases": [
                    {"name": name, "location": self.locations[name], "mounted": True}
                    for name in sorted(self.stores)
                ],
                "started": self._started,
            },
        )

    async def start(self) -> None:
        databases = await asyncio.to_thread(self._open)
        for database in databases:
            self.stores[database.name] = await asyncio.to_thread(self._check, database)
            self.locations[database.name] = database.store_location
        self._started = datetime.now(UTC).isoformat(timespec="seconds")
        self._status = status_file(self.name)
        self._write_status()
        self.label = self.name
        log.info(
            "%s: Mailbox role up with %s",
            self.name,
            ", ".join(sorted(self.stores)) or "no databases",
        )

    async def checkpoints(self) -> None:
        """The checkpoints, also when the directory doesn't change."""
        while True:
            await asyncio.sleep(self.options.checkpoint_interval)
            await asyncio.to_thread(self._checkpoint_all)

    async def stop(self) -> None:
        from casarray.mailstore.store import close_all

        if self.directory is not None and self._opened:
            await asyncio.to_thread(self._dismount)
        if self._status is not None:
            self._status.remove()
        close_all()
        if self.directory is not None:
            self.directory.close()

    def started(self) -> None:
        announce_ready(only_to_a_pipe=True)  # to the lab; nothing on a terminal

    def jobs(self) -> list[Job]:
        return [self.follow_changes(), self.checkpoints()]

    async def follow_changes(self) -> None:
        assert self.directory is not None
        async for _version in self.directory.watch(interval=FOLLOW_INTERVAL):
            if await asyncio.to_thread(self._sync):
                self._write_status()


def run(options: MailboxOptions) -> int:
    """Run until SIGTERM or SIGINT; the exit status."""
    return run_process(
        lambda: MailboxProcess(options), log_file=options.log_file, log_level=options.log_level
    )
