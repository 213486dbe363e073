"""Exchange servers: roles, names, addresses, site, install order.

Creating a server is the stand-in for Exchange setup: it records the roles the server
was installed with and when (install order), which decides a new database's default
RpcClientAccessServer when its site has no array, and gives a Hub Transport server the
receive connectors setup makes ("Default SERVER" and "Client SERVER"). Removing a
server removes its receive connectors and transport settings with it, and takes it out
of the send connectors' source servers; it is refused while it is the only source
server of a send connector (as Exchange's uninstall is)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import (
    ConflictError,
    InUseError,
    InvalidOperationError,
    InvalidValueError,
)
from casarray.directory.objects import EXCHANGE_VERSION, Server, ServerRole
from casarray.directory.rpc_access import RpcAccessPolicy
from casarray.directory.schema import (
    ClientAccessArrayRow,
    MailboxDatabaseRow,
    SendConnectorRow,
    SendConnectorSourceRow,
    ServerRow,
    SiteRow,
)
from casarray.directory.transport.receive_connectors import default_connector_rows
from casarray.directory.virtual_directories import setup_client_access

if TYPE_CHECKING:
    from casarray.directory.service import Directory

SERVER = identity.Kind(
    label="server",
    row=ServerRow,
    keys=("name_key", "fqdn_key"),
    dn=lambda names, row: names.server_dn(row.name),
    legacy_dn=lambda names, row: names.server_legacy_dn(row.name),
    describe=lambda row: row.fqdn,
)


def parse_roles(roles: ServerRole | Iterable[str] | str) -> ServerRole:
    """ServerRole from a flag, 'ClientAccess,Mailbox', or a list of names (any case)."""
    if isinstance(roles, ServerRole):
        if roles == ServerRole.NONE:
            raise InvalidValueError("Roles", roles, "names no role.")
        return roles
    items = roles.split(",") if isinstance(roles, str) else list(roles)
    result = ServerRole.NONE
    known = {r.name.lower(): r for r in ServerRole if r.name and r is not ServerRole.NONE}
    aliases = {
        "cas": "clientaccess",
        "mb": "mailbox",
        "mbx": "mailbox",
        "ht": "hubtransport",
        "hub": "hubtransport",
    }
    for item in items:
        key = str(item).strip().lower()
        key = aliases.get(key, key)
        if key not in known:
            raise InvalidValueError(
                "Roles",
                item,
                "is not a server role. Valid roles: ClientAccess, Mailbox, HubTransport.",
            )
        result |= known[key]
    if result == ServerRole.NONE:
        raise InvalidValueError("Roles", roles, "names no role.")
    return result


def roles_of(row: ServerRow) -> ServerRole:
    roles = ServerRole.NONE
    if row.client_access:
        roles |= ServerRole.ClientAccess
    if row.mailbox:
        roles |= ServerRole.Mailbox
    if row.hub_transport:
        roles |= ServerRole.HubTransport
    return roles


class ServerService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def record(self, row: ServerRow, site_name: str | None = None) -> Server:
        names = self.dir.names
        return Server(
            guid=row.guid,
            name=row.name,
            fqdn=row.fqdn,
            ip_address=row.ip_address,
            site=site_name if site_name is not None else row.site.name,
            roles=roles_of(row),
            install_order=row.install_order,
            admin_display_version=row.version,
            exchange_legacy_dn=names.server_legacy_dn(row.name),
            distinguished_name=names.server_dn(row.name),
            when_created=row.when_created,
            allow_cross_site_rpc_client_access=bool(row.allow_cross_site_rpc_client_access),
            autodiscover_service_internal_uri=row.autodiscover_service_internal_uri,
        )

    def resolve_row(self, session: Session, server: object) -> ServerRow:
        return identity.resolve(session, self.dir.names, SERVER, server)

    def new(
        self,
        name: str,
        roles: ServerRole | Iterable[str] | str,
        ip_address: str,
        site: object | None = None,
        fqdn: str | None = None,
    ) -> Server:
        """Install a server (setup /mode:install). The site comes from `site` or from
        the subnet that holds `ip_address`."""

        name = validate.server_name("Name", name)
        role_flags = parse_roles(roles)
        address = validate.ipv4("IPAddress", ip_address)
        if fqdn is None:
            fqdn = f"{name}.{self.dir.organization().default_domain}"
        fqdn = validate.fqdn("Fqdn", fqdn)
        with self.dir.store.write() as session:
            by_address = self.dir.sites.site_row_for_address(session, address)
            if site is not None:
                site_row = self.dir.sites.resolve_row(session, site)
                if by_address is not None and by_address.id != site_row.id:
                    raise InvalidValueError(
                        "IPAddress",
                        address,
                        f"belongs to a subnet of site '{by_address.name}', not of site "
                        f"'{site_row.name}'.",
                    )
            elif by_address is not None:
                site_row = by_address
            else:
                raise InvalidValueError(
                    "Site",
                    "",
                    f"is missing and no subnet holds {address}: pass -Site or add a subnet "
                    "for the address to a site.",
                )
            self._check_unique(session, name, fqdn, address)
            row = ServerRow(
                guid=new_guid(),
                name=name,
                name_key=name.lower(),
                fqdn=fqdn,
                fqdn_key=fqdn.lower(),
                ip_address=address,
                site_id=site_row.id,
                client_access=ServerRole.ClientAccess in role_flags,
                mailbox=ServerRole.Mailbox in role_flags,
                hub_transport=ServerRole.HubTransport in role_flags,
                install_order=session.info["topology_version"],
                version=EXCHANGE_VERSION,
                when_created=utcnow(),
            )
            session.add(row)
            session.flush()
            if row.hub_transport:
                session.add_all(default_connector_rows(row))
                session.flush()
            if row.client_access:
                session.add_all(setup_client_access(row))
                session.flush()
            return self.record(row, site_row.name)

    def _check_unique(self, session: Session, name: str, fqdn: str, address: str) -> None:
        clash = session.scalars(
            select(ServerRow).where(
                or_(
                    ServerRow.name_key.in_([name.lower(), fqdn.lower()]),
                    ServerRow.fqdn_key.in_([name.lower(), fqdn.lower()]),
                )
            )
        ).first()
        if clash is not None:
            raise ConflictError(
                f"The server '{clash.name}' ({clash.fqdn}) already has that name or FQDN.",
                conflicting=clash.fqdn,
                target=name,
            )
        array = session.scalars(
            select(ClientAccessArrayRow).where(
                or_(
                    ClientAccessArrayRow.name_key.in_([name.lower(), fqdn.lower()]),
                    ClientAccessArrayRow.fqdn_key.in_([name.lower(), fqdn.lower()]),
                )
            )
        ).first()
        if array is not None:
            raise ConflictError(
                f"The client access array '{array.name}' ({array.fqdn}) already uses that "
                "name or FQDN; a server can't share it.",
                conflicting=array.fqdn,
                target=name,
            )
        by_ip = session.scalars(select(ServerRow).where(ServerRow.ip_address == address)).first()
        if by_ip is not None:
            raise ConflictError(
                f"The address {address} is already used by server '{by_ip.name}'.",
                conflicting=by_ip.fqdn,
                target=address,
            )

    def get(
        self,
        server: object | None = None,
        *,
        site: object | None = None,
        role: ServerRole | None = None,
    ) -> list[Server]:
        """Servers, oldest install first; filtered by identity, site and role."""
        with self.dir.store.read() as session:
            stmt = (
                select(ServerRow, SiteRow.name)
                .join(SiteRow, ServerRow.site_id == SiteRow.id)
                .order_by(ServerRow.install_order)
            )
            if server is not None:
                rows = [identity.resolve(session, self.dir.names, SERVER, server, stmt)]
            else:
                if site is not None:
                    stmt = stmt.where(
                        ServerRow.site_id == self.dir.sites.resolve_row(session, site).id
                    )
                rows = list(session.execute(stmt))
            records = [self.record(row, site_name) for row, site_name in rows]
        if role is not None:
            records = [r for r in records if role in r.roles]
        return records

    def one(self, server: object) -> Server:
        return self.get(server)[0]

    def _client_access_row(self, session: Session, server: object) -> ServerRow:
        row = self.resolve_row(session, server)
        if not row.client_access:
            raise InvalidOperationError(
                f"The server '{row.name}' isn't a Client Access server (its roles: "
                f"{roles_of(row)}).",
                target=row.name,
            )
        return row

    def set_client_access(
        self, server: object, *, allow_cross_site_rpc_client_access: bool | None = None
    ) -> Server:
        """Set-ClientAccessServer: the settings of a Client Access server."""
        with self.dir.store.write() as session:
            row = self._client_access_row(session, server)
            if allow_cross_site_rpc_client_access is not None:
                row.allow_cross_site_rpc_client_access = bool(allow_cross_site_rpc_client_access)
            guid = row.guid
        return self.one(guid)

    def rpc_access_policy(self, server: object) -> RpcAccessPolicy:
        """The Client Access server `server`'s side of the referral rule (see
        `rpc_access`): its names, its site and site's array, and whether it allows
        cross-site RPC client access, read in one go."""
        with self.dir.store.read() as session:
            row = self._client_access_row(session, server)
            site = session.scalars(select(SiteRow.name).where(SiteRow.id == row.site_id)).one()
            array_fqdn = session.scalars(
                select(ClientAccessArrayRow.fqdn).where(ClientAccessArrayRow.site_id == row.site_id)
            ).first()
            return RpcAccessPolicy(
                server=row.name,
                server_fqdn=row.fqdn,
                site=site,
                array_fqdn=array_fqdn,
                allow_cross_site=bool(row.allow_cross_site_rpc_client_access),
            )

    def client_access_rows(self, session: Session, site_id: int) -> list[ServerRow]:
        return list(
            session.scalars(
                select(ServerRow)
                .where(ServerRow.site_id == site_id, ServerRow.client_access.is_(True))
                .order_by(ServerRow.install_order)
            )
        )

    def remove(self, server: object, *, force: bool = False) -> list[str]:
        """Uninstall a server. Refused while it holds databases, and while databases
        name it as RpcClientAccessServer unless `force` (KB 982678): returns the names of
        the databases left pointing at the removed name."""
        with self.dir.store.write() as session:
            row = self.resolve_row(session, server)
            owned = list(
                session.scalars(
                    select(MailboxDatabaseRow.name)
                    .where(MailboxDatabaseRow.server_id == row.id)
                    .order_by(MailboxDatabaseRow.name_key)
                )
            )
            if owned:
                raise InUseError(
                    f"The server '{row.name}' still holds mailbox databases: "
                    f"{', '.join(owned)}. Remove or move them first.",
                    dependents=owned,
                    target=row.name,
                )
            pointing = list(
                session.scalars(
                    select(MailboxDatabaseRow.name)
                    .where(MailboxDatabaseRow.rpc_client_access_server_key == row.fqdn_key)
                    .order_by(MailboxDatabaseRow.name_key)
                )
            )
            if pointing and not force:
                raise InUseError(
                    f"The server '{row.name}' is the RpcClientAccessServer of mailbox databases "
                    f"{', '.join(pointing)}; their users could no longer connect. Point them "
                    f"elsewhere first (Set-MailboxDatabase <name> -RpcClientAccessServer "
                    f"<array or server FQDN>), or use -Force.",
                    dependents=pointing,
                    target=row.name,
                )
            sole_source = self._sole_source_of(session, row)
            if sole_source:
                raise InUseError(
                    f"The server '{row.name}' is the only source server of the send "
                    f"connectors {', '.join(sole_source)}; mail routed to them could no "
                    "longer leave. Add another Hub Transport server to their "
                    "SourceTransportServers, or remove them, first.",
                    dependents=sole_source,
                    target=row.name,
                )
            session.delete(row)
            return pointing

    def _sole_source_of(self, session: Session, row: ServerRow) -> list[str]:
        """The send connectors whose only source server is `row`."""
        out = []
        connectors = session.scalars(
            select(SendConnectorRow)
            .join(
                SendConnectorSourceRow, SendConnectorSourceRow.connector_id == SendConnectorRow.id
            )
            .where(SendConnectorSourceRow.server_id == row.id)
            .order_by(SendConnectorRow.name_key)
        )
        for connector in connectors:
            sources = session.scalars(
                select(SendConnectorSourceRow.server_id).where(
                    SendConnectorSourceRow.connector_id == connector.id
                )
            ).all()
            if set(sources) == {row.id}:
                out.append(connector.name)
        return out

    def site_name(self, session: Session, site_id: int) -> str:
        return session.scalars(select(SiteRow.name).where(SiteRow.id == site_id)).one()
