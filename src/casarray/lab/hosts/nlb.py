"""NLB on the hosts of a hosts lab: which clusters run on their members' own drivers
rather than a central balancer, and what each member's driver is told (pure: the
directory's `ClusterSnapshot` in, `NlbHostConfig`s out; the supervisor writes them and
runs `python -m casarray.balancer.nlb_host CONFIG.json` in each member's namespace).

A cluster of the Hosts or Auto data plane runs on the hosts (Auto's choice where every
member has a network stack of its own); Kernel, Proxy and HAProxy keep a central
balancer, in DC01. Each member's config is the directory's cluster seen from that
host: the cluster IP and its mask, `eth0`, the operation mode, the port rules with
their filtering modes, affinities and load weights, the node's HostID, HostPriority
and admin state, the cluster's heartbeat period and tolerance, and the status file
Get-NlbClusterNode reads (`balancer_process.host_status_file`).

The driver probes each rule's first port on the host's own address: clients' packets
for the cluster IP are DNATed there in the host (`network.ClusterPlumbing`), where the
Client Access server listens, and a probe of the cluster IP from inside the host would
not be.

`restart_key` is what a running driver can't take by re-reading its file (what the
host is: `NlbHostConfig.identity`): the supervisor restarts a driver when it changes,
and otherwise only rewrites the file, which the driver takes live (an admin state, a
load weight, a heartbeat setting, a port rule: the hosts converge, no driver restarts).
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from casarray.balancer.directory_view import port_rule
from casarray.balancer.model import HostState
from casarray.balancer.nlb_host.config import NlbHostConfig, OperationMode
from casarray.balancer.nlb_host.macs import cluster_mac

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.directory.nlb.objects import ClusterSnapshot

ON_HOSTS = ("hosts", "auto")  # the data planes a hosts lab runs on the members
INTERFACE = "eth0"  # every host's link (`plan`)


def on_hosts(data_plane: str) -> bool:
    """Whether a cluster of `data_plane` runs on its members' drivers in a hosts lab."""
    return data_plane.strip().lower() in ON_HOSTS


def pair_cluster_ips(directory: Directory) -> list[str]:
    """The cluster IPs of the clusters a hosts lab runs on a balancer pair (the HAProxy
    plane): their networks get balancer hosts (`HostPlan.build(pairs=...)`)."""
    return [c.ip_address for c in directory.nlb.clusters() if c.data_plane.lower() == "haproxy"]


def host_configs(
    snapshot: ClusterSnapshot, status_files: dict[str, Path] | None = None
) -> list[NlbHostConfig]:
    """Each node's driver config (by HostID); `status_files` by node name. NlbConfigError
    when the cluster can't run on the hosts (no port rule, say)."""
    cluster = snapshot.cluster
    prefix = ipaddress.IPv4Network(f"0.0.0.0/{cluster.subnet_mask}").prefixlen
    rules = tuple(port_rule(r) for r in snapshot.rules)
    files = status_files or {}
    configs = []
    for node in snapshot.nodes:
        status = files.get(node.name)
        configs.append(
            NlbHostConfig(
                cluster_ip=cluster.ip_address,
                cluster_name=cluster.name,
                interface=INTERFACE,
                name=node.name,
                address=node.ip_address,
                prefix_length=prefix,
                host_id=node.host_id,
                priority=node.host_priority,
                rules=rules,
                mode=OperationMode(cluster.operation_mode),
                state=HostState(node.admin_state),
                heartbeat_period=cluster.heartbeat_period / 1000,
                tolerance=cluster.heartbeat_tolerance,
                probe=True,
                probe_address=node.ip_address,
                status_file=str(status) if status is not None else None,
            )
        )
    return configs


def restart_key(config: NlbHostConfig) -> str:
    """A digest of what the driver takes only at its start (`identity`)."""
    return hashlib.blake2b(repr(config.identity).encode(), digest_size=8).hexdigest()


def mac_of(config: NlbHostConfig) -> str:
    """The cluster MAC the cluster's neighbours reach the cluster IP at."""
    return cluster_mac(config.cluster_ip, config.mode)
