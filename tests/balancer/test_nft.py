"""The kernel data plane: rendering of the nftables table, and (as root, with nft)
real DNAT from a loopback cluster IP to two asyncio backends, updated atomically."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from casarray.balancer import nft
from casarray.balancer.model import (
    Affinity,
    ClusterView,
    FilteringMode,
    Node,
    PortRule,
    RuleProtocol,
)

CAS01 = Node("CAS01", "127.77.1.11", host_id=1, priority=1)
CAS02 = Node("CAS02", "127.77.1.12", host_id=2, priority=2)
SLOTS = ["127.77.1.11", "127.77.1.12"]


def view(*rules: PortRule, **kwargs: int) -> ClusterView:
    return ClusterView("bj-cas.lab.net", "127.77.1.10", (CAS01, CAS02), rules, **kwargs)


def test_table_name_is_sanitized() -> None:
    assert nft.table_name(view()) == "casarray_bj_cas_lab_net"


def test_exact_table_for_a_small_cluster() -> None:
    cluster = view(
        PortRule(143, 143, protocol=RuleProtocol.TCP, affinity=Affinity.NONE),
        PortRule(993, 993, protocol=RuleProtocol.TCP, affinity=Affinity.SINGLE),
    )
    assert nft.render_table(cluster, SLOTS, seed=0x1234) == (
        "table ip casarray_bj_cas_lab_net {\n"
        '\tcomment "casarray NLB cluster bj-cas.lab.net (127.77.1.10)"\n'
        "\tchain cluster {\n"
        "\t\tip daddr 127.77.1.10 tcp dport 143 dnat to jhash ip saddr . tcp sport"
        " . ip daddr . tcp dport mod 2 seed 0x00001234"
        " map { 0 : 127.77.1.11, 1 : 127.77.1.12 }\n"
        "\t\tip daddr 127.77.1.10 tcp dport 993 dnat to jhash ip saddr mod 2"
        " seed 0x00001234 map { 0 : 127.77.1.11, 1 : 127.77.1.12 }\n"
        "\t}\n"
        "\tchain prerouting {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        "\t\tjump cluster\n"
        "\t}\n"
        "\tchain output {\n"
        "\t\ttype nat hook output priority -100; policy accept;\n"
        "\t\tjump cluster\n"
        "\t}\n"
        "}\n"
    )


def test_script_is_one_atomic_replace() -> None:
    cluster = view(PortRule(143, 143))
    script = nft.render_script(cluster, SLOTS)
    lines = script.splitlines()
    assert lines[0] == "table ip casarray_bj_cas_lab_net {}"
    assert lines[1] == "delete table ip casarray_bj_cas_lab_net"
    assert script.endswith(nft.render_table(cluster, SLOTS))
    assert nft.render_remove(cluster) == (
        "table ip casarray_bj_cas_lab_net {}\ndelete table ip casarray_bj_cas_lab_net\n"
    )


def test_seed_is_stable_per_cluster() -> None:
    cluster = view(PortRule(143, 143, affinity=Affinity.SINGLE))
    assert nft.hash_seed(cluster) == nft.hash_seed(cluster)
    assert f"seed {nft.hash_seed(cluster):#010x}" in nft.render_table(cluster, SLOTS)
    other = ClusterView("sh-cas.lab.net", "127.77.2.10", (), ())
    assert nft.hash_seed(other) != nft.hash_seed(cluster)


def test_affinities_choose_the_hash_key() -> None:
    def rule_line(affinity: Affinity) -> str:
        cluster = view(PortRule(143, 143, protocol=RuleProtocol.TCP, affinity=affinity))
        return nft.render_rules(cluster, SLOTS, seed=1)[0]

    assert "jhash ip saddr . tcp sport . ip daddr . tcp dport mod 2" in rule_line(Affinity.NONE)
    assert "jhash ip saddr mod 2" in rule_line(Affinity.SINGLE)
    assert "jhash ip saddr and 255.255.255.0 mod 2" in rule_line(Affinity.NETWORK)


def test_protocols_and_udp_hash() -> None:
    both = nft.render_rules(view(PortRule(53, 53, affinity=Affinity.NONE)), SLOTS, seed=1)
    assert [line.split(" dport")[0] for line in both] == [
        "ip daddr 127.77.1.10 tcp",
        "ip daddr 127.77.1.10 udp",
    ]
    assert "jhash ip saddr . udp sport . ip daddr . udp dport" in both[1]
    udp = nft.render_rules(view(PortRule(53, 53, protocol=RuleProtocol.UDP)), SLOTS, seed=1)
    assert len(udp) == 1 and udp[0].startswith("ip daddr 127.77.1.10 udp dport 53 ")


def test_ranges_and_offsets() -> None:
    rule = PortRule(1000, 1002, protocol=RuleProtocol.TCP)
    (same,) = nft.render_rules(view(rule), SLOTS, seed=1)
    assert " tcp dport 1000-1002 dnat to " in same
    assert same.endswith("map { 0 : 127.77.1.11, 1 : 127.77.1.12 }")  # keeps the port
    (shifted,) = nft.render_rules(view(rule, backend_offset=10000), SLOTS, seed=1)
    assert shifted.endswith(
        "1 : 127.77.1.12 } : tcp dport map { 1000 : 11000, 1001 : 11001, 1002 : 11002 }"
    )
    single = PortRule(143, 143, protocol=RuleProtocol.TCP)
    (one,) = nft.render_rules(view(single, backend_offset=10000), SLOTS, seed=1)
    assert one.endswith("1 : 127.77.1.12 } : 10143")
    (listen,) = nft.render_rules(
        view(single, backend_offset=10000, listen_offset=10000), SLOTS, seed=1
    )
    assert " tcp dport 10143 dnat " in listen and listen.endswith("127.77.1.12 }")
    (moved,) = nft.render_rules(view(single, listen_offset=20000), SLOTS, seed=1)
    assert " tcp dport 20143 dnat " in moved and moved.endswith(" : 143")


def test_narrowest_rule_first_and_rule_ip() -> None:
    cluster = view(
        PortRule(0, 65535, protocol=RuleProtocol.TCP, mode=FilteringMode.DISABLED),
        PortRule(143, 143, ip="127.77.1.20", protocol=RuleProtocol.TCP),
    )
    lines = nft.render_rules(cluster, SLOTS, seed=1)
    assert lines[0].startswith("ip daddr 127.77.1.20 tcp dport 143 dnat to ")
    assert lines[1] == "ip daddr 127.77.1.10 tcp dport 0-65535 ct state new drop"


def test_disabled_drops_and_no_slot_rejects() -> None:
    disabled = view(PortRule(25, 25, mode=FilteringMode.DISABLED))
    assert nft.render_rules(disabled, SLOTS) == [
        "ip daddr 127.77.1.10 tcp dport 25 ct state new drop",
        "ip daddr 127.77.1.10 udp dport 25 ct state new drop",
    ]
    assert nft.render_rules(view(PortRule(25, 25)), []) == [
        "ip daddr 127.77.1.10 tcp dport 25 ct state new reject with tcp reset",
        "ip daddr 127.77.1.10 udp dport 25 ct state new reject",
    ]


def test_weighted_slots_and_single_node() -> None:
    rule = PortRule(143, 143, protocol=RuleProtocol.TCP)
    slots = ["127.77.1.11", "127.77.1.11", "127.77.1.12"]
    (line,) = nft.render_rules(view(rule), slots, seed=1)
    assert "mod 3 seed 0x00000001 map { 0 : 127.77.1.11, 1 : 127.77.1.11, 2 : 127.77.1.12 }" in (
        line
    )
    (alone,) = nft.render_rules(view(rule), ["127.77.1.12"] * 4, seed=1)
    assert alone == "ip daddr 127.77.1.10 tcp dport 143 dnat to 127.77.1.12"


def test_single_host_mode_picks_highest_priority_slot() -> None:
    rule = PortRule(143, 143, protocol=RuleProtocol.TCP, mode=FilteringMode.SINGLE)
    assert nft.render_rules(view(rule), ["127.77.1.12", "127.77.1.11"]) == [
        "ip daddr 127.77.1.10 tcp dport 143 dnat to 127.77.1.11"
    ]
    assert nft.render_rules(view(rule), ["127.77.1.12"]) == [
        "ip daddr 127.77.1.10 tcp dport 143 dnat to 127.77.1.12"
    ]


def test_per_rule_slots_override() -> None:
    cluster = view(
        PortRule(143, 143, protocol=RuleProtocol.TCP),
        PortRule(993, 993, protocol=RuleProtocol.TCP),
    )
    lines = nft.render_rules(cluster, SLOTS, rule_slots={1: ["127.77.1.12"]}, seed=1)
    assert "map { 0 : 127.77.1.11, 1 : 127.77.1.12 }" in lines[0]
    assert lines[1] == "ip daddr 127.77.1.10 tcp dport 993 dnat to 127.77.1.12"


def test_ipv6_is_refused() -> None:
    cluster = ClusterView("v6", "fd00::10", (), (PortRule(143, 143),))
    with pytest.raises(ValueError, match="IPv4"):
        nft.render_rules(cluster, ["fd00::11"])


# -- the kernel, for real -----------------------------------------------------------

VIP = "127.77.9.10"
BACKENDS = ("127.77.9.11", "127.77.9.12")
CLUSTER_PORT = 143


def _missing() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root"
    if shutil.which("nft") is None:
        return "the nft command (Debian package nftables)"
    probe = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"a working nft (CAP_NET_ADMIN): {probe.stderr.strip()}"
    return None


@pytest.fixture
def kernel() -> None:
    missing = _missing()
    if missing is None:
        return
    message = f"kernel data plane test needs {missing}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _common_free_port() -> int:
    """A port free on both backend addresses."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((BACKENDS[0], 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind((BACKENDS[1], port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no common free port")


