"""What the NLB cmdlets share: the -HostName, -InterfaceName and -InputObject
parameters, and how a cmdlet finds the cluster or the node it is about (a piped
object, else -HostName); -Force."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from casarray.directory.nlb.objects import NlbCluster, NlbNode, NlbPortRule
from casarray.directory.objects import Server
from casarray.shell.cmdlet import Cmdlet, Parameter
from casarray.shell.objects import ObjectRef, identity_arg
from casarray.shell.psobject import PSObject

CLUSTER_HELP = (
    "A host of the cluster (a server's name or FQDN), or the cluster's FQDN or IP address."
)
NODE_HELP = "The node: its server's name or FQDN."


def host_parameter(help_text: str = CLUSTER_HELP, position: int | None = 0) -> Parameter:
    return Parameter("HostName", position=position, aliases=("Host", "HN", "H"), help=help_text)


def interface_parameter(help_text: str = "The network adapter; kept and shown.") -> Parameter:
    return Parameter("InterfaceName", aliases=("Interface", "IN", "I"), help=help_text)


def input_parameter(help_text: str) -> Parameter:
    return Parameter("InputObject", kind="object", from_pipeline=True, help=help_text)


def base_of(value: Any) -> Any:
    return value.base if isinstance(value, PSObject) else value


def cluster_ref(params: Mapping[str, Any]) -> ObjectRef | str:
    """The cluster an NLB cmdlet is about: the piped object's (a cluster, node or rule)
    by GUID, else -HostName."""
    value = base_of(params.get("InputObject"))
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


def node_ref(params: Mapping[str, Any], name: str = "HostName") -> Any:
    value = base_of(params.get("InputObject"))
    if isinstance(value, NlbNode):
        return value.name
    if value is not None:
        return identity_arg(params["InputObject"], Server)
    if params.get(name) is None:
        raise ValueError(f"Name the node: -{name} <server>, or pipe it in (Get-NlbClusterNode).")
    return params[name]


def forced(cmdlet: Cmdlet, params: Mapping[str, Any], target: str) -> bool:
    """-Force skips the confirmation (not -WhatIf)."""
    common = cmdlet.invocation.common if cmdlet.invocation is not None else {}
    if params.get("Force") and not common.get("WhatIf"):
        return True
    return cmdlet.should_process(target)
