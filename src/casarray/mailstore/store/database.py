"""One mailbox database (`SqlDatabaseStore`, implements `DatabaseStore`): its engine and
transactions, its schema, the mailboxes it holds, and the per-process cache of open
stores (`open_database_store`, `store_for`, `close_all`).

A mailbox is created in its database the first time it is opened (`mailbox`), with
INBOX and the special folders in one transaction (`create_mailbox`), as Exchange's store
creates a mailbox at first logon or first delivery; `casarray.mailstore.provisioning`
is what callers outside the store use.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Connection, create_engine, delete, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from casarray.mailstore.interface import (
    DEFAULT_FOLDERS,
    DatabaseUnavailable,
    FlagMap,
    MailstoreError,
)
from casarray.mailstore.schema import (
    SCHEMA_VERSION,
    mailbox,
    meta,
    metadata,
    subscription,
    upgrade_steps,
)
from casarray.mailstore.store.disk_full import FullState, is_disk_full
from casarray.mailstore.store.engine import (
    BUSY_TIMEOUT_MS,
    DEFAULT_SYNCHRONOUS,
    POOL_SIZE,
    SYNCHRONOUS_ENV,
    location_url,
    postgres_schema,
    sqlite_engine,
    sqlite_pragmas,
)
from casarray.mailstore.store.mailbox import SqlMailboxStore
from casarray.mailstore.store.rows import (
    _FOLDER_BY_NAME,
    FolderRow,
    _insert_folder,
)
from casarray.mailstore.store.sqlite_direct import FOLDER_BY_NAME, DirectConnections

if TYPE_CHECKING:
    from casarray.directory.objects import MailboxDatabase

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024
MAX_MESSAGE_SIZE_ENV = "CASARRAY_MAILSTORE_MAX_MESSAGE_SIZE"


class SqlDatabaseStore:
    """One mailbox database: every mailbox in it (implements `DatabaseStore`)."""

    def __init__(
        self,
        location: str,
        *,
        max_message_size: int | None = None,
        synchronous: str | None = None,
    ) -> None:
        """`max_message_size`: the largest APPEND accepted, in bytes (default
        $CASARRAY_MAILSTORE_MAX_MESSAGE_SIZE, else 50 MB); `synchronous`: SQLite's
        setting (default $CASARRAY_MAILSTORE_SYNCHRONOUS, else NORMAL)."""
        # SELECT snapshots by folder id: ((folder id, modseq, uidvalidity, uidnext), map).
        self.flag_maps: dict[int, tuple[tuple[int, int, int, int], FlagMap]] = {}
        self._flag_map_locks: dict[int, threading.Lock] = {}
        # mailbox ids by GUID: a mailbox's row keeps its id until it is removed, and a
        # removed mailbox's GUID is never given again
        self._mailbox_ids: dict[str, int] = {}
        self.location = location
        self.url = location_url(location)
        if max_message_size is None:
            max_message_size = int(os.environ.get(MAX_MESSAGE_SIZE_ENV) or DEFAULT_MAX_MESSAGE_SIZE)
        self.max_message_size = max_message_size
        self.dialect = make_url(self.url).get_backend_name()
        where = make_url(self.url).render_as_string(hide_password=True)
        self.full = FullState(location if self.dialect == "sqlite" else where)
        self.schema: str | None = None
        # SQLite's hot paths straight on sqlite3 (see `sqlite_direct`); None on PostgreSQL.
        self.direct: DirectConnections | None = None
        if self.dialect == "sqlite":
            sync = (synchronous or os.environ.get(SYNCHRONOUS_ENV) or DEFAULT_SYNCHRONOUS).upper()
            if sync not in ("NORMAL", "FULL", "EXTRA"):
                raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {sync!r}")
            self.synchronous = sync
            self.engine = sqlite_engine(self.url, sync)
            self._reader = self.engine
            path = make_url(self.url).database
            if path and path != ":memory:":
                self.direct = DirectConnections(
                    path, sqlite_pragmas(sync), BUSY_TIMEOUT_MS / 1000, self.full
                )
        elif self.dialect == "postgresql":
            self.synchronous = "ON"
            self.schema = postgres_schema(self.url)
            self.engine = create_engine(
                self.url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_SIZE
            )
            # Reads in autocommit: no BEGIN/COMMIT round trips; each statement sees
            # everything committed before it.
            self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            raise MailstoreError(
                f"Unsupported mailbox database location '{location}': use a file path, "
                "sqlite:///FILE or postgresql+psycopg://..."
            )
        self._writer = self.engine.execution_options(casarray_write=True)
        try:
            self._ensure_schema()
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    # -- transactions -----------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection seeing everything committed (a snapshot for its lifetime on
        SQLite)."""
        try:
            with self._reader.connect() as conn:
                if self.is_postgres:
                    yield conn
                else:
                    with conn.begin():
                        yield conn
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, durable when committed;
        rolled back when it raises. StorageFull when the disk has no room for it."""
        try:
            with self._writer.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise self._unavailable(exc) from exc
        self.full.written()

    def _unavailable(self, exc: OperationalError) -> DatabaseUnavailable:
        if is_disk_full(exc):
            return self.full.refused(exc)
        return DatabaseUnavailable(
            f"The mailbox database at {self.location} can't be used: {exc.orig}"
        )

    def _ensure_schema(self) -> None:
        version: str | None
        try:
            with self._reader.connect() as conn:
                version = conn.execute(
                    select(meta.c.value).where(meta.c.key == "schema_version")
                ).scalar()
                conn.rollback()
        except DBAPIError:
            version = None
        if version is None:
            with self.write() as conn:
                if self.is_postgres:
                    key = zlib.crc32(f"casarray.mailstore:{self.schema}".encode())
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
                    if self.schema:
                        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                metadata.create_all(conn)
                version = conn.execute(
                    select(meta.c.value).where(meta.c.key == "schema_version")
                ).scalar()
                if version is None:
                    version = str(SCHEMA_VERSION)
                    conn.execute(insert(meta).values(key="schema_version", value=version))
        if int(version) < SCHEMA_VERSION:
            self._upgrade(int(version))
        elif int(version) > SCHEMA_VERSION:
            raise DatabaseUnavailable(
                f"The mailbox database at {self.location} has store schema {version}, newer "
                f"than this casarray's ({SCHEMA_VERSION}): upgrade casarray."
            )

    def _upgrade(self, version: int) -> None:
        """Brings a database made by an earlier casarray to `SCHEMA_VERSION`, in one
        transaction (on PostgreSQL under the schema's advisory lock, as creation)."""
        with self.write() as conn:
            if self.is_postgres:
                key = zlib.crc32(f"casarray.mailstore:{self.schema}".encode())
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            found = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            if int(found.scalar_one()) >= SCHEMA_VERSION:
                return  # another process did it meanwhile
            for index in upgrade_steps(version):
                index.create(conn, checkfirst=True)
            conn.execute(
                update(meta).where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
            )

    def schema_version(self) -> int:
        with self.read() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            return int(value.scalar_one())

    # -- DatabaseStore ----------------------------------------------------------

    def mailbox(self, mailbox_guid: str) -> SqlMailboxStore:
        """The mailbox's store; created with its default folders on first use."""
        mailbox_id = self._mailbox_ids.get(mailbox_guid)
        if mailbox_id is None:
            with self.read() as conn:
                found = conn.execute(select(mailbox.c.id).where(mailbox.c.guid == mailbox_guid))
                mailbox_id = found.scalar()
            if mailbox_id is None:
                return self.create_mailbox(mailbox_guid)
            if len(self._mailbox_ids) > 100_000:
                self._mailbox_ids.clear()
            self._mailbox_ids[mailbox_guid] = int(mailbox_id)
        return SqlMailboxStore(self, mailbox_guid, int(mailbox_id))

    def create_mailbox(self, mailbox_guid: str) -> SqlMailboxStore:
        """INBOX and the special folders, subscribed; an existing mailbox as it is."""
        mailbox_guid = str(mailbox_guid)
        if not mailbox_guid or len(mailbox_guid) > 64:
            raise MailstoreError(f"'{mailbox_guid}' is not a mailbox GUID.")
        try:
            with self.write() as conn:
                found = conn.execute(select(mailbox.c.id).where(mailbox.c.guid == mailbox_guid))
                mailbox_id = found.scalar()
                if mailbox_id is None:
                    mailbox_id = conn.execute(
                        insert(mailbox)
                        .values(guid=mailbox_guid, last_uid_validity=0, created=int(time.time()))
                        .returning(mailbox.c.id)
                    ).scalar_one()
                    for name, special_use in DEFAULT_FOLDERS:
                        _insert_folder(conn, mailbox_id, name, special_use)
                    conn.execute(
                        insert(subscription),
                        [{"mailbox_id": mailbox_id, "name": name} for name, _ in DEFAULT_FOLDERS],
                    )
        except IntegrityError:  # another process created it meanwhile (PostgreSQL)
            return self.mailbox(mailbox_guid)
        return SqlMailboxStore(self, mailbox_guid, int(mailbox_id))

    def remove_mailbox(self, mailbox_guid: str) -> None:
        """Removes the mailbox with every folder and message; nothing if it isn't here."""
        self._mailbox_ids.pop(str(mailbox_guid), None)
        with self.write() as conn:
            conn.execute(delete(mailbox).where(mailbox.c.guid == str(mailbox_guid)))

    def has_mailbox(self, mailbox_guid: str) -> bool:
        with self.read() as conn:
            found = conn.execute(select(mailbox.c.id).where(mailbox.c.guid == str(mailbox_guid)))
            return found.first() is not None

    def mailbox_guids(self) -> list[str]:
        with self.read() as conn:
            return list(conn.execute(select(mailbox.c.guid).order_by(mailbox.c.guid)).scalars())

    def folder_by_name(self, mailbox_id: int, name: str) -> FolderRow | None:
        """One folder's row, read outside any transaction: the hot path of SELECT and of
        every command's change check."""
        if self.direct is not None:
            found = self.direct.one(FOLDER_BY_NAME, (mailbox_id, name))
            return FolderRow(*found) if found is not None else None
        with self.read() as conn:  # PostgreSQL (autocommit), or an in-memory SQLite
            found = conn.execute(_FOLDER_BY_NAME, {"mailbox_id": mailbox_id, "name": name}).first()
        return FolderRow(*found) if found is not None else None

    def flag_map_lock(self, folder_id: int) -> threading.Lock:
        """Held while a folder's SELECT snapshot is read, so that sessions selecting the
        same changed folder at once read it once."""
        lock = self._flag_map_locks.get(folder_id)
        if lock is None:
            lock = self._flag_map_locks.setdefault(folder_id, threading.Lock())
        return lock

    def close(self) -> None:
        """Closes the pooled connections (and forgets this store in the process cache);
        a later use opens new ones."""
        with _stores_lock:
            for key, store in list(_stores.items()):
                if store is self:
                    del _stores[key]
        self.engine.dispose()
        if self.direct is not None:
            self.direct.close()


# -- opening stores ------------------------------------------------------------------------

_stores: dict[tuple[int, str], SqlDatabaseStore] = {}
_stores_lock = threading.Lock()


def _cache_key(location: str) -> tuple[int, str]:
    return os.getpid(), location_url(location)


def open_database_store(location: str) -> SqlDatabaseStore:
    """The store at `location` (a file path or a database URL), opened once per process
    and shared (its connection pool serves every caller)."""
    key = _cache_key(location)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = SqlDatabaseStore(location)
        return store


def store_for(database: MailboxDatabase) -> SqlDatabaseStore:
    """The store of a mailbox database, which must be mounted (Mount-Database):
    DatabaseUnavailable otherwise."""
    if not database.mounted:
        raise DatabaseUnavailable(
            f"The mailbox database '{database.name}' is dismounted; mount it with "
            f"Mount-Database {database.name}."
        )
    return open_database_store(database.store_location)


def close_all() -> None:
    """Closes every store this process opened (for shutdown and tests)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.engine.dispose()
        if store.direct is not None:
            store.direct.close()
