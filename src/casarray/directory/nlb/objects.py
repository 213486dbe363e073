"""What the NLB services return: plain frozen records with NLB's names
(Get-WindowsFeature, Get-NlbCluster, Get-NlbClusterNode, Get-NlbClusterPortRule), and
`ClusterSnapshot`, all three of a cluster read at once: what a balancer follows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from casarray.directory.nlb.values import STARTED, ip_text


@dataclass(frozen=True)
class WindowsFeature:
    """Get-WindowsFeature's view of one feature on one server."""

    server: str
    name: str
    display_name: str
    installed: bool


@dataclass(frozen=True)
class FeatureResult:
    """What Install-/Uninstall-WindowsFeature did: the features it changed (none when
    nothing needed changing)."""

    server: str
    changed: tuple[WindowsFeature, ...]

    @property
    def success(self) -> bool:
        return True

    @property
    def exit_code(self) -> str:
        return "Success" if self.changed else "NoChangeNeeded"


@dataclass(frozen=True)
class NlbCluster:
    guid: str
    name: str  # the FQDN
    ip_address: str
    subnet_mask: str
    operation_mode: str
    data_plane: str
    interface_name: str
    client_access_array: str | None
    follow_array: bool
    nodes: tuple[str, ...]  # server names, by HostID
    when_created: datetime
    when_changed: datetime
    heartbeat_period: int = 1000  # ms (NLB's AliveMsgPeriod)
    heartbeat_tolerance: int = 5  # heartbeats missed in a row (AliveMsgTolerance)


@dataclass(frozen=True)
class NlbNode:
    cluster: str
    cluster_guid: str
    cluster_ip: str
    name: str  # the server's name
    fqdn: str
    ip_address: str
    interface_name: str
    host_id: int
    host_priority: int
    initial_host_state: str
    admin_state: str  # Started, Stopped, Suspended, Draining
    drain_until: datetime | None
    is_default: bool  # the started node with the highest priority (lowest number)
    from_array: bool  # a member of the followed array with no row of its own yet
    # Set by the balancer (e.g. "Unhealthy: imap 143: connection refused"); the
    # directory knows no health.
    health: str | None = None

    @property
    def state(self) -> str:
        """The state as Get-NlbClusterNode shows it."""
        if self.health:
            return self.health
        if self.admin_state == STARTED:
            return "Converged(default)" if self.is_default else "Converged"
        return self.admin_state


@dataclass(frozen=True)
class NlbPortRule:
    cluster: str
    cluster_guid: str
    cluster_ip: str
    ip: str | None  # None: every cluster IP ("All")
    start_port: int
    end_port: int
    protocol: str
    mode: str
    affinity: str
    timeout: int  # minutes
    weights: tuple[tuple[str, int], ...] = field(default=())  # (node, LoadWeight); else Equal
    proxy_protocol: bool = False  # a PROXY v2 header to the nodes (casarray's own)

    @property
    def ip_text(self) -> str:
        return ip_text(self.ip)

    def covers(self, port: int) -> bool:
        return self.start_port <= port <= self.end_port

    def weight(self, node: str) -> int | None:
        """A node's LoadWeight, None for Equal."""
        return next((w for n, w in self.weights if n.lower() == node.lower()), None)


@dataclass(frozen=True)
class ClusterSnapshot:
    """One cluster as Get-NlbCluster, Get-NlbClusterNode and Get-NlbClusterPortRule
    show it, read in one transaction: its IP, mode and the array it follows; its nodes
    by HostID (host priority, state: a drain that timed out reads Stopped); its port
    rules (affinity, flags, load weights) by start port.

    The balancer adapts it into its own `ClusterView`; the directory knows nothing of
    the balancer."""

    cluster: NlbCluster
    nodes: tuple[NlbNode, ...]
    rules: tuple[NlbPortRule, ...]

    @property
    def name(self) -> str:
        return self.cluster.name

    @property
    def ip(self) -> str:
        return self.cluster.ip_address

    def rule_for(self, port: int) -> NlbPortRule | None:
        return rule_for(self.rules, port)


def rule_for(rules: Iterable[NlbPortRule], port: int) -> NlbPortRule | None:
    """The rule covering `port` (the narrowest if several do, the first of those if
    they tie): the one the balancer applies."""
    matching = [rule for rule in rules if rule.covers(port)]
    if not matching:
        return None
    return min(matching, key=lambda rule: rule.end_port - rule.start_port)
