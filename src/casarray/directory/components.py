"""Server component states: Exchange 2013's maintenance mode (Set-ServerComponentState).

Each server's components (its services, and ServerWideOffline for the whole server)
are Active or Inactive. Several requesters (HealthApi, Maintenance, Sidelined,
Functional, Deployment) may each set a component's state, and each entry is kept with
its requester and time. Exchange's rule decides:

- a component is Inactive while ANY requester's entry says Inactive; Active when no
  requester said anything or every requester's entry says Active. So a component put
  Inactive by Maintenance and by HealthApi comes back only when both set it Active;
- ServerWideOffline Inactive makes every other component Inactive too, except
  Monitoring and RecoveryActionsEnabled (as in Exchange, they keep the server watched).

The health check pages (`access/http/health_pages.py`) answer 503 for an inactive
component, so load balancers stop sending new connections while existing sessions
finish. Every change bumps the topology version, so running servers learn of it.

Component names are Exchange 2013's, accepted in any case and stored canonical; the
components casarray serves have names of their own (Autodiscover, Owa, Imap, Api), and
Exchange's AutoDiscoverProxy, OwaProxy and ImapProxy are other names for them. The
other Exchange 2013 components can be set (scripts that set them all still run) but
nothing in casarray reads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.base import utcnow
from casarray.directory.errors import InvalidOperationError, InvalidValueError
from casarray.directory.schema import ServerComponentStateRow, ServerRow
from casarray.directory.servers import roles_of

if TYPE_CHECKING:
    from casarray.directory.service import Directory

ACTIVE = "Active"
INACTIVE = "Inactive"
STATES = (ACTIVE, INACTIVE)

SERVER_WIDE_OFFLINE = "ServerWideOffline"
AUTODISCOVER = "Autodiscover"
IMAP = "Imap"
OWA = "Owa"
API = "Api"

# The components casarray's Client Access servers serve (each has a health check page).
CLIENT_ACCESS_COMPONENTS = (AUTODISCOVER, IMAP, OWA, API)

# Exchange 2013's components in Get-ServerComponentState's order, with casarray's own
# names for the ones it serves, and Api (casarray's JSON API) last.
COMPONENTS = (
    SERVER_WIDE_OFFLINE,
    "HubTransport",
    "FrontendTransport",
    "Monitoring",
    "RecoveryActionsEnabled",
    AUTODISCOVER,
    "ActiveSyncProxy",
    "EcpProxy",
    "EwsProxy",
    IMAP,
    "OabProxy",
    OWA,
    "PopProxy",
    "PushNotificationsProxy",
    "RpsProxy",
    "RwsProxy",
    "RpcProxy",
    "UMCallRouter",
    "XropProxy",
    "HttpProxyAvailabilityGroup",
    "ForwardSyncDaemon",
    "ProvisioningRps",
    "MapiProxy",
    "EdgeTransport",
    "HighAvailability",
    "SharedCache",
    API,
)

# Exchange 2013's names of the components casarray serves under names of its own.
EXCHANGE_NAMES = {"AutoDiscoverProxy": AUTODISCOVER, "ImapProxy": IMAP, "OwaProxy": OWA}

# Not taken offline by ServerWideOffline (Exchange keeps the server monitored).
NOT_OFFLINED = frozenset({"Monitoring", "RecoveryActionsEnabled"})

REQUESTERS = ("HealthApi", "Maintenance", "Sidelined", "Functional", "Deployment")

_BY_KEY = {name.lower(): name for name in COMPONENTS} | {
    alias.lower(): name for alias, name in EXCHANGE_NAMES.items()
}
_ORDER = {name: index for index, name in enumerate(COMPONENTS)}


@dataclass(frozen=True)
class ComponentStateEntry:
    """One requester's word on a component: the state it set and when."""

    requester: str
    state: str
    when: datetime


@dataclass(frozen=True)
class ComponentState:
    """A component of a server as Get-ServerComponentState shows it. `state` is the
    effective state: Inactive when any entry says Inactive or, for every component but
    Monitoring and RecoveryActionsEnabled, when ServerWideOffline is Inactive.
    `entries` are this component's own (by requester); `when` is the newest of them."""

    server: str
    server_fqdn: str
    component: str
    state: str
    entries: tuple[ComponentStateEntry, ...]
    when: datetime | None

    @property
    def is_active(self) -> bool:
        return self.state == ACTIVE

    @property
    def own_state(self) -> str:
        """The state from this component's own entries, ServerWideOffline aside."""
        return _combine(self.entries)


def component_name(value: object, parameter: str = "Component") -> str:
    """The canonical name of a component, given in any case (or by Exchange's name)."""
    text = str(value).strip()
    name = _BY_KEY.get(text.lower())
    if name is None:
        raise InvalidValueError(
            parameter,
            value,
            f"is not a server component. Valid components: {', '.join(COMPONENTS)} "
            f"(also Exchange's names {', '.join(EXCHANGE_NAMES)}).",
        )
    return name


def state_name(value: object, parameter: str = "State") -> str:
    text = str(value).strip()
    for state in STATES:
        if state.lower() == text.lower():
            return state
    raise InvalidValueError(
        parameter, value, f"is not a component state. Valid states: {', '.join(STATES)}."
    )


