"""A mailbox's hot operations on SQLite straight through sqlite3 (`sqlite_direct`):
the same semantics as `SqlMailboxStore`'s SQLAlchemy paths, which PostgreSQL keeps.
`SqlMailboxStore` calls these when its database has direct connections; each takes the
connections, the mailbox's id and the folder's canonical name.

Reads that need no snapshot run as single statements (each atomic); a change check
reads the folder's row first and then only rows up to its HIGHESTMODSEQ, so a change
committed in between comes with the next check, never half. Writes are short: one
`DirectConnections.write` transaction holding SQLite's write lock only for the
statements of the change itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from casarray.mailstore import flags as flagbits
from casarray.mailstore.interface import (
    CachedParts,
    Changes,
    DestinationNotFound,
    FolderNotFound,
    MessageInfo,
    MessageNotFound,
)
from casarray.mailstore.store.rows import FolderRow, _info, _infos, from_column
from casarray.mailstore.store.sqlite_direct import (
    COUNTS,
    FOLDER_BY_NAME,
    INFO_COLUMNS,
    DirectConnections,
    chunks,
    drop_orphans,
    rows_for_uids,
)


def _missing(key: str) -> FolderNotFound:
    return FolderNotFound(f"The folder '{key}' doesn't exist.")


def folder_row(conn: Any, mailbox_id: int, key: str) -> FolderRow:
    found = conn.execute(FOLDER_BY_NAME, (mailbox_id, key)).fetchone()
    if found is None:
        raise _missing(key)
    return FolderRow(*found)


def append_many(
    db: DirectConnections, mailbox_id: int, key: str, messages: Sequence[tuple[Any, ...]]
) -> tuple[int, int]:
    """Stores `messages`, each (data, stamp, offset, bits, keywords, envelope,
    bodystructure, body), the last three as `to_column` made them, in one transaction:
    (UIDVALIDITY, the first UID), the rest following in order."""
    with db.write() as conn:
        found = conn.execute(
            "UPDATE ms_folder SET uid_next = uid_next + ?, highest_modseq = highest_modseq + 1 "
            "WHERE mailbox_id = ? AND name = ? RETURNING id, uid_validity, uid_next, "
            "highest_modseq",
            (len(messages), mailbox_id, key),
        ).fetchall()
        if not found:
            raise DestinationNotFound(f"The folder '{key}' doesn't exist.")
        folder_id, uid_validity, uid_next, modseq = found[0]
        first = int(uid_next) - len(messages)
        for i, (data, stamp, offset, bits, keywords, envelope, bodystructure, body) in enumerate(
            messages
        ):
            content_id = conn.execute(
                "INSERT INTO ms_content (mailbox_id, envelope, bodystructure, body) "
                "VALUES (?, ?, ?, ?)",
                (mailbox_id, envelope, bodystructure, body),
            ).lastrowid
            conn.execute("INSERT INTO ms_raw (content_id, data) VALUES (?, ?)", (content_id, data))
            conn.execute(
                "INSERT INTO ms_message (folder_id, uid, content_id, internal_date, tz_offset, "
                "size, system_flags, keywords, modseq, recent) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    folder_id,
                    first + i,
                    content_id,
                    stamp,
                    offset,
                    len(data),
                    bits,
                    keywords,
                    modseq,
                ),
            )
    return int(uid_validity), first


def flag_rows(db: DirectConnections, mailbox_id: int, key: str) -> tuple[FolderRow, list[Any]]:
    """The folder's row and its messages' (uid, system_flags, keywords, recent), one
    snapshot."""
    with db.read() as conn:
        row = folder_row(conn, mailbox_id, key)
        rows = conn.execute(
            "SELECT uid, system_flags, keywords, recent FROM ms_message WHERE folder_id = ? "
            "ORDER BY uid",
            (row.id,),
        ).fetchall()
    return row, rows


def messages(db: DirectConnections, mailbox_id: int, key: str) -> list[MessageInfo]:
    with db.read() as conn:
        row = folder_row(conn, mailbox_id, key)
        rows = conn.execute(
            f"SELECT {INFO_COLUMNS} FROM ms_message WHERE folder_id = ? ORDER BY uid", (row.id,)
        ).fetchall()
    return _infos(rows)


def newest(
    db: DirectConnections, mailbox_id: int, key: str, offset: int, limit: int
) -> tuple[int, list[MessageInfo]]:
    with db.read() as conn:
        row = folder_row(conn, mailbox_id, key)
        (total,) = conn.execute(
            "SELECT count(*) FROM ms_message WHERE folder_id = ?", (row.id,)
        ).fetchone()
        rows = conn.execute(
            f"SELECT {INFO_COLUMNS} FROM ms_message WHERE folder_id = ? "
            "ORDER BY internal_date DESC, uid DESC LIMIT ? OFFSET ?",
            (row.id, limit, offset),
        ).fetchall()
    return int(total), _infos(rows)


def changes_since(db: DirectConnections, row: FolderRow, modseq: int) -> Changes:
    """What changed in the folder of `row` (read just before) after `modseq`, up to the
    row's HIGHESTMODSEQ. Two statements, no transaction: every row at or below that
    modseq was committed with it, and what commits meanwhile has a higher one (a
    message changed or expunged meanwhile is reported by the next call)."""
    highest = int(row.highest_modseq)
    changed = db.all(
        f"SELECT {INFO_COLUMNS} FROM ms_message WHERE folder_id = ? AND modseq > ? "
        "AND modseq <= ? ORDER BY uid",
        (row.id, modseq, highest),
    )
    gone = db.all(
        "SELECT uid FROM ms_expunged WHERE folder_id = ? AND modseq > ? AND modseq <= ? "
        "ORDER BY uid",
        (row.id, modseq, highest),
    )
    return Changes(
        tuple(_infos(changed)), tuple(int(r[0]) for r in gone), highest, int(row.uid_validity)
    )


def take_recent(db: DirectConnections, folder_id: int) -> list[int] | None:
    """Clears \\Recent in the folder: the UIDs it was cleared on (None: none was set)."""
    if db.one("SELECT 1 FROM ms_message WHERE folder_id = ? AND recent = 1 LIMIT 1", (folder_id,)):
        with db.write() as conn:
            taken = conn.execute(
                "UPDATE ms_message SET recent = 0 WHERE folder_id = ? AND recent = 1 RETURNING uid",
                (folder_id,),
            ).fetchall()
        return sorted(int(r[0]) for r in taken)
    return None


def body(db: DirectConnections, folder_id: int, key: str, uid: int) -> bytes:
    found = db.one(
        "SELECT r.data FROM ms_message m JOIN ms_raw r ON r.content_id = m.content_id "
        "WHERE m.folder_id = ? AND m.uid = ?",
        (folder_id, uid),
    )
    if found is None:
        raise MessageNotFound(f"There is no message with UID {uid} in '{key}'.")
    return bytes(found[0])


def bodies(db: DirectConnections, folder_id: int, uids: Sequence[int]) -> dict[int, bytes]:
    with db.read() as conn:
        rows = rows_for_uids(
            conn,
            "SELECT m.uid, r.data FROM ms_message m JOIN ms_raw r ON r.content_id = m.content_id "
            "WHERE m.folder_id = ?",
            (folder_id,),
            uids,
            0,
        )
    return {int(r[0]): bytes(r[1]) for r in rows}


def infos(db: DirectConnections, folder_id: int, uids: Sequence[int]) -> dict[int, MessageInfo]:
    with db.read() as conn:
        rows = rows_for_uids(
            conn,
            f"SELECT {INFO_COLUMNS} FROM ms_message m WHERE m.folder_id = ?",
            (folder_id,),
            uids,
            0,
        )
    return {info.uid: info for info in _infos(rows)}


def cached(db: DirectConnections, folder_id: int, uids: Sequence[int]) -> dict[int, CachedParts]:
    with db.read() as conn:
        rows = rows_for_uids(
            conn,
            "SELECT m.uid, c.envelope, c.bodystructure, c.body FROM ms_message m "
            "JOIN ms_content c ON c.id = m.content_id WHERE m.folder_id = ?",
            (folder_id,),
            uids,
            0,
        )
    return {
        int(r[0]): CachedParts(from_column(r[1]), from_column(r[2]), from_column(r[3]))
        for r in rows
    }


def envelopes(db: DirectConnections, folder_id: int, uids: Sequence[int]) -> dict[int, str]:
    with db.read() as conn:
        rows = rows_for_uids(
            conn,
            "SELECT m.uid, c.envelope FROM ms_message m "
            "JOIN ms_content c ON c.id = m.content_id WHERE m.folder_id = ?",
            (folder_id,),
            uids,
            0,
        )
    return {int(r[0]): from_column(r[1]) for r in rows}


def store_flags(
    db: DirectConnections,
    mailbox_id: int,
    key: str,
    uids: Sequence[int],
    mode: str,
    bits: int,
    keywords: tuple[str, ...],
    unchanged_since: int | None,
) -> list[MessageInfo]:
    with db.write() as conn:
        row = folder_row(conn, mailbox_id, key)
        found = rows_for_uids(
            conn,
            f"SELECT m.id, {', '.join('m.' + c for c in INFO_COLUMNS.split(', '))} "
            "FROM ms_message m WHERE m.folder_id = ?",
            (row.id,),
            uids,
            1,
        )
        changes = []
        for msg in found:
            # msg: id, uid, system_flags, keywords, internal_date, tz_offset, size, modseq, recent
            if unchanged_since is not None and msg[7] > unchanged_since:
                continue
            new_bits, new_keywords = flagbits.apply(mode, msg[2], msg[3], bits, keywords)
            if new_bits != msg[2] or new_keywords != msg[3]:
                changes.append((msg, new_bits, new_keywords))
        if not changes:
            return []
        modseq = int(row.highest_modseq) + 1
        conn.execute("UPDATE ms_folder SET highest_modseq = ? WHERE id = ?", (modseq, row.id))
        conn.executemany(
            "UPDATE ms_message SET system_flags = ?, keywords = ?, modseq = ? WHERE id = ?",
            [(new_bits, new_keywords, modseq, msg[0]) for msg, new_bits, new_keywords in changes],
        )
    changes.sort(key=lambda change: change[0][1])
    return [
        _info((msg[1], new_bits, new_keywords, *msg[4:7], modseq, msg[8]))
        for msg, new_bits, new_keywords in changes
    ]


def expunge(
    db: DirectConnections, mailbox_id: int, key: str, uids: Sequence[int] | None
) -> list[int]:
    found = db.one(
        "SELECT f.id, EXISTS (SELECT 1 FROM ms_message m WHERE m.folder_id = f.id "
        f"AND (m.system_flags & {flagbits.DELETED}) != 0) FROM ms_folder f "
        "WHERE f.mailbox_id = ? AND f.name = ?",
        (mailbox_id, key),
    )
    if found is not None and not found[1]:
        return []  # no message is \Deleted: no write (and no wait for the write lock)
    with db.write() as conn:
        row = folder_row(conn, mailbox_id, key)
        base = (
            "SELECT m.id, m.uid, m.content_id FROM ms_message m WHERE m.folder_id = ? "
            f"AND (m.system_flags & {flagbits.DELETED}) != 0"
        )
        if uids is None:
            found = conn.execute(base, (row.id,)).fetchall()
        else:
            found = rows_for_uids(conn, base, (row.id,), uids, 1)
        if not found:
            return []
        found.sort(key=lambda r: r[1])
        modseq = int(row.highest_modseq) + 1
        for chunk in chunks([m[0] for m in found]):
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM ms_message WHERE id IN ({marks})", tuple(chunk))
        conn.executemany(
            "INSERT INTO ms_expunged (folder_id, uid, modseq) VALUES (?, ?, ?)",
            [(row.id, m[1], modseq) for m in found],
        )
        conn.execute("UPDATE ms_folder SET highest_modseq = ? WHERE id = ?", (modseq, row.id))
        drop_orphans(conn, [m[2] for m in found])
    return [int(m[1]) for m in found]


def storage_used(db: DirectConnections, mailbox_id: int) -> int:
    """The bytes of every message in the mailbox (its quota usage)."""
    row = db.one(
        "SELECT coalesce(sum(m.size), 0) FROM ms_message m JOIN ms_folder f "
        "ON m.folder_id = f.id WHERE f.mailbox_id = ?",
        (mailbox_id,),
    )
    return int(row[0])


def folder_counts(
    db: DirectConnections, mailbox_id: int, key: str
) -> tuple[FolderRow, tuple[int, int, int], bool, bool]:
    """STATUS's and LIST's figures of one folder: its row, (messages, recent, unseen),
    whether it has children, whether it is subscribed."""
    prefix = key + "/"
    with db.read() as conn:
        row = folder_row(conn, mailbox_id, key)
        counts = conn.execute(
            f"SELECT {COUNTS} FROM ms_message WHERE folder_id = ?", (row.id,)
        ).fetchone()
        children = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM ms_folder WHERE mailbox_id = ? "
            "AND substr(name, 1, ?) = ?)",
            (mailbox_id, len(prefix), prefix),
        ).fetchone()[0]
        subscribed = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM ms_subscription WHERE mailbox_id = ? AND name = ?)",
            (mailbox_id, key),
        ).fetchone()[0]
    return row, (int(counts[0]), int(counts[1]), int(counts[2])), bool(children), bool(subscribed)


def all_folders(
    db: DirectConnections, mailbox_id: int
) -> tuple[dict[str, FolderRow], dict[int, tuple[int, int, int]], set[str]]:
    """Every folder's row by name, the counts by folder id, the subscribed names."""
    with db.read() as conn:
        rows = {
            r[1]: FolderRow(*r)
            for r in conn.execute(
                "SELECT id, name, uid_validity, uid_next, highest_modseq, special_use "
                "FROM ms_folder WHERE mailbox_id = ?",
                (mailbox_id,),
            ).fetchall()
        }
        counts = {
            r[0]: (int(r[1]), int(r[2]), int(r[3]))
            for r in conn.execute(
                f"SELECT folder_id, {COUNTS} FROM ms_message WHERE folder_id IN "
                "(SELECT id FROM ms_folder WHERE mailbox_id = ?) GROUP BY folder_id",
                (mailbox_id,),
            ).fetchall()
        }
        subscribed = {
            r[0]
            for r in conn.execute(
                "SELECT name FROM ms_subscription WHERE mailbox_id = ?", (mailbox_id,)
            ).fetchall()
        }
    return rows, counts, subscribed
