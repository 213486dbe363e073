"""The NLB clusters through the shell: the seed's steps (Install-WindowsFeature NLB,
New-NlbCluster, Add-NlbClusterNode, port rules for IMAP, IMAPS and HTTPS), the
cluster cmdlets, a cluster following its array, help, and the HAProxy export."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell, what_if
from tests.shell.cmdlets.nlb.nlb_shell import NEW_CLUSTER, lines, table


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


def test_get_and_set_cluster(seeded: Shell, bj: Directory) -> None:
    out = seeded.ok("Get-NlbCluster CAS02 | Format-List").out
    assert "OperationMode      : Unicast" in out
    assert "DataPlane          : Auto" in out
    assert "Nodes              : {CAS01, CAS02}" in out
    assert "HeartbeatPeriod    : 1000" in out
    seeded.ok("Get-NlbCluster | Set-NlbCluster -OperationMode Multicast -DataPlane Proxy")
    (cluster,) = bj.nlb.clusters()
    assert (cluster.operation_mode, cluster.data_plane) == ("Multicast", "Proxy")
    error = seeded.run("Set-NlbCluster CAS01 -OperationMode Broadcast").error()
    assert 'does not belong to the set "Unicast,Multicast,IgmpMulticast"' in error.message
    error = seeded.run("Get-NlbCluster CAS03").error()
    assert "isn't a node of any NLB cluster" in error.message


def test_data_plane_hosts_and_heartbeats(seeded: Shell, bj: Directory) -> None:
    """NLB on the member hosts, with NLB's heartbeat settings (AliveMsgPeriod and
    AliveMsgTolerance): NLB's defaults until set, set in their ranges only."""
    (cluster,) = bj.nlb.clusters()
    assert (cluster.heartbeat_period, cluster.heartbeat_tolerance) == (1000, 5)
    seeded.ok("Set-NlbCluster CAS01 -DataPlane Hosts -HeartbeatPeriod 200 -AliveMsgTolerance 6")
    (cluster,) = bj.nlb.clusters()
    assert (cluster.data_plane, cluster.heartbeat_period, cluster.heartbeat_tolerance) == (
        "Hosts",
        200,
        6,
    )
    out = seeded.ok("Get-NlbCluster | Format-List HeartbeatPeriod, HeartbeatTolerance").out
    assert "HeartbeatPeriod    : 200" in out and "HeartbeatTolerance : 6" in out
    for bad, named in (
        ("-HeartbeatPeriod 50", "HeartbeatPeriod"),
        ("-HeartbeatTolerance 2", "HeartbeatTolerance"),
    ):
        error = seeded.run(f"Set-NlbCluster CAS01 -DataPlane Proxy {bad}").error()
        assert named in error.message and "is not from" in error.message
    (cluster,) = bj.nlb.clusters()
    assert (cluster.data_plane, cluster.heartbeat_period, cluster.heartbeat_tolerance) == (
        "Hosts",
        200,
        6,
    )  # nothing of a refused change was made


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
