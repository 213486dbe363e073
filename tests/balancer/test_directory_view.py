"""The balancer's `ClusterView` of a cluster in the directory (`directory_view`): the
directory's snapshot adapted into the balancer's values, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from casarray.balancer import model
from casarray.balancer.directory_view import cluster_view
from casarray.directory import Directory, NotFoundError

CLUSTER, VIP = "bj-cas.lab.net", "127.77.1.10"


@pytest.fixture
def cluster(bj: Directory) -> Directory:
    """bj-cas.lab.net on CAS01 and CAS02, with rules for 143, 443 and 993."""
    for server in ("CAS01", "CAS02"):
        bj.nlb.install_feature(server, ["NLB"])
    bj.nlb.new_cluster(CLUSTER, VIP, host="CAS01", interface="Ethernet")
    bj.nlb.add_node(CLUSTER, "CAS02", "Ethernet")
    bj.nlb.remove_port_rule(CLUSTER, 0)
    for port in (143, 993, 443):
        bj.nlb.add_port_rule(CLUSTER, port, port, protocol="Tcp")
    return bj


def test_cluster_view(cluster: Directory) -> None:
    cluster.nlb.set_node_weight(CLUSTER, "CAS02", 30, port_number=143)
    cluster.nlb.set_port_rule(CLUSTER, 443, new_affinity="None")
    cluster.nlb.stop_node("CAS02", drain=True, timeout=60)
    view = cluster_view(cluster, "CAS01", backend_offset=10000)
    assert (view.name, view.ip, view.backend_offset, view.listen_offset) == (
        CLUSTER,
        VIP,
        10000,
        0,
    )
    assert [(n.name, n.address, n.host_id, n.priority, n.state) for n in view.nodes] == [
        ("CAS01", "127.77.1.11", 1, 1, model.HostState.STARTED),
        ("CAS02", "127.77.1.12", 2, 2, model.HostState.DRAINING),
    ]
    assert view.nodes[0].fqdn == "CAS01.lab.net"
    assert view.nodes[1].drain_until is not None and view.nodes[0].drain_until is None
    imap = view.rule_for(143)
    assert imap is not None
    assert (imap.protocol, imap.mode, imap.affinity) == (
        model.RuleProtocol.TCP,
        model.FilteringMode.MULTIPLE,
        model.Affinity.SINGLE,
    )
    assert (imap.weight("CAS02"), imap.weight("CAS01")) == (30, 50)
    https = view.rule_for(443)
    assert https is not None and https.affinity is model.Affinity.NONE
    assert view.rule_for(25) is None


def test_flags_offsets_and_timed_out_drain(cluster: Directory) -> None:
    cluster.nlb.set_port_rule(CLUSTER, 143, proxy_protocol=True, new_timeout=5)
    cluster.nlb.set_port_rule(CLUSTER, 993, new_mode="Single", new_affinity="Network")
    cluster.nlb.stop_node("CAS02", drain=True, timeout=0)  # drain with no limit
    cluster.nlb.suspend_node("CAS01")
    view = cluster_view(cluster, VIP, backend_offset=10000, listen_offset=20000)
    assert (view.backend_offset, view.listen_offset) == (10000, 20000)
    assert [(r.start_port, r.proxy_protocol, r.timeout_minutes) for r in view.rules] == [
        (143, True, 5),
        (443, False, 0),
        (993, False, 0),
    ]
    imaps = view.rule_for(993)
    assert imaps is not None
    assert (imaps.mode, imaps.affinity) == (model.FilteringMode.SINGLE, model.Affinity.NETWORK)
    assert [(n.state, n.drain_until) for n in view.nodes] == [
        (model.HostState.SUSPENDED, None),
        (model.HostState.DRAINING, None),
    ]


def test_following_cluster(bj: Directory) -> None:
    bj.arrays.new(CLUSTER, "BJ", name="BJ CAS Array")
    bj.nlb.new_cluster(CLUSTER, VIP, array="BJ CAS Array")
    bj.servers.new("CAS04", "ClientAccess", "127.77.1.14")
    view = cluster_view(bj, CLUSTER)
    assert [(n.name, n.host_id, n.state) for n in view.nodes] == [
        ("CAS01", 1, model.HostState.STARTED),
        ("CAS02", 2, model.HostState.STARTED),
        ("CAS04", 3, model.HostState.STARTED),
    ]
    (rule,) = view.rules
    assert (rule.start_port, rule.end_port, rule.protocol) == (0, 65535, model.RuleProtocol.BOTH)


def test_unknown_cluster(bj: Directory) -> None:
    with pytest.raises(NotFoundError):
        cluster_view(bj, "nope.lab.net")
