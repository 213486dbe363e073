"""The kernel data plane: an nftables table that DNATs the cluster IP to the nodes.

One table per cluster, owned by casarray (`table ip casarray_<cluster name>`), holds a
regular chain `cluster` with one rule per port rule and protocol, jumped to from two
NAT base chains:

- `prerouting` (hook prerouting, priority dstnat) for connections that arrive from
  other hosts, and
- `output` (hook output, priority -100) for connections made on this host.

DNAT on loopback (measured on Linux 6.x, nftables 1.0.6): a client on this host that
connects to a loopback cluster IP such as 127.77.1.10 sends its first packet through
the NAT *output* hook, never through prerouting for NAT purposes (conntrack binds the
NAT on the way out; when the packet loops back through prerouting the connection
already has its DNAT binding). So the output chain alone serves local clients and
`net.ipv4.conf.*.route_localnet` is NOT needed. route_localnet is only needed when
packets from another host (arriving on a non-loopback interface) are addressed to, or
DNATed to, a 127.0.0.0/8 address: without it the kernel drops them as martians. For
several hosts the cluster IP is a routable address, the nodes are reached through
prerouting DNAT, and the host needs `net.ipv4.ip_forward=1` with the nodes' replies
routed back through it (NLB's model: no source NAT, nodes see the real client).

Spreading: each port rule gets an anonymous map from a hash bucket to a node address,
`dnat to jhash <key> mod N seed S map { 0 : a, 1 : b, ... }`, where the key is

- Affinity None: the connection 4-tuple (`ip saddr . tcp sport . ip daddr . tcp
  dport`); a per-connection round robin (`numgen inc`) collides with TIME_WAIT when
  a client reuses a source port, the 4-tuple hash does not;
- Affinity Single: the client address (`ip saddr`);
- Affinity Network: the client /24 (`ip saddr and 255.255.255.0`).

The N buckets ("slots") are given by the caller, already filled weight-proportionally
by the rendezvous assignment (balancer.hashing); this module only renders them. The
jhash seed is fixed per cluster (derived from its name unless given): without a seed
the kernel draws a random one for each rule, and since every update recreates the
table, clients with affinity would move to another node on every update.

Filtering mode Single sends everything to the slot node with the highest priority
(lowest HostPriority); Disabled drops the packets (as NLB does); a rule with no
slots (no healthy node) rejects new connections at once (TCP reset, ICMP port
unreachable for UDP) rather than letting clients time out.

Ports: the cluster listens on `port + view.listen_offset` and the nodes on `port +
view.backend_offset`. When the two offsets are equal the DNAT keeps the destination
port; otherwise a single port maps to `: <backend port>` and a range to a port map
(`: tcp dport map { 1000 : 11000, ... }`).

Updates are atomic: `render_script` returns one `nft -f` transaction that creates the
table if missing, deletes it and recreates it whole; established connections keep
their conntrack NAT binding across updates (a drained node keeps its open sessions),
and if the control plane crashes the table stays in place and keeps forwarding.
`remove` deletes the table when the cluster is stopped.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
import subprocess
import zlib
from collections.abc import Mapping, Sequence

from casarray.balancer.model import Affinity, ClusterView, FilteringMode, PortRule
from casarray.errors import CasarrayError

__all__ = [
    "NftError",
    "apply",
    "hash_seed",
    "remove",
    "render_remove",
    "render_rules",
    "render_script",
    "render_table",
    "table_exists",
    "table_name",
]

NFT = "nft"
FAMILY = "ip"
TABLE_PREFIX = "casarray_"
# Where the output chain sits: the standard NAT priority of the output hook.
OUTPUT_PRIORITY = -100


class NftError(CasarrayError, RuntimeError):
    """`nft` is missing or refused a script."""


def table_name(view: ClusterView) -> str:
    """The table's name: `casarray_` and the cluster name with every character that is
    not a letter or a digit replaced by `_`, lower-cased (bj-cas.lab.net ->
    casarray_bj_cas_lab_net)."""
    return TABLE_PREFIX + re.sub(r"[^a-z0-9]", "_", view.name.lower())


def hash_seed(view: ClusterView) -> int:
    """The fixed jhash seed of a cluster: CRC-32 of its lower-cased name."""
    return zlib.crc32(view.name.lower().encode())


def _check_ipv4(address: str) -> str:
    try:
        return str(ipaddress.IPv4Address(address))
    except ValueError as exc:
        raise ValueError(f"the kernel data plane handles IPv4 only, not {address!r}") from exc


def _hash_key(affinity: Affinity, proto: str) -> str:
    if affinity is Affinity.NONE:
        return f"ip saddr . {proto} sport . ip daddr . {proto} dport"
    if affinity is Affinity.NETWORK:
        return "ip saddr and 255.255.255.0"
    return "ip saddr"


def _port_match(rule: PortRule, offset: int) -> str:
    start, end = rule.start_port + offset, rule.end_port + offset
    return str(start) if start == end else f"{start}-{end}"


def _port_suffix(view: ClusterView, rule: PortRule, proto: str) -> str:
    """` : <port>` or ` : <proto> dport map {...}` when the node port differs."""
    shift = view.backend_offset - view.listen_offset
    if shift == 0:
        return ""
    if rule.start_port == rule.end_port:
        return f" : {rule.start_port + view.backend_offset}"
    pairs = ", ".join(
        f"{port + view.listen_offset} : {port + view.backend_offset}"
        for port in range(rule.start_port, rule.end_port + 1)
    )
    return f" : {proto} dport map {{ {pairs} }}"


def _single_host(view: ClusterView, slots: Sequence[str]) -> str:
    """Filtering mode Single: the highest-priority node among those in the slots."""
    present = set(slots)
    candidates = [node for node in view.nodes if node.address in present]
    if candidates:
        return min(candidates, key=lambda node: node.priority).address
    return slots[0]


def _target(view: ClusterView, rule: PortRule, proto: str, slots: Sequence[str], seed: int) -> str:
    suffix = _port_suffix(view, rule, proto)
    if rule.mode is FilteringMode.SINGLE:
        return f"dnat to {_check_ipv4(_single_host(view, slots))}{suffix}"
    if len(set(slots)) == 1:
        return f"dnat to {_check_ipv4(slots[0])}{suffix}"
    entries = ", ".join(f"{i} : {_check_ipv4(address)}" for i, address in enumerate(slots))
    key = _hash_key(rule.affinity, proto)
    return f"dnat to jhash {key} mod {len(slots)} seed {seed:#010x} map {{ {entries} }}{suffix}"


def _rule_order(view: ClusterView) -> list[int]:
    """Rule indexes, narrowest range first (as ClusterView.rule_for picks), stable."""
    return sorted(
        range(len(view.rules)),
        key=lambda i: view.rules[i].end_port - view.rules[i].start_port,
    )


def render_rules(
    view: ClusterView,
    slots: Sequence[str],
    *,
    rule_slots: Mapping[int, Sequence[str]] | None = None,
    seed: int | None = None,
) -> list[str]:
    """The rules of the `cluster` chain, one line each.

    `slots` is the bucket list (node addresses, filled weight-proportionally) for every
    rule; `rule_slots` overrides it for a rule, keyed by the rule's index in
    `view.rules` (port rules carry their own LoadWeights). `seed` defaults to
    `hash_seed(view)`.
    """
    seed = hash_seed(view) if seed is None else seed
    lines: list[str] = []
    for index in _rule_order(view):
        rule = view.rules[index]
        daddr = _check_ipv4(rule.ip or view.ip)
        chosen = list(rule_slots[index]) if rule_slots and index in rule_slots else list(slots)
        for proto in rule.transport_protocols():
            match = f"ip daddr {daddr} {proto} dport {_port_match(rule, view.listen_offset)}"
            # Only new connections are refused: a reject or drop here would also end
            # the established ones (seen on Linux 6.18), which a drain must keep.
            if rule.mode is FilteringMode.DISABLED:
                action = "ct state new drop"
            elif not chosen:
                action = "ct state new " + ("reject with tcp reset" if proto == "tcp" else "reject")
            else:
                action = _target(view, rule, proto, chosen, seed)
            lines.append(f"{match} {action}")
    return lines


def render_table(
    view: ClusterView,
    slots: Sequence[str],
    *,
    rule_slots: Mapping[int, Sequence[str]] | None = None,
    seed: int | None = None,
) -> str:
    """The complete `table ip casarray_<name> { ... }` block for the cluster."""
    rules = render_rules(view, slots, rule_slots=rule_slots, seed=seed)
    name = view.name.replace('"', "")
    body = "".join(f"\t\t{line}\n" for line in rules)
    return (
        f"table {FAMILY} {table_name(view)} {{\n"
        f'\tcomment "casarray NLB cluster {name} ({view.ip})"\n'
        "\tchain cluster {\n"
        f"{body}"
        "\t}\n"
        "\tchain prerouting {\n"
        "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
        "\t\tjump cluster\n"
        "\t}\n"
        "\tchain output {\n"
        f"\t\ttype nat hook output priority {OUTPUT_PRIORITY}; policy accept;\n"
        "\t\tjump cluster\n"
        "\t}\n"
        "}\n"
    )


def render_script(
    view: ClusterView,
    slots: Sequence[str],
    *,
    rule_slots: Mapping[int, Sequence[str]] | None = None,
    seed: int | None = None,
) -> str:
    """One atomic `nft -f` transaction that replaces the cluster's table whole.

    The empty `table` line makes the `delete` valid when the table does not exist yet;
    nft applies the file as a single transaction, so packets see either the old table
    or the new one, never none.
    """
    name = f"{FAMILY} {table_name(view)}"
    return (
        f"table {name} {{}}\n"
        f"delete table {name}\n"
        f"{render_table(view, slots, rule_slots=rule_slots, seed=seed)}"
    )


def render_remove(view: ClusterView) -> str:
    """A script that deletes the cluster's table, and succeeds if it is absent."""
    name = f"{FAMILY} {table_name(view)}"
    return f"table {name} {{}}\ndelete table {name}\n"


def _nft(args: Sequence[str], script: str | None = None, *, nft: str = NFT) -> str:
    binary = shutil.which(nft)
    if binary is None:
        raise NftError(f"{nft} not found: install the Debian package nftables")
    result = subprocess.run(
        [binary, *args],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise NftError(f"nft {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def apply(script: str, *, nft: str = NFT) -> None:
    """Run a rendered script with `nft -f -` (one transaction); raises NftError."""
    _nft(["-f", "-"], script, nft=nft)


def remove(view: ClusterView, *, nft: str = NFT) -> None:
    """Delete the cluster's table (nothing happens if it is not there)."""
    apply(render_remove(view), nft=nft)


def table_exists(view: ClusterView, *, nft: str = NFT) -> bool:
    """Whether the cluster's table is loaded in the kernel."""
    listing = _nft(["list", "tables", FAMILY], nft=nft)
    return f"table {FAMILY} {table_name(view)}" in listing.splitlines()
