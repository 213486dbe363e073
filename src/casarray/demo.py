"""`casarray demo` (what `make demo` runs until the lab exists): builds the seed's
organization in a temporary folder and walks through the seed's directory steps,
printing the topology as it changes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.console import Console

from casarray.directory import Directory, DirectoryError
from casarray.lab import topology
from casarray.report import print_topology


def run_demo(home: str | None = None) -> int:
    console = Console()
    with tempfile.TemporaryDirectory(prefix="casarray-demo-") as scratch:
        folder = Path(home or scratch).resolve()
        os.environ["CASARRAY_HOME"] = str(folder)
        url = f"sqlite:///{folder / 'directory.db'}"
        with Directory.open(url) as d:
            _walk(console, d)
        if home:
            console.print(f"\nThe organization is kept in {folder}.")
    return 0


def _step(console: Console, command: str, why: str) -> None:
    console.rule(f"[bold]{command}")
    console.print(why)


def _walk(console: Console, d: Directory) -> None:
    _step(console, "The seed's 'before'", "Sites BJ and SH, their servers and databases, no array.")
    passwords = topology.build_seed_organization(d)
    for address, password in passwords.items():
        console.print(f"  user {address}  password {password}")
    print_topology(d, console)

    name, fqdn, site = topology.ARRAY
    _step(
        console,
        f'New-ClientAccessArray -Name "{name}" -Fqdn "{fqdn}" -Site "{site}"',
        "The array takes every Client Access server of BJ as a member; old databases keep "
        "their server name.",
    )
    array = d.arrays.new(fqdn, site, name=name)
    console.print(f"  {array.name}: members {', '.join(array.members)}")
    console.print(
        f"  DB01 RpcClientAccessServer: {d.databases.one('DB01').rpc_client_access_server}"
    )

    _step(console, "New-MailboxDatabase DB02 -Server MBX01", "A new database gets the array.")
    console.print(
        f"  DB02 RpcClientAccessServer: {d.databases.new('DB02', 'MBX01').rpc_client_access_server}"
    )

    _step(
        console,
        "setup /mode:install CAS04 in BJ",
        "Membership is implicit: a new Client Access server joins with no command.",
    )
    d.servers.new("CAS04", "ClientAccess", "127.77.1.14")
    console.print(f"  members now: {', '.join(d.arrays.one(fqdn).members)}")

    _step(
        console,
        f"Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer {fqdn}",
        "The seed's step V: point the old databases at the array.",
    )
    changed = d.databases.set_rpc_client_access_server(d.databases.get(server="MBX01"), fqdn)
    console.print(f"  {changed} databases updated")

    _step(console, "Remove-ClientAccessArray 'BJ CAS Array'", "Refused while databases use it.")
    try:
        d.arrays.remove(fqdn)
    except DirectoryError as exc:
        console.print(f"  [red]{exc}")

    _step(
        console,
        "Set-MailboxDatabase DB01 -RpcClientAccessServer CAS02.lab.net",
        "The seed's last line: redirect DB01's users to a good CAS.",
    )
    d.databases.set("DB01", rpc_client_access_server="CAS02.lab.net")
    print_topology(d, console)
