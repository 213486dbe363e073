"""Exchange servers: install order, names, roles, uniqueness, removal."""

from __future__ import annotations

import itertools

import pytest

from casarray.directory import (
    ConflictError,
    Directory,
    InUseError,
    InvalidValueError,
    NotFoundError,
    ServerRole,
)
from casarray.directory.objects import EXCHANGE_VERSION
from casarray.directory.servers import parse_roles

ADMIN_GROUP_DN = (
    "CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,CN=Lab,"
    "CN=Microsoft Exchange,CN=Services,CN=Configuration,DC=lab,DC=net"
)


def test_topology_servers(bj: Directory) -> None:
    servers = bj.servers.get()
    assert [s.name for s in servers] == ["CAS01", "CAS02", "MBX01", "CAS03", "MBX02"]
    cas01 = servers[0]
    assert cas01.fqdn == "CAS01.lab.net"
    assert cas01.ip_address == "127.77.1.11"
    assert cas01.site == "BJ"
    assert cas01.roles == ServerRole.ClientAccess
    assert cas01.is_client_access_server
    assert not cas01.is_mailbox_server
    assert not cas01.is_hub_transport_server
    assert cas01.admin_display_version == EXCHANGE_VERSION
    mbx02 = bj.servers.one("MBX02")
    assert (mbx02.site, mbx02.roles) == ("SH", ServerRole.Mailbox)
    assert mbx02.is_mailbox_server


def test_install_order_strictly_increasing(bj: Directory) -> None:
    orders = [s.install_order for s in bj.servers.get()]
    assert all(a < b for a, b in itertools.pairwise(orders))
    later = bj.servers.new("CAS00", "ClientAccess", "127.77.1.10")
    assert later.install_order > orders[-1]
    # listed oldest install first, not by name
    assert [s.name for s in bj.servers.get()][-1] == "CAS00"


def test_install_order_survives_failed_installs(bj: Directory) -> None:
    before = bj.servers.one("MBX02").install_order
    with pytest.raises(ConflictError):
        bj.servers.new("CAS01", "ClientAccess", "127.77.1.99")
    after = bj.servers.new("CAS04", "ClientAccess", "127.77.1.14").install_order
    assert after > before


def test_filters(bj: Directory) -> None:
    assert [s.name for s in bj.servers.get(site="sh")] == ["CAS03", "MBX02"]
    assert [s.name for s in bj.servers.get(role=ServerRole.Mailbox)] == ["MBX01", "MBX02"]
    assert [s.name for s in bj.servers.get(site="BJ", role=ServerRole.ClientAccess)] == [
        "CAS01",
        "CAS02",
    ]
    assert [s.name for s in bj.servers.get("cas02.LAB.net")] == ["CAS02"]


def test_names(bj: Directory) -> None:
    cas01 = bj.servers.one("CAS01")
    assert cas01.exchange_legacy_dn == (
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration"
        "/cn=Servers/cn=CAS01"
    )
    assert cas01.distinguished_name == f"CN=CAS01,CN=Servers,{ADMIN_GROUP_DN}"


def test_explicit_fqdn(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    server = directory.servers.new("CAS01", "ClientAccess", "127.77.1.11", fqdn="cas01.corp.lab.")
    assert server.fqdn == "cas01.corp.lab"
    assert directory.servers.one("CAS01.CORP.LAB").name == "CAS01"


def test_default_fqdn_uses_the_default_accepted_domain(directory: Directory) -> None:
    directory.add_accepted_domain("corp.example", default=True)
    directory.sites.new("BJ", ["127.77.1.0/24"])
    assert directory.servers.new("CAS01", "cas", "127.77.1.11").fqdn == "CAS01.corp.example"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ("ClientAccess,Mailbox", ServerRole.ClientAccess | ServerRole.Mailbox),
        ("clientaccess, MAILBOX ,HubTransport", ServerRole(7)),
        (["Mailbox", "HubTransport"], ServerRole.Mailbox | ServerRole.HubTransport),
        (("CAS", "mbx"), ServerRole.ClientAccess | ServerRole.Mailbox),
        ("hub", ServerRole.HubTransport),
        (ServerRole.Mailbox, ServerRole.Mailbox),
    ],
)
def test_parse_roles(roles: object, expected: ServerRole) -> None:
    assert parse_roles(roles) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("roles", ["Edge", "ClientAccess,UnifiedMessaging", ["Mailbox", "x"], ""])
def test_bad_role_refused(directory: Directory, roles: object) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    with pytest.raises(InvalidValueError) as err:
        directory.servers.new("EX01", roles, "127.77.1.11")  # type: ignore[arg-type]
    assert err.value.parameter == "Roles"
    assert "is not a server role" in str(err.value)
    assert "ClientAccess, Mailbox, HubTransport" in str(err.value)
    assert directory.servers.get() == []


