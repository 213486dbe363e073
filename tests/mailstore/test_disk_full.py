"""A mailbox database whose disk fills up (a small tmpfs, really filled): every write
is refused with StorageFull (IMAP's NO [OVERQUOTA] Not enough disk space) and changes
nothing, reads go on, the file passes SQLite's integrity check, every message stored
before is served byte for byte, and writes work again as soon as there is space, with
no restart. On PostgreSQL the same with the database's tables in a tablespace on the
small disk (SQLSTATE 53100, disk_full). And the mapping of each driver's error."""

from __future__ import annotations

import errno
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from casarray.mailstore.interface import (
    STORAGE_FULL_TEXT,
    DatabaseUnavailable,
    MailboxStore,
    StorageFull,
)
from casarray.mailstore.store import SqlDatabaseStore
from casarray.mailstore.store.disk_full import is_disk_full
from tests.mailstore.test_store import ALICE, make_message
from tests.small_disk import SmallDisk, require_root, small_disk

BOB = "bob-guid-0000-0000"


def state(box: MailboxStore) -> dict[str, Any]:
    """Everything a client can see of the mailbox: folders with their counters,
    subscriptions, each message's metadata and bytes."""
    seen: dict[str, Any] = {"subscriptions": sorted(box.subscriptions())}
    for folder in box.folders():
        infos = box.messages(folder.name)
        bodies = box.bodies(folder.name, [i.uid for i in infos])
        seen[folder.name] = (folder, infos, bodies)
    return seen


def seed(box: MailboxStore) -> None:
    """Messages of several sizes in INBOX (one \\Deleted, all \\Recent), a folder
    Work with one, and a URLAUTH key."""
    for n in range(1, 6):
        box.append("INBOX", make_message(n, size=3000 * n), ["\\Seen"] if n % 2 else [])
    box.store_flags("INBOX", [2], "add", ["\\Deleted"])
    box.create_folder("Work")
    box.create_folder("Old")
    box.append("Work", make_message(9, size=5000))
    box.urlauth_key("INBOX", create=True)


def writes(box: MailboxStore, database: SqlDatabaseStore) -> dict[str, Callable[[], object]]:
    """One of each kind of write, each one that changes something."""
    when = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
    return {
        "append (300 KB)": lambda: box.append("INBOX", make_message(50, size=300_000)),
        "append (1 KB)": lambda: box.append("INBOX", make_message(51, size=1000)),
        "append_many": lambda: box.append_many(
            "INBOX", [(make_message(52 + n, size=2000), (), when) for n in range(3)]
        ),
        "store_flags": lambda: box.store_flags("INBOX", [1, 3, 4], "add", ["\\Flagged", "kw"]),
        "copy": lambda: box.copy("INBOX", [1, 3, 4], "Archive"),
        "move": lambda: box.move("INBOX", [4, 5], "Work"),
        "expunge": lambda: box.expunge("INBOX"),
        "take_recent": lambda: box.take_recent("INBOX"),
        "create_folder": lambda: box.create_folder("Projects/2025"),
        "rename_folder": lambda: box.rename_folder("Work", "Play"),
        "delete_folder": lambda: box.delete_folder("Old"),
        "subscribe": lambda: box.subscribe("Elsewhere", True),
        "reset_urlauth_keys": lambda: box.reset_urlauth_keys("INBOX"),
        "create_mailbox": lambda: database.create_mailbox(BOB),
    }


def check_full_then_resume(
    box: MailboxStore, database: SqlDatabaseStore, disk: SmallDisk, integrity: Callable[[], str]
) -> None:
    before = state(box)
    disk.fill()
    for name, write in writes(box, database).items():
        with pytest.raises(StorageFull) as refused:
            write()
        assert str(refused.value) == STORAGE_FULL_TEXT, name
        assert refused.value.code == "OVERQUOTA", name
        assert isinstance(refused.value, DatabaseUnavailable)  # a temporary refusal
        assert state(box) == before, f"{name} changed something on a full disk"
    assert not database.has_mailbox(BOB)
    assert integrity() == "ok"
    # reads go on meanwhile
    assert box.body("INBOX", 3) == make_message(3, size=9000)
    assert box.storage_used() > 0

    disk.free_up()
    for write in writes(box, database).values():
        write()  # each works again, with no restart
    assert integrity() == "ok"
    # every message stored before the disk filled is still served, byte for byte
    # (but the \\Deleted one the EXPUNGE above removed, now that it could)
    served = [body for _, _, bodies in list(state(box).values())[1:] for body in bodies.values()]
    for folder, (_, infos, bodies) in list(before.items())[1:]:
        for info in infos:
            if (folder, info.uid) != ("INBOX", 2):
                assert bodies[info.uid] in served, (folder, info.uid)
    assert make_message(2, size=6000) not in served


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", "4m") as mounted:
        yield mounted


