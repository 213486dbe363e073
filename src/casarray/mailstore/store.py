"""The mailbox database store: `MailboxStore` and `DatabaseStore` on SQLite or
PostgreSQL through SQLAlchemy Core (tables in `mailstore.schema`).

Where a database lives (`MailboxDatabase.store_location`):

- a file path (or `sqlite:///FILE`): one SQLite file per database, in WAL mode with
  `synchronous=NORMAL`, foreign keys on and a 15 s busy timeout. WAL+NORMAL makes a
  commit durable against the crash of any process, kill -9 included: the commit's
  frames are in the WAL file (the OS page cache) before COMMIT returns, and SQLite
  replays them when the file is next opened; only a crash of the operating system or a
  power cut can lose the last commits (never corrupt the file), since the WAL is
  fsynced at checkpoints, not at each commit. That is the promise an APPEND answered OK
  needs here ("durable across kill -9 of any process") at a fraction of FULL's cost (an
  fsync per commit). `CASARRAY_MAILSTORE_SYNCHRONOUS=FULL` (or `synchronous="FULL"`)
  buys power-cut durability.
- a PostgreSQL URL: `postgresql+psycopg://user@host/db` keeps the tables in the
  connection's default schema; one schema per mailbox database is chosen with the libpq
  option `options=-csearch_path=NAME`, URL-encoded as
  `postgresql+psycopg://user@host/db?options=-csearch_path%3Ddb01` (see
  `postgres_location`). The store creates that schema if it is missing. PostgreSQL
  commits are durable when COMMIT returns (synchronous_commit on, its default).

Writes are transactions: `BEGIN IMMEDIATE` on SQLite (one writer at a time per file, so
UIDs and modseqs are allocated without races), row locks on PostgreSQL (the folder row
for message changes, the mailbox row for hierarchy changes, always in that order so two
sessions never deadlock). Reads see every committed change at once: SQLite reads run in
a short transaction of their own, PostgreSQL reads in autocommit.

Semantics (RFC 3501 unless said):
- UIDVALIDITY: the time in seconds when the folder was created, kept strictly
  increasing per mailbox, so a folder deleted and recreated (even within a second)
  gets a new one. RENAME keeps it; UIDNEXT only grows; UIDs are never reused.
- CREATE makes missing parents. DELETE refuses a folder with subfolders (HASCHILDREN,
  RFC 5530: delete them first) instead of RFC 3501's \\Noselect leftover, so every
  folder is selectable and every folder's parents exist. INBOX can't be deleted.
- RENAME moves the subfolders and their subscriptions too. RENAME INBOX creates the
  new folder, moves INBOX's messages into it (same UIDs, new UIDVALIDITY) and leaves
  INBOX empty; its subfolders stay where they are.
- Subscriptions are names: they may name folders that don't exist, and DELETE leaves
  them (RFC 3501 6.3.6).
- Every change of a message (append, flags, copy in, expunge) gives the folder a new
  modseq, also given to the messages changed; expunges leave tombstones, so
  `changes_since` reports them to every other session.
- COPY and MOVE keep flags and INTERNALDATE, give the copies new UIDs (in source UID
  order) and \\Recent; MOVE removes the source messages in the same transaction. A
  copy shares the original's content rows (bytes and cached parts).
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import os
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from casarray.mailstore import flags as flagbits
from casarray.mailstore.interface import (
    SPECIAL_FOLDERS,
    Appended,
    CachedParts,
    Changes,
    Copied,
    DatabaseUnavailable,
    DestinationNotFound,
    FlagMap,
    Folder,
    FolderExists,
    FolderHasChildren,
    FolderInUse,
    FolderNotFound,
    FolderStatistics,
    MailstoreError,
    MessageInfo,
    MessageNotFound,
    MessageTooLarge,
)
from casarray.mailstore.mime import cached_parts, normalize_newlines
from casarray.mailstore.names import INBOX, canonical, is_under, parents, sort_key
from casarray.mailstore.schema import (
    SCHEMA_VERSION,
    content,
    expunged,
    mailbox,
    meta,
    metadata,
    raw,
    subscription,
)
from casarray.mailstore.schema import folder as folder_t
from casarray.mailstore.schema import message as message_t

if TYPE_CHECKING:
    from casarray.directory.objects import MailboxDatabase

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024
BUSY_TIMEOUT_MS = 15_000
SYNCHRONOUS_ENV = "CASARRAY_MAILSTORE_SYNCHRONOUS"
MAX_MESSAGE_SIZE_ENV = "CASARRAY_MAILSTORE_MAX_MESSAGE_SIZE"
DEFAULT_SYNCHRONOUS = "NORMAL"
SPECIAL_USES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = ((INBOX, None), *SPECIAL_FOLDERS)
MAX_UID_VALIDITY = 2**32 - 1
# Up to this many UIDs go into an IN list; more are read as a UID range and filtered.
FLAG_MAP_CACHE = 256  # folders whose SELECT snapshot a process keeps
_IN_LIMIT = 500
_SCHEMA_NAME = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][A-Za-z0-9_$]*)")


# -- locations ------------------------------------------------------------------------


def location_url(location: str) -> str:
    """The SQLAlchemy URL of a store location: a URL as it is, a path as a SQLite file."""
    if "://" in location:
        return location
    return f"sqlite:///{Path(location).expanduser().absolute()}"


def postgres_location(url: str, schema: str) -> str:
    """A PostgreSQL store location keeping its tables in `schema` of the database at
    `url`: `postgresql+psycopg://host/db` -> `...?options=-csearch_path%3Ddb01`."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", schema):
        raise ValueError(f"'{schema}' is not a plain PostgreSQL schema name")
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}', safe='')}"


