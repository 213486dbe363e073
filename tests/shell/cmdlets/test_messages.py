"""Mailbox content through the shell: Import-MailboxMessage (.eml, folder, mbox, errors,
-WhatIf), Get-MailboxFolderStatistics, and New-/Remove-Mailbox making and purging a
mailbox's folders in its database's store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.directory.objects import Mailbox
from casarray.mailstore.importing import split_mbox
from casarray.mailstore.store import SqlMailboxStore, close_all, store_for
from casarray.shell.cmdlets.messages import byte_quantified
from tests.shell.cmdlet_shell import Shell, what_if

SECRET = '(ConvertTo-SecureString "P@ssw0rd-1" -AsPlainText -Force)'


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    close_all()


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    """DB01 (mounted) with alice and bob, DB02 (dismounted) with dora."""
    bj.databases.new("DB01", "MBX01", mounted=True)
    bj.databases.new("DB02", "MBX01", mounted=False)
    bj.mailboxes.new(name="Alice Wang", alias="alice", database="DB01", password_hash=password_hash)
    bj.mailboxes.new(name="Bob Li", alias="bob", database="DB01", password_hash=password_hash)
    bj.mailboxes.new(name="Dora Fu", alias="dora", database="DB02", password_hash=password_hash)
    return bj


def store_of(d: Directory, alias: str) -> SqlMailboxStore:
    mailbox: Mailbox = d.mailboxes.one(alias)
    return store_for(d.databases.one(mailbox.database)).mailbox(mailbox.guid)


def eml(n: int, date: str = "Mon, 7 Feb 1994 21:52:25 -0800") -> bytes:
    return (
        f"From: sender{n}@example.com\nTo: alice@lab.net\nSubject: Test {n}\n"
        f"Date: {date}\n\nHello {n}.\n"
    ).encode()


MBOX = (
    b"From sender@example.com Thu Nov 24 19:53:00 2005\n"
    b"From: sender@example.com\nSubject: one\nStatus: RO\nX-Status: A\n\n"
    b"First body.\n>From the quoted line.\n>>From twice quoted.\n\n"
    b"From other@example.com Fri Nov 25 08:00:01 2005\n"
    b"From: other@example.com\nSubject: two\n\n"
    b"Second body.\nFrom here, not a separator (no blank line before).\n\n"
    b"From third@example.com Sat Nov 26 10:00:00 2005\n"
    b"Subject: three\n\nThird.\n"
)


# -- Import-MailboxMessage -----------------------------------------------------------------


def test_import_one_eml(shell: Shell, org: Directory, tmp_path: Path) -> None:
    path = tmp_path / "welcome.eml"
    path.write_bytes(eml(1))
    result = shell.ok(f"Import-MailboxMessage -Identity alice -Path '{path}'")
    assert "alice" in result.out and "INBOX" in result.out
    obj = shell.ok(f"Import-MailboxMessage alice '{path}' | Select-Object -ExpandProperty Imported")
    assert obj.out.strip() == "1"
    box = store_of(org, "alice")
    first, second = box.messages("INBOX")
    assert (first.uid, second.uid) == (1, 2)
    assert box.body("INBOX", 1) == eml(1).replace(b"\n", b"\r\n")
    assert first.internal_date == datetime(1994, 2, 8, 5, 52, 25, tzinfo=UTC)
    assert first.size == len(eml(1)) + eml(1).count(b"\n")


def test_import_folder_of_eml_into_a_new_folder(
    shell: Shell, org: Directory, tmp_path: Path
) -> None:
    source = tmp_path / "export"
    source.mkdir()
    for n in (3, 1, 2):
        (source / f"m{n}.eml").write_bytes(eml(n))
    (source / "notes.md").write_text("not a message")
    result = shell.ok(
        f"$r = Import-MailboxMessage bob -Path '{source}' -Folder Projects/2024; "
        "$r.Imported; $r.Folder; $r.Mailbox"
    )
    assert result.out.split() == ["3", "Projects/2024", "bob"]
    box = store_of(org, "bob")
    subjects = [
        box.body("Projects/2024", m.uid).split(b"\r\n")[2] for m in box.messages("Projects/2024")
    ]
    assert subjects == [b"Subject: Test 1", b"Subject: Test 2", b"Subject: Test 3"]
    assert "Projects" in [f.name for f in box.folders()]
    assert store_of(org, "alice").messages("INBOX") == []


def test_import_mbox(shell: Shell, org: Directory, tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    path.write_bytes(MBOX)
    result = shell.ok(f"(Import-MailboxMessage alice -Path '{path}' -Folder archive).Imported")
    assert result.out.strip() == "3"
    box = store_of(org, "alice")
    messages = box.messages("archive")
    assert [m.uid for m in messages] == [1, 2, 3]
    first = box.body("archive", 1)
    assert first.endswith(b"First body.\r\nFrom the quoted line.\r\n>From twice quoted.\r\n")
    assert b"\n\n" not in first.replace(b"\r\n", b"")
    assert box.body("archive", 2).endswith(
        b"Second body.\r\nFrom here, not a separator (no blank line before).\r\n"
    )
    assert box.body("archive", 3) == b"Subject: three\r\n\r\nThird.\r\n"
    assert messages[0].flags == frozenset({"\\Seen", "\\Answered"})
    assert messages[1].flags == frozenset()
    assert messages[0].internal_date == datetime(2005, 11, 24, 19, 53, tzinfo=UTC)
    assert messages[2].internal_date == datetime(2005, 11, 26, 10, 0, tzinfo=UTC)


def test_split_mbox_keeps_crlf_and_an_empty_file() -> None:
    data = b"From a Thu Nov 24 19:53:00 2005\r\nSubject: x\r\n\r\nbody\r\n\r\n"
    assert list(split_mbox(data)) == [
        (b"From a Thu Nov 24 19:53:00 2005\r\n", b"Subject: x\r\n\r\nbody\r\n")
    ]
    assert list(split_mbox(b"")) == []


def test_import_bad_path(shell: Shell, org: Directory, tmp_path: Path) -> None:
    missing = tmp_path / "nope.eml"
    result = shell.run(f"Import-MailboxMessage alice -Path '{missing}'")
    error = result.error()
    assert error.category == "ObjectNotFound"
    assert f"Cannot find path '{missing}' because it does not exist." in error.message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (
        "has no .eml files" in shell.run(f"Import-MailboxMessage alice '{empty}'").error().message
    )
    assert store_of(org, "alice").messages("INBOX") == []


def test_import_unknown_mailbox(shell: Shell, org: Directory, tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(eml(1))
    assert shell.run(f"Import-MailboxMessage zed '{path}'").error().category == "ObjectNotFound"


def test_import_what_if(shell: Shell, org: Directory, tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    path.write_bytes(MBOX)
    result = shell.ok(f"Import-MailboxMessage alice -Path '{path}' -Folder New -WhatIf")
    assert result.out.strip() == (
        f'What if: Performing the operation "Import 3 messages from {path}" on target "alice\\New".'
    )
    box = store_of(org, "alice")
    assert box.messages("INBOX") == [] and "New" not in [f.name for f in box.folders()]


def test_import_into_a_dismounted_database(shell: Shell, org: Directory, tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(eml(1))
    error = shell.run(f"Import-MailboxMessage dora '{path}'").error()
    assert error.category == "ResourceUnavailable"
    assert "dismounted" in error.message and "Mount-Database DB02" in error.message


def test_import_skips_messages_over_the_limit(shell: Shell, org: Directory, tmp_path: Path) -> None:
    source = tmp_path / "big"
    source.mkdir()
    (source / "a.eml").write_bytes(eml(1))
    (source / "b.eml").write_bytes(eml(2) + b"x" * 2000 + b"\n")
    database = org.databases.one("DB01")
    store_for(database).max_message_size = 1000
    result = shell.run(f"$r = Import-MailboxMessage alice '{source}'; $r.Imported; $r.Skipped")
    assert result.out.split() == ["1", "1"]
    error = result.error()
    assert error.category == "LimitsExceeded" and "b.eml" in error.message


def test_import_from_the_pipeline(shell: Shell, org: Directory, tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(eml(1))
    result = shell.ok(f"Get-Mailbox -Database DB01 | Import-MailboxMessage -Path '{path}'")
    assert "alice" in result.out and "bob" in result.out
    assert len(store_of(org, "bob").messages("INBOX")) == 1


# -- Get-MailboxFolderStatistics --------------------------------------------------------------


def test_folder_statistics(shell: Shell, org: Directory) -> None:
    box = store_of(org, "alice")
    box.create_folder("INBOX/Receipts")
    box.append("INBOX", b"Subject: a\r\n\r\n" + b"x" * 1522)
    box.append("INBOX/Receipts", b"Subject: b\r\n\r\nb\r\n")
    box.append("Sent", b"Subject: c\r\n\r\nc\r\n")
    result = shell.ok("Get-MailboxFolderStatistics -Identity alice")
    lines = [line for line in result.out.splitlines() if line.strip()]
    assert lines[0].split() == ["FolderPath", "ItemsInFolder", "FolderSize"]
    assert lines[2].split()[:2] == ["/Inbox", "1"]
    assert "1.5 KB (1,536 bytes)" in lines[2]
    rows = shell.ok(
        "Get-MailboxFolderStatistics alice | ForEach-Object "
        '{ "$($_.Name)|$($_.FolderPath)|$($_.FolderType)|$($_.ItemsInFolder)|'
        '$($_.ItemsInFolderAndSubfolders)|$($_.Identity)" }'
    ).out.splitlines()
    assert rows == [
        "Inbox|/Inbox|Inbox|1|2|alice\\Inbox",
        "Receipts|/Inbox/Receipts|User Created|1|1|alice\\Inbox/Receipts",
        "Archive|/Archive|Archive|0|0|alice\\Archive",
        "Drafts|/Drafts|Drafts|0|0|alice\\Drafts",
        "Junk|/Junk|JunkEmail|0|0|alice\\Junk",
        "Sent|/Sent|SentItems|1|1|alice\\Sent",
        "Trash|/Trash|DeletedItems|0|0|alice\\Trash",
    ]
    inbox = shell.ok(
        "Get-MailboxFolderStatistics alice -FolderScope Inbox | ForEach-Object { $_.FolderPath }"
    )
    assert inbox.out.split() == ["/Inbox", "/Inbox/Receipts"]
    total = shell.ok(
        "(Get-Mailbox -Database DB01 | Get-MailboxFolderStatistics | "
        "Measure-Object ItemsInFolder -Sum).Sum"
    )
    assert total.out.strip() == "3"


def test_folder_statistics_of_a_dismounted_database(shell: Shell, org: Directory) -> None:
    error = shell.run("Get-MailboxFolderStatistics dora").error()
    assert error.category == "ResourceUnavailable"


def test_byte_quantified() -> None:
    assert byte_quantified(0) == "0 B (0 bytes)"
    assert byte_quantified(1023) == "1023 B (1,023 bytes)"
    assert byte_quantified(1536) == "1.5 KB (1,536 bytes)"
    assert byte_quantified(5 * 1024 * 1024 + 1) == "5 MB (5,242,881 bytes)"


# -- New-Mailbox and Remove-Mailbox ------------------------------------------------------------


def test_new_mailbox_creates_its_folders(shell: Shell, org: Directory) -> None:
    shell.ok(f'New-Mailbox -Name "Erin Q" -Alias erin -Database DB01 -Password {SECRET}')
    erin = org.mailboxes.one("erin")
    store = store_for(org.databases.one("DB01"))
    assert store.has_mailbox(erin.guid)
    folders = {f.name: f.special_use for f in store.mailbox(erin.guid).folders()}
    assert folders == {
        "INBOX": None,
        "Archive": "\\Archive",
        "Drafts": "\\Drafts",
        "Junk": "\\Junk",
        "Sent": "\\Sent",
        "Trash": "\\Trash",
    }


def test_new_mailbox_in_a_dismounted_database(shell: Shell, org: Directory) -> None:
    result = shell.ok(
        '$VerbosePreference = "Continue"; '
        f'New-Mailbox -Name "Finn" -Alias finn -Database DB02 -Password {SECRET}'
    )
    assert "VERBOSE: The database DB02 is dismounted" in result.out
    finn = org.mailboxes.one("finn")
    org.databases.set_mounted("DB02", True)
    store = store_for(org.databases.one("DB02"))
    assert not store.has_mailbox(finn.guid)
    assert store.mailbox(finn.guid).folder("INBOX").exists == 0  # made on first use


def test_remove_mailbox_keeps_or_purges_content(shell: Shell, org: Directory) -> None:
    store = store_for(org.databases.one("DB01"))
    alice, bob = org.mailboxes.one("alice"), org.mailboxes.one("bob")
    store.mailbox(alice.guid).append("INBOX", b"Subject: keep\r\n\r\nx\r\n")
    store.mailbox(bob.guid).append("INBOX", b"Subject: purge\r\n\r\nx\r\n")
    shell.ok("Remove-Mailbox alice -Confirm:$false")
    assert store.has_mailbox(alice.guid)  # disconnected, as in Exchange
    assert len(store.mailbox(alice.guid).messages("INBOX")) == 1
    result = shell.ok("Remove-Mailbox bob -Permanent $true -WhatIf")
    assert result.out.strip() == what_if("Remove-Mailbox", "bob")
    assert store.has_mailbox(bob.guid)
    shell.ok("Remove-Mailbox bob -Permanent $true -Confirm:$false")
    assert not store.has_mailbox(bob.guid)
    assert [m.alias for m in org.mailboxes.get()] == ["dora"]


def test_remove_mailbox_permanent_on_a_dismounted_database(shell: Shell, org: Directory) -> None:
    result = shell.ok("Remove-Mailbox dora -Permanent $true -Confirm:$false")
    assert result.warnings and "couldn't be purged" in result.warnings[0]
    assert "dora" not in [m.alias for m in org.mailboxes.get()]
