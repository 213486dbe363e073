"""The rows of the store's tables as the rest of the store reads and writes them: the
columns of a message and of a folder as records, message lists by UID, a new folder
with its UIDVALIDITY, contents no message refers to, and the cached ENVELOPE and
BODYSTRUCTURE in text columns.

Shared by the database store (`database`) and a mailbox's folder and message
operations (`folders`, `mailbox`); the statements built once here are those every IMAP
command runs.
"""

from __future__ import annotations

import base64
import gc
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Select,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from casarray.mailstore import flags as flagbits
from casarray.mailstore.interface import MailstoreError, MessageInfo
from casarray.mailstore.schema import content, mailbox
from casarray.mailstore.schema import folder as folder_t
from casarray.mailstore.schema import message as message_t

MAX_UID_VALIDITY = 2**32 - 1
# Up to this many UIDs go into an IN list; more are read as a UID range and filtered.
_IN_LIMIT = 500

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
            return list(rows)
        keep = set(wanted)
        return [row for row in rows if row.uid in keep]
    rows = []
    for chunk in _chunks(wanted):
        rows.extend(conn.execute(base.where(message_t.c.uid.in_(chunk))).all())
    return rows


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