def requester_name(value: object, parameter: str = "Requester") -> str:
    text = str(value).strip()
    for requester in REQUESTERS:
        if requester.lower() == text.lower():
            return requester
    raise InvalidValueError(
        parameter, value, f"is not a requester. Valid requesters: {', '.join(REQUESTERS)}."
    )


def _combine(entries: Iterable[ComponentStateEntry]) -> str:
    return INACTIVE if any(e.state == INACTIVE for e in entries) else ACTIVE


def _requester_order(entry: ComponentStateEntry) -> int:
    return REQUESTERS.index(entry.requester) if entry.requester in REQUESTERS else len(REQUESTERS)


class ComponentService:
    """`directory.components`: Set-/Get-ServerComponentState."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def set_state(
        self, server: object, component: str, state: str, requester: str
    ) -> ComponentState:
        """Record `requester`'s `state` for `component` of `server` (replacing that
        requester's earlier entry) and return the component's resulting state.

        ServerWideOffline and Exchange's other components may be set on any server;
        the components casarray serves (Autodiscover, Imap, Owa, Api) only on Client
        Access servers, where they run."""

        component = component_name(component)
        state = state_name(state)
        requester = requester_name(requester)
        with self.dir.store.write() as session:
            row = self.dir.servers.resolve_row(session, server)
            if component in CLIENT_ACCESS_COMPONENTS and not row.client_access:
                raise InvalidOperationError(
                    f"The server '{row.name}' isn't a Client Access server (its roles: "
                    f"{roles_of(row)}); the component '{component}' runs only on Client "
                    f"Access servers. To take the whole server out of service, set "
                    f"{SERVER_WIDE_OFFLINE}.",
                    target=row.name,
                )
            entry = session.scalars(
                select(ServerComponentStateRow).where(
                    ServerComponentStateRow.server_id == row.id,
                    ServerComponentStateRow.component == component,
                    ServerComponentStateRow.requester == requester,
                )
            ).first()
            now = utcnow()
            if entry is None:
                session.add(
                    ServerComponentStateRow(
                        server_id=row.id,
                        component=component,
                        requester=requester,
                        state=state,
                        when_changed=now,
                    )
                )
            else:
                entry.state = state
                entry.when_changed = now
            session.flush()
            return self._records(session, [row], component)[0]

    def get(
        self, server: object | None = None, component: str | None = None
    ) -> list[ComponentState]:
        """Component states, by server (install order) and component (Exchange's order).

        Each server shows ServerWideOffline, on Client Access servers also the
        components casarray serves, and any other component a requester has set; with
        `component`, that component only (on a given `server` even if it doesn't run
        there: it is Active unless ServerWideOffline is Inactive)."""
        wanted = component_name(component) if component is not None else None
        with self.dir.store.read() as session:
            if server is not None:
                rows = [self.dir.servers.resolve_row(session, server)]
            else:
                rows = list(session.scalars(select(ServerRow).order_by(ServerRow.install_order)))
            records = self._records(session, rows, wanted, every=server is not None)
        return records

    def is_active(self, server: object, component: str) -> bool:
        """Whether `component` of `server` is Active (ServerWideOffline considered)."""
        return self.get(server, component)[0].is_active

    def _records(
        self,
        session: Session,
        rows: Sequence[ServerRow],
        component: str | None,
        *,
        every: bool = True,
    ) -> list[ComponentState]:
        """The records of `rows`' components (all shown ones, or only `component`; when
        `every` is false, `component` only on servers that show it)."""
        if not rows:
            return []
        stmt = select(ServerComponentStateRow).where(
            ServerComponentStateRow.server_id.in_([row.id for row in rows])
        )
        entries: dict[int, dict[str, list[ComponentStateEntry]]] = {row.id: {} for row in rows}
        for entry in session.scalars(stmt):
            entries[entry.server_id].setdefault(entry.component, []).append(
                ComponentStateEntry(entry.requester, entry.state, entry.when_changed)
            )
        records: list[ComponentState] = []
        for row in rows:
            own = entries[row.id]
            offline = _combine(own.get(SERVER_WIDE_OFFLINE, ())) == INACTIVE
            shown = {SERVER_WIDE_OFFLINE, *own}
            if row.client_access:
                shown.update(CLIENT_ACCESS_COMPONENTS)
            if component is not None:
                if component not in shown and not every:
                    continue
                shown = {component}
            for name in sorted(shown, key=lambda n: _ORDER.get(n, len(_ORDER))):
                items = tuple(sorted(own.get(name, ()), key=_requester_order))
                state = _combine(items)
                if offline and name not in NOT_OFFLINED:
                    state = INACTIVE
                records.append(
                    ComponentState(
                        server=row.name,
                        server_fqdn=row.fqdn,
                        component=name,
                        state=state,
                        entries=items,
                        when=max((e.when for e in items), default=None),
                    )
                )
        return records


__all__ = [
    "ACTIVE",
    "CLIENT_ACCESS_COMPONENTS",
    "COMPONENTS",
    "EXCHANGE_NAMES",
    "INACTIVE",
    "REQUESTERS",
    "SERVER_WIDE_OFFLINE",
    "STATES",
    "ComponentService",
    "ComponentState",
    "ComponentStateEntry",
    "component_name",
    "requester_name",
    "state_name",
]
