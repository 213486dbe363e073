"""Fixtures of the NLB cmdlet tests: `seeded`, a shell on the BJ organization with the
seed's two-node NLB cluster."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell
from tests.shell.cmdlets.nlb.nlb_shell import seed


@pytest.fixture
def seeded(shell: Shell, bj: Directory) -> Shell:
    seed(shell)
    return shell
