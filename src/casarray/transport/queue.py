"""The durable message queue of a Hub Transport server.

What it promises. `enqueue` returns only after the message, its envelope and its
recipients are committed: on SQLite (the default, one file under the server's folder)
in WAL mode with `synchronous=FULL`, so the commit has reached the disk (the WAL is
fsync'd) before the receive service answers `250`. A kill -9 of the process, or of any
other, loses nothing that was acknowledged. Every change of a recipient's state is a
transaction of its own. `note_attempt` is FULL too; taking recipients for an attempt
and recording outcomes are NORMAL: in WAL mode such a commit survives the death of any
process (it is in the operating system's cache), and the disk has it at the next FULL
commit or checkpoint. So a power loss (not a crash) can lose an attempt's mark or an
outcome of the last moments: never a message, at worst a second delivery.

The model (Exchange 2010's queue viewer, much simplified). A message has a queue id
(16 upper-case hex digits, time-ordered), the envelope sender (`""` for the null
sender `<>`), when it was received, the client's address and HELO name, its size, its
bytes (as received, with our Received header on top) and its hop count (Received
headers). Each recipient has an address, a state (`Ready`, `Retry`, `Delivered`,
`Failed`, `Suspended`), the number of attempts, when the next attempt is due, the last
error and its route: local delivery into a mailbox database (`Local`), or relay to the
recipient's domain (`Relay`). A recipient whose attempt has started carries
`attempt_started` and an opaque `attempt_note` (what the delivery needs to tell, after a
crash, whether that attempt reached the mailbox: `delivery` explains it) until the
outcome is recorded. A recipient that failed for good carries `report` (a delivery
status notification to the sender is due, `dsn`) until the report is queued.

Queues as Get-Queue shows them: the waiting recipients grouped by route and next hop
(`queues`; the queue viewer's cmdlets show a local recipient's queue by its mailbox
database); Retry-Queue and Suspend-/Resume-Queue act on one queue's recipients
(`retry_recipients`, `suspend_recipients`), and Remove-Message fails recipients only
while no delivery has them (`fail_unless_in_flight`, one transaction).

A disk with no room left refuses the write (SQLite's SQLITE_FULL, PostgreSQL's disk_full
53100, ENOSPC or EDQUOT) and the transaction is rolled back: `QueueFull`, which the
receive service answers `452 4.3.1 Insufficient system storage` (Postfix's answer).
Nothing queued before is touched, and the next write works once there is room.
`free_space` tells the receive service how much room the queue's file system has left
(it refuses new mail before the queue runs out: see `receive`).

`QueueStore` is the interface; `SqliteQueue` the store (one SQLite file under the
server's folder, the default) and `queue_postgres.PostgresQueue` the same store in a
PostgreSQL schema of its own (`--queue postgresql://...`: servers that keep nothing on
their disk); `queue_stores.open_queue` chooses by URL.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from casarray.errors import CasarrayError

# Recipient states (Get-Message's Status, per recipient).
READY = "Ready"
RETRY = "Retry"
DELIVERED = "Delivered"
FAILED = "Failed"
SUSPENDED = "Suspended"
STATES = (READY, RETRY, DELIVERED, FAILED, SUSPENDED)
PENDING = (READY, RETRY)  # states a delivery attempt takes

# Routes.
LOCAL = "Local"  # into a mailbox database of the organization
RELAY = "Relay"  # to another domain, through a send connector
ROUTES = (LOCAL, RELAY)


class Connection(Protocol):
    """What the queue needs of a DB-API connection in autocommit mode (sqlite3's, or
    `queue_postgres`'s adapter of psycopg's): statements with `?` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def close(self) -> None: ...


class QueueError(CasarrayError):
    """The queue store refused or failed an operation."""


class QueueFull(QueueError):
    """The queue's disk (or PostgreSQL's) has no room for the write: refused and rolled
    back, nothing queued before changed; it works again once there is space."""

    category = "WriteError"


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """Whether a store error says the disk is full: SQLite's SQLITE_FULL, PostgreSQL's
    SQLSTATE 53100 (disk_full), ENOSPC or EDQUOT."""
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS
    return getattr(exc, "sqlstate", None) == "53100"


