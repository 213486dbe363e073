"""The Hub Transport configuration cmdlets as an Exchange administrator types them:
accepted domains, receive and send connectors, Get-/Set-TransportServer; values shown
as Exchange shows them, bad values refused by name with nothing changed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell, what_if

MB = 1024**2


@pytest.fixture
def org(bj: Directory) -> Directory:
    bj.servers.new("HUB01", "HubTransport", "127.77.1.31")
    bj.servers.new("HUB02", "Mailbox,HubTransport", "127.77.2.31")
    return bj


# -- accepted domains --------------------------------------------------------------------


def test_accepted_domains(shell: Shell, org: Directory) -> None:
    out = shell.ok(
        "New-AcceptedDomain -Name Contoso -DomainName contoso.com -DomainType Authoritative"
    ).out
    assert "Contoso" in out and "contoso.com" in out and "Authoritative" in out
    shell.ok('New-AcceptedDomain "Lab subdomains" -DomainName *.lab.net -DomainType InternalRelay')
    table = shell.ok("Get-AcceptedDomain").out
    lines = [line.split() for line in table.splitlines() if line.strip()]
    assert lines[0] == ["Name", "DomainName", "DomainType", "Default"]
    assert ["lab.net", "lab.net", "Authoritative", "True"] in lines
    assert ["Contoso", "contoso.com", "Authoritative", "False"] in lines
    assert org.transport.accepted("x.lab.net").domain_type == "InternalRelay"  # type: ignore[union-attr]
    shell.ok("Set-AcceptedDomain Contoso -MakeDefault")
    assert org.organization().default_domain == "contoso.com"
    out = shell.ok("Get-AcceptedDomain contoso.com | Set-AcceptedDomain -Name CTS -PassThru").out
    assert "CTS" in out
    shell.ok("Remove-AcceptedDomain 'Lab subdomains' -Confirm:$false")
    assert [d.name for d in org.transport.accepted_domains()] == ["lab.net", "CTS"]


def test_accepted_domain_errors_change_nothing(shell: Shell, org: Directory) -> None:
    result = shell.run("New-AcceptedDomain Bad -DomainName 'not a domain'")
    assert "DomainName" in result.error().message
    result = shell.run("Remove-AcceptedDomain lab.net -Confirm:$false")
    assert "default accepted domain" in result.error().message
    assert [d.name for d in org.transport.accepted_domains()] == ["lab.net"]


# -- receive connectors ------------------------------------------------------------------


def test_get_receive_connector_shows_exchanges_defaults(shell: Shell, org: Directory) -> None:
    table = shell.ok("Get-ReceiveConnector -Server HUB01").out
    assert "HUB01\\Default HUB01" in table and "{0.0.0.0:25}" in table
    assert "HUB01\\Client HUB01" in table and "{0.0.0.0:587}" in table
    out = shell.ok('Get-ReceiveConnector "HUB01\\Default HUB01" | Format-List').out
    assert "MaxMessageSize          : 10 MB (10,485,760 bytes)" in out
    assert "MaxRecipientsPerMessage : 200" in out
    assert (
        "PermissionGroups        : AnonymousUsers, ExchangeUsers, ExchangeServers, "
        "ExchangeLegacyServers" in out
    )
    assert (
        "AuthMechanism           : Tls, Integrated, BasicAuth, BasicAuthRequireTLS, "
        "ExchangeServer" in out
    )
    assert "RemoteIPRanges          : {0.0.0.0-255.255.255.255}" in out
    assert "Fqdn                    : HUB01.lab.net" in out


def test_new_set_remove_receive_connector(shell: Shell, org: Directory) -> None:
    shell.ok(
        'New-ReceiveConnector -Name "App Relay" -Server HUB01 -Usage Custom -Bindings '
        "0.0.0.0:25 -RemoteIPRanges 10.0.0.5,198.18.0.0/15 -PermissionGroups AnonymousUsers "
        "-AuthMechanism None -MaxMessageSize 25MB"
    )
    relay = org.transport.receive_connector("HUB01\\App Relay")
    assert relay.remote_ip_ranges == ("10.0.0.5", "198.18.0.0/15")
    assert relay.permission_groups == {"AnonymousUsers"}
    assert relay.auth_mechanism == {"None"}
    assert relay.max_message_size == 25 * MB
    shell.ok(
        "Get-ReceiveConnector -Server HUB01 | Set-ReceiveConnector -Banner '220 Lab mail' "
        "-MaxRecipientsPerMessage 500"
    )
    assert {c.banner for c in org.transport.receive_connectors("HUB01")} == {"220 Lab mail"}
    assert {c.banner for c in org.transport.receive_connectors("HUB02")} == {None}
    shell.ok('Set-ReceiveConnector "HUB01\\App Relay" -Enabled $false')
    assert not org.transport.receive_connector("HUB01\\App Relay").enabled
    shell.ok('Remove-ReceiveConnector "HUB01\\App Relay" -Confirm:$false')
    assert [c.name for c in org.transport.receive_connectors("HUB01")] == [
        "Client HUB01",
        "Default HUB01",
    ]


def test_new_receive_connector_what_if(shell: Shell, org: Directory) -> None:
    result = shell.ok("New-ReceiveConnector Relay -Server HUB01 -Bindings 0.0.0.0:2525 -WhatIf")
    assert result.out.strip() == what_if("New-ReceiveConnector", "HUB01\\Relay")
    assert len(org.transport.receive_connectors("HUB01")) == 2


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("New-ReceiveConnector X -Server CAS01 -Bindings 0.0.0.0:26", "'CAS01' isn't a Hub"),
        ("New-ReceiveConnector X -Server HUB01", "-Bindings"),
        ("New-ReceiveConnector X -Server HUB01 -Bindings 0.0.0.0:25", "already takes"),
        ("Set-ReceiveConnector 'Default HUB01' -MaxMessageSize 3GB", "MaxMessageSize"),
        ("Set-ReceiveConnector 'Default HUB01' -Bindings 0.0.0.0", "Bindings"),
        ("Set-ReceiveConnector 'Default HUB01' -RemoteIPRanges everyone", "RemoteIPRanges"),
        ("Set-ReceiveConnector 'Default HUB01' -AuthMechanism Kerberos", "AuthMechanism"),
        ("Set-ReceiveConnector 'Default HUB01' -Banner Hello", "Banner"),
        ("Get-ReceiveConnector 'HUB01\\Nothing'", "couldn't be found"),
    ],
)
def test_receive_connector_errors_change_nothing(
    shell: Shell, org: Directory, command: str, expected: str
) -> None:
    before = org.transport.receive_connectors()
    result = shell.run(command)
    assert expected in result.error().message
    assert org.transport.receive_connectors() == before


# -- send connectors -----------------------------------------------------------------------


def test_new_get_set_remove_send_connector(shell: Shell, org: Directory) -> None:
    shell.ok('New-SendConnector -Name Internet -AddressSpaces "SMTP:*;1"')
    shell.ok(
        'New-SendConnector "To relay" -AddressSpaces "*.contoso.com;5",fabrikam.com '
        "-SmartHosts relay.lab.net -DNSRoutingEnabled $false -SourceTransportServers "
        "HUB01,HUB02 -Port 2525 -RequireTLS $true -MaxMessageSize 20MB"
    )
    relay = org.transport.send_connector("To relay")
    assert relay.address_spaces == (("*.contoso.com", 5), ("fabrikam.com", 1))
    assert relay.source_transport_servers == ("HUB01", "HUB02")
    assert (relay.port, relay.require_tls, relay.max_message_size) == (2525, True, 20 * MB)
    out = shell.ok("Get-SendConnector 'To relay' | Format-List").out
    assert "AddressSpaces          : {SMTP:*.contoso.com;5, SMTP:fabrikam.com;1}" in out
    assert "MaxMessageSize         : 20 MB (20,971,520 bytes)" in out
    assert "DNSRoutingEnabled      : False" in out
    table = shell.ok("Get-SendConnector").out
    assert "Internet" in table and "{SMTP:*;1}" in table
    assert org.transport.route_for("sales.contoso.com").name == "To relay"  # type: ignore[union-attr]
    shell.ok("Get-SendConnector 'To relay' | Set-SendConnector -Enabled $false")
    assert org.transport.route_for("sales.contoso.com").name == "Internet"  # type: ignore[union-attr]
    shell.ok(
        "Get-ExchangeServer HUB02 | Set-SendConnector 'To relay' -SourceTransportServers HUB02"
    )
    assert org.transport.send_connector("To relay").source_transport_servers == ("HUB02",)
    shell.ok("Remove-SendConnector Internet -Confirm:$false")
    assert [c.name for c in org.transport.send_connectors()] == ["To relay"]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("New-SendConnector X -AddressSpaces 'X400:c=US;1'", "only SMTP"),
        ("New-SendConnector X -AddressSpaces '*;500'", "a cost is 1 to 100"),
        ("New-SendConnector X -AddressSpaces * -DNSRoutingEnabled $false", "SmartHosts"),
        (
            "New-SendConnector X -AddressSpaces * -SmartHosts a.lab.net -DNSRoutingEnabled $true",
            "DNSRoutingEnabled $true",
        ),
        ("New-SendConnector X -AddressSpaces * -SourceTransportServers CAS01", "'CAS01'"),
    ],
)
def test_send_connector_errors_change_nothing(
    shell: Shell, org: Directory, command: str, expected: str
) -> None:
    result = shell.run(command)
    assert expected in result.error().message
    assert org.transport.send_connectors() == []


# -- transport servers ---------------------------------------------------------------------


def test_get_and_set_transport_server(shell: Shell, org: Directory) -> None:
    table = shell.ok("Get-TransportServer").out
    rows = [line.split() for line in table.splitlines() if line.strip()]
    assert ["HUB01", "2.00:00:00", "00:01:00", "1000"] in rows
    assert ["HUB02", "2.00:00:00", "00:01:00", "1000"] in rows
    assert not any(row[0] in ("CAS01", "MBX01") for row in rows)
    out = shell.ok(
        "Set-TransportServer HUB01 -MessageExpirationTimeout 3.00:00:00 "
        "-MessageRetryInterval 00:05:00 -MaxOutboundConnections 50 -PassThru | Format-List"
    ).out
    assert "MessageExpirationTimeout : 3.00:00:00" in out
    settings = org.transport.server_settings("HUB01")
    assert settings.message_retry_interval == timedelta(minutes=5)
    assert settings.max_outbound_connections == 50
    result = shell.run("Set-TransportServer HUB01 -MessageExpirationTimeout 100.00:00:00")
    assert "MessageExpirationTimeout" in result.error().message
    result = shell.run("Set-TransportServer CAS01 -MaxOutboundConnections 10")
    assert "'CAS01' isn't a Hub Transport server" in result.error().message
    assert org.transport.server_settings("HUB01") == settings
