"""The host's own NLB filter as nftables text, sans-IO: `render_full` makes the table,
`render_update` the one transaction that moves what changed. The driver runs them with
`nft -f -` inside the host's network namespace.

Every host has the cluster IP on its cluster interface and receives every packet to
it; this table keeps the packets of the buckets the host owns and drops the rest:

    table ip casarray_nlb_<cluster IP>
      set owned_<rule>            the rule's buckets this host takes new connections in
      set alive                   the cluster IP, with a timeout the driver refreshes
                                  with every heartbeat it sends (`render_alive`)
      chain prerouting            filter hook, priority -150 (after conntrack): packets
                                  from the cluster interface to the cluster IP -> cluster
      chain cluster
        meta pkttype set host     frames to the multicast cluster MAC arrive as
                                  PACKET_MULTICAST, which TCP discards (measured: with
                                  this rule missing no connection to the cluster IP opened)
        jump gate                 Stopped/Suspended: `drop` (established ones too)
        ct state established,related accept   NLB's connection descriptors: a host keeps
                                  its connections when their bucket moves
        ct state invalid drop     with nf_conntrack_tcp_loose=0 a mid-stream packet of
                                  another host's connection is invalid here, never "new"
        ip daddr != @alive drop   the dead man's switch: a driver killed or stalled for
                                  `alive_timeout` takes no new connection, so it never
                                  answers for buckets the others took over (they wait
                                  `tolerance` periods of silence, then converge)
        per rule and protocol: not a plain SYN -> drop; then
          meta mark set jhash <affinity key> mod <buckets> seed <S> meta mark @owned_<i> accept
          drop
        jump uncovered            ports no rule covers: only NLB's default host takes them

Measured on Linux 6.18 with nftables 1.0.6: a hash expression can't be looked up in a
named set directly (`jhash ... @owned` and `jhash ... != @owned` fail with "datatype
mismatch, expected integer, expression has type packet mark" against a `type mark`
set, and a set of `type integer` is refused as unqualified), and a `typeof jhash ...`
set loads but `nft list` then crashes. Setting the packet mark to the hash and looking
the mark up in a `typeof meta mark` set works, and the set's elements can be replaced
in one transaction. The affinity keys are `ip saddr . tcp sport` (None), `ip saddr`
(Single) and `ip saddr and 255.255.255.0` (Network); the seed is the same on every
host (`NlbHostConfig.seed`), so all hosts put a client in the same bucket.

In every mode an `arp` table drops ARP requests for the cluster IP before the kernel
answers them: one host's driver answers instead, with the cluster MAC (`arp`). In
Unicast mode a
`netdev` table's egress chain on the cluster interface rewrites the source MAC of every
frame from the cluster MAC to 02-<HostID> (`macs.masked_mac`; the egress hook needs
Linux 5.16 and nftables 1.0.1), as NLB masks it, so switches keep flooding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from casarray.balancer.model import Affinity, PortRule
from casarray.balancer.nlb_host.config import NlbHostConfig, OperationMode
from casarray.balancer.nlb_host.macs import masked_mac, unicast_mac

__all__ = [
    "PlaneState",
    "alive_timeout_ms",
    "render_alive",
    "render_full",
    "render_remove",
    "render_update",
    "table_name",
]

PRIORITY = -150  # after conntrack (-200), before NAT and routing


@dataclass(frozen=True)
class PlaneState:
    """What the host's filter does: per rule the owned buckets, whether it drops
    everything (Stopped, Suspended), and whether it is the default host."""

    owned: tuple[frozenset[int], ...]
    drop_all: bool = False
    default_host: bool = False


def table_name(config: NlbHostConfig) -> str:
    return "casarray_nlb_" + config.cluster_ip.replace(".", "_")


def alive_timeout_ms(config: NlbHostConfig) -> int:
    """How long the filter takes new connections after the driver's last refresh (made
    just before each heartbeat): as long as the others wait before they take this
    host's buckets, which they then take only once they have converged, so the two
    never overlap, and a driver starved of CPU on a busy host keeps its share as long
    as the others let it."""
    return max(1, round(config.tolerance * config.heartbeat_period * 1000))


def render_alive(config: NlbHostConfig) -> str:
    """Refresh the dead man's switch (one transaction, whether or not it expired)."""
    name, element = table_name(config), f"{config.cluster_ip} timeout {alive_timeout_ms(config)}ms"
    return f"flush set ip {name} alive\nadd element ip {name} alive {{ {element} }}\n"


def _key(affinity: Affinity, proto: str) -> str:
    if affinity is Affinity.NONE:
        return f"ip saddr . {proto} sport"
    if affinity is Affinity.NETWORK:
        return "ip saddr and 255.255.255.0"
    return "ip saddr"


def _ports(rule: PortRule) -> str:
    if rule.start_port == rule.end_port:
        return str(rule.start_port)
    return f"{rule.start_port}-{rule.end_port}"


