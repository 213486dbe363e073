"""The directory's tables (SQLAlchemy 2 declarative models).

Rows are storage only; the domain rules are in the service modules and callers get
immutable records from `objects.py`. Every name-like column has a lower-case `*_key`
twin with a unique index, so lookups are case-insensitive and indexed on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no
    zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TopologyRow(Base):
    """One row: the topology version, bumped by every change."""

    __tablename__ = "topology"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class OrganizationRow(Base):
    __tablename__ = "organization"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    ad_domain: Mapped[str] = mapped_column(String(255), nullable=False)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # 32 random bytes made once (revision 0003): the key every array member signs and
    # checks session cookies with. A secret: whoever reads the directory can forge
    # sessions, so protect the database (file permissions, PostgreSQL roles).
    session_secret: Mapped[bytes] = mapped_column(LargeBinary(), nullable=False)


class AcceptedDomainRow(Base):
    """An accepted domain. `domain` is lower case: a domain, or "*.domain" for it and
    its subdomains. Name, GUID and DomainType came with revision 0009 (the domains
    before it got their domain as name, and Authoritative)."""

    __tablename__ = "accepted_domain"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    domain_type: Mapped[str] = mapped_column(String(16), nullable=False)


class SiteRow(Base):
    __tablename__ = "site"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    subnets: Mapped[list[SubnetRow]] = relationship(back_populates="site", order_by="SubnetRow.id")


class SubnetRow(Base):
    __tablename__ = "subnet"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    cidr: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), nullable=False, index=True)
    site: Mapped[SiteRow] = relationship(back_populates="subnets")


class ServerRow(Base):
    __tablename__ = "server"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(15), nullable=False)
    name_key: Mapped[str] = mapped_column(String(15), nullable=False, unique=True)
    fqdn: Mapped[str] = mapped_column(String(255), nullable=False)
    fqdn_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    ip_address: Mapped[str] = mapped_column(String(45), nullable=False, unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), nullable=False, index=True)
    client_access: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    mailbox: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    hub_transport: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    install_order: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    version: Mapped[str] = mapped_column(String(32), nullable=False)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Set-ClientAccessServer -AllowCrossSiteRpcClientAccess (revision 0002).
    allow_cross_site_rpc_client_access: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )
    # Set-ClientAccessServer -AutoDiscoverServiceInternalUri (revision 0010): the URL
    # of the server's Autodiscover service connection point; setup sets it to
    # https://<fqdn>/Autodiscover/Autodiscover.xml on a Client Access server.
    autodiscover_service_internal_uri: Mapped[str | None] = mapped_column(
        String(2048), nullable=True
    )
    site: Mapped[SiteRow] = relationship()


class ClientAccessArrayRow(Base):
    __tablename__ = "client_access_array"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    fqdn: Mapped[str] = mapped_column(String(255), nullable=False)
    fqdn_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"), nullable=False, unique=True)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    site: Mapped[SiteRow] = relationship()


class MailboxDatabaseRow(Base):
    __tablename__ = "mailbox_database"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("server.id"), nullable=False, index=True)
    rpc_client_access_server: Mapped[str] = mapped_column(String(255), nullable=False)
    rpc_client_access_server_key: Mapped[str] = mapped_column(
        String(255), nullable=False, index=True
    )
    store_location: Mapped[str] = mapped_column(Text, nullable=False)
    mounted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Set-MailboxDatabase's storage quotas in bytes, NULL for Unlimited (revision 0008).
    issue_warning_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prohibit_send_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prohibit_send_receive_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    server: Mapped[ServerRow] = relationship()


class MailboxRow(Base):
    __tablename__ = "mailbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    alias: Mapped[str] = mapped_column(String(64), nullable=False)
    alias_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(256), nullable=False)
    display_name_key: Mapped[str] = mapped_column(String(256), nullable=False, index=True)
    primary_smtp_address: Mapped[str] = mapped_column(String(320), nullable=False)
    smtp_key: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    database_id: Mapped[int] = mapped_column(
        ForeignKey("mailbox_database.id"), nullable=False, index=True
    )
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    # The password's NT hash for NTLM, sealed with the organization's KEK; NULL until a
    # password is set after revision 0011 (`directory.nt_hashes`).
    nt_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Set-Mailbox's own quotas (bytes, NULL for Unlimited), used when it doesn't take
    # its database's (-UseDatabaseQuotaDefaults $false) (revision 0008).
    use_database_quota_defaults: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True, server_default=true()
    )
    issue_warning_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prohibit_send_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    prohibit_send_receive_quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    database: Mapped[MailboxDatabaseRow] = relationship()


class ServerComponentStateRow(Base):
    """Set-ServerComponentState: one requester's word on one component of one server
    (revision 0003). A component is Inactive while any requester's entry says so."""

    __tablename__ = "server_component_state"
    __table_args__ = (UniqueConstraint("server_id", "component", "requester"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), nullable=False
    )
    component: Mapped[str] = mapped_column(String(64), nullable=False)  # canonical name
    requester: Mapped[str] = mapped_column(String(32), nullable=False)  # canonical name
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # Active or Inactive
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class LoginFailureRow(Base):
    """Failed logins of one user or client address, shared by every Client Access
    server (as Active Directory keeps badPwdCount and lockoutTime on the account), so
    guesses spread over an array's members are counted together (revision 0004).
    Times are seconds since the epoch."""

    __tablename__ = "login_failure"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)  # user:... or addr:...
    failures: Mapped[str] = mapped_column(Text, nullable=False, default="")  # recent times
    strikes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    blocked_until: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    last: Mapped[float] = mapped_column(Float, nullable=False, index=True)


