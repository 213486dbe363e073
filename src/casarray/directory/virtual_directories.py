"""The virtual directories of a Client Access server that clients are told about, and
its Autodiscover service connection point.

Exchange 2010 setup gives every Client Access server, in IIS's "Default Web Site", the
virtual directories `EWS (Default Web Site)` (Exchange Web Services,
Get-WebServicesVirtualDirectory) and `Autodiscover (Default Web Site)`
(Get-AutodiscoverVirtualDirectory), each with an InternalUrl, an ExternalUrl and its
authentication methods, and sets the server's AutoDiscoverServiceInternalUri (the
service connection point domain-joined Outlook reads) to
`https://<server FQDN>/Autodiscover/Autodiscover.xml`. `setup_client_access` does the
same when a Client Access server is created.

Defaults, as setup makes them: InternalUrl `https://<server FQDN>/EWS/Exchange.asmx`
and `https://<server FQDN>/Autodiscover/Autodiscover.xml`, ExternalUrl $null,
WindowsAuthentication (NTLM) on. BasicAuthentication is on for both: Exchange 2010
turns it off on EWS, but casarray's EWS offers NTLM and Basic, as the clients it
serves (exchangelib with Basic, DavMail) need.

Rules (`url`): a URL is absolute, http or https, names a host (an FQDN or an IP
address, an optional port), carries no user name, query or fragment, and its path is
the virtual directory's own (`/EWS/Exchange.asmx`, `/Autodiscover/Autodiscover.xml`,
any letter case): a URL a client is told must reach the service. $null clears it.

What clients are told (`urls_for`): the EWS URLs of the Client Access server that
answers Autodiscover when it is in the mailbox's site, else those of the first
installed Client Access server of that site, as Exchange 2010's Autodiscover picks a
CAS of the mailbox's site. The internal URL goes to clients inside (Outlook's EXCH
block, InternalEwsUrl), the external one to clients outside (EXPR, ExternalEwsUrl).
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import InvalidOperationError, InvalidValueError, NotFoundError
from casarray.directory.objects import Server
from casarray.directory.schema import ServerRow, SiteRow, VirtualDirectoryRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory

WEB_SITE = "Default Web Site"


@dataclass(frozen=True)
class Kind:
    """One kind of virtual directory: its type, its IIS name and the path of the
    service it publishes."""

    kind: str  # as stored: "WebServices", "Autodiscover"
    name: str  # IIS's name: "EWS", "Autodiscover"
    path: str  # the service's path: "/EWS/Exchange.asmx"

    @property
    def full_name(self) -> str:
        """`EWS (Default Web Site)`: how Exchange names the object."""
        return f"{self.name} ({WEB_SITE})"

    def default_url(self, fqdn: str) -> str:
        return f"https://{fqdn.rstrip('.')}{self.path}"


WEB_SERVICES: Final = Kind("WebServices", "EWS", "/EWS/Exchange.asmx")
AUTODISCOVER: Final = Kind("Autodiscover", "Autodiscover", "/Autodiscover/Autodiscover.xml")
KINDS: Final = {k.kind.lower(): k for k in (WEB_SERVICES, AUTODISCOVER)}


@dataclass(frozen=True)
class VirtualDirectory:
    """A virtual directory as Get-WebServicesVirtualDirectory shows it."""

    guid: str
    kind: Kind
    server: str  # the server's name
    server_fqdn: str
    site: str
    internal_url: str | None
    external_url: str | None
    basic_authentication: bool
    windows_authentication: bool
    when_created: datetime
    when_changed: datetime

    @property
    def name(self) -> str:
        return self.kind.full_name

    @property
    def identity(self) -> str:
        """`CAS01\\EWS (Default Web Site)`."""
        return f"{self.server}\\{self.kind.full_name}"


@dataclass(frozen=True)
class ServiceUrls:
    """The URLs Autodiscover gives a mailbox's clients, and the server they are from."""

    server: str
    server_fqdn: str
    internal_ews_url: str | None
    external_ews_url: str | None
    basic_authentication: bool
    windows_authentication: bool