def _elements(buckets: frozenset[int]) -> str:
    return ", ".join(str(b) for b in sorted(buckets))


def _gate(state: PlaneState) -> list[str]:
    return ["drop"] if state.drop_all else []


def _uncovered(state: PlaneState) -> list[str]:
    return [] if state.default_host else ["meta l4proto { tcp, udp } drop"]


def _cluster_rules(config: NlbHostConfig) -> list[str]:
    lines = [
        "meta pkttype set host",
        "jump gate",
        "ct state established,related accept",
        "ct state invalid drop",
        "ip daddr != @alive drop",
    ]
    order = sorted(
        range(len(config.rules)),
        key=lambda i: config.rules[i].end_port - config.rules[i].start_port,
    )
    for index in order:
        rule = config.rules[index]
        for proto in rule.transport_protocols():
            match = f"{proto} dport {_ports(rule)}"
            if proto == "tcp":
                lines.append(f"{match} tcp flags & (fin|syn|rst|ack) != syn drop")
            hashed = (
                f"jhash {_key(rule.affinity, proto)} mod {config.buckets} seed {config.seed:#010x}"
            )
            lines.append(f"{match} meta mark set {hashed} meta mark @owned_{index} accept")
            lines.append(f"{match} drop")
    lines.append("jump uncovered")
    return lines


def _chain(name: str, lines: Sequence[str], head: str = "") -> str:
    body = f"\t\t{head}\n" if head else ""
    body += "".join(f"\t\t{line}\n" for line in lines)
    return f"\tchain {name} {{\n{body}\t}}\n"


def render_full(config: NlbHostConfig, state: PlaneState) -> str:
    """One transaction that (re)creates the host's tables whole."""
    name = table_name(config)
    sets = ""
    for index, owned in enumerate(state.owned):
        elements = f" elements = {{ {_elements(owned)} }};" if owned else ""
        sets += f"\tset owned_{index} {{ typeof meta mark;{elements} }}\n"
    alive = f"{config.cluster_ip} timeout {alive_timeout_ms(config)}ms"
    sets += f"\tset alive {{ type ipv4_addr; flags timeout; elements = {{ {alive} }}; }}\n"
    iface = config.interface.replace('"', "")
    comment = f"casarray NLB host {config.name} of {config.cluster_name or config.cluster_ip}"
    script = f"table ip {name} {{}}\ndelete table ip {name}\n"
    # the other families too: a host whose mode changed leaves no stale table
    script += "".join(
        f"table {f} {name} {{}}\ndelete table {f} {name}\n" for f in ("arp", "netdev")
    )
    script += (
        f"table ip {name} {{\n"
        f'\tcomment "{comment.replace(chr(34), "")}"\n'
        f"{sets}"
        + _chain(
            "prerouting",
            [f'iifname "{iface}" ip daddr {config.cluster_ip} jump cluster'],
            f"type filter hook prerouting priority {PRIORITY}; policy accept;",
        )
        + _chain("cluster", _cluster_rules(config))
        + _chain("gate", _gate(state))
        + _chain("uncovered", _uncovered(state))
        + "}\n"
    )
    script += (
        f"table arp {name} {{\n"
        + _chain(
            "input",
            [f"arp daddr ip {config.cluster_ip} drop"],
            "type filter hook input priority filter; policy accept;",
        )
        + "}\n"
    )
    if config.mode is OperationMode.UNICAST:
        cluster, masked = (
            unicast_mac(config.cluster_ip),
            masked_mac(config.cluster_ip, config.host_id),
        )
        script += (
            f"table netdev {name} {{\n"
            + _chain(
                "egress",
                [f"ether saddr {cluster} ether saddr set {masked}"],
                f'type filter hook egress device "{iface}" priority 0; policy accept;',
            )
            + "}\n"
        )
    return script


def render_update(config: NlbHostConfig, before: PlaneState, after: PlaneState) -> str:
    """One transaction from `before` to `after`: only moved buckets move. Empty when
    nothing changes."""
    name = table_name(config)
    lines: list[str] = []
    for index, (old, new) in enumerate(zip(before.owned, after.owned, strict=True)):
        if old - new:
            lines.append(f"delete element ip {name} owned_{index} {{ {_elements(old - new)} }}")
        if new - old:
            lines.append(f"add element ip {name} owned_{index} {{ {_elements(new - old)} }}")
    for chain, render in (("gate", _gate), ("uncovered", _uncovered)):
        if render(before) != render(after):
            lines.append(f"flush chain ip {name} {chain}")
            lines += [f"add rule ip {name} {chain} {rule}" for rule in render(after)]
    return "".join(line + "\n" for line in lines)


def render_remove(config: NlbHostConfig) -> str:
    """Delete the host's tables; succeeds when they are absent."""
    name = table_name(config)
    families = ("ip", "arp", "netdev")
    return "".join(f"table {f} {name} {{}}\ndelete table {f} {name}\n" for f in families)
