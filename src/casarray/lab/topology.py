"""The lab organization of DESIGN.md, in the seed's "before" state: sites BJ and SH,
their servers, databases created before any client access array, and a few users.

This table is the one place the lab's names and addresses are written down; everything
else reads them back from the directory."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from casarray.directory import Directory
from casarray.directory.mailboxes import hash_password


@dataclass(frozen=True)
class LabServer:
    name: str
    roles: str
    ip_address: str
    site: str


SITES = {"BJ": ("127.77.1.0/24",), "SH": ("127.77.2.0/24",)}
SERVERS = (
    LabServer("CAS01", "ClientAccess", "127.77.1.11", "BJ"),
    LabServer("CAS02", "ClientAccess", "127.77.1.12", "BJ"),
    LabServer("MBX01", "Mailbox,HubTransport", "127.77.1.21", "BJ"),
    LabServer("CAS03", "ClientAccess", "127.77.2.11", "SH"),
    LabServer("MBX02", "Mailbox,HubTransport", "127.77.2.21", "SH"),
)
DATABASES = (("DB01", "MBX01"), ("DB03", "MBX02"))
USERS = (
    ("alice", "Alice Wang", "DB01"),
    ("bob", "Bob Li", "DB01"),
    ("carol", "Carol Zhang", "DB03"),
)
ARRAY = ("BJ CAS Array", "bj-cas.lab.net", "BJ")
CLUSTER_IP = "127.77.1.10"
DNS_ADDRESS = "127.77.0.53"


def build_seed_organization(directory: Directory) -> dict[str, str]:
    """Create the "before" organization; returns each user's generated password (shown
    once; only the hashes are stored)."""
    for site, subnets in SITES.items():
        directory.sites.new(site, subnets)
    for server in SERVERS:
        directory.servers.new(server.name, server.roles, server.ip_address, site=server.site)
    for name, server in DATABASES:
        directory.databases.new(name, server, mounted=True)
    passwords: dict[str, str] = {}
    domain = directory.organization().default_domain
    for alias, display, database in USERS:
        password = secrets.token_urlsafe(9)
        directory.mailboxes.new(
            name=display,
            alias=alias,
            primary_smtp_address=f"{alias}@{domain}",
            database=database,
            password_hash=hash_password(password),
        )
        passwords[f"{alias}@{domain}"] = password
    return passwords
