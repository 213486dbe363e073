"""The balancer's `ClusterView` of a cluster in the directory.

The directory hands out its own plain records (`Directory.nlb.snapshot`: the cluster,
its nodes and port rules as the Get-Nlb* cmdlets show them, read in one transaction);
this adapts them into the balancer's values and enums, so the directory never imports
the balancer. Weights not set are Equal (50, `PortRule.weight`); a node whose drain
timed out comes as Stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from casarray.balancer import model

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.directory.nlb.objects import ClusterSnapshot, NlbNode, NlbPortRule


def node(record: NlbNode) -> model.Node:
    return model.Node(
        name=record.name,
        address=record.ip_address,
        host_id=record.host_id,
        priority=record.host_priority,
        state=model.HostState(record.admin_state),
        fqdn=record.fqdn,
        drain_until=record.drain_until,
    )


def port_rule(record: NlbPortRule) -> model.PortRule:
    return model.PortRule(
        start_port=record.start_port,
        end_port=record.end_port,
        ip=record.ip,
        protocol=model.RuleProtocol(record.protocol),
        mode=model.FilteringMode(record.mode),
        affinity=model.Affinity(record.affinity),
        timeout_minutes=record.timeout,
        weights=dict(record.weights),
        proxy_protocol=record.proxy_protocol,
    )


def view_of(
    snapshot: ClusterSnapshot, *, backend_offset: int = 0, listen_offset: int = 0
) -> model.ClusterView:
    """The `ClusterView` of a snapshot the directory gave."""
    return model.ClusterView(
        name=snapshot.name,
        ip=snapshot.ip,
        nodes=tuple(node(n) for n in snapshot.nodes),
        rules=tuple(port_rule(r) for r in snapshot.rules),
        backend_offset=backend_offset,
        listen_offset=listen_offset,
    )


def cluster_view(
    directory: Directory, cluster: object, *, backend_offset: int = 0, listen_offset: int = 0
) -> model.ClusterView:
    """The `ClusterView` of `cluster` (its FQDN, IP, GUID or one of its hosts), read
    from the directory in one transaction."""
    return view_of(
        directory.nlb.snapshot(cluster),
        backend_offset=backend_offset,
        listen_offset=listen_offset,
    )