@dataclass(frozen=True)
class NewRecipient:
    """A recipient as the receive service accepted it."""

    address: str
    route: str = LOCAL  # LOCAL or RELAY
    next_hop: str = ""  # the domain a relayed recipient goes to ("" for local)


@dataclass(frozen=True)
class NewMessage:
    """What `enqueue` commits."""

    sender: str  # "" for the null sender <>
    recipients: tuple[NewRecipient, ...]
    data: bytes
    client_address: str = ""
    client_helo: str = ""
    hop_count: int = 0
    authenticated_as: str = ""
    queue_id: str = ""  # "": one is made (`new_queue_id`)


@dataclass(frozen=True)
class QueuedRecipient:
    """One recipient of a queued message, as the store holds it now."""

    message_id: str
    index: int
    address: str
    state: str
    attempts: int
    next_attempt: float | None  # epoch seconds; None: not scheduled
    last_error: str
    route: str
    next_hop: str
    attempt_started: float | None  # an attempt began and has no outcome yet
    attempt_note: str


@dataclass(frozen=True)
class QueuedMessage:
    """A queued message's envelope (the bytes through `message_data`)."""

    message_id: str
    sender: str
    received: datetime
    client_address: str
    client_helo: str
    size: int
    hop_count: int
    authenticated_as: str
    recipients: tuple[QueuedRecipient, ...]

    @property
    def status(self) -> str:
        """The message's status as Get-Message shows it: Active while any recipient
        still waits, else what its recipients came to."""
        states = {r.state for r in self.recipients}
        for state in (READY, RETRY, SUSPENDED):
            if state in states:
                return state
        return FAILED if FAILED in states else DELIVERED


@dataclass(frozen=True)
class QueueInfo:
    """One queue as Get-Queue shows it: the recipients waiting on one route."""

    delivery_type: str  # "MapiDelivery" (local) or "SmtpRelay" (relay)
    next_hop: str  # the recipient domain
    message_count: int
    states: dict[str, int]
    next_retry: float | None
    last_error: str


