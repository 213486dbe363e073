"""NLB clusters (New-, Get-, Set-, Remove-NlbCluster) and their export as an HAProxy
configuration (Export-NlbClusterConfig)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.nlb.objects import NlbCluster
from casarray.directory.nlb.values import DATA_PLANES, OPERATION_MODES
from casarray.directory.objects import ClientAccessArray, Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.nlb.common import (
    cluster_ref,
    forced,
    host_parameter,
    input_parameter,
    interface_parameter,
)
from casarray.shell.objects import ObjectRef, identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

CLUSTER_TYPE = "Microsoft.NetworkLoadBalancingClusters.PowerShell.Cluster"

register_view(CLUSTER_TYPE, ("Name", "IPAddress", "SubnetMask", "Mode"))


# -- objects ---------------------------------------------------------------------------


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
            "HeartbeatPeriod": cluster.heartbeat_period,
            "HeartbeatTolerance": cluster.heartbeat_tolerance,
            "Guid": cluster.guid,
            "WhenCreated": cluster.when_created,
            "WhenChanged": cluster.when_changed,
        },
        type_name=CLUSTER_TYPE,
        base=cluster,
        display=cluster.name,
    )


# -- clusters ---------------------------------------------------------------------------


@register
class NewNlbCluster(Cmdlet):
    name = "New-NlbCluster"
    parameters = (
        host_parameter("The host the cluster starts on (its first node).", position=0),
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
    parameters = (host_parameter(), interface_parameter())
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
        host_parameter(),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
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
        Parameter(
            "HeartbeatPeriod",
            kind="int",
            aliases=("AliveMsgPeriod",),
            help="Milliseconds between a host's heartbeats (100 to 10000; NLB's 1000).",
        ),
        Parameter(
            "HeartbeatTolerance",
            kind="int",
            aliases=("AliveMsgTolerance",),
            help="Heartbeats a host may miss in a row before the others converge (5 to 100).",
        ),
    )
    synopsis = "Changes an NLB cluster's name, mode, data plane, array or heartbeats."
    description = (
        "-FollowArray makes the node list follow the client access array (the one named "
        "by -ClientAccessArray, the one already linked, or the one whose FQDN is the "
        "cluster's name); -FollowArray:$false keeps the nodes it has."
    )
    examples = (
        Example("Set-NlbCluster CAS01 -FollowArray", "Makes the array's members the nodes."),
        Example("Get-NlbCluster | Set-NlbCluster -DataPlane Proxy", "Uses the asyncio proxy."),
        Example(
            "Set-NlbCluster bj-cas.lab.net -DataPlane Hosts -HeartbeatPeriod 200",
            "NLB on the member hosts themselves, converging within a second of a loss.",
        ),
    )
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        ref = cluster_ref(params)
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
            heartbeat_period=params.get("HeartbeatPeriod"),
            heartbeat_tolerance=params.get("HeartbeatTolerance"),
            array=identity_arg(array, ClientAccessArray) if array is not None else None,
        )
        yield cluster_object(updated)


@register
class RemoveNlbCluster(Cmdlet):
    name = "Remove-NlbCluster"
    parameters = (
        host_parameter(),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
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
        cluster = self.directory.nlb.cluster(cluster_ref(params))
        if not forced(self, params, cluster.name):
            return ()
        self.directory.nlb.remove_cluster(ObjectRef(cluster.guid, cluster.name))
        return ()


# -- export -------------------------------------------------------------------------


@register
class ExportNlbClusterConfig(Cmdlet):
    name = "Export-NlbClusterConfig"
    supports_should_process = True
    parameters = (
        host_parameter(),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
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
        from casarray.directory.errors import InvalidValueError

        fmt = params.get("Format") or "HAProxy"
        if fmt.lower() != "haproxy":
            raise InvalidValueError("Format", fmt, "isn't supported; use -Format HAProxy.")
        has_cluster = params.get("InputObject") is not None or params.get("HostName")
        clusters = self.directory.nlb.clusters(cluster_ref(params) if has_cluster else None)
        if len(clusters) != 1:
            raise InvalidValueError(
                "HostName",
                params.get("HostName") or "",
                f"names {len(clusters)} clusters; name one (or pipe it from Get-NlbCluster).",
            )
        path = Path(params["Path"]).expanduser()
        socket_path = params.get("SocketPath") or str(path.with_name("haproxy.sock"))
        from casarray.balancer.directory_view import cluster_view

        view = cluster_view(
            self.directory, clusters[0].guid, backend_offset=params.get("BackendOffset") or 0
        )
        text = haproxy.render_config(view, socket_path=socket_path)
        if not self.should_process(str(path), "Export-NlbClusterConfig"):
            return
        path.write_text(text)
        yield PSObject({"Path": str(path.resolve()), "Cluster": view.name, "Format": "HAProxy"})
