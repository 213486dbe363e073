"""Network Load Balancing cmdlets, with the parameters and defaults of Windows'
ServerManager (Install-WindowsFeature) and NetworkLoadBalancingClusters modules:

    Install-WindowsFeature NLB -ComputerName CAS01
    New-NlbCluster -HostName CAS01 -InterfaceName Ethernet -ClusterName bj-cas.lab.net `
        -ClusterPrimaryIP 127.77.1.10
    Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet
    Get-NlbClusterNode -NodeName CAS02 | Stop-NlbClusterNode -Drain -Timeout 300

A cluster is named by -HostName (one of its hosts, as NLB does; its FQDN or IP works
too) or piped in (-InputObject). A node is named by its server (-HostName of the node
cmdlets) or piped in. The rules live in `Directory.nlb`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from casarray.balancer.runner import live_node, read_status
from casarray.directory.nlb.objects import (
    FeatureResult,
    NlbCluster,
    NlbNode,
    NlbPortRule,
    WindowsFeature,
)
from casarray.directory.nlb.values import (
    AFFINITIES,
    DATA_PLANES,
    FEATURES,
    HOST_STATES,
    MODES,
    OPERATION_MODES,
    PROTOCOLS,
)
from casarray.directory.objects import ClientAccessArray, Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import ObjectRef, identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

FEATURE_RESULT_TYPE = "Microsoft.Windows.ServerManager.Commands.FeatureOperationResult"
FEATURE_TYPE = "Microsoft.Windows.ServerManager.Commands.Feature"
CLUSTER_TYPE = "Microsoft.NetworkLoadBalancingClusters.PowerShell.Cluster"
NODE_TYPE = "Microsoft.NetworkLoadBalancingClusters.PowerShell.Node"
RULE_TYPE = "Microsoft.NetworkLoadBalancingClusters.PowerShell.PortRule"

register_view(FEATURE_RESULT_TYPE, ("Success", "RestartNeeded", "ExitCode", "FeatureResult"))
register_view(FEATURE_TYPE, ("DisplayName", "Name", "InstallState"))
register_view(CLUSTER_TYPE, ("Name", "IPAddress", "SubnetMask", "Mode"))
register_view(NODE_TYPE, ("Name", "State", "Interface", "HostID"))
register_view(RULE_TYPE, ("Cluster", "IP", "Protocol", "StartPort", "EndPort", "Mode", "Affinity"))

CLUSTER_HELP = (
    "A host of the cluster (a server's name or FQDN), or the cluster's FQDN or IP address."
)
NODE_HELP = "The node: its server's name or FQDN."


# -- objects ---------------------------------------------------------------------------


def feature_result_object(result: FeatureResult) -> PSObject:
    return PSObject(
        {
            "Success": result.success,
            "RestartNeeded": "No",
            "ExitCode": result.exit_code,
            "FeatureResult": [f.display_name for f in result.changed],
            "ComputerName": result.server,
        },
        type_name=FEATURE_RESULT_TYPE,
        base=result,
        display=result.exit_code,
    )


def feature_object(feature: WindowsFeature) -> PSObject:
    return PSObject(
        {
            "DisplayName": feature.display_name,
            "Name": feature.name,
            "InstallState": "Installed" if feature.installed else "Available",
            "Installed": feature.installed,
            "FeatureType": "Feature",
            "ComputerName": feature.server,
        },
        type_name=FEATURE_TYPE,
        base=feature,
        display=feature.name,
    )


def cluster_object(cluster: NlbCluster) -> PSObject:
    return PSObject(
        {
            "Name": cluster.name,
            "IPAddress": cluster.ip_address,
            "SubnetMask": cluster.subnet_mask,
            "Mode": cluster.operation_mode.upper(),
            "OperationMode": cluster.operation_mode,
            "DataPlane": cluster.data_plane,
            "ClientAccessArray": cluster.client_access_array,
            "FollowArray": cluster.follow_array,
            "InterfaceName": cluster.interface_name,
            "Nodes": list(cluster.nodes),
            "Guid": cluster.guid,
            "WhenCreated": cluster.when_created,
            "WhenChanged": cluster.when_changed,
        },
        type_name=CLUSTER_TYPE,
        base=cluster,
        display=cluster.name,
    )


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


def rule_object(rule: NlbPortRule) -> PSObject:
    return PSObject(
        {
            "Cluster": rule.cluster_ip,
            "IP": rule.ip_text,
            "Protocol": rule.protocol,
            "StartPort": rule.start_port,
            "EndPort": rule.end_port,
            "Mode": rule.mode,
            "Affinity": rule.affinity,
            "Timeout": rule.timeout,
            "ProxyProtocol": rule.proxy_protocol,
            "NodeWeights": [f"{n}={w}" for n, w in rule.weights],
            "ClusterName": rule.cluster,
        },
        type_name=RULE_TYPE,
        base=rule,
        display=f"{rule.ip_text}:{rule.start_port}-{rule.end_port}",
    )


# -- parameters and helpers ------------------------------------------------------------


def _host(help_text: str = CLUSTER_HELP, position: int | None = 0) -> Parameter:
    return Parameter("HostName", position=position, aliases=("Host", "HN", "H"), help=help_text)


def _interface(help_text: str = "The network adapter; kept and shown.") -> Parameter:
    return Parameter("InterfaceName", aliases=("Interface", "IN", "I"), help=help_text)


def _input(help_text: str) -> Parameter:
    return Parameter("InputObject", kind="object", from_pipeline=True, help=help_text)


def _base(value: Any) -> Any:
    return value.base if isinstance(value, PSObject) else value


def _cluster_ref(params: Mapping[str, Any]) -> Any:
    """The cluster an NLB cmdlet is about: the piped object's (a cluster, node or rule)
    by GUID, else -HostName."""
    value = _base(params.get("InputObject"))
    if isinstance(value, NlbCluster):
        return ObjectRef(value.guid, value.name)
    if isinstance(value, (NlbNode, NlbPortRule)):
        return ObjectRef(value.cluster_guid, value.cluster)
    if value is not None:
        return str(params["InputObject"])
    host = params.get("HostName")
    if host is None:
        raise ValueError(
            "Name the cluster: -HostName <one of its hosts, or its FQDN or IP>, or pipe "
            "it in (Get-NlbCluster ... | ...)."
        )
    return host


def _node_ref(params: Mapping[str, Any], name: str = "HostName") -> Any:
    value = _base(params.get("InputObject"))
    if isinstance(value, NlbNode):
        return value.name
    if value is not None:
        return identity_arg(params["InputObject"], Server)
    if params.get(name) is None:
        raise ValueError(f"Name the node: -{name} <server>, or pipe it in (Get-NlbClusterNode).")
    return params[name]


def _rule_key(params: Mapping[str, Any]) -> tuple[Any, int | None, Any]:
    """(cluster, port, ip) of the rule a port-rule cmdlet is about."""
    value = _base(params.get("InputObject"))
    if isinstance(value, NlbPortRule):
        return ObjectRef(value.cluster_guid, value.cluster), value.start_port, value.ip_text
    return _cluster_ref(params), params.get("Port"), params.get("IP")


def _forced(cmdlet: Cmdlet, params: Mapping[str, Any], target: str) -> bool:
    """-Force skips the confirmation (not -WhatIf)."""
    common = cmdlet.invocation.common if cmdlet.invocation is not None else {}
    if params.get("Force") and not common.get("WhatIf"):
        return True
    return cmdlet.should_process(target)


# -- Windows features -----------------------------------------------------------------


class _FeatureCmdlet(Cmdlet):
    parameters = (
        Parameter(
            "Name",
            kind="strings",
            mandatory=True,
            position=0,
            from_pipeline=True,
            help=f"The features: {', '.join(FEATURES)}.",
        ),
        Parameter(
            "ComputerName",
            kind="identity",
            mandatory=True,
            aliases=("Cn",),
            identity_of="server",
            help="The server to change.",
        ),
        Parameter("IncludeManagementTools", kind="switch", help="Also the tools (RSAT-NLB)."),
        Parameter("Restart", kind="switch", help="Accepted; no restart is needed."),
    )
    supports_should_process = True

    def _names(self, params: Mapping[str, Any]) -> list[str]:
        names = [str(n) for n in params["Name"]]
        if params.get("IncludeManagementTools") and any(n.lower() == "nlb" for n in names):
            names.append("RSAT-NLB")
        return names


@register
class InstallWindowsFeature(_FeatureCmdlet):
    name = "Install-WindowsFeature"
    aliases = ("Add-WindowsFeature",)
    synopsis = "Installs Windows features (NLB) on a server."
    description = (
        "Records the feature as installed on the server. New-NlbCluster and "
        "Add-NlbClusterNode need NLB on their hosts. Installing a feature that is "
        "there already changes nothing (Exit Code NoChangeNeeded)."
    )
    examples = (
        Example(
            "Install-WindowsFeature NLB -ComputerName CAS01",
            "Installs Network Load Balancing on CAS01.",
        ),
        Example(
            "Add-WindowsFeature -Name NLB -ComputerName CAS02 -IncludeManagementTools",
            "Installs NLB and its management tools on CAS02.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = identity_arg(params["ComputerName"], Server)
        if not self.should_process(str(server)):
            return
        yield feature_result_object(self.directory.nlb.install_feature(server, self._names(params)))


@register
class UninstallWindowsFeature(_FeatureCmdlet):
    name = "Uninstall-WindowsFeature"
    aliases = ("Remove-WindowsFeature",)
    synopsis = "Removes Windows features (NLB) from a server."
    description = "Removes the feature; NLB can't go while the server is a cluster node."
    examples = (
        Example("Uninstall-WindowsFeature NLB -ComputerName CAS03", "Removes NLB from CAS03."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = identity_arg(params["ComputerName"], Server)
        if not self.should_process(str(server)):
            return
        yield feature_result_object(
            self.directory.nlb.uninstall_feature(server, self._names(params))
        )


@register
class GetWindowsFeature(Cmdlet):
    name = "Get-WindowsFeature"
    parameters = (
        Parameter("Name", kind="strings", position=0, help="Only these features."),
        Parameter(
            "ComputerName",
            kind="identity",
            mandatory=True,
            aliases=("Cn",),
            identity_of="server",
            help="The server.",
        ),
    )
    synopsis = "Gets the Windows features of a server and whether they are installed."
    description = f"Shows the features casarray knows ({', '.join(FEATURES)}) on a server."
    examples = (
        Example("Get-WindowsFeature NLB -ComputerName CAS01", "Is NLB installed on CAS01?"),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = identity_arg(params["ComputerName"], Server)
        for feature in self.directory.nlb.features(server, params.get("Name")):
            yield feature_object(feature)


# -- clusters ---------------------------------------------------------------------------


@register
class NewNlbCluster(Cmdlet):
    name = "New-NlbCluster"
    parameters = (
        _host("The host the cluster starts on (its first node).", position=0),
        Parameter(
            "InterfaceName",
            position=1,
            aliases=("Interface", "IN", "I"),
            help="The host's network adapter (kept and shown; default Ethernet).",
        ),
        Parameter(
            "ClusterName",
            aliases=("Name", "CN", "N"),
            help="The cluster's FQDN; clients reach it by this name (the array's FQDN).",
        ),
        Parameter(
            "ClusterPrimaryIP",
            mandatory=True,
            position=2,
            aliases=("PrimaryIP", "IPAddress", "IP"),
            help="The cluster's virtual IPv4 address; no server's address.",
        ),
        Parameter(
            "SubnetMask",
            aliases=("Mask",),
            help="The mask of the cluster IP; default the address class's (255.0.0.0 for 127.x).",
        ),
        Parameter(
            "OperationMode",
            kind="enum",
            choices=OPERATION_MODES,
            aliases=("Mode",),
            help="Unicast (default), Multicast or IgmpMulticast; kept and shown.",
        ),
        Parameter(
            "ClientAccessArray",
            kind="identity",
            identity_of="array",
            help="Make the nodes the array's members, now and later (beyond NLB).",
        ),
        Parameter(
            "DataPlane",
            kind="enum",
            choices=DATA_PLANES,
            help="How casarray's balancer forwards: Kernel (nftables), Proxy (asyncio) or "
            "Auto (default: Kernel when root on Linux, else Proxy).",
        ),
        Parameter("Force", kind="switch", help="Accepted, as NLB's."),
    )
    synopsis = "Creates a Network Load Balancing cluster."
    description = (
        "Creates an NLB cluster on a host that has the NLB feature, with NLB's default "
        "port rule (0-65535, All, Both, Multiple hosts, Single affinity). With "
        "-ClientAccessArray the cluster's nodes are the array's members: every Client "
        "Access server of its site, including servers installed later."
    )
    examples = (
        Example(
            "New-NlbCluster -HostName CAS01 -InterfaceName Ethernet -ClusterName "
            "bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10",
            "Creates the cluster bj-cas.lab.net on CAS01.",
        ),
        Example(
            "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
            '-ClientAccessArray "BJ CAS Array"',
            "Creates a cluster whose nodes follow the BJ array's members.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        array = params.get("ClientAccessArray")
        name = params.get("ClusterName")
        if not name:
            if array is None:
                raise ValueError(
                    "Cannot validate argument on parameter 'ClusterName'. Give the cluster "
                    "its FQDN (the name clients use, e.g. the array's FQDN)."
                )
            name = self.directory.arrays.one(identity_arg(array, ClientAccessArray)).fqdn
        if not self.should_process(name):
            return
        cluster = self.directory.nlb.new_cluster(
            name,
            params["ClusterPrimaryIP"],
            host=identity_arg(params["HostName"], Server) if params.get("HostName") else None,
            interface=params.get("InterfaceName"),
            subnet_mask=params.get("SubnetMask"),
            operation_mode=params.get("OperationMode") or "Unicast",
            array=identity_arg(array, ClientAccessArray) if array is not None else None,
            data_plane=params.get("DataPlane") or "Auto",
        )
        yield cluster_object(cluster)


@register
class GetNlbCluster(Cmdlet):
    name = "Get-NlbCluster"
    parameters = (_host(), _interface())
    synopsis = "Gets NLB clusters."
    description = "Gets the cluster a host belongs to (or named by FQDN or IP), or every one."
    examples = (
        Example("Get-NlbCluster", "Lists every cluster: name, IP, mask, mode."),
        Example("Get-NlbCluster CAS01 | Format-List", "Shows CAS01's cluster in full."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        host = params.get("HostName")
        for cluster in self.directory.nlb.clusters(host):
            yield cluster_object(cluster)


@register
class SetNlbCluster(Cmdlet):
    name = "Set-NlbCluster"
    parameters = (
        _host(),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
        Parameter("ClusterName", aliases=("Name",), help="A new FQDN."),
        Parameter(
            "OperationMode", kind="enum", choices=OPERATION_MODES, help="A new operation mode."
        ),
        Parameter("DataPlane", kind="enum", choices=DATA_PLANES, help="A new data plane."),
        Parameter(
            "ClientAccessArray",
            kind="identity",
            identity_of="array",
            help="Follow this array's members.",
        ),
        Parameter(
            "FollowArray",
            kind="switch",
            help="Make the nodes the array's members ($false: keep today's nodes as they are).",
        ),
    )
    synopsis = "Changes an NLB cluster's name, mode, data plane or array."
    description = (
        "-FollowArray makes the node list follow the client access array (the one named "
        "by -ClientAccessArray, the one already linked, or the one whose FQDN is the "
        "cluster's name); -FollowArray:$false keeps the nodes it has."
    )
    examples = (
        Example("Set-NlbCluster CAS01 -FollowArray", "Makes the array's members the nodes."),
        Example("Get-NlbCluster | Set-NlbCluster -DataPlane Proxy", "Uses the asyncio proxy."),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        ref = _cluster_ref(params)
        cluster = self.directory.nlb.cluster(ref)
        if not self.should_process(cluster.name):
            return
        array = params.get("ClientAccessArray")
        updated = self.directory.nlb.set_cluster(
            ObjectRef(cluster.guid, cluster.name),
            name=params.get("ClusterName"),
            operation_mode=params.get("OperationMode"),
            data_plane=params.get("DataPlane"),
            follow_array=params.get("FollowArray"),
            array=identity_arg(array, ClientAccessArray) if array is not None else None,
        )
        yield cluster_object(updated)


@register
class RemoveNlbCluster(Cmdlet):
    name = "Remove-NlbCluster"
    parameters = (
        _host(),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
    )
    synopsis = "Removes an NLB cluster."
    description = "Removes the cluster with its nodes' places, port rules and weights."
    examples = (
        Example("Remove-NlbCluster CAS01 -Force", "Removes CAS01's cluster without asking."),
        Example("Get-NlbCluster | Remove-NlbCluster -Confirm:$false", "Removes every cluster."),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        cluster = self.directory.nlb.cluster(_cluster_ref(params))
        if not _forced(self, params, cluster.name):
            return ()
        self.directory.nlb.remove_cluster(ObjectRef(cluster.guid, cluster.name))
        return ()


# -- nodes --------------------------------------------------------------------------------


@register
class AddNlbClusterNode(Cmdlet):
    name = "Add-NlbClusterNode"
    parameters = (
        _host(),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
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
        ref = _cluster_ref(params)
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
        _host(),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
        Parameter("NodeName", aliases=("Name",), help="Only this node (its server)."),
    )
    synopsis = "Gets the nodes of NLB clusters."
    description = (
        "Shows each node's state: Converged, Converged(default) for the started node with "
        "the highest priority, Draining, Stopped or Suspended; while the cluster's balancer "
        "runs (casarray balancer run), also Unhealthy with the failing probe, or "
        "Converging during a slow start, and the node's open connections."
    )
    examples = (
        Example("Get-NlbClusterNode", "Lists every node of every cluster."),
        Example("Get-NlbCluster CAS01 | Get-NlbClusterNode", "Lists CAS01's cluster's nodes."),
        Example("Get-NlbClusterNode -NodeName CAS02", "Shows CAS02's node."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        has_cluster = params.get("InputObject") is not None or params.get("HostName")
        cluster = _cluster_ref(params) if has_cluster else None
        node = params.get("NodeName")
        statuses: dict[str, Any] = {}
        for record in self.directory.nlb.nodes(cluster, node):
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


@register
class RemoveNlbClusterNode(Cmdlet):
    name = "Remove-NlbClusterNode"
    parameters = (
        _host(NODE_HELP),
        _interface(),
        _input("A node from Get-NlbClusterNode."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
    )
    synopsis = "Removes a node from its NLB cluster."
    description = "Removes the node; the cluster's last node can't go (Remove-NlbCluster)."
    examples = (Example("Remove-NlbClusterNode CAS02 -Force", "Takes CAS02 out of its cluster."),)
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        node = self.directory.nlb.node(_node_ref(params))
        if not _forced(self, params, node.name):
            return ()
        self.directory.nlb.remove_node(node.name)
        return ()


@register
class SetNlbClusterNode(Cmdlet):
    name = "Set-NlbClusterNode"
    parameters = (
        _host(NODE_HELP),
        _interface(),
        _input("A node from Get-NlbClusterNode."),
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
        node = _node_ref(params)
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
    parameters = (
        _host(NODE_HELP),
        _interface(),
        _input("A node from Get-NlbClusterNode."),
    )
    supports_should_process = True

    def change(self, node: Any, params: Mapping[str, Any]) -> NlbNode:
        raise NotImplementedError

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        node = _node_ref(params)
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


# -- port rules --------------------------------------------------------------------------


@register
class AddNlbClusterPortRule(Cmdlet):
    name = "Add-NlbClusterPortRule"
    parameters = (
        Parameter("StartPort", kind="int", mandatory=True, position=0, aliases=("Start", "SP")),
        Parameter("EndPort", kind="int", mandatory=True, position=1, aliases=("End", "EP")),
        _host(position=None),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
        Parameter("IP", help="The cluster IP the rule is for; default All."),
        Parameter(
            "Protocol", kind="enum", choices=PROTOCOLS, aliases=("Pr",), help="Default Both."
        ),
        Parameter("Mode", kind="enum", choices=MODES, aliases=("M",), help="Default Multiple."),
        Parameter(
            "Affinity", kind="enum", choices=AFFINITIES, aliases=("A",), help="Default Single."
        ),
        Parameter("Timeout", kind="int", aliases=("T",), help="Affinity timeout, minutes (0)."),
        Parameter(
            "ProxyProtocol",
            kind="switch",
            help="casarray's own: open each connection to a node with a PROXY protocol v2 "
            "header naming the client (Proxy data plane; IMAP 143 on the nodes).",
        ),
    )
    synopsis = "Adds a port rule to an NLB cluster."
    description = (
        "Adds a rule for StartPort..EndPort. Rules on the same IP must not overlap, so the "
        "default rule (0-65535) must be narrowed or removed before adding others."
    )
    examples = (
        Example(
            "Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force; Add-NlbClusterPortRule "
            "-HostName CAS01 -StartPort 143 -EndPort 143 -Protocol Tcp",
            "Replaces the default rule by one for IMAP.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        ref = _cluster_ref(params)
        start, end = params["StartPort"], params["EndPort"]
        if not self.should_process(f"{start}-{end}"):
            return
        yield rule_object(
            self.directory.nlb.add_port_rule(
                ref,
                start,
                end,
                ip=params.get("IP"),
                protocol=params.get("Protocol") or "Both",
                mode=params.get("Mode") or "Multiple",
                affinity=params.get("Affinity") or "Single",
                timeout=params.get("Timeout") or 0,
                proxy_protocol=bool(params.get("ProxyProtocol")),
            )
        )


@register
class GetNlbClusterPortRule(Cmdlet):
    name = "Get-NlbClusterPortRule"
    parameters = (
        _host(),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
        Parameter("Port", kind="int", aliases=("P",), help="Only the rule covering this port."),
        Parameter("IP", help="Only rules on this IP (or All)."),
    )
    synopsis = "Gets the port rules of NLB clusters."
    description = "Shows each rule: cluster IP, IP, protocol, ports, mode, affinity."
    examples = (
        Example("Get-NlbClusterPortRule -HostName CAS01", "Lists CAS01's cluster's rules."),
        Example("Get-NlbClusterPortRule -Port 993 | fl", "Shows the rule covering 993."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        has_cluster = params.get("InputObject") is not None or params.get("HostName")
        cluster = _cluster_ref(params) if has_cluster else None
        for rule in self.directory.nlb.port_rules(
            cluster, port_number=params.get("Port"), ip=params.get("IP")
        ):
            yield rule_object(rule)


def _rule_parameters(input_help: str) -> tuple[Parameter, ...]:
    return (
        Parameter("Port", kind="int", position=0, aliases=("P",), help="A port the rule covers."),
        _host(position=None),
        _interface(),
        _input(input_help),
        Parameter("IP", help="The rule's IP (or All), when several rules cover the port."),
    )


@register
class SetNlbClusterPortRule(Cmdlet):
    name = "Set-NlbClusterPortRule"
    parameters = (
        *_rule_parameters("A rule from Get-NlbClusterPortRule."),
        Parameter("NewIP", help="A new IP (or All)."),
        Parameter("NewStartPort", kind="int", help="A new start port."),
        Parameter("NewEndPort", kind="int", help="A new end port."),
        Parameter("NewProtocol", kind="enum", choices=PROTOCOLS, help="Tcp, Udp or Both."),
        Parameter("NewMode", kind="enum", choices=MODES, help="Multiple, Single or Disabled."),
        Parameter("NewAffinity", kind="enum", choices=AFFINITIES, help="None, Single, Network."),
        Parameter("NewTimeout", kind="int", help="Affinity timeout, minutes."),
        Parameter(
            "ProxyProtocol",
            kind="switch",
            help="Send a PROXY v2 header to the nodes ($false: don't).",
        ),
    )
    synopsis = "Changes an NLB port rule."
    description = "Changes the rule covering -Port (or the piped rule); ranges must not overlap."
    examples = (
        Example(
            "Set-NlbClusterPortRule -HostName CAS01 -Port 443 -NewAffinity None",
            "Spreads HTTPS per connection.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        cluster, port_number, ip = _rule_key(params)
        if not self.should_process(f"port {port_number}"):
            return
        yield rule_object(
            self.directory.nlb.set_port_rule(
                cluster,
                port_number,
                ip=ip,
                new_start_port=params.get("NewStartPort"),
                new_end_port=params.get("NewEndPort"),
                new_ip=params.get("NewIP"),
                new_protocol=params.get("NewProtocol"),
                new_mode=params.get("NewMode"),
                new_affinity=params.get("NewAffinity"),
                new_timeout=params.get("NewTimeout"),
                proxy_protocol=params.get("ProxyProtocol"),
            )
        )


@register
class RemoveNlbClusterPortRule(Cmdlet):
    name = "Remove-NlbClusterPortRule"
    parameters = (
        *_rule_parameters("A rule from Get-NlbClusterPortRule."),
        Parameter("Force", kind="switch", help="Don't ask for confirmation."),
    )
    synopsis = "Removes an NLB port rule."
    description = "Removes the rule covering -Port (or the piped rule)."
    examples = (
        Example("Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force", "Drops the default."),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        cluster, port_number, ip = _rule_key(params)
        if not _forced(self, params, f"port {port_number}"):
            return ()
        self.directory.nlb.remove_port_rule(cluster, port_number, ip=ip)
        return ()


@register
class SetNlbClusterPortRuleNodeWeight(Cmdlet):
    name = "Set-NlbClusterPortRuleNodeWeight"
    parameters = (
        *_rule_parameters("A rule from Get-NlbClusterPortRule."),
        Parameter("NodeName", aliases=("Node",), help="The node (default: -HostName)."),
        Parameter("LoadWeight", kind="int", aliases=("L",), help="0..100."),
        Parameter("Equal", kind="switch", aliases=("E",), help="Equal load (no own weight)."),
    )
    synopsis = "Sets a node's load weight on a port rule."
    description = (
        "Gives the node a LoadWeight (0..100) on the rule covering -Port, or -Equal. "
        "-HostName names the node (and so its cluster), as NLB's cmdlet does."
    )
    examples = (
        Example(
            "Set-NlbClusterPortRuleNodeWeight -HostName CAS02 -Port 143 -LoadWeight 30",
            "CAS02 takes less IMAP load.",
        ),
        Example(
            "Set-NlbClusterPortRuleNodeWeight -HostName CAS02 -Port 143 -Equal",
            "CAS02 takes an equal share again.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        weight, equal = params.get("LoadWeight"), bool(params.get("Equal"))
        if weight is not None and equal:
            raise ValueError("Give either -LoadWeight <0..100> or -Equal, not both.")
        if weight is None and not equal:
            raise ValueError("Give -LoadWeight <0..100> or -Equal.")
        cluster, port_number, ip = _rule_key(params)
        node = params.get("NodeName") or params.get("HostName")
        if node is None:
            raise ValueError("Name the node: -HostName <server> (or -NodeName).")
        if not self.should_process(f"{node} port {port_number}"):
            return
        yield rule_object(
            self.directory.nlb.set_node_weight(
                cluster, node, None if equal else weight, port_number=port_number, ip=ip
            )
        )


@register
class ExportNlbClusterConfig(Cmdlet):
    name = "Export-NlbClusterConfig"
    supports_should_process = True
    parameters = (
        _host(),
        _interface(),
        _input("A cluster from Get-NlbCluster."),
        Parameter("Format", help="HAProxy: an haproxy.cfg for the cluster (the only format)."),
        Parameter("Path", mandatory=True, help="The file to write."),
        Parameter(
            "SocketPath",
            help="HAProxy's runtime API socket (default: haproxy.sock beside the file).",
        ),
        Parameter("BackendOffset", kind="int", help="Added to each port on the nodes."),
    )
    synopsis = "Exports an NLB cluster as an HAProxy configuration."
    description = (
        "Renders the cluster for HAProxy, the engine for clusters spread over several "
        "hosts: a frontend per port rule on the cluster IP, balance by source for "
        "affinity, the same health checks as casarray's balancer (inter 500, fall 2, "
        "rise 2, slow start), stick tables for affinity timeouts, and a runtime API "
        "socket through which `casarray balancer run --engine HAProxy` keeps it in step."
    )
    examples = (
        Example(
            "Export-NlbClusterConfig -HostName CAS01 -Format HAProxy -Path haproxy.cfg",
            "Writes haproxy.cfg for CAS01's cluster; check it with haproxy -c -f haproxy.cfg.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        from pathlib import Path

        from casarray.balancer import haproxy
        from casarray.balancer.directory_view import cluster_view
        from casarray.directory.errors import InvalidValueError

        fmt = params.get("Format") or "HAProxy"
        if fmt.lower() != "haproxy":
            raise InvalidValueError("Format", fmt, "isn't supported; use -Format HAProxy.")
        has_cluster = params.get("InputObject") is not None or params.get("HostName")
        clusters = self.directory.nlb.clusters(_cluster_ref(params) if has_cluster else None)
        if len(clusters) != 1:
            raise InvalidValueError(
                "HostName",
                params.get("HostName") or "",
                f"names {len(clusters)} clusters; name one (or pipe it from Get-NlbCluster).",
            )
        path = Path(params["Path"]).expanduser()
        socket_path = params.get("SocketPath") or str(path.with_name("haproxy.sock"))
        view = cluster_view(
            self.directory, clusters[0].guid, backend_offset=params.get("BackendOffset") or 0
        )
        text = haproxy.render_config(view, socket_path=socket_path)
        if not self.should_process(str(path), "Export-NlbClusterConfig"):
            return
        path.write_text(text)
        yield PSObject({"Path": str(path.resolve()), "Cluster": view.name, "Format": "HAProxy"})
