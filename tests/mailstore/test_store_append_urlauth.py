"""The store's MULTIAPPEND (`append_many`: one transaction, all or none) and its URLAUTH
keys (per folder and UIDVALIDITY, kept in the database so that another process, or the
same one after a restart, sees them), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from casarray.mailstore.interface import DestinationNotFound, FolderNotFound, MessageTooLarge
from casarray.mailstore.store import SqlDatabaseStore, SqlMailboxStore
from tests.mailstore.test_store import ALICE, BOB, box, db, location, make_message

__all__ = ["box", "db", "location"]  # the fixtures, shared with test_store


def test_append_many_stores_every_message_with_ascending_uids(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1))
    before = box.folder("INBOX")
    when = datetime(2024, 2, 1, 8, 0, tzinfo=UTC)
    appended = box.append_many(
        "inbox",
        [(make_message(2), ["\\Seen"], when), (make_message(3), ["$Work"], None)],
    )
    assert [a.uid for a in appended] == [2, 3]
    assert {a.uid_validity for a in appended} == {before.uid_validity}
    after = box.folder("INBOX")
    assert (after.exists, after.uid_next) == (3, 4)
    assert after.highest_modseq == before.highest_modseq + 1  # one change
    infos = box.messages("INBOX")
    assert [sorted(i.flags) for i in infos[1:]] == [["\\Seen"], ["$Work"]]
    assert infos[1].internal_date == when
    assert box.body("INBOX", 3) == make_message(3)
    assert b"message 2" in box.cached("INBOX", [2])[2].envelope.encode()


def test_append_many_is_all_or_none(db: SqlDatabaseStore, box: SqlMailboxStore) -> None:
    too_big = make_message(9, size=db.max_message_size + 1)
    with pytest.raises(MessageTooLarge):
        box.append_many("INBOX", [(make_message(1), [], None), (too_big, [], None)])
    with pytest.raises(DestinationNotFound):
        box.append_many("Nowhere", [(make_message(1), [], None), (make_message(2), [], None)])
    folder = box.folder("INBOX")
    assert (folder.exists, folder.uid_next) == (0, 1)


def test_urlauth_keys_are_per_folder_kept_and_reset(db: SqlDatabaseStore, location: str) -> None:
    box = db.create_mailbox(ALICE)
    other = db.create_mailbox(BOB)
    assert box.urlauth_key("INBOX") is None
    key = box.urlauth_key("inbox", create=True)
    assert key is not None and len(key) == 32
    assert box.urlauth_key("INBOX", create=True) == key  # made once
    sent = box.urlauth_key("Sent", create=True)
    assert sent not in (None, key)
    assert other.urlauth_key("INBOX") is None  # another mailbox has its own

    reopened = SqlDatabaseStore(location)  # another process, or after a restart
    try:
        assert reopened.mailbox(ALICE).urlauth_key("INBOX") == key
    finally:
        reopened.engine.dispose()

    box.reset_urlauth_keys("INBOX")
    assert box.urlauth_key("INBOX") is None
    assert box.urlauth_key("Sent") == sent
    box.reset_urlauth_keys()
    assert box.urlauth_key("Sent") is None
    with pytest.raises(FolderNotFound):
        box.urlauth_key("Nowhere", create=True)
    with pytest.raises(FolderNotFound):
        box.reset_urlauth_keys("Nowhere")


def test_a_folder_made_again_has_a_new_key(box: SqlMailboxStore) -> None:
    box.create_folder("Projects")
    key = box.urlauth_key("Projects", create=True)
    box.delete_folder("Projects")
    box.create_folder("Projects")  # a new UIDVALIDITY
    assert box.urlauth_key("Projects") is None
    assert box.urlauth_key("Projects", create=True) != key
