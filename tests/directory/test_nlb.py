"""NLB in the directory, on SQLite and PostgreSQL: the NLB feature, clusters (names,
addresses, masks, modes), nodes (HostID, HostPriority, one cluster per server, states,
drainstop), port rules (ranges, overlap, defaults, weights), clusters that follow a
client access array, and a cluster's snapshot (what a balancer follows, and which
cluster IPs send a server PROXY headers)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from casarray.directory import (
    ConflictError,
    Directory,
    InUseError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.nlb.values import default_subnet_mask

CLUSTER, VIP = "bj-cas.lab.net", "127.77.1.10"


def nlb(d: Directory, *servers: str) -> Directory:
    for server in servers:
        d.nlb.install_feature(server, ["NLB"])
    return d


@pytest.fixture
def cluster(bj: Directory) -> Directory:
    """bj-cas.lab.net on CAS01 with CAS02 added, as the seed's steps do."""
    nlb(bj, "CAS01", "CAS02")
    bj.nlb.new_cluster(CLUSTER, VIP, host="CAS01", interface="Ethernet")
    bj.nlb.add_node(CLUSTER, "CAS02", "Ethernet")
    return bj


def states(d: Directory, cluster: str = CLUSTER) -> dict[str, str]:
    return {n.name: n.state for n in d.nlb.nodes(cluster)}


# -- features ------------------------------------------------------------------------


def test_install_feature(bj: Directory) -> None:
    assert [f.installed for f in bj.nlb.features("CAS01", ["NLB"])] == [False]
    result = bj.nlb.install_feature("cas01", ["nlb"])
    assert result.exit_code == "Success"
    assert [f.display_name for f in result.changed] == ["Network Load Balancing"]
    assert bj.nlb.install_feature("CAS01", ["NLB"]).exit_code == "NoChangeNeeded"
    assert [(f.name, f.installed) for f in bj.nlb.features("CAS01")] == [
        ("NLB", True),
        ("RSAT-NLB", False),
    ]
    with pytest.raises(InvalidValueError, match=r"'Web-Server' is not one of NLB, RSAT-NLB"):
        bj.nlb.install_feature("CAS01", ["Web-Server"])
    with pytest.raises(NotFoundError):
        bj.nlb.install_feature("CAS09", ["NLB"])


def test_new_cluster_needs_the_feature(bj: Directory) -> None:
    with pytest.raises(InvalidOperationError) as err:
        bj.nlb.new_cluster(CLUSTER, VIP, host="CAS01")
    assert err.value.message == (
        "The NLB feature isn't installed on CAS01; run Install-WindowsFeature NLB "
        "-ComputerName CAS01"
    )
    assert bj.nlb.clusters() == []


def test_uninstall_feature_refused_while_a_node(cluster: Directory) -> None:
    with pytest.raises(InUseError, match=r"node of the NLB cluster 'bj-cas.lab.net'"):
        cluster.nlb.uninstall_feature("CAS02", ["NLB"])
    nlb(cluster, "CAS03")
    assert cluster.nlb.uninstall_feature("CAS03", ["NLB"]).exit_code == "Success"


# -- clusters ---------------------------------------------------------------------------


def test_new_cluster_defaults(cluster: Directory) -> None:
    (c,) = cluster.nlb.clusters()
    assert (c.name, c.ip_address, c.subnet_mask) == (CLUSTER, VIP, "255.0.0.0")
    assert (c.operation_mode, c.data_plane, c.follow_array) == ("Unicast", "Auto", False)
    assert c.nodes == ("CAS01", "CAS02")
    assert cluster.nlb.cluster("CAS02").guid == c.guid  # by a host
    assert cluster.nlb.cluster(VIP).guid == c.guid  # by its IP
    assert cluster.nlb.cluster("BJ-CAS.LAB.NET").guid == c.guid
    # NLB's default port rule
    (rule,) = cluster.nlb.port_rules(CLUSTER)
    assert (rule.start_port, rule.end_port, rule.ip, rule.protocol) == (0, 65535, None, "Both")
    assert (rule.mode, rule.affinity, rule.timeout) == ("Multiple", "Single", 0)


