"""Send connectors (New-, Get-, Set-, Remove-SendConnector): how mail leaves the
organization. A connector serves its address spaces ("*" for everything,
"*.contoso.com" for contoso.com and its subdomains, "contoso.com" for that domain
alone), each with a cost; it sends to its smart hosts or, with DNSRoutingEnabled, to
the domain's MX hosts (Exchange: one or the other); and it leaves from its source
transport servers (casarray: any Hub Transport server when none is named).

`route_for` picks the connector for a domain as Exchange does: among the enabled
connectors the server may use, the most specific address space, then the lowest cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import ConflictError, InvalidValueError
from casarray.directory.objects import Names, escape_rdn
from casarray.directory.schema import SendConnectorRow, SendConnectorSourceRow, ServerRow
from casarray.directory.transport.hubs import hub_row
from casarray.directory.transport.objects import SendConnector
from casarray.directory.transport.values import (
    DEFAULT_MAX_MESSAGE_SIZE,
    SEND_MAX_MESSAGE_SIZE,
    SMTP_PORT,
    address_spaces,
    items,
    join_lines,
    pattern_matches,
    port,
    size,
    smart_hosts,
    specificity,
    split_lines,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

FIELDS = (
    "address_spaces",
    "smart_hosts",
    "dns_routing_enabled",
    "source_transport_servers",
    "port",
    "require_tls",
    "max_message_size",
    "enabled",
)


def send_connector_dn(names: Names, name: str) -> str:
    return (
        f"CN={escape_rdn(name)},CN=Connections,CN=Exchange Routing Group (DWBGZMFD01QNBJR),"
        f"CN=Routing Groups,{names.admin_group_dn}"
    )


SEND_CONNECTOR = identity.Kind(
    label="send connector",
    row=SendConnectorRow,
    keys=("name_key",),
    dn=lambda names, row: send_connector_dn(names, row.name),
    describe=lambda row: row.name,
)


def _spaces(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for line in split_lines(text):
        pattern, _, cost = line.rpartition(";")
        out.append((pattern, int(cost)))
    return tuple(out)


def check(values: dict[str, Any]) -> dict[str, Any]:
    """Each given field checked (parameter names as Exchange's); servers stay identities."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"a send connector has no setting {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for field, value in values.items():
        if value is None:
            continue
        if field == "address_spaces":
            out[field] = address_spaces("AddressSpaces", value)
        elif field == "smart_hosts":
            out[field] = smart_hosts("SmartHosts", value)
        elif field == "source_transport_servers":
            out[field] = tuple(items(value)) if not _objects(value) else tuple(value)
        elif field == "port":
            out[field] = port("Port", value)
        elif field == "max_message_size":
            out[field] = size("MaxMessageSize", value, *SEND_MAX_MESSAGE_SIZE)
        else:
            out[field] = bool(value)
    return out


def _objects(value: object) -> bool:
    """Whether `value` is a list holding objects (piped servers), not only text."""
    return isinstance(value, (list, tuple)) and any(not isinstance(v, str) for v in value)


def _check_routing(dns_routing_enabled: bool, hosts: tuple[str, ...]) -> None:
    if dns_routing_enabled and hosts:
        raise InvalidValueError(
            "SmartHosts",
            ", ".join(hosts),
            "can't be used with DNSRoutingEnabled $true: a send connector sends by MX "
            "records or to smart hosts. Add -DNSRoutingEnabled $false.",
        )
    if not dns_routing_enabled and not hosts:
        raise InvalidValueError(
            "SmartHosts",
            "",
            "is empty while DNSRoutingEnabled is $false: name the smart hosts, or route by "
            "DNS (-DNSRoutingEnabled $true).",
        )


class SendConnectorService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def record(self, session: Session, row: SendConnectorRow) -> SendConnector:
        sources = session.scalars(
            select(ServerRow.name)
            .join(SendConnectorSourceRow, SendConnectorSourceRow.server_id == ServerRow.id)
            .where(SendConnectorSourceRow.connector_id == row.id)
            .order_by(ServerRow.install_order)
        )
        return SendConnector(
            name=row.name,
            address_spaces=_spaces(row.address_spaces),
            smart_hosts=split_lines(row.smart_hosts),
            dns_routing_enabled=bool(row.dns_routing_enabled),
            source_transport_servers=tuple(sources),
            port=row.port,
            require_tls=bool(row.require_tls),
            max_message_size=row.max_message_size,
            enabled=bool(row.enabled),
            guid=row.guid,
            distinguished_name=send_connector_dn(self.dir.names, row.name),
        )

    def resolve_row(self, session: Session, connector: object) -> SendConnectorRow:
        return identity.resolve(session, self.dir.names, SEND_CONNECTOR, connector)

    def get(self) -> list[SendConnector]:
        with self.dir.store.read() as session:
            rows = session.scalars(select(SendConnectorRow).order_by(SendConnectorRow.name_key))
            return [self.record(session, row) for row in rows]

    def one(self, connector: object) -> SendConnector:
        with self.dir.store.read() as session:
            return self.record(session, self.resolve_row(session, connector))

    def new(self, name: str, **fields: Any) -> SendConnector:
        """New-SendConnector: `address_spaces` required; DNS routing unless smart hosts
        are given; port 25, 10 MB, enabled, no TLS required (Exchange's defaults)."""
        name = validate.display_name("Name", name)
        given = check(fields)
        if "address_spaces" not in given:
            raise InvalidValueError(
                "AddressSpaces", "", "is missing: a send connector needs an address space."
            )
        hosts = given.get("smart_hosts", ())
        dns = given.get("dns_routing_enabled", not hosts)
        _check_routing(dns, hosts)
        with self.dir.store.write() as session:
            self._check_name(session, name, None)
            sources = [
                hub_row(self.dir, session, s) for s in given.get("source_transport_servers", ())
            ]
            now = utcnow()
            row = SendConnectorRow(
                guid=new_guid(),
                name=name,
                name_key=name.lower(),
                address_spaces=join_lines(f"{p};{c}" for p, c in given["address_spaces"]),
                smart_hosts=join_lines(hosts),
                dns_routing_enabled=dns,
                port=given.get("port", SMTP_PORT),
                require_tls=given.get("require_tls", False),
                max_message_size=given.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
                enabled=given.get("enabled", True),
                when_created=now,
                when_changed=now,
            )
            session.add(row)
            session.flush()
            self._set_sources(session, row, sources)
            return self.record(session, row)

    def set(self, connector: object, **changes: Any) -> SendConnector:
        """Set-SendConnector: `name` and any field."""
        name = changes.pop("name", None)
        if name is not None:
            name = validate.display_name("Name", name)
        given = check(changes)
        with self.dir.store.write() as session:
            row = self.resolve_row(session, connector)
            hosts = given.get("smart_hosts", split_lines(row.smart_hosts))
            dns = given.get("dns_routing_enabled", bool(row.dns_routing_enabled))
            _check_routing(dns, hosts)
            if name is not None:
                self._check_name(session, name, row.id)
                row.name, row.name_key = name, name.lower()
            if "source_transport_servers" in given:
                sources = [hub_row(self.dir, session, s) for s in given["source_transport_servers"]]
                self._set_sources(session, row, sources)
            if "address_spaces" in given:
                row.address_spaces = join_lines(f"{p};{c}" for p, c in given["address_spaces"])
            row.smart_hosts = join_lines(hosts)
            row.dns_routing_enabled = dns
            for field in ("port", "require_tls", "max_message_size", "enabled"):
                if field in given:
                    setattr(row, field, given[field])
            row.when_changed = utcnow()
            session.flush()
            return self.record(session, row)

    def remove(self, connector: object) -> SendConnector:
        with self.dir.store.write() as session:
            row = self.resolve_row(session, connector)
            record = self.record(session, row)
            session.delete(row)
            return record

    def route_for(self, domain: str, server: str | None = None) -> SendConnector | None:
        """The send connector mail for `domain` leaves by from `server` (any server when
        None): the enabled connectors whose source servers are none or include it, then
        the most specific matching address space, then the lowest cost, then the name."""
        wanted = str(domain).strip().lower().rstrip(".")
        best: tuple[tuple[int, int], int, str, SendConnector] | None = None
        for connector in self.get():
            if not connector.enabled:
                continue
            if server is not None and connector.source_transport_servers:
                names = {s.lower() for s in connector.source_transport_servers}
                if str(server).strip().lower().split(".")[0] not in names:
                    continue
            for pattern, cost in connector.address_spaces:
                if not pattern_matches(pattern, wanted):
                    continue
                key = (specificity(pattern), -cost, connector.name.lower())
                if (
                    best is None
                    or (key[0], key[1]) > (best[0], best[1])
                    or ((key[0], key[1]) == (best[0], best[1]) and key[2] < best[2])
                ):
                    best = (key[0], key[1], key[2], connector)
        return best[3] if best is not None else None

    def _check_name(self, session: Session, name: str, exclude_id: int | None) -> None:
        clash = session.scalars(
            select(SendConnectorRow).where(SendConnectorRow.name_key == name.lower())
        ).first()
        if clash is not None and clash.id != exclude_id:
            raise ConflictError(
                f"A send connector named '{clash.name}' already exists.",
                conflicting=clash.name,
                target=name,
            )

    def _set_sources(
        self, session: Session, row: SendConnectorRow, sources: list[ServerRow]
    ) -> None:
        for old in session.scalars(
            select(SendConnectorSourceRow).where(SendConnectorSourceRow.connector_id == row.id)
        ):
            session.delete(old)
        session.flush()
        for server_id in dict.fromkeys(s.id for s in sources):
            session.add(SendConnectorSourceRow(connector_id=row.id, server_id=server_id))
        session.flush()
