"""A mailbox database's disk filling up: how the store recognises it, and what it says.

SQLite reports a write the file system has no room for as SQLITE_FULL ("database or
disk is full": a page that can't be written, or at COMMIT a WAL that can't grow) and
a WAL index that can't grow as SQLITE_IOERR_SHMSIZE; PostgreSQL as SQLSTATE 53100
(disk_full, "could not extend file"); the file system itself as ENOSPC or EDQUOT.
Either database rolls the transaction back (the store's `write` does too), so what was
stored before is untouched, and the store raises `StorageFull` (IMAP's `NO [OVERQUOTA]
Not enough disk space`). Nothing is reset when space returns: the next write works.

`FullState` keeps the logs short: a warning naming the database at its first refused
write, and a line when a write commits again; not a line per refused command.
"""

from __future__ import annotations

import errno
import logging
import sqlite3

from casarray.mailstore.interface import StorageFull

log = logging.getLogger("casarray.mailstore")

DISK_FULL_SQLSTATE = "53100"  # PostgreSQL's disk_full
_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_CODES = frozenset({sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR_SHMSIZE})


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (a driver's error, SQLAlchemy's wrapping of one, or an OSError) says
    the disk is full."""
    for _ in range(4):  # the error, the driver's error it wraps, their causes
        if exc is None:
            return False
        if isinstance(exc, sqlite3.Error):
            if getattr(exc, "sqlite_errorcode", None) in _SQLITE_CODES:
                return True
        elif isinstance(exc, OSError):
            if exc.errno in _ERRNOS:
                return True
        elif getattr(exc, "sqlstate", None) == DISK_FULL_SQLSTATE:  # psycopg's DiskFull
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__  # SQLAlchemy keeps it as .orig
    return False


class FullState:
    """Whether one mailbox database's last write found its disk full, for the logs."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.full = False

    def refused(self, exc: BaseException) -> StorageFull:
        """The error for a write refused for lack of space (logged once per episode)."""
        if not self.full:
            self.full = True
            log.warning(
                "The mailbox database %s is out of disk space: writes are refused (IMAP NO "
                "[OVERQUOTA], delivery deferred) until there is room; nothing stored is "
                "lost (%s)",
                self.where,
                getattr(exc, "orig", None) or exc,
            )
        return StorageFull(self.where)

    def written(self) -> None:
        """A write committed: if the disk was full, it has room again."""
        if self.full:
            self.full = False
            log.warning("The mailbox database %s has disk space again: writes work", self.where)
