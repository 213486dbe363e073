"""The seed's commands, verbatim: create the BJ array (step III), then update the
databases' RpcClientAccessServer one at a time (the line pasted from the web with its
en dash) and in bulk (step V), check, and show the array.

They run in a session (on SQLite and on PostgreSQL) and through `casarray shell -c`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.directory import Directory
from tests.shell.cmdlet_shell import Shell, rpc_of

ARRAY = "bj-cas.lab.net"

SEED = (
    'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"',
    'Set-MailboxDatabase "DB01" \u2013rpcclientaccessserver bj-cas.lab.net',
    "Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net",
    'Get-MailboxDatabase | Where-Object {$_.RpcClientAccessServer -ne "bj-cas.lab.net"} '
    "| Format-Table Name,Server,RpcClientAccessServer",
    "Get-ClientAccessArray | fl",
)


@pytest.fixture
def seed_org(bj: Directory) -> Directory:
    """Site BJ with CAS01, CAS02 and MBX01 (and site SH); DB01 and DB02 on MBX01,
    created before the array, so they name CAS01.lab.net."""
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    return bj


@pytest.fixture
def shell(directory_url: str, seed_org: Directory) -> Iterator[Shell]:
    sh = Shell(directory_url)
    yield sh
    sh.close()


def test_the_second_line_has_an_en_dash() -> None:
    assert "\u2013rpcclientaccessserver" in SEED[1]
    assert "-rpcclientaccessserver" not in SEED[1]


def test_seed_lines(shell: Shell, seed_org: Directory) -> None:
    d = seed_org
    # III. Creating a CAS array
    result = shell.ok(SEED[0])
    array = d.arrays.one(ARRAY)
    assert (array.name, array.site, array.members) == ("BJ CAS Array", "BJ", ("CAS01", "CAS02"))
    assert "BJ CAS Array" in result.out
    # the array changed no database, and the shell says so (step V's reminder)
    assert rpc_of(d) == {"DB01": "CAS01.lab.net", "DB02": "CAS01.lab.net"}
    assert any("DB01" in w and "Set-MailboxDatabase" in w for w in result.warnings)

    # V. one database (the line as pasted from the web, en dash and all)
    result = shell.ok(SEED[1])
    assert result.out == ""
    assert rpc_of(d) == {"DB01": ARRAY, "DB02": "CAS01.lab.net"}

    # V. all databases
    shell.ok(SEED[2])
    assert rpc_of(d) == {"DB01": ARRAY, "DB02": ARRAY}

    # check: no database left that doesn't use the array
    result = shell.ok(SEED[3])
    assert result.out.strip() == ""
    d.databases.new("DB09", "MBX02")  # in SH: names CAS03.lab.net
    result = shell.ok(SEED[3])
    assert result.out.split()[:3] == ["Name", "Server", "RpcClientAccessServer"]
    assert ["DB09", "MBX02", "CAS03.lab.net"] in [line.split() for line in result.out.splitlines()]
    assert "DB01" not in result.out

    # the array, every property
    result = shell.ok(SEED[4])
    fields = {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in result.out.splitlines())
        if value
    }
    assert fields["Name"] == "BJ CAS Array"
    assert fields["Fqdn"] == ARRAY
    assert fields["Site"] == "BJ"
    assert "CAS01" in fields["Members"] and "CAS02" in fields["Members"]
    assert fields["Guid"] == array.guid


def test_seed_array_table(shell: Shell, seed_org: Directory) -> None:
    shell.ok(SEED[0])
    out = [line.split() for line in shell.ok("Get-ClientAccessArray").out.splitlines() if line]
    assert out[0] == ["Name", "Site", "Fqdn", "Members"]
    assert out[2][:5] == ["BJ", "CAS", "Array", "BJ", ARRAY]


# -- through the command line --------------------------------------------------------------
# `casarray shell` is src/casarray/shell/cli.py (the project owner's).


def casarray(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CASARRAY_HOME": str(home), "PYTHONIOENCODING": "utf-8"}
    env.pop("CASARRAY_DIRECTORY", None)
    return subprocess.run(
        [sys.executable, "-m", "casarray", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("backend", ["sqlite"])
def test_seed_lines_through_casarray_shell(
    directory_url: str, seed_org: Directory, casarray_home: Path
) -> None:
    script = "\n".join(SEED)
    proc = casarray("shell", "--directory", directory_url, "-c", script, home=casarray_home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert d_rpc(directory_url) == {"DB01": ARRAY, "DB02": ARRAY}
    assert "WARNING: Existing mailbox databases keep their RpcClientAccessServer" in proc.stdout
    assert "Fqdn" in proc.stdout and ": bj-cas.lab.net" in proc.stdout
    assert "{CAS01, CAS02}" in proc.stdout
    assert "RpcClientAccessServer\n" not in proc.stdout  # line 4 found no database


@pytest.mark.parametrize("backend", ["sqlite"])
def test_casarray_shell_exit_status(
    directory_url: str, seed_org: Directory, casarray_home: Path
) -> None:
    proc = casarray(
        "shell", "--directory", directory_url, "-c", "Get-MailboxDatabase DB07", home=casarray_home
    )
    assert proc.returncode == 1
    assert 'The mailbox database "DB07" couldn\'t be found' in proc.stderr


def d_rpc(url: str) -> dict[str, str]:
    with Directory.open(url) as d:
        return rpc_of(d)
