"""Choosing a node for a new connection: weighted rendezvous hashing, pure functions.

NLB spreads connections by hashing the client and giving each host a share; when a
host joins or leaves, NLB reconverges and every share moves, so clients of hosts that
did nothing are reconnected elsewhere too. Here each node gets a score per key,
highest-random-weight (rendezvous) style, and the key goes to the highest score:

    score(key, node) = -weight(node) / ln(u(key, node))

where `u` is a stable 53-bit hash of the key and the node's name (BLAKE2b), mapped
into (0, 1). `-1/ln(u)` is the reciprocal of an exponential variable, so a node's
probability of winning is proportional to its weight (Schindelhauer and Schomaker's
"weighted distributed hash tables"). A node leaving moves only the keys it held (every
other key keeps its winner), a node joining takes only the keys it now wins (~its share
from each other node), and a node of weight 0 takes no new key.

The key comes from the port rule's Affinity (`affinity_key`): None hashes the client's
address and port (each connection anew), Single the client's address, Network its /24
(IPv4) or /64 (IPv6). A rule in Single host mode sends everything to the started,
healthy node with the highest priority (the lowest HostPriority), whatever the
weights, as NLB does; a Disabled rule sends nothing anywhere.

Who is healthy and which weights apply (slow start lowers a returning node's weight)
is the health checker's knowledge: callers pass `healthy` (node names) and `weights`
(name -> effective weight, e.g. `HealthChecker.weights(rule)`). These functions never
read a clock or a socket.

For the kernel plane, `slot_table` cuts the hash space into N slots, each slot given
to the rendezvous winner of the key "slot number": nftables hashes the connection
(`jhash ip saddr . tcp sport mod N`, or just `ip saddr` for Single affinity, or
`ip saddr and 255.255.255.0` for Network) into a slot and a map sends the slot to its
node. The slots inherit rendezvous' properties: a node leaving frees only its own
slots, a node joining takes ~1/N of the slots of each other node, and the shares
follow the weights (to within ~1/sqrt(slots per node); use a few hundred slots per
node or more).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

from casarray.balancer.model import Affinity, FilteringMode, HostState, Node, PortRule

_UNIT = float(1 << 53)  # u = (h + 0.5) / 2**53 is exact in a double and in (0, 1)


def affinity_key(affinity: Affinity, client_ip: str, client_port: int = 0) -> bytes:
    """The hashing key of a client connection for a rule's affinity: address and port
    (None), address (Single), or the address's /24 or /64 (Network). IPv4-mapped IPv6
    addresses count as IPv4. A client "address" that isn't one is hashed as text."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
            client_ip.split("%", 1)[0]  # drop an IPv6 zone (fe80::1%eth0)
        )
    except ValueError:
        text = client_ip.encode()
        return text + b"|" + str(client_port).encode() if affinity is Affinity.NONE else text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if affinity is Affinity.NETWORK:
        prefix = 24 if address.version == 4 else 64
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return b"net:" + network.network_address.packed + bytes([prefix])
    if affinity is Affinity.SINGLE:
        return b"ip:" + address.packed
    return b"conn:" + address.packed + client_port.to_bytes(2, "big")


def slot_index(affinity: Affinity, client_ip: str, client_port: int, slots: int) -> int:
    """The slot (0 .. slots-1) of a client connection, for a data plane that looks its
    node up in a `slot_table` per connection (the Proxy plane's fast path): CRC-32 of
    the affinity key, spread by a multiplicative (Fibonacci) mix. IPv4 text keys are
    cut from the address as written (no parsing per connection); anything with a `:`
    (IPv6, IPv4-mapped) takes `affinity_key`'s way."""
    if ":" in client_ip:
        key = affinity_key(affinity, client_ip, client_port)
    elif affinity is Affinity.NONE:
        key = f"{client_ip}|{client_port}".encode()
    elif affinity is Affinity.NETWORK:
        key = client_ip.rpartition(".")[0].encode()
    else:
        key = client_ip.encode()
    return ((zlib.crc32(key) * 0x9E3779B1) & 0xFFFFFFFF) * slots >> 32


def slot_key(slot: int) -> bytes:
    """The key of slot number `slot` of a slot table."""
    return b"slot:" + slot.to_bytes(4, "big")


def unit_hash(key: bytes, node: str) -> float:
    """A stable pseudo-random number in (0, 1) for (key, node); node names compare in
    any letter case, as the directory's names do."""
    digest = hashlib.blake2b(key + b"\0" + node.lower().encode(), digest_size=8).digest()
    return ((int.from_bytes(digest, "big") >> 11) + 0.5) / _UNIT


def score(key: bytes, node: str, weight: float) -> float:
    """The weighted rendezvous score of `node` for `key` (higher wins; 0 for weight 0)."""
    if weight <= 0:
        return 0.0
    return -weight / math.log(unit_hash(key, node))


