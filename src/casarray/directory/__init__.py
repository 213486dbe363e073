"""The directory: casarray's Active Directory (configuration partition).

from casarray.directory import Directory
with Directory.open() as d:
    d.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
"""

from casarray.directory.errors import (
    AmbiguousIdentityError,
    ConflictError,
    DirectoryError,
    InUseError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
    SchemaOutOfDateError,
)
from casarray.directory.objects import (
    ClientAccessArray,
    Mailbox,
    MailboxDatabase,
    Organization,
    Server,
    ServerRole,
    Site,
    Subnet,
)
from casarray.directory.service import Directory

__all__ = [
    "AmbiguousIdentityError",
    "ClientAccessArray",
    "ConflictError",
    "Directory",
    "DirectoryError",
    "InUseError",
    "InvalidOperationError",
    "InvalidValueError",
    "Mailbox",
    "MailboxDatabase",
    "NotFoundError",
    "Organization",
    "SchemaOutOfDateError",
    "Server",
    "ServerRole",
    "Site",
    "Subnet",
]
