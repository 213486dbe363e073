"""`Directory.nlb`: one entry point for the NLB cmdlets, as Windows has one
NetworkLoadBalancingClusters module, with the work done by one small service per
seam: Windows features, clusters, nodes, port rules, load weights, and the whole
cluster as a balancer follows it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from casarray.directory.nlb.clusters import ClusterService
from casarray.directory.nlb.features import FeatureService
from casarray.directory.nlb.nodes import NodeService
from casarray.directory.nlb.port_rules import PortRuleService
from casarray.directory.nlb.view import ViewService
from casarray.directory.nlb.weights import LoadWeightService

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class NlbService:
    """The NLB cmdlets' operations under their cmdlet's name (`new_cluster` is
    New-NlbCluster, `nodes` Get-NlbClusterNode, ...). Each is the bound method of the
    service that owns it, so its signature and docstring live in one place."""

    def __init__(self, directory: Directory) -> None:
        features = FeatureService(directory)
        clusters = ClusterService(directory)
        nodes = NodeService(directory)
        rules = PortRuleService(directory)
        weights = LoadWeightService(directory)
        view = ViewService(directory)
        # Install-, Uninstall-, Get-WindowsFeature
        self.install_feature = features.install
        self.uninstall_feature = features.uninstall
        self.features = features.get
        # New-, Get-, Set-, Remove-NlbCluster
        self.new_cluster = clusters.new
        self.clusters = clusters.get
        self.cluster = clusters.one
        self.set_cluster = clusters.set
        self.remove_cluster = clusters.remove
        # Add-, Get-, Set-, Remove-, Start-, Stop-, Suspend-, Resume-NlbClusterNode
        self.add_node = nodes.add
        self.nodes = nodes.get
        self.node = nodes.one
        self.set_node = nodes.set
        self.remove_node = nodes.remove
        self.start_node = nodes.start
        self.stop_node = nodes.stop
        self.suspend_node = nodes.suspend
        self.resume_node = nodes.resume
        # Add-, Get-, Set-, Remove-NlbClusterPortRule; Set-NlbClusterPortRuleNodeWeight
        self.add_port_rule = rules.add
        self.port_rules = rules.get
        self.set_port_rule = rules.set
        self.remove_port_rule = rules.remove
        self.set_node_weight = weights.set
        # the whole cluster: what a balancer follows, and whom a server trusts
        self.snapshot = view.snapshot
        self.proxy_sources = view.proxy_sources
