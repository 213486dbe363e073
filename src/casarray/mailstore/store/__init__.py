"""The mailbox database store: `MailboxStore` and `DatabaseStore` on SQLite or
PostgreSQL through SQLAlchemy Core (tables in `mailstore.schema`), with SQLite's hot
paths (what every IMAP command runs) straight on the sqlite3 driver.

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
UIDs and modseqs are allocated without races; the hot paths' writers first queue on a
lock file beside the database, `FILE-writelock`, so each is woken when the one before
commits instead of polling SQLite's lock), row locks on PostgreSQL (the folder row
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

The package:

- `engine`: locations (file path, SQLite or PostgreSQL URL) and their engines;
- `rows`: the tables' rows as records, and the statements every part shares;
- `database`: `SqlDatabaseStore`, one database and its mailboxes, and the per-process
  cache of open stores (`open_database_store`, `store_for`, `close_all`);
- `folders`: `MailboxFolders`, a mailbox's hierarchy and subscriptions;
- `urlauth`: `UrlauthKeys`, a mailbox's URLAUTH keys (RFC 4467);
- `mailbox`: `SqlMailboxStore`, a mailbox: its folders (from `MailboxFolders`), its
  URLAUTH keys (from `UrlauthKeys`) and its messages;
- `sqlite_direct`: one sqlite3 connection per thread and the writers' queue;
  `direct_ops`: the hot operations on them (SQLite only; PostgreSQL keeps the
  SQLAlchemy paths of `mailbox` and `folders`).

Names with a leading underscore are shared between these modules but are not part of
the package's API: import what `__all__` below lists, from `casarray.mailstore.store`.
Outside the mailstore, open a mailbox with `casarray.mailstore.provisioning`.
"""

from __future__ import annotations

from casarray.mailstore.store.database import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_MESSAGE_SIZE_ENV,
    SqlDatabaseStore,
    close_all,
    open_database_store,
    store_for,
)
from casarray.mailstore.store.engine import (
    BUSY_TIMEOUT_MS,
    DEFAULT_SYNCHRONOUS,
    POOL_SIZE,
    SYNCHRONOUS_ENV,
    location_url,
    postgres_location,
    postgres_schema,
)
from casarray.mailstore.store.folders import SPECIAL_USES, MailboxFolders
from casarray.mailstore.store.mailbox import FLAG_MAP_CACHE, SqlMailboxStore
from casarray.mailstore.store.rows import MAX_UID_VALIDITY, FolderRow, from_column, to_column

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_SYNCHRONOUS",
    "FLAG_MAP_CACHE",
    "MAX_MESSAGE_SIZE_ENV",
    "MAX_UID_VALIDITY",
    "POOL_SIZE",
    "SPECIAL_USES",
    "SYNCHRONOUS_ENV",
    "FolderRow",
    "MailboxFolders",
    "SqlDatabaseStore",
    "SqlMailboxStore",
    "close_all",
    "from_column",
    "location_url",
    "open_database_store",
    "postgres_location",
    "postgres_schema",
    "store_for",
    "to_column",
]
