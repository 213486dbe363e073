"""The preferred endpoint of a mailbox: the one name its clients should connect to.

Autodiscover, Thunderbird autoconfig, the IMAP referral and web mail all ask this one
function, so that every client of a mailbox is sent to the same place.

The rule is Exchange 2010 SP2 RU3's (site-aware Autodiscover): take the site S of the
mailbox's database (the site of the Mailbox server that holds it). Then

1. if the database's RpcClientAccessServer names a Client Access server or the client
   access array of S, that is the endpoint ("database names it");
2. otherwise, the client access array of S ("array of site");
3. otherwise, a Client Access server of S: the first installed, the one a new database
   of S would get ("a Client Access server of the site");
4. otherwise there is none: `NoEndpointError`, naming the database.

So a name of another site in RpcClientAccessServer (an old value left after a database
moved, or the other site's array set by a bulk `Get-MailboxDatabase |
Set-MailboxDatabase`) is not followed, and neither is a name the directory no longer
knows (a server removed with -Force).

Also here: Exchange's hexadecimal `ServerVersion` (what Autodiscover returns for a
server's AdminDisplayVersion; see `server_version_hex`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.errors import DirectoryError, InvalidValueError
from casarray.directory.objects import Mailbox, MailboxDatabase, Names, Server
from casarray.directory.schema import (
    ClientAccessArrayRow,
    MailboxDatabaseRow,
    MailboxRow,
    ServerRow,
    SiteRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

EndpointKind = Literal["array", "server"]

WHY_DATABASE = "database names it"
WHY_ARRAY = "array of site"
WHY_SERVER = "a Client Access server of the site"

PRIVATE_MDB = "/cn=Microsoft Private MDB"


def endpoint_key(fqdn: str) -> str:
    """A name as endpoints are compared: lower case, no trailing dot."""
    return fqdn.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Candidate:
    """A Client Access server or array that may be an endpoint."""

    fqdn: str
    kind: EndpointKind
    legacy_dn: str


@dataclass(frozen=True)
class Endpoint:
    """Where the users of one mailbox database connect, and why there."""

    fqdn: str
    kind: EndpointKind
    legacy_dn: str  # the server's or the array's legacyExchangeDN
    site: str
    why: str
    database: str  # the mailbox database the endpoint was chosen for
    rpc_client_access_server: str  # that database's RpcClientAccessServer

    @property
    def server_dn(self) -> str:
        """Autodiscover's ServerDN: the endpoint's legacyExchangeDN."""
        return self.legacy_dn

    @property
    def mdb_dn(self) -> str:
        """Autodiscover's MdbDN: ServerDN plus `/cn=Microsoft Private MDB`."""
        return self.legacy_dn + PRIVATE_MDB

    @property
    def is_array(self) -> bool:
        return self.kind == "array"


class NoEndpointError(DirectoryError):
    """The site of a mailbox database has no Client Access server (and no array), so
    its users have nowhere to connect."""

    category = "ResourceUnavailable"

    def __init__(self, database: str, site: str) -> None:
        super().__init__(
            f"The mailbox database '{database}' has no Client Access endpoint: its site "
            f"'{site}' has no client access array and no Client Access server. Install a "
            "Client Access server in the site.",
            target=database,
        )
        self.database = database
        self.site = site


def choose_endpoint(
    *,
    database: str,
    site: str,
    rpc_client_access_server: str,
    array: Candidate | None,
    servers: Sequence[Candidate],
) -> Endpoint:
    """The rule of the module docstring on what was read: `array` is the client access
    array of the database's site, `servers` its Client Access servers, first installed
    first. Pure; raises `NoEndpointError` when both are empty."""

    def endpoint(candidate: Candidate, why: str) -> Endpoint:
        return Endpoint(
            fqdn=candidate.fqdn,
            kind=candidate.kind,
            legacy_dn=candidate.legacy_dn,
            site=site,
            why=why,
            database=database,
            rpc_client_access_server=rpc_client_access_server,
        )

    key = endpoint_key(rpc_client_access_server)
    for candidate in ([array] if array is not None else []) + list(servers):
        if endpoint_key(candidate.fqdn) == key:
            return endpoint(candidate, WHY_DATABASE)
    if array is not None:
        return endpoint(array, WHY_ARRAY)
    if servers:
        return endpoint(servers[0], WHY_SERVER)
    raise NoEndpointError(database, site)


def _endpoint_of_row(session: Session, names: Names, database: MailboxDatabaseRow) -> Endpoint:
    server = database.server
    site_name = session.scalars(select(SiteRow.name).where(SiteRow.id == server.site_id)).one()
    array_row = session.scalars(
        select(ClientAccessArrayRow).where(ClientAccessArrayRow.site_id == server.site_id)
    ).first()
    array = (
        Candidate(array_row.fqdn, "array", names.array_legacy_dn(array_row.fqdn))
        if array_row is not None
        else None
    )
    servers = [
        Candidate(row.fqdn, "server", names.server_legacy_dn(row.name))
        for row in session.scalars(
            select(ServerRow)
            .where(ServerRow.site_id == server.site_id, ServerRow.client_access.is_(True))
            .order_by(ServerRow.install_order)
        )
    ]
    return choose_endpoint(
        database=database.name,
        site=site_name,
        rpc_client_access_server=database.rpc_client_access_server,
        array=array,
        servers=servers,
    )


def _mailbox_row(directory: Directory, session: Session, mailbox: object) -> MailboxRow:
    if isinstance(mailbox, Mailbox):
        mailbox = mailbox.guid
    return directory.mailboxes.resolve_row(session, mailbox)


