"""The preferred endpoint of a mailbox (Exchange 2010 SP2 RU3's rule, in
`directory.endpoints`), on both back ends, and Exchange's hexadecimal ServerVersion."""

from __future__ import annotations

import pytest

from casarray.directory import Directory, InvalidValueError, Mailbox, NotFoundError
from casarray.directory.endpoints import (
    WHY_ARRAY,
    WHY_DATABASE,
    WHY_SERVER,
    Candidate,
    Endpoint,
    NoEndpointError,
    access_name,
    choose_endpoint,
    database_endpoint,
    is_right_endpoint,
    parse_server_version,
    preferred_endpoint,
    server_version_hex,
    serves,
)

PREFIX = "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers"


def user(d: Directory, alias: str, database: str, password_hash: str) -> Mailbox:
    return d.mailboxes.new(
        name=alias.title(), alias=alias, database=database, password_hash=password_hash
    )


# -- the rule, on the directory --------------------------------------------------------


def test_array_in_site(bj: Directory, password_hash: str) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.databases.new("DB01", "MBX01", mounted=True)  # made after the array: names it
    alice = user(bj, "alice", "DB01", password_hash)
    endpoint = preferred_endpoint(bj, alice)
    assert endpoint == Endpoint(
        fqdn="bj-cas.lab.net",
        kind="array",
        legacy_dn=f"{PREFIX}/cn=bj-cas.lab.net",
        site="BJ",
        why=WHY_DATABASE,
        database="DB01",
        rpc_client_access_server="bj-cas.lab.net",
    )
    assert endpoint.is_array
    assert endpoint.server_dn == f"{PREFIX}/cn=bj-cas.lab.net"
    assert endpoint.mdb_dn == f"{PREFIX}/cn=bj-cas.lab.net/cn=Microsoft Private MDB"
    # any identity of the mailbox gives the same answer
    assert preferred_endpoint(bj, "alice@lab.net") == endpoint
    assert preferred_endpoint(bj, "ALICE") == endpoint
    assert preferred_endpoint(bj, alice.exchange_legacy_dn) == endpoint
    assert preferred_endpoint(bj, alice.guid) == endpoint
    assert database_endpoint(bj, "DB01") == endpoint
    assert database_endpoint(bj, bj.databases.one("DB01")) == endpoint


def test_old_database_keeps_its_server_until_updated(bj: Directory, password_hash: str) -> None:
    bj.databases.new("DB01", "MBX01")  # before the array: the first CAS of BJ
    alice = user(bj, "alice", "DB01", password_hash)
    bj.arrays.new("bj-cas.lab.net", "BJ")
    endpoint = preferred_endpoint(bj, alice)
    assert (endpoint.fqdn, endpoint.kind, endpoint.why) == ("CAS01.lab.net", "server", WHY_DATABASE)
    assert endpoint.legacy_dn == f"{PREFIX}/cn=CAS01"
    assert endpoint.mdb_dn == f"{PREFIX}/cn=CAS01/cn=Microsoft Private MDB"
    # the seed's step V: Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer
    bj.databases.set_rpc_client_access_server(None, "bj-cas.lab.net")
    endpoint = preferred_endpoint(bj, alice)
    assert (endpoint.fqdn, endpoint.kind, endpoint.why) == ("bj-cas.lab.net", "array", WHY_DATABASE)
    # ... and "redirecting the user to a good CAS server"
    bj.databases.set("DB01", rpc_client_access_server="cas02.LAB.net")
    endpoint = preferred_endpoint(bj, alice)
    assert (endpoint.fqdn, endpoint.kind, endpoint.why) == ("CAS02.lab.net", "server", WHY_DATABASE)


def test_other_sites_array_is_not_followed(bj: Directory, password_hash: str) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ")
    bj.arrays.new("sh-cas.lab.net", "SH")
    bj.databases.new("DB03", "MBX02", mounted=True)
    bob = user(bj, "bob", "DB03", password_hash)
    # the bulk update of the seed also reached the SH database
    bj.databases.set_rpc_client_access_server(None, "bj-cas.lab.net")
    endpoint = preferred_endpoint(bj, bob)
    assert (endpoint.fqdn, endpoint.kind, endpoint.site, endpoint.why) == (
        "sh-cas.lab.net",
        "array",
        "SH",
        WHY_ARRAY,
    )
    assert endpoint.rpc_client_access_server == "bj-cas.lab.net"
    # another site's server: the same
    bj.databases.set("DB03", rpc_client_access_server="CAS01.lab.net")
    assert preferred_endpoint(bj, bob).fqdn == "sh-cas.lab.net"


