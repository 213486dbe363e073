"""NLB port rules: which ports of the cluster IP are balanced, how (mode, affinity,
protocol), and each node's load weight on a rule."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.nlb.objects import NlbPortRule
from casarray.directory.nlb.values import AFFINITIES, MODES, PROTOCOLS
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.nlb.common import (
    base_of,
    cluster_ref,
    forced,
    host_parameter,
    input_parameter,
    interface_parameter,
)
from casarray.shell.objects import ObjectRef
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

RULE_TYPE = "Microsoft.NetworkLoadBalancingClusters.PowerShell.PortRule"

register_view(RULE_TYPE, ("Cluster", "IP", "Protocol", "StartPort", "EndPort", "Mode", "Affinity"))


# -- objects ---------------------------------------------------------------------------


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


def _rule_key(params: Mapping[str, Any]) -> tuple[ObjectRef | str, int | None, str | None]:
    """(cluster, port, ip) of the rule a port-rule cmdlet is about."""
    value = base_of(params.get("InputObject"))
    if isinstance(value, NlbPortRule):
        return ObjectRef(value.cluster_guid, value.cluster), value.start_port, value.ip_text
    return cluster_ref(params), params.get("Port"), params.get("IP")


# -- port rules --------------------------------------------------------------------------


@register
class AddNlbClusterPortRule(Cmdlet):
    name = "Add-NlbClusterPortRule"
    parameters = (
        Parameter("StartPort", kind="int", mandatory=True, position=0, aliases=("Start", "SP")),
        Parameter("EndPort", kind="int", mandatory=True, position=1, aliases=("End", "EP")),
        host_parameter(position=None),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
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
        ref = cluster_ref(params)
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
        host_parameter(),
        interface_parameter(),
        input_parameter("A cluster from Get-NlbCluster."),
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
        cluster = cluster_ref(params) if has_cluster else None
        for rule in self.directory.nlb.port_rules(
            cluster, port_number=params.get("Port"), ip=params.get("IP")
        ):
            yield rule_object(rule)


def _rule_parameters(input_help: str) -> tuple[Parameter, ...]:
    return (
        Parameter("Port", kind="int", position=0, aliases=("P",), help="A port the rule covers."),
        host_parameter(position=None),
        interface_parameter(),
        input_parameter(input_help),
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
        if not forced(self, params, f"port {port_number}"):
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