def postgres_schema(url: str) -> str | None:
    """The schema a PostgreSQL location names with `options=-csearch_path=NAME`."""
    options = make_url(url).query.get("options")
    if isinstance(options, tuple):
        options = " ".join(options)
    match = _SCHEMA_NAME.search(options or "")
    return match.group(1) if match else None


POOL_SIZE = 24  # >= the IMAP worker threads (16) plus the event loop's own reads


def _sqlite_engine(url: str, synchronous: str) -> Engine:
    path = make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # The pool holds a connection for every worker thread: a connection beyond it would
    # be opened and closed per use, its PRAGMAs run again each time.
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # BEGIN is issued by _on_begin
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA cache_size=-32768")  # 32 MB of pages per connection
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        write = conn.get_execution_options().get("casarray_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


# -- values -----------------------------------------------------------------------------

_ZONES: dict[int, timezone] = {0: UTC}


def _zone(offset: int) -> timezone:
    zone = _ZONES.get(offset)
    if zone is None:
        zone = _ZONES[offset] = timezone(timedelta(minutes=offset))
    return zone


def _stamp(value: datetime | None) -> tuple[int, int]:
    """(epoch seconds, minutes east of UTC) of an INTERNALDATE; now in the local zone by
    default; a naive datetime is taken as UTC."""
    if value is None:
        value = datetime.now().astimezone()
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    offset = value.utcoffset() or timedelta(0)
    return int(value.timestamp() // 1), int(offset.total_seconds() // 60)


_INFO_COLUMNS = (
    message_t.c.uid,
    message_t.c.system_flags,
    message_t.c.keywords,
    message_t.c.internal_date,
    message_t.c.tz_offset,
    message_t.c.size,
    message_t.c.modseq,
    message_t.c.recent,
)


def _info(row: Any) -> MessageInfo:
    """A MessageInfo from a row of _INFO_COLUMNS (in that order)."""
    uid, bits, keywords, stamp, offset, size, modseq, recent = row[:8]
    return MessageInfo(
        uid,
        flagbits.flag_set(bits, keywords),
        datetime.fromtimestamp(stamp, _ZONES.get(offset) or _zone(offset)),
        size,
        modseq,
        bool(recent),
    )


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector while many records are read and built:
    10,000 rows and MessageInfos are some 100,000 allocations, enough to set off
    collections of the whole heap that can double the time (none of these objects
    forms a cycle)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _infos(rows: Sequence[Any]) -> list[MessageInfo]:
    return [_info(r) for r in rows]


def _chunks(items: Sequence[Any], size: int = _IN_LIMIT) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows_for_uids(conn: Connection, base: Select[Any], uids: Iterable[int]) -> list[Any]:
    """The rows of `base` (a select on ms_message of one folder) for `uids`: by IN lists
    when they are few or sparse, else one UID range read and filtered here."""
    wanted = sorted({int(u) for u in uids})
    if not wanted:
        return []
    span = wanted[-1] - wanted[0] + 1
    if len(wanted) > _IN_LIMIT and span <= 4 * len(wanted):
        rows = conn.execute(base.where(message_t.c.uid.between(wanted[0], wanted[-1]))).all()
        if span == len(wanted):
            return rows
        keep = set(wanted)
        return [row for row in rows if row.uid in keep]
    rows = []
    for chunk in _chunks(wanted):
        rows.extend(conn.execute(base.where(message_t.c.uid.in_(chunk))).all())
    return rows


# -- the database store -------------------------------------------------------------------


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
        self.location = location
        self.url = location_url(location)
        if max_message_size is None:
            max_message_size = int(os.environ.get(MAX_MESSAGE_SIZE_ENV) or DEFAULT_MAX_MESSAGE_SIZE)
        self.max_message_size = max_message_size
        self.dialect = make_url(self.url).get_backend_name()
        self.schema: str | None = None
        if self.dialect == "sqlite":
            sync = (synchronous or os.environ.get(SYNCHRONOUS_ENV) or DEFAULT_SYNCHRONOUS).upper()
            if sync not in ("NORMAL", "FULL", "EXTRA"):
                raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, not {sync!r}")
            self.synchronous = sync
            self.engine = _sqlite_engine(self.url, sync)
            self._reader = self.engine
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
        """A write transaction: committed when the block ends, durable when committed."""
        try:
            with self._writer.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: OperationalError) -> DatabaseUnavailable:
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
        if int(version) > SCHEMA_VERSION:
            raise DatabaseUnavailable(
                f"The mailbox database at {self.location} has store schema {version}, newer "
                f"than this casarray's ({SCHEMA_VERSION}): upgrade casarray."
            )

    def schema_version(self) -> int:
        with self.read() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version"))
            return int(value.scalar_one())

    # -- DatabaseStore ----------------------------------------------------------

    def mailbox(self, mailbox_guid: str) -> SqlMailboxStore:
        """The mailbox's store; created with its default folders on first use."""
        with self.read() as conn:
            found = conn.execute(select(mailbox.c.id).where(mailbox.c.guid == mailbox_guid))
            mailbox_id = found.scalar()
        if mailbox_id is None:
            return self.create_mailbox(mailbox_guid)
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
        if self.is_postgres:
            with self.read() as conn:
                row = conn.execute(_FOLDER_BY_NAME, {"mailbox_id": mailbox_id, "name": name})
                found = row.first()
            return FolderRow(*found) if found is not None else None
        try:
            raw = self.engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute(_FOLDER_BY_NAME_SQLITE, (mailbox_id, name))
                found = cursor.fetchone()
                cursor.close()
            finally:
                raw.close()
        except OperationalError as exc:
            raise self._unavailable(exc) from exc
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"The mailbox database can't be read: {exc}") from exc
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


