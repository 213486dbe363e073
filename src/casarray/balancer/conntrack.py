"""The Kernel data plane's connection tracking: what `conntrack` (conntrack-tools)
lists and deletes for a cluster.

Why entries must be deleted: the kernel binds a connection's DNAT once, at its first
packet, and keeps the binding in the tracking entry. A new SYN whose 4-tuple matches
an entry that conntrack still thinks is open (ESTABLISHED for 5 days after a close it
never saw, or CLOSE after a reset from the node) is not re-translated: it follows the
old binding. On loopback clients reuse source ports at once (tcp_tw_reuse=2), so such a
stale entry sends a new connection to a node that is gone or to a port nobody listens
on any more, and the client is refused. Measured: after a few runs with different node
ports, about one new connection in a thousand through the cluster IP was refused.

So the balancer deletes

- a failed node's entries at once (`forget_node`),
- at start and at every change of the cluster, the entries to the cluster's IPs whose
  node side is not a (node, node port) of the cluster as it is now (`prune`),
- all the entries to the cluster's IPs when the cluster is stopped (`forget_cluster`).

Entries that were not translated (node side = cluster IP) are not the cluster's and
are left alone. The CLI is used rather than netlink bindings: these calls are rare
(changes, not connections) and Debian's conntrack package is what an operator knows.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

from casarray.balancer.model import ClusterView, RuleProtocol

__all__ = [
    "Entry",
    "count_established",
    "entries",
    "forget_cluster",
    "forget_node",
    "parse",
    "prune",
    "stale_pairs",
]

log = logging.getLogger("casarray.balancer")

_LINE = re.compile(
    r"^(?P<proto>tcp|udp)\s+\d+\s+\d+\s+(?:(?P<state>[A-Z_]+)\s+)?"
    r"src=(?P<src>\S+) dst=(?P<dst>\S+) sport=(?P<sport>\d+) dport=(?P<dport>\d+)"
    r"(?: \[UNREPLIED\])? src=(?P<rsrc>\S+) dst=\S+ sport=(?P<rsport>\d+) dport=\d+"
)


@dataclass(frozen=True)
class Entry:
    """One tracked connection: the client's view (original direction) and the node side
    (the reply direction's source)."""

    proto: str
    state: str | None
    src: str
    dst: str
    sport: int
    dport: int
    node_address: str
    node_port: int


def parse(listing: str) -> list[Entry]:
    """The tcp and udp entries of `conntrack -L` output; other lines are skipped."""
    found = []
    for line in listing.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        found.append(
            Entry(
                match["proto"],
                match["state"],
                match["src"],
                match["dst"],
                int(match["sport"]),
                int(match["dport"]),
                match["rsrc"],
                int(match["rsport"]),
            )
        )
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str] | None:
    command = shutil.which("conntrack")
    if command is None:
        return None
    return subprocess.run([command, *args], capture_output=True, text=True, check=False, timeout=30)


def _protocols(view: ClusterView) -> set[str]:
    protocols = set()
    for rule in view.rules:
        if rule.protocol in (RuleProtocol.TCP, RuleProtocol.BOTH):
            protocols.add("tcp")
        if rule.protocol in (RuleProtocol.UDP, RuleProtocol.BOTH):
            protocols.add("udp")
    return protocols or {"tcp"}


def _cluster_ips(view: ClusterView) -> set[str]:
    return {view.ip} | {rule.ip for rule in view.rules if rule.ip}


def entries(view: ClusterView) -> list[Entry]:
    """The tracked connections addressed to the cluster's IPs (empty without conntrack)."""
    found: list[Entry] = []
    for ip in sorted(_cluster_ips(view)):
        for proto in sorted(_protocols(view)):
            done = _run(["-L", "-p", proto, "--orig-dst", ip])
            if done is not None:
                found.extend(parse(done.stdout))
    return found


def _expected(view: ClusterView, entry: Entry) -> bool:
    """Whether the entry's node side is where the cluster sends that connection now."""
    if entry.node_address not in {node.address for node in view.nodes}:
        return False
    port = entry.dport - view.listen_offset
    for rule in view.rules:
        if (rule.ip or view.ip) != entry.dst or not rule.covers(port):
            continue
        if entry.proto not in _protocols_of(rule.protocol):
            continue
        if entry.node_port == port + view.backend_offset:
            return True
    return False


def _protocols_of(protocol: RuleProtocol) -> tuple[str, ...]:
    if protocol is RuleProtocol.BOTH:
        return ("tcp", "udp")
    return ("udp",) if protocol is RuleProtocol.UDP else ("tcp",)


def stale_pairs(view: ClusterView, listed: Iterable[Entry]) -> set[tuple[str, str, str, int]]:
    """(protocol, cluster IP, node address, node port) of the translated entries that
    the cluster would not make now."""
    stale = set()
    for entry in listed:
        if entry.node_address == entry.dst:  # not translated: not the cluster's
            continue
        if not _expected(view, entry):
            stale.add((entry.proto, entry.dst, entry.node_address, entry.node_port))
    return stale


def prune(view: ClusterView) -> int:
    """Delete the entries to the cluster's IPs that lead to a node or node port the
    cluster no longer has; the number of (node, port) pairs deleted."""
    pairs = stale_pairs(view, entries(view))
    for _proto, _ip, address, port in _delete(pairs):
        log.info("%s: stale tracked connections to %s:%d dropped", view.name, address, port)
    return len(pairs)


def _delete(pairs: set[tuple[str, str, str, int]]) -> list[tuple[str, str, str, int]]:
    """Delete the entries of each (protocol, cluster IP, node address, node port); the
    pairs, in order."""
    done = sorted(pairs)
    for proto, ip, address, port in done:
        _run(["-D", "-p", proto, "--orig-dst", ip, "--reply-src", address,
              "--reply-port-src", str(port)])  # fmt: skip
    return done


def forget_node(address: str) -> None:
    """Drop every tracked connection of a failed node. Those in TIME_WAIT or CLOSE keep
    their old DNAT: a client port reused soon after would be sent to the dead node."""
    for proto in ("tcp", "udp"):
        done = _run(["-D", "-p", proto, "--reply-src", address])
        if done is not None and proto == "tcp":
            log.info("%s failed: its tracked connections dropped (%s)", address,
                     done.stderr.strip())  # fmt: skip


def forget_cluster(view: ClusterView) -> None:
    """Drop every translated connection to the cluster's IPs (the cluster stopped)."""
    pairs = {
        (entry.proto, entry.dst, entry.node_address, entry.node_port)
        for entry in entries(view)
        if entry.node_address != entry.dst
    }
    _delete(pairs)


def count_established(address: str) -> int | None:
    """The node's established TCP connections as the kernel tracks them."""
    done = _run(["-L", "-p", "tcp", "--state", "ESTABLISHED", "--reply-src", address])
    if done is None:
        return None
    return sum(1 for line in done.stdout.splitlines() if line.startswith("tcp"))
