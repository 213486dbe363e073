"""Weighted rendezvous hashing: shares follow LoadWeight, a node leaving or joining
moves only its own share, affinity keys, Single host and Disabled modes, slot tables."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from casarray.balancer import hashing
from casarray.balancer.hashing import affinity_key, pick, ranked, shares, slot_table
from casarray.balancer.model import Affinity, FilteringMode, HostState, Node, PortRule

CLIENTS = 10_000


def nodes(count: int, **states: HostState) -> list[Node]:
    return [
        Node(
            f"CAS{i:02d}",
            f"127.77.1.{10 + i}",
            host_id=i,
            priority=i,
            state=states.get(f"CAS{i:02d}", HostState.STARTED),
        )
        for i in range(1, count + 1)
    ]


def clients(count: int = CLIENTS, seed: int = 7) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    return [
        (f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}", 1024 + i)
        for i in range(count)
    ]


def assign(rule: PortRule, members: list[Node], **kwargs: object) -> dict[tuple[str, int], str]:
    out = {}
    for ip, port in clients():
        node = pick(rule, members, ip, port, **kwargs)  # type: ignore[arg-type]
        assert node is not None
        out[ip, port] = node.name
    return out


def fractions(assignment: dict[tuple[str, int], str]) -> dict[str, float]:
    counts = Counter(assignment.values())
    return {name: count / len(assignment) for name, count in counts.items()}


@pytest.mark.parametrize("affinity", list(Affinity))
@pytest.mark.parametrize("count", [2, 3, 4])
def test_equal_weights_spread_evenly(affinity: Affinity, count: int) -> None:
    rule = PortRule(143, 143, affinity=affinity)
    if affinity is Affinity.NETWORK:  # one client per /24 network, or they'd clump
        members = nodes(count)
        got = Counter(
            pick(rule, members, f"10.{i // 256}.{i % 256}.1").name  # type: ignore[union-attr]
            for i in range(CLIENTS)
        )
        share = {name: n / CLIENTS for name, n in got.items()}
    else:
        share = fractions(assign(rule, nodes(count)))
    assert len(share) == count
    for value in share.values():
        assert abs(value - 1 / count) < 0.05 / count  # within 5% of the fair share


def test_shares_follow_load_weight() -> None:
    rule = PortRule(443, 443, weights={"CAS01": 25, "CAS02": 75})
    share = fractions(assign(rule, nodes(2)))
    assert share["CAS01"] == pytest.approx(0.25, abs=0.0125)
    assert share["CAS02"] == pytest.approx(0.75, abs=0.0375)


def test_effective_weights_override_load_weight() -> None:
    rule = PortRule(443, 443)  # Equal (50 each) in the rule...
    share = fractions(assign(rule, nodes(2), weights={"CAS01": 10.0, "CAS02": 30.0}))
    assert share["CAS01"] == pytest.approx(0.25, abs=0.0125)


def test_weight_zero_takes_no_new_connection() -> None:
    rule = PortRule(143, 143, weights={"CAS02": 0})
    share = fractions(assign(rule, nodes(3)))
    assert "CAS02" not in share
    assert set(share) == {"CAS01", "CAS03"}
    alone = PortRule(143, 143, weights={"CAS01": 0, "CAS02": 0})
    assert pick(alone, nodes(2), "10.0.0.1", 1234) is None


def test_a_node_leaving_moves_only_its_share() -> None:
    rule = PortRule(143, 143, affinity=Affinity.NONE)
    before = assign(rule, nodes(4))
    after = assign(rule, [n for n in nodes(4) if n.name != "CAS03"])
    for client, node in before.items():
        if node != "CAS03":
            assert after[client] == node  # nobody else moved
        else:
            assert after[client] != "CAS03"
    # CAS03's clients spread over the remaining three
    moved = Counter(after[c] for c, n in before.items() if n == "CAS03")
    assert set(moved) == {"CAS01", "CAS02", "CAS04"}


def test_unhealthy_or_stopped_node_is_like_one_that_left() -> None:
    rule = PortRule(143, 143)
    gone = assign(rule, [n for n in nodes(3) if n.name != "CAS02"])
    assert assign(rule, nodes(3), healthy={"CAS01", "CAS03"}) == gone
    for state in (HostState.STOPPED, HostState.SUSPENDED, HostState.DRAINING):
        assert assign(rule, nodes(3, CAS02=state)) == gone


def test_a_node_joining_takes_about_a_share_from_each() -> None:
    rule = PortRule(143, 143)
    before = assign(rule, nodes(3))
    after = assign(rule, nodes(4))
    moved = [c for c in before if before[c] != after[c]]
    assert all(after[c] == "CAS04" for c in moved)  # only to the newcomer
    assert len(moved) / CLIENTS == pytest.approx(0.25, abs=0.0125)
    for name in ("CAS01", "CAS02", "CAS03"):
        lost = sum(1 for c in moved if before[c] == name)
        held = sum(1 for c in before if before[c] == name)
        assert lost / held == pytest.approx(0.25, abs=0.03)  # ~1/N of each one's clients


def test_hashing_is_stable_and_case_insensitive_on_names() -> None:
    key = affinity_key(Affinity.SINGLE, "10.1.2.3")
    assert hashing.unit_hash(key, "CAS01") == hashing.unit_hash(key, "cas01")
    assert 0 < hashing.unit_hash(key, "CAS01") < 1
    weights = {"CAS01": 50.0, "CAS02": 50.0, "CAS03": 50.0}
    assert hashing.choose(key, weights) == hashing.rank(key, weights)[0]
    assert hashing.choose(key, {}) is None
    assert hashing.score(key, "CAS01", 0) == 0.0


def test_affinity_keys() -> None:
    none = Affinity.NONE
    single = Affinity.SINGLE
    network = Affinity.NETWORK
    # None: per connection (address and port)
    assert affinity_key(none, "10.0.0.1", 1000) != affinity_key(none, "10.0.0.1", 1001)
    # Single: the port doesn't matter, the address does
    assert affinity_key(single, "10.0.0.1", 1000) == affinity_key(single, "10.0.0.1", 1001)
    assert affinity_key(single, "10.0.0.1") != affinity_key(single, "10.0.0.2")
    # Network: a /24 for IPv4, a /64 for IPv6
    assert affinity_key(network, "10.0.0.1", 1) == affinity_key(network, "10.0.0.254", 2)
    assert affinity_key(network, "10.0.0.1") != affinity_key(network, "10.0.1.1")
    assert affinity_key(network, "2001:db8::1") == affinity_key(network, "2001:db8::ffff:1")
    assert affinity_key(network, "2001:db8::1") != affinity_key(network, "2001:db8:0:1::1")
    # an IPv4-mapped IPv6 address is its IPv4 address
    assert affinity_key(single, "::ffff:10.0.0.1") == affinity_key(single, "10.0.0.1")
    assert affinity_key(network, "::ffff:10.0.0.1") == affinity_key(network, "10.0.0.9")


def test_single_affinity_keeps_a_client_on_one_node() -> None:
    rule = PortRule(993, 993, affinity=Affinity.SINGLE)
    members = nodes(4)
    for ip, _ in clients(200):
        chosen = {pick(rule, members, ip, port).name for port in range(1024, 1044)}  # type: ignore[union-attr]
        assert len(chosen) == 1


def test_network_affinity_keeps_a_network_on_one_node() -> None:
    rule = PortRule(993, 993, affinity=Affinity.NETWORK)
    members = nodes(4)
    for net in range(50):
        chosen = {pick(rule, members, f"10.9.{net}.{h}", 5000).name for h in range(1, 40)}  # type: ignore[union-attr]
        assert len(chosen) == 1


def test_none_affinity_spreads_one_clients_connections() -> None:
    rule = PortRule(80, 80, affinity=Affinity.NONE)
    members = nodes(3)
    chosen = Counter(pick(rule, members, "10.0.0.1", p).name for p in range(1024, 4024))  # type: ignore[union-attr]
    assert set(chosen) == {"CAS01", "CAS02", "CAS03"}


def test_single_host_mode_uses_the_highest_priority_healthy_node() -> None:
    rule = PortRule(25, 25, mode=FilteringMode.SINGLE, weights={"CAS01": 0})
    members = [
        Node("CAS01", "127.77.1.11", host_id=1, priority=3),
        Node("CAS02", "127.77.1.12", host_id=2, priority=1),
        Node("CAS03", "127.77.1.13", host_id=3, priority=2),
    ]
    assert {pick(rule, members, ip, port).name for ip, port in clients(100)} == {"CAS02"}  # type: ignore[union-attr]
    assert pick(rule, members, "10.0.0.1", healthy={"CAS01", "CAS03"}).name == "CAS03"  # type: ignore[union-attr]
    # weights don't matter in Single host mode (CAS01 has LoadWeight 0)
    assert pick(rule, members, "10.0.0.1", healthy={"CAS01"}).name == "CAS01"  # type: ignore[union-attr]
    assert pick(rule, members, "10.0.0.1", healthy=set()) is None
    stopped = [Node("CAS02", "127.77.1.12", 2, 1, HostState.DRAINING), *members[::2]]
    assert pick(rule, stopped, "10.0.0.1").name == "CAS03"  # type: ignore[union-attr]
    assert [n.name for n in ranked(rule, members, "10.0.0.1")] == ["CAS02", "CAS03", "CAS01"]
    assert {n.name for n in slot_table(rule, members, 16)} == {"CAS02"}  # type: ignore[union-attr]


def test_disabled_rule_goes_nowhere() -> None:
    rule = PortRule(110, 110, mode=FilteringMode.DISABLED)
    assert pick(rule, nodes(3), "10.0.0.1", 1234) is None
    assert ranked(rule, nodes(3), "10.0.0.1", 1234) == []
    assert slot_table(rule, nodes(3), 8) == (None,) * 8


def test_ranked_gives_the_fallback_order() -> None:
    rule = PortRule(143, 143)
    members = nodes(4)
    for ip, port in clients(100):
        order = ranked(rule, members, ip, port)
        assert sorted(n.name for n in order) == [n.name for n in members]
        assert order[0] == pick(rule, members, ip, port)
        # without the first choice, the second one wins (the proxy's retry)
        rest = [n for n in members if n != order[0]]
        assert pick(rule, rest, ip, port) == order[1]


def test_slot_table_shares_and_stability() -> None:
    rule = PortRule(143, 143, affinity=Affinity.NONE)
    slots = 4096
    table = slot_table(rule, nodes(4), slots)
    assert len(table) == slots and None not in table
    for value in shares(table).values():
        assert value == pytest.approx(0.25, abs=0.0125)
    # each slot is the rendezvous winner of its slot number
    weights = {n.name: 50.0 for n in nodes(4)}
    assert all(table[i].name == hashing.choose(hashing.slot_key(i), weights) for i in range(64))  # type: ignore[union-attr]
    # a node leaving frees only its slots
    without = slot_table(rule, nodes(4), slots, healthy={"CAS01", "CAS02", "CAS04"})
    for old, new in zip(table, without, strict=True):
        assert old is not None and new is not None
        if old.name != "CAS03":
            assert new == old
        else:
            assert new.name != "CAS03"
    # a node joining takes ~1/5 of the slots, from every other node
    joined = slot_table(rule, nodes(5), slots)
    taken = Counter(old.name for old, new in zip(table, joined, strict=True) if old != new)  # type: ignore[union-attr]
    assert all(new.name == "CAS05" for old, new in zip(table, joined, strict=True) if old != new)  # type: ignore[union-attr]
    assert sum(taken.values()) / slots == pytest.approx(0.2, abs=0.02)
    assert set(taken) == {"CAS01", "CAS02", "CAS03", "CAS04"}


def test_slot_table_weights_and_edge_cases() -> None:
    rule = PortRule(443, 443, weights={"CAS01": 25, "CAS02": 75, "CAS03": 0})
    share = shares(slot_table(rule, nodes(3), 4096))
    assert share["CAS01"] == pytest.approx(0.25, abs=0.02)
    assert share["CAS02"] == pytest.approx(0.75, abs=0.02)
    assert "CAS03" not in share
    assert slot_table(rule, nodes(3), 4, healthy=set()) == (None,) * 4
    assert shares(()) == {}
    with pytest.raises(ValueError):
        slot_table(rule, nodes(3), 0)


def test_slot_index_spreads_connections_and_keeps_affinity() -> None:
    """The Proxy plane's first choice: a slot per connection, looked up in a slot table."""
    slots = 1024
    # one client's connections (Affinity None) spread over the slots, so over the nodes
    nodes = [Node(f"CAS0{i}", f"127.77.1.1{i}", host_id=i, priority=i) for i in (1, 2)]
    table = slot_table(PortRule(143, 143), nodes, slots)
    seen = Counter(
        table[hashing.slot_index(Affinity.NONE, "127.0.0.1", port, slots)].name  # type: ignore[union-attr]
        for port in range(30000, 40000)
    )
    assert abs(seen["CAS01"] - 5000) < 250, seen  # within 5% of an even split
    # Single: every port of a client in one slot; Network: every host of a /24 in one
    single = {hashing.slot_index(Affinity.SINGLE, "10.1.2.3", p, slots) for p in range(50)}
    network = {hashing.slot_index(Affinity.NETWORK, f"10.1.2.{h}", h, slots) for h in range(50)}
    assert len(single) == 1 and len(network) == 1
    # other clients and networks land elsewhere; IPv6 and mapped addresses work too
    assert (
        len({hashing.slot_index(Affinity.SINGLE, f"10.1.{n}.1", 0, slots) for n in range(50)}) > 40
    )
    mapped = hashing.slot_index(Affinity.SINGLE, "::ffff:10.1.2.3", 0, slots)
    assert 0 <= mapped < slots
    assert 0 <= hashing.slot_index(Affinity.NONE, "2001:db8::1", 443, slots) < slots