def preferred_endpoint(directory: Directory, mailbox: object) -> Endpoint:
    """The endpoint of `mailbox` (a Mailbox record or any mailbox identity: address,
    alias, GUID, DN, legacyExchangeDN). Raises NotFoundError for an unknown mailbox
    and NoEndpointError when its database's site has no Client Access server."""
    with directory.store.read() as session:
        row = _mailbox_row(directory, session, mailbox)
        return _endpoint_of_row(session, directory.names, row.database)


def database_endpoint(directory: Directory, database: object) -> Endpoint:
    """The endpoint of the users of `database` (a MailboxDatabase record or identity)."""
    if isinstance(database, MailboxDatabase):
        database = database.guid
    with directory.store.read() as session:
        row = directory.databases.resolve_row(session, database)
        return _endpoint_of_row(session, directory.names, row)


def serves(server: Server, endpoint: Endpoint) -> bool:
    """Whether the Client Access server `server` is a right endpoint for the users of
    `endpoint`: it is the endpoint, or a member of the endpoint array (every Client
    Access server of the array's site), or it allows cross-site RPC client access and
    the endpoint is in another site (as `rpc_access.RpcAccess.CROSS_SITE`). Pure."""
    if not server.is_client_access_server:
        return False
    if endpoint.kind == "server":
        if endpoint_key(server.fqdn) == endpoint_key(endpoint.fqdn):
            return True
    elif server.site.lower() == endpoint.site.lower():
        return True
    return server.allow_cross_site_rpc_client_access and (
        server.site.lower() != endpoint.site.lower()
    )


def is_right_endpoint(directory: Directory, server: object, mailbox: object) -> bool:
    """Whether `server` (a Server record or identity) may serve `mailbox` itself rather
    than refer its client to `preferred_endpoint(directory, mailbox).fqdn`."""
    record = server if isinstance(server, Server) else directory.servers.one(server)
    return serves(record, preferred_endpoint(directory, mailbox))


# -- Exchange's hexadecimal ServerVersion ------------------------------------------------

_VERSION_MARK = 0b0111  # bits 31..28: Exchange's "new version format" marker
_VERSION_FLAG = 1 << 15  # bit 15: always set in what Exchange sends


def server_version_hex(admin_display_version: str) -> str:
    """Autodiscover's `ServerVersion` for an AdminDisplayVersion such as "14.3.123.4"
    ("Version 14.3 (Build 123.4)" also works): eight upper-case hexadecimal digits.

    The value is one 32-bit integer, most significant bit first:

        bits 31..28  0111            a marker that tells it from older version formats
        bits 27..22  major version   6 bits   (14)
        bits 21..16  minor version   6 bits   (3)
        bit  15      1               a flag, always set
        bits 14..0   build number    15 bits  (123; the minor build, .4, is not carried)

        0x7 << 28 | major << 22 | minor << 16 | 1 << 15 | build

    So 14.3.123.4 (Exchange 2010 SP3) is 7383807B, and 14.1.218 (Exchange 2010 SP1) is
    738180DA, the value Microsoft's ServerVersion (POX) reference decodes in its example;
    8.2.176 (Exchange 2007 SP2) is 720280B0. Sources: "ServerVersion (POX)", Exchange
    Server 2010 Autodiscover reference (learn.microsoft.com, web-service-reference/
    serverversion-pox), whose sample splits the value into these fields, and Patrick
    Creehan's MSDN blog post "Parsing ServerVersion: When an Int Is Really 5 Ints"
    (2009), which names them.
    """
    major, minor, build = _version_numbers(admin_display_version)
    value = (_VERSION_MARK << 28) | (major << 22) | (minor << 16) | _VERSION_FLAG | build
    return f"{value:08X}"


def parse_server_version(text: str) -> tuple[int, int, int]:
    """(major, minor, build) from an Autodiscover ServerVersion such as "7383807B"."""
    try:
        value = int(text.strip(), 16)
    except ValueError:
        raise InvalidValueError("ServerVersion", text, "is not a hexadecimal number.") from None
    if not 0 <= value <= 0xFFFFFFFF or value >> 28 != _VERSION_MARK:
        raise InvalidValueError("ServerVersion", text, "is not an Exchange ServerVersion.")
    return (value >> 22) & 0x3F, (value >> 16) & 0x3F, value & 0x7FFF


def _version_numbers(text: str) -> tuple[int, int, int]:
    cleaned = text.strip().lower()
    if cleaned.startswith("version "):  # "Version 14.3 (Build 123.4)"
        head, _, tail = cleaned[len("version ") :].partition("(build ")
        cleaned = head.strip() + "." + tail.rstrip(") ")
    parts = cleaned.split(".")
    try:
        major, minor, build = (int(p) for p in parts[:3])
    except ValueError:
        raise InvalidValueError(
            "AdminDisplayVersion", text, "is not a version like 14.3.123.4."
        ) from None
    if not (0 <= major < 64 and 0 <= minor < 64 and 0 <= build < 1 << 15):
        raise InvalidValueError(
            "AdminDisplayVersion",
            text,
            "can't be encoded (major and minor below 64, build below 32768).",
        )
    return major, minor, build


# -- the name of a Client Access server's own site ----------------------------------------


def access_name(directory: Directory, server: object) -> str:
    """The name clients use for the Client Access server `server` (a record or an
    identity): its site's client access array FQDN when the site has one, else the
    server's own FQDN. Both are names the server's certificate covers."""
    with directory.store.read() as session:
        if isinstance(server, Server):
            server = server.guid
        row = directory.servers.resolve_row(session, server)
        array = session.scalars(
            select(ClientAccessArrayRow.fqdn).where(ClientAccessArrayRow.site_id == row.site_id)
        ).first()
        return array if array is not None else row.fqdn