class QueueStore(Protocol):
    """A durable queue (SQLite today; PostgreSQL by URL in the same shape)."""

    def enqueue(self, message: NewMessage) -> str:
        """Commit the message and its recipients (durable on return); its queue id.
        QueueFull when the disk has no room for it (nothing changed)."""
        ...

    def free_space(self) -> int | None:
        """Bytes left for the queue on its disk (None: not known, as on PostgreSQL)."""
        ...

    def take_due(self, now: float, limit: int = 100) -> list[QueuedRecipient]:
        """Recipients due for an attempt (Ready, or Retry whose time has come), marked
        as attempted (attempts + 1, attempt_started) in one commit."""
        ...

    def in_flight(self) -> list[QueuedRecipient]:
        """Recipients whose attempt started and has no outcome (after a crash)."""
        ...

    def note_attempt(self, message_id: str, index: int, note: str) -> None: ...

    def retry_now(self, now: float) -> int: ...

    def delivered(self, message_id: str, index: int) -> None: ...

    def delivered_all(self, recipients: Sequence[tuple[str, int]]) -> None: ...

    def retry(self, message_id: str, index: int, error: str, next_attempt: float) -> None: ...

    def failed(self, message_id: str, index: int, error: str, *, report: bool = True) -> None: ...

    def failed_all(
        self, failures: Sequence[tuple[str, int, str]], *, report: bool = True
    ) -> None: ...

    def reports_due(self, limit: int = 100) -> list[tuple[str, int]]: ...

    def reported(self, recipients: Sequence[tuple[str, int]]) -> None: ...

    def message(self, message_id: str) -> QueuedMessage | None: ...

    def message_data(self, message_id: str) -> bytes: ...

    def messages(self, state: str | None = None) -> list[QueuedMessage]: ...

    def queues(self) -> list[QueueInfo]: ...

    def close(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id TEXT PRIMARY KEY,
    sender TEXT NOT NULL,
    received REAL NOT NULL,
    client_address TEXT NOT NULL,
    client_helo TEXT NOT NULL,
    size INTEGER NOT NULL,
    hop_count INTEGER NOT NULL,
    authenticated_as TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipient (
    message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    address TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL,
    last_error TEXT NOT NULL DEFAULT '',
    route TEXT NOT NULL,
    next_hop TEXT NOT NULL DEFAULT '',
    attempt_started REAL,
    attempt_note TEXT NOT NULL DEFAULT '',
    report INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (message_id, idx)
);
CREATE INDEX IF NOT EXISTS recipient_due ON recipient (state, next_attempt);
"""

# the next hop a recipient is queued by: its next hop, else its address's domain
_HOP = (
    "lower(CASE WHEN next_hop != '' THEN next_hop ELSE"
    " substr(address, instr(address, '@') + 1) END)"
)

_RECIPIENT_COLUMNS = (
    "message_id, idx, address, state, attempts, next_attempt, last_error, route, next_hop, "
    "attempt_started, attempt_note"
)


def new_queue_id(now: float | None = None) -> str:
    """A queue id: 16 upper-case hex digits, the first 11 the time in milliseconds (so
    ids sort by arrival), the rest random."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis & 0xFFFFFFFFFFF:011X}{secrets.randbelow(16**5):05X}"


def _recipient(row: Any) -> QueuedRecipient:
    (mid, idx, address, state, attempts, next_attempt, error, route, hop, started, note) = row
    return QueuedRecipient(
        message_id=str(mid),
        index=int(idx),
        address=str(address),
        state=str(state),
        attempts=int(attempts),
        next_attempt=None if next_attempt is None else float(next_attempt),
        last_error=str(error),
        route=str(route),
        next_hop=str(hop),
        attempt_started=None if started is None else float(started),
        attempt_note=str(note),
    )


@dataclass(eq=False)
class _Pending:
    """A message waiting for the group commit that takes it."""

    message_id: str
    message: NewMessage
    received: float
    done: bool = False
    error: QueueError | None = None


def _insert_statements(item: _Pending) -> list[tuple[str, Sequence[object]]]:
    message, message_id, now = item.message, item.message_id, item.received
    statements: list[tuple[str, Sequence[object]]] = [
        (
            "INSERT INTO message (id, sender, received, client_address, client_helo, size,"
            " hop_count, authenticated_as, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_id,
                message.sender,
                now,
                message.client_address,
                message.client_helo,
                len(message.data),
                message.hop_count,
                message.authenticated_as,
                message.data,
            ),
        )
    ]
    for index, recipient in enumerate(message.recipients):
        statements.append(
            (
                "INSERT INTO recipient (message_id, idx, address, state, next_attempt, route,"
                " next_hop) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    index,
                    recipient.address,
                    READY,
                    now,
                    recipient.route,
                    recipient.next_hop,
                ),
            )
        )
    return statements