@pytest.mark.root
def test_sqlite_database_on_a_full_disk(disk: SmallDisk) -> None:
    path = disk.path / "DB01.db"
    database = SqlDatabaseStore(str(path))
    try:
        box = database.create_mailbox(ALICE)
        seed(box)

        def integrity() -> str:
            with sqlite3.connect(path) as conn:
                return str(conn.execute("PRAGMA integrity_check").fetchone()[0])

        check_full_then_resume(box, database, disk, integrity)
    finally:
        database.close()


@pytest.mark.root
@pytest.mark.postgres
def test_postgres_database_on_a_full_disk(tmp_path: Path) -> None:
    """The database's tables in a tablespace on a small tmpfs, in a PostgreSQL server of
    its own (a full tablespace must not disturb the suite's shared server): an APPEND
    that needs new pages gets SQLSTATE 53100, answered StorageFull, and nothing
    changes; PostgreSQL still writes what fits in the pages it has (a flag change
    updates a row in place)."""
    import os
    import shutil

    from tests.conftest import (
        PG_PACKAGE_HINT,
        _start_postgres,
        _unprivileged_user,
        find_pg_binaries,
    )

    binaries = find_pg_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(PG_PACKAGE_HINT)
        pytest.skip(PG_PACKAGE_HINT)
    require_root()
    user = _unprivileged_user()
    server = _start_postgres(*binaries)
    try:
        # in the server's folder, which its user may enter (the test's folder is root's)
        with small_disk(server.base / "small", "4m", owner=(user.pw_uid, user.pw_gid)) as disk:
            space = disk.path / "pg"  # PostgreSQL wants an empty folder of its own
            space.mkdir()
            os.chown(space, user.pw_uid, user.pw_gid)
            with psycopg.connect(
                host="127.0.0.1", port=server.port, user=server.user, autocommit=True
            ) as admin:
                admin.execute(f"CREATE TABLESPACE small LOCATION '{space}'")
            url = server.url(server.create_database())
            database = SqlDatabaseStore(
                url + "?options=-csearch_path%3Ddb01%20-cdefault_tablespace%3Dsmall"
            )
            try:
                box = database.create_mailbox(ALICE)
                seed(box)
                before = state(box)
                disk.fill()
                big = [(make_message(60 + n, size=400_000), (), None) for n in range(3)]
                for write in (
                    lambda: box.append("INBOX", make_message(50, size=400_000)),
                    lambda: box.append_many("INBOX", big),
                ):
                    with pytest.raises(StorageFull, match=STORAGE_FULL_TEXT):
                        write()
                    assert state(box) == before
                box.store_flags("INBOX", [1], "add", ["\\Flagged"])  # fits in its page
                disk.free_up()
                appended = box.append("INBOX", make_message(50, size=400_000))
                assert box.body("INBOX", appended.uid) == make_message(50, size=400_000)
                for folder, (_, infos, bodies) in list(before.items())[1:]:
                    uids = [i.uid for i in infos]
                    assert box.bodies(folder, uids) == bodies
            finally:
                database.close()
            server.stop()
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


# -- the mapping of each driver's error -------------------------------------------------


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (sqlite_error("database or disk is full", sqlite3.SQLITE_FULL), True),
        (sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR_SHMSIZE), True),
        (sqlite_error("database is locked", sqlite3.SQLITE_BUSY), False),
        (sqlite_error("disk I/O error", sqlite3.SQLITE_IOERR), False),
        (psycopg.errors.DiskFull("could not extend file"), True),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.errors.OutOfMemory("out of memory"), False),
        (OSError(errno.ENOSPC, "No space left on device"), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (OSError(errno.EACCES, "Permission denied"), False),
        (ValueError("no"), False),
    ],
    ids=lambda value: type(value).__name__ if not isinstance(value, bool) else str(value),
)
def test_which_errors_say_the_disk_is_full(error: Exception, full: bool) -> None:
    assert is_disk_full(error) is full
    # as SQLAlchemy hands it over (the driver's error as .orig), and as a cause
    wrapped = OperationalError("INSERT ...", {}, error)
    assert is_disk_full(wrapped) is full
    try:
        raise RuntimeError("outer") from error
    except RuntimeError as outer:
        assert is_disk_full(outer) is full