def _allocate_uid_validity(conn: Connection, mailbox_id: int) -> int:
    """A UIDVALIDITY never given before in this mailbox: now in seconds, or one more
    than the last (the caller holds the mailbox row)."""
    last = conn.execute(
        select(mailbox.c.last_uid_validity).where(mailbox.c.id == mailbox_id)
    ).scalar_one()
    value = max(int(time.time()), int(last) + 1)
    if value > MAX_UID_VALIDITY:
        raise MailstoreError("This mailbox has used up its UIDVALIDITY values.")
    conn.execute(update(mailbox).where(mailbox.c.id == mailbox_id).values(last_uid_validity=value))
    return value


def _insert_folder(
    conn: Connection,
    mailbox_id: int,
    name: str,
    special_use: str | None,
    *,
    uid_next: int = 1,
    highest_modseq: int = 1,
) -> int:
    return int(
        conn.execute(
            insert(folder_t)
            .values(
                mailbox_id=mailbox_id,
                name=name,
                uid_validity=_allocate_uid_validity(conn, mailbox_id),
                uid_next=uid_next,
                highest_modseq=highest_modseq,
                special_use=special_use,
            )
            .returning(folder_t.c.id)
        ).scalar_one()
    )


def _drop_orphans(conn: Connection, content_ids: Iterable[int]) -> None:
    """Deletes the contents (and bytes) no message refers to any more."""
    ids = sorted(set(content_ids))
    for chunk in _chunks(ids):
        conn.execute(
            delete(content).where(
                content.c.id.in_(chunk),
                ~exists().where(message_t.c.content_id == content.c.id),
            )
        )


# -- one mailbox ----------------------------------------------------------------------------

_FOLDER_COLUMNS = (
    folder_t.c.id,
    folder_t.c.name,
    folder_t.c.uid_validity,
    folder_t.c.uid_next,
    folder_t.c.highest_modseq,
    folder_t.c.special_use,
)
_FOLDER_BY_NAME = select(*_FOLDER_COLUMNS).where(
    folder_t.c.mailbox_id == bindparam("mailbox_id"), folder_t.c.name == bindparam("name")
)
# The same as plain SQL for sqlite3 itself: the check every IMAP command makes (has the
# folder changed?) skips SQLAlchemy and any transaction (one statement is atomic).
_FOLDER_BY_NAME_SQLITE = str(_FOLDER_BY_NAME.compile(dialect=sqlite_dialect()))


# -- the cached ENVELOPE and BODYSTRUCTURE in text columns --------------------------------

# They are IMAP text, which may carry a message's raw 8-bit header bytes (decoded with
# surrogateescape, see `mailstore.mime`): no UTF-8 text column takes those, nor PostgreSQL a NUL.
# Such a value is stored as "~" and the base64 of its bytes; an IMAP list starts "(".
_ESCAPED = "~"