def test_default_subnet_mask_by_class() -> None:
    assert default_subnet_mask("10.1.2.3") == "255.0.0.0"
    assert default_subnet_mask("172.16.0.1") == "255.255.0.0"
    assert default_subnet_mask("192.168.1.1") == "255.255.255.0"


def test_new_cluster_settings_and_errors(bj: Directory) -> None:
    nlb(bj, "CAS01", "CAS02", "CAS03")
    c = bj.nlb.new_cluster(
        CLUSTER,
        VIP,
        host="CAS01",
        subnet_mask="255.255.255.0",
        operation_mode="igmpmulticast",
        data_plane="proxy",
    )
    assert (c.subnet_mask, c.operation_mode, c.data_plane) == (
        "255.255.255.0",
        "IgmpMulticast",
        "Proxy",
    )
    with pytest.raises(InvalidValueError, match=r"'ClusterPrimaryIP'.*'1.2.3' is not an IPv4"):
        bj.nlb.new_cluster("x.lab.net", "1.2.3", host="CAS02")
    with pytest.raises(ConflictError, match=r"address of server 'CAS02'"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.12", host="CAS02")
    with pytest.raises(ConflictError, match=r"already the primary IP of the NLB cluster"):
        bj.nlb.new_cluster("x.lab.net", VIP, host="CAS02")
    with pytest.raises(ConflictError, match=r"already has that name"):
        bj.nlb.new_cluster(CLUSTER.upper(), "127.77.1.99", host="CAS02")
    with pytest.raises(ConflictError, match=r"name of server 'CAS02'"):
        bj.nlb.new_cluster("cas02.lab.net", "127.77.1.99", host="CAS02")
    with pytest.raises(InvalidValueError, match=r"'SubnetMask'.*not a subnet mask"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99", host="CAS02", subnet_mask="255.0.255.0")
    with pytest.raises(InvalidValueError, match=r"'OperationMode'"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99", host="CAS02", operation_mode="Broadcast")
    with pytest.raises(InvalidValueError, match=r"'DataPlane'"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99", host="CAS02", data_plane="Turbo")
    with pytest.raises(InvalidValueError, match=r"'ClusterName'"):
        bj.nlb.new_cluster("nodots", "127.77.1.99", host="CAS02")
    with pytest.raises(ConflictError, match=r"'CAS01' is already a node of the NLB cluster"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99", host="CAS01")
    with pytest.raises(InvalidValueError, match=r"'HostName'"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99")
    # a second cluster on another host is fine
    bj.nlb.new_cluster("sh-cas.lab.net", "127.77.2.10", host="CAS03")
    assert [c.name for c in bj.nlb.clusters()] == [CLUSTER, "sh-cas.lab.net"]


def test_set_and_remove_cluster(cluster: Directory) -> None:
    c = cluster.nlb.set_cluster(
        "CAS01", operation_mode="Multicast", data_plane="Kernel", name="web.lab.net"
    )
    assert (c.name, c.operation_mode, c.data_plane) == ("web.lab.net", "Multicast", "Kernel")
    removed = cluster.nlb.remove_cluster("web.lab.net")
    assert removed.nodes == ("CAS01", "CAS02")
    assert cluster.nlb.clusters() == []
    assert cluster.nlb.nodes() == []
    with pytest.raises(InvalidOperationError, match=r"'CAS01' isn't a node of any NLB cluster"):
        cluster.nlb.cluster("CAS01")
    with pytest.raises(NotFoundError, match=r'NLB cluster "nope.lab.net"'):
        cluster.nlb.cluster("nope.lab.net")
    # the servers are free again
    cluster.nlb.new_cluster(CLUSTER, VIP, host="CAS02")


def test_removing_a_server_removes_its_node(cluster: Directory) -> None:
    cluster.nlb.set_node_weight(CLUSTER, "CAS02", 10)
    cluster.servers.remove("CAS02", force=True)
    assert [n.name for n in cluster.nlb.nodes()] == ["CAS01"]
    assert cluster.nlb.port_rules()[0].weights == ()


# -- nodes --------------------------------------------------------------------------------


def test_nodes_host_ids_and_priorities(cluster: Directory) -> None:
    nodes = cluster.nlb.nodes(CLUSTER)
    assert [(n.name, n.host_id, n.host_priority, n.interface_name) for n in nodes] == [
        ("CAS01", 1, 1, "Ethernet"),
        ("CAS02", 2, 2, "Ethernet"),
    ]
    assert [n.state for n in nodes] == ["Converged(default)", "Converged"]
    assert all(n.health is None for n in nodes)
    # HostID: the lowest free one
    nlb(cluster, "CAS03", "MBX01")
    cluster.nlb.add_node(CLUSTER, "MBX01")  # any server with the feature
    cluster.nlb.set_node("CAS02", host_priority=7)
    cluster.nlb.remove_node("CAS02")
    node = cluster.nlb.add_node("CAS01", "CAS03", "Team0")
    assert (node.host_id, node.host_priority, node.interface_name) == (2, 2, "Team0")


def test_add_node_errors(cluster: Directory) -> None:
    with pytest.raises(InvalidOperationError, match=r"isn't installed on CAS03"):
        cluster.nlb.add_node(CLUSTER, "CAS03")
    with pytest.raises(ConflictError, match=r"'CAS02' is already a node of the NLB cluster"):
        cluster.nlb.add_node(CLUSTER, "CAS02")
    nlb(cluster, "CAS03", "MBX02")
    cluster.nlb.new_cluster("sh-cas.lab.net", "127.77.2.10", host="CAS03")
    with pytest.raises(ConflictError, match=r"only one cluster"):
        cluster.nlb.add_node("sh-cas.lab.net", "CAS01")
    with pytest.raises(NotFoundError):
        cluster.nlb.add_node(CLUSTER, "CAS99")


def test_remove_node(cluster: Directory) -> None:
    removed = cluster.nlb.remove_node("CAS02")
    assert removed.name == "CAS02"
    with pytest.raises(InvalidOperationError, match=r"last node"):
        cluster.nlb.remove_node("CAS01")
    with pytest.raises(NotFoundError, match=r"NLB cluster node"):
        cluster.nlb.remove_node("CAS02")


def test_host_priority_unique_and_default_host(cluster: Directory) -> None:
    with pytest.raises(ConflictError, match=r"priority 1 is already that of node 'CAS01'"):
        cluster.nlb.set_node("CAS02", host_priority=1)
    with pytest.raises(InvalidValueError, match=r"'HostPriority'"):
        cluster.nlb.set_node("CAS02", host_priority=33)
    with pytest.raises(InvalidValueError, match=r"'HostPriority'"):
        cluster.nlb.set_node("CAS02", host_priority=0)
    cluster.nlb.set_node("CAS01", host_priority=9)
    assert states(cluster) == {"CAS01": "Converged", "CAS02": "Converged(default)"}
    node = cluster.nlb.set_node("CAS02", initial_host_state="suspended")
    assert node.initial_host_state == "Suspended"
    with pytest.raises(InvalidValueError, match=r"'InitialHostState'"):
        cluster.nlb.set_node("CAS02", initial_host_state="Draining")


def test_node_states(cluster: Directory) -> None:
    assert cluster.nlb.stop_node("CAS01").state == "Stopped"
    # the default host is the started node with the highest priority
    assert states(cluster) == {"CAS01": "Stopped", "CAS02": "Converged(default)"}
    assert cluster.nlb.start_node("CAS01").state == "Converged(default)"
    assert cluster.nlb.suspend_node("CAS02").state == "Suspended"
    with pytest.raises(InvalidOperationError, match=r"suspended; resume it first"):
        cluster.nlb.start_node("CAS02")
    with pytest.raises(InvalidOperationError, match=r"suspended"):
        cluster.nlb.stop_node("CAS02")
    assert cluster.nlb.resume_node("CAS02").state == "Stopped"
    assert cluster.nlb.start_node("CAS02").state == "Converged"


def test_drainstop(cluster: Directory) -> None:
    node = cluster.nlb.stop_node("CAS02", drain=True)
    assert (node.state, node.drain_until) == ("Draining", None)
    node = cluster.nlb.stop_node("CAS02", drain=True, timeout=300)
    assert node.state == "Draining" and node.drain_until is not None
    with pytest.raises(InvalidValueError, match=r"'Timeout'.*only with -Drain"):
        cluster.nlb.stop_node("CAS02", timeout=5)
    # a timed-out drain is a stop
    with cluster.store.write() as session:
        from casarray.directory.schema import NlbNodeRow

        for row in session.query(NlbNodeRow):
            if row.drain_until is not None:
                row.drain_until = row.drain_until - timedelta(seconds=301)
    assert states(cluster)["CAS02"] == "Stopped"
    assert cluster.nlb.start_node("CAS02").state == "Converged"
    # draining a stopped node leaves it stopped
    cluster.nlb.stop_node("CAS02")
    assert cluster.nlb.stop_node("CAS02", drain=True).state == "Stopped"


# -- port rules --------------------------------------------------------------------------


def seed_rules(d: Directory) -> None:
    d.nlb.remove_port_rule(CLUSTER, 0)
    for port in (143, 993, 443):
        d.nlb.add_port_rule(CLUSTER, port, port, protocol="Tcp")


def test_port_rules(cluster: Directory) -> None:
    seed_rules(cluster)
    rules = cluster.nlb.port_rules(CLUSTER)
    assert [(r.start_port, r.end_port, r.protocol, r.affinity) for r in rules] == [
        (143, 143, "Tcp", "Single"),
        (443, 443, "Tcp", "Single"),
        (993, 993, "Tcp", "Single"),
    ]
    assert [r.start_port for r in cluster.nlb.port_rules(port_number=993)] == [993]
    rule = cluster.nlb.add_port_rule(
        "CAS02", 8000, 8080, ip=VIP, protocol="udp", mode="single", affinity="network", timeout=5
    )
    assert (rule.ip, rule.protocol, rule.mode, rule.affinity, rule.timeout) == (
        VIP,
        "Udp",
        "Single",
        "Network",
        5,
    )
    # on another IP key ("All" vs the cluster IP) ranges may overlap
    cluster.nlb.add_port_rule(CLUSTER, 8080, 8090)
    assert [r.start_port for r in cluster.nlb.port_rules(ip=VIP)] == [8000]


def test_port_rule_errors(cluster: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        cluster.nlb.add_port_rule(CLUSTER, 143, 143)
    assert "overlaps the port rule 0-65535 on All" in err.value.message
    assert "Remove-NlbClusterPortRule -Port 0" in err.value.message
    seed_rules(cluster)
    with pytest.raises(ConflictError, match=r"140-150 on All overlaps the port rule 143-143"):
        cluster.nlb.add_port_rule(CLUSTER, 140, 150)
    with pytest.raises(InvalidValueError, match=r"'EndPort'.*lower than the start port"):
        cluster.nlb.add_port_rule(CLUSTER, 200, 100)
    with pytest.raises(InvalidValueError, match=r"'StartPort'.*from 0 to 65535"):
        cluster.nlb.add_port_rule(CLUSTER, -1, 100)
    with pytest.raises(InvalidValueError, match=r"'EndPort'.*from 0 to 65535"):
        cluster.nlb.add_port_rule(CLUSTER, 1, 65536)
    with pytest.raises(InvalidValueError, match=r"'Protocol'"):
        cluster.nlb.add_port_rule(CLUSTER, 25, 25, protocol="Icmp")
    with pytest.raises(InvalidValueError, match=r"'Mode'"):
        cluster.nlb.add_port_rule(CLUSTER, 25, 25, mode="Any")
    with pytest.raises(InvalidValueError, match=r"'Affinity'"):
        cluster.nlb.add_port_rule(CLUSTER, 25, 25, affinity="Class C")
    with pytest.raises(InvalidValueError, match=r"'Timeout'"):
        cluster.nlb.add_port_rule(CLUSTER, 25, 25, timeout=-1)
    with pytest.raises(InvalidValueError, match=r"'IP'.*isn't an IP address of the NLB cluster"):
        cluster.nlb.add_port_rule(CLUSTER, 25, 25, ip="127.77.1.99")
    with pytest.raises(InvalidOperationError, match=r"has no port rule covering port 25"):
        cluster.nlb.remove_port_rule(CLUSTER, 25)


def test_set_port_rule(cluster: Directory) -> None:
    rule = cluster.nlb.set_port_rule(CLUSTER, 0, new_start_port=1000, new_end_port=2000)
    assert (rule.start_port, rule.end_port) == (1000, 2000)
    cluster.nlb.add_port_rule(CLUSTER, 143, 143)
    rule = cluster.nlb.set_port_rule(
        CLUSTER,
        143,
        new_affinity="None",
        new_mode="Disabled",
        new_protocol="Tcp",
        new_timeout=10,
    )
    assert (rule.affinity, rule.mode, rule.protocol, rule.timeout) == (
        "None",
        "Disabled",
        "Tcp",
        10,
    )
    with pytest.raises(ConflictError, match=r"overlaps the port rule 1000-2000"):
        cluster.nlb.set_port_rule(CLUSTER, 143, new_end_port=1500)
    with pytest.raises(InvalidValueError, match=r"lower than the start port"):
        cluster.nlb.set_port_rule(CLUSTER, 143, new_start_port=144)
    # moved to the cluster IP, it no longer overlaps rules on All
    rule = cluster.nlb.set_port_rule(CLUSTER, 143, new_ip=VIP, new_end_port=1500)
    assert (rule.ip, rule.end_port) == (VIP, 1500)
    with pytest.raises(InvalidOperationError, match=r"Several port rules"):
        cluster.nlb.set_port_rule(CLUSTER, 1200, new_timeout=1)
    assert cluster.nlb.set_port_rule(CLUSTER, 1200, ip="All", new_timeout=1).timeout == 1


def test_node_weights(cluster: Directory) -> None:
    seed_rules(cluster)
    rule = cluster.nlb.set_node_weight(CLUSTER, "CAS02", 30, port_number=143)
    assert rule.weights == (("CAS02", 30),) and rule.weight("cas02") == 30
    assert rule.weight("CAS01") is None  # Equal
    rule = cluster.nlb.set_node_weight(CLUSTER, "CAS02", 0, port_number=143)
    assert rule.weights == (("CAS02", 0),)
    rule = cluster.nlb.set_node_weight(CLUSTER, "CAS02", None, port_number=143)
    assert rule.weights == ()
    with pytest.raises(InvalidValueError, match=r"'LoadWeight'"):
        cluster.nlb.set_node_weight(CLUSTER, "CAS02", 101, port_number=143)
    with pytest.raises(InvalidOperationError, match=r"'CAS03' isn't a node"):
        cluster.nlb.set_node_weight(CLUSTER, "CAS03", 10, port_number=143)
    with pytest.raises(InvalidOperationError, match=r"Several port rules"):
        cluster.nlb.set_node_weight(CLUSTER, "CAS02", 10)


# -- following an array -----------------------------------------------------------------


def test_follow_array(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    c = bj.nlb.new_cluster(CLUSTER, VIP, array="BJ CAS Array")
    assert (c.follow_array, c.client_access_array, c.nodes) == (
        True,
        "BJ CAS Array",
        ("CAS01", "CAS02"),
    )
    nodes = bj.nlb.nodes(CLUSTER)
    assert [(n.name, n.host_id, n.host_priority, n.from_array) for n in nodes] == [
        ("CAS01", 1, 1, True),
        ("CAS02", 2, 2, True),
    ]
    assert [n.state for n in nodes] == ["Converged(default)", "Converged"]
    # a Client Access server installed in the site is a node at once, with no command
    bj.servers.new("CAS04", "ClientAccess", "127.77.1.14")
    assert bj.nlb.cluster(CLUSTER).nodes == ("CAS01", "CAS02", "CAS04")
    assert bj.nlb.node("CAS04").host_id == 3
    assert bj.nlb.cluster("CAS04").name == CLUSTER
    # a mailbox server or another site's server is not
    bj.servers.new("MBX03", "Mailbox", "127.77.1.23")
    bj.servers.new("CAS05", "ClientAccess", "127.77.2.15")
    assert bj.nlb.cluster(CLUSTER).nodes == ("CAS01", "CAS02", "CAS04")
    # a change writes the node's row with the values it showed; others keep theirs
    bj.nlb.stop_node("CAS02", drain=True)
    bj.servers.remove("CAS01")
    bj.servers.new("CAS06", "ClientAccess", "127.77.1.16")
    nodes = bj.nlb.nodes(CLUSTER)
    assert [(n.name, n.host_id, n.state) for n in nodes] == [
        ("CAS06", 1, "Converged(default)"),
        ("CAS02", 2, "Draining"),
        ("CAS04", 3, "Converged"),
    ]
    snapshot = bj.nlb.snapshot(CLUSTER)
    assert [n.name for n in snapshot.nodes] == ["CAS06", "CAS02", "CAS04"]


def test_follow_array_rules(bj: Directory) -> None:
    array = bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.nlb.new_cluster(CLUSTER, VIP, array=array.name)
    nlb(bj, "CAS01", "CAS03", "MBX01")
    with pytest.raises(ConflictError, match=r"already served by the NLB cluster"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99", array=array.name)
    with pytest.raises(ConflictError, match=r"'CAS01' is already a node"):
        bj.nlb.new_cluster("x.lab.net", "127.77.1.99", host="CAS01")
    with pytest.raises(ConflictError, match=r"already a node of the NLB cluster"):
        bj.nlb.add_node(CLUSTER, "CAS01")
    with pytest.raises(InvalidOperationError, match=r"follows the client access array"):
        bj.nlb.add_node(CLUSTER, "MBX01")
    with pytest.raises(InvalidOperationError, match=r"follows the client access array"):
        bj.nlb.remove_node("CAS02")
    # a host given with an array must be a member
    bj.nlb.remove_cluster(CLUSTER)
    with pytest.raises(InvalidOperationError, match=r"'CAS03' isn't a member"):
        bj.nlb.new_cluster(CLUSTER, VIP, host="CAS03", array=array.name)
    c = bj.nlb.new_cluster(CLUSTER, VIP, host="CAS01", array=array.name, interface="Team0")
    assert c.nodes == ("CAS01", "CAS02")
    assert [n.from_array for n in bj.nlb.nodes()] == [False, True]


def test_set_follow_array(cluster: Directory) -> None:
    # no array yet: nothing to follow
    with pytest.raises(InvalidOperationError, match=r"serves no client access array"):
        cluster.nlb.set_cluster(CLUSTER, follow_array=True)
    cluster.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    nlb(cluster, "MBX01")
    cluster.nlb.add_node(CLUSTER, "MBX01")
    with pytest.raises(InvalidOperationError, match=r"aren't members of the array.*MBX01"):
        cluster.nlb.set_cluster(CLUSTER, follow_array=True)
    cluster.nlb.remove_node("MBX01")
    c = cluster.nlb.set_cluster(CLUSTER, follow_array=True)  # the array named like it
    assert (c.follow_array, c.client_access_array) == (True, "BJ CAS Array")
    cluster.servers.new("CAS04", "ClientAccess", "127.77.1.14")
    assert cluster.nlb.cluster(CLUSTER).nodes == ("CAS01", "CAS02", "CAS04")
    # stop following: the nodes it has stay, later servers don't join
    c = cluster.nlb.set_cluster(CLUSTER, follow_array=False)
    assert (c.follow_array, c.nodes) == (False, ("CAS01", "CAS02", "CAS04"))
    cluster.servers.new("CAS05", "ClientAccess", "127.77.1.15")
    assert cluster.nlb.cluster(CLUSTER).nodes == ("CAS01", "CAS02", "CAS04")
    assert [n.from_array for n in cluster.nlb.nodes()] == [False, False, False]


def test_array_member_in_another_cluster_is_refused(bj: Directory) -> None:
    nlb(bj, "CAS02")
    bj.nlb.new_cluster("other.lab.net", "127.77.1.99", host="CAS02")
    array = bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    with pytest.raises(ConflictError, match=r"'CAS02', a member of the array"):
        bj.nlb.new_cluster(CLUSTER, VIP, array=array.name)


# -- the cluster's snapshot --------------------------------------------------------------


def test_snapshot(cluster: Directory) -> None:
    seed_rules(cluster)
    cluster.nlb.set_node_weight(CLUSTER, "CAS02", 30, port_number=143)
    cluster.nlb.set_port_rule(CLUSTER, 443, new_affinity="None")
    cluster.nlb.stop_node("CAS02", drain=True, timeout=60)
    snapshot = cluster.nlb.snapshot("CAS01")
    assert (snapshot.name, snapshot.ip, snapshot.cluster.operation_mode) == (
        CLUSTER,
        VIP,
        "Unicast",
    )
    assert snapshot.cluster.nodes == ("CAS01", "CAS02")
    assert [(n.name, n.host_id, n.host_priority, n.admin_state) for n in snapshot.nodes] == [
        ("CAS01", 1, 1, "Started"),
        ("CAS02", 2, 2, "Draining"),
    ]
    assert [(r.start_port, r.protocol, r.affinity) for r in snapshot.rules] == [
        (143, "Tcp", "Single"),
        (443, "Tcp", "None"),
        (993, "Tcp", "Single"),
    ]
    imap = snapshot.rule_for(143)
    assert imap is not None and imap.weights == (("CAS02", 30),)
    assert snapshot.rule_for(25) is None
    # the narrowest rule covering a port wins, as in the balancer
    cluster.nlb.add_port_rule(CLUSTER, 100, 200, ip=VIP)
    rule = cluster.nlb.snapshot(CLUSTER).rule_for(143)
    assert rule is not None and (rule.start_port, rule.ip) == (143, None)


def test_proxy_sources(cluster: Directory) -> None:
    seed_rules(cluster)
    assert cluster.nlb.proxy_sources("CAS01", 143) == frozenset()
    cluster.nlb.set_port_rule(CLUSTER, 143, proxy_protocol=True)
    assert cluster.nlb.proxy_sources("CAS01", 143) == {VIP}
    assert cluster.nlb.proxy_sources("cas02.lab.net", 143) == {VIP}
    assert cluster.nlb.proxy_sources("CAS01", 993) == frozenset()
    assert cluster.nlb.proxy_sources("CAS01", 25) == frozenset()  # no rule covers it
    assert cluster.nlb.proxy_sources("CAS03", 143) == frozenset()  # a node of no cluster
    with pytest.raises(NotFoundError):
        cluster.nlb.proxy_sources("CAS09", 143)


def test_proxy_sources_of_a_following_node(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.nlb.new_cluster(CLUSTER, VIP, array="BJ CAS Array")
    bj.nlb.set_port_rule(CLUSTER, 0, proxy_protocol=True)  # the default rule, 0-65535
    assert bj.nlb.proxy_sources("CAS02", 143) == {VIP}
    bj.nlb.add_port_rule(CLUSTER, 143, 143, ip=VIP)  # narrower, without the header
    assert bj.nlb.proxy_sources("CAS02", 143) == frozenset()
    assert bj.nlb.proxy_sources("CAS02", 993) == {VIP}


def test_changes_bump_the_topology_version(cluster: Directory) -> None:
    before = cluster.topology_version()
    cluster.nlb.stop_node("CAS02")
    assert cluster.topology_version() > before
