"""Resource records (Get-, Add-, Remove-DnsServerResourceRecord): the records of a zone
as served, and the records added by cmdlet. RFC 1034's rule holds for those: a CNAME
has its name to itself (no other data, no second CNAME, not at the apex), and the
same record can't be added twice. An automatic record (see `contents`) can't be
removed by cmdlet: the error names the directory object it comes from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.base import utcnow
from casarray.directory.dns.contents import read_contents
from casarray.directory.dns.objects import DnsRecord
from casarray.directory.dns.values import (
    DEFAULT_TTL,
    LABEL,
    RECORD_TYPES,
    SHOWN_TYPES,
    article,
    parse_ttl,
    record_data,
    record_type,
)
from casarray.directory.dns.zones import zone_key, zone_names
from casarray.directory.errors import (
    ConflictError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.schema import DnsRecordRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def owner(
    zone: str, name: str | None, zones: list[str], parameter: str, *, adding: bool = False
) -> tuple[str, str]:
    """(relative name or "@", FQDN) of a record's name in `zone`. When `adding`, a name
    that belongs to a zone inside `zone` is refused. "@" (or
    "." as Windows also writes it) is the zone itself; a name ending in a dot is
    absolute; one ending in the zone's name is taken as the FQDN
    it already is; any other is relative to the zone."""
    text = str(name if name is not None else "").strip()
    if text in ("", "@", "."):
        return "@", zone
    if text.endswith("."):
        absolute = text[:-1]
    elif text.lower() == zone or text.lower().endswith("." + zone):
        absolute = text
    else:
        absolute = f"{text}.{zone}"
    lower = absolute.lower()
    if lower != zone and not lower.endswith("." + zone):
        raise InvalidValueError(
            parameter, name, f"is not in the zone {zone}: the name must end in {zone}."
        )
    if lower == zone:
        return "@", zone
    relative = absolute[: -len(zone) - 1]
    if len(absolute) > 253:
        raise InvalidValueError(parameter, name, "is longer than 253 characters.")
    labels = relative.split(".")
    for i, label in enumerate(labels):
        if label == "*" and i == 0:
            continue
        if not LABEL.fullmatch(label):
            raise InvalidValueError(
                parameter,
                name,
                f"is not a valid DNS name: label '{label}' must be 1 to 63 letters, digits, "
                "hyphens or underscores, not starting or ending with a hyphen.",
            )
    inner = [
        z
        for z in zones
        if z != zone and z.endswith("." + zone) and (lower == z or lower.endswith("." + z))
    ]
    if inner and adding:
        raise InvalidValueError(
            parameter,
            name,
            f"belongs to the zone {max(inner, key=len)}, not to {zone}; add it there.",
        )
    return relative, absolute


class RecordService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def get(
        self, zone: str, name: str | None = None, rr_type: str | None = None
    ) -> list[DnsRecord]:
        """Get-DnsServerResourceRecord: the zone's records as served (automatic and
        added by cmdlet), optionally only those at `name` and of `rr_type`."""
        with self.dir.store.read() as session:
            key = zone_key(session, zone)
            contents = read_contents(session)
            accepted, added = zone_names(session)
            zones = accepted + [r.name_key for r in added]
            host = owner(key, name, zones, "Name")[0] if name is not None else None
        wanted_type = record_type("RRType", rr_type, SHOWN_TYPES) if rr_type is not None else None
        return [
            r
            for r in contents.zone(key).records
            if (host is None or r.host_name.lower() == host.lower())
            and (wanted_type is None or r.record_type == wanted_type)
        ]

    def add(
        self,
        zone: str,
        name: str | None,
        rr_type: str,
        data: str,
        ttl: object = None,
    ) -> DnsRecord:
        """Add a resource record (A, AAAA, CNAME, MX, SRV, TXT) in master-file form (for
        MX "10 mail.lab.net", SRV "0 100 443 host.lab.net"). RFC 1034's rule holds: a
        CNAME has its name to itself (no other data, no second CNAME, not at the apex),
        and adding the same record twice is refused."""
        rtype = record_type("RRType", rr_type, RECORD_TYPES)
        seconds = parse_ttl("TimeToLive", ttl) if ttl is not None else DEFAULT_TTL
        text = record_data(rtype, data)
        with self.dir.store.write() as session:
            key = zone_key(session, zone)
            accepted, added = zone_names(session)
            zones = accepted + [r.name_key for r in added]
            host, fqdn = owner(key, name, zones, "Name", adding=True)
            if host == "@" and rtype == "CNAME":
                raise InvalidValueError(
                    "Name",
                    name or "@",
                    f"is the zone's apex ({key}), which has the zone's SOA and NS records; a "
                    "CNAME can't share a name with other data (RFC 1034).",
                )
            self._check_clash(session, key, host, fqdn, rtype, text)
            row = DnsRecordRow(
                zone_key=key,
                name=host,
                name_key=host.lower(),
                rr_type=rtype,
                data=text,
                ttl=seconds,
                when_created=utcnow(),
            )
            session.add(row)
            session.flush()
            return DnsRecord(key, host, rtype, seconds, text, None, row.when_created)

    def _check_clash(
        self, session: Session, zone: str, host: str, fqdn: str, rtype: str, text: str
    ) -> None:
        rows = list(
            session.scalars(
                select(DnsRecordRow).where(
                    DnsRecordRow.zone_key == zone, DnsRecordRow.name_key == host.lower()
                )
            )
        )
        for row in rows:
            if row.rr_type == rtype and row.data == text:
                raise ConflictError(
                    f"The {rtype} record {fqdn} {text} already exists in zone {zone}.",
                    conflicting=f"{fqdn} {rtype} {text}",
                    target=fqdn,
                )
            if rtype == "CNAME" or row.rr_type == "CNAME":
                raise ConflictError(
                    f"{fqdn} already has {article(row.rr_type)} record ({row.data}); a CNAME can't "
                    "share its name with other data (RFC 1034): remove that record first.",
                    conflicting=f"{fqdn} {row.rr_type} {row.data}",
                    target=fqdn,
                )
        if rtype == "CNAME":
            served = read_contents(session).zone(zone)
            automatic = [
                r
                for r in served.records
                if r.host_name.lower() == host.lower() and not r.replaceable
            ]
            if automatic:
                first = automatic[0]
                raise ConflictError(
                    f"{fqdn} already has {article(first.record_type)} record ({first.data}) made "
                    f"from {first.origin}; a CNAME can't share its name with other data "
                    "(RFC 1034).",
                    conflicting=f"{fqdn} {first.record_type} {first.data}",
                    target=fqdn,
                )

    def remove(
        self, zone: str, name: str | None, rr_type: str, data: str | None = None
    ) -> list[DnsRecord]:
        """Remove-DnsServerResourceRecord: the cmdlet records of `rr_type` at `name` (only
        the one with `data` if given). An automatic record can't be removed: the error
        names the directory object it comes from."""
        rtype = record_type("RRType", rr_type, SHOWN_TYPES)
        with self.dir.store.write() as session:
            key = zone_key(session, zone)
            accepted, added = zone_names(session)
            zones = accepted + [r.name_key for r in added]
            host, fqdn = owner(key, name, zones, "Name")
            wanted = (
                record_data(rtype, data) if data is not None and rtype in RECORD_TYPES else data
            )
            rows = [
                row
                for row in session.scalars(
                    select(DnsRecordRow)
                    .where(
                        DnsRecordRow.zone_key == key,
                        DnsRecordRow.name_key == host.lower(),
                        DnsRecordRow.rr_type == rtype,
                    )
                    .order_by(DnsRecordRow.id)
                )
                if wanted is None or row.data == wanted
            ]
            if not rows:
                served = read_contents(session).zone(key)
                automatic = [
                    r
                    for r in served.records
                    if r.host_name.lower() == host.lower()
                    and r.record_type == rtype
                    and (wanted is None or r.data == wanted)
                ]
                if automatic:
                    first = automatic[0]
                    raise InvalidOperationError(
                        f"The {rtype} record {fqdn} {first.data} is made from {first.origin} "
                        "in the directory, not added by cmdlet; change or remove that object "
                        "instead.",
                        target=fqdn,
                    )
                what = f"{rtype} record {fqdn}" + (f" {data}" if data is not None else "")
                raise NotFoundError("DNS resource record", what)
            removed = [
                DnsRecord(key, r.name, r.rr_type, r.ttl, r.data, None, r.when_created) for r in rows
            ]
            for row in rows:
                session.delete(row)
            return removed
