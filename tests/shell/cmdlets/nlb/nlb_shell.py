"""Test support for the NLB cmdlet tests: the seed's New-NlbCluster line, the seed's
steps up to a two-node cluster, and readers of the output.

Not a conftest: the test modules (and this folder's conftest) import what they use."""

from __future__ import annotations

from tests.shell.cmdlet_shell import Shell

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