def test_other_site_without_array_gives_a_cas_of_the_site(
    bj: Directory, password_hash: str
) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ")
    bj.databases.new("DB03", "MBX02")
    bob = user(bj, "bob", "DB03", password_hash)
    assert preferred_endpoint(bj, bob).why == WHY_DATABASE  # CAS03, its default
    bj.databases.set("DB03", rpc_client_access_server="bj-cas.lab.net")
    bj.servers.new("CAS04", "ClientAccess", "127.77.2.12")  # installed later
    endpoint = preferred_endpoint(bj, bob)
    assert (endpoint.fqdn, endpoint.kind, endpoint.site, endpoint.why) == (
        "CAS03.lab.net",
        "server",
        "SH",
        WHY_SERVER,
    )
    assert endpoint.legacy_dn == f"{PREFIX}/cn=CAS03"
    # a CAS of the site named by the database wins over the first installed
    bj.databases.set("DB03", rpc_client_access_server="CAS04.lab.net")
    assert preferred_endpoint(bj, bob).fqdn == "CAS04.lab.net"


def test_removed_server_is_not_followed(bj: Directory, password_hash: str) -> None:
    bj.databases.new("DB01", "MBX01")  # names CAS01
    alice = user(bj, "alice", "DB01", password_hash)
    assert bj.servers.remove("CAS01", force=True) == ["DB01"]
    endpoint = preferred_endpoint(bj, alice)
    assert (endpoint.fqdn, endpoint.why) == ("CAS02.lab.net", WHY_SERVER)
    assert endpoint.rpc_client_access_server == "CAS01.lab.net"
    bj.arrays.new("bj-cas.lab.net", "BJ")
    assert (preferred_endpoint(bj, alice).fqdn, preferred_endpoint(bj, alice).why) == (
        "bj-cas.lab.net",
        WHY_ARRAY,
    )


def test_site_without_client_access_server(bj: Directory, password_hash: str) -> None:
    bj.sites.new("GZ", ["127.77.3.0/24"])
    bj.servers.new("MBX03", "Mailbox", "127.77.3.21")
    bj.databases.new("DB04", "MBX03")  # no CAS in GZ: its own server's name
    carol = user(bj, "carol", "DB04", password_hash)
    with pytest.raises(NoEndpointError) as info:
        preferred_endpoint(bj, carol)
    assert info.value.database == "DB04" and info.value.site == "GZ"
    assert "'DB04'" in info.value.message and "GZ" in info.value.message
    assert info.value.target == "DB04"
    # even when the database names a Client Access server of another site
    bj.databases.set("DB04", rpc_client_access_server="CAS01.lab.net")
    with pytest.raises(NoEndpointError, match="DB04"):
        database_endpoint(bj, "DB04")


def test_unknown_mailbox(bj: Directory) -> None:
    with pytest.raises(NotFoundError):
        preferred_endpoint(bj, "nobody@lab.net")


def test_right_endpoint(bj: Directory, password_hash: str) -> None:
    bj.databases.new("DB01", "MBX01")  # CAS01
    bj.databases.new("DB03", "MBX02")  # CAS03
    alice = user(bj, "alice", "DB01", password_hash)
    bob = user(bj, "bob", "DB03", password_hash)
    assert is_right_endpoint(bj, "CAS01", alice)
    assert not is_right_endpoint(bj, "CAS02", alice)  # CAS01 named: sent there
    assert not is_right_endpoint(bj, "CAS03", alice)
    assert not is_right_endpoint(bj, "MBX01", alice)  # not a Client Access server
    bj.arrays.new("bj-cas.lab.net", "BJ")
    bj.databases.set("DB01", rpc_client_access_server="bj-cas.lab.net")
    assert is_right_endpoint(bj, "CAS01", alice)
    assert is_right_endpoint(bj, bj.servers.one("CAS02"), alice)  # every member
    assert not is_right_endpoint(bj, "CAS03", alice)
    assert is_right_endpoint(bj, "CAS03", bob)
    assert not is_right_endpoint(bj, "CAS01", bob)
    bj.servers.set_client_access("CAS03", allow_cross_site_rpc_client_access=True)
    assert is_right_endpoint(bj, "CAS03", alice)  # serves other sites' users itself


