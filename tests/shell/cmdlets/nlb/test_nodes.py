"""The NLB node cmdlets: errors, settings, states, removal."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell
from tests.shell.cmdlets.nlb.nlb_shell import table


def test_node_errors(seeded: Shell, bj: Directory) -> None:
    error = seeded.run("Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS03").error()
    assert "The NLB feature isn't installed on CAS03" in error.message
    error = seeded.run("Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02").error()
    assert "already a node" in error.message
    error = seeded.run("Add-NlbClusterNode -NewNodeName CAS03").error()
    assert "Name the cluster" in error.message
    error = seeded.run("Set-NlbClusterNode CAS02 -HostPriority 1").error()
    assert "priority 1 is already that of node 'CAS01'" in error.message
    error = seeded.run("Set-NlbClusterNode CAS02 -HostPriority 40").error()
    assert "'HostPriority'" in error.message
    error = seeded.run("Get-NlbClusterNode -NodeName CAS03").error()
    assert error.category == "ObjectNotFound"


def test_set_node(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Set-NlbClusterNode CAS01 -HostPriority 10")
    out = seeded.ok(
        "Get-NlbClusterNode -NodeName CAS02 | Set-NlbClusterNode -InitialHostState Stopped"
    )
    assert table(out.out) == [["CAS02", "Converged(default)", "Ethernet", "2"]]
    node = bj.nlb.node("CAS02")
    assert (node.initial_host_state, node.host_priority) == ("Stopped", 2)
    assert bj.nlb.node("CAS01").host_priority == 10


def test_node_states(seeded: Shell, bj: Directory) -> None:
    out = seeded.ok("Get-NlbClusterNode -NodeName CAS02 | Stop-NlbClusterNode -Drain -Timeout 300")
    assert table(out.out) == [["CAS02", "Draining", "Ethernet", "2"]]
    assert bj.nlb.node("CAS02").drain_until is not None
    assert table(seeded.ok("Stop-NlbClusterNode CAS01").out) == [
        ["CAS01", "Stopped", "Ethernet", "1"]
    ]
    assert table(seeded.ok("Start-NlbClusterNode CAS02").out) == [
        ["CAS02", "Converged(default)", "Ethernet", "2"]
    ]
    seeded.ok("Suspend-NlbClusterNode CAS02")
    error = seeded.run("Start-NlbClusterNode CAS02").error()
    assert "suspended; resume it first (Resume-NlbClusterNode -HostName CAS02)" in error.message
    assert table(seeded.ok("Resume-NlbClusterNode CAS02").out) == [
        ["CAS02", "Stopped", "Ethernet", "2"]
    ]
    seeded.ok("Get-NlbClusterNode | Start-NlbClusterNode")
    assert [n.state for n in bj.nlb.nodes()] == ["Converged(default)", "Converged"]
    error = seeded.run("Stop-NlbClusterNode CAS02 -Timeout 5").error()
    assert "only with -Drain" in error.message


def test_remove_node(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Get-NlbClusterNode -NodeName CAS02 | Remove-NlbClusterNode -Force")
    assert [n.name for n in bj.nlb.nodes()] == ["CAS01"]
    error = seeded.run("Remove-NlbClusterNode CAS01 -Force").error()
    assert "last node" in error.message


def test_nodes_as_their_hosts_report_them(seeded: Shell, bj: Directory) -> None:
    """NLB on the hosts: each host's driver writes what it sees itself
    (`balancer_process.host_status_file`), and Get-NlbClusterNode shows that, not the
    directory's idea of the node."""
    import os

    from casarray.balancer.balancer_process import host_status_file

    seeded.ok("Set-NlbCluster CAS01 -DataPlane Hosts")
    cluster = bj.nlb.clusters()[0].name
    me = {"pid": os.getpid(), "members": [{"name": "CAS02", "host_id": 2}]}
    host_status_file(cluster, "CAS02").write({**me, "state": "Converging"})
    host_status_file(cluster, "CAS01").write({**me, "state": "Draining"})

    def state(node: str) -> str:
        return seeded.ok(f"(Get-NlbClusterNode -NodeName {node}).State").out.strip()

    assert state("CAS01") == "Draining"
    assert state("CAS02") == "Converging (hears CAS02)"
    # a driver that is gone (its pid no longer runs) reports nothing
    host_status_file(cluster, "CAS02").write({**me, "pid": 2**22 + 7, "state": "Converging"})
    assert state("CAS02") == "Converged"
