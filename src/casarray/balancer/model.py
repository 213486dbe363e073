"""What the balancer knows of one NLB cluster: plain frozen values, read from the
directory by the control plane and handed to the hashing, the health checker and the
data planes, none of which reads the directory itself.

The names and values are NLB's (`Get-NlbCluster`, `Get-NlbClusterNode`,
`Get-NlbClusterPortRule`): a port rule covers StartPort..EndPort on the cluster IP (or
all of the cluster's IPs), with a filtering Mode (Multiple hosts, Single host,
Disabled), an Affinity (None, Single, Network) and per-node LoadWeight (0..100, or
Equal). NLB forwards a connection to the same port on the chosen node; here the node's
port is the cluster port plus `ClusterView.backend_offset` (10000 in a lab without
root, where the Client Access servers listen on 10143, 10993, ...).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


class RuleProtocol(enum.Enum):
    TCP = "Tcp"
    UDP = "Udp"
    BOTH = "Both"


class FilteringMode(enum.Enum):
    MULTIPLE = "Multiple"  # spread over every node, by affinity and load weight
    SINGLE = "Single"  # everything to the highest-priority (lowest HostPriority) node
    DISABLED = "Disabled"  # the ports are blocked


class Affinity(enum.Enum):
    NONE = "None"  # per connection (the 4-tuple)
    SINGLE = "Single"  # per client address
    NETWORK = "Network"  # per client /24 (IPv4) or /64 (IPv6)


class HostState(enum.Enum):
    """What the administrator set (Start-, Stop-, Suspend-, Resume-NlbClusterNode)."""

    STARTED = "Started"
    STOPPED = "Stopped"
    SUSPENDED = "Suspended"
    DRAINING = "Draining"  # Stop-NlbClusterNode -Drain: no new connections


class Probe(enum.Enum):
    """How a rule's ports are probed on a node."""

    IMAP = "imap"  # connect (TLS for 993) and expect a `* OK` greeting
    HTTP = "http"  # GET /<vdir>/healthcheck.htm, expect 200 (HTTPS on 443)
    TCP = "tcp"  # a TCP connect


# Which probe a port gets, and over TLS or not; any other port: a TCP connect.
PORT_PROBES: Mapping[int, tuple[Probe, bool]] = {
    143: (Probe.IMAP, False),
    993: (Probe.IMAP, True),
    80: (Probe.HTTP, False),
    443: (Probe.HTTP, True),
}


@dataclass(frozen=True)
class PortRule:
    start_port: int
    end_port: int
    ip: str | None = None  # None: every cluster IP ("All")
    protocol: RuleProtocol = RuleProtocol.BOTH
    mode: FilteringMode = FilteringMode.MULTIPLE
    affinity: Affinity = Affinity.SINGLE
    timeout_minutes: int = 0  # NLB's extended affinity timeout (0: none)
    # LoadWeight per node name (0..100); a node not named here has weight 50 ("Equal")
    weights: Mapping[str, int] = field(default_factory=dict)
    # casarray's own: each connection to a node starts with a PROXY protocol v2 header
    # naming the client (Proxy data plane; the nodes trust it from the cluster IP)
    proxy_protocol: bool = False

    def covers(self, port: int) -> bool:
        return self.start_port <= port <= self.end_port

    def weight(self, node: str) -> int:
        return self.weights.get(node, 50)

    def transport_protocols(self) -> tuple[str, ...]:
        """The rule's protocols as nftables names them: ("tcp",), ("udp",) or both."""
        if self.protocol is RuleProtocol.TCP:
            return ("tcp",)
        if self.protocol is RuleProtocol.UDP:
            return ("udp",)
        return ("tcp", "udp")

    def probe(self, port: int) -> tuple[Probe, bool]:
        return PORT_PROBES.get(port, (Probe.TCP, False))


@dataclass(frozen=True)
class Node:
    name: str  # the server's name, e.g. CAS01
    address: str  # the server's IP address (the backend)
    host_id: int  # NLB's HostID, 1..32
    priority: int  # NLB's HostPriority, 1..32, unique; 1 is the highest
    state: HostState = HostState.STARTED
    fqdn: str = ""
    # Stop-NlbClusterNode -Drain -Timeout: when the drain ends and the remaining
    # connections are cut (timezone-aware UTC); None: drain until they end.
    drain_until: datetime | None = None


@dataclass(frozen=True)
class ClusterView:
    name: str  # the cluster's FQDN, e.g. bj-cas.lab.net
    ip: str  # ClusterPrimaryIP, e.g. 127.77.1.10
    nodes: tuple[Node, ...]
    rules: tuple[PortRule, ...]
    backend_offset: int = 0  # added to a cluster port to get the node's port
    listen_offset: int = 0  # added to a cluster port to get the port listened on

    def rule_for(self, port: int) -> PortRule | None:
        """The rule covering `port` (the narrowest if several do)."""
        matching = [rule for rule in self.rules if rule.covers(port)]
        if not matching:
            return None
        return min(matching, key=lambda rule: rule.end_port - rule.start_port)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name.lower() == name.lower()), None)
