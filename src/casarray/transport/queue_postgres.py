"""The queue of a Hub Transport server on PostgreSQL (`--queue postgresql://...`), for
servers that keep nothing on their own disk.

The same store as `queue.SqliteQueue` (its SQL, its group commit, its states): this
module only adapts the connection. Statements keep SQLite's `?` placeholders and are
rewritten to psycopg's once each. Each server's queue is a schema of its own
(`transport_<server>`), so the servers of an organization can share one database. A
write transaction starts with a transaction-level advisory lock of that schema, so
writers serialize as on SQLite (`BEGIN IMMEDIATE`): the transport's delivery and a
cmdlet in another process (Remove-Message, Retry-Queue) never interleave their reads
and updates. The durable writes (`enqueue`, `note_attempt`) commit with
`synchronous_commit = on` (on disk, and on a synchronous standby where there is one);
the others with `off`, PostgreSQL's counterpart of SQLite's NORMAL: a crash of the
database server can lose the last moments' outcomes (at worst a second delivery),
never a message.

Why no ORM: the queue's SQL is plain and shared with SQLite; SQLAlchemy Core would add
a layer per statement on the receive path for no portability the rewrite doesn't give.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from casarray.transport.queue import Connection, QueueError, SqliteQueue

_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    received DOUBLE PRECISION NOT NULL,
    client_address TEXT NOT NULL,
    client_helo TEXT NOT NULL,
    size BIGINT NOT NULL,
    hop_count INTEGER NOT NULL,
    authenticated_as TEXT NOT NULL,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS recipient (
    message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt DOUBLE PRECISION,
    last_error TEXT NOT NULL DEFAULT '',
    route TEXT NOT NULL,
    next_hop TEXT NOT NULL DEFAULT '',
    attempt_started DOUBLE PRECISION,
    attempt_note TEXT NOT NULL DEFAULT '',
    report INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX IF NOT EXISTS recipient_due ON recipient (state, next_attempt);
CREATE INDEX IF NOT EXISTS recipient_report ON recipient (report) WHERE report = 1;
"""

_PLACEHOLDER = re.compile(r"\?")
# SQLite's functions the shared SQL uses, and PostgreSQL's names for them
_FUNCTIONS = (("instr(address, '@')", "strpos(address, '@')"),)


def schema_name(server: str) -> str:
    """The schema of `server`'s queue: `transport_` and the name, lower case, with
    anything but letters, digits and `_` made `_`."""
    return "transport_" + re.sub(r"[^a-z0-9_]", "_", server.lower())


def _statement(sql: str, cache: dict[str, str]) -> str:
    found = cache.get(sql)
    if found is None:
        found = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
        for sqlite_form, postgres_form in _FUNCTIONS:
            found = found.replace(sqlite_form, postgres_form)
        cache[sql] = found
    return found


class _PostgresConnection:
    """A psycopg connection in autocommit mode with sqlite3's calls: `?` placeholders,
    `BEGIN IMMEDIATE` as BEGIN plus the queue's advisory lock."""

    def __init__(self, url: str, schema: str, *, durable: bool, lock_key: int) -> None:
        self._db = psycopg.connect(url, autocommit=True)
        self._lock_key = lock_key
        self._cache: dict[str, str] = {}
        self._db.execute(f'SET search_path TO "{schema}"')
        self._db.execute(f"SET synchronous_commit TO {'on' if durable else 'off'}")

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        if sql == "BEGIN IMMEDIATE":
            self._db.execute("BEGIN")
            return self._db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
        return self._db.execute(_statement(sql, self._cache), tuple(parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        cursor = self._db.cursor()
        cursor.executemany(_statement(sql, self._cache), [tuple(p) for p in parameters])
        return cursor

    def close(self) -> None:
        self._db.close()


class PostgresQueue(SqliteQueue):
    """`SqliteQueue`'s store in a PostgreSQL schema of its own."""

    _ERRORS: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: str, server: str) -> None:
        self.url = _libpq_url(url)
        self.schema = schema_name(server)
        self.where = f"{_without_password(url)} (schema {self.schema})"
        self._lock_key = zlib.crc32(f"casarray queue {self.schema}".encode())
        try:
            with psycopg.connect(self.url, autocommit=True) as db:
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        except psycopg.Error as exc:
            raise QueueError(f"The queue database {self.where} can't be opened: {exc}") from exc
        self._open()

    def _create_schema(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _connect(self, synchronous: str) -> Connection:
        return _PostgresConnection(
            self.url, self.schema, durable=synchronous == "FULL", lock_key=self._lock_key
        )

    def _read_connection(self) -> Connection:
        return _PostgresConnection(self.url, self.schema, durable=False, lock_key=self._lock_key)

    def free_space(self) -> int | None:
        """Not known: the disk is the PostgreSQL server's (a full one answers 53100,
        QueueFull)."""
        return None


def _libpq_url(url: str) -> str:
    """SQLAlchemy's `postgresql+psycopg://` form (the directory's) as libpq takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def _without_password(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", _libpq_url(url))
