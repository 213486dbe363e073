"""What the transport cmdlets share: -PassThru, the objects as Exchange shows them
(sizes "10 MB (10,485,760 bytes)", timespans "2.00:00:00", address spaces
"SMTP:*;1"), and how a cmdlet passes an identity (a piped object by its GUID)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from casarray.directory.objects import Server
from casarray.directory.quotas import format_size
from casarray.directory.transport import (
    AcceptedDomain,
    ReceiveConnector,
    SendConnector,
    TransportServerSettings,
)
from casarray.directory.transport.values import (
    AUTH_MECHANISMS,
    PERMISSION_GROUPS,
    address_space_text,
    binding_text,
    flags_text,
    timespan_text,
)
from casarray.shell.cmdlet import Parameter
from casarray.shell.objects import ObjectRef, identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

CONFIG = "Microsoft.Exchange.Data.Directory.SystemConfiguration."
ACCEPTED_DOMAIN_TYPE = CONFIG + "AcceptedDomain"
RECEIVE_CONNECTOR_TYPE = CONFIG + "ReceiveConnector"
SEND_CONNECTOR_TYPE = CONFIG + "SmtpSendConnectorConfig"
TRANSPORT_SERVER_TYPE = "Microsoft.Exchange.Data.Directory.Management.TransportServer"

# Exchange 2010's default tables.
register_view(ACCEPTED_DOMAIN_TYPE, ("Name", "DomainName", "DomainType", "Default"))
register_view(RECEIVE_CONNECTOR_TYPE, ("Identity", "Bindings", "Enabled"))
register_view(SEND_CONNECTOR_TYPE, ("Identity", "AddressSpaces", "Enabled"))
register_view(
    TRANSPORT_SERVER_TYPE,
    ("Name", "MessageExpirationTimeout", "MessageRetryInterval", "MaxOutboundConnections"),
)

PASS_THRU = Parameter("PassThru", kind="switch", help="Write the changed object.")


def identity_parameter(help_text: str, mandatory: bool = True) -> Parameter:
    return Parameter(
        "Identity",
        kind="identity",
        mandatory=mandatory,
        position=0,
        from_pipeline=True,
        help=help_text,
    )


def ref(value: Any, record_type: type) -> Any:
    """An identity parameter's value for the directory: a piped object of the kind by
    its GUID, anything else as written."""
    return identity_arg(value, record_type)


def given(params: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """{field: value} of the parameters given, by parameter name -> directory field."""
    return {field: params[name] for name, field in names.items() if name in params}


def accepted_domain_object(domain: AcceptedDomain) -> PSObject:
    return PSObject(
        {
            "Name": domain.name,
            "DomainName": domain.domain_name,
            "DomainType": domain.domain_type,
            "Default": domain.default,
            "MatchSubDomains": domain.domain_name.startswith("*."),
            "Identity": domain.name,
            "Guid": domain.guid,
            "DistinguishedName": domain.distinguished_name,
        },
        type_name=ACCEPTED_DOMAIN_TYPE,
        base=domain,
        display=domain.name,
    )


def receive_connector_object(connector: ReceiveConnector) -> PSObject:
    return PSObject(
        {
            "Identity": connector.identity,
            "Name": connector.name,
            "Server": connector.server,
            "Bindings": [binding_text(b) for b in connector.bindings],
            "RemoteIPRanges": list(connector.remote_ip_ranges),
            "AuthMechanism": flags_text(connector.auth_mechanism, AUTH_MECHANISMS),
            "PermissionGroups": flags_text(connector.permission_groups, PERMISSION_GROUPS),
            "MaxMessageSize": format_size(connector.max_message_size),
            "MaxRecipientsPerMessage": connector.max_recipients_per_message,
            "Banner": connector.banner,
            "Fqdn": connector.fqdn,
            "Enabled": connector.enabled,
            "Guid": connector.guid,
            "DistinguishedName": connector.distinguished_name,
        },
        type_name=RECEIVE_CONNECTOR_TYPE,
        base=connector,
        display=connector.identity,
    )


def send_connector_object(connector: SendConnector) -> PSObject:
    return PSObject(
        {
            "Identity": connector.name,
            "Name": connector.name,
            "AddressSpaces": [address_space_text(s) for s in connector.address_spaces],
            "SmartHosts": list(connector.smart_hosts),
            "DNSRoutingEnabled": connector.dns_routing_enabled,
            "SourceTransportServers": list(connector.source_transport_servers),
            "Port": connector.port,
            "RequireTLS": connector.require_tls,
            "MaxMessageSize": format_size(connector.max_message_size),
            "Enabled": connector.enabled,
            "Guid": connector.guid,
            "DistinguishedName": connector.distinguished_name,
        },
        type_name=SEND_CONNECTOR_TYPE,
        base=connector,
        display=connector.name,
    )


def transport_server_object(settings: TransportServerSettings) -> PSObject:
    return PSObject(
        {
            "Name": settings.server,
            "Identity": settings.server,
            "Fqdn": settings.fqdn,
            "MessageExpirationTimeout": timespan_text(settings.message_expiration_timeout),
            "MessageRetryInterval": timespan_text(settings.message_retry_interval),
            "MaxOutboundConnections": settings.max_outbound_connections,
            "Guid": settings.guid,
        },
        type_name=TRANSPORT_SERVER_TYPE,
        base=settings,
        display=settings.server,
    )


def server_ref(value: Any) -> Any:
    """A server parameter's value: a piped server or transport server by GUID."""
    base = value.base if isinstance(value, PSObject) else value
    if isinstance(base, TransportServerSettings):
        return ObjectRef(base.guid, base.server)
    return identity_arg(value, Server)
