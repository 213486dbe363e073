"""EWS on a mailbox database whose disk fills up (DB01's file on a 4 MB tmpfs, really
filled; root), through the ASGI app as a client sees it: CreateItem and UpdateItem
answer their response message with ResponseCode ErrorInsufficientResources
(MS-OXWSCDATA: the server is short of resources; try again later) and change nothing;
FindItem and GetItem keep working; once the filler is removed the same requests
succeed, with no restart; the database passes SQLite's integrity check and what was
stored before is served byte for byte."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.store import close_all
from tests.access.ews import ALICE, NS, b64, call, error_of, ews_client, messages, ok
from tests.access.ews.test_write_operations import (
    DRAFT,
    RECEIVED,
    SET_READ,
    find_ids,
    get_item,
    ids_of,
    update,
)
from tests.access.http import build_org
from tests.access.http.test_api import PASSWORD, cheap_hash, mailbox_store
from tests.small_disk import SmallDisk, small_disk

pytestmark = pytest.mark.root

SUBJECT = (
    "<t:SetItemField><t:FieldURI FieldURI='item:Subject'/><t:Message><t:Subject>Later"
    "</t:Subject></t:Message></t:SetItemField>"
)


def create_in_inbox(data: bytes) -> str:
    return (
        "<m:CreateItem MessageDisposition='SaveOnly'><m:SavedItemFolderId>"
        "<t:DistinguishedFolderId Id='inbox'/></m:SavedItemFolderId><m:Items><t:Message>"
        f"<t:MimeContent CharacterSet='UTF-8'>{b64(data)}</t:MimeContent>"
        "</t:Message></m:Items></m:CreateItem>"
    )


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def disk(casarray_home: Path) -> Iterator[SmallDisk]:
    # the databases of a directory on SQLite are files under $CASARRAY_HOME/databases
    with small_disk(casarray_home / "databases", "4m") as mounted:
        yield mounted


@pytest.fixture
def org(disk: SmallDisk, bj: Directory) -> Iterator[Directory]:
    d = build_org(bj, cheap_hash(PASSWORD))
    yield d
    close_all()


@pytest.fixture
def store(org: Directory) -> MailboxStore:
    store = mailbox_store(org, "alice")
    store.append("INBOX", RECEIVED)
    return store


def test_create_and_update_item_on_a_full_disk(
    org: Directory, store: MailboxStore, disk: SmallDisk
) -> None:
    big = RECEIVED.replace(b"Noon?", b"Noon?\r\n" + b"Pictures of the venue.\r\n" * 12_000)
    with ews_client(org, ALICE) as c:
        [draft] = ok(call(c, DRAFT))  # acknowledged before the disk fills
        draft_id = ids_of(draft)
        [received] = find_ids(c, "inbox")
        before = {
            folder: store.bodies(folder, [m.uid for m in store.messages(folder)])
            for folder in ("INBOX", "Drafts")
        }

        disk.fill()
        for request in (
            create_in_inbox(big),  # CreateItem SaveOnly
            DRAFT,  # CreateItem of a draft from properties
            update(received, SET_READ),  # UpdateItem: a flag
            update(draft_id, SUBJECT),  # UpdateItem: a draft's content (a new message)
        ):
            [msg] = messages(call(c, request))
            code, text = error_of(msg)
            assert code == "ErrorInsufficientResources", text
            assert "disk space" in text and "Try again later" in text
        # reads go on
        assert find_ids(c, "inbox") == [received]
        got = get_item(c, draft_id)
        assert got.findtext(".//t:Subject", namespaces=NS) == "Plans"
        assert {
            folder: store.bodies(folder, [m.uid for m in store.messages(folder)])
            for folder in ("INBOX", "Drafts")
        } == before  # nothing changed
        assert store.messages("INBOX")[0].flags == frozenset()  # not read

        disk.free_up()  # room again: the same requests work, no restart
        [created] = ok(call(c, create_in_inbox(big)))
        raw = get_item(c, ids_of(created)).findtext(".//t:MimeContent", namespaces=NS) or ""
        assert base64.b64decode(raw).endswith(big.split(b"\r\n\r\n", 1)[1])  # its body
        ok(call(c, update(received, SET_READ)))
        [changed] = ok(call(c, update(draft_id, SUBJECT)))
        assert get_item(c, ids_of(changed)).findtext(".//t:Subject", namespaces=NS) == "Later"
    assert store.bodies("INBOX", [1]) == {1: RECEIVED}
    assert "\\Seen" in store.messages("INBOX")[0].flags
    location = org.databases.one("DB01").store_location
    with sqlite3.connect(location) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
