"""Client access arrays: one virtual name per site that clients use instead of any one
Client Access server. Membership is computed, never stored: every ClientAccess server
of the array's site, including servers installed later."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import ConflictError, InUseError
from casarray.directory.objects import ClientAccessArray
from casarray.directory.schema import (
    ClientAccessArrayRow,
    MailboxDatabaseRow,
    ServerRow,
    SiteRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

ARRAY = identity.Kind(
    label="client access array",
    row=ClientAccessArrayRow,
    keys=("name_key", "fqdn_key"),
    dn=lambda names, row: names.array_dn(row.name),
    legacy_dn=lambda names, row: names.array_legacy_dn(row.fqdn),
    describe=lambda row: f"{row.name} ({row.fqdn})",
)


class ArrayService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def record(
        self, session: Session, row: ClientAccessArrayRow, site_name: str | None = None
    ) -> ClientAccessArray:
        names = self.dir.names
        members = tuple(r.name for r in self.dir.servers.client_access_rows(session, row.site_id))
        return ClientAccessArray(
            guid=row.guid,
            name=row.name,
            fqdn=row.fqdn,
            site=site_name or self.dir.servers.site_name(session, row.site_id),
            members=members,
            exchange_legacy_dn=names.array_legacy_dn(row.fqdn),
            distinguished_name=names.array_dn(row.name),
            when_created=row.when_created,
            when_changed=row.when_changed,
        )

    def resolve_row(self, session: Session, array: object) -> ClientAccessArrayRow:
        return identity.resolve(session, self.dir.names, ARRAY, array)

    def _check_names(
        self, session: Session, name: str, fqdn: str, exclude_id: int | None = None
    ) -> None:
        keys = [name.lower(), fqdn.lower()]
        stmt = select(ClientAccessArrayRow).where(
            or_(
                ClientAccessArrayRow.fqdn_key.in_(keys),
                ClientAccessArrayRow.name_key.in_(keys),
            )
        )
        for other in session.scalars(stmt):
            if other.id == exclude_id:
                continue
            what = "FQDN" if fqdn.lower() in (other.fqdn_key, other.name_key) else "name"
            raise ConflictError(
                f"The {what} is already used by the client access array '{other.name}' "
                f"({other.fqdn}) in site '{other.site.name}'.",
                conflicting=other.name,
                target=fqdn,
            )
        server = session.scalars(
            select(ServerRow).where(or_(ServerRow.name_key.in_(keys), ServerRow.fqdn_key.in_(keys)))
        ).first()
        if server is not None:
            raise ConflictError(
                f"The array's name or FQDN is the name of server '{server.name}' "
                f"({server.fqdn}). An array needs its own virtual name, so that clients don't "
                "depend on any one server.",
                conflicting=server.fqdn,
                target=fqdn,
            )

    def _check_site_free(self, session: Session, site: SiteRow, exclude_id: int | None) -> None:
        other = session.scalars(
            select(ClientAccessArrayRow).where(ClientAccessArrayRow.site_id == site.id)
        ).first()
        if other is not None and other.id != exclude_id:
            raise ConflictError(
                f"Site '{site.name}' already has the client access array '{other.name}' "
                f"({other.fqdn}); a site can have only one.",
                conflicting=other.name,
                target=site.name,
            )

    def new(self, fqdn: str, site: object, name: str | None = None) -> ClientAccessArray:
        """New-ClientAccessArray. Existing databases are not changed."""

        fqdn = validate.fqdn("Fqdn", fqdn)
        name = validate.display_name("Name", name if name else fqdn.split(".")[0], 64)
        with self.dir.store.write() as session:
            site_row = self.dir.sites.resolve_row(session, site)
            self._check_site_free(session, site_row, None)
            self._check_names(session, name, fqdn)
            now = utcnow()
            row = ClientAccessArrayRow(
                guid=new_guid(),
                name=name,
                name_key=name.lower(),
                fqdn=fqdn,
                fqdn_key=fqdn.lower(),
                site_id=site_row.id,
                when_created=now,
                when_changed=now,
            )
            session.add(row)
            session.flush()
            return self.record(session, row)

    def get(
        self, array: object | None = None, *, site: object | None = None
    ) -> list[ClientAccessArray]:
        with self.dir.store.read() as session:
            stmt = (
                select(ClientAccessArrayRow, SiteRow.name)
                .join(SiteRow, ClientAccessArrayRow.site_id == SiteRow.id)
                .order_by(ClientAccessArrayRow.name_key)
            )
            if array is not None:
                rows = [identity.resolve(session, self.dir.names, ARRAY, array, stmt)]
            else:
                if site is not None:
                    site_id = self.dir.sites.resolve_row(session, site).id
                    stmt = stmt.where(ClientAccessArrayRow.site_id == site_id)
                rows = list(session.execute(stmt))
            return [self.record(session, row, site_name) for row, site_name in rows]

    def one(self, array: object) -> ClientAccessArray:
        return self.get(array)[0]

    def for_site(self, site: object) -> ClientAccessArray | None:
        found = self.get(site=site)
        return found[0] if found else None

    def set(
        self,
        array: object,
        *,
        name: str | None = None,
        fqdn: str | None = None,
        site: object | None = None,
    ) -> ClientAccessArray:
        """Set-ClientAccessArray. A new FQDN carries along the databases that named the
        old one, since they meant this array."""

        new_fqdn = validate.fqdn("Fqdn", fqdn) if fqdn is not None else None
        new_name = validate.display_name("Name", name, 64) if name is not None else None
        with self.dir.store.write() as session:
            row = self.resolve_row(session, array)
            target_name = new_name or row.name
            target_fqdn = new_fqdn or row.fqdn
            self._check_names(session, target_name, target_fqdn, exclude_id=row.id)
            if site is not None:
                site_row = self.dir.sites.resolve_row(session, site)
                self._check_site_free(session, site_row, row.id)
                row.site_id = site_row.id
            if new_fqdn is not None and new_fqdn != row.fqdn:
                session.execute(
                    update(MailboxDatabaseRow)
                    .where(MailboxDatabaseRow.rpc_client_access_server_key == row.fqdn_key)
                    .values(
                        rpc_client_access_server=new_fqdn,
                        rpc_client_access_server_key=new_fqdn.lower(),
                    )
                )
            row.name, row.name_key = target_name, target_name.lower()
            row.fqdn, row.fqdn_key = target_fqdn, target_fqdn.lower()
            row.when_changed = utcnow()
            session.flush()
            return self.record(session, row)

    def remove(self, array: object, *, force: bool = False) -> list[str]:
        """Remove-ClientAccessArray. Refused while databases name the array unless
        `force`; returns the databases left pointing at the removed name."""
        with self.dir.store.write() as session:
            row = self.resolve_row(session, array)
            pointing = list(
                session.scalars(
                    select(MailboxDatabaseRow.name)
                    .where(MailboxDatabaseRow.rpc_client_access_server_key == row.fqdn_key)
                    .order_by(MailboxDatabaseRow.name_key)
                )
            )
            if pointing and not force:
                raise InUseError(
                    f"The client access array '{row.name}' ({row.fqdn}) is the "
                    f"RpcClientAccessServer of mailbox databases {', '.join(pointing)}; their "
                    "users could no longer connect. Point them elsewhere first "
                    "(Set-MailboxDatabase <name> -RpcClientAccessServer <FQDN>), or use -Force.",
                    dependents=pointing,
                    target=row.name,
                )
            session.delete(row)
            return pointing
