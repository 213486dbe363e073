"""The test mailboxes of Test-MAPIConnectivity and Test-OutlookConnectivity: one per
database, Exchange's extest_ account, made on demand."""

from __future__ import annotations

import re
import secrets

from casarray.directory import Directory
from casarray.directory.errors import ConflictError, NotFoundError
from casarray.directory.objects import Mailbox, MailboxDatabase

TEST_MAILBOX_PREFIX = "extest_"
TEST_PASSWORD_BYTES = 24


def connectivity_alias(database: str) -> str:
    """The alias of a database's test mailbox: extest_<database>, lower case, any
    character an alias can't have made a hyphen."""
    label = re.sub(r"[^a-z0-9-]+", "-", database.lower()).strip("-") or "db"
    return f"{TEST_MAILBOX_PREFIX}{label}"[:64]


def connectivity_mailbox(directory: Directory, database: object) -> tuple[Mailbox, str]:
    """A database's test mailbox and a password that logs on to it now.

    Exchange's test cmdlets log on to a test mailbox that New-TestCasConnectivityUser.ps1
    made (extest_<n>), or to the database's SystemMailbox. casarray makes one per
    database on first use: alias extest_<database>, display name "extest_<database>",
    address extest_<database>@<default domain>, in that database. Its password is no
    one's: it is set to a new random one every time a test asks for it (a directory
    write), so no password is kept anywhere; two tests of one database at the same
    moment may therefore refuse each other's logon."""
    record = database if isinstance(database, MailboxDatabase) else None
    record = record or directory.databases.one(database)
    alias = connectivity_alias(record.name)
    password = secrets.token_urlsafe(TEST_PASSWORD_BYTES)
    try:
        found = directory.mailboxes.one(alias)
    except NotFoundError:
        found = None
    if found is not None and found.database.lower() == record.name.lower():
        return directory.mailboxes.set(found.guid, password=password), password
    if found is not None:  # a mailbox with that alias elsewhere: not ours to reset
        raise ConflictError(
            f"The alias {alias}, which the test mailbox of database {record.name} needs, is "
            f"taken by a mailbox in database {found.database}.",
            conflicting=found.primary_smtp_address,
            target=record.name,
        )
    made = directory.mailboxes.new(
        name=f"{TEST_MAILBOX_PREFIX}{record.name}"[:256],
        alias=alias,
        database=record.guid,
        password=password,
    )
    return made, password
