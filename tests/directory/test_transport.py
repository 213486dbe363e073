"""Hub Transport in the directory (Directory.transport): accepted domains, receive
connectors (made for a Hub Transport server as Exchange setup makes them), send
connectors and routing, the transport servers' settings, and revision 0009, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from casarray.directory import Directory, migrate
from casarray.directory.errors import (
    ConflictError,
    InUseError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
    NotHubTransportServerError,
)
from casarray.directory.store import Store
from casarray.directory.transport import ReceiveConnector

MB = 1024**2


@pytest.fixture
def org(bj: Directory) -> Directory:
    """The BJ/SH topology plus HUB01 (Hub Transport, BJ) and HUB02 (Mailbox and Hub
    Transport, SH)."""
    bj.servers.new("HUB01", "HubTransport", "127.77.1.31")
    bj.servers.new("HUB02", "Mailbox,HubTransport", "127.77.2.31")
    return bj


# -- receive connectors ------------------------------------------------------------------


def test_a_new_hub_transport_server_gets_setups_receive_connectors(org: Directory) -> None:
    connectors = org.transport.receive_connectors("HUB01")
    assert [c.identity for c in connectors] == ["HUB01\\Client HUB01", "HUB01\\Default HUB01"]
    client, default = connectors
    assert default.bindings == (("0.0.0.0", 25),)
    assert default.remote_ip_ranges == ("0.0.0.0-255.255.255.255",)
    assert default.permission_groups == {
        "AnonymousUsers",
        "ExchangeUsers",
        "ExchangeServers",
        "ExchangeLegacyServers",
    }
    assert default.auth_mechanism == {
        "Tls",
        "Integrated",
        "BasicAuth",
        "BasicAuthRequireTLS",
        "ExchangeServer",
    }
    assert client.bindings == (("0.0.0.0", 587),)
    assert client.permission_groups == {"ExchangeUsers"}
    assert client.auth_mechanism == {"Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"}
    for connector in connectors:
        assert connector.server == "HUB01"
        assert connector.max_message_size == 10 * MB
        assert connector.max_recipients_per_message == 200
        assert connector.fqdn == "HUB01.lab.net"
        assert connector.banner is None
        assert connector.enabled
        assert connector.accepts_from("203.0.113.9")


def test_servers_without_the_role_get_no_connectors(org: Directory) -> None:
    assert {c.server for c in org.transport.receive_connectors()} == {"HUB01", "HUB02"}
    with pytest.raises(NotHubTransportServerError, match="'CAS01' isn't a Hub Transport"):
        org.transport.receive_connectors("CAS01")
    with pytest.raises(NotHubTransportServerError, match="'MBX01'"):
        org.transport.new_receive_connector("Relay", "MBX01", bindings="0.0.0.0:2525")
    with pytest.raises(NotHubTransportServerError, match="'CAS01'"):
        org.transport.server_settings("CAS01")


def test_new_custom_receive_connector(org: Directory) -> None:
    relay = org.transport.new_receive_connector(
        "App Relay",
        "hub01.lab.net",
        bindings=["0.0.0.0:25"],
        remote_ip_ranges="10.0.0.5, 198.18.0.0/15",
        auth_mechanism="None",
        permission_groups="AnonymousUsers",
        max_message_size="25MB",
        max_recipients_per_message=50,
        banner="220 relay ready",
    )
    assert relay.identity == "HUB01\\App Relay"
    assert relay.remote_ip_ranges == ("10.0.0.5", "198.18.0.0/15")
    assert relay.max_message_size == 25 * MB
    assert relay.accepts_from("10.0.0.5") and relay.accepts_from("198.19.255.1")
    assert not relay.accepts_from("10.0.0.6")
    assert not relay.accepts_from("not an address")
    assert org.transport.receive_connector("HUB01\\app relay") == relay
    assert org.transport.receive_connector("hub01.lab.net\\App Relay") == relay
    assert org.transport.receive_connector(relay.guid) == relay
    assert org.transport.receive_connector("App Relay") == relay


def test_the_narrowest_remote_range_wins(org: Directory) -> None:
    org.transport.new_receive_connector(
        "App Relay", "HUB01", bindings="0.0.0.0:25", remote_ip_ranges="10.0.0.5"
    )
    chosen = org.transport.receive_connector_for("HUB01", ("127.77.1.31", 25), "10.0.0.5")
    assert chosen is not None and chosen.name == "App Relay"
    other = org.transport.receive_connector_for("HUB01", ("127.77.1.31", 25), "10.0.0.6")
    assert other is not None and other.name == "Default HUB01"
    submission = org.transport.receive_connector_for("HUB01", ("127.77.1.31", 587), "10.0.0.5")
    assert submission is not None and submission.name == "Client HUB01"
    assert org.transport.receive_connector_for("HUB01", ("127.77.1.31", 2525), "10.0.0.5") is None


def test_same_binding_and_remote_range_is_refused(org: Directory) -> None:
    version = org.topology_version()
    with pytest.raises(ConflictError, match=r"'HUB01\\Default HUB01' already takes") as err:
        org.transport.new_receive_connector(
            "Second", "HUB01", bindings="127.77.1.31:25", remote_ip_ranges="0.0.0.0/0"
        )
    assert err.value.conflicting == "HUB01\\Default HUB01"
    assert org.topology_version() == version
    # another range, or another port: fine
    org.transport.new_receive_connector(
        "Second", "HUB01", bindings="0.0.0.0:25", remote_ip_ranges="10.0.0.0/8"
    )
    org.transport.new_receive_connector("Third", "HUB01", bindings="0.0.0.0:2525")
    with pytest.raises(ConflictError):
        org.transport.set_receive_connector("HUB01\\Third", bindings="0.0.0.0:587")


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({"bindings": "0.0.0.0"}, "Bindings"),
        ({"bindings": "0.0.0.0:70000"}, "Bindings"),
        ({"bindings": "mail:25"}, "Bindings"),
        ({"remote_ip_ranges": "10.0.0.9-10.0.0.1"}, "RemoteIPRanges"),
        ({"remote_ip_ranges": "everyone"}, "RemoteIPRanges"),
        ({"auth_mechanism": "Kerberos"}, "AuthMechanism"),
        ({"auth_mechanism": "None, Tls"}, "AuthMechanism"),
        ({"auth_mechanism": "BasicAuthRequireTLS"}, "AuthMechanism"),
        ({"permission_groups": "Everyone"}, "PermissionGroups"),
        ({"max_message_size": "lots"}, "MaxMessageSize"),
        ({"max_message_size": "3GB"}, "MaxMessageSize"),
        ({"max_message_size": "1KB"}, "MaxMessageSize"),
        ({"max_recipients_per_message": 0}, "MaxRecipientsPerMessage"),
        ({"banner": "Welcome"}, "Banner"),
        ({"fqdn": "nohost"}, "Fqdn"),
    ],
)
def test_bad_receive_connector_values_change_nothing(
    org: Directory, fields: dict[str, object], parameter: str
) -> None:
    before = org.transport.receive_connector("Default HUB01")
    version = org.topology_version()
    with pytest.raises(InvalidValueError) as err:
        org.transport.set_receive_connector("HUB01\\Default HUB01", **fields)
    assert err.value.parameter == parameter
    assert org.transport.receive_connector("Default HUB01") == before
    assert org.topology_version() == version


def test_set_and_remove_receive_connector(org: Directory) -> None:
    changed = org.transport.set_receive_connector(
        "HUB01\\Default HUB01",
        name="Inbound",
        remote_ip_ranges=["127.0.0.0/8", "198.18.0.0-198.19.255.255"],
        max_message_size="20 MB (20,971,520 bytes)",
        enabled=False,
        fqdn="mail.lab.net",
    )
    assert changed.identity == "HUB01\\Inbound"
    assert changed.max_message_size == 20 * MB
    assert not changed.enabled and changed.fqdn == "mail.lab.net"
    assert changed.bindings == (("0.0.0.0", 25),)  # untouched
    with pytest.raises(ConflictError, match="already has a receive connector named"):
        org.transport.set_receive_connector("HUB01\\Inbound", name="client hub01")
    org.transport.remove_receive_connector("HUB01\\Inbound")
    with pytest.raises(NotFoundError):
        org.transport.receive_connector("HUB01\\Inbound")


def test_a_name_on_two_servers_is_ambiguous(org: Directory) -> None:
    org.transport.new_receive_connector("Relay", "HUB01", bindings="0.0.0.0:2525")
    org.transport.new_receive_connector("Relay", "HUB02", bindings="0.0.0.0:2525")
    with pytest.raises(Exception, match=r"HUB01\\Relay, HUB02\\Relay"):
        org.transport.receive_connector("Relay")
    assert org.transport.receive_connector("HUB02\\Relay").server == "HUB02"


# -- accepted domains --------------------------------------------------------------------


def test_the_organizations_domain_is_the_default_accepted_domain(directory: Directory) -> None:
    (domain,) = directory.transport.accepted_domains()
    assert (domain.name, domain.domain_name, domain.domain_type, domain.default) == (
        "lab.net",
        "lab.net",
        "Authoritative",
        True,
    )


def test_new_accepted_domains_and_what_they_accept(directory: Directory) -> None:
    t = directory.transport
    t.new_accepted_domain("Contoso", "Contoso.COM")
    t.new_accepted_domain("Lab subdomains", "*.lab.net", "internalrelay")
    assert t.accepted("LAB.net").name == "lab.net"  # type: ignore[union-attr]
    assert t.accepted("sales.lab.net").name == "Lab subdomains"  # type: ignore[union-attr]
    assert t.accepted("a.b.lab.net").domain_type == "InternalRelay"  # type: ignore[union-attr]
    assert t.accepted("contoso.com.").name == "Contoso"  # type: ignore[union-attr]
    assert t.accepted("sub.contoso.com") is None
    assert t.accepted("fabrikam.com") is None
    # a wildcard domain takes mail but holds no addresses (nor a DNS zone)
    assert directory.organization().accepted_domains == ("lab.net", "contoso.com")
    with pytest.raises(ConflictError):
        t.new_accepted_domain("Other", "contoso.com")
    with pytest.raises(ConflictError):
        t.new_accepted_domain("contoso", "contoso.net")
    with pytest.raises(InvalidValueError) as err:
        t.new_accepted_domain("Bad", "*")
    assert err.value.parameter == "DomainName"
    with pytest.raises(InvalidValueError) as err:
        t.new_accepted_domain("Bad", "fabrikam.com", "Relay")
    assert err.value.parameter == "DomainType"


def test_make_default_moves_the_mark(directory: Directory) -> None:
    t = directory.transport
    t.new_accepted_domain("Contoso", "contoso.com", make_default=True)
    assert [d.name for d in t.accepted_domains() if d.default] == ["Contoso"]
    assert directory.organization().default_domain == "contoso.com"
    t.set_accepted_domain("lab.net", make_default=True, name="Lab")
    assert [d.name for d in t.accepted_domains() if d.default] == ["Lab"]
    t.new_accepted_domain("Wild", "*.example.org")
    with pytest.raises(InvalidOperationError, match="can't be the default"):
        t.set_accepted_domain("Wild", make_default=True)


def test_remove_accepted_domain(directory: Directory, password_hash: str) -> None:
    t = directory.transport
    with pytest.raises(InvalidOperationError, match="default accepted domain"):
        t.remove_accepted_domain("lab.net")
    t.new_accepted_domain("Contoso", "contoso.com")
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.servers.new("MBX01", "Mailbox", "127.77.1.21")
    directory.databases.new("DB01", "MBX01", mounted=True)
    directory.mailboxes.new(
        name="Alice",
        alias="alice",
        database="DB01",
        password_hash=password_hash,
        primary_smtp_address="alice@contoso.com",
    )
    with pytest.raises(InUseError, match=r"alice@contoso\.com"):
        t.remove_accepted_domain("Contoso")
    t.new_accepted_domain("Fabrikam", "fabrikam.com")
    t.remove_accepted_domain("fabrikam.com")
    assert [d.name for d in t.accepted_domains()] == ["lab.net", "Contoso"]


# -- send connectors ---------------------------------------------------------------------


def test_new_send_connector_defaults(org: Directory) -> None:
    internet = org.transport.new_send_connector("Internet", address_spaces="SMTP:*;1")
    assert internet.address_spaces == (("*", 1),)
    assert internet.dns_routing_enabled and internet.smart_hosts == ()
    assert (internet.port, internet.require_tls, internet.enabled) == (25, False, True)
    assert internet.max_message_size == 10 * MB
    assert internet.source_transport_servers == ()
    relay = org.transport.new_send_connector(
        "Smart host",
        address_spaces=["*.contoso.com;5", "fabrikam.com"],
        smart_hosts="[192.0.2.1], relay.example.net",
        source_transport_servers=["HUB02", "hub01.lab.net"],
        port=2525,
        require_tls=True,
        max_message_size="30MB",
    )
    assert relay.address_spaces == (("*.contoso.com", 5), ("fabrikam.com", 1))
    assert not relay.dns_routing_enabled
    assert relay.smart_hosts == ("192.0.2.1", "relay.example.net")
    assert relay.source_transport_servers == ("HUB01", "HUB02")  # install order
    assert org.transport.send_connector("smart HOST") == relay


@pytest.mark.parametrize(
    ("fields", "parameter"),
    [
        ({}, "AddressSpaces"),
        ({"address_spaces": "X400:c=US;1"}, "AddressSpaces"),
        ({"address_spaces": "*;0"}, "AddressSpaces"),
        ({"address_spaces": "*;101"}, "AddressSpaces"),
        ({"address_spaces": "bad domain"}, "AddressSpaces"),
        (
            {"address_spaces": "*", "smart_hosts": "a.b.c", "dns_routing_enabled": True},
            "SmartHosts",
        ),
        ({"address_spaces": "*", "dns_routing_enabled": False}, "SmartHosts"),
        ({"address_spaces": "*", "port": 0}, "Port"),
        ({"address_spaces": "*", "max_message_size": "4GB"}, "MaxMessageSize"),
    ],
)
def test_bad_send_connectors_are_refused(
    org: Directory, fields: dict[str, object], parameter: str
) -> None:
    with pytest.raises(InvalidValueError) as err:
        org.transport.new_send_connector("Out", **fields)
    assert err.value.parameter == parameter
    assert org.transport.send_connectors() == []


def test_a_source_server_must_be_a_hub_transport_server(org: Directory) -> None:
    with pytest.raises(NotHubTransportServerError, match="'CAS01'"):
        org.transport.new_send_connector(
            "Out", address_spaces="*", source_transport_servers=["HUB01", "CAS01"]
        )
    assert org.transport.send_connectors() == []


def test_route_for_picks_the_most_specific_then_the_cheapest(org: Directory) -> None:
    t = org.transport
    t.new_send_connector("Internet", address_spaces="*;1")
    t.new_send_connector("Contoso wide", address_spaces="*.contoso.com;1", smart_hosts="a.lab.net")
    t.new_send_connector("Contoso", address_spaces="contoso.com;10", smart_hosts="b.lab.net")
    t.new_send_connector("Contoso cheap", address_spaces="contoso.com;2", smart_hosts="c.lab.net")
    t.new_send_connector(
        "From HUB02", address_spaces="fabrikam.com", source_transport_servers="HUB02"
    )
    assert t.route_for("contoso.com").name == "Contoso cheap"  # type: ignore[union-attr]
    assert t.route_for("Sales.Contoso.com").name == "Contoso wide"  # type: ignore[union-attr]
    assert t.route_for("example.org").name == "Internet"  # type: ignore[union-attr]
    assert t.route_for("fabrikam.com", "HUB02").name == "From HUB02"  # type: ignore[union-attr]
    assert t.route_for("fabrikam.com", "HUB01").name == "Internet"  # type: ignore[union-attr]
    t.set_send_connector("Contoso cheap", enabled=False)
    assert t.route_for("contoso.com").name == "Contoso"  # type: ignore[union-attr]
    t.remove_send_connector("Internet")
    assert t.route_for("example.org") is None


def test_set_send_connector(org: Directory) -> None:
    t = org.transport
    t.new_send_connector("Out", address_spaces="*")
    with pytest.raises(InvalidValueError, match="DNSRoutingEnabled"):
        t.set_send_connector("Out", smart_hosts="relay.lab.net")
    changed = t.set_send_connector(
        "Out", smart_hosts="relay.lab.net", dns_routing_enabled=False, name="Relay", port=587
    )
    assert (changed.name, changed.smart_hosts, changed.port) == ("Relay", ("relay.lab.net",), 587)
    changed = t.set_send_connector("Relay", source_transport_servers=["HUB01"])
    assert changed.source_transport_servers == ("HUB01",)


# -- transport servers -------------------------------------------------------------------


def test_transport_server_settings(org: Directory) -> None:
    settings = org.transport.server_settings("HUB01")
    assert settings.message_expiration_timeout == timedelta(days=2)
    assert settings.message_retry_interval == timedelta(minutes=1)
    assert settings.max_outbound_connections == 1000
    changed = org.transport.set_server_settings(
        "HUB01", message_expiration_timeout="1.12:00:00", message_retry_interval="00:05:00"
    )
    assert changed.message_expiration_timeout == timedelta(days=1, hours=12)
    assert changed.message_retry_interval == timedelta(minutes=5)
    assert org.transport.server_settings("HUB02").message_retry_interval == timedelta(minutes=1)
    for field, value in [
        ("message_expiration_timeout", "91.00:00:00"),
        ("message_expiration_timeout", "two days"),
        ("message_retry_interval", "00:00:00"),
        ("max_outbound_connections", 0),
    ]:
        with pytest.raises(InvalidValueError):
            org.transport.set_server_settings("HUB01", **{field: value})
    assert org.transport.server_settings("HUB01") == changed


# -- servers -------------------------------------------------------------------------------


def test_removing_a_server_removes_its_connectors(org: Directory) -> None:
    org.transport.set_server_settings("HUB01", max_outbound_connections=10)
    org.transport.new_send_connector(
        "Both", address_spaces="*", source_transport_servers="HUB01,HUB02"
    )
    org.servers.remove("HUB01")
    assert {c.server for c in org.transport.receive_connectors()} == {"HUB02"}
    assert org.transport.send_connector("Both").source_transport_servers == ("HUB02",)
    # installed again under the same name: setup's connectors and defaults anew
    org.servers.new("HUB01", "HubTransport", "127.77.1.31")
    assert len(org.transport.receive_connectors("HUB01")) == 2
    assert org.transport.server_settings("HUB01").max_outbound_connections == 1000


def test_the_only_source_of_a_send_connector_cant_be_removed(org: Directory) -> None:
    org.transport.new_send_connector("Only", address_spaces="*", source_transport_servers="HUB02")
    with pytest.raises(InUseError, match="only source server of the send connectors Only"):
        org.servers.remove("HUB02")
    assert len(org.transport.receive_connectors("HUB02")) == 2


# -- revision 0009 -----------------------------------------------------------------------


def test_upgrade_gives_existing_hub_transport_servers_their_connectors(
    empty_directory_url: str,
) -> None:
    store = Store(empty_directory_url)
    try:
        migrate.upgrade(store, "0008")
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO organization (id, guid, name, ad_domain, when_created, "
                    "session_secret) VALUES (1, :g, 'Lab', 'lab.net', :now, :secret)"
                ),
                {"g": "6f0d3a4e-0000-4000-8000-000000000001", "now": "2026-01-01", "secret": b"x"},
            )
            conn.execute(
                text("INSERT INTO accepted_domain (domain, is_default) VALUES ('lab.net', :t)"),
                {"t": True},
            )
            conn.execute(
                text(
                    "INSERT INTO site (id, guid, name, name_key, when_created) "
                    "VALUES (1, '6f0d3a4e-0000-4000-8000-000000000002', 'BJ', 'bj', '2026-01-01')"
                )
            )
            for number, (name, hub) in enumerate([("MBX01", True), ("CAS01", False)], 1):
                conn.execute(
                    text(
                        "INSERT INTO server (guid, name, name_key, fqdn, fqdn_key, ip_address, "
                        "site_id, client_access, mailbox, hub_transport, install_order, "
                        "version, when_created) VALUES (:guid, :name, :key, :fqdn, :fkey, "
                        ":ip, 1, :cas, :mbx, :hub, :n, '14.3.123.4', '2026-01-01')"
                    ),
                    {
                        "guid": f"6f0d3a4e-0000-4000-8000-00000000001{number}",
                        "name": name,
                        "key": name.lower(),
                        "fqdn": f"{name}.lab.net",
                        "fkey": f"{name.lower()}.lab.net",
                        "ip": f"127.77.1.{20 + number}",
                        "cas": not hub,
                        "mbx": hub,
                        "hub": hub,
                        "n": -number,  # below every order the topology version gives
                    },
                )
        migrate.upgrade(store)
    finally:
        store.dispose()
    with Directory.open(empty_directory_url) as d:
        (domain,) = d.transport.accepted_domains()
        assert (domain.name, domain.domain_type, domain.default) == (
            "lab.net",
            "Authoritative",
            True,
        )
        connectors = {c.identity: c for c in d.transport.receive_connectors()}
        assert set(connectors) == {"MBX01\\Default MBX01", "MBX01\\Client MBX01"}
        made_by_setup = d.transport.receive_connectors("MBX01")
        d.servers.new("HUB09", "HubTransport", "127.77.1.99", site="BJ")
        for migrated, fresh in zip(
            made_by_setup, d.transport.receive_connectors("HUB09"), strict=True
        ):
            assert _settings(migrated) == _settings(fresh)


def _settings(connector: ReceiveConnector) -> tuple[object, ...]:
    return (
        connector.name.split()[0],
        connector.bindings,
        connector.remote_ip_ranges,
        connector.auth_mechanism,
        connector.permission_groups,
        connector.max_message_size,
        connector.max_recipients_per_message,
        connector.banner,
        connector.enabled,
    )
