"""Receive connectors: New-, Get-, Set-, Remove-ReceiveConnector."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.transport import ReceiveConnector
from casarray.directory.transport.values import USAGES
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.transport.common import (
    PASS_THRU,
    given,
    identity_parameter,
    receive_connector_object,
    ref,
    server_ref,
)

IDENTITY_HELP = 'The connector: "SERVER\\Name", its name when only one server has it, or its GUID.'

# parameter -> Directory.transport field
FIELDS = {
    "Bindings": "bindings",
    "RemoteIPRanges": "remote_ip_ranges",
    "AuthMechanism": "auth_mechanism",
    "PermissionGroups": "permission_groups",
    "MaxMessageSize": "max_message_size",
    "MaxRecipientsPerMessage": "max_recipients_per_message",
    "Banner": "banner",
    "Fqdn": "fqdn",
    "Enabled": "enabled",
}
SETTINGS = (
    Parameter(
        "Bindings",
        kind="strings",
        help="Local IP addresses and ports it listens on: 0.0.0.0:25 (every address).",
    ),
    Parameter(
        "RemoteIPRanges",
        kind="strings",
        help="Clients it serves: addresses, subnets (10.0.0.0/8) or ranges (a-b).",
    ),
    Parameter(
        "AuthMechanism",
        kind="strings",
        help="None, Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer, "
        "ExternalAuthoritative.",
    ),
    Parameter(
        "PermissionGroups",
        kind="strings",
        help="None, AnonymousUsers, ExchangeUsers, ExchangeServers, ExchangeLegacyServers, "
        "Partners, Custom.",
    ),
    Parameter("MaxMessageSize", help="The largest message taken (10MB; 64KB to 2GB)."),
    Parameter("MaxRecipientsPerMessage", kind="int", help="1 to 512000 (200)."),
    Parameter("Banner", help='The SMTP greeting: "220 <text>"; $null for the default.'),
    Parameter("Fqdn", help="The name it gives in its greeting and EHLO answer."),
    Parameter("Enabled", kind="bool", help="$false: it takes no connections."),
)


@register
class NewReceiveConnector(Cmdlet):
    name = "New-ReceiveConnector"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The connector's name."),
        Parameter(
            "Server",
            kind="identity",
            mandatory=True,
            identity_of="server",
            help="The Hub Transport server it belongs to.",
        ),
        Parameter(
            "Usage",
            kind="enum",
            choices=USAGES,
            help="The template: Default, Client, Internet, Internal or Custom (default; needs "
            "-Bindings).",
        ),
        *SETTINGS,
    )
    synopsis = "Creates a receive connector on a Hub Transport server."
    description = (
        "Creates a receive connector from a usage template with the given settings over "
        "it. Two connectors of a server can't share a binding and a remote IP range; "
        "where ranges overlap, the narrower one serves the client."
    )
    examples = (
        Example(
            'New-ReceiveConnector -Name "App Relay" -Server MBX01 -Usage Custom -Bindings '
            "0.0.0.0:25 -RemoteIPRanges 10.0.0.5 -PermissionGroups AnonymousUsers "
            "-AuthMechanism None",
            "Lets the application server 10.0.0.5 send to anyone without logging on.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = server_ref(params["Server"])
        if not self.should_process(f"{server}\\{params['Name']}"):
            return
        yield receive_connector_object(
            self.directory.transport.new_receive_connector(
                params["Name"],
                server,
                usage=params.get("Usage") or "Custom",
                **given(params, FIELDS),
            )
        )


@register
class GetReceiveConnector(Cmdlet):
    name = "Get-ReceiveConnector"
    parameters = (
        identity_parameter(IDENTITY_HELP, mandatory=False),
        Parameter(
            "Server", kind="identity", identity_of="server", help="Only this server's connectors."
        ),
    )
    synopsis = "Gets receive connectors."
    description = "Gets one receive connector, a Hub Transport server's, or every one."
    examples = (
        Example("Get-ReceiveConnector -Server MBX01", "Lists MBX01's receive connectors."),
        Example(
            'Get-ReceiveConnector "MBX01\\Default MBX01" | Format-List',
            "Shows the default connector's settings.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        transport = self.directory.transport
        identity = params.get("Identity")
        if identity is not None:
            connectors = [transport.receive_connector(ref(identity, ReceiveConnector))]
        else:
            server = params.get("Server")
            connectors = transport.receive_connectors(
                server_ref(server) if server is not None else None
            )
        for connector in connectors:
            yield receive_connector_object(connector)


@register
class SetReceiveConnector(Cmdlet):
    name = "Set-ReceiveConnector"
    parameters = (
        identity_parameter(IDENTITY_HELP),
        Parameter("Name", help="A new name."),
        *SETTINGS,
        PASS_THRU,
    )
    synopsis = "Changes a receive connector."
    description = "Changes the settings of receive connectors (one, or those piped in)."
    examples = (
        Example(
            'Set-ReceiveConnector "MBX01\\Default MBX01" -MaxMessageSize 25MB',
            "Takes messages up to 25 MB on port 25.",
        ),
        Example(
            'Get-ReceiveConnector -Server MBX01 | Set-ReceiveConnector -Banner "220 Lab mail"',
            "Sets the greeting of every MBX01 connector.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = ref(params["Identity"], ReceiveConnector)
        if not self.should_process(str(identity)):
            return
        changes = given(params, {"Name": "name", **FIELDS})
        connector = self.directory.transport.set_receive_connector(identity, **changes)
        if params.get("PassThru"):
            yield receive_connector_object(connector)


@register
class RemoveReceiveConnector(Cmdlet):
    name = "Remove-ReceiveConnector"
    parameters = (identity_parameter(IDENTITY_HELP),)
    synopsis = "Removes a receive connector."
    description = "Removes a receive connector: its server stops taking mail on it."
    examples = (
        Example(
            'Remove-ReceiveConnector "MBX01\\App Relay" -Confirm:$false',
            "Removes the relay connector without asking.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = ref(params["Identity"], ReceiveConnector)
        if self.should_process(str(identity)):
            self.directory.transport.remove_receive_connector(identity)
        return ()
