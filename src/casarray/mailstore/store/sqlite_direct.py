"""The hot paths of a SQLite mailbox database straight on the `sqlite3` driver: the
statements every IMAP command runs (the folder's change check, the changes since a
modseq, FETCH's bytes and cached parts, STORE, EXPUNGE, APPEND, \\Recent, LIST and
STATUS counts) as plain SQL on one connection per thread, whose statement cache keeps
them prepared.

Why: through SQLAlchemy Core each statement costs a pool checkout, the execution
context, cache-key lookups and result wrapping, some 50-100 times what SQLite itself
spends on these one-row statements; under imaptest's stress load that machinery was
more than a quarter of the workers' time. PostgreSQL keeps the SQLAlchemy paths
(`mailbox`, `folders`); these are the same operations with the same semantics.

Writes (`DirectConnections.write`) take, in order, this process's lock of the
database, an exclusive `flock` on a lock file beside it (shared by every process
using the file), and SQLite's own `BEGIN IMMEDIATE`. Writers of one database so queue
in the kernel and in the interpreter and are woken the moment the writer before them
commits, instead of each polling SQLite's lock from its busy handler (which sleeps
1, 2, 5 ... 100 ms between tries: under contention most of a write's time). A writer
that doesn't take the lock file (the SQLAlchemy paths, another tool) still meets
SQLite's lock and its busy timeout, so correctness never depends on the lock file;
it only makes waiting short. Durability is SQLite's as before (WAL, the package
docstring): a write is committed when `write` returns. A write the disk has no room
for is rolled back and raises `StorageFull` (`disk_full`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from casarray.mailstore import flags as flagbits
from casarray.mailstore.interface import DatabaseUnavailable
from casarray.mailstore.store.disk_full import FullState, is_disk_full

# Up to this many UIDs go into an IN list; more are read as a UID range and filtered.
IN_LIMIT = 500

FOLDER_COLUMNS = "id, name, uid_validity, uid_next, highest_modseq, special_use"
FOLDER_BY_NAME = f"SELECT {FOLDER_COLUMNS} FROM ms_folder WHERE mailbox_id = ? AND name = ?"
INFO_COLUMNS = "uid, system_flags, keywords, internal_date, tz_offset, size, modseq, recent"
COUNTS = (
    "count(*), coalesce(sum(CASE WHEN recent THEN 1 ELSE 0 END), 0), "
    f"coalesce(sum(CASE WHEN (system_flags & {flagbits.SEEN}) = 0 THEN 1 ELSE 0 END), 0)"
)


class DirectConnections:
    """One sqlite3 connection per thread on one database file, and its write lock."""

    def __init__(
        self,
        path: str,
        pragmas: Sequence[str],
        busy_timeout: float,
        full: FullState | None = None,
    ) -> None:
        self.path = path
        self.full = full if full is not None else FullState(path)
        self._pragmas = tuple(pragmas)
        self._timeout = busy_timeout
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._lock_fd: int | None = None
        self._pid = os.getpid()

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._timeout,
                isolation_level=None,  # transactions are this module's BEGIN and COMMIT
                check_same_thread=False,  # closed by close() from another thread
                cached_statements=256,
            )
            for pragma in self._pragmas:
                conn.execute(pragma)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"The mailbox database can't be opened: {exc}") from exc
        self._local.conn = conn
        with self._all_lock:
            # a thread that has ended leaves its connection: closed here
            ended = [c for thread, c in self._all if not thread.is_alive()]
            self._all = [(t, c) for t, c in self._all if t.is_alive()]
            self._all.append((threading.current_thread(), conn))
        for old in ended:
            with contextlib.suppress(sqlite3.Error):
                old.close()
        return conn

    def _lock_file(self) -> int:
        if self._lock_fd is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock_fd = os.open(self.path + "-writelock", os.O_RDWR | os.O_CREAT, 0o600)
        return self._lock_fd

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one snapshot for its statements."""
        conn = self.connection()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"The mailbox database can't be read: {exc}") from exc

    def one(self, sql: str, params: Sequence[Any]) -> Any:
        """One row of one statement (atomic by itself: no transaction around it)."""
        try:
            return self.connection().execute(sql, params).fetchone()
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"The mailbox database can't be read: {exc}") from exc

    def all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"The mailbox database can't be read: {exc}") from exc

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed (durably) when the block ends, rolled back when
        it raises; StorageFull when the disk has no room for it (rolled back too)."""
        conn = self.connection()
        with self._write_lock:
            try:
                fd = self._lock_file()
            except OSError as exc:
                if is_disk_full(exc):
                    raise self.full.refused(exc) from exc
                raise DatabaseUnavailable(f"The mailbox database can't be written: {exc}") from exc
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    raise self._write_error(exc) from exc
                try:
                    yield conn
                except BaseException as exc:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error) and is_disk_full(exc):
                        raise self.full.refused(exc) from exc
                    raise
                try:
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise self._write_error(exc) from exc
                self.full.written()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _write_error(self, exc: sqlite3.Error) -> DatabaseUnavailable:
        if is_disk_full(exc):
            return self.full.refused(exc)
        return DatabaseUnavailable(f"The mailbox database can't be written: {exc}")

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for _, conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
        if self._lock_fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
        self._lock_fd = None


def chunks(items: Sequence[Any], size: int = IN_LIMIT) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def rows_for_uids(
    conn: sqlite3.Connection, base: str, params: Sequence[Any], uids: Sequence[int], uid_column: int
) -> list[Any]:
    """The rows of `base` (a SELECT on ms_message m of one folder, ending in its WHERE
    clause) for `uids`: by IN lists when they are few or sparse, else one UID range read
    and filtered here (`uid_column`: where the UID is in a row)."""
    wanted = sorted({int(u) for u in uids})
    if not wanted:
        return []
    span = wanted[-1] - wanted[0] + 1
    if len(wanted) > IN_LIMIT and span <= 4 * len(wanted):
        rows = conn.execute(
            base + " AND m.uid BETWEEN ? AND ?", (*params, wanted[0], wanted[-1])
        ).fetchall()
        if span == len(wanted):
            return rows
        keep = set(wanted)
        return [row for row in rows if row[uid_column] in keep]
    rows = []
    for chunk in chunks(wanted):
        marks = ",".join("?" * len(chunk))
        rows.extend(conn.execute(base + f" AND m.uid IN ({marks})", (*params, *chunk)).fetchall())
    return rows


def drop_orphans(conn: sqlite3.Connection, content_ids: Sequence[int]) -> None:
    """Deletes the contents (and, by cascade, bytes) no message refers to any more."""
    ids = sorted(set(content_ids))
    for chunk in chunks(ids):
        marks = ",".join("?" * len(chunk))
        conn.execute(
            f"DELETE FROM ms_content WHERE id IN ({marks}) AND NOT EXISTS "
            "(SELECT 1 FROM ms_message WHERE ms_message.content_id = ms_content.id)",
            tuple(chunk),
        )