class _Keep:
    """The default of a setting left unchanged (None means $null: clear it)."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep()


# -- the rules ----------------------------------------------------------------------------


def url(parameter: str, value: object, kind: Kind) -> str | None:
    """A virtual directory's URL (see the module's rules), or None for $null/empty."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidValueError(parameter, value, f"is not a URL ({exc}).") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise InvalidValueError(
            parameter, value, f"is not an absolute http or https URL, such as "
            f"{kind.default_url('cas01.contoso.com')}.",
        )  # fmt: skip
    if parts.username is not None or parts.password is not None:
        raise InvalidValueError(parameter, value, "carries a user name; leave it out.")
    if parts.query or parts.fragment:
        raise InvalidValueError(parameter, value, "has a query or a fragment; leave it out.")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        validate.fqdn(parameter, host)
    if port == 0:
        raise InvalidValueError(parameter, value, "has port 0.")
    if parts.path.lower() != kind.path.lower():
        raise InvalidValueError(
            parameter,
            value,
            f"has the path '{parts.path or '/'}'; the {kind.full_name} virtual directory "
            f"publishes {kind.path}, so a client told this URL would not reach it.",
        )
    netloc = host.lower() if port is None else f"{host.lower()}:{port}"
    if ":" in host:  # an IPv6 address
        netloc = f"[{host.lower()}]" + ("" if port is None else f":{port}")
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))


def parse_identity(value: object, kind: Kind) -> tuple[str | None, str]:
    """(the virtual directory's GUID or None, the server part) of an -Identity: a
    server's name ("CAS01"), `CAS01\\EWS (Default Web Site)`, `CAS01\\EWS`, or the
    virtual directory's GUID."""
    text = str(value).strip()
    guid = identity.parse_guid(text)
    if guid is not None:
        return guid, ""
    server, sep, name = text.partition("\\")
    if sep:
        wanted = name.strip().lower()
        if wanted not in (kind.full_name.lower(), kind.name.lower()):
            raise InvalidValueError(
                "Identity",
                value,
                f"names no {kind.kind} virtual directory: its name is "
                f"'{kind.full_name}' (for example CAS01\\{kind.full_name}).",
            )
    if not server.strip():
        raise InvalidValueError("Identity", value, "names no server.")
    return None, server.strip()


def setup_client_access(row: ServerRow) -> list[VirtualDirectoryRow]:
    """What setup adds with a Client Access server `row` (added to a session, flushed):
    its virtual directories, and its AutoDiscoverServiceInternalUri set."""
    now = utcnow()
    row.autodiscover_service_internal_uri = AUTODISCOVER.default_url(row.fqdn)
    return [
        VirtualDirectoryRow(
            guid=new_guid(),
            server_id=row.id,
            kind=kind.kind,
            internal_url=kind.default_url(row.fqdn),
            external_url=None,
            basic_authentication=True,
            windows_authentication=True,
            when_created=now,
            when_changed=now,
        )
        for kind in (WEB_SERVICES, AUTODISCOVER)
    ]


# -- the service ----------------------------------------------------------------------------


