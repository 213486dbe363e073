"""Active Directory sites and their subnets. A server's site follows from its address
through the subnets (the longest matching prefix wins, as in AD)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import ConflictError, InUseError
from casarray.directory.objects import Site, Subnet
from casarray.directory.schema import (
    ClientAccessArrayRow,
    ServerRow,
    SiteRow,
    SubnetRow,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

SITE = identity.Kind(
    label="site",
    row=SiteRow,
    keys=("name_key",),
    dn=lambda names, row: names.site_dn(row.name),
    describe=lambda row: row.name,
)

SUBNET = identity.Kind(
    label="subnet",
    row=SubnetRow,
    keys=("cidr",),
    dn=lambda names, row: names.subnet_dn(row.cidr),
    describe=lambda row: row.cidr,
)


class SiteService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def _record(self, row: SiteRow) -> Site:
        return Site(
            guid=row.guid,
            name=row.name,
            subnets=tuple(s.cidr for s in row.subnets),
            distinguished_name=self.dir.names.site_dn(row.name),
            when_created=row.when_created,
        )

    def resolve_row(self, session: Session, site: object) -> SiteRow:
        return identity.resolve(session, self.dir.names, SITE, site)

    def new(self, name: str, subnets: tuple[str, ...] | list[str] = ()) -> Site:
        name = validate.display_name("Name", name)
        cidrs = [validate.cidr("Subnets", c) for c in subnets]
        with self.dir.store.write() as session:
            existing = session.scalars(
                select(SiteRow).where(SiteRow.name_key == name.lower())
            ).first()
            if existing is not None:
                raise ConflictError(
                    f"The site '{existing.name}' already exists.",
                    conflicting=existing.name,
                    target=name,
                )
            row = SiteRow(guid=new_guid(), name=name, name_key=name.lower(), when_created=utcnow())
            session.add(row)
            session.flush()
            for cidr in cidrs:
                self._add_subnet(session, row, cidr)
            session.flush()
            session.refresh(row)
            return self._record(row)

    def get(self, site: object | None = None) -> list[Site]:
        with self.dir.store.read() as session:
            if site is not None:
                return [self._record(self.resolve_row(session, site))]
            rows = session.scalars(select(SiteRow).order_by(SiteRow.name_key))
            return [self._record(r) for r in rows]

    def one(self, site: object) -> Site:
        return self.get(site)[0]

    def remove(self, site: object) -> None:
        with self.dir.store.write() as session:
            row = self.resolve_row(session, site)
            servers = list(
                session.scalars(select(ServerRow.name).where(ServerRow.site_id == row.id))
            )
            arrays = list(
                session.scalars(
                    select(ClientAccessArrayRow.name).where(ClientAccessArrayRow.site_id == row.id)
                )
            )
            if servers or arrays:
                dependents = [f"server {s}" for s in servers] + [f"array {a}" for a in arrays]
                raise InUseError(
                    f"The site '{row.name}' can't be removed: it still holds "
                    f"{', '.join(dependents)}.",
                    dependents=dependents,
                    target=row.name,
                )
            for subnet in list(row.subnets):
                session.delete(subnet)
            session.delete(row)

    # -- subnets --------------------------------------------------------------

    def _add_subnet(self, session: Session, site: SiteRow, cidr: str) -> SubnetRow:
        existing = session.scalars(select(SubnetRow).where(SubnetRow.cidr == cidr)).first()
        if existing is not None:
            raise ConflictError(
                f"The subnet {cidr} already exists in site '{existing.site.name}'.",
                conflicting=existing.site.name,
                target=cidr,
            )
        row = SubnetRow(guid=new_guid(), cidr=cidr, site_id=site.id)
        session.add(row)
        return row

    def add_subnet(self, cidr: str, site: object) -> Subnet:
        cidr = validate.cidr("Name", cidr)
        with self.dir.store.write() as session:
            site_row = self.resolve_row(session, site)
            self._add_subnet(session, site_row, cidr)
            return Subnet(
                guid=session.scalars(select(SubnetRow.guid).where(SubnetRow.cidr == cidr)).one(),
                name=cidr,
                site=site_row.name,
                distinguished_name=self.dir.names.subnet_dn(cidr),
            )

    def subnets(self, site: object | None = None) -> list[Subnet]:
        with self.dir.store.read() as session:
            stmt = select(SubnetRow).order_by(SubnetRow.id)
            if site is not None:
                stmt = stmt.where(SubnetRow.site_id == self.resolve_row(session, site).id)
            return [
                Subnet(
                    guid=r.guid,
                    name=r.cidr,
                    site=r.site.name,
                    distinguished_name=self.dir.names.subnet_dn(r.cidr),
                )
                for r in session.scalars(stmt)
            ]

    def subnet(self, subnet: object) -> Subnet:
        """The one subnet `subnet` names (its CIDR, GUID or distinguished name)."""
        with self.dir.store.read() as session:
            row = identity.resolve(session, self.dir.names, SUBNET, subnet)
            return Subnet(
                guid=row.guid,
                name=row.cidr,
                site=row.site.name,
                distinguished_name=self.dir.names.subnet_dn(row.cidr),
            )

    def remove_subnet(self, subnet: object) -> None:
        with self.dir.store.write() as session:
            row = identity.resolve(session, self.dir.names, SUBNET, subnet)
            session.delete(row)

    def site_row_for_address(self, session: Session, address: str) -> SiteRow | None:
        ip = ipaddress.IPv4Address(address)
        best: tuple[int, int] | None = None
        for cidr, site_id in session.execute(select(SubnetRow.cidr, SubnetRow.site_id)):
            network = ipaddress.IPv4Network(cidr)
            if ip in network and (best is None or network.prefixlen > best[0]):
                best = (network.prefixlen, site_id)
        return session.get(SiteRow, best[1]) if best else None

    def for_address(self, address: str) -> Site | None:
        """The site whose subnets hold `address` (longest prefix), or None."""
        address = validate.ipv4("IPAddress", address)
        with self.dir.store.read() as session:
            row = self.site_row_for_address(session, address)
            return self._record(row) if row else None

    def count(self) -> int:
        with self.dir.store.read() as session:
            return session.scalar(select(func.count()).select_from(SiteRow)) or 0
