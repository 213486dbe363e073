"""The nodes of an NLB cluster: adding and removing them, their settings, and their
states (Start-, Stop- with -Drain, Suspend-, Resume-NlbClusterNode). Get-NlbClusterNode
shows the balancer's live view of a node (health, connections) when it runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from casarray.balancer.balancer_process import live_node, read_host_status, read_status
from casarray.directory.nlb.objects import NlbNode
from casarray.directory.nlb.values import HOST_STATES
from casarray.directory.objects import Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.nlb.common import (
    NODE_HELP,
    cluster_ref,
    forced,
    host_parameter,
    input_parameter,
    interface_parameter,
    node_ref,
)
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

NODE_TYPE = "Microsoft.NetworkLoadBalancingClusters.PowerShell.Node"

register_view(NODE_TYPE, ("Name", "State", "Interface", "HostID"))


# -- objects ---------------------------------------------------------------------------


def node_object(node: NlbNode, connections: int | None = None) -> PSObject:
    return PSObject(
        {
            "Name": node.name,
            "State": node.state,
            "Interface": node.interface_name,
            "HostID": node.host_id,
            "HostPriority": node.host_priority,
            "InitialHostState": node.initial_host_state,
            "AdminState": node.admin_state,
            "DrainUntil": node.drain_until,
            "FromArray": node.from_array,
            "Health": node.health,
            "Connections": connections,
            "Cluster": node.cluster,
            "ClusterIPAddress": node.cluster_ip,
            "Fqdn": node.fqdn,
            "IPAddress": node.ip_address,
        },
        type_name=NODE_TYPE,
        base=node,
        display=node.name,
    )


# -- nodes --------------------------------------------------------------------------------


@register
class AddNlbClusterNode(Cmdlet):
    name = "Add-NlbClusterNode"
    parameters = (
        host_parameter(),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
        Parameter(
            "NewNodeName",
            mandatory=True,
            aliases=("NewNodeHost", "NNN"),
            help="The server to add; it needs the NLB feature.",
        ),
        Parameter(
            "NewNodeInterface",
            aliases=("NNI",),
            help="Its network adapter (default: the cluster's).",
        ),
        Parameter("Force", kind="switch", help="Accepted, as NLB's."),
    )
    synopsis = "Adds a node to an NLB cluster."
    description = "Adds a server with the NLB feature; it gets the lowest free HostID and priority."
    examples = (
        Example(
            "Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet",
            "Adds CAS02 to CAS01's cluster.",
        ),
        Example("Get-NlbCluster CAS01 | Add-NlbClusterNode -NewNodeName CAS02", "The same."),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        ref = cluster_ref(params)
        if not self.should_process(str(params["NewNodeName"])):
            return
        node = self.directory.nlb.add_node(
            ref, identity_arg(params["NewNodeName"], Server), params.get("NewNodeInterface")
        )
        yield node_object(node)


@register
class GetNlbClusterNode(Cmdlet):
    name = "Get-NlbClusterNode"
    parameters = (
        host_parameter(),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
        Parameter("NodeName", aliases=("Name",), help="Only this node (its server)."),
    )
    synopsis = "Gets the nodes of NLB clusters."
    description = (
        "Shows each node's state: Converged, Converged(default) for the started node with "
        "the highest priority, Draining, Stopped or Suspended; while the cluster's balancer "
        "runs (casarray balancer run), also Unhealthy with the failing probe, or "
        "Converging during a slow start, and the node's open connections. With NLB on "
        "the hosts (-DataPlane Hosts) each host's driver reports its own state: "
        "Converged, Converging (with the members it hears), Draining, Stopped, Suspended."
    )
    examples = (
        Example("Get-NlbClusterNode", "Lists every node of every cluster."),
        Example("Get-NlbCluster CAS01 | Get-NlbClusterNode", "Lists CAS01's cluster's nodes."),
        Example("Get-NlbClusterNode -NodeName CAS02", "Shows CAS02's node."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        has_cluster = params.get("InputObject") is not None or params.get("HostName")
        cluster = cluster_ref(params) if has_cluster else None
        node = params.get("NodeName")
        statuses: dict[str, Any] = {}
        for record in self.directory.nlb.nodes(cluster, node):
            # NLB on the hosts: the host's own word (Converged, Converging, ...)
            own = read_host_status(record.cluster, record.name)
            if own is not None:
                yield node_object(_as_reported(record, own), None)
                continue
            # the running balancer's word on health (Unhealthy, Converging) and load
            if record.cluster not in statuses:
                statuses[record.cluster] = read_status(record.cluster)
            live = live_node(statuses[record.cluster], record.name)
            connections = None
            if live is not None:
                connections = live.get("connections")
                if live.get("state") in ("Unhealthy", "Converging"):
                    detail = live.get("detail")
                    health = f"{live['state']} ({detail})" if detail else str(live["state"])
                    record = dataclasses.replace(record, health=health)
            yield node_object(record, connections)


def _as_reported(record: NlbNode, own: Mapping[str, Any]) -> NlbNode:
    """The node as its host's NLB driver reports it: the state it is in (Converged,
    Converging, Draining, Stopped, Suspended), and for a started host that hears
    fewer members than the directory has, which it hears."""
    state = str(own.get("state") or record.state)
    heard = sorted(str(m.get("name")) for m in own.get("members", ()) if m.get("name"))
    detail = f"{state} (hears {', '.join(heard)})" if state == "Converging" and heard else state
    return dataclasses.replace(record, health=detail)


@register
class RemoveNlbClusterNode(Cmdlet):
    name = "Remove-NlbClusterNode"
    parameters = (
        host_parameter(NODE_HELP),
        interface_parameter(),
        input_parameter("A node from Get-NlbClusterNode."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
    )
    synopsis = "Removes a node from its NLB cluster."
    description = "Removes the node; the cluster's last node can't go (Remove-NlbCluster)."
    examples = (Example("Remove-NlbClusterNode CAS02 -Force", "Takes CAS02 out of its cluster."),)
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        node = self.directory.nlb.node(node_ref(params))
        if not forced(self, params, node.name):
            return ()
        self.directory.nlb.remove_node(node.name)
        return ()


@register
class SetNlbClusterNode(Cmdlet):
    name = "Set-NlbClusterNode"
    parameters = (
        host_parameter(NODE_HELP),
        interface_parameter(),
        input_parameter("A node from Get-NlbClusterNode."),
        Parameter(
            "HostPriority",
            kind="int",
            aliases=("Priority", "HP"),
            help="1..32, unique in the cluster; 1 is the highest (the default host).",
        ),
        Parameter(
            "InitialHostState",
            kind="enum",
            choices=HOST_STATES,
            aliases=("IHS",),
            help="The state the node starts in: Started, Stopped or Suspended.",
        ),
    )
    synopsis = "Changes a node's host priority or initial state."
    description = "Sets HostPriority (unique 1..32) and InitialHostState of a node."
    examples = (
        Example("Set-NlbClusterNode CAS02 -HostPriority 5", "Gives CAS02 priority 5."),
        Example(
            "Get-NlbClusterNode -NodeName CAS02 | Set-NlbClusterNode -InitialHostState Stopped",
            "Makes CAS02 start stopped.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        node = node_ref(params)
        if not self.should_process(str(node)):
            return
        yield node_object(
            self.directory.nlb.set_node(
                node,
                host_priority=params.get("HostPriority"),
                initial_host_state=params.get("InitialHostState"),
            )
        )


class _NodeStateCmdlet(Cmdlet):
    parameters: ClassVar[tuple[Parameter, ...]] = (
        host_parameter(NODE_HELP),
        interface_parameter(),
        input_parameter("A node from Get-NlbClusterNode."),
    )
    supports_should_process = True

    def change(self, node: Any, params: Mapping[str, Any]) -> NlbNode:
        raise NotImplementedError

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        node = node_ref(params)
        if not self.should_process(str(node)):
            return
        yield node_object(self.change(node, params))


@register
class StartNlbClusterNode(_NodeStateCmdlet):
    name = "Start-NlbClusterNode"
    synopsis = "Starts a node: it takes new connections again."
    description = "Starts a stopped or draining node (a suspended one must be resumed first)."
    examples = (Example("Start-NlbClusterNode CAS02", "Starts CAS02."),)

    def change(self, node: Any, params: Mapping[str, Any]) -> NlbNode:
        return self.directory.nlb.start_node(node)


@register
class StopNlbClusterNode(_NodeStateCmdlet):
    name = "Stop-NlbClusterNode"
    parameters = (
        *_NodeStateCmdlet.parameters,
        Parameter(
            "Drain",
            kind="switch",
            aliases=("D",),
            help="Drainstop: no new connections; existing ones finish.",
        ),
        Parameter(
            "Timeout",
            kind="int",
            aliases=("T",),
            help="With -Drain: seconds after which remaining connections are cut.",
        ),
    )
    synopsis = "Stops a node at once, or drains it (-Drain)."
    description = (
        "Without -Drain the node stops at once and its connections are cut. With -Drain "
        "it takes no new connections while existing ones finish, until -Timeout seconds "
        "pass (then it is Stopped)."
    )
    examples = (
        Example(
            "Get-NlbClusterNode -NodeName CAS02 | Stop-NlbClusterNode -Drain -Timeout 300",
            "Drains CAS02 for at most five minutes.",
        ),
        Example("Stop-NlbClusterNode CAS02", "Stops CAS02 at once."),
    )

    def change(self, node: Any, params: Mapping[str, Any]) -> NlbNode:
        return self.directory.nlb.stop_node(
            node, drain=bool(params.get("Drain")), timeout=params.get("Timeout")
        )


@register
class SuspendNlbClusterNode(_NodeStateCmdlet):
    name = "Suspend-NlbClusterNode"
    synopsis = "Suspends a node: it stops and stays stopped until resumed."
    description = "Suspends the node; Start- is refused until Resume-NlbClusterNode."
    examples = (Example("Suspend-NlbClusterNode CAS02", "Suspends CAS02."),)

    def change(self, node: Any, params: Mapping[str, Any]) -> NlbNode:
        return self.directory.nlb.suspend_node(node)


@register
class ResumeNlbClusterNode(_NodeStateCmdlet):
    name = "Resume-NlbClusterNode"
    synopsis = "Resumes a suspended node (it is then Stopped; start it next)."
    description = "Ends a suspension; the node is Stopped until Start-NlbClusterNode."
    examples = (
        Example("Resume-NlbClusterNode CAS02; Start-NlbClusterNode CAS02", "Brings CAS02 back."),
    )

    def change(self, node: Any, params: Mapping[str, Any]) -> NlbNode:
        return self.directory.nlb.resume_node(node)