@contextlib.asynccontextmanager
async def backends(port: int) -> AsyncIterator[None]:
    """Two servers that greet with their address and echo what they get."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        writer.write(f"* OK {host}\r\n".encode())
        with contextlib.suppress(ConnectionError):
            await writer.drain()
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        writer.close()

    servers = [await asyncio.start_server(serve, host, port) for host in BACKENDS]
    try:
        yield
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


async def greeting_from(port: int) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(VIP, port), 2)
    try:
        line = await asyncio.wait_for(reader.readline(), 2)
        return line.decode().split()[-1]
    finally:
        writer.close()


@contextlib.contextmanager
def owned_table(cluster: ClusterView) -> Iterator[None]:
    try:
        yield
    finally:
        nft.remove(cluster)


async def test_kernel_dnat_spreads_updates_atomically_and_keeps_sessions(kernel: None) -> None:
    port = _common_free_port()
    nodes = tuple(
        Node(f"N{i}", address, host_id=i, priority=i) for i, address in enumerate(BACKENDS, 1)
    )
    rule = PortRule(CLUSTER_PORT, CLUSTER_PORT, protocol=RuleProtocol.TCP, affinity=Affinity.NONE)
    cluster = ClusterView(
        "nft-test.lab.net", VIP, nodes, (rule,), backend_offset=port - CLUSTER_PORT
    )
    async with backends(port):
        with owned_table(cluster):
            nft.apply(nft.render_script(cluster, list(BACKENDS)))
            assert nft.table_exists(cluster)

            seen = Counter([await greeting_from(CLUSTER_PORT) for _ in range(40)])
            assert set(seen) == set(BACKENDS), seen
            assert min(seen.values()) >= 5, seen

            # an open session on the second backend, kept across the update
            for _ in range(40):
                reader, writer = await asyncio.open_connection(VIP, CLUSTER_PORT)
                if (await reader.readline()).decode().split()[-1] == BACKENDS[1]:
                    break
                writer.close()
            else:
                pytest.fail("no connection reached the second backend")

            nft.apply(nft.render_script(cluster, [BACKENDS[0]]))
            seen = Counter([await greeting_from(CLUSTER_PORT) for _ in range(20)])
            assert seen == Counter({BACKENDS[0]: 20})

            writer.write(b"still there\r\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.readline(), 2) == b"still there\r\n"
            writer.close()

            nft.remove(cluster)
            assert not nft.table_exists(cluster)
            with pytest.raises(OSError):  # nothing listens on the cluster IP itself
                await greeting_from(CLUSTER_PORT)
    assert not nft.table_exists(cluster)