class VerifiedLoginRow(Base):
    """A login whose password was verified lately (revision 0008), so the next login
    with the same credentials, by any process, skips argon2 (`directory.verified_logins`).
    `key` is an HMAC of the login and password under a key derived from the
    organization's secret, never the password; `password_check` a digest of the
    mailbox's password hash then, so a password change stops the entry matching."""

    __tablename__ = "verified_login"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_key: Mapped[str] = mapped_column(String(400), nullable=False, index=True)
    mailbox_guid: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    password_check: Mapped[str] = mapped_column(String(64), nullable=False)
    expires: Mapped[float] = mapped_column(Float, nullable=False, index=True)


# -- Network Load Balancing (revision 0005) --------------------------------------------


class WindowsFeatureRow(Base):
    """Install-WindowsFeature: a Windows feature (NLB, RSAT-NLB) installed on a server."""

    __tablename__ = "windows_feature"
    __table_args__ = (UniqueConstraint("server_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(64), nullable=False)  # canonical, e.g. NLB
    when_installed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class NlbClusterRow(Base):
    """An NLB cluster: its FQDN, primary IP and settings. With `follow_array` and an
    array, its nodes are the array's members (computed when read)."""

    __tablename__ = "nlb_cluster"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    name_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    ip_address: Mapped[str] = mapped_column(String(45), nullable=False, unique=True)
    subnet_mask: Mapped[str] = mapped_column(String(45), nullable=False)
    operation_mode: Mapped[str] = mapped_column(String(16), nullable=False)
    data_plane: Mapped[str] = mapped_column(String(16), nullable=False)
    interface_name: Mapped[str] = mapped_column(String(255), nullable=False)
    array_id: Mapped[int | None] = mapped_column(
        ForeignKey("client_access_array.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    follow_array: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # NLB's AliveMsgPeriod (ms) and AliveMsgTolerance
    heartbeat_period: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1000, server_default="1000"
    )
    heartbeat_tolerance: Mapped[int] = mapped_column(
        Integer, nullable=False, default=5, server_default="5"
    )
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class NlbNodeRow(Base):
    """A server's place in an NLB cluster; a server is in at most one cluster."""

    __tablename__ = "nlb_node"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("nlb_cluster.id", ondelete="CASCADE"), nullable=False, index=True
    )
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    interface_name: Mapped[str] = mapped_column(String(255), nullable=False)
    host_id: Mapped[int] = mapped_column(Integer, nullable=False)  # 1..32
    host_priority: Mapped[int] = mapped_column(Integer, nullable=False)  # 1..32, unique
    initial_host_state: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # admin state
    drain_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    when_added: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class NlbPortRuleRow(Base):
    """A port rule: StartPort..EndPort on one cluster IP (or all: `ip` NULL)."""

    __tablename__ = "nlb_port_rule"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(
        ForeignKey("nlb_cluster.id", ondelete="CASCADE"), nullable=False, index=True
    )
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    start_port: Mapped[int] = mapped_column(Integer, nullable=False)
    end_port: Mapped[int] = mapped_column(Integer, nullable=False)
    protocol: Mapped[str] = mapped_column(String(8), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    affinity: Mapped[str] = mapped_column(String(16), nullable=False)
    timeout: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # minutes
    # casarray's own: the balancer opens each connection to a node with a PROXY
    # protocol v2 header naming the client (the node trusts it from the cluster IP)
    proxy_protocol: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


class NlbNodeWeightRow(Base):
    """Set-NlbClusterPortRuleNodeWeight -LoadWeight: a node's weight on one rule (no row:
    Equal). Keyed by server, so a node that follows an array needs no node row."""

    __tablename__ = "nlb_node_weight"
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("nlb_port_rule.id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    load_weight: Mapped[int] = mapped_column(Integer, nullable=False)  # 0..100


# -- DNS (revision 0006) ----------------------------------------------------------------


class DnsServerRow(Base):
    """The DNS server's settings (one row, created when first set; none: defaults)."""

    __tablename__ = "dns_server"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    listening_ip_address: Mapped[str | None] = mapped_column(String(45), nullable=True)


class DnsZoneRow(Base):
    """Add-DnsServerPrimaryZone: a zone beside the accepted domains' (which need no row)."""

    __tablename__ = "dns_zone"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    name_key: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    zone_file: Mapped[str] = mapped_column(String(255), nullable=False)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class DnsRecordRow(Base):
    """A resource record added by cmdlet. `zone_key` names the zone (an accepted domain
    or a dns_zone row); `name` is relative to it ("@" for the apex); `data` is the
    record's data in master-file form with absolute names."""

    __tablename__ = "dns_record"
    __table_args__ = (UniqueConstraint("zone_key", "name_key", "rr_type", "data"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    zone_key: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    name_key: Mapped[str] = mapped_column(String(255), nullable=False)
    rr_type: Mapped[str] = mapped_column(String(16), nullable=False)
    data: Mapped[str] = mapped_column(String(1024), nullable=False)
    ttl: Mapped[int] = mapped_column(Integer, nullable=False)  # seconds
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class DnsClientSubnetRow(Base):
    """Add-DnsServerClientSubnet: a named set of client networks (comma-separated
    CIDRs) that see the inside view, beside the sites' subnets."""

    __tablename__ = "dns_client_subnet"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    ipv4_subnets: Mapped[str] = mapped_column(Text, nullable=False, default="")
    ipv6_subnets: Mapped[str] = mapped_column(Text, nullable=False, default="")


class DnsQueryPolicyRow(Base):
    """Add-DnsServerQueryResolutionPolicy (reduced): names (comma-separated, "*."
    wildcards) that clients outside the inside view are denied (NXDOMAIN)."""

    __tablename__ = "dns_query_policy"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    fqdn: Mapped[str] = mapped_column(Text, nullable=False)
    processing_order: Mapped[int] = mapped_column(Integer, nullable=False)
    is_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


# -- Certificates (revision 0007) --------------------------------------------------------


class ExchangeCertificateRow(Base):
    """A certificate (or a pending request) in one server's store, as
    Get-ExchangeCertificate shows it. `certificate_pem` is the leaf and its issuers,
    `request_pem` the PKCS#10 request while pending; `private_key` is sealed with the
    organization's key-encryption key (see casarray.pki.vault), never plain. `key_id`
    (SHA-256 of the public key) finds the request a certificate completes."""

    __tablename__ = "exchange_certificate"
    __table_args__ = (UniqueConstraint("server_id", "thumbprint"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), nullable=False, index=True
    )
    thumbprint: Mapped[str] = mapped_column(String(40), nullable=False)  # SHA-1, upper hex
    key_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    friendly_name: Mapped[str] = mapped_column(String(64), nullable=False)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    issuer: Mapped[str] = mapped_column(Text, nullable=False)
    domains: Mapped[str] = mapped_column(Text, nullable=False)  # one name per line
    serial_number: Mapped[str] = mapped_column(String(64), nullable=False)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    not_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # Valid, Untrusted, Pending
    root_ca_type: Mapped[str] = mapped_column(String(16), nullable=False)
    services: Mapped[str] = mapped_column(String(64), nullable=False)  # "IMAP, IIS" or "None"
    is_self_signed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    public_key_size: Mapped[int] = mapped_column(Integer, nullable=False)
    certificate_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    request_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    private_key: Mapped[bytes | None] = mapped_column(LargeBinary(), nullable=True)
    private_key_exportable: Mapped[bool] = mapped_column(Boolean, nullable=False)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


# -- Hub Transport (revision 0009) -------------------------------------------------------


class ReceiveConnectorRow(Base):
    """A Hub Transport server's receive connector. Multi-valued properties are kept one
    value a line (`bindings` "ip:port", `remote_ip_ranges`), flags comma-separated in
    Exchange's order ("Tls, BasicAuth", or "None")."""

    __tablename__ = "receive_connector"
    __table_args__ = (UniqueConstraint("server_id", "name_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    bindings: Mapped[str] = mapped_column(Text, nullable=False)
    remote_ip_ranges: Mapped[str] = mapped_column(Text, nullable=False)
    auth_mechanism: Mapped[str] = mapped_column(String(255), nullable=False)
    permission_groups: Mapped[str] = mapped_column(String(255), nullable=False)
    max_message_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    max_recipients_per_message: Mapped[int] = mapped_column(Integer, nullable=False)
    banner: Mapped[str | None] = mapped_column(Text, nullable=True)
    fqdn: Mapped[str] = mapped_column(String(255), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SendConnectorRow(Base):
    """An organization's send connector. `address_spaces` one "pattern;cost" a line,
    `smart_hosts` one host a line; its source servers are `send_connector_source` rows."""

    __tablename__ = "send_connector"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    name_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    address_spaces: Mapped[str] = mapped_column(Text, nullable=False)
    smart_hosts: Mapped[str] = mapped_column(Text, nullable=False, default="")
    dns_routing_enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    port: Mapped[int] = mapped_column(Integer, nullable=False)
    require_tls: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    max_message_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class SendConnectorSourceRow(Base):
    """A send connector's SourceTransportServers entry."""

    __tablename__ = "send_connector_source"
    connector_id: Mapped[int] = mapped_column(
        ForeignKey("send_connector.id", ondelete="CASCADE"), primary_key=True
    )
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class TransportServerRow(Base):
    """Set-TransportServer: a Hub Transport server's settings (no row: Exchange's
    defaults). Timespans in seconds."""

    __tablename__ = "transport_server"
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), primary_key=True
    )
    message_expiration_timeout: Mapped[int] = mapped_column(Integer, nullable=False)
    message_retry_interval: Mapped[int] = mapped_column(Integer, nullable=False)
    max_outbound_connections: Mapped[int] = mapped_column(Integer, nullable=False)


# -- Client Access virtual directories (revision 0010) ---------------------------------


class VirtualDirectoryRow(Base):
    """One IIS virtual directory of a Client Access server that clients are told
    about: `kind` WebServices (EWS) or Autodiscover. Setup makes both with the server
    (`directory.virtual_directories`)."""

    __tablename__ = "virtual_directory"
    __table_args__ = (UniqueConstraint("server_id", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    guid: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    server_id: Mapped[int] = mapped_column(
        ForeignKey("server.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    internal_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    external_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    basic_authentication: Mapped[bool] = mapped_column(Boolean, nullable=False)
    windows_authentication: Mapped[bool] = mapped_column(Boolean, nullable=False)
    when_created: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    when_changed: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
