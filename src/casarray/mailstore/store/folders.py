"""A mailbox's folder hierarchy: CREATE, DELETE, RENAME (INBOX too), LIST's folders
with their counts, subscriptions and per-folder statistics (RFC 3501 semantics as the
package docstring lists them).

Hierarchy changes lock the mailbox row first, and message changes (in `mailbox`) the
folder row, always in that order, so that two sessions never deadlock on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from casarray.mailstore.interface import (
    Folder,
    FolderExists,
    FolderHasChildren,
    FolderInUse,
    FolderNotFound,
    FolderStatistics,
    MailstoreError,
)
from casarray.mailstore.names import INBOX, canonical, is_under, parents, sort_key
from casarray.mailstore.schema import expunged, mailbox, subscription
from casarray.mailstore.schema import folder as folder_t
from casarray.mailstore.schema import message as message_t
from casarray.mailstore.store import direct_ops
from casarray.mailstore.store.rows import (
    _COUNTS,
    _FOLDER_BY_NAME,
    _FOLDER_COLUMNS,
    FolderRow,
    _drop_orphans,
    _insert_folder,
)

if TYPE_CHECKING:
    from casarray.mailstore.store.database import SqlDatabaseStore

SPECIAL_USES = ("\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash")


class MailboxFolders:
    """One mailbox's folders and subscriptions: the folder half of `SqlMailboxStore`,
    with the folder-row lookups its message operations share."""

    def __init__(self, database: SqlDatabaseStore, guid: str, mailbox_id: int) -> None:
        self.database = database
        self.guid = guid
        self.id = mailbox_id
        self._folder_ids: dict[str, int] = {}  # each folder's id at its last row read

    # -- helpers ------------------------------------------------------------------

    def _folder_row(
        self,
        conn: Connection,
        key: str,
        *,
        lock: bool = False,
        missing: type[FolderNotFound] = FolderNotFound,
    ) -> Any:
        if lock:
            stmt = select(*_FOLDER_COLUMNS).where(
                folder_t.c.mailbox_id == self.id, folder_t.c.name == key
            )
            row = conn.execute(stmt.with_for_update(key_share=True)).first()
        else:  # the hot path (every IMAP command's change check): a statement built once
            row = conn.execute(_FOLDER_BY_NAME, {"mailbox_id": self.id, "name": key}).first()
        if row is None:
            raise missing(f"The folder '{key}' doesn't exist.")
        return row

    def _fast_folder_row(self, key: str) -> FolderRow:
        row = self.database.folder_by_name(self.id, key)
        if row is None:
            self._folder_ids.pop(key, None)
            raise FolderNotFound(f"The folder '{key}' doesn't exist.")
        self._folder_ids[key] = row.id
        return row

    def _fast_folder_id(self, key: str) -> int:
        """The folder's id as its row was last read here, else read now. Every IMAP
        command starts with reading the selected folder's row (its change check), so
        the reads of message data that follow need no lookup of their own; a folder
        deleted meanwhile has no messages left under its old id (they go with it), and
        the next change check finds it gone."""
        found = self._folder_ids.get(key)
        return found if found is not None else self._fast_folder_row(key).id

    def _lock_mailbox(self, conn: Connection) -> None:
        """Serialises hierarchy changes of this mailbox (PostgreSQL: FOR NO KEY UPDATE,
        which doesn't block inserts that refer to the mailbox)."""
        found = conn.execute(
            select(mailbox.c.id).where(mailbox.c.id == self.id).with_for_update(key_share=True)
        ).first()
        if found is None:
            raise FolderNotFound("This mailbox has been removed from its database.")

    def _folder_rows(self, conn: Connection) -> dict[str, Any]:
        rows = conn.execute(select(*_FOLDER_COLUMNS).where(folder_t.c.mailbox_id == self.id))
        return {row.name: row for row in rows}

    def _subscribed(self, conn: Connection) -> set[str]:
        rows = conn.execute(select(subscription.c.name).where(subscription.c.mailbox_id == self.id))
        return set(rows.scalars())

    @staticmethod
    def _folder(row: Any, counts: Sequence[int], subscribed: bool, has_children: bool) -> Folder:
        exists_, recent, unseen = counts
        return Folder(
            name=row.name,
            uid_validity=int(row.uid_validity),
            uid_next=int(row.uid_next),
            highest_modseq=int(row.highest_modseq),
            exists=int(exists_),
            recent=int(recent),
            unseen=int(unseen),
            special_use=row.special_use,
            subscribed=subscribed,
            has_children=has_children,
        )

    # -- folders --------------------------------------------------------------------

    def folders(self) -> list[Folder]:
        """Every folder, in hierarchy order (INBOX first; see `names.sort_key`)."""
        if self.database.direct is not None:
            rows, counts, subscribed = direct_ops.all_folders(self.database.direct, self.id)
        else:
            rows, counts, subscribed = self._all_folders()
        with_children = {parent for name in rows for parent in parents(name)}
        return [
            self._folder(
                rows[name],
                counts.get(rows[name].id, (0, 0, 0)),
                name in subscribed,
                name in with_children,
            )
            for name in sorted(rows, key=sort_key)
        ]

    def _all_folders(self) -> tuple[dict[str, Any], dict[int, tuple[int, int, int]], set[str]]:
        with self.database.read() as conn:
            rows = self._folder_rows(conn)
            ids = select(folder_t.c.id).where(folder_t.c.mailbox_id == self.id).scalar_subquery()
            counts = {
                row[0]: (int(row[1]), int(row[2]), int(row[3]))
                for row in conn.execute(
                    select(message_t.c.folder_id, *_COUNTS)
                    .where(message_t.c.folder_id.in_(ids))
                    .group_by(message_t.c.folder_id)
                )
            }
            subscribed = self._subscribed(conn)
        return rows, counts, subscribed

    def folder(self, name: str) -> Folder:
        key = canonical(name)
        if self.database.direct is not None:
            row, numbers, children, subscribed_ = direct_ops.folder_counts(
                self.database.direct, self.id, key
            )
            return self._folder(row, numbers, subscribed_, children)
        with self.database.read() as conn:
            row = self._folder_row(conn, key)
            counts = conn.execute(select(*_COUNTS).where(message_t.c.folder_id == row.id)).one()
            prefix = key + "/"
            has_children = conn.execute(
                select(
                    exists().where(
                        folder_t.c.mailbox_id == self.id,
                        func.substr(folder_t.c.name, 1, len(prefix)) == prefix,
                    )
                )
            ).scalar()
            subscribed = conn.execute(
                select(
                    exists().where(subscription.c.mailbox_id == self.id, subscription.c.name == key)
                )
            ).scalar()
        return self._folder(row, counts, bool(subscribed), bool(has_children))

    def create_folder(self, name: str, special_use: str | None = None) -> Folder:
        key = canonical(name, creating=True)
        if special_use is not None:
            matches = [use for use in SPECIAL_USES if use.lower() == special_use.lower()]
            if not matches:
                raise MailstoreError(
                    f"'{special_use}' is not a special use ({', '.join(SPECIAL_USES)})."
                )
            special_use = matches[0]
        try:
            with self.database.write() as conn:
                self._lock_mailbox(conn)
                existing = self._folder_rows(conn)
                if key in existing:
                    raise FolderExists(f"The folder '{key}' already exists.")
                for parent in parents(key):
                    if parent not in existing:
                        _insert_folder(conn, self.id, parent, None)
                _insert_folder(conn, self.id, key, special_use)
        except IntegrityError as exc:
            raise FolderExists(f"The folder '{key}' already exists.") from exc
        return self.folder(key)

    def delete_folder(self, name: str) -> None:
        key = canonical(name)
        if key == INBOX:
            raise FolderInUse("INBOX can't be deleted.")
        with self.database.write() as conn:
            self._lock_mailbox(conn)
            existing = self._folder_rows(conn)
            if key not in existing:
                raise FolderNotFound(f"The folder '{key}' doesn't exist.")
            children = sorted(n for n in existing if is_under(n, key))
            if children:
                raise FolderHasChildren(
                    f"The folder '{key}' has subfolders ({', '.join(children[:5])}"
                    f"{', ...' if len(children) > 5 else ''}): delete them first."
                )
            folder_id = existing[key].id
            content_ids = list(
                conn.execute(
                    select(message_t.c.content_id).where(message_t.c.folder_id == folder_id)
                ).scalars()
            )
            conn.execute(delete(folder_t).where(folder_t.c.id == folder_id))
            _drop_orphans(conn, content_ids)

    def rename_folder(self, old: str, new: str) -> None:
        old_key, new_key = canonical(old), canonical(new, creating=True)
        if old_key == new_key:
            raise FolderInUse(f"The folder '{old_key}' already has that name.")
        if new_key == INBOX:
            raise FolderExists("INBOX already exists.")
        if is_under(new_key, old_key):
            raise FolderInUse(f"The folder '{old_key}' can't be moved into itself.")
        with self.database.write() as conn:
            self._lock_mailbox(conn)
            existing = self._folder_rows(conn)
            if old_key not in existing:
                raise FolderNotFound(f"The folder '{old_key}' doesn't exist.")
            if old_key == INBOX:
                moving = {INBOX: new_key}
            else:
                moving = {
                    name: new_key + name[len(old_key) :]
                    for name in existing
                    if name == old_key or is_under(name, old_key)
                }
            clash = sorted(set(moving.values()) & set(existing))
            if clash:
                raise FolderExists(f"The folder '{clash[0]}' already exists.")
            for parent in parents(new_key):
                if parent not in existing:
                    _insert_folder(conn, self.id, parent, None)
            if old_key == INBOX:
                self._rename_inbox(conn, existing[INBOX], new_key)
                return
            for name, target in moving.items():
                conn.execute(
                    update(folder_t).where(folder_t.c.id == existing[name].id).values(name=target)
                )
            subscribed = self._subscribed(conn)
            for name in sorted(subscribed):
                if name == old_key or is_under(name, old_key):
                    target = new_key + name[len(old_key) :]
                    where = (subscription.c.mailbox_id == self.id, subscription.c.name == name)
                    if target in subscribed:
                        conn.execute(delete(subscription).where(*where))
                    else:
                        conn.execute(update(subscription).where(*where).values(name=target))

    def _rename_inbox(self, conn: Connection, inbox: Any, new_key: str) -> None:
        """RFC 3501 RENAME INBOX: a new folder gets INBOX's messages; INBOX stays, empty
        (its UIDVALIDITY and UIDNEXT unchanged, the messages reported expunged)."""
        inbox = self._folder_row(conn, INBOX, lock=True)
        modseq = int(inbox.highest_modseq) + 1
        new_id = _insert_folder(
            conn, self.id, new_key, None, uid_next=int(inbox.uid_next), highest_modseq=modseq
        )
        uids = list(
            conn.execute(select(message_t.c.uid).where(message_t.c.folder_id == inbox.id)).scalars()
        )
        if not uids:
            return
        conn.execute(
            update(message_t)
            .where(message_t.c.folder_id == inbox.id)
            .values(folder_id=new_id, modseq=modseq)
        )
        conn.execute(
            insert(expunged),
            [{"folder_id": inbox.id, "uid": uid, "modseq": modseq} for uid in uids],
        )
        conn.execute(
            update(folder_t).where(folder_t.c.id == inbox.id).values(highest_modseq=modseq)
        )

    def subscribe(self, name: str, subscribed: bool) -> None:
        key = canonical(name)
        with self.database.write() as conn:
            where = (subscription.c.mailbox_id == self.id, subscription.c.name == key)
            present = conn.execute(select(exists().where(*where))).scalar()
            if subscribed and not present:
                conn.execute(insert(subscription).values(mailbox_id=self.id, name=key))
            elif not subscribed and present:
                conn.execute(delete(subscription).where(*where))

    def subscriptions(self) -> list[str]:
        with self.database.read() as conn:
            return sorted(self._subscribed(conn), key=sort_key)

    def storage_used(self) -> int:
        """The bytes of every message in the mailbox (its quota usage), in one query."""
        if self.database.direct is not None:
            return direct_ops.storage_used(self.database.direct, self.id)
        with self.database.read() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(message_t.c.size), 0))
                .select_from(message_t.join(folder_t, message_t.c.folder_id == folder_t.c.id))
                .where(folder_t.c.mailbox_id == self.id)
            ).scalar_one()
        return int(total)

    def statistics(self) -> list[FolderStatistics]:
        with self.database.read() as conn:
            rows = conn.execute(
                select(
                    folder_t.c.name,
                    folder_t.c.special_use,
                    func.count(message_t.c.id),
                    func.coalesce(func.sum(message_t.c.size), 0),
                )
                .select_from(folder_t.outerjoin(message_t, message_t.c.folder_id == folder_t.c.id))
                .where(folder_t.c.mailbox_id == self.id)
                .group_by(folder_t.c.id, folder_t.c.name, folder_t.c.special_use)
            ).all()
        stats = [FolderStatistics(r[0], r[1], int(r[2]), int(r[3])) for r in rows]
        return sorted(stats, key=lambda s: sort_key(s.name))