def rank(key: bytes, weights: Mapping[str, float]) -> list[str]:
    """Node names with a positive weight, best first for `key`: the first is the
    choice, the next ones where to retry if it refuses."""
    scored = [(score(key, name, w), name) for name, w in weights.items() if w > 0]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [name for _, name in scored]


def choose(key: bytes, weights: Mapping[str, float]) -> str | None:
    """The node name `key` goes to (None if no node has a positive weight)."""
    best: tuple[float, str] | None = None
    for name, w in weights.items():
        if w <= 0:
            continue
        s = score(key, name, w)
        if best is None or s > best[0] or (s == best[0] and name < best[1]):
            best = (s, name)
    return None if best is None else best[1]


def eligible(nodes: Iterable[Node], healthy: Collection[str] | None = None) -> list[Node]:
    """The nodes that may take new connections: Started (not Stopped, Suspended or
    Draining) and, if `healthy` is given, named in it."""
    return [
        node
        for node in nodes
        if node.state is HostState.STARTED and (healthy is None or node.name in healthy)
    ]


def candidate_weights(
    rule: PortRule,
    nodes: Iterable[Node],
    *,
    healthy: Collection[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """name -> weight of the eligible nodes for a Multiple-hosts rule: `weights` if
    given (a node missing there has weight 0), else the rule's LoadWeights."""
    return {
        node.name: float(
            weights.get(node.name, 0.0) if weights is not None else rule.weight(node.name)
        )
        for node in eligible(nodes, healthy)
    }


def single_host(nodes: Iterable[Node], healthy: Collection[str] | None = None) -> Node | None:
    """Single host mode's node: the eligible node with the lowest HostPriority."""
    return min(eligible(nodes, healthy), key=lambda n: (n.priority, n.host_id), default=None)


def ranked(
    rule: PortRule,
    nodes: Sequence[Node],
    client_ip: str,
    client_port: int = 0,
    *,
    healthy: Collection[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> list[Node]:
    """The nodes a connection from client_ip:client_port may go to, best first (the
    proxy tries the next one when a node refuses): by rendezvous score for Multiple
    hosts, by HostPriority for Single host, none when the rule is Disabled."""
    if rule.mode is FilteringMode.DISABLED:
        return []
    if rule.mode is FilteringMode.SINGLE:
        return sorted(eligible(nodes, healthy), key=lambda n: (n.priority, n.host_id))
    by_name = {node.name: node for node in nodes}
    key = affinity_key(rule.affinity, client_ip, client_port)
    names = rank(key, candidate_weights(rule, nodes, healthy=healthy, weights=weights))
    return [by_name[name] for name in names]


def pick(
    rule: PortRule,
    nodes: Sequence[Node],
    client_ip: str,
    client_port: int = 0,
    *,
    healthy: Collection[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> Node | None:
    """The node a new connection from client_ip:client_port goes to under `rule`, or
    None (Disabled rule, or no eligible node with a positive weight)."""
    if rule.mode is FilteringMode.DISABLED:
        return None
    if rule.mode is FilteringMode.SINGLE:
        return single_host(nodes, healthy)
    key = affinity_key(rule.affinity, client_ip, client_port)
    name = choose(key, candidate_weights(rule, nodes, healthy=healthy, weights=weights))
    return None if name is None else next(n for n in nodes if n.name == name)


def slot_table(
    rule: PortRule,
    nodes: Sequence[Node],
    slots: int,
    *,
    healthy: Collection[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> tuple[Node | None, ...]:
    """`slots` entries, entry i being the node of hash slot i (the rendezvous winner of
    `slot_key(i)`), for a data plane that hashes connections into slots itself (an
    nftables `jhash ... mod slots` map). Single host mode: every slot to its node;
    Disabled, or no eligible node: every slot None (drop)."""
    if slots <= 0:
        raise ValueError(f"a slot table needs at least one slot, not {slots}")
    if rule.mode is FilteringMode.DISABLED:
        return (None,) * slots
    if rule.mode is FilteringMode.SINGLE:
        return (single_host(nodes, healthy),) * slots
    by_name = {node.name: node for node in nodes}
    candidates = candidate_weights(rule, nodes, healthy=healthy, weights=weights)
    table: list[Node | None] = []
    for slot in range(slots):
        name = choose(slot_key(slot), candidates)
        table.append(None if name is None else by_name[name])
    return tuple(table)


def shares(table: Sequence[Node | None]) -> dict[str, float]:
    """The fraction of a slot table's slots each node holds (None: unassigned)."""
    if not table:
        return {}
    counts = Counter(None if node is None else node.name for node in table)
    return {name: count / len(table) for name, count in counts.items() if name is not None}


__all__ = [
    "affinity_key",
    "candidate_weights",
    "choose",
    "eligible",
    "pick",
    "rank",
    "ranked",
    "score",
    "shares",
    "single_host",
    "slot_index",
    "slot_key",
    "slot_table",
    "unit_hash",
]
