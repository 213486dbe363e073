"""The NLB port rule cmdlets, node weights, and the PROXY protocol on a rule."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell
from tests.shell.cmdlets.nlb.nlb_shell import lines


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


def test_proxy_protocol_on_a_port_rule(seeded: Shell, bj: Directory) -> None:
    seeded.ok("Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force")
    seeded.ok("Add-NlbClusterPortRule -HostName CAS01 -StartPort 143 -EndPort 143 -ProxyProtocol")
    seeded.ok("Add-NlbClusterPortRule -HostName CAS01 -StartPort 993 -EndPort 993")
    view = bj.nlb.snapshot("bj-cas.lab.net")
    assert [(r.start_port, r.proxy_protocol) for r in view.rules] == [(143, True), (993, False)]
    seeded.ok("Set-NlbClusterPortRule -HostName CAS01 -Port 143 -ProxyProtocol:$false")
    assert not bj.nlb.snapshot("bj-cas.lab.net").rules[0].proxy_protocol
