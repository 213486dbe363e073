"""Send connectors: New-, Get-, Set-, Remove-SendConnector."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.transport import SendConnector
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.transport.common import (
    PASS_THRU,
    given,
    identity_parameter,
    ref,
    send_connector_object,
    server_ref,
)

IDENTITY_HELP = "The send connector's name or GUID."

FIELDS = {
    "AddressSpaces": "address_spaces",
    "SmartHosts": "smart_hosts",
    "DNSRoutingEnabled": "dns_routing_enabled",
    "SourceTransportServers": "source_transport_servers",
    "Port": "port",
    "RequireTLS": "require_tls",
    "MaxMessageSize": "max_message_size",
    "Enabled": "enabled",
}
SETTINGS = (
    Parameter(
        "AddressSpaces",
        kind="strings",
        help='Domains it sends to, each with a cost: "SMTP:*;1", "*.contoso.com;5".',
    ),
    Parameter("SmartHosts", kind="strings", help="Hosts it relays through (no MX lookup)."),
    Parameter(
        "DNSRoutingEnabled",
        kind="bool",
        help="$true: send to the domain's MX hosts; $false: to the smart hosts.",
    ),
    Parameter(
        "SourceTransportServers",
        kind="identities",
        help="The Hub Transport servers that send through it (none: any).",
    ),
    Parameter("Port", kind="int", help="The port it connects to (25)."),
    Parameter("RequireTLS", kind="bool", help="$true: send only over TLS."),
    Parameter("MaxMessageSize", help="The largest message sent (10MB)."),
    Parameter("Enabled", kind="bool", help="$false: nothing is routed through it."),
)


def _fields(params: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    fields = given(params, names)
    if "source_transport_servers" in fields:
        fields["source_transport_servers"] = [
            server_ref(s) for s in fields["source_transport_servers"]
        ]
    return fields


@register
class NewSendConnector(Cmdlet):
    name = "New-SendConnector"
    parameters = (
        Parameter("Name", mandatory=True, position=0, help="The connector's name."),
        *SETTINGS,
    )
    synopsis = "Creates a send connector: how mail for some domains leaves."
    description = (
        "Creates a send connector for -AddressSpaces. With -SmartHosts it relays through "
        "them (-DNSRoutingEnabled $false); otherwise it sends to each domain's MX hosts."
    )
    examples = (
        Example(
            'New-SendConnector -Name Internet -AddressSpaces "SMTP:*;1"',
            "Sends mail for every outside domain by MX records.",
        ),
        Example(
            'New-SendConnector "To relay" -AddressSpaces * -SmartHosts relay.lab.net '
            "-DNSRoutingEnabled $false -SourceTransportServers MBX01",
            "Sends outside mail from MBX01 through the smart host relay.lab.net.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if not self.should_process(params["Name"]):
            return
        yield send_connector_object(
            self.directory.transport.new_send_connector(params["Name"], **_fields(params, FIELDS))
        )


@register
class GetSendConnector(Cmdlet):
    name = "Get-SendConnector"
    parameters = (identity_parameter(IDENTITY_HELP, mandatory=False),)
    synopsis = "Gets send connectors."
    description = "Gets one send connector, or every one of the organization."
    examples = (Example("Get-SendConnector", "Lists the send connectors."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        transport = self.directory.transport
        identity = params.get("Identity")
        if identity is None:
            connectors = transport.send_connectors()
        else:
            connectors = [transport.send_connector(ref(identity, SendConnector))]
        for connector in connectors:
            yield send_connector_object(connector)


@register
class SetSendConnector(Cmdlet):
    name = "Set-SendConnector"
    parameters = (
        identity_parameter(IDENTITY_HELP),
        Parameter("Name", help="A new name."),
        *SETTINGS,
        PASS_THRU,
    )
    synopsis = "Changes a send connector."
    description = "Changes the settings of send connectors (one, or those piped in)."
    examples = (
        Example(
            "Set-SendConnector Internet -SmartHosts relay.lab.net -DNSRoutingEnabled $false",
            "Relays outside mail through relay.lab.net.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = ref(params["Identity"], SendConnector)
        if not self.should_process(str(identity)):
            return
        changes = _fields(params, {"Name": "name", **FIELDS})
        connector = self.directory.transport.set_send_connector(identity, **changes)
        if params.get("PassThru"):
            yield send_connector_object(connector)


@register
class RemoveSendConnector(Cmdlet):
    name = "Remove-SendConnector"
    parameters = (identity_parameter(IDENTITY_HELP),)
    synopsis = "Removes a send connector."
    description = "Removes a send connector: mail for its address spaces takes another, or none."
    examples = (Example("Remove-SendConnector Internet -Confirm:$false", "Removes it."),)
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = ref(params["Identity"], SendConnector)
        if self.should_process(str(identity)):
            self.directory.transport.remove_send_connector(identity)
        return ()
