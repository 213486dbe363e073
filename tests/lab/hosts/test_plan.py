"""The hosts lab's plan: one host per server, unique addresses in the benchmarking
range, names the kernel takes."""

from __future__ import annotations

import ipaddress

import pytest

from casarray.lab.hosts.plan import (
    CLUSTER_IP,
    DNS_ADDRESS,
    IFNAMSIZ,
    LAB_RANGE,
    SITES,
    HostPlan,
    HostsError,
    UnknownHost,
    port_name,
)
from casarray.lab.topology import SERVERS, hosts_layout


def addresses(plan: HostPlan) -> list[str]:
    return [link.address for host in plan.hosts for link in host.links]


def test_every_server_of_the_topology_has_a_host() -> None:
    plan = HostPlan.build()
    for server in SERVERS:
        host = plan.host(server.name)
        assert host.kind == "server"
        assert host.namespace == f"cas-{server.name.lower()}"
        assert plan.network_of(host.address).name == server.site
    names = {h.name for h in plan.hosts}
    assert {"DC01", "ROUTER", "CLIENT-BJ", "CLIENT-OUT"} <= names


def test_the_table() -> None:
    plan = HostPlan.build()
    assert plan.host("cas01").address == "198.18.1.11"
    assert plan.host("CAS02").address == "198.18.1.12"
    assert plan.host("MBX01").address == "198.18.1.21"
    assert plan.host("CAS03").address == "198.18.2.11"
    assert plan.host("MBX02").address == "198.18.2.21"
    assert plan.host("DC01").address == DNS_ADDRESS == "198.18.1.5"
    assert [link.address for link in plan.host("ROUTER").links] == [
        "198.18.1.1",
        "198.18.2.1",
        "198.18.3.1",
    ]
    assert plan.host("CLIENT-BJ").address == "198.18.1.100"
    assert plan.network_of(plan.host("CLIENT-OUT").address).name == "outside"
    assert CLUSTER_IP == "198.18.1.10"
    assert plan.switch == "cas-switch"
    assert [n.bridge for n in plan.networks] == ["br-bj", "br-sh", "br-out"]


def test_addresses_are_unique_and_in_the_benchmarking_range() -> None:
    plan = HostPlan.build()
    found = [*addresses(plan), CLUSTER_IP]
    assert len(found) == len(set(found))
    assert all(ipaddress.ip_address(a) in LAB_RANGE for a in found)
    assert all(ipaddress.IPv4Network(n.subnet).subnet_of(LAB_RANGE) for n in plan.networks)
    assert all(ipaddress.IPv4Network(s[0]).subnet_of(LAB_RANGE) for s in SITES.values())
    assert str(LAB_RANGE) == "198.18.0.0/15"


def test_names_fit_the_kernel() -> None:
    plan = HostPlan.build(prefix="ct1234-").with_server("AVERYLONGNAME15", "BJ", "198.18.1.13")
    namespaces = plan.namespaces
    assert len(namespaces) == len(set(namespaces))
    assert all(n.startswith("ct1234-") for n in namespaces)
    ports = [link.port for host in plan.hosts for link in host.links]
    inside = [link.name for host in plan.hosts for link in host.links]
    bridges = [n.bridge for n in plan.networks]
    assert len(ports) == len(set(ports))
    assert all(len(name) <= IFNAMSIZ for name in ports + inside + bridges)
    assert port_name("AVERYLONGNAME15") != port_name("AVERYLONGNAME16")


def test_a_server_added_later_gets_a_host() -> None:
    plan = HostPlan.build()
    grown = plan.with_server("CAS04", "BJ", "198.18.1.13")
    assert grown.host("CAS04").namespace == "cas-cas04"
    assert grown.host("CAS04").links[0].network == "BJ"
    assert len(grown.hosts) == len(plan.hosts) + 1
    assert grown.with_server("CAS04", "BJ", "198.18.1.13") == grown  # as planned: no change
    servers = [(s.name, s.site, plan.host(s.name).address) for s in SERVERS]
    assert HostPlan.build([*servers, ("CAS04", "BJ", "198.18.1.13")]) == grown


@pytest.mark.parametrize(
    ("name", "site", "address"),
    [
        ("CAS05", "BJ", "198.18.1.11"),  # CAS01's
        ("CAS05", "BJ", CLUSTER_IP),
        ("CAS05", "BJ", "198.18.2.40"),  # SH's network
        ("CAS05", "BJ", "10.0.0.1"),  # in no network of the lab
        ("CAS01", "BJ", "198.18.1.40"),  # a host of that name exists
        ("switch", "BJ", "198.18.1.40"),
        ("bad name", "BJ", "198.18.1.40"),
    ],
)
def test_a_server_that_does_not_fit(name: str, site: str, address: str) -> None:
    with pytest.raises(HostsError):
        HostPlan.build().with_server(name, site, address)


def test_unknown_host_and_bad_prefix() -> None:
    with pytest.raises(UnknownHost, match="CAS01"):
        HostPlan.build().host("CAS09")
    with pytest.raises(HostsError):
        HostPlan.build(prefix="Bad_Prefix")


def test_the_hosts_layout_of_the_topology() -> None:
    sites, servers, dns_address = hosts_layout()
    plan = HostPlan.build()
    assert [s.name for s in servers] == [s.name for s in SERVERS]
    for server in servers:
        assert plan.host(server.name).address == server.ip_address
        assert plan.network_of(server.ip_address).name == server.site
    assert sites == {"BJ": ("198.18.1.0/24",), "SH": ("198.18.2.0/24",)}
    assert dns_address == plan.host("DC01").address
