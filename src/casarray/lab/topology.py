"""The lab organization of DESIGN.md, in the seed's "before" state: sites BJ and SH,
their servers, databases created before any client access array, and a few users with
a few messages each (in their INBOX, as if mailed to them).

This table is the one place the lab's names and addresses are written down (the DNS
server's address too: it goes into the directory, `Set-DnsServerSetting
-ListeningIPAddress`); everything else reads them back from the directory. A server
added later (`casarray lab add-server`) gets the lowest free address of its site's
first subnet from .11 up (`next_address`)."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from casarray.directory import Directory
from casarray.directory.errors import InvalidValueError


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
FIRST_HOST = 11  # servers added to a site take addresses from .11 up
# (from, subject, text): each user's INBOX; "{name}" is the user's display name.
MESSAGES = (
    (
        "administrator",
        "Welcome to lab.net",
        "Hello {name},\n\nyour mailbox is ready. Outlook finds its server by itself "
        "(Autodiscover); web mail is at /owa.\n\nThe administrator\n",
    ),
    (
        "helpdesk",
        "Planned maintenance of the Client Access servers",
        "Hello {name},\n\nthe Client Access servers will be replaced one by one this "
        "weekend. Your mail stays where it is, in your mailbox database.\n\nHelp desk\n",
    ),
    (
        "administrator",
        "Your password",
        "Hello {name},\n\nplease keep your password to yourself; the help desk never "
        "asks for it.\n\nThe administrator\n",
    ),
)


def lab_password() -> str:
    """A new user's password: 12 URL-safe characters, never starting with "-" (which a
    command-line client would take for an option)."""
    while (password := secrets.token_urlsafe(9)).startswith("-"):
        pass
    return password


def hosts_layout() -> tuple[dict[str, tuple[str, ...]], tuple[LabServer, ...], str]:
    """The sites, servers and DNS address of the lab on several hosts (`--hosts`): the
    same servers at the addresses of `lab.hosts.plan`."""
    from casarray.lab.hosts import plan

    servers = tuple(
        LabServer(s.name, s.roles, plan.SERVER_ADDRESSES[s.name][1], s.site) for s in SERVERS
    )
    return dict(plan.SITES), servers, plan.DNS_ADDRESS


def build_seed_organization(
    directory: Directory, *, hosts: bool = False, store_url: str | None = None
) -> dict[str, str]:
    """Create the "before" organization (at the hosts lab's addresses with `hosts`; its
    mailbox databases each in a schema of the PostgreSQL database at `store_url` when
    given, else SQLite files); returns each user's generated password (shown once; only
    the hashes are stored)."""
    from casarray.mailstore.store import postgres_location

    sites, servers, dns_address = hosts_layout() if hosts else (SITES, SERVERS, DNS_ADDRESS)
    for site, subnets in sites.items():
        directory.sites.new(site, subnets)
    for server in servers:
        directory.servers.new(server.name, server.roles, server.ip_address, site=server.site)
    for name, host in DATABASES:
        location = postgres_location(store_url, name.lower()) if store_url else None
        directory.databases.new(name, host, store_location=location, mounted=True)
    directory.dns.set_listening_address(dns_address)
    passwords: dict[str, str] = {}
    domain = directory.organization().default_domain
    for alias, display, database in USERS:
        password = lab_password()
        mailbox = directory.mailboxes.new(
            name=display,
            alias=alias,
            primary_smtp_address=f"{alias}@{domain}",
            database=database,
            password=password,
        )
        passwords[f"{alias}@{domain}"] = password
        deliver_welcome(directory, mailbox.guid, mailbox.database, display, f"{alias}@{domain}")
    return passwords


def welcome_messages(name: str, address: str, domain: str) -> list[tuple[bytes, datetime]]:
    """The user's first messages (RFC 5322, CRLF) with their dates, oldest first."""
    messages: list[tuple[bytes, datetime]] = []
    now = datetime.now(UTC).replace(microsecond=0)
    for age, (sender, subject, text) in zip((3, 2, 1), MESSAGES, strict=True):
        when = now - timedelta(days=age)
        message = EmailMessage()
        message["From"] = f"{sender.capitalize()} <{sender}@{domain}>"
        message["To"] = f"{name} <{address}>"
        message["Subject"] = subject
        message["Date"] = format_datetime(when)
        message["Message-ID"] = make_msgid(domain=domain)
        message.set_content(text.format(name=name))
        data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        messages.append((data, when))
    return messages


def deliver_welcome(
    directory: Directory, mailbox_guid: str, database: str, name: str, address: str
) -> None:
    """Put the welcome messages in the mailbox's INBOX (its database must be mounted)."""
    from casarray.mailstore.provisioning import open_mailbox

    box = open_mailbox(directory.databases.one(database), mailbox_guid)
    domain = address.rpartition("@")[2]
    for data, when in welcome_messages(name, address, domain):
        box.append("INBOX", data, (), when)


def next_address(directory: Directory, site: str) -> str:
    """The lowest address from .11 up of the site's first subnet that no server, NLB
    cluster or DNS server uses."""
    record = directory.sites.one(site)
    if not record.subnets:
        raise InvalidValueError("Site", record.name, "has no subnet to take an address from.")
    network = ipaddress.ip_network(record.subnets[0], strict=False)
    taken = {server.ip_address for server in directory.servers.get()}
    taken |= {cluster.ip_address for cluster in directory.nlb.clusters()}
    taken.add(directory.dns.listening_address())
    for index, host in enumerate(network.hosts(), start=1):
        if index >= FIRST_HOST and str(host) not in taken:
            return str(host)
    raise InvalidValueError("Site", record.name, f"has no free address left in {network}.")
