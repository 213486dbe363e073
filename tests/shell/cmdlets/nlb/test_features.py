"""Install-, Uninstall-, Get-WindowsFeature."""

from __future__ import annotations

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell
from tests.shell.cmdlets.nlb.nlb_shell import lines, table


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
