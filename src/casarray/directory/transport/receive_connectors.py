"""Receive connectors (New-, Get-, Set-, Remove-ReceiveConnector): how a Hub Transport
server takes SMTP. Setup gives every Hub Transport server two, as Exchange 2010's does:
"Default SERVER" on 0.0.0.0:25 (mail from anywhere; relay only for authenticated users)
and "Client SERVER" on 0.0.0.0:587 (submission by the organization's users).

A connector is named "SERVER\\Name" (or by its name alone when only one server has
it, or its GUID). As in Exchange, two connectors of one server may not share a binding
(the same port, on the same IP or 0.0.0.0) together with the same remote IP range;
with overlapping ranges, the most specific range wins (`connector_for`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.errors import (
    AmbiguousIdentityError,
    ConflictError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.objects import Names, escape_rdn
from casarray.directory.schema import ReceiveConnectorRow, ServerRow
from casarray.directory.transport.hubs import hub_row
from casarray.directory.transport.objects import ReceiveConnector, connector_identity
from casarray.directory.transport.values import (
    AUTH_MECHANISMS,
    MAX_RECIPIENTS,
    PERMISSION_GROUPS,
    RECEIVE_MAX_MESSAGE_SIZE,
    USAGES,
    binding_text,
    bindings,
    choice,
    choices,
    flags_text,
    in_range,
    ip_ranges,
    join_lines,
    range_bounds,
    size,
    split_lines,
    usage_template,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory

ANY_ADDRESS = "0.0.0.0"
DEFAULT_CONNECTORS = ("Default", "Client")  # setup's, named "<usage> SERVER"
FIELDS = (
    "bindings",
    "remote_ip_ranges",
    "auth_mechanism",
    "permission_groups",
    "max_message_size",
    "max_recipients_per_message",
    "banner",
    "fqdn",
    "enabled",
)


def receive_connector_dn(names: Names, server: str, name: str) -> str:
    return (
        f"CN={escape_rdn(name)},CN=SMTP Receive Connectors,CN=Protocols,{names.server_dn(server)}"
    )


@dataclass(frozen=True)
class Settings:
    """A connector's checked values, as stored."""

    bindings: tuple[tuple[str, int], ...]
    remote_ip_ranges: tuple[str, ...]
    auth_mechanism: frozenset[str]
    permission_groups: frozenset[str]
    max_message_size: int
    max_recipients_per_message: int
    banner: str | None
    fqdn: str
    enabled: bool


def check(values: dict[str, Any]) -> dict[str, Any]:
    """Each given field checked (parameter names as Exchange's), others left out."""
    out: dict[str, Any] = {}
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TypeError(f"a receive connector has no setting {', '.join(sorted(unknown))}")
    for field, value in values.items():
        if value is None and field != "banner":
            continue
        if field == "bindings":
            out[field] = bindings("Bindings", value)
        elif field == "remote_ip_ranges":
            out[field] = ip_ranges("RemoteIPRanges", value)
        elif field == "auth_mechanism":
            out[field] = choices("AuthMechanism", value, AUTH_MECHANISMS)
        elif field == "permission_groups":
            out[field] = choices("PermissionGroups", value, PERMISSION_GROUPS)
        elif field == "max_message_size":
            out[field] = size("MaxMessageSize", value, *RECEIVE_MAX_MESSAGE_SIZE)
        elif field == "max_recipients_per_message":
            out[field] = in_range("MaxRecipientsPerMessage", value, *MAX_RECIPIENTS)
        elif field == "banner":
            out[field] = _banner(value)
        elif field == "fqdn":
            out[field] = validate.fqdn("Fqdn", value)
        elif field == "enabled":
            out[field] = bool(value)
    return out


