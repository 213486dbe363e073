"""Fixtures of the utility cmdlet tests: a shell with three database-like objects in
$dbs (no directory), and a clean event log of the streaming test cmdlets."""

from __future__ import annotations

import pytest

from tests.shell.cmdlets.utility.utility_shell import GetUtilTestStream, Shell


@pytest.fixture
def shell() -> Shell:
    s = Shell()
    s.run(
        "$dbs = @("
        "[pscustomobject]@{Name='DB01'; Server='MBX01'; Size=30; Site='BJ'}, "
        "[pscustomobject]@{Name='db02'; Server='MBX01'; Size=5; Site='BJ'}, "
        "[pscustomobject]@{Name='DB10'; Server='MBX02'; Size=100; Site='SH'})"
    )
    return s


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    GetUtilTestStream.events.clear()
