"""Tracked connections of the Kernel data plane: `conntrack -L` read back, which entries
would send a new connection along an old DNAT, and (as root) that the balancer drops
them when a node leaves the cluster and when the cluster stops."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil

import pytest

from casarray.balancer import conntrack
from casarray.balancer.control_plane import Balancer, KernelEngine
from casarray.balancer.model import ClusterView, Node, PortRule, RuleProtocol
from tests.balancer.test_control_plane import FAST, Backend, view_of

LISTING = """\
tcp      6 431971 ESTABLISHED src=127.0.0.1 dst=127.77.1.10 sport=50716 dport=143 \
src=127.77.1.11 dst=127.0.0.1 sport=60443 dport=50716 [ASSURED] mark=0 use=1
tcp      6 7 CLOSE src=127.0.0.1 dst=127.77.1.10 sport=34194 dport=143 \
src=127.77.1.11 dst=127.0.0.1 sport=143 dport=34194 [ASSURED] mark=0 use=1
tcp      6 118 SYN_SENT src=127.0.0.1 dst=127.77.1.10 sport=57508 dport=143 [UNREPLIED] \
src=127.77.1.12 dst=127.0.0.1 sport=143 dport=57508 mark=0 use=1
udp      17 29 src=10.0.0.7 dst=127.77.1.10 sport=5353 dport=53 [UNREPLIED] \
src=127.77.1.12 dst=10.0.0.7 sport=53 dport=5353 mark=0 use=1
tcp      6 100 TIME_WAIT src=127.0.0.1 dst=127.77.1.10 sport=40000 dport=143 \
src=127.77.1.10 dst=127.0.0.1 sport=143 dport=40000 [ASSURED] mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.
"""


def lab_view(**changes: object) -> ClusterView:
    nodes = (
        Node("CAS01", "127.77.1.11", host_id=1, priority=1),
        Node("CAS02", "127.77.1.12", host_id=2, priority=2),
    )
    rules = (PortRule(143, 143), PortRule(53, 53, protocol=RuleProtocol.UDP))
    view = ClusterView("bj-cas.lab.net", "127.77.1.10", nodes, rules)
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


def test_parse_reads_both_directions_of_tcp_and_udp_entries() -> None:
    listed = conntrack.parse(LISTING)
    assert len(listed) == 5
    first, _, unreplied, udp, _ = listed
    assert first == conntrack.Entry(
        "tcp", "ESTABLISHED", "127.0.0.1", "127.77.1.10", 50716, 143, "127.77.1.11", 60443
    )
    assert (unreplied.state, unreplied.node_address, unreplied.node_port) == (
        "SYN_SENT",
        "127.77.1.12",
        143,
    )
    assert (udp.proto, udp.state, udp.src, udp.node_port) == ("udp", None, "10.0.0.7", 53)


def test_stale_entries_are_those_the_cluster_would_not_make_now() -> None:
    listed = conntrack.parse(LISTING)
    # port 60443 is from an earlier run with other node ports; the rest is current and
    # the untranslated entry (node side = cluster IP) is not the cluster's
    assert conntrack.stale_pairs(lab_view(), listed) == {
        ("tcp", "127.77.1.10", "127.77.1.11", 60443)
    }
    # CAS02 removed from the cluster: its entries are stale too, TCP and UDP
    one_node = lab_view(nodes=lab_view().nodes[:1])
    assert conntrack.stale_pairs(one_node, listed) == {
        ("tcp", "127.77.1.10", "127.77.1.11", 60443),
        ("tcp", "127.77.1.10", "127.77.1.12", 143),
        ("udp", "127.77.1.10", "127.77.1.12", 53),
    }
    # nodes listening 60300 above the cluster port: the old run's port is the right one
    shifted = lab_view(backend_offset=60300)
    assert ("tcp", "127.77.1.10", "127.77.1.11", 60443) not in conntrack.stale_pairs(
        shifted, listed
    )
    # no rule for UDP any more: the DNS entry is stale
    tcp_only = lab_view(rules=lab_view().rules[:1])
    assert ("udp", "127.77.1.10", "127.77.1.12", 53) in conntrack.stale_pairs(tcp_only, listed)


def kernel_missing() -> str | None:
    if os.geteuid() != 0:
        return "the Kernel data plane needs root"
    for tool, package in (("nft", "nftables"), ("conntrack", "conntrack")):
        if shutil.which(tool) is None:
            return f"{tool} (Debian's {package}) is not installed"
    return None


VIP, HOSTS, PORT = "127.77.9.40", ("127.77.9.41", "127.77.9.42"), 20144


async def test_a_removed_node_and_a_stopped_cluster_leave_no_tracked_connections() -> None:
    if missing := kernel_missing():
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    backends = [await Backend(f"CAS0{i + 1}", h, PORT).start() for i, h in enumerate(HOSTS)]
    state = {"view": view_of(VIP, PORT, backends)}
    balancer = Balancer(lambda: state["view"], KernelEngine(), checker_options={"policy": FAST})
    await balancer.start()
    loop = asyncio.ensure_future(balancer.loop())
    writers = []
    try:
        served: set[str] = set()
        for _ in range(40):  # a session open on each node, through the cluster IP
            reader, writer = await asyncio.open_connection(VIP, PORT)
            writers.append(writer)
            served.add((await reader.readline()).decode().split()[2])
            if len(served) == 2:
                break
        assert served == {"CAS01", "CAS02"}

        def nodes_tracked() -> set[str]:
            listed = conntrack.entries(state["view"])
            return {entry.node_address for entry in listed if entry.node_address != VIP}

        assert nodes_tracked() == set(HOSTS)
        # Remove-NlbClusterNode CAS02: its tracked connections go with it
        state["view"] = view_of(VIP, PORT, backends[:1])
        await balancer.view_changed()
        assert nodes_tracked() == {HOSTS[0]}
    finally:
        balancer.stop()
        await loop
        await balancer.close()
        for writer in writers:
            writer.transport.abort()
        for backend in backends:
            await backend.kill()
    # the cluster stopped: nothing translated to its IP is left
    assert nodes_tracked() == set()