class VirtualDirectoryService:
    """Get-/Set-WebServicesVirtualDirectory, Get-/Set-AutodiscoverVirtualDirectory,
    Set-ClientAccessServer -AutoDiscoverServiceInternalUri, and the URLs Autodiscover
    hands out."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    @staticmethod
    def kind(kind: str | Kind) -> Kind:
        if isinstance(kind, Kind):
            return kind
        try:
            return KINDS[kind.lower()]
        except KeyError:
            raise InvalidValueError(
                "Kind", kind, "is not a virtual directory kind (WebServices, Autodiscover)."
            ) from None

    def _record(self, row: VirtualDirectoryRow, server: ServerRow, site: str) -> VirtualDirectory:
        return VirtualDirectory(
            guid=row.guid,
            kind=self.kind(row.kind),
            server=server.name,
            server_fqdn=server.fqdn,
            site=site,
            internal_url=row.internal_url,
            external_url=row.external_url,
            basic_authentication=bool(row.basic_authentication),
            windows_authentication=bool(row.windows_authentication),
            when_created=row.when_created,
            when_changed=row.when_changed,
        )

    def _rows(
        self, session: Session, kind: Kind, ident: object | None, server: object | None
    ) -> list[tuple[VirtualDirectoryRow, ServerRow, str]]:
        stmt = (
            select(VirtualDirectoryRow, ServerRow, SiteRow.name)
            .join(ServerRow, VirtualDirectoryRow.server_id == ServerRow.id)
            .join(SiteRow, ServerRow.site_id == SiteRow.id)
            .where(VirtualDirectoryRow.kind == kind.kind)
            .order_by(ServerRow.install_order)
        )
        if ident is not None:
            guid, server_part = parse_identity(ident, kind)
            if guid is not None:
                stmt = stmt.where(VirtualDirectoryRow.guid == guid)
            else:
                server = server_part
        if server is not None:
            if isinstance(server, Server):
                server = server.guid
            server_row = self.dir.servers.resolve_row(session, server)
            stmt = stmt.where(VirtualDirectoryRow.server_id == server_row.id)
            if not server_row.client_access:
                raise InvalidOperationError(
                    f"The server '{server_row.name}' isn't a Client Access server; it has "
                    f"no {kind.full_name} virtual directory.",
                    target=server_row.name,
                )
        found = [(r, s, site) for r, s, site in session.execute(stmt)]
        if ident is not None and not found:
            raise NotFoundError(f"{kind.kind} virtual directory", str(ident))
        return found

    def get(
        self, kind: str | Kind, identity: object | None = None, *, server: object | None = None
    ) -> list[VirtualDirectory]:
        """The virtual directories of `kind`, first installed server first; one by
        -Identity, or those of one -Server."""
        spec = self.kind(kind)
        with self.dir.store.read() as session:
            return [self._record(*found) for found in self._rows(session, spec, identity, server)]

    def set(
        self,
        kind: str | Kind,
        identity: object,
        *,
        internal_url: object = KEEP,
        external_url: object = KEEP,
        basic_authentication: bool | None = None,
        windows_authentication: bool | None = None,
    ) -> VirtualDirectory:
        """Set-*VirtualDirectory. Checks every value before writing any."""
        spec = self.kind(kind)
        internal = KEEP if internal_url is KEEP else url("InternalUrl", internal_url, spec)
        external = KEEP if external_url is KEEP else url("ExternalUrl", external_url, spec)
        if basic_authentication is False and windows_authentication is False:
            raise InvalidValueError(
                "BasicAuthentication",
                False,
                "and -WindowsAuthentication $false would leave no way to sign in; keep one.",
            )
        with self.dir.store.write() as session:
            [(row, server, site)] = self._rows(session, spec, identity, None)
            basic = (
                row.basic_authentication if basic_authentication is None else basic_authentication
            )
            windows = (
                row.windows_authentication
                if windows_authentication is None
                else windows_authentication
            )
            if not basic and not windows:
                raise InvalidValueError(
                    "BasicAuthentication" if basic_authentication is not None
                    else "WindowsAuthentication",
                    False,
                    f"would leave {server.name}\\{spec.full_name} with no authentication "
                    "method; keep Basic or Windows authentication on.",
                )  # fmt: skip
            if not isinstance(internal, _Keep):
                row.internal_url = internal
            if not isinstance(external, _Keep):
                row.external_url = external
            row.basic_authentication = bool(basic)
            row.windows_authentication = bool(windows)
            row.when_changed = utcnow()
            session.flush()
            return self._record(row, server, site)

    # -- the service connection point -------------------------------------------------

    def set_autodiscover_service_internal_uri(self, server: object, uri: object) -> Server:
        """Set-ClientAccessServer -AutoDiscoverServiceInternalUri ($null clears it)."""
        value = url("AutoDiscoverServiceInternalUri", uri, AUTODISCOVER)
        if isinstance(server, Server):
            server = server.guid
        with self.dir.store.write() as session:
            row = self.dir.servers.resolve_row(session, server)
            if not row.client_access:
                raise InvalidOperationError(
                    f"The server '{row.name}' isn't a Client Access server.", target=row.name
                )
            row.autodiscover_service_internal_uri = value
            guid = row.guid
        return self.dir.servers.one(guid)

    # -- what Autodiscover tells a client ------------------------------------------------

    def urls_for(self, answering: object, site: str) -> ServiceUrls | None:
        """The EWS URLs for a mailbox of `site`, as Autodiscover on the Client Access
        server `answering` gives them (module docstring); None when the site has no
        Client Access server with an EWS virtual directory."""
        if isinstance(answering, Server):
            answering = answering.guid
        with self.dir.store.read() as session:
            me = self.dir.servers.resolve_row(session, answering)
            site_row = self.dir.sites.resolve_row(session, site)
            candidates = list(
                session.execute(
                    select(VirtualDirectoryRow, ServerRow)
                    .join(ServerRow, VirtualDirectoryRow.server_id == ServerRow.id)
                    .where(
                        VirtualDirectoryRow.kind == WEB_SERVICES.kind,
                        ServerRow.site_id == site_row.id,
                        ServerRow.client_access.is_(True),
                    )
                    .order_by(ServerRow.install_order)
                )
            )
        if not candidates:
            return None
        row, server = next(((r, s) for r, s in candidates if s.id == me.id), candidates[0])
        return ServiceUrls(
            server=server.name,
            server_fqdn=server.fqdn,
            internal_ews_url=row.internal_url,
            external_ews_url=row.external_url,
            basic_authentication=bool(row.basic_authentication),
            windows_authentication=bool(row.windows_authentication),
        )