def _add_report_column(db: sqlite3.Connection) -> None:
    """A queue file made before reports were kept gets their column (none due)."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(recipient)")}
    if "report" not in columns:
        db.execute("ALTER TABLE recipient ADD COLUMN report INTEGER NOT NULL DEFAULT 0")
    db.execute("CREATE INDEX IF NOT EXISTS recipient_report ON recipient (report) WHERE report = 1")


@dataclass
class _QueueTally:
    states: dict[str, int] = field(default_factory=dict)
    next_retry: float | None = None
    last_error: str = ""


class SqliteQueue:
    """The queue in one SQLite file (WAL, synchronous=FULL for what must be on disk).

    Writes go through one connection, one transaction at a time (a lock). Messages
    enqueued by several threads at once are committed together (group commit: the
    thread that takes the lock commits every message waiting, in one transaction and
    one fsync, and each waiting thread returns once its message is in). Reads use a
    connection per thread, so they never wait for a commit (WAL). Every method is
    blocking: call it from a worker thread of the event loop's process."""

    _ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.where = str(self.path)  # what messages name
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self._lock = threading.Lock()  # the write connection's
        self._pending_lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._local = threading.local()
        self._readers: list[Connection] = []
        self._closed = False
        try:
            # two write connections, one per durability (switching one connection's
            # `synchronous` took a PRAGMA per write); either is used with the lock held
            self._full_db = self._connect("FULL")
            self._normal_db = self._connect("NORMAL")
            self._db = self._full_db
            self._full = True
            self._create_schema()
        except self._ERRORS as exc:
            raise QueueError(f"The queue database {self.where} can't be opened: {exc}") from exc

    # -- writes: each one transaction, committed (fsync'd) before returning ---------------

    def _create_schema(self) -> None:
        assert isinstance(self._db, sqlite3.Connection)
        self._db.executescript(_SCHEMA)
        _add_report_column(self._db)

    def _connect(self, synchronous: str) -> Connection:
        db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _sync(self, full: bool) -> None:
        """FULL (the commit reaches the disk before it returns) or NORMAL (it survives
        the process's death; the disk gets it at the next FULL commit or checkpoint):
        `self._db` becomes the connection of that durability. Called with the lock
        held, outside a transaction."""
        if full != self._full:
            self._db = self._full_db if full else self._normal_db
            self._full = full

    def _write(
        self, statements: Iterable[tuple[str, Sequence[object]]], *, full: bool = True
    ) -> None:
        with self._lock:
            self._write_locked(statements, full=full)

    @contextlib.contextmanager
    def _transaction(self, full: bool) -> Iterator[Connection]:
        """A write transaction on the connection of that durability, committed when the
        block ends (rolled back if it raises); the caller holds the lock. A store error
        becomes QueueError."""
        try:
            self._sync(full)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back itself (a full disk): never let ROLLBACK's
                # own error hide why, nor leave a failed COMMIT's transaction open
                with contextlib.suppress(*self._ERRORS):
                    self._db.execute("ROLLBACK")
                raise
        except self._ERRORS as exc:
            if is_disk_full(exc):
                raise QueueFull(
                    f"The queue database {self.where} has no disk space left: {exc}"
                ) from exc
            raise QueueError(f"The queue database {self.where} failed: {exc}") from exc

    def _write_locked(
        self, statements: Iterable[tuple[str, Sequence[object]]], *, full: bool
    ) -> None:
        with self._transaction(full) as db:
            for sql, params in statements:
                db.execute(sql, params)

    def enqueue(self, message: NewMessage) -> str:
        if not message.recipients:
            raise QueueError("A message needs at least one recipient.")
        for recipient in message.recipients:
            if recipient.route not in ROUTES:
                raise QueueError(f"Unknown route {recipient.route!r}.")
        now = time.time()
        pending = _Pending(message.queue_id or new_queue_id(now), message, now)
        with self._pending_lock:
            self._pending.append(pending)
        with self._lock:
            if not pending.done:  # else another thread committed it meanwhile
                with self._pending_lock:
                    batch, self._pending = self._pending, []
                statements: list[tuple[str, Sequence[object]]] = []
                for item in batch:
                    statements.extend(_insert_statements(item))
                try:
                    self._write_locked(statements, full=True)
                except QueueError as exc:
                    for item in batch:
                        item.error = exc
                        item.done = True
                    raise
                for item in batch:
                    item.done = True
        if pending.error is not None:
            raise pending.error
        return pending.message_id

    def free_space(self) -> int | None:
        """Bytes left for the queue on its file system (None: not known)."""
        try:
            stat = os.statvfs(self.path.parent)
        except OSError:
            return None
        return stat.f_bavail * stat.f_frsize

    def take_due(self, now: float, limit: int = 100) -> list[QueuedRecipient]:
        # NORMAL: survives a crash of the process (see the docstring)
        with self._lock, self._transaction(False) as db:
            rows = db.execute(
                f"SELECT {_RECIPIENT_COLUMNS} FROM recipient WHERE state IN (?, ?)"
                " AND attempt_started IS NULL AND (next_attempt IS NULL OR"
                " next_attempt <= ?) ORDER BY next_attempt, message_id, idx LIMIT ?",
                (READY, RETRY, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE recipient SET attempts = attempts + 1, attempt_started = ?,"
                " attempt_note = '' WHERE message_id = ? AND idx = ?",
                [(now, row[0], row[1]) for row in rows],
            )
        taken = [_recipient(row) for row in rows]
        return [
            QueuedRecipient(**{**r.__dict__, "attempts": r.attempts + 1, "attempt_started": now})
            for r in taken
        ]

    def note_attempt(self, message_id: str, index: int, note: str) -> None:
        self._write(
            [
                (
                    "UPDATE recipient SET attempt_note = ? WHERE message_id = ? AND idx = ?",
                    (note, message_id, index),
                )
            ]
        )

    def delivered(self, message_id: str, index: int) -> None:
        self._outcome(message_id, index, DELIVERED, "", None)

    def delivered_all(self, recipients: Sequence[tuple[str, int]]) -> None:
        """Several recipients (message id, index) delivered, in one transaction."""
        self._write(
            [
                (
                    "UPDATE recipient SET state = ?, last_error = '', next_attempt = NULL,"
                    " attempt_started = NULL, attempt_note = '' WHERE message_id = ? AND idx = ?",
                    (DELIVERED, message_id, index),
                )
                for message_id, index in recipients
            ],
            full=False,
        )

    def retry(self, message_id: str, index: int, error: str, next_attempt: float) -> None:
        self._outcome(message_id, index, RETRY, error, next_attempt)

    def failed(self, message_id: str, index: int, error: str, *, report: bool = True) -> None:
        """The recipient failed for good; with `report`, a delivery status notification
        to the sender is due (`reports_due`; never sent for the null sender)."""
        self.failed_all([(message_id, index, error)], report=report)

    def failed_all(self, failures: Sequence[tuple[str, int, str]], *, report: bool = True) -> None:
        """Several recipients (message id, index, error) failed, in one transaction."""
        self._write(
            [
                (
                    "UPDATE recipient SET state = ?, last_error = ?, next_attempt = NULL,"
                    " attempt_started = NULL, attempt_note = '', report = ?"
                    " WHERE message_id = ? AND idx = ?",
                    (FAILED, error, 1 if report else 0, message_id, index),
                )
                for message_id, index, error in failures
            ],
            full=False,
        )

    def fail_unless_in_flight(
        self, message_id: str, indexes: Sequence[int], error: str, *, report: bool
    ) -> list[int]:
        """Remove-Message: fail those of the message's recipients `indexes` that still
        wait (Ready, Retry or Suspended) and whose delivery is not under way, in one
        transaction (a delivery can't take them meanwhile); the indexes failed."""
        waiting = (READY, RETRY, SUSPENDED)
        done = []
        with self._lock, self._transaction(False) as db:
            for index in indexes:
                cursor = db.execute(
                    "UPDATE recipient SET state = ?, last_error = ?,"
                    " next_attempt = NULL, attempt_note = '', report = ?"
                    " WHERE message_id = ? AND idx = ? AND attempt_started IS NULL"
                    " AND state IN (?, ?, ?)",
                    (FAILED, error, 1 if report else 0, message_id, index, *waiting),
                )
                if cursor.rowcount:
                    done.append(index)
        return done

    def reports_due(self, limit: int = 100) -> list[tuple[str, int]]:
        """Failed recipients (message id, index) whose sender is due a report, by
        message."""
        rows = self._read(
            "SELECT message_id, idx FROM recipient WHERE report = 1 AND state = ?"
            " ORDER BY message_id, idx LIMIT ?",
            (FAILED, limit),
        )
        return [(str(mid), int(idx)) for mid, idx in rows]

    def reported(self, recipients: Sequence[tuple[str, int]]) -> None:
        """The report for these recipients is queued (or none is sent)."""
        self._write(
            [
                (
                    "UPDATE recipient SET report = 0 WHERE message_id = ? AND idx = ?",
                    (message_id, index),
                )
                for message_id, index in recipients
            ],
            full=False,
        )

    def _outcome(
        self, message_id: str, index: int, state: str, error: str, next_attempt: float | None
    ) -> None:
        self._write(
            [
                (
                    "UPDATE recipient SET state = ?, last_error = ?, next_attempt = ?,"
                    " attempt_started = NULL, attempt_note = '' WHERE message_id = ? AND idx = ?",
                    (state, error, next_attempt, message_id, index),
                )
            ],
            full=False,
        )

    def retry_now(self, now: float) -> int:
        """Make every recipient in Retry due at `now` (a restart retries what waits);
        how many."""
        with self._lock:
            try:
                cursor = self._db.execute(
                    "UPDATE recipient SET next_attempt = ? WHERE state = ? AND next_attempt > ?",
                    (now, RETRY, now),
                )
            except self._ERRORS as exc:
                raise QueueError(f"The queue database {self.where} failed: {exc}") from exc
            return cursor.rowcount

    def retry_recipients(self, recipients: Sequence[tuple[str, int]], now: float) -> int:
        """Retry-Queue: those of `recipients` (message id, index: one queue's) in Retry
        due at `now`, in one transaction; how many."""
        return self._change(
            "UPDATE recipient SET next_attempt = ? WHERE message_id = ? AND idx = ?"
            " AND state = ? AND (next_attempt IS NULL OR next_attempt > ?)",
            [(now, message_id, index, RETRY, now) for message_id, index in recipients],
        )

    def suspend_recipients(
        self, recipients: Sequence[tuple[str, int]], suspended: bool = True
    ) -> int:
        """Suspend-Queue / Resume-Queue: those of `recipients` (one queue's) that wait
        (or are suspended), not their messages' recipients in other queues; how many
        changed."""
        before, after = (PENDING, SUSPENDED) if suspended else ((SUSPENDED,), READY)
        marks = ", ".join("?" for _ in before)
        return self._change(
            f"UPDATE recipient SET state = ? WHERE message_id = ? AND idx = ?"
            f" AND state IN ({marks})",
            [(after, message_id, index, *before) for message_id, index in recipients],
        )

    def _change(self, sql: str, rows: Sequence[Sequence[object]]) -> int:
        """One statement for each of `rows`, in one transaction; the rows changed."""
        changed = 0
        with self._lock, self._transaction(False) as db:
            for params in rows:
                changed += db.execute(sql, params).rowcount
        return changed

    def suspend(self, message_id: str, suspended: bool = True) -> None:
        """Suspend-Message / Resume-Message: the waiting recipients of a message."""
        before, after = (PENDING, SUSPENDED) if suspended else ((SUSPENDED,), READY)
        marks = ", ".join("?" for _ in before)
        self._write(
            [
                (
                    f"UPDATE recipient SET state = ? WHERE message_id = ? AND state IN ({marks})",
                    (after, message_id, *before),
                )
            ]
        )

    # -- reads --------------------------------------------------------------------------

    def _read_connection(self) -> Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, timeout=30)
        db.execute("PRAGMA query_only=ON")
        return db

    def _reader(self) -> Connection:
        """This thread's read connection (made at its first read)."""
        db: Connection | None = getattr(self._local, "db", None)
        if db is None:
            if self._closed:
                raise QueueError(f"The queue database {self.where} is closed.")
            db = self._read_connection()
            self._local.db = db
            with self._pending_lock:
                self._readers.append(db)
        return db

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            return list(self._reader().execute(sql, params).fetchall())
        except self._ERRORS as exc:
            raise QueueError(f"The queue database {self.where} failed: {exc}") from exc

    def in_flight(self) -> list[QueuedRecipient]:
        rows = self._read(
            f"SELECT {_RECIPIENT_COLUMNS} FROM recipient WHERE attempt_started IS NOT NULL"
            " ORDER BY message_id, idx"
        )
        return [_recipient(row) for row in rows]

    def recipients(self, message_id: str) -> list[QueuedRecipient]:
        rows = self._read(
            f"SELECT {_RECIPIENT_COLUMNS} FROM recipient WHERE message_id = ? ORDER BY idx",
            (message_id,),
        )
        return [_recipient(row) for row in rows]

    def message(self, message_id: str) -> QueuedMessage | None:
        found = self._messages("WHERE id = ?", (message_id,))
        return found[0] if found else None

    def message_data(self, message_id: str) -> bytes:
        rows = self._read("SELECT data FROM message WHERE id = ?", (message_id,))
        if not rows:
            raise QueueError(f"No message {message_id} in the queue.")
        return bytes(rows[0][0])

    def messages(self, state: str | None = None) -> list[QueuedMessage]:
        """Every message (with its recipients), oldest first; with `state`, those with a
        recipient in that state."""
        if state is None:
            return self._messages("", ())
        if state not in STATES:
            raise QueueError(f"Unknown state {state!r}: use one of {', '.join(STATES)}.")
        return self._messages(
            "WHERE id IN (SELECT message_id FROM recipient WHERE state = ?)", (state,)
        )

    def _messages(self, where: str, params: Sequence[object]) -> list[QueuedMessage]:
        heads = self._read(
            "SELECT id, sender, received, client_address, client_helo, size, hop_count,"
            f" authenticated_as FROM message {where} ORDER BY id",
            params,
        )
        result = []
        for mid, sender, received, address, helo, size, hops, auth in heads:
            result.append(
                QueuedMessage(
                    message_id=str(mid),
                    sender=str(sender),
                    received=datetime.fromtimestamp(float(received), UTC),
                    client_address=str(address),
                    client_helo=str(helo),
                    size=int(size),
                    hop_count=int(hops),
                    authenticated_as=str(auth),
                    recipients=tuple(self.recipients(str(mid))),
                )
            )
        return result

    def queues(self) -> list[QueueInfo]:
        """The recipients not yet delivered or failed, grouped by route and next hop
        (the recipient's domain)."""
        rows = self._read(
            f"SELECT route, {_HOP} AS hop, state,"
            " count(DISTINCT message_id), min(next_attempt), max(last_error)"
            " FROM recipient WHERE state IN (?, ?, ?) GROUP BY route, hop, state"
            " ORDER BY route, hop",
            (READY, RETRY, SUSPENDED),
        )
        grouped: dict[tuple[str, str], _QueueTally] = {}
        for route, hop, state, count, next_attempt, error in rows:
            tally = grouped.setdefault((str(route), str(hop)), _QueueTally())
            tally.states[str(state)] = int(count)
            if state == RETRY and next_attempt is not None:
                value = float(next_attempt)
                tally.next_retry = (
                    value if tally.next_retry is None else min(tally.next_retry, value)
                )
            if error:
                tally.last_error = str(error)
        return [
            QueueInfo(
                delivery_type="MapiDelivery" if route == LOCAL else "SmtpRelay",
                next_hop=hop,
                message_count=sum(tally.states.values()),
                states=tally.states,
                next_retry=tally.next_retry,
                last_error=tally.last_error,
            )
            for (route, hop), tally in grouped.items()
        ]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._full_db.close()
            self._normal_db.close()
        with self._pending_lock:
            readers, self._readers = self._readers, []
        for db in readers:  # sqlite3 lets another thread close a connection at the end
            with contextlib.suppress(*self._ERRORS):
                db.close()


def default_path(server: str, home: Path | None = None) -> Path:
    """The queue file of `server` under its folder: `$CASARRAY_HOME/transport/<server>/
    queue.db`."""
    from casarray.config import casarray_home

    return (home or casarray_home()) / "transport" / server.lower() / "queue.db"
