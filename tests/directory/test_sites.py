"""Sites and subnets, and how a server's site follows from its address."""

from __future__ import annotations

import pytest

from casarray.directory import (
    ConflictError,
    Directory,
    InUseError,
    InvalidValueError,
    NotFoundError,
)


def test_new_site_with_subnets(directory: Directory) -> None:
    site = directory.sites.new("BJ", ["127.77.1.0/24", "10.1.0.0/16"])
    assert site.name == "BJ"
    assert site.subnets == ("127.77.1.0/24", "10.1.0.0/16")
    assert site.distinguished_name == "CN=BJ,CN=Sites,CN=Configuration,DC=lab,DC=net"
    assert directory.sites.one("bj") == site
    assert [s.name for s in directory.sites.get()] == ["BJ"]
    assert directory.sites.count() == 1


def test_sites_listed_by_name(directory: Directory) -> None:
    for name in ("SH", "bj", "Ams"):
        directory.sites.new(name)
    assert [s.name for s in directory.sites.get()] == ["Ams", "bj", "SH"]


def test_site_name_keeps_its_case_and_is_trimmed(directory: Directory) -> None:
    site = directory.sites.new("  Beijing-HQ  ")
    assert site.name == "Beijing-HQ"
    assert directory.sites.one("BEIJING-hq").guid == site.guid


