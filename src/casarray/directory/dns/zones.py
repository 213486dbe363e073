"""DNS zones (Get-DnsServerZone, Add-DnsServerPrimaryZone, Remove-DnsServerZone).
Every accepted domain is a zone, with no command; `Add-DnsServerPrimaryZone` adds
others. A name belongs to the most specific zone that holds it; a zone inside another
is delegated from it (NS and glue in the parent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from casarray.directory import validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.dns.objects import DnsZone
from casarray.directory.dns.values import zone_name
from casarray.directory.errors import ConflictError, InvalidOperationError, NotFoundError
from casarray.directory.schema import AcceptedDomainRow, DnsRecordRow, DnsZoneRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def zone_names(session: Session) -> tuple[list[str], list[DnsZoneRow]]:
    accepted = [
        row.domain.lower()
        for row in session.scalars(select(AcceptedDomainRow).order_by(AcceptedDomainRow.id))
        if not row.domain.startswith("*.")  # a wildcard accepted domain is no zone
    ]
    added = list(session.scalars(select(DnsZoneRow).order_by(DnsZoneRow.id)))
    return accepted, added


def zone_key(session: Session, name: str) -> str:
    """The key of an existing zone named `name` (any case, a trailing dot or not)."""
    accepted, added = zone_names(session)
    key = str(name).strip().lower().rstrip(".")
    if key in accepted or any(row.name_key == key for row in added):
        return key
    raise NotFoundError("DNS zone", str(name))


class ZoneService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def get(self, name: str | None = None) -> list[DnsZone]:
        """Get-DnsServerZone: the accepted domains' zones, then those added by cmdlet."""
        with self.dir.store.read() as session:
            accepted, added = zone_names(session)
        zones = [DnsZone(d, "Primary", True, None, True, None) for d in accepted] + [
            DnsZone(
                row.name_key,
                "Primary",
                not row.zone_file,
                row.zone_file or None,
                False,
                row.when_created,
            )
            for row in added
            if row.name_key not in accepted
        ]
        if name is None:
            return zones
        key = str(name).strip().lower().rstrip(".")
        found = [z for z in zones if z.zone_name == key]
        if not found:
            raise NotFoundError("DNS zone", str(name))
        return found

    def one(self, name: str) -> DnsZone:
        return self.get(name)[0]

    def add(self, name: str, zone_file: str | None = None) -> DnsZone:
        """Add-DnsServerPrimaryZone. -ZoneFile is kept and shown (the zone lives in the
        directory either way)."""

        key = zone_name("Name", name)
        file_name = validate.display_name("ZoneFile", zone_file, 255) if zone_file else ""
        with self.dir.store.write() as session:
            accepted, added = zone_names(session)
            if key in accepted:
                raise ConflictError(
                    f"The zone {key} already exists: it is the zone of the accepted domain {key}.",
                    conflicting=key,
                    target=key,
                )
            if any(row.name_key == key for row in added):
                raise ConflictError(f"The zone {key} already exists.", conflicting=key, target=key)
            row = DnsZoneRow(
                guid=new_guid(),
                name=key,
                name_key=key,
                zone_file=file_name,
                when_created=utcnow(),
            )
            session.add(row)
            session.flush()
            return DnsZone(
                key, "Primary", not file_name, file_name or None, False, row.when_created
            )

    def remove(self, name: str) -> DnsZone:
        """Remove-DnsServerZone: a zone added by cmdlet, with its records."""
        key = str(name).strip().lower().rstrip(".")
        with self.dir.store.write() as session:
            accepted, added = zone_names(session)
            if key in accepted:
                raise InvalidOperationError(
                    f"The zone {key} is the zone of the accepted domain {key}; it exists as "
                    "long as the accepted domain does and can't be removed.",
                    target=key,
                )
            row = next((r for r in added if r.name_key == key), None)
            if row is None:
                raise NotFoundError("DNS zone", str(name))
            zone = DnsZone(
                key, "Primary", not row.zone_file, row.zone_file or None, False, row.when_created
            )
            session.execute(delete(DnsRecordRow).where(DnsRecordRow.zone_key == key))
            session.delete(row)
            return zone
