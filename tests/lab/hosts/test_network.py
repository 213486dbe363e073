"""The hosts lab's network in real namespaces (as root): who reaches whom, a host's
link cut and restored, a host killed, a command run inside one, and nothing left
behind. Each test module's network has a prefix of its own (`conftest.fresh_prefix`)."""

from __future__ import annotations

import json
import subprocess

import pytest

from casarray.lab.hosts.network import HostNetwork, namespaces
from casarray.lab.hosts.plan import HostsError
from tests.lab.hosts.conftest import hosts_network, listening, reaches, reaches_host, wait_until


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("CAS01", "CAS02"),  # in a site
        ("CAS03", "MBX02"),
        ("CLIENT-BJ", "CAS01"),
        ("CLIENT-BJ", "CAS02"),
        ("CAS01", "CAS03"),  # across the router
        ("MBX02", "DC01"),
        ("CLIENT-OUT", "ROUTER"),
        ("CLIENT-OUT", "DC01"),  # the outside's DNS view goes through the router
    ],
)
def test_reachability(network: HostNetwork, source: str, target: str) -> None:
    assert reaches_host(network, source, target)


def test_nothing_routes_out(network: HostNetwork) -> None:
    for host in ("ROUTER", "CLIENT-OUT", "CAS01"):
        done = network.exec(
            host, ["ip", "route", "get", "9.9.9.9"], capture_output=True, text=True, timeout=10
        )
        routed = done.returncode == 0 and "198.18." in done.stdout
        assert host != "ROUTER" or done.returncode != 0, done.stdout  # the router: no route
        assert host == "ROUTER" or routed, done.stdout + done.stderr  # others: via the router
    assert not reaches(network, "CLIENT-OUT", "9.9.9.9", timeout=0.5)
    links = json.loads(network.exec("ROUTER", ["ip", "-j", "link"], capture_output=True).stdout)
    assert sorted(link["ifname"] for link in links) == ["eth-bj", "eth-out", "eth-sh", "lo"]


def test_exec_sees_the_hosts_address(network: HostNetwork) -> None:
    done = network.exec("cas01", ["ip", "addr"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0
    assert "198.18.1.11/24" in done.stdout
    assert "198.18.1.12" not in done.stdout


def test_partition_and_heal(network: HostNetwork) -> None:
    with listening(network, "CAS02"):
        assert reaches(network, "CLIENT-BJ", "198.18.1.12")
        network.partition("CAS02")
        try:
            assert not reaches(network, "CLIENT-BJ", "198.18.1.12", timeout=0.5)
            assert not reaches(network, "CAS01", "198.18.1.12", timeout=0.5)
            state = {s.name: s for s in network.state()}["CAS02"]
            assert (state.link, state.reason) == ("down", "partitioned")
            assert state.processes == 1  # the listener runs on
            network.up()  # a partitioned host stays so
            assert {s.name: s for s in network.state()}["CAS02"].link == "down"
        finally:
            network.heal("CAS02")
        assert wait_until(lambda: reaches(network, "CLIENT-BJ", "198.18.1.12"))
        assert {s.name: s for s in network.state()}["CAS02"].link == "up"


def test_kill_host(network: HostNetwork) -> None:
    sleeper = subprocess.Popen(["sleep", "300"], preexec_fn=network.preexec("MBX02"))
    try:
        assert sleeper.pid in network.pids("MBX02")
        killed = network.kill_host("MBX02")
        assert sleeper.pid in killed
        assert sleeper.wait(5) == -9
        assert network.pids("MBX02") == []
        state = {s.name: s for s in network.state()}["MBX02"]
        assert (state.link, state.reason, state.processes) == ("down", "killed", 0)
        network.start_host("MBX02")
        assert reaches_host(network, "CAS03", "MBX02")
    finally:
        sleeper.kill()
        sleeper.wait(5)


def test_unknown_host(network: HostNetwork) -> None:
    with pytest.raises(HostsError, match="no host named 'CAS09'"):
        network.exec("CAS09", ["true"])


def root_links() -> list[str]:
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, timeout=10).stdout
    return [str(link["ifname"]) for link in json.loads(out)]


def test_half_made_is_completed_and_down_leaves_nothing() -> None:
    with hosts_network([("CAS01", "BJ", "198.18.1.11")]) as network:
        prefix = network.plan.prefix
        before = set(root_links())
        # a crash while making: one end of a pair gone, a namespace missing
        network.exec("CAS01", ["ip", "link", "del", "eth0"], timeout=10, check=True)
        subprocess.run(["ip", "netns", "del", f"{prefix}client-out"], timeout=10, check=True)
        assert not reaches_host(network, "CLIENT-BJ", "CAS01", timeout=0.5)
        network.up()
        assert reaches_host(network, "CLIENT-BJ", "CAS01")
        assert reaches_host(network, "CLIENT-OUT", "CAS01")
        # a host added later
        grown = HostNetwork(network.plan.with_server("CAS04", "BJ", "198.18.1.13"))
        grown.up()
        assert reaches_host(grown, "CAS01", "CAS04")
        sleeper = subprocess.Popen(["sleep", "300"], preexec_fn=grown.preexec("CAS04"))
        assert set(root_links()) == before  # nothing in the machine's namespace
        removed = grown.down()
        assert sleeper.wait(5) == -9
        assert len(removed) == len(grown.plan.namespaces)
    assert namespaces(prefix) == []
    assert not [name for name in root_links() if name.startswith(prefix)]
    assert not [name for name in root_links() if name.startswith(("p-", "br-"))]


def test_state_before_up() -> None:
    with hosts_network([]) as network:
        network.down()
        assert all(s.link == "absent" and not s.exists for s in network.state())
        with pytest.raises(HostsError, match="is the hosts lab up"):
            network.kill_host("DC01")