@pytest.mark.parametrize("bad", ["", "   ", "x" * 65, "tab\there"])
def test_bad_site_name_refused(directory: Directory, bad: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        directory.sites.new(bad)
    assert err.value.parameter == "Name"
    assert "parameter 'Name'" in str(err.value)
    assert directory.sites.count() == 0


def test_duplicate_site_refused(directory: Directory) -> None:
    directory.sites.new("BJ")
    with pytest.raises(ConflictError) as err:
        directory.sites.new("bj")
    assert "The site 'BJ' already exists" in str(err.value)
    assert err.value.conflicting == "BJ"
    assert [s.name for s in directory.sites.get()] == ["BJ"]


def test_duplicate_subnet_refused_naming_its_site(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    with pytest.raises(ConflictError) as err:
        directory.sites.new("SH", ["127.77.1.0/24"])
    assert "127.77.1.0/24" in str(err.value)
    assert "'BJ'" in str(err.value)
    assert err.value.conflicting == "BJ"
    # the failed New-ADReplicationSite left nothing behind
    with pytest.raises(NotFoundError):
        directory.sites.one("SH")


def test_add_subnet(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    subnet = directory.sites.add_subnet("10.9.0.0/16", "BJ")
    assert subnet.name == "10.9.0.0/16"
    assert subnet.site == "BJ"
    assert subnet.distinguished_name == (
        "CN=10.9.0.0/16,CN=Subnets,CN=Sites,CN=Configuration,DC=lab,DC=net"
    )
    assert directory.sites.one("BJ").subnets == ("127.77.1.0/24", "10.9.0.0/16")
    assert [s.name for s in directory.sites.subnets("bj")] == ["127.77.1.0/24", "10.9.0.0/16"]


def test_add_duplicate_subnet_names_the_site(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.sites.new("SH")
    with pytest.raises(ConflictError) as err:
        directory.sites.add_subnet("127.77.1.0/24", "SH")
    assert "already exists in site 'BJ'" in str(err.value)
    assert directory.sites.one("SH").subnets == ()


def test_add_subnet_to_unknown_site(directory: Directory) -> None:
    with pytest.raises(NotFoundError) as err:
        directory.sites.add_subnet("10.0.0.0/8", "Nowhere")
    assert '"Nowhere"' in str(err.value)


def test_subnet_with_host_bits_refused_with_the_corrected_subnet(directory: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        directory.sites.new("BJ", ["127.77.1.5/24"])
    assert err.value.parameter == "Subnets"
    assert "host bits set" in str(err.value)
    assert "127.77.1.0/24" in str(err.value)
    assert directory.sites.count() == 0

    directory.sites.new("SH")
    with pytest.raises(InvalidValueError) as err:
        directory.sites.add_subnet("10.1.2.3/16", "SH")
    assert err.value.parameter == "Name"
    assert "10.1.0.0/16" in str(err.value)


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("10.0.0.0", "no prefix length"),
        ("10.0.0.0/33", "CIDR"),
        ("nonsense", "CIDR"),
        ("2001:db8::/32", "CIDR"),
    ],
)
def test_malformed_subnet_refused(directory: Directory, bad: str, says: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        directory.sites.new("BJ", [bad])
    assert says in str(err.value)
    assert bad in str(err.value)


def test_remove_subnet(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24", "10.0.0.0/8"])
    directory.sites.remove_subnet("10.0.0.0/8")
    assert directory.sites.one("BJ").subnets == ("127.77.1.0/24",)
    assert directory.sites.for_address("10.1.1.1") is None
    with pytest.raises(NotFoundError):
        directory.sites.remove_subnet("10.0.0.0/8")


def test_site_for_address_longest_prefix_wins(directory: Directory) -> None:
    directory.sites.new("Wide", ["127.77.0.0/16"])
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.sites.new("Host", ["127.77.1.99/32"])
    assert directory.sites.for_address("127.77.1.5").name == "BJ"
    assert directory.sites.for_address("127.77.9.1").name == "Wide"
    assert directory.sites.for_address("127.77.1.99").name == "Host"
    assert directory.sites.for_address("192.0.2.1") is None


def test_site_for_bad_address(directory: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        directory.sites.for_address("127.77.1.300")
    assert err.value.parameter == "IPAddress"


def test_server_site_derived_from_its_address(directory: Directory) -> None:
    directory.sites.new("Wide", ["127.77.0.0/16"])
    directory.sites.new("BJ", ["127.77.1.0/24"])
    assert directory.servers.new("CAS01", "ClientAccess", "127.77.1.11").site == "BJ"
    assert directory.servers.new("CAS09", "ClientAccess", "127.77.9.11").site == "Wide"


def test_explicit_site_matching_the_subnet(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    assert directory.servers.new("CAS01", "ClientAccess", "127.77.1.11", site="bj").site == "BJ"


def test_explicit_site_for_address_in_no_subnet(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.sites.new("Lab")
    assert directory.servers.new("CAS01", "ClientAccess", "192.0.2.7", site="Lab").site == "Lab"


def test_explicit_site_conflicting_with_the_subnet_refused(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.sites.new("SH", ["127.77.2.0/24"])
    with pytest.raises(InvalidValueError) as err:
        directory.servers.new("CAS01", "ClientAccess", "127.77.1.11", site="SH")
    assert err.value.parameter == "IPAddress"
    assert "'BJ'" in str(err.value)
    assert "'SH'" in str(err.value)
    assert directory.servers.get() == []


def test_no_site_and_no_subnet_refused(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    with pytest.raises(InvalidValueError) as err:
        directory.servers.new("CAS01", "ClientAccess", "192.0.2.7")
    assert err.value.parameter == "Site"
    assert "192.0.2.7" in str(err.value)
    assert directory.servers.get() == []


def test_unknown_explicit_site_refused(directory: Directory) -> None:
    with pytest.raises(NotFoundError) as err:
        directory.servers.new("CAS01", "ClientAccess", "192.0.2.7", site="Atlantis")
    assert "Atlantis" in str(err.value)


def test_remove_site_with_servers_refused(bj: Directory) -> None:
    with pytest.raises(InUseError) as err:
        bj.sites.remove("SH")
    assert "server CAS03" in str(err.value)
    assert "server MBX02" in str(err.value)
    assert err.value.dependents == ["server CAS03", "server MBX02"]
    assert bj.sites.one("SH").subnets == ("127.77.2.0/24",)


def test_remove_site_with_an_array_refused(directory: Directory) -> None:
    directory.sites.new("HK")
    directory.arrays.new("hk-cas.lab.net", site="HK")
    with pytest.raises(InUseError) as err:
        directory.sites.remove("HK")
    assert "array hk-cas" in str(err.value)


def test_remove_empty_site_frees_its_subnets(directory: Directory) -> None:
    directory.sites.new("Old", ["10.0.0.0/8"])
    directory.sites.remove("old")
    assert directory.sites.get() == []
    assert directory.sites.subnets() == []
    assert directory.sites.new("New", ["10.0.0.0/8"]).subnets == ("10.0.0.0/8",)


def test_remove_site_after_its_servers(bj: Directory) -> None:
    bj.servers.remove("CAS03")
    bj.servers.remove("MBX02")
    bj.sites.remove("SH")
    assert [s.name for s in bj.sites.get()] == ["BJ"]
    assert bj.sites.for_address("127.77.2.11") is None


def test_subnet_identity(bj: Directory) -> None:
    subnet = bj.sites.subnet("127.77.1.0/24")
    assert (subnet.name, subnet.site) == ("127.77.1.0/24", "BJ")
    assert bj.sites.subnet(subnet.guid.upper()) == subnet
    assert bj.sites.subnet(subnet.distinguished_name.lower()) == subnet
    assert bj.sites.subnet(subnet) == subnet
    with pytest.raises(NotFoundError) as err:
        bj.sites.subnet("10.0.0.0/8")
    assert 'subnet "10.0.0.0/8"' in str(err.value)