def test_access_name(bj: Directory) -> None:
    assert access_name(bj, "CAS01") == "CAS01.lab.net"
    assert access_name(bj, bj.servers.one("CAS03")) == "CAS03.lab.net"
    bj.arrays.new("bj-cas.lab.net", "BJ")
    assert access_name(bj, "cas02.lab.net") == "bj-cas.lab.net"
    assert access_name(bj, "CAS03") == "CAS03.lab.net"


# -- the rule, pure ------------------------------------------------------------------

ARRAY = Candidate("bj-cas.lab.net", "array", "/a")
CAS01 = Candidate("CAS01.lab.net", "server", "/1")
CAS02 = Candidate("CAS02.lab.net", "server", "/2")


@pytest.mark.parametrize(
    ("rpc", "array", "servers", "expected"),
    [
        ("BJ-CAS.lab.net.", ARRAY, [CAS01, CAS02], ("bj-cas.lab.net", WHY_DATABASE)),
        ("cas02.lab.net", ARRAY, [CAS01, CAS02], ("CAS02.lab.net", WHY_DATABASE)),
        ("sh-cas.lab.net", ARRAY, [CAS01, CAS02], ("bj-cas.lab.net", WHY_ARRAY)),
        ("sh-cas.lab.net", None, [CAS01, CAS02], ("CAS01.lab.net", WHY_SERVER)),
        ("CAS02.lab.net", None, [CAS01, CAS02], ("CAS02.lab.net", WHY_DATABASE)),
        ("bj-cas.lab.net", None, [CAS01, CAS02], ("CAS01.lab.net", WHY_SERVER)),
    ],
)
def test_choose_endpoint(
    rpc: str, array: Candidate | None, servers: list[Candidate], expected: tuple[str, str]
) -> None:
    endpoint = choose_endpoint(
        database="DB01", site="BJ", rpc_client_access_server=rpc, array=array, servers=servers
    )
    assert (endpoint.fqdn, endpoint.why) == expected
    assert endpoint.rpc_client_access_server == rpc


def test_choose_endpoint_none() -> None:
    with pytest.raises(NoEndpointError, match="DB09"):
        choose_endpoint(
            database="DB09", site="GZ", rpc_client_access_server="x", array=None, servers=[]
        )


def test_serves_is_pure_on_records(bj: Directory) -> None:
    endpoint = Endpoint("bj-cas.lab.net", "array", "/a", "BJ", WHY_ARRAY, "DB01", "x")
    assert serves(bj.servers.one("CAS02"), endpoint)
    assert not serves(bj.servers.one("CAS03"), endpoint)
    assert not serves(bj.servers.one("MBX01"), endpoint)


# -- ServerVersion -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "hex_value"),
    [
        ("14.3.123.4", "7383807B"),  # Exchange 2010 SP3, what servers here report
        ("14.1.218.15", "738180DA"),  # Exchange 2010 SP1: Microsoft's documented example
        ("8.2.176.2", "720280B0"),  # Exchange 2007 SP2: the MSDN blog's example
        ("14.2.247.5", "738280F7"),  # Exchange 2010 SP2
        ("14.0.639.21", "7380827F"),  # Exchange 2010 RTM
        ("Version 14.3 (Build 123.4)", "7383807B"),  # AdminDisplayVersion as shown
        ("15.0.1497", "73C085D9"),
    ],
)
def test_server_version_hex(version: str, hex_value: str) -> None:
    assert server_version_hex(version) == hex_value
    major, minor, build = (
        int(p)
        for p in version.replace("Version ", "").replace(" (Build ", ".").rstrip(")").split(".")[:3]
    )
    assert parse_server_version(hex_value) == (major, minor, build)


def test_server_version_of_the_lab(bj: Directory) -> None:
    assert bj.servers.one("MBX01").admin_display_version == "14.3.123.4"
    assert server_version_hex(bj.servers.one("MBX01").admin_display_version) == "7383807B"


@pytest.mark.parametrize("bad", ["", "14", "14.3", "x.y.z", "64.0.1", "14.64.1", "14.3.32768"])
def test_server_version_refuses(bad: str) -> None:
    with pytest.raises(InvalidValueError):
        server_version_hex(bad)


@pytest.mark.parametrize("bad", ["zz", "12345678", "1738180DA"])
def test_parse_server_version_refuses(bad: str) -> None:
    with pytest.raises(InvalidValueError):
        parse_server_version(bad)
