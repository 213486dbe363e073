"""Where a mailbox database lives, and the SQLAlchemy engine that reaches it.

A location is a file path (or `sqlite:///FILE`): one SQLite file per database, or a
PostgreSQL URL, one schema per database chosen with the libpq option
`options=-csearch_path=NAME` (`postgres_location`). The SQLite engine sets up each
connection for the store's promise (WAL, `synchronous`, foreign keys, busy timeout; see
the package docstring) and begins write transactions with `BEGIN IMMEDIATE`, so that
one writer at a time allocates UIDs and modseqs without races.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 15_000
SYNCHRONOUS_ENV = "CASARRAY_MAILSTORE_SYNCHRONOUS"
DEFAULT_SYNCHRONOUS = "NORMAL"
POOL_SIZE = 24  # >= the IMAP worker threads (16) plus the event loop's own reads


def location_url(location: str) -> str:
    """The SQLAlchemy URL of a store location: a URL as it is, a path as a SQLite file."""
    if "://" in location:
        return location
    return f"sqlite:///{Path(location).expanduser().absolute()}"


# The form of a PostgreSQL location is the directory's rule, which New-MailboxDatabase
# also follows (`directory.store_locations`); imported when used, so that opening a
# SQLite store doesn't load the directory.


def postgres_location(url: str, schema: str) -> str:
    """A PostgreSQL store location keeping its tables in `schema` of the database at
    `url`: `postgresql+psycopg://host/db` -> `...?options=-csearch_path%3Ddb01`."""
    from casarray.directory import store_locations

    return store_locations.postgres_location(url, schema)


def postgres_schema(url: str) -> str | None:
    """The schema a PostgreSQL location names with `options=-csearch_path=NAME` (in
    lower case, as PostgreSQL reads it)."""
    from casarray.directory import store_locations

    return store_locations.postgres_schema(url)


def sqlite_pragmas(synchronous: str) -> list[str]:
    """What every connection to a mailbox database file runs first (the store's promise,
    see the package docstring)."""
    return [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        "PRAGMA cache_size=-32768",  # 32 MB of pages per connection
    ]


def sqlite_engine(url: str, synchronous: str) -> Engine:
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
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN is issued by _on_begin
        cur = dbapi_conn.cursor()
        for pragma in sqlite_pragmas(synchronous):
            cur.execute(pragma)
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("casarray_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