def to_column(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if "\x00" not in text and not text.startswith(_ESCAPED):
            return text
    raw = text.encode("utf-8", "surrogateescape")
    return _ESCAPED + base64.b64encode(raw).decode("ascii")


def from_column(value: str) -> str:
    if value.startswith(_ESCAPED):
        return base64.b64decode(value[1:]).decode("utf-8", "surrogateescape")
    return value


def _stamp_of(row: Any) -> tuple[int, int, int, int]:
    return (row.id, int(row.highest_modseq), int(row.uid_validity), int(row.uid_next))


class FolderRow(NamedTuple):
    id: int
    name: str
    uid_validity: int
    uid_next: int
    highest_modseq: int
    special_use: str | None


_COUNTS = (
    func.count(),
    func.coalesce(func.sum(case((message_t.c.recent, 1), else_=0)), 0),
    func.coalesce(
        func.sum(case((message_t.c.system_flags.bitwise_and(flagbits.SEEN) == 0, 1), else_=0)), 0
    ),
)


class SqlMailboxStore:
    """One user's mailbox in a `SqlDatabaseStore` (implements `MailboxStore`)."""

    def __init__(self, database: SqlDatabaseStore, guid: str, mailbox_id: int) -> None:
        self.database = database
        self.guid = guid
        self.id = mailbox_id

    def __repr__(self) -> str:
        return f"<SqlMailboxStore {self.guid} in {self.database.location}>"

    # -- helpers ------------------------------------------------------------------

    def _folder_row(
        self,
        conn: Connection,
        key: str,
        *,
        lock: bool = False,
        missing: type[FolderNotFound] = FolderNotFound,
    ) -> Any:
        if lock:
            stmt = select(*_FOLDER_COLUMNS).where(
                folder_t.c.mailbox_id == self.id, folder_t.c.name == key
            )
            row = conn.execute(stmt.with_for_update(key_share=True)).first()
        else:  # the hot path (every IMAP command's change check): a statement built once
            row = conn.execute(_FOLDER_BY_NAME, {"mailbox_id": self.id, "name": key}).first()
        if row is None:
            raise missing(f"The folder '{key}' doesn't exist.")
        return row

    def _lock_mailbox(self, conn: Connection) -> None:
        """Serialises hierarchy changes of this mailbox (PostgreSQL: FOR NO KEY UPDATE,
        which doesn't block inserts that refer to the mailbox)."""
        found = conn.execute(
            select(mailbox.c.id).where(mailbox.c.id == self.id).with_for_update(key_share=True)
        ).first()
        if found is None:
            raise FolderNotFound("This mailbox has been removed from its database.")

    def _folder_rows(self, conn: Connection) -> dict[str, Any]:
        rows = conn.execute(select(*_FOLDER_COLUMNS).where(folder_t.c.mailbox_id == self.id))
        return {row.name: row for row in rows}

    def _subscribed(self, conn: Connection) -> set[str]:
        rows = conn.execute(select(subscription.c.name).where(subscription.c.mailbox_id == self.id))
        return set(rows.scalars())

    @staticmethod
    def _folder(row: Any, counts: Sequence[int], subscribed: bool, has_children: bool) -> Folder:
        exists_, recent, unseen = counts
        return Folder(
            name=row.name,
            uid_validity=int(row.uid_validity),
            uid_next=int(row.uid_next),
            highest_modseq=int(row.highest_modseq),
            exists=int(exists_),
            recent=int(recent),
            unseen=int(unseen),
            special_use=row.special_use,
            subscribed=subscribed,
            has_children=has_children,
        )

    # -- folders --------------------------------------------------------------------

    def folders(self) -> list[Folder]:
        """Every folder, in hierarchy order (INBOX first; see `names.sort_key`)."""
        with self.database.read() as conn:
            rows = self._folder_rows(conn)
            ids = select(folder_t.c.id).where(folder_t.c.mailbox_id == self.id).scalar_subquery()
            counts = {
                row[0]: tuple(row[1:])
                for row in conn.execute(
                    select(message_t.c.folder_id, *_COUNTS)
                    .where(message_t.c.folder_id.in_(ids))
                    .group_by(message_t.c.folder_id)
                )
            }
            subscribed = self._subscribed(conn)
        with_children = {parent for name in rows for parent in parents(name)}
        return [
            self._folder(
                rows[name],
                counts.get(rows[name].id, (0, 0, 0)),
                name in subscribed,
                name in with_children,
            )
            for name in sorted(rows, key=sort_key)
        ]

    def folder(self, name: str) -> Folder:
        key = canonical(name)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            counts = conn.execute(select(*_COUNTS).where(message_t.c.folder_id == row.id)).one()
            prefix = key + "/"
            has_children = conn.execute(
                select(
                    exists().where(
                        folder_t.c.mailbox_id == self.id,
                        func.substr(folder_t.c.name, 1, len(prefix)) == prefix,
                    )
                )
            ).scalar()
            subscribed = conn.execute(
                select(
                    exists().where(subscription.c.mailbox_id == self.id, subscription.c.name == key)
                )
            ).scalar()
        return self._folder(row, counts, bool(subscribed), bool(has_children))

    def create_folder(self, name: str, special_use: str | None = None) -> Folder:
        key = canonical(name, creating=True)
        if special_use is not None:
            matches = [use for use in SPECIAL_USES if use.lower() == special_use.lower()]
            if not matches:
                raise MailstoreError(
                    f"'{special_use}' is not a special use ({', '.join(SPECIAL_USES)})."
                )
            special_use = matches[0]
        try:
            with self.database.write() as conn:
                self._lock_mailbox(conn)
                existing = self._folder_rows(conn)
                if key in existing:
                    raise FolderExists(f"The folder '{key}' already exists.")
                for parent in parents(key):
                    if parent not in existing:
                        _insert_folder(conn, self.id, parent, None)
                _insert_folder(conn, self.id, key, special_use)
        except IntegrityError as exc:
            raise FolderExists(f"The folder '{key}' already exists.") from exc
        return self.folder(key)

    def delete_folder(self, name: str) -> None:
        key = canonical(name)
        if key == INBOX:
            raise FolderInUse("INBOX can't be deleted.")
        with self.database.write() as conn:
            self._lock_mailbox(conn)
            existing = self._folder_rows(conn)
            if key not in existing:
                raise FolderNotFound(f"The folder '{key}' doesn't exist.")
            children = sorted(n for n in existing if is_under(n, key))
            if children:
                raise FolderHasChildren(
                    f"The folder '{key}' has subfolders ({', '.join(children[:5])}"
                    f"{', ...' if len(children) > 5 else ''}): delete them first."
                )
            folder_id = existing[key].id
            content_ids = list(
                conn.execute(
                    select(message_t.c.content_id).where(message_t.c.folder_id == folder_id)
                ).scalars()
            )
            conn.execute(delete(folder_t).where(folder_t.c.id == folder_id))
            _drop_orphans(conn, content_ids)

    def rename_folder(self, old: str, new: str) -> None:
        old_key, new_key = canonical(old), canonical(new, creating=True)
        if old_key == new_key:
            raise FolderInUse(f"The folder '{old_key}' already has that name.")
        if new_key == INBOX:
            raise FolderExists("INBOX already exists.")
        if is_under(new_key, old_key):
            raise FolderInUse(f"The folder '{old_key}' can't be moved into itself.")
        with self.database.write() as conn:
            self._lock_mailbox(conn)
            existing = self._folder_rows(conn)
            if old_key not in existing:
                raise FolderNotFound(f"The folder '{old_key}' doesn't exist.")
            if old_key == INBOX:
                moving = {INBOX: new_key}
            else:
                moving = {
                    name: new_key + name[len(old_key) :]
                    for name in existing
                    if name == old_key or is_under(name, old_key)
                }
            clash = sorted(set(moving.values()) & set(existing))
            if clash:
                raise FolderExists(f"The folder '{clash[0]}' already exists.")
            for parent in parents(new_key):
                if parent not in existing:
                    _insert_folder(conn, self.id, parent, None)
            if old_key == INBOX:
                self._rename_inbox(conn, existing[INBOX], new_key)
                return
            for name, target in moving.items():
                conn.execute(
                    update(folder_t).where(folder_t.c.id == existing[name].id).values(name=target)
                )
            subscribed = self._subscribed(conn)
            for name in sorted(subscribed):
                if name == old_key or is_under(name, old_key):
                    target = new_key + name[len(old_key) :]
                    where = (subscription.c.mailbox_id == self.id, subscription.c.name == name)
                    if target in subscribed:
                        conn.execute(delete(subscription).where(*where))
                    else:
                        conn.execute(update(subscription).where(*where).values(name=target))

    def _rename_inbox(self, conn: Connection, inbox: Any, new_key: str) -> None:
        """RFC 3501 RENAME INBOX: a new folder gets INBOX's messages; INBOX stays, empty
        (its UIDVALIDITY and UIDNEXT unchanged, the messages reported expunged)."""
        inbox = self._folder_row(conn, INBOX, lock=True)
        modseq = int(inbox.highest_modseq) + 1
        new_id = _insert_folder(
            conn, self.id, new_key, None, uid_next=int(inbox.uid_next), highest_modseq=modseq
        )
        uids = list(
            conn.execute(select(message_t.c.uid).where(message_t.c.folder_id == inbox.id)).scalars()
        )
        if not uids:
            return
        conn.execute(
            update(message_t)
            .where(message_t.c.folder_id == inbox.id)
            .values(folder_id=new_id, modseq=modseq)
        )
        conn.execute(
            insert(expunged),
            [{"folder_id": inbox.id, "uid": uid, "modseq": modseq} for uid in uids],
        )
        conn.execute(
            update(folder_t).where(folder_t.c.id == inbox.id).values(highest_modseq=modseq)
        )

    def subscribe(self, name: str, subscribed: bool) -> None:
        key = canonical(name)
        with self.database.write() as conn:
            where = (subscription.c.mailbox_id == self.id, subscription.c.name == key)
            present = conn.execute(select(exists().where(*where))).scalar()
            if subscribed and not present:
                conn.execute(insert(subscription).values(mailbox_id=self.id, name=key))
            elif not subscribed and present:
                conn.execute(delete(subscription).where(*where))

    def subscriptions(self) -> list[str]:
        with self.database.read() as conn:
            return sorted(self._subscribed(conn), key=sort_key)

    # -- messages ---------------------------------------------------------------------

    def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> Appended:
        """Stores the message; durable when this returns (see the module docstring)."""
        key = canonical(folder)
        data = normalize_newlines(bytes(message))  # bare LF -> CRLF, as IMAP servers store
        limit = self.database.max_message_size
        if len(data) > limit:
            raise MessageTooLarge(
                f"The message is {len(data)} bytes; this mailbox database accepts at most "
                f"{limit} bytes."
            )
        bits, keywords = flagbits.parse(flags)
        stamp, offset = _stamp(internal_date)
        parts = cached_parts(data)
        with self.database.write() as conn:
            row = conn.execute(
                update(folder_t)
                .where(folder_t.c.mailbox_id == self.id, folder_t.c.name == key)
                .values(
                    uid_next=folder_t.c.uid_next + 1,
                    highest_modseq=folder_t.c.highest_modseq + 1,
                )
                .returning(
                    folder_t.c.id,
                    folder_t.c.uid_validity,
                    folder_t.c.uid_next,
                    folder_t.c.highest_modseq,
                )
            ).first()
            if row is None:
                raise DestinationNotFound(f"The folder '{key}' doesn't exist.")
            folder_id, uid_validity, uid_next, modseq = row
            content_id = conn.execute(
                insert(content)
                .values(
                    mailbox_id=self.id,
                    envelope=to_column(parts.envelope),
                    bodystructure=to_column(parts.bodystructure),
                    body=parts.body,
                )
                .returning(content.c.id)
            ).scalar_one()
            conn.execute(insert(raw).values(content_id=content_id, data=data))
            uid = int(uid_next) - 1
            conn.execute(
                insert(message_t).values(
                    folder_id=folder_id,
                    uid=uid,
                    content_id=content_id,
                    internal_date=stamp,
                    tz_offset=offset,
                    size=len(data),
                    system_flags=bits,
                    keywords=flagbits.join_keywords(keywords),
                    modseq=modseq,
                    recent=True,
                )
            )
        return Appended(int(uid_validity), uid)

    def messages(self, folder: str) -> list[MessageInfo]:
        key = canonical(folder)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            rows = conn.execute(
                select(*_INFO_COLUMNS)
                .where(message_t.c.folder_id == row.id)
                .order_by(message_t.c.uid)
            ).all()
            return _infos(rows)

    def uid_flags(self, folder: str) -> FlagMap:
        """Cached per process by (folder, modseq): a SELECT of an unchanged folder costs
        one row read, as a client polling its INBOX does all day."""
        key = canonical(folder)
        row = self._fast_folder_row(key)
        cached = self.database.flag_maps.get(row.id)
        if cached is not None and cached[0] == _stamp_of(row):
            return cached[1]
        with self.database.flag_map_lock(row.id), self.database.read() as conn:
            row = self._folder_row(conn, key)
            stamp = _stamp_of(row)
            cached = self.database.flag_maps.get(row.id)
            if cached is not None and cached[0] == stamp:
                return cached[1]  # another session read it meanwhile
            with _gc_paused():
                rows = conn.execute(
                    select(
                        message_t.c.uid,
                        message_t.c.system_flags,
                        message_t.c.keywords,
                        message_t.c.recent,
                    )
                    .where(message_t.c.folder_id == row.id)
                    .order_by(message_t.c.uid)
                ).all()
            flag_set = flagbits.flag_set
            result = FlagMap.build(
                row.name,
                int(row.uid_validity),
                int(row.uid_next),
                int(row.highest_modseq),
                ((r[0], flag_set(r[1], r[2]), bool(r[3])) for r in rows),
            )
            maps = self.database.flag_maps
            maps[row.id] = (stamp, result)
            if len(maps) > FLAG_MAP_CACHE:
                maps.pop(next(iter(maps)))
        return result

    def _fast_folder_row(self, key: str) -> FolderRow:
        row = self.database.folder_by_name(self.id, key)
        if row is None:
            raise FolderNotFound(f"The folder '{key}' doesn't exist.")
        return row

    def changes_since(self, folder: str, modseq: int) -> Changes:
        """What changed after `modseq`, up to the folder's HIGHESTMODSEQ read first (a
        change committed meanwhile comes with the next call)."""
        key = canonical(folder)
        row = self._fast_folder_row(key)
        if int(row.highest_modseq) <= modseq:  # nothing changed: the common case
            return Changes((), (), int(row.highest_modseq), int(row.uid_validity))
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            highest = int(row.highest_modseq)
            if highest <= modseq:
                return Changes((), (), highest, int(row.uid_validity))
            changed = conn.execute(
                select(*_INFO_COLUMNS)
                .where(
                    message_t.c.folder_id == row.id,
                    message_t.c.modseq > modseq,
                    message_t.c.modseq <= highest,
                )
                .order_by(message_t.c.uid)
            ).all()
            gone = conn.execute(
                select(expunged.c.uid)
                .where(
                    expunged.c.folder_id == row.id,
                    expunged.c.modseq > modseq,
                    expunged.c.modseq <= highest,
                )
                .order_by(expunged.c.uid)
            ).scalars()
            return Changes(
                tuple(_infos(changed)),
                tuple(int(uid) for uid in gone),
                highest,
                int(row.uid_validity),
            )

    def take_recent(self, folder: str) -> list[int]:
        key = canonical(folder)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            any_recent = conn.execute(
                select(message_t.c.uid)
                .where(message_t.c.folder_id == row.id, message_t.c.recent == true())
                .limit(1)
            ).first()
        if any_recent is None:
            self._forget_recent(row.id)
            return []
        with self.database.write() as conn:
            row = self._folder_row(conn, key, lock=True)
            uids = conn.execute(
                update(message_t)
                .where(message_t.c.folder_id == row.id, message_t.c.recent == true())
                .values(recent=False)
                .returning(message_t.c.uid)
            ).scalars()
            taken = sorted(int(uid) for uid in uids)
        self._forget_recent(row.id)
        return taken

    def _forget_recent(self, folder_id: int) -> None:
        """No message of the folder is \\Recent any more (clearing it changes no modseq,
        so the SELECT snapshot is corrected in place)."""
        cached = self.database.flag_maps.get(folder_id)
        if cached is not None and cached[1].recent:
            self.database.flag_maps[folder_id] = (
                cached[0],
                dataclasses.replace(cached[1], recent=frozenset()),
            )

    def body(self, folder: str, uid: int) -> bytes:
        key = canonical(folder)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            data = conn.execute(
                select(raw.c.data)
                .join(message_t, message_t.c.content_id == raw.c.content_id)
                .where(message_t.c.folder_id == row.id, message_t.c.uid == uid)
            ).scalar()
        if data is None:
            raise MessageNotFound(f"There is no message with UID {uid} in '{key}'.")
        return bytes(data)

    def cached(self, folder: str, uids: Sequence[int]) -> dict[int, CachedParts]:
        """The cached parts of the messages of `uids` that exist."""
        key = canonical(folder)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            base = (
                select(message_t.c.uid, content.c.envelope, content.c.bodystructure, content.c.body)
                .join(content, content.c.id == message_t.c.content_id)
                .where(message_t.c.folder_id == row.id)
            )
            rows = _rows_for_uids(conn, base, uids)
            return {
                int(r[0]): CachedParts(from_column(r[1]), from_column(r[2]), r[3]) for r in rows
            }

    def envelopes(self, folder: str, uids: Sequence[int]) -> dict[int, str]:
        key = canonical(folder)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            base = (
                select(message_t.c.uid, content.c.envelope)
                .join(content, content.c.id == message_t.c.content_id)
                .where(message_t.c.folder_id == row.id)
            )
            return {int(r[0]): from_column(r[1]) for r in _rows_for_uids(conn, base, uids)}

    def store_flags(
        self,
        folder: str,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        """Sets, adds or removes flags; messages whose modseq is above `unchanged_since`
        are left alone (RFC 7162 UNCHANGEDSINCE: the caller reports them MODIFIED), and
        so are those the change doesn't change. Returns the changed messages, with one
        new modseq."""
        if mode not in ("set", "add", "remove"):
            raise ValueError(f"unknown flag mode {mode!r}: use 'set', 'add' or 'remove'")
        key = canonical(folder)
        bits, keywords = flagbits.parse(flags)
        with self.database.write() as conn:
            row = self._folder_row(conn, key, lock=True)
            base = select(message_t.c.id, *_INFO_COLUMNS).where(message_t.c.folder_id == row.id)
            changes = []
            for msg in _rows_for_uids(conn, base, uids):
                if unchanged_since is not None and msg.modseq > unchanged_since:
                    continue
                new_bits, new_keywords = flagbits.apply(
                    mode, msg.system_flags, msg.keywords, bits, keywords
                )
                if new_bits != msg.system_flags or new_keywords != msg.keywords:
                    changes.append((msg, new_bits, new_keywords))
            if not changes:
                return []
            modseq = int(row.highest_modseq) + 1
            conn.execute(
                update(folder_t).where(folder_t.c.id == row.id).values(highest_modseq=modseq)
            )
            conn.execute(
                update(message_t)
                .where(message_t.c.id == bindparam("b_id"))
                .values(
                    system_flags=bindparam("b_bits"),
                    keywords=bindparam("b_keywords"),
                    modseq=modseq,
                ),
                [
                    {"b_id": msg.id, "b_bits": new_bits, "b_keywords": new_keywords}
                    for msg, new_bits, new_keywords in changes
                ],
            )
        changes.sort(key=lambda change: change[0].uid)
        return [
            _info((msg.uid, new_bits, new_keywords, *msg[4:7], modseq, msg.recent))
            for msg, new_bits, new_keywords in changes
        ]

    def copy(self, folder: str, uids: Sequence[int], destination: str) -> Copied:
        return self._transfer(folder, uids, destination, move=False)

    def move(self, folder: str, uids: Sequence[int], destination: str) -> Copied:
        """COPY and EXPUNGE of the source messages in one transaction (RFC 6851)."""
        return self._transfer(folder, uids, destination, move=True)

    def _transfer(self, name: str, uids: Sequence[int], destination: str, *, move: bool) -> Copied:
        source_key, target_key = canonical(name), canonical(destination)
        if move and source_key == target_key:
            raise FolderInUse(f"The messages are already in '{source_key}'.")
        with self.database.write() as conn:
            locked = conn.execute(
                select(*_FOLDER_COLUMNS)
                .where(
                    folder_t.c.mailbox_id == self.id,
                    folder_t.c.name.in_(sorted({source_key, target_key})),
                )
                .order_by(folder_t.c.id)
                .with_for_update(key_share=True)
            ).all()
            by_name = {row.name: row for row in locked}
            if source_key not in by_name:
                raise FolderNotFound(f"The folder '{source_key}' doesn't exist.")
            if target_key not in by_name:
                raise DestinationNotFound(f"The folder '{target_key}' doesn't exist.")
            source, target = by_name[source_key], by_name[target_key]
            base = select(
                message_t.c.id,
                message_t.c.uid,
                message_t.c.content_id,
                message_t.c.internal_date,
                message_t.c.tz_offset,
                message_t.c.size,
                message_t.c.system_flags,
                message_t.c.keywords,
            ).where(message_t.c.folder_id == source.id)
            found = sorted(_rows_for_uids(conn, base, uids), key=lambda r: r.uid)
            if not found:
                return Copied(int(target.uid_validity), ())
            first = int(target.uid_next)
            modseq = int(target.highest_modseq) + 1
            conn.execute(
                update(folder_t)
                .where(folder_t.c.id == target.id)
                .values(uid_next=first + len(found), highest_modseq=modseq)
            )
            conn.execute(
                insert(message_t),
                [
                    {
                        "folder_id": target.id,
                        "uid": first + i,
                        "content_id": msg.content_id,
                        "internal_date": msg.internal_date,
                        "tz_offset": msg.tz_offset,
                        "size": msg.size,
                        "system_flags": msg.system_flags,
                        "keywords": msg.keywords,
                        "modseq": modseq,
                        "recent": True,
                    }
                    for i, msg in enumerate(found)
                ],
            )
            if move:
                self._remove(conn, source, found, keep_content=True)
        return Copied(
            int(target.uid_validity), tuple((int(m.uid), first + i) for i, m in enumerate(found))
        )

    def _remove(
        self, conn: Connection, row: Any, found: Sequence[Any], *, keep_content: bool = False
    ) -> None:
        """Deletes the messages `found` (rows with id, uid, content_id) from the folder
        `row`, leaving tombstones at a new modseq."""
        modseq = int(row.highest_modseq) + 1
        ids = [m.id for m in found]
        for chunk in _chunks(ids):
            conn.execute(delete(message_t).where(message_t.c.id.in_(chunk)))
        conn.execute(
            insert(expunged),
            [{"folder_id": row.id, "uid": m.uid, "modseq": modseq} for m in found],
        )
        conn.execute(update(folder_t).where(folder_t.c.id == row.id).values(highest_modseq=modseq))
        if not keep_content:
            _drop_orphans(conn, [m.content_id for m in found])

    def expunge(self, folder: str, uids: Sequence[int] | None = None) -> list[int]:
        key = canonical(folder)
        with self.database.write() as conn:
            row = self._folder_row(conn, key, lock=True)
            base = select(message_t.c.id, message_t.c.uid, message_t.c.content_id).where(
                message_t.c.folder_id == row.id,
                message_t.c.system_flags.bitwise_and(flagbits.DELETED) != 0,
            )
            found = (
                list(conn.execute(base).all()) if uids is None else _rows_for_uids(conn, base, uids)
            )
            if not found:
                return []
            found.sort(key=lambda r: r.uid)
            self._remove(conn, row, found)
        return [int(m.uid) for m in found]

    def statistics(self) -> list[FolderStatistics]:
        with self.database.read() as conn:
            rows = conn.execute(
                select(
                    folder_t.c.name,
                    folder_t.c.special_use,
                    func.count(message_t.c.id),
                    func.coalesce(func.sum(message_t.c.size), 0),
                )
                .select_from(folder_t.outerjoin(message_t, message_t.c.folder_id == folder_t.c.id))
                .where(folder_t.c.mailbox_id == self.id)
                .group_by(folder_t.c.id, folder_t.c.name, folder_t.c.special_use)
            ).all()
        stats = [FolderStatistics(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
        return sorted(stats, key=lambda s: sort_key(s.name))


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
