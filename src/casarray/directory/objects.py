"""Immutable records the directory hands out, and the names Exchange gives objects
(distinguished names and legacyExchangeDNs)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from casarray.directory.quotas import DATABASE_DEFAULTS, UNLIMITED, Quotas

ADMIN_GROUP = "Exchange Administrative Group (FYDIBOHF23SPDLT)"
EXCHANGE_VERSION = "14.3.123.4"


class ServerRole(enum.Flag):
    """Exchange 2010 server roles a server may hold (several at once)."""

    NONE = 0
    ClientAccess = enum.auto()
    Mailbox = enum.auto()
    HubTransport = enum.auto()

    def names(self) -> list[str]:
        return [r.name for r in ServerRole if r in self and r.name and r is not ServerRole.NONE]

    def __str__(self) -> str:
        return ", ".join(self.names())


def domain_dn(ad_domain: str) -> str:
    return ",".join(f"DC={label}" for label in ad_domain.split("."))


def escape_rdn(value: str) -> str:
    out = []
    for ch in value:
        if ch in ',+"\\<>;=':
            out.append("\\" + ch)
        else:
            out.append(ch)
    text = "".join(out)
    if text.startswith((" ", "#")):
        text = "\\" + text
    if text.endswith(" "):
        text = text[:-1] + "\\ "
    return text


@dataclass(frozen=True)
class Names:
    """The organization's naming context, from which every DN is built."""

    organization: str
    ad_domain: str

    @property
    def config_dn(self) -> str:
        return f"CN=Configuration,{domain_dn(self.ad_domain)}"

    @property
    def exchange_dn(self) -> str:
        return (
            f"CN={escape_rdn(self.organization)},CN=Microsoft Exchange,CN=Services,{self.config_dn}"
        )

    @property
    def admin_group_dn(self) -> str:
        return f"CN={ADMIN_GROUP},CN=Administrative Groups,{self.exchange_dn}"

    @property
    def legacy_prefix(self) -> str:
        return f"/o={self.organization}/ou={ADMIN_GROUP}"

    def site_dn(self, name: str) -> str:
        return f"CN={escape_rdn(name)},CN=Sites,{self.config_dn}"

    def subnet_dn(self, cidr: str) -> str:
        return f"CN={escape_rdn(cidr)},CN=Subnets,CN=Sites,{self.config_dn}"

    def server_dn(self, name: str) -> str:
        return f"CN={escape_rdn(name)},CN=Servers,{self.admin_group_dn}"

    def array_dn(self, name: str) -> str:
        return f"CN={escape_rdn(name)},CN=Arrays,{self.admin_group_dn}"

    def database_dn(self, name: str) -> str:
        return f"CN={escape_rdn(name)},CN=Databases,{self.admin_group_dn}"

    def mailbox_dn(self, alias: str) -> str:
        return f"CN={escape_rdn(alias)},CN=Users,{domain_dn(self.ad_domain)}"

    def server_legacy_dn(self, name: str) -> str:
        return f"{self.legacy_prefix}/cn=Configuration/cn=Servers/cn={name}"

    def array_legacy_dn(self, fqdn: str) -> str:
        return f"{self.legacy_prefix}/cn=Configuration/cn=Servers/cn={fqdn}"

    def database_legacy_dn(self, name: str) -> str:
        return f"{self.legacy_prefix}/cn=Configuration/cn=Databases/cn={name}"

    def mailbox_legacy_dn(self, alias: str) -> str:
        return f"{self.legacy_prefix}/cn=Recipients/cn={alias}"


@dataclass(frozen=True)
class Organization:
    guid: str
    name: str
    ad_domain: str
    accepted_domains: tuple[str, ...]
    default_domain: str
    when_created: datetime


@dataclass(frozen=True)
class Subnet:
    guid: str
    name: str  # the CIDR, as AD names subnets
    site: str
    distinguished_name: str


@dataclass(frozen=True)
class Site:
    guid: str
    name: str
    subnets: tuple[str, ...]
    distinguished_name: str
    when_created: datetime


@dataclass(frozen=True)
class Server:
    guid: str
    name: str
    fqdn: str
    ip_address: str
    site: str
    roles: ServerRole
    install_order: int
    admin_display_version: str
    exchange_legacy_dn: str
    distinguished_name: str
    when_created: datetime
    # A Client Access server setting: serve users whose database names a Client Access
    # server or array of another site instead of referring them there.
    allow_cross_site_rpc_client_access: bool = False
    # A Client Access server setting: where domain-joined clients find Autodiscover
    # (its service connection point); None on other servers.
    autodiscover_service_internal_uri: str | None = None

    @property
    def is_client_access_server(self) -> bool:
        return ServerRole.ClientAccess in self.roles

    @property
    def is_mailbox_server(self) -> bool:
        return ServerRole.Mailbox in self.roles

    @property
    def is_hub_transport_server(self) -> bool:
        return ServerRole.HubTransport in self.roles


@dataclass(frozen=True)
class ClientAccessArray:
    guid: str
    name: str
    fqdn: str
    site: str
    members: tuple[str, ...]
    exchange_legacy_dn: str
    distinguished_name: str
    when_created: datetime
    when_changed: datetime


@dataclass(frozen=True)
class MailboxDatabase:
    guid: str
    name: str
    server: str
    server_fqdn: str
    site: str
    rpc_client_access_server: str
    store_location: str
    mounted: bool
    exchange_legacy_dn: str
    distinguished_name: str
    when_created: datetime
    quotas: Quotas = DATABASE_DEFAULTS  # Set-MailboxDatabase's storage quotas


@dataclass(frozen=True)
class Mailbox:
    guid: str
    alias: str
    display_name: str
    primary_smtp_address: str
    database: str
    server: str
    exchange_legacy_dn: str
    distinguished_name: str
    when_created: datetime
    # Set-Mailbox's quotas; they apply only without -UseDatabaseQuotaDefaults.
    use_database_quota_defaults: bool = True
    quotas: Quotas = UNLIMITED
