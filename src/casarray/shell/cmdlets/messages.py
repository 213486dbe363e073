"""Mailbox content cmdlets: Import-MailboxMessage and Get-MailboxFolderStatistics, and
the helpers New-Mailbox and Remove-Mailbox use to create and purge a mailbox's folders
in its database's store.

A mailbox's folders live in its mailbox database's store, which must be mounted
(Mount-Database): a dismounted database refuses with an error. Opening, creating and
purging a mailbox there is `mailstore.provisioning`'s, as for every other access path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from casarray.directory.objects import Mailbox, MailboxDatabase
from casarray.mailstore.interface import (
    DatabaseUnavailable,
    FolderNotFound,
    FolderStatistics,
    MailboxStore,
    MailstoreError,
    MessageTooLarge,
)
from casarray.mailstore.names import INBOX, canonical
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.values import ShellRuntimeError
from casarray.shell.views import register_view

IMPORT_RESULT_TYPE = "Casarray.Mailstore.MailboxImportResult"
FOLDER_STATISTICS_TYPE = "Microsoft.Exchange.Management.Tasks.MailboxFolderConfiguration"
register_view(IMPORT_RESULT_TYPE, ("Mailbox", "Folder", "Imported", "Skipped", "Size"))
register_view(FOLDER_STATISTICS_TYPE, ("FolderPath", "ItemsInFolder", "FolderSize"))

IDENTITY_HELP = "The mailbox's alias, e-mail address, display name, GUID or distinguished name."

# Exchange's FolderType of the well-known folders, by their special use.
FOLDER_TYPES = {
    "\\Sent": "SentItems",
    "\\Drafts": "Drafts",
    "\\Trash": "DeletedItems",
    "\\Junk": "JunkEmail",
    "\\Archive": "Archive",
}
FOLDER_SCOPES = ("All", "Inbox", "SentItems", "Drafts", "DeletedItems", "JunkEmail", "Archive")


def store_error(exc: MailstoreError) -> ShellRuntimeError:
    """A store error as the shell shows it (with a PowerShell error category)."""
    if isinstance(exc, DatabaseUnavailable):
        category = "ResourceUnavailable"
    elif isinstance(exc, FolderNotFound):
        category = "ObjectNotFound"
    elif isinstance(exc, MessageTooLarge):
        category = "LimitsExceeded"
    else:
        category = "InvalidOperation"
    return ShellRuntimeError(str(exc), category=category)


def mailbox_store(cmdlet: Cmdlet, mailbox: Mailbox) -> MailboxStore:
    """The mailbox's store in its (mounted) database: folders made on first use."""
    from casarray.mailstore.provisioning import open_mailbox

    database: MailboxDatabase = cmdlet.directory.databases.one(mailbox.database)
    try:
        return open_mailbox(database, mailbox.guid)
    except MailstoreError as exc:
        raise store_error(exc) from exc


def create_store_mailbox(cmdlet: Cmdlet, mailbox: Mailbox) -> None:
    """New-Mailbox: INBOX and the special folders in the database's store, now if the
    database is mounted (else on first use). A failure is a warning: the mailbox
    exists in the directory either way."""
    from casarray.mailstore.provisioning import provision_mailbox

    try:
        database: MailboxDatabase = cmdlet.directory.databases.one(mailbox.database)
        if provision_mailbox(database, mailbox.guid) is None:
            cmdlet.write_verbose(
                f"The database {database.name} is dismounted: the folders of {mailbox.alias} "
                "are made when it is mounted and the mailbox is first used."
            )
    except MailstoreError as exc:
        cmdlet.write_warning(
            f"The mailbox {mailbox.alias} was created, but its folders couldn't be made in "
            f"database {mailbox.database}: {exc} They are made when the mailbox is first used."
        )


def purge_store_mailbox(cmdlet: Cmdlet, mailbox: Mailbox) -> None:
    """Remove-Mailbox -Permanent $true: the mailbox's folders and messages leave its
    database's store. Refused (a warning) while the database is dismounted."""
    from casarray.mailstore.provisioning import purge_mailbox

    try:
        database: MailboxDatabase = cmdlet.directory.databases.one(mailbox.database)
        purge_mailbox(database, mailbox.guid)
    except (MailstoreError, LookupError) as exc:
        cmdlet.write_warning(
            f"The mailbox {mailbox.alias} was removed, but its content couldn't be purged "
            f"from database {mailbox.database}: {exc}"
        )


