"""Connections to the directory database: SQLite (default) or PostgreSQL.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so the shell, the
servers and the balancer can share one file. Every write transaction begins by bumping
the topology version: on SQLite that is `BEGIN IMMEDIATE`, on PostgreSQL a row lock on
the version row, so directory writes are serialised and every rule checked inside a
write sees the latest committed topology. PostgreSQL writes also `NOTIFY` the new
version so watchers learn of it at once.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from casarray.directory.schema import TopologyRow

NOTIFY_CHANNEL = "casarray_topology"
BUSY_TIMEOUT_MS = 15_000
POOL_SIZE = 24
_VERSION_SQL = f"SELECT version FROM {TopologyRow.__tablename__} WHERE id = 1"


def _sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # a pooled connection per worker thread (see mailstore.store.POOL_SIZE)
    engine = create_engine(
        url,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
        pool_size=POOL_SIZE,
        max_overflow=POOL_SIZE,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("casarray_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Store:
    """The engine and the two kinds of transaction the directory uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url)
        elif self.dialect == "postgresql":
            self.engine = create_engine(
                url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_SIZE
            )
        else:
            raise ValueError(
                f"unsupported directory URL '{url}': use sqlite:///FILE or postgresql+psycopg://"
            )
        self._write_engine = self.engine.execution_options(casarray_write=True)
        database = make_url(url).database if self.dialect == "sqlite" else None
        self._sqlite_file = database if database and database != ":memory:" else None
        self._local = threading.local()
        self._version_conns: list[sqlite3.Connection] = []
        self._version_lock = threading.Lock()
        # PostgreSQL reads run in autocommit: under READ COMMITTED a transaction gives a
        # multi-statement read no common snapshot anyway, and BEGIN/COMMIT cost two round
        # trips per lookup.
        self._read_engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql"
            else self.engine
        )

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self._read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A serialised write transaction that bumps the topology version."""
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            version = session.execute(
                update(TopologyRow)
                .where(TopologyRow.id == 1)
                .values(version=TopologyRow.version + 1)
                .returning(TopologyRow.version)
            ).scalar_one()
            session.info["topology_version"] = version
            yield session
            session.flush()
            if self.is_postgres:
                session.execute(
                    text("SELECT pg_notify(:channel, :version)"),
                    {"channel": NOTIFY_CHANNEL, "version": str(version)},
                )

    @contextmanager
    def write_state(self) -> Iterator[Session]:
        """A serialised write transaction of run-time state (failed-login counters)
        that is not topology: it doesn't bump the version, so caches stay valid."""
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            yield session

    def topology_version(self) -> int:
        """The version every directory change bumps: what each cache checks before it
        trusts itself, so the most frequent read. On SQLite it goes straight to the
        driver on a connection of its own per thread (some 10 us instead of some 250 us
        through the pool and the ORM's execution path)."""
        if self._sqlite_file is not None:
            return self._sqlite_version()
        with self.engine.connect() as conn:
            value = conn.execute(select(TopologyRow.version).where(TopologyRow.id == 1))
            result = value.scalar_one_or_none()
            conn.rollback()
        return int(result or 0)

    def _sqlite_version(self) -> int:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self._sqlite_file is not None
            conn = sqlite3.connect(
                self._sqlite_file,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,  # closed by dispose() from another thread
            )
            self._local.conn = conn
            with self._version_lock:
                self._version_conns.append(conn)
        row = conn.execute(_VERSION_SQL).fetchone()
        return int(row[0]) if row and row[0] else 0

    def dispose(self) -> None:
        with self._version_lock:
            conns, self._version_conns = self._version_conns, []
        for conn in conns:
            with suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        self.engine.dispose()
