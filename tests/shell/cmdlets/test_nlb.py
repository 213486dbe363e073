"""The NLB cmdlets through the shell, as an administrator types them: the seed's steps
(Install-WindowsFeature NLB, New-NlbCluster, Add-NlbClusterNode, port rules for IMAP,
IMAPS and HTTPS), the output tables, pipelines, -Force/-Confirm, and the errors."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell, what_if

NEW_CLUSTER = (
    'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName bj-cas.lab.net '
    "-ClusterPrimaryIP 127.77.1.10"
)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def table(text: str) -> list[list[str]]:
    return [line.split() for line in lines(text)[2:]]


def seed(shell: Shell) -> None:
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS01")
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS02")
    shell.ok(NEW_CLUSTER)
    shell.ok("Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet")


@pytest.fixture
def seeded(shell: Shell, bj: Directory) -> Shell:
    seed(shell)
    return shell


# -- features -------------------------------------------------------------------------


def test_install_windows_feature(shell: Shell, bj: Directory) -> None:
    out = shell.ok("Install-WindowsFeature NLB -ComputerName CAS01").out
    assert lines(out) == [
        "Success RestartNeeded ExitCode FeatureResult",
        "------- ------------- -------- -------------",
        "   True No            Success  {Network Load Balancing}",
    ]
    out = shell.ok("Add-WindowsFeature -Name NLB -ComputerName CAS01").out
    assert table(out) == [["True", "No", "NoChangeNeeded", "{}"]]
    out = shell.ok("Get-WindowsFeature -Name NLB -ComputerName CAS01").out
    assert table(out) == [["Network", "Load", "Balancing", "NLB", "Installed"]]
    out = shell.ok("Get-WindowsFeature -ComputerName CAS02").out
    assert [row[-2:] for row in table(out)] == [["NLB", "Available"], ["RSAT-NLB", "Available"]]
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS02 -IncludeManagementTools")
    out = shell.ok("(Get-WindowsFeature -ComputerName CAS02 | ? Installed).Name").out
    assert lines(out) == ["NLB", "RSAT-NLB"]


def test_feature_errors(shell: Shell, bj: Directory) -> None:
    error = shell.run("Install-WindowsFeature Web-Server -ComputerName CAS01").error()
    assert "is not one of NLB, RSAT-NLB" in error.message
    error = shell.run("Install-WindowsFeature NLB -ComputerName CAS99").error()
    assert error.category == "ObjectNotFound"
    error = shell.run("Install-WindowsFeature NLB").error()
    assert "missing mandatory parameters: ComputerName" in error.message


# -- the seed's steps --------------------------------------------------------------------


def test_new_cluster_needs_nlb(shell: Shell, bj: Directory) -> None:
    error = shell.run(NEW_CLUSTER).error()
    assert error.message == (
        "The NLB feature isn't installed on CAS01; run Install-WindowsFeature NLB "
        "-ComputerName CAS01"
    )
    assert error.category == "InvalidOperation"


def test_seed_steps(shell: Shell, bj: Directory) -> None:
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS01")
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS02")
    out = shell.ok(NEW_CLUSTER).out
    assert lines(out) == [
        "Name           IPAddress   SubnetMask Mode",
        "----           ---------   ---------- ----",
        "bj-cas.lab.net 127.77.1.10 255.0.0.0  UNICAST",
    ]
    out = shell.ok("Add-NlbClusterNode -NewNodeName CAS02 -NewNodeInterface Ethernet -H CAS01").out
    assert table(out) == [["CAS02", "Converged", "Ethernet", "2"]]
    out = shell.ok("Get-NlbCluster | Get-NlbClusterNode").out
    assert lines(out)[0].split() == ["Name", "State", "Interface", "HostID"]
    assert table(out) == [
        ["CAS01", "Converged(default)", "Ethernet", "1"],
        ["CAS02", "Converged", "Ethernet", "2"],
    ]
    # the default rule covers every port, so it goes first
    error = shell.run("Add-NlbClusterPortRule -HostName CAS01 -StartPort 143 -EndPort 143").error()
    assert "overlaps the port rule 0-65535 on All" in error.message
    assert error.category == "ResourceExists"
    shell.ok("Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force")
    for port in (143, 993, 443):
        shell.ok(f"Add-NlbClusterPortRule -HostName CAS01 -StartPort {port} -EndPort {port}")
    out = shell.ok("Get-NlbClusterPortRule -HostName bj-cas.lab.net").out
    assert lines(out)[0].split() == [
        "Cluster",
        "IP",
        "Protocol",
        "StartPort",
        "EndPort",
        "Mode",
        "Affinity",
    ]
    assert table(out) == [
        ["127.77.1.10", "All", "Both", "143", "143", "Multiple", "Single"],
        ["127.77.1.10", "All", "Both", "443", "443", "Multiple", "Single"],
        ["127.77.1.10", "All", "Both", "993", "993", "Multiple", "Single"],
    ]
    view = bj.nlb.snapshot("bj-cas.lab.net")
    assert [n.name for n in view.nodes] == ["CAS01", "CAS02"]
    assert [r.start_port for r in view.rules] == [143, 443, 993]


# -- clusters ----------------------------------------------------------------------------


def test_get_and_set_cluster(seeded: Shell, bj: Directory) -> None:
    out = seeded.ok("Get-NlbCluster CAS02 | Format-List").out
    assert "OperationMode     : Unicast" in out
    assert "DataPlane         : Auto" in out
    assert "Nodes             : {CAS01, CAS02}" in out
    seeded.ok("Get-NlbCluster | Set-NlbCluster -OperationMode Multicast -DataPlane Proxy")
    (cluster,) = bj.nlb.clusters()
    assert (cluster.operation_mode, cluster.data_plane) == ("Multicast", "Proxy")
    error = seeded.run("Set-NlbCluster CAS01 -OperationMode Broadcast").error()
    assert 'does not belong to the set "Unicast,Multicast,IgmpMulticast"' in error.message
    error = seeded.run("Get-NlbCluster CAS03").error()
    assert "isn't a node of any NLB cluster" in error.message


def test_new_cluster_options(shell: Shell, bj: Directory) -> None:
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS03")
    out = shell.ok(
        "New-NlbCluster CAS03 Ethernet 127.77.2.10 -ClusterName sh-cas.lab.net "
        "-SubnetMask 255.255.255.0 -OperationMode IgmpMulticast -DataPlane Kernel"
    ).out
    assert table(out) == [["sh-cas.lab.net", "127.77.2.10", "255.255.255.0", "IGMPMULTICAST"]]
    error = shell.run(
        "New-NlbCluster -HostName CAS03 -ClusterName x.lab.net -ClusterPrimaryIP 127.77.2.11"
    ).error()
    assert "address of server 'CAS03'" in error.message


def test_remove_cluster_confirms(seeded: Shell, bj: Directory) -> None:
    result = seeded.run("Remove-NlbCluster CAS01", stdin="n\n")
    assert result.prompts == 1
    assert len(bj.nlb.clusters()) == 1
    result = seeded.ok("Remove-NlbCluster CAS01 -WhatIf")
    assert what_if("Remove-NlbCluster", "bj-cas.lab.net") in result.out
    assert len(bj.nlb.clusters()) == 1
    seeded.ok("Get-NlbCluster | Remove-NlbCluster -Confirm:$false")
    assert bj.nlb.clusters() == []


def test_remove_cluster_force(seeded: Shell, bj: Directory) -> None:
    result = seeded.ok("Remove-NlbCluster -HostName bj-cas.lab.net -Force")
    assert result.prompts == 0
    assert bj.nlb.clusters() == []


def test_cluster_following_the_array(shell: Shell, bj: Directory) -> None:
    shell.ok('New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ')
    out = shell.ok('New-NlbCluster -ClusterPrimaryIP 127.77.1.10 -ClientAccessArray "BJ CAS Array"')
    assert table(out.out) == [["bj-cas.lab.net", "127.77.1.10", "255.0.0.0", "UNICAST"]]
    assert table(shell.ok("Get-NlbClusterNode").out) == [
        ["CAS01", "Converged(default)", "Ethernet", "1"],
        ["CAS02", "Converged", "Ethernet", "2"],
    ]
    bj.servers.new("CAS04", "ClientAccess", "127.77.1.14")
    out = shell.ok("Get-NlbClusterNode -NodeName CAS04").out
    assert table(out) == [["CAS04", "Converged", "Ethernet", "3"]]
    out = shell.ok("(Get-NlbCluster bj-cas.lab.net).FollowArray").out
    assert lines(out) == ["True"]
    shell.ok("Set-NlbCluster bj-cas.lab.net -FollowArray:$false")
    assert lines(shell.ok("(Get-NlbCluster bj-cas.lab.net).FollowArray").out) == ["False"]
    shell.ok("Set-NlbCluster bj-cas.lab.net -FollowArray")
    assert lines(shell.ok("(Get-NlbCluster bj-cas.lab.net).FollowArray").out) == ["True"]


# -- nodes ---------------------------------------------------------------------------------


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


# -- port rules ------------------------------------------------------------------------------


def test_port_rule_cmdlets(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Set-NlbClusterPortRule -HostName CAS01 -Port 0 -NewStartPort 1024")
    seeded.ok("Get-NlbCluster | Add-NlbClusterPortRule 143 143 -Protocol Tcp -Affinity None")
    seeded.ok(
        "Add-NlbClusterPortRule -HostName CAS01 -StartPort 993 -EndPort 993 -IP 127.77.1.10 "
        "-Mode Single -Timeout 5"
    )
    out = seeded.ok("Get-NlbClusterPortRule -HostName CAS01 -Port 993 | Format-List").out
    assert "IP            : 127.77.1.10" in out and "Mode          : Single" in out
    assert "Timeout       : 5" in out and "ProxyProtocol : False" in out
    seeded.ok("Get-NlbClusterPortRule -Port 143 | Set-NlbClusterPortRule -NewAffinity Network")
    assert bj.nlb.port_rules(port_number=143)[0].affinity == "Network"
    error = seeded.run("Set-NlbClusterPortRule -HostName CAS01 -Port 143 -NewEndPort 2000").error()
    assert "overlaps the port rule 1024-65535" in error.message
    error = seeded.run("Add-NlbClusterPortRule -HostName CAS01 200 100").error()
    assert "lower than the start port 200" in error.message
    error = seeded.run("Add-NlbClusterPortRule -HostName CAS01 1 2 -Affinity Class").error()
    assert 'does not belong to the set "None,Single,Network"' in error.message
    seeded.ok("Get-NlbClusterPortRule -Port 143 | Remove-NlbClusterPortRule -Confirm:$false")
    assert [r.start_port for r in bj.nlb.port_rules()] == [993, 1024]
    error = seeded.run("Remove-NlbClusterPortRule -HostName CAS01 -Port 143 -Force").error()
    assert "has no port rule covering port 143" in error.message


def test_node_weight(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Set-NlbClusterPortRuleNodeWeight -HostName CAS02 -Port 0 -LoadWeight 30")
    out = seeded.ok("(Get-NlbClusterPortRule -HostName CAS01).NodeWeights").out
    assert lines(out) == ["CAS02=30"]
    seeded.ok("Set-NlbClusterPortRuleNodeWeight -HostName CAS02 -Port 0 -Equal")
    assert bj.nlb.port_rules()[0].weights == ()
    error = seeded.run("Set-NlbClusterPortRuleNodeWeight -HostName CAS02 -Port 0 -LoadWeight 101")
    assert "'LoadWeight'" in error.error().message
    error = seeded.run("Set-NlbClusterPortRuleNodeWeight -HostName CAS02 -Port 0").error()
    assert "-LoadWeight <0..100> or -Equal" in error.message


def test_help_for_every_nlb_cmdlet(shell: Shell) -> None:
    for name in (
        "Install-WindowsFeature",
        "New-NlbCluster",
        "Stop-NlbClusterNode",
        "Set-NlbClusterPortRuleNodeWeight",
    ):
        out = shell.ok(f"Get-Help {name} -Examples").out
        assert name in out and "EXAMPLE" in out.upper()


def test_export_haproxy_config(seeded: Shell, tmp_path: object) -> None:
    import shutil
    import subprocess
    from pathlib import Path

    path = Path(str(tmp_path)) / "haproxy.cfg"
    seeded.ok("Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force")
    seeded.ok("Add-NlbClusterPortRule -HostName CAS01 -StartPort 993 -EndPort 993 -Protocol Tcp")
    out = seeded.ok(f"Export-NlbClusterConfig -HostName CAS01 -Format HAProxy -Path {path}").out
    assert str(path) in out
    text = path.read_text()
    assert "bind 127.77.1.10:993" in text and "127.77.1.12:993" in text
    assert "inter 500" in text and "fall 2" in text and "rise 2" in text
    if shutil.which("haproxy"):
        check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    error = seeded.run(f"Export-NlbClusterConfig CAS01 -Format Nginx -Path {path}").error()
    assert "parameter 'Format'" in error.message and "use -Format HAProxy" in error.message


def test_proxy_protocol_on_a_port_rule(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force")
    seeded.ok("Add-NlbClusterPortRule -HostName CAS01 -StartPort 143 -EndPort 143 -ProxyProtocol")
    seeded.ok("Add-NlbClusterPortRule -HostName CAS01 -StartPort 993 -EndPort 993")
    view = bj.nlb.snapshot("bj-cas.lab.net")
    assert [(r.start_port, r.proxy_protocol) for r in view.rules] == [(143, True), (993, False)]
    seeded.ok("Set-NlbClusterPortRule -HostName CAS01 -Port 143 -ProxyProtocol:$false")
    assert not bj.nlb.snapshot("bj-cas.lab.net").rules[0].proxy_protocol
