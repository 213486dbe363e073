"""Mailbox provisioning: how a mailbox of the directory comes to exist in its database's
store. The one service the shell, the lab and every access path call to open, create
or purge a mailbox in its database.

Exchange 2010 keeps a mailbox in two places: the user in Active Directory and the
mailbox in the Information Store of its database. New-Mailbox writes the first; the
store creates the second, with its default folders, when the mailbox is first logged on
to or first delivered to. casarray does the same. `Directory.mailboxes.new()` (what
New-Mailbox calls) writes only the directory, which knows nothing of the mail store
(it is below it). The mailbox comes into being in its database the first time anything
opens it with `open_mailbox`: an IMAP login, web mail, the JSON API,
Import-MailboxMessage, Get-MailboxFolderStatistics, a delivery such as the lab's
welcome messages. The store then creates it with `mailstore.interface.DEFAULT_FOLDERS`
in one transaction,
so that no crash leaves a mailbox half made: INBOX, Sent, Drafts, Trash, Junk and
Archive, with their special-use flags (RFC 6154), every one subscribed, their
UIDVALIDITYs ascending in that order from the time of creation.

New-Mailbox also provisions at once when its database is mounted (`provision_mailbox`),
so that the folders date from the mailbox's creation and Get-MailboxFolderStatistics
shows them before the first logon; in a dismounted database they are made at first
use. Remove-Mailbox -Permanent purges the mailbox from its database (`purge_mailbox`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from casarray.mailstore.interface import DatabaseStore, MailboxStore
from casarray.mailstore.store import store_for

if TYPE_CHECKING:
    from casarray.directory.objects import MailboxDatabase

__all__ = [
    "database_store",
    "open_mailbox",
    "provision_mailbox",
    "purge_mailbox",
]


def database_store(database: MailboxDatabase) -> DatabaseStore:
    """The store of a mounted mailbox database, opened once per process and shared;
    DatabaseUnavailable when the database is dismounted."""
    return store_for(database)


def open_mailbox(
    database: MailboxDatabase, mailbox_guid: str, *, store: DatabaseStore | None = None
) -> MailboxStore:
    """The mailbox `mailbox_guid` in its database's store, created there with
    `DEFAULT_FOLDERS` the first time it is opened. `store`: the database's store when
    the caller keeps its own (the IMAP server keeps one per database)."""
    if store is None:
        store = database_store(database)
    return store.mailbox(mailbox_guid)


def provision_mailbox(database: MailboxDatabase, mailbox_guid: str) -> MailboxStore | None:
    """New-Mailbox: the mailbox with `DEFAULT_FOLDERS` in its database now, or as it is
    if it exists; None when the database is dismounted (first use makes it then)."""
    if not database.mounted:
        return None
    return database_store(database).create_mailbox(mailbox_guid)


def purge_mailbox(database: MailboxDatabase, mailbox_guid: str) -> None:
    """Remove-Mailbox -Permanent: the mailbox, its folders and messages leave its
    database; nothing if it isn't there. DatabaseUnavailable when dismounted."""
    database_store(database).remove_mailbox(mailbox_guid)
