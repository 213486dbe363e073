"""Mailbox provisioning (`mailstore.provisioning`): a mailbox made only in the directory
(`Directory.mailboxes.new()`, no shell) gets its folders in its database's store the
first time it is opened, by an IMAP login or any other path; New-Mailbox's eager
provisioning; purging. On SQLite and PostgreSQL (directory and store alike)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.access.imap.backend import LoginOk
from casarray.access.imap.directory_backend import DirectoryBackend
from casarray.directory import Directory
from casarray.directory.objects import Mailbox
from casarray.mailstore.interface import DEFAULT_FOLDERS, DatabaseUnavailable, MailboxStore
from casarray.mailstore.provisioning import open_mailbox, provision_mailbox, purge_mailbox
from casarray.mailstore.store import close_all, store_for
from tests.mailstore.test_store import new_location

# What a new mailbox has held since the store was written: keep it so.
FOLDERS = [
    ("INBOX", None),
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
]


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture
def org(
    bj: Directory, backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Directory]:
    """DB01 (MBX01, BJ, mounted; its store on the directory's back end) and DB02
    (dismounted), made before any array: CAS01 serves DB01's users."""
    locations = new_location(backend, request, tmp_path)
    bj.databases.new("DB01", "MBX01", mounted=True, store_location=next(locations))
    bj.databases.new("DB02", "MBX01", mounted=False, store_location=str(tmp_path / "DB02.db"))
    yield bj
    close_all()
    locations.close()


def new_mailbox(d: Directory, alias: str, password_hash: str, database: str = "DB01") -> Mailbox:
    """A mailbox made the way a Python caller makes one: in the directory only."""
    return d.mailboxes.new(
        name=alias.title(), alias=alias, database=database, password_hash=password_hash
    )


def assert_default_folders(box: MailboxStore, created_after: int) -> None:
    folders = {f.name: f for f in box.folders()}
    in_order = [folders[name] for name, _ in FOLDERS]
    assert [(f.name, f.special_use) for f in in_order] == FOLDERS
    assert sorted(folders) == sorted(name for name, _ in FOLDERS)
    assert all(f.subscribed and f.exists == 0 and f.uid_next == 1 for f in in_order)
    validities = [f.uid_validity for f in in_order]
    assert validities == sorted(set(validities))  # ascending in that order, all different
    assert validities[0] >= created_after
    assert sorted(box.subscriptions()) == sorted(name for name, _ in FOLDERS)


def test_default_folders_are_what_they_were() -> None:
    assert list(DEFAULT_FOLDERS) == FOLDERS


def test_a_directory_only_mailbox_gets_its_folders_at_first_imap_login(
    org: Directory, password: str, password_hash: str
) -> None:
    erin = new_mailbox(org, "erin", password_hash)
    database = org.databases.one("DB01")
    assert not store_for(database).has_mailbox(erin.guid)  # the directory alone made it
    before = int(time.time())
    backend = DirectoryBackend(org, "CAS01")
    try:
        result = backend.login("erin", password, "127.0.0.1")
        assert isinstance(result, LoginOk)
        assert store_for(database).has_mailbox(erin.guid)
        assert_default_folders(result.mailbox, before)
        first = {f.name: f.uid_validity for f in result.mailbox.folders()}
        # The next login, and any other path, open the same mailbox: nothing made again.
        again = backend.login("erin@lab.net", password, "127.0.0.1")
        assert isinstance(again, LoginOk)
        assert {f.name: f.uid_validity for f in again.mailbox.folders()} == first
        opened = open_mailbox(database, erin.guid)
        assert {f.name: f.uid_validity for f in opened.folders()} == first
    finally:
        backend.close()


def test_open_mailbox_makes_the_folders_on_first_use(org: Directory, password_hash: str) -> None:
    finn = new_mailbox(org, "finn", password_hash)
    before = int(time.time())
    box = open_mailbox(org.databases.one("DB01"), finn.guid)
    assert_default_folders(box, before)
    box.append("INBOX", b"Subject: hello\r\n\r\nhi\r\n")
    assert open_mailbox(org.databases.one("DB01"), finn.guid).folder("INBOX").exists == 1


def test_provision_mailbox_now_when_mounted_else_at_first_use(
    org: Directory, password_hash: str
) -> None:
    gus = new_mailbox(org, "gus", password_hash)
    before = int(time.time())
    box = provision_mailbox(org.databases.one("DB01"), gus.guid)
    assert box is not None
    assert_default_folders(box, before)
    assert provision_mailbox(org.databases.one("DB01"), gus.guid) is not None  # as it is
    assert_default_folders(open_mailbox(org.databases.one("DB01"), gus.guid), before)

    hal = new_mailbox(org, "hal", password_hash, database="DB02")
    assert provision_mailbox(org.databases.one("DB02"), hal.guid) is None
    with pytest.raises(DatabaseUnavailable):
        open_mailbox(org.databases.one("DB02"), hal.guid)
    org.databases.set_mounted("DB02", True)
    database = org.databases.one("DB02")
    assert not store_for(database).has_mailbox(hal.guid)
    assert_default_folders(open_mailbox(database, hal.guid), before)


def test_purge_mailbox(org: Directory, password_hash: str) -> None:
    ivy = new_mailbox(org, "ivy", password_hash)
    database = org.databases.one("DB01")
    open_mailbox(database, ivy.guid).append("INBOX", b"Subject: x\r\n\r\nx\r\n")
    purge_mailbox(database, ivy.guid)
    assert not store_for(database).has_mailbox(ivy.guid)
    purge_mailbox(database, ivy.guid)  # nothing there: nothing to do
    with pytest.raises(DatabaseUnavailable):
        purge_mailbox(org.databases.one("DB02"), ivy.guid)