def test_no_roles_refused(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    with pytest.raises(InvalidValueError) as err:
        directory.servers.new("EX01", [], "127.77.1.11")
    assert err.value.parameter == "Roles"
    assert "names no role" in str(err.value)


def test_empty_role_flag_refused(directory: Directory) -> None:
    """ServerRole.NONE names no role either, like an empty list."""
    directory.sites.new("BJ", ["127.77.1.0/24"])
    with pytest.raises(InvalidValueError) as err:
        directory.servers.new("EX01", ServerRole.NONE, "127.77.1.11")
    assert err.value.parameter == "Roles"
    assert directory.servers.get() == []


def test_multi_role_server(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    ex = directory.servers.new("EX01", "ClientAccess,Mailbox,HubTransport", "127.77.1.11")
    assert ex.is_client_access_server and ex.is_mailbox_server and ex.is_hub_transport_server
    assert str(ex.roles) == "ClientAccess, Mailbox, HubTransport"
    assert ex.roles.names() == ["ClientAccess", "Mailbox", "HubTransport"]


def test_duplicate_server_name_refused_naming_it(bj: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        bj.servers.new("cas01", "ClientAccess", "127.77.1.99")
    assert "'CAS01'" in str(err.value)
    assert "CAS01.lab.net" in str(err.value)
    assert err.value.conflicting == "CAS01.lab.net"
    assert len(bj.servers.get()) == 5


def test_duplicate_server_short_name_refused(bj: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        bj.servers.new("Cas02", "Mailbox", "127.77.1.99", fqdn="other.lab.net")
    assert "'CAS02'" in str(err.value)


def test_duplicate_fqdn_refused(bj: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        bj.servers.new("NEW01", "ClientAccess", "127.77.1.99", fqdn="MBX01.LAB.NET")
    assert "'MBX01'" in str(err.value)
    assert err.value.conflicting == "MBX01.lab.net"


def test_duplicate_address_refused_naming_the_server(bj: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        bj.servers.new("CAS09", "ClientAccess", "127.77.1.12")
    assert "127.77.1.12" in str(err.value)
    assert "'CAS02'" in str(err.value)
    assert err.value.conflicting == "CAS02.lab.net"


def test_server_named_like_an_array_refused_naming_the_array(bj: Directory) -> None:
    bj.arrays.new("bjcas.lab.net", site="BJ")  # name "bjcas"
    with pytest.raises(ConflictError) as err:
        bj.servers.new("BJCAS", "ClientAccess", "127.77.1.13", fqdn="x.lab.net")
    assert "client access array 'bjcas' (bjcas.lab.net)" in str(err.value)
    assert err.value.conflicting == "bjcas.lab.net"
    with pytest.raises(ConflictError) as err:
        bj.servers.new("CAS05", "ClientAccess", "127.77.1.13", fqdn="BJCAS.lab.net")
    assert "'bjcas'" in str(err.value)
    assert [s.name for s in bj.servers.get(site="BJ")] == ["CAS01", "CAS02", "MBX01"]


@pytest.mark.parametrize("bad", ["CAS_01", "ABCDEFGHIJKLMNOP", "", "-CAS", "12345", "cas 1"])
def test_bad_server_name_refused(bj: Directory, bad: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.servers.new(bad, "ClientAccess", "127.77.1.99", fqdn="ok.lab.net")
    assert err.value.parameter == "Name"


@pytest.mark.parametrize("bad", ["127.77.1", "127.77.1.256", "::1", "host"])
def test_bad_address_refused(bj: Directory, bad: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.servers.new("CAS09", "ClientAccess", bad)
    assert err.value.parameter == "IPAddress"
    assert "IPv4" in str(err.value)


def test_bad_fqdn_refused(bj: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.servers.new("CAS09", "ClientAccess", "127.77.1.99", fqdn="cas09")
    assert err.value.parameter == "Fqdn"


def test_remove_unreferenced_server(bj: Directory) -> None:
    assert bj.servers.remove("cas02.lab.net") == []
    with pytest.raises(NotFoundError):
        bj.servers.one("CAS02")
    # its name, FQDN and address are free again
    assert bj.servers.new("CAS02", "ClientAccess", "127.77.1.12").name == "CAS02"


def test_remove_server_holding_databases_refused(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    with pytest.raises(InUseError) as err:
        bj.servers.remove("MBX01", force=True)
    assert "DB01, DB02" in str(err.value)
    assert err.value.dependents == ["DB01", "DB02"]
    assert bj.servers.one("MBX01").name == "MBX01"


def test_remove_rpc_client_access_server_refused_listing_databases(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    bj.databases.new("DB03", "MBX02")  # names CAS03
    with pytest.raises(InUseError) as err:
        bj.servers.remove("CAS01")
    text = str(err.value)
    assert "'CAS01'" in text
    assert "DB01, DB02" in text
    assert "DB03" not in text
    assert "-Force" in text
    assert err.value.dependents == ["DB01", "DB02"]
    assert bj.servers.one("CAS01").name == "CAS01"


def test_forced_remove_returns_the_databases_left_pointing(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    assert bj.servers.remove("CAS01", force=True) == ["DB01", "DB02"]
    with pytest.raises(NotFoundError):
        bj.servers.one("CAS01")
    assert {d.rpc_client_access_server for d in bj.databases.get()} == {"CAS01.lab.net"}


def test_remove_server_named_in_other_case(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    bj.databases.set_rpc_client_access_server("DB01", "cas02.LAB.NET")
    with pytest.raises(InUseError) as err:
        bj.servers.remove("CAS02")
    assert err.value.dependents == ["DB01"]


def test_remove_unknown_server(bj: Directory) -> None:
    with pytest.raises(NotFoundError) as err:
        bj.servers.remove("CAS99")
    assert 'The server "CAS99"' in str(err.value)
