"""Get-TransportServer and Set-TransportServer: a Hub Transport server's queue settings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.objects import ServerRole
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.transport.common import (
    PASS_THRU,
    given,
    server_ref,
    transport_server_object,
)

IDENTITY_HELP = "The Hub Transport server's name, FQDN or GUID."
FIELDS = {
    "MessageExpirationTimeout": "message_expiration_timeout",
    "MessageRetryInterval": "message_retry_interval",
    "MaxOutboundConnections": "max_outbound_connections",
}


def _identity(mandatory: bool) -> Parameter:
    return Parameter(
        "Identity",
        kind="identity",
        mandatory=mandatory,
        position=0,
        from_pipeline=True,
        identity_of="server",
        help=IDENTITY_HELP,
    )


@register
class GetTransportServer(Cmdlet):
    name = "Get-TransportServer"
    parameters = (_identity(False),)
    synopsis = "Gets the settings of Hub Transport servers."
    description = "Gets one Hub Transport server's settings, or every Hub Transport server's."
    examples = (
        Example("Get-TransportServer", "Lists the Hub Transport servers' settings."),
        Example("Get-TransportServer MBX01 | Format-List", "Shows MBX01's settings."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        transport = self.directory.transport
        identity = params.get("Identity")
        if identity is not None:
            servers = [server_ref(identity)]
        else:
            servers = [s.name for s in self.directory.servers.get(role=ServerRole.HubTransport)]
        for server in servers:
            yield transport_server_object(transport.server_settings(server))


@register
class SetTransportServer(Cmdlet):
    name = "Set-TransportServer"
    parameters = (
        _identity(True),
        Parameter(
            "MessageExpirationTimeout",
            help="How long a message may wait in a queue before it fails (2.00:00:00).",
        ),
        Parameter(
            "MessageRetryInterval",
            help="The wait before a failed message is tried again (00:01:00).",
        ),
        Parameter(
            "MaxOutboundConnections", kind="int", help="Outbound SMTP connections at once (1000)."
        ),
        PASS_THRU,
    )
    synopsis = "Changes a Hub Transport server's settings."
    description = "Changes how long messages wait in queues and how often they are tried."
    examples = (
        Example(
            "Set-TransportServer MBX01 -MessageExpirationTimeout 3.00:00:00",
            "Lets messages wait three days before they fail.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = server_ref(params["Identity"])
        if not self.should_process(str(server)):
            return
        settings = self.directory.transport.set_server_settings(server, **given(params, FIELDS))
        if params.get("PassThru"):
            yield transport_server_object(settings)