def byte_quantified(size: int) -> str:
    """Exchange's ByteQuantifiedSize text: '1.5 KB (1,536 bytes)'."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            break
        value /= 1024
    number = f"{int(value)}" if unit == "B" else f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{number} {unit} ({size:,} bytes)"


def _display_name(name: str) -> str:
    """INBOX as Exchange names it (Inbox); other names as they are."""
    if name == INBOX:
        return "Inbox"
    if name.startswith(INBOX + "/"):
        return "Inbox" + name[len(INBOX) :]
    return name


@register
class ImportMailboxMessage(Cmdlet):
    name = "Import-MailboxMessage"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="mailbox",
            help=IDENTITY_HELP,
        ),
        Parameter(
            "Path",
            mandatory=True,
            position=1,
            aliases=("FilePath",),
            help="An .eml file, a folder of .eml files, or an mbox file.",
        ),
        Parameter(
            "Folder",
            help='The folder to import into (made if missing); "/" separates levels. '
            "Default: INBOX.",
        ),
    )
    synopsis = "Imports messages from .eml or mbox files into a mailbox folder."
    description = (
        "Reads RFC 5322 messages from an .eml file, a folder of .eml files or an mbox file "
        "(RFC 4155: split at its From lines, >From lines unquoted, dates and Status flags "
        "kept) and appends them to a folder of the mailbox, in its mailbox database, which "
        "must be mounted. Outputs how many were imported. Messages over the database's size "
        "limit are skipped with an error."
    )
    examples = (
        Example(
            "Import-MailboxMessage alice -Path ./welcome.eml",
            "Puts one message in Alice's INBOX.",
        ),
        Example(
            "Import-MailboxMessage -Identity alice -Path ~/Mail/archive.mbox -Folder Archive/2009",
            "Imports an mbox file into Archive/2009.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        from casarray.mailstore.importing import ImportSourceError, read_messages

        mailbox: Mailbox = self.directory.mailboxes.one(identity_arg(params["Identity"], Mailbox))
        path = Path(os.path.abspath(os.path.expanduser(str(params["Path"]))))
        try:
            folder = canonical(str(params.get("Folder") or INBOX), creating=True)
            messages = list(read_messages(path))
        except ImportSourceError as exc:
            raise ShellRuntimeError(str(exc), category="ObjectNotFound") from exc
        except OSError as exc:
            raise ShellRuntimeError(
                f"Cannot read '{path}': {exc.strerror or exc}", category="ReadError"
            ) from exc
        except MailstoreError as exc:
            raise store_error(exc) from exc
        target = f"{mailbox.alias}\\{folder}"
        count = len(messages)
        operation = f"Import {count} message{'s' if count != 1 else ''} from {path}"
        if not self.should_process(target, operation):
            return
        box = mailbox_store(self, mailbox)
        imported = skipped = size = 0
        try:
            try:
                box.folder(folder)
            except FolderNotFound:
                box.create_folder(folder)
                self.write_verbose(f"Created the folder {folder} in {mailbox.alias}'s mailbox.")
            for message in messages:
                try:
                    box.append(folder, message.data, message.flags, message.internal_date)
                except MessageTooLarge as exc:
                    skipped += 1
                    self.write_error(store_error(MessageTooLarge(f"{message.source}: {exc}")))
                    continue
                imported += 1
                size += len(message.data)
        except MailstoreError as exc:
            raise self.terminate(store_error(exc)) from exc
        yield PSObject(
            {
                "Mailbox": mailbox.alias,
                "Folder": folder,
                "Imported": imported,
                "Skipped": skipped,
                "Size": byte_quantified(size),
                "Path": str(path),
            },
            type_name=IMPORT_RESULT_TYPE,
            display=target,
        )


def folder_type(name: str, special_use: str | None) -> str:
    if name == INBOX:
        return "Inbox"
    return FOLDER_TYPES.get(special_use or "", "User Created")


@register
class GetMailboxFolderStatistics(Cmdlet):
    name = "Get-MailboxFolderStatistics"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="mailbox",
            help=IDENTITY_HELP,
        ),
        Parameter(
            "FolderScope",
            kind="enum",
            choices=FOLDER_SCOPES,
            help="Only folders of this type (Inbox, SentItems, Drafts, DeletedItems, "
            "JunkEmail, Archive) and their subfolders; All by default.",
        ),
    )
    synopsis = "Gets the folders of a mailbox with their item counts and sizes."
    description = (
        "Lists the folders of a mailbox from its mailbox database's store (which must be "
        "mounted): FolderPath, FolderType, ItemsInFolder, FolderSize, and the same for the "
        "folder with its subfolders."
    )
    examples = (
        Example("Get-MailboxFolderStatistics alice", "Lists Alice's folders."),
        Example(
            "Get-MailboxFolderStatistics alice -FolderScope Inbox | Format-List",
            "Shows every property of Alice's Inbox and its subfolders.",
        ),
        Example(
            "Get-Mailbox -Database DB01 | Get-MailboxFolderStatistics | "
            "Measure-Object ItemsInFolder -Sum",
            "Counts the messages of every mailbox in DB01.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        mailbox: Mailbox = self.directory.mailboxes.one(identity_arg(params["Identity"], Mailbox))
        box = mailbox_store(self, mailbox)
        try:
            stats = box.statistics()
        except MailstoreError as exc:
            raise store_error(exc) from exc
        scope = params.get("FolderScope") or "All"
        roots = [s.name for s in stats if folder_type(s.name, s.special_use) == scope]
        for stat in stats:
            if scope != "All" and not any(
                stat.name == root or stat.name.startswith(root + "/") for root in roots
            ):
                continue
            yield self._record(mailbox, stat, stats)

    @staticmethod
    def _record(
        mailbox: Mailbox, stat: FolderStatistics, stats: list[FolderStatistics]
    ) -> PSObject:
        subtree = [s for s in stats if s.name == stat.name or s.name.startswith(stat.name + "/")]
        path = "/" + _display_name(stat.name)
        return PSObject(
            {
                "Name": _display_name(stat.name).rsplit("/", 1)[-1],
                "FolderPath": path,
                "FolderType": folder_type(stat.name, stat.special_use),
                "ItemsInFolder": stat.messages,
                "FolderSize": byte_quantified(stat.size),
                "ItemsInFolderAndSubfolders": sum(s.messages for s in subtree),
                "FolderAndSubfolderSize": byte_quantified(sum(s.size for s in subtree)),
                "DeletedItemsInFolder": 0,
                "Identity": f"{mailbox.alias}\\{path[1:]}",
                "MailboxGuid": mailbox.guid,
            },
            type_name=FOLDER_STATISTICS_TYPE,
            display=f"{mailbox.alias}\\{path[1:]}",
        )
