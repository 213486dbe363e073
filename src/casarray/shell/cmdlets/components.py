"""Server component state cmdlets: Set-ServerComponentState and Get-ServerComponentState,
Exchange 2013's maintenance mode.

    Set-ServerComponentState CAS01 -Component ServerWideOffline -State Inactive `
        -Requester Maintenance

takes CAS01 out of service: its health check pages answer 503, so the load balancers
send it no new connections while its existing sessions finish. The rules (any
requester's Inactive wins, ServerWideOffline covers every component) live in
`Directory.components`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.components import (
    COMPONENTS,
    REQUESTERS,
    STATES,
    ComponentState,
    ComponentStateEntry,
    component_name,
)
from casarray.directory.objects import Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.values import to_string
from casarray.shell.views import register_view

COMPONENT_STATE_TYPE = (
    "Microsoft.Exchange.Management.SystemConfigurationTasks.ServerComponentStatePresentationObject"
)
ENTRY_TYPE = "Microsoft.Exchange.Data.ServerComponentStates+ItemEntry"

# Exchange 2013's default table: the server (its FQDN), the component, the state.
register_view(COMPONENT_STATE_TYPE, ("Server", "Component", "State"))
register_view(ENTRY_TYPE, ("Requester", "State", "Timestamp"))

SERVER_HELP = "The server's name, FQDN, GUID or distinguished name."


def entry_object(entry: ComponentStateEntry) -> PSObject:
    """One requester's entry, shown as 'Maintenance: Inactive at <time>'."""
    return PSObject(
        {"Requester": entry.requester, "State": entry.state, "Timestamp": entry.when},
        type_name=ENTRY_TYPE,
        base=entry,
        display=f"{entry.requester}: {entry.state} at {to_string(entry.when)}",
    )


def component_state_object(record: ComponentState) -> PSObject:
    """Get-ServerComponentState's object. Exchange keeps each entry twice (the
    directory's RemoteStates and the server registry's LocalStates); casarray's
    directory is its only copy, so the entries are the RemoteStates."""
    return PSObject(
        {
            "Server": record.server_fqdn,
            "Component": record.component,
            "State": record.state,
            "RemoteStates": [entry_object(e) for e in record.entries],
            "ServerFqdn": record.server_fqdn,
            "ServerName": record.server,
            "WhenChanged": record.when,
            "Identity": record.server_fqdn,
            "IsValid": True,
        },
        type_name=COMPONENT_STATE_TYPE,
        base=record,
        display=record.server_fqdn,
    )


@register
class SetServerComponentState(Cmdlet):
    name = "Set-ServerComponentState"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            mandatory=True,
            position=0,
            from_pipeline=True,
            identity_of="server",
            help=SERVER_HELP,
        ),
        Parameter(
            "Component",
            mandatory=True,
            help="The component: ServerWideOffline (the whole server), Autodiscover, Owa, "
            "Imap, Api, or another Exchange 2013 component name (any case).",
        ),
        Parameter("State", kind="enum", mandatory=True, choices=STATES, help="Active or Inactive."),
        Parameter(
            "Requester",
            kind="enum",
            mandatory=True,
            choices=REQUESTERS,
            help="Who asks: HealthApi, Maintenance, Sidelined, Functional or Deployment. "
            "Only the requester that set a component Inactive can take its entry back.",
        ),
    )
    synopsis = "Sets a server component's state (Exchange 2013's maintenance mode)."
    description = (
        "Records the requester's state for a component of a server. A component is "
        "Inactive while ANY requester has set it Inactive, so bringing it back needs "
        "every requester that set it Inactive to set it Active. ServerWideOffline "
        "Inactive makes every component of the server Inactive (but Monitoring and "
        "RecoveryActionsEnabled). An inactive component's health check page "
        "(/<vdir>/healthcheck.htm) answers 503, so load balancers stop sending the "
        "server new connections while its existing sessions finish; running servers "
        "see the change within a second. Autodiscover, Owa, Imap and Api can be set "
        "only on Client Access servers; ServerWideOffline and Exchange 2013's other "
        "component names on any server."
    )
    examples = (
        Example(
            "Set-ServerComponentState -Identity CAS01 -Component ServerWideOffline "
            "-State Inactive -Requester Maintenance",
            "Takes CAS01 out of service for maintenance: balancers drain it.",
        ),
        Example(
            "Set-ServerComponentState CAS01 -Component ServerWideOffline -State Active "
            "-Requester Maintenance",
            "Brings CAS01 back into service after maintenance.",
        ),
        Example(
            "Get-ClientAccessServer | Set-ServerComponentState -Component Imap "
            "-State Inactive -Requester Maintenance -WhatIf",
            "Shows which servers would stop taking new IMAP connections.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        component = component_name(params["Component"])
        server = self.directory.servers.one(identity_arg(params["Identity"], Server))
        state, requester = params["State"], params["Requester"]
        target = f"{server.name} ({component}: {state}, requester {requester})"
        if not self.should_process(target):
            return ()
        self.directory.components.set_state(server.guid, component, state, requester)
        return ()


@register
class GetServerComponentState(Cmdlet):
    name = "Get-ServerComponentState"
    parameters = (
        Parameter(
            "Identity",
            kind="identity",
            position=0,
            from_pipeline=True,
            identity_of="server",
            help=SERVER_HELP + " By default every server.",
        ),
        Parameter("Component", help="Only this component (any case)."),
    )
    synopsis = "Gets the states of server components (Exchange 2013's maintenance mode)."
    description = (
        "Gets each component's state: Inactive when any requester set it Inactive, or "
        "when ServerWideOffline is Inactive. Format-List shows the requesters' entries "
        "(RemoteStates). Each server shows ServerWideOffline, Client Access servers also "
        "Autodiscover, Imap, Owa and Api, and any other component a requester has set. "
        f"Components: {', '.join(COMPONENTS)}."
    )
    examples = (
        Example("Get-ServerComponentState CAS01", "Lists CAS01's components and their state."),
        Example(
            "Get-ServerComponentState CAS01 -Component Owa | Format-List",
            "Shows who set CAS01's Owa component to which state, and when.",
        ),
        Example(
            "Get-ServerComponentState -Component ServerWideOffline",
            "Shows which servers are in maintenance.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        server = identity_arg(identity, Server) if identity is not None else None
        for record in self.directory.components.get(server, params.get("Component")):
            yield component_state_object(record)