def _banner(value: object) -> str | None:
    """Exchange's rule: a banner is an SMTP 220 reply ("220 mail.contoso.com ready")."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.startswith("220 ") or len(text) < 5:
        raise InvalidValueError(
            "Banner", value, 'must start with "220 " followed by text, e.g. "220 Mail Server".'
        )
    if any(ord(ch) < 32 or ch == "\x7f" for ch in text):
        raise InvalidValueError("Banner", value, "contains a control character.")
    return text


def _check_auth(settings: Settings) -> None:
    mechanisms = settings.auth_mechanism
    if "BasicAuthRequireTLS" in mechanisms and not {"BasicAuth", "Tls"} <= mechanisms:
        raise InvalidValueError(
            "AuthMechanism",
            flags_text(mechanisms, AUTH_MECHANISMS),
            "has BasicAuthRequireTLS without BasicAuth and Tls; it requires both.",
        )


def _store(row: ReceiveConnectorRow, settings: Settings) -> None:
    row.bindings = join_lines(binding_text(b) for b in settings.bindings)
    row.remote_ip_ranges = join_lines(settings.remote_ip_ranges)
    row.auth_mechanism = flags_text(settings.auth_mechanism, AUTH_MECHANISMS)
    row.permission_groups = flags_text(settings.permission_groups, PERMISSION_GROUPS)
    row.max_message_size = settings.max_message_size
    row.max_recipients_per_message = settings.max_recipients_per_message
    row.banner = settings.banner
    row.fqdn = settings.fqdn
    row.enabled = settings.enabled


def _flags(text: str) -> frozenset[str]:
    return frozenset(part.strip() for part in text.split(",") if part.strip())


def _bindings(text: str) -> tuple[tuple[str, int], ...]:
    out = []
    for line in split_lines(text):
        host, _, number = line.rpartition(":")
        out.append((host, int(number)))
    return tuple(out)


def settings_of(row: ReceiveConnectorRow) -> Settings:
    return Settings(
        bindings=_bindings(row.bindings),
        remote_ip_ranges=split_lines(row.remote_ip_ranges),
        auth_mechanism=_flags(row.auth_mechanism),
        permission_groups=_flags(row.permission_groups),
        max_message_size=row.max_message_size,
        max_recipients_per_message=row.max_recipients_per_message,
        banner=row.banner,
        fqdn=row.fqdn,
        enabled=bool(row.enabled),
    )


def bindings_overlap(a: Iterable[tuple[str, int]], b: Iterable[tuple[str, int]]) -> str | None:
    """The first binding of `a` that shares a port and an address with one of `b`
    (0.0.0.0 shares every address), as text."""
    for host_a, port_a in a:
        for host_b, port_b in b:
            if port_a == port_b and (host_a == host_b or ANY_ADDRESS in (host_a, host_b)):
                return binding_text((host_a, port_a))
    return None


def same_range(a: Iterable[str], b: Iterable[str]) -> tuple[str, str] | None:
    """The first entries of `a` and `b` that cover exactly the same addresses."""
    for left in a:
        for right in b:
            if range_bounds(left) == range_bounds(right):
                return left, right
    return None


def new_row(
    server: ServerRow, name: str, settings: Settings, *, guid: str | None = None
) -> ReceiveConnectorRow:
    now = utcnow()
    row = ReceiveConnectorRow(
        guid=guid or new_guid(),
        server_id=server.id,
        name=name,
        name_key=name.lower(),
        when_created=now,
        when_changed=now,
    )
    _store(row, settings)
    return row


def default_connector_rows(server: ServerRow) -> list[ReceiveConnectorRow]:
    """What setup makes for a new Hub Transport server: "Default SERVER" and
    "Client SERVER"."""
    return [
        new_row(server, f"{usage} {server.name}", Settings(**usage_template(usage, server.fqdn)))
        for usage in DEFAULT_CONNECTORS
    ]


class ReceiveConnectorService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def record(self, row: ReceiveConnectorRow, server: str) -> ReceiveConnector:
        settings = settings_of(row)
        return ReceiveConnector(
            name=row.name,
            server=server,
            identity=connector_identity(server, row.name),
            bindings=settings.bindings,
            remote_ip_ranges=settings.remote_ip_ranges,
            auth_mechanism=settings.auth_mechanism,
            permission_groups=settings.permission_groups,
            max_message_size=settings.max_message_size,
            max_recipients_per_message=settings.max_recipients_per_message,
            banner=settings.banner,
            fqdn=settings.fqdn,
            enabled=settings.enabled,
            guid=row.guid,
            distinguished_name=receive_connector_dn(self.dir.names, server, row.name),
        )

    def resolve(self, session: Session, connector: object) -> tuple[ReceiveConnectorRow, str]:
        """(row, server name) of the connector named "SERVER\\Name" (or the server's
        FQDN before the backslash), by its name alone
        (when one server has it), or by its GUID."""
        guid = getattr(connector, "guid", None)
        text = str(guid) if guid is not None else str(connector).strip()
        stmt = select(ReceiveConnectorRow, ServerRow.name).join(
            ServerRow, ReceiveConnectorRow.server_id == ServerRow.id
        )
        as_guid = identity.parse_guid(text)
        if as_guid is not None:
            hits = list(session.execute(stmt.where(ReceiveConnectorRow.guid == as_guid)))
        elif "\\" in text:
            server, _, name = text.partition("\\")
            hits = list(
                session.execute(
                    stmt.where(
                        or_(
                            ServerRow.name_key == server.strip().lower(),
                            ServerRow.fqdn_key == server.strip().lower(),
                        ),
                        ReceiveConnectorRow.name_key == name.strip().lower(),
                    )
                )
            )
        else:
            hits = list(session.execute(stmt.where(ReceiveConnectorRow.name_key == text.lower())))
        shown = getattr(connector, "name", None) or text
        if not hits:
            raise NotFoundError("receive connector", str(shown))
        if len(hits) > 1:
            raise AmbiguousIdentityError(
                "receive connector",
                str(shown),
                (connector_identity(server, row.name) for row, server in hits),
            )
        row, server = hits[0]
        return row, server

    def get(self, server: object | None = None) -> list[ReceiveConnector]:
        """Every receive connector (or one server's), by server install order, then name."""
        with self.dir.store.read() as session:
            stmt = (
                select(ReceiveConnectorRow, ServerRow.name)
                .join(ServerRow, ReceiveConnectorRow.server_id == ServerRow.id)
                .order_by(ServerRow.install_order, ReceiveConnectorRow.name_key)
            )
            if server is not None:
                row = hub_row(self.dir, session, server)
                stmt = stmt.where(ReceiveConnectorRow.server_id == row.id)
            return [self.record(row, name) for row, name in session.execute(stmt)]

    def one(self, connector: object) -> ReceiveConnector:
        with self.dir.store.read() as session:
            row, server = self.resolve(session, connector)
            return self.record(row, server)

    def new(
        self, name: str, server: object, *, usage: str = "Custom", **fields: Any
    ) -> ReceiveConnector:
        """New-ReceiveConnector: the `usage` template's settings (Exchange 2010's), with
        `fields` over them. A Custom connector needs its bindings."""
        name = validate.display_name("Name", name)
        if "\\" in name:
            raise InvalidValueError("Name", name, "contains a backslash.")
        kind = choice("Usage", usage, USAGES)
        given = check(fields)
        if kind == "Custom" and "bindings" not in given:
            raise InvalidValueError(
                "Bindings", "", "is missing: a Custom receive connector needs -Bindings."
            )
        with self.dir.store.write() as session:
            row = hub_row(self.dir, session, server)
            settings = Settings(**{**usage_template(kind, row.fqdn), **given})
            _check_auth(settings)
            self._check_name(session, row, name, None)
            self._check_bindings(session, row, name, settings, None)
            connector = new_row(row, name, settings)
            session.add(connector)
            session.flush()
            return self.record(connector, row.name)

    def set(self, connector: object, **changes: Any) -> ReceiveConnector:
        """Set-ReceiveConnector: `name` and any field of a connector."""
        name = changes.pop("name", None)
        if name is not None:
            name = validate.display_name("Name", name)
            if "\\" in name:
                raise InvalidValueError("Name", name, "contains a backslash.")
        given = check(changes)
        with self.dir.store.write() as session:
            row, server_name = self.resolve(session, connector)
            server = session.get(ServerRow, row.server_id)
            assert server is not None
            current = settings_of(row)
            settings = Settings(**{**current.__dict__, **given})
            _check_auth(settings)
            target_name = name if name is not None else row.name
            if name is not None:
                self._check_name(session, server, name, row.id)
            self._check_bindings(session, server, target_name, settings, row.id)
            _store(row, settings)
            if name is not None:
                row.name, row.name_key = name, name.lower()
            row.when_changed = utcnow()
            session.flush()
            return self.record(row, server_name)

    def remove(self, connector: object) -> ReceiveConnector:
        """Remove-ReceiveConnector."""
        with self.dir.store.write() as session:
            row, server = self.resolve(session, connector)
            record = self.record(row, server)
            session.delete(row)
            return record

    def connector_for(
        self, server: object, local: tuple[str, int], remote_address: str
    ) -> ReceiveConnector | None:
        """The enabled connector of `server` a client at `remote_address` meets on the
        local address and port `local`: among those bound there whose remote IP ranges
        hold the client, the one with the narrowest matching range (as Exchange picks)."""
        address, port = local
        try:
            client = int(ipaddress.IPv4Address(str(remote_address).strip()))
        except ValueError:
            return None
        best: tuple[int, ReceiveConnector] | None = None
        for connector in self.get(server):
            if not connector.enabled:
                continue
            if not any(p == port and h in (ANY_ADDRESS, address) for h, p in connector.bindings):
                continue
            widths = [
                high - low
                for low, high in map(range_bounds, connector.remote_ip_ranges)
                if low <= client <= high
            ]
            if widths and (best is None or min(widths) < best[0]):
                best = (min(widths), connector)
        return best[1] if best is not None else None

    def _check_name(
        self, session: Session, server: ServerRow, name: str, exclude_id: int | None
    ) -> None:
        clash = session.scalars(
            select(ReceiveConnectorRow).where(
                ReceiveConnectorRow.server_id == server.id,
                ReceiveConnectorRow.name_key == name.lower(),
            )
        ).first()
        if clash is not None and clash.id != exclude_id:
            raise ConflictError(
                f"The server '{server.name}' already has a receive connector named '{clash.name}'.",
                conflicting=connector_identity(server.name, clash.name),
                target=name,
            )

    def _check_bindings(
        self,
        session: Session,
        server: ServerRow,
        name: str,
        settings: Settings,
        exclude_id: int | None,
    ) -> None:
        others = session.scalars(
            select(ReceiveConnectorRow).where(ReceiveConnectorRow.server_id == server.id)
        )
        for other in others:
            if other.id == exclude_id:
                continue
            theirs = settings_of(other)
            shared = bindings_overlap(settings.bindings, theirs.bindings)
            if shared is None:
                continue
            ranges = same_range(settings.remote_ip_ranges, theirs.remote_ip_ranges)
            if ranges is None:
                continue
            raise ConflictError(
                f"The receive connector '{connector_identity(server.name, other.name)}' "
                f"already takes connections on {shared} from {ranges[1]}; two receive "
                f"connectors of a server need a different binding or different remote IP "
                f"ranges. Change -Bindings or -RemoteIPRanges of '{name}', or of "
                f"'{other.name}' first.",
                conflicting=connector_identity(server.name, other.name),
                target=name,
            )
