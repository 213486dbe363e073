"""One user's mailbox (`SqlMailboxStore`, implements `MailboxStore`): its messages.
APPEND (several at once for MULTIAPPEND), the message list and SELECT's flag snapshot,
CONDSTORE changes, \\Recent, the bytes and cached parts, STORE, COPY, MOVE and EXPUNGE;
the folders come from `MailboxFolders`, the URLAUTH keys from `UrlauthKeys`.

Every change of a message gives its folder a new modseq, also given to the messages
changed, and expunges leave tombstones, so `changes_since` reports them to every other
session. An APPEND is durable when it returns (one write transaction).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, true, update

from casarray.mailstore import flags as flagbits
from casarray.mailstore.interface import (
    Appended,
    CachedParts,
    Changes,
    Copied,
    DestinationNotFound,
    FlagMap,
    FolderNotFound,
    MessageInfo,
    MessageNotFound,
    MessageTooLarge,
)
from casarray.mailstore.mime import cached_parts, normalize_newlines
from casarray.mailstore.names import canonical
from casarray.mailstore.schema import content, expunged, raw
from casarray.mailstore.schema import folder as folder_t
from casarray.mailstore.schema import message as message_t
from casarray.mailstore.store import direct_ops
from casarray.mailstore.store.folders import MailboxFolders
from casarray.mailstore.store.rows import (
    _FOLDER_COLUMNS,
    _INFO_COLUMNS,
    _chunks,
    _drop_orphans,
    _gc_paused,
    _info,
    _infos,
    _rows_for_uids,
    _stamp,
    _stamp_of,
    from_column,
    to_column,
)
from casarray.mailstore.store.urlauth import UrlauthKeys

FLAG_MAP_CACHE = 256  # folders whose SELECT snapshot a process keeps


class SqlMailboxStore(MailboxFolders, UrlauthKeys):
    """One user's mailbox in a `SqlDatabaseStore` (implements `MailboxStore`)."""

    def __repr__(self) -> str:
        return f"<SqlMailboxStore {self.guid} in {self.database.location}>"

    @property
    def local(self) -> bool:
        """Whether the operations run on this machine's SQLite file without a network
        round trip (the IMAP server then runs short commands on its event loop)."""
        return self.database.direct is not None

    def append(
        self,
        folder: str,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> Appended:
        """Stores the message; durable when this returns (see the package docstring)."""
        return self.append_many(folder, [(message, flags, internal_date)])[0]

    def append_many(
        self,
        folder: str,
        messages: Sequence[tuple[bytes, Iterable[str], datetime | None]],
    ) -> list[Appended]:
        """APPEND and MULTIAPPEND: the messages in one write transaction (all or none),
        one modseq."""
        key = canonical(folder)
        limit = self.database.max_message_size
        prepared = []
        for message, flags, internal_date in messages:
            data = normalize_newlines(bytes(message))
            if len(data) > limit:
                raise MessageTooLarge(
                    f"The message is {len(data)} bytes; this mailbox database accepts at most "
                    f"{limit} bytes."
                )
            prepared.append(
                (data, flagbits.parse(flags), _stamp(internal_date), cached_parts(data))
            )
        direct = self.database.direct
        if direct is not None:
            uid_validity, first = direct_ops.append_many(
                direct,
                self.id,
                key,
                [
                    (
                        data,
                        stamp,
                        offset,
                        bits,
                        flagbits.join_keywords(keywords),
                        to_column(parts.envelope),
                        to_column(parts.bodystructure),
                        to_column(parts.body),
                    )
                    for data, (bits, keywords), (stamp, offset), parts in prepared
                ],
            )
            return [Appended(uid_validity, first + i) for i in range(len(prepared))]
        with self.database.write() as conn:
            row = conn.execute(
                update(folder_t)
                .where(folder_t.c.mailbox_id == self.id, folder_t.c.name == key)
                .values(
                    uid_next=folder_t.c.uid_next + len(prepared),
                    highest_modseq=folder_t.c.highest_modseq + 1,
                )
                .returning(
                    folder_t.c.id,
                    folder_t.c.uid_validity,
                    folder_t.c.uid_next,
                    folder_t.c.highest_modseq,
                )
            ).first()
            if row is None:
                raise DestinationNotFound(f"The folder '{key}' doesn't exist.")
            folder_id, uid_validity, uid_next, modseq = row
            first = int(uid_next) - len(prepared)
            for i, (data, (bits, keywords), (stamp, offset), parts) in enumerate(prepared):
                content_id = conn.execute(
                    insert(content)
                    .values(
                        mailbox_id=self.id,
                        envelope=to_column(parts.envelope),
                        bodystructure=to_column(parts.bodystructure),
                        body=to_column(parts.body),
                    )
                    .returning(content.c.id)
                ).scalar_one()
                conn.execute(insert(raw).values(content_id=content_id, data=data))
                conn.execute(
                    insert(message_t).values(
                        folder_id=folder_id,
                        uid=first + i,
                        content_id=content_id,
                        internal_date=stamp,
                        tz_offset=offset,
                        size=len(data),
                        system_flags=bits,
                        keywords=flagbits.join_keywords(keywords),
                        modseq=modseq,
                        recent=True,
                    )
                )
        return [Appended(int(uid_validity), first + i) for i in range(len(prepared))]

    def messages(self, folder: str) -> list[MessageInfo]:
        key = canonical(folder)
        if self.database.direct is not None:
            with _gc_paused():
                return direct_ops.messages(self.database.direct, self.id, key)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            rows = conn.execute(
                select(*_INFO_COLUMNS)
                .where(message_t.c.folder_id == row.id)
                .order_by(message_t.c.uid)
            ).all()
            return _infos(rows)

    def newest(self, folder: str, offset: int, limit: int) -> tuple[int, list[MessageInfo]]:
        key = canonical(folder)
        offset, limit = max(offset, 0), max(limit, 0)
        if self.database.direct is not None:
            return direct_ops.newest(self.database.direct, self.id, key, offset, limit)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            in_folder = message_t.c.folder_id == row.id
            total = conn.execute(
                select(func.count()).select_from(message_t).where(in_folder)
            ).scalar_one()
            rows = conn.execute(
                select(*_INFO_COLUMNS)
                .where(in_folder)
                .order_by(message_t.c.internal_date.desc(), message_t.c.uid.desc())
                .limit(limit)
                .offset(offset)
            ).all()
            return int(total), _infos(rows)

    def uid_flags(self, folder: str) -> FlagMap:
        """Cached per process by (folder, modseq): a SELECT of an unchanged folder costs
        one row read, as a client polling its INBOX does all day."""
        key = canonical(folder)
        row = self._fast_folder_row(key)
        cached = self.database.flag_maps.get(row.id)
        if cached is not None and cached[0] == _stamp_of(row):
            return cached[1]
        with self.database.flag_map_lock(row.id):
            cached = self.database.flag_maps.get(row.id)
            if cached is not None and cached[0] == _stamp_of(row):
                return cached[1]  # another session read it meanwhile
            with _gc_paused():
                row, rows = self._flag_rows(key)
            stamp = _stamp_of(row)
            flag_set = flagbits.flag_set
            result = FlagMap.build(
                row.name,
                int(row.uid_validity),
                int(row.uid_next),
                int(row.highest_modseq),
                ((r[0], flag_set(r[1], r[2]), bool(r[3])) for r in rows),
            )
            maps = self.database.flag_maps
            maps[row.id] = (stamp, result)
            if len(maps) > FLAG_MAP_CACHE:
                maps.pop(next(iter(maps)))
        return result

    def _flag_rows(self, key: str) -> tuple[Any, Sequence[Any]]:
        """The folder's row and its messages' (uid, system_flags, keywords, recent) in
        UID order, one snapshot."""
        if self.database.direct is not None:
            return direct_ops.flag_rows(self.database.direct, self.id, key)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            rows = conn.execute(
                select(
                    message_t.c.uid,
                    message_t.c.system_flags,
                    message_t.c.keywords,
                    message_t.c.recent,
                )
                .where(message_t.c.folder_id == row.id)
                .order_by(message_t.c.uid)
            ).all()
        return row, rows

    def changes_since(self, folder: str, modseq: int) -> Changes:
        """What changed after `modseq`, up to the folder's HIGHESTMODSEQ read first (a
        change committed meanwhile comes with the next call)."""
        key = canonical(folder)
        row = self._fast_folder_row(key)
        if int(row.highest_modseq) <= modseq:  # nothing changed: the common case
            return Changes((), (), int(row.highest_modseq), int(row.uid_validity))
        if self.database.direct is not None:
            return direct_ops.changes_since(self.database.direct, row, modseq)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            highest = int(row.highest_modseq)
            if highest <= modseq:
                return Changes((), (), highest, int(row.uid_validity))
            changed = conn.execute(
                select(*_INFO_COLUMNS)
                .where(
                    message_t.c.folder_id == row.id,
                    message_t.c.modseq > modseq,
                    message_t.c.modseq <= highest,
                )
                .order_by(message_t.c.uid)
            ).all()
            gone = conn.execute(
                select(expunged.c.uid)
                .where(
                    expunged.c.folder_id == row.id,
                    expunged.c.modseq > modseq,
                    expunged.c.modseq <= highest,
                )
                .order_by(expunged.c.uid)
            ).scalars()
            return Changes(
                tuple(_infos(changed)),
                tuple(int(uid) for uid in gone),
                highest,
                int(row.uid_validity),
            )

    def take_recent(self, folder: str) -> list[int]:
        key = canonical(folder)
        if self.database.direct is not None:
            row = self._fast_folder_row(key)
            taken = direct_ops.take_recent(self.database.direct, row.id)
            self._forget_recent(row.id)
            return taken or []
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            any_recent = conn.execute(
                select(message_t.c.uid)
                .where(message_t.c.folder_id == row.id, message_t.c.recent == true())
                .limit(1)
            ).first()
        if any_recent is None:
            self._forget_recent(row.id)
            return []
        with self.database.write() as conn:
            row = self._folder_row(conn, key, lock=True)
            uids = conn.execute(
                update(message_t)
                .where(message_t.c.folder_id == row.id, message_t.c.recent == true())
                .values(recent=False)
                .returning(message_t.c.uid)
            ).scalars()
            taken = sorted(int(uid) for uid in uids)
        self._forget_recent(row.id)
        return taken

    def _forget_recent(self, folder_id: int) -> None:
        """No message of the folder is \\Recent any more (clearing it changes no modseq,
        so the SELECT snapshot is corrected in place)."""
        cached = self.database.flag_maps.get(folder_id)
        if cached is not None and cached[1].recent:
            self.database.flag_maps[folder_id] = (
                cached[0],
                dataclasses.replace(cached[1], recent=frozenset()),
            )

    def body(self, folder: str, uid: int) -> bytes:
        key = canonical(folder)
        if self.database.direct is not None:
            row = self._fast_folder_row(key)
            return direct_ops.body(self.database.direct, row.id, key, uid)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            data = conn.execute(
                select(raw.c.data)
                .join(message_t, message_t.c.content_id == raw.c.content_id)
                .where(message_t.c.folder_id == row.id, message_t.c.uid == uid)
            ).scalar()
        if data is None:
            raise MessageNotFound(f"There is no message with UID {uid} in '{key}'.")
        return bytes(data)

    def bodies(self, folder: str, uids: Sequence[int]) -> dict[int, bytes]:
        key = canonical(folder)
        if self.database.direct is not None:
            folder_id = self._fast_folder_id(key)
            return direct_ops.bodies(self.database.direct, folder_id, uids)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            base = (
                select(message_t.c.uid, raw.c.data)
                .join(raw, raw.c.content_id == message_t.c.content_id)
                .where(message_t.c.folder_id == row.id)
            )
            return {int(r[0]): bytes(r[1]) for r in _rows_for_uids(conn, base, uids)}

    def infos(self, folder: str, uids: Sequence[int]) -> dict[int, MessageInfo]:
        key = canonical(folder)
        if self.database.direct is not None:
            folder_id = self._fast_folder_id(key)
            with _gc_paused():
                return direct_ops.infos(self.database.direct, folder_id, uids)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            base = select(*_INFO_COLUMNS).where(message_t.c.folder_id == row.id)
            return {info.uid: info for info in _infos(_rows_for_uids(conn, base, uids))}

    def cached(self, folder: str, uids: Sequence[int]) -> dict[int, CachedParts]:
        """The cached parts of the messages of `uids` that exist."""
        key = canonical(folder)
        if self.database.direct is not None:
            folder_id = self._fast_folder_id(key)
            with _gc_paused():
                return direct_ops.cached(self.database.direct, folder_id, uids)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            base = (
                select(message_t.c.uid, content.c.envelope, content.c.bodystructure, content.c.body)
                .join(content, content.c.id == message_t.c.content_id)
                .where(message_t.c.folder_id == row.id)
            )
            rows = _rows_for_uids(conn, base, uids)
            return {
                int(r[0]): CachedParts(from_column(r[1]), from_column(r[2]), from_column(r[3]))
                for r in rows
            }

    def envelopes(self, folder: str, uids: Sequence[int]) -> dict[int, str]:
        key = canonical(folder)
        if self.database.direct is not None:
            folder_id = self._fast_folder_id(key)
            with _gc_paused():
                return direct_ops.envelopes(self.database.direct, folder_id, uids)
        with _gc_paused(), self.database.read() as conn:
            row = self._folder_row(conn, key)
            base = (
                select(message_t.c.uid, content.c.envelope)
                .join(content, content.c.id == message_t.c.content_id)
                .where(message_t.c.folder_id == row.id)
            )
            return {int(r[0]): from_column(r[1]) for r in _rows_for_uids(conn, base, uids)}

    def store_flags(
        self,
        folder: str,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        unchanged_since: int | None = None,
    ) -> list[MessageInfo]:
        """Sets, adds or removes flags; messages whose modseq is above `unchanged_since`
        are left alone (RFC 7162 UNCHANGEDSINCE: the caller reports them MODIFIED), and
        so are those the change doesn't change. Returns the changed messages, with one
        new modseq."""
        if mode not in ("set", "add", "remove"):
            raise ValueError(f"unknown flag mode {mode!r}: use 'set', 'add' or 'remove'")
        key = canonical(folder)
        bits, keywords = flagbits.parse(flags)
        if self.database.direct is not None:
            return direct_ops.store_flags(
                self.database.direct, self.id, key, uids, mode, bits, keywords, unchanged_since
            )
        with self.database.write() as conn:
            row = self._folder_row(conn, key, lock=True)
            base = select(message_t.c.id, *_INFO_COLUMNS).where(message_t.c.folder_id == row.id)
            changes = []
            for msg in _rows_for_uids(conn, base, uids):
                if unchanged_since is not None and msg.modseq > unchanged_since:
                    continue
                new_bits, new_keywords = flagbits.apply(
                    mode, msg.system_flags, msg.keywords, bits, keywords
                )
                if new_bits != msg.system_flags or new_keywords != msg.keywords:
                    changes.append((msg, new_bits, new_keywords))
            if not changes:
                return []
            modseq = int(row.highest_modseq) + 1
            conn.execute(
                update(folder_t).where(folder_t.c.id == row.id).values(highest_modseq=modseq)
            )
            conn.execute(
                update(message_t)
                .where(message_t.c.id == bindparam("b_id"))
                .values(
                    system_flags=bindparam("b_bits"),
                    keywords=bindparam("b_keywords"),
                    modseq=modseq,
                ),
                [
                    {"b_id": msg.id, "b_bits": new_bits, "b_keywords": new_keywords}
                    for msg, new_bits, new_keywords in changes
                ],
            )
        changes.sort(key=lambda change: change[0].uid)
        return [
            _info((msg.uid, new_bits, new_keywords, *msg[4:7], modseq, msg.recent))
            for msg, new_bits, new_keywords in changes
        ]

    def copy(self, folder: str, uids: Sequence[int], destination: str) -> Copied:
        return self._transfer(folder, uids, destination, move=False)

    def move(self, folder: str, uids: Sequence[int], destination: str) -> Copied:
        """COPY and EXPUNGE of the source messages in one transaction (RFC 6851); into
        the folder itself too, where the messages get new UIDs (as Dovecot does)."""
        return self._transfer(folder, uids, destination, move=True)

    def _transfer(self, name: str, uids: Sequence[int], destination: str, *, move: bool) -> Copied:
        source_key, target_key = canonical(name), canonical(destination)
        with self.database.write() as conn:
            locked = conn.execute(
                select(*_FOLDER_COLUMNS)
                .where(
                    folder_t.c.mailbox_id == self.id,
                    folder_t.c.name.in_(sorted({source_key, target_key})),
                )
                .order_by(folder_t.c.id)
                .with_for_update(key_share=True)
            ).all()
            by_name = {row.name: row for row in locked}
            if source_key not in by_name:
                raise FolderNotFound(f"The folder '{source_key}' doesn't exist.")
            if target_key not in by_name:
                raise DestinationNotFound(f"The folder '{target_key}' doesn't exist.")
            source, target = by_name[source_key], by_name[target_key]
            base = select(
                message_t.c.id,
                message_t.c.uid,
                message_t.c.content_id,
                message_t.c.internal_date,
                message_t.c.tz_offset,
                message_t.c.size,
                message_t.c.system_flags,
                message_t.c.keywords,
            ).where(message_t.c.folder_id == source.id)
            found = sorted(_rows_for_uids(conn, base, uids), key=lambda r: r.uid)
            if not found:
                return Copied(int(target.uid_validity), ())
            first = int(target.uid_next)
            modseq = int(target.highest_modseq) + 1
            conn.execute(
                update(folder_t)
                .where(folder_t.c.id == target.id)
                .values(uid_next=first + len(found), highest_modseq=modseq)
            )
            conn.execute(
                insert(message_t),
                [
                    {
                        "folder_id": target.id,
                        "uid": first + i,
                        "content_id": msg.content_id,
                        "internal_date": msg.internal_date,
                        "tz_offset": msg.tz_offset,
                        "size": msg.size,
                        "system_flags": msg.system_flags,
                        "keywords": msg.keywords,
                        "modseq": modseq,
                        "recent": True,
                    }
                    for i, msg in enumerate(found)
                ],
            )
            if move:
                self._remove(conn, source, found, keep_content=True)
        return Copied(
            int(target.uid_validity), tuple((int(m.uid), first + i) for i, m in enumerate(found))
        )

    def _remove(
        self, conn: Connection, row: Any, found: Sequence[Any], *, keep_content: bool = False
    ) -> None:
        """Deletes the messages `found` (rows with id, uid, content_id) from the folder
        `row`, leaving tombstones at a new modseq."""
        modseq = int(row.highest_modseq) + 1
        ids = [m.id for m in found]
        for chunk in _chunks(ids):
            conn.execute(delete(message_t).where(message_t.c.id.in_(chunk)))
        conn.execute(
            insert(expunged),
            [{"folder_id": row.id, "uid": m.uid, "modseq": modseq} for m in found],
        )
        conn.execute(update(folder_t).where(folder_t.c.id == row.id).values(highest_modseq=modseq))
        if not keep_content:
            _drop_orphans(conn, [m.content_id for m in found])

    def expunge(self, folder: str, uids: Sequence[int] | None = None) -> list[int]:
        key = canonical(folder)
        if self.database.direct is not None:
            return direct_ops.expunge(self.database.direct, self.id, key, uids)
        with self.database.write() as conn:
            row = self._folder_row(conn, key, lock=True)
            base = select(message_t.c.id, message_t.c.uid, message_t.c.content_id).where(
                message_t.c.folder_id == row.id,
                message_t.c.system_flags.bitwise_and(flagbits.DELETED) != 0,
            )
            found = (
                list(conn.execute(base).all()) if uids is None else _rows_for_uids(conn, base, uids)
            )
            if not found:
                return []
            found.sort(key=lambda r: r.uid)
            self._remove(conn, row, found)
        return [int(m.uid) for m in found]
