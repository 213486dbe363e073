"""Fixtures of the DNS cmdlet tests: `seeded`, a shell on the BJ organization with the
seed's NLB cluster bj-cas.lab.net and the BJ array."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell


@pytest.fixture
def seeded(shell: Shell, bj: Directory) -> Shell:
    """The seed's steps 1-2 and III: NLB, the cluster bj-cas.lab.net, the BJ array."""
    shell.ok("Install-WindowsFeature NLB -ComputerName CAS01")
    shell.ok(
        'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName bj-cas.lab.net '
        "-ClusterPrimaryIP 127.77.1.10"
    )
    shell.ok('New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"')
    return shell
