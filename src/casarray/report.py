"""Tables of the topology for people (rich when on a terminal, plain text otherwise)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from casarray.directory import Directory


def topology_tables(directory: Directory) -> list[Table]:
    org = directory.organization()
    sites = Table(title=f"Organization {org.name} ({', '.join(org.accepted_domains)}): sites")
    for column in ("Name", "Subnets", "Client access array"):
        sites.add_column(column)
    arrays = {a.site: a for a in directory.arrays.get()}
    for site in directory.sites.get():
        array = arrays.get(site.name)
        sites.add_row(site.name, ", ".join(site.subnets), array.fqdn if array else "(none)")

    servers = Table(title="Exchange servers")
    for column in ("Name", "Fqdn", "IPAddress", "Site", "ServerRole", "Install order"):
        servers.add_column(column)
    for s in directory.servers.get():
        servers.add_row(s.name, s.fqdn, s.ip_address, s.site, str(s.roles), str(s.install_order))

    array_table = Table(title="Client access arrays")
    for column in ("Name", "Site", "Fqdn", "Members"):
        array_table.add_column(column)
    for a in arrays.values():
        array_table.add_row(a.name, a.site, a.fqdn, "{" + ", ".join(a.members) + "}")

    databases = Table(title="Mailbox databases")
    for column in ("Name", "Server", "Site", "RpcClientAccessServer", "Mounted", "Mailboxes"):
        databases.add_column(column)
    mailbox_counts: dict[str, int] = {}
    for m in directory.mailboxes.get():
        mailbox_counts[m.database] = mailbox_counts.get(m.database, 0) + 1
    for db in directory.databases.get():
        databases.add_row(
            db.name,
            db.server,
            db.site,
            db.rpc_client_access_server,
            str(db.mounted),
            str(mailbox_counts.get(db.name, 0)),
        )
    return [sites, servers, array_table, databases]


def print_topology(directory: Directory, console: Console | None = None) -> None:
    console = console or Console()
    for table in topology_tables(directory):
        console.print(table)
