"""accepted domains' names and types, receive_connector, send_connector,
send_connector_source, transport_server

Hub Transport: accepted domains get a name, a GUID and a DomainType (those already
there keep their domain as name and are Authoritative; an organization without one gets
its domain, as the default); receive connectors per Hub Transport server, with the two
that Exchange 2010 setup makes ("Default SERVER" on 0.0.0.0:25 and "Client SERVER" on
0.0.0.0:587) created for the Hub Transport servers already installed; send connectors
and their source servers; and Set-TransportServer's settings.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 16:00:00.000000
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# What Exchange 2010 setup gives a Hub Transport server (see
# directory/transport/values.py); written out here so this revision never changes.
_ALL_IPV4 = "0.0.0.0-255.255.255.255"
_DEFAULT_CONNECTORS = (
    (
        "Default",
        "0.0.0.0:25",
        "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer",
        "AnonymousUsers, ExchangeUsers, ExchangeServers, ExchangeLegacyServers",
    ),
    (
        "Client",
        "0.0.0.0:587",
        "Tls, Integrated, BasicAuth, BasicAuthRequireTLS",
        "ExchangeUsers",
    ),
)
_MAX_MESSAGE_SIZE = 10 * 1024**2
_MAX_RECIPIENTS = 200


def _accepted_domains(conn: sa.Connection) -> None:
    with op.batch_alter_table("accepted_domain") as batch_op:
        batch_op.add_column(sa.Column("guid", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("name", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("name_key", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("domain_type", sa.String(length=16), nullable=True))
    rows = conn.execute(sa.text("SELECT id, domain FROM accepted_domain ORDER BY id")).all()
    for row_id, domain in rows:
        conn.execute(
            sa.text(
                "UPDATE accepted_domain SET guid = :guid, name = :name, name_key = :key, "
                "domain_type = 'Authoritative' WHERE id = :id"
            ),
            {
                "guid": str(uuid.uuid4()),
                "name": domain[:64],
                "key": domain[:64].lower(),
                "id": row_id,
            },
        )
    organization = conn.execute(sa.text("SELECT ad_domain FROM organization")).first()
    if not rows and organization is not None:
        domain = organization[0].lower()
        conn.execute(
            sa.text(
                "INSERT INTO accepted_domain (domain, is_default, guid, name, name_key, "
                "domain_type) VALUES (:domain, :default, :guid, :name, :key, 'Authoritative')"
            ),
            {
                "domain": domain,
                "default": True,
                "guid": str(uuid.uuid4()),
                "name": domain[:64],
                "key": domain[:64],
            },
        )
    with op.batch_alter_table("accepted_domain") as batch_op:
        for column, length in (("guid", 36), ("name", 64), ("name_key", 64), ("domain_type", 16)):
            batch_op.alter_column(column, existing_type=sa.String(length=length), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_accepted_domain_guid"), ["guid"])
        batch_op.create_unique_constraint(batch_op.f("uq_accepted_domain_name_key"), ["name_key"])


def _tables() -> None:
    op.create_table(
        "receive_connector",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("bindings", sa.Text(), nullable=False),
        sa.Column("remote_ip_ranges", sa.Text(), nullable=False),
        sa.Column("auth_mechanism", sa.String(length=255), nullable=False),
        sa.Column("permission_groups", sa.String(length=255), nullable=False),
        sa.Column("max_message_size", sa.BigInteger(), nullable=False),
        sa.Column("max_recipients_per_message", sa.Integer(), nullable=False),
        sa.Column("banner", sa.Text(), nullable=True),
        sa.Column("fqdn", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("when_changed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_receive_connector_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receive_connector")),
        sa.UniqueConstraint("guid", name=op.f("uq_receive_connector_guid")),
        sa.UniqueConstraint("server_id", "name_key", name=op.f("uq_receive_connector_server_id")),
    )
    with op.batch_alter_table("receive_connector") as batch_op:
        batch_op.create_index(batch_op.f("ix_receive_connector_server_id"), ["server_id"])
        batch_op.create_index(batch_op.f("ix_receive_connector_name_key"), ["name_key"])
    op.create_table(
        "send_connector",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("address_spaces", sa.Text(), nullable=False),
        sa.Column("smart_hosts", sa.Text(), nullable=False),
        sa.Column("dns_routing_enabled", sa.Boolean(), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("require_tls", sa.Boolean(), nullable=False),
        sa.Column("max_message_size", sa.BigInteger(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("when_changed", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_send_connector")),
        sa.UniqueConstraint("guid", name=op.f("uq_send_connector_guid")),
        sa.UniqueConstraint("name_key", name=op.f("uq_send_connector_name_key")),
    )
    op.create_table(
        "send_connector_source",
        sa.Column("connector_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["send_connector.id"],
            name=op.f("fk_send_connector_source_connector_id_send_connector"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_send_connector_source_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connector_id", "server_id", name=op.f("pk_send_connector_source")),
    )
    with op.batch_alter_table("send_connector_source") as batch_op:
        batch_op.create_index(batch_op.f("ix_send_connector_source_server_id"), ["server_id"])
    op.create_table(
        "transport_server",
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("message_expiration_timeout", sa.Integer(), nullable=False),
        sa.Column("message_retry_interval", sa.Integer(), nullable=False),
        sa.Column("max_outbound_connections", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_transport_server_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server_id", name=op.f("pk_transport_server")),
    )


def _default_connectors(conn: sa.Connection) -> None:
    now = datetime.now(UTC)
    servers = conn.execute(
        sa.text("SELECT id, name, fqdn FROM server WHERE hub_transport = :yes ORDER BY id"),
        {"yes": True},
    ).all()
    for server_id, name, fqdn in servers:
        for usage, binding, auth, groups in _DEFAULT_CONNECTORS:
            connector = f"{usage} {name}"
            conn.execute(
                sa.text(
                    "INSERT INTO receive_connector (guid, server_id, name, name_key, bindings, "
                    "remote_ip_ranges, auth_mechanism, permission_groups, max_message_size, "
                    "max_recipients_per_message, banner, fqdn, enabled, when_created, "
                    "when_changed) VALUES (:guid, :server_id, :name, :key, :bindings, "
                    ":ranges, :auth, :groups, :size, :recipients, NULL, :fqdn, :enabled, "
                    ":now, :now)"
                ),
                {
                    "guid": str(uuid.uuid4()),
                    "server_id": server_id,
                    "name": connector,
                    "key": connector.lower(),
                    "bindings": binding,
                    "ranges": _ALL_IPV4,
                    "auth": auth,
                    "groups": groups,
                    "size": _MAX_MESSAGE_SIZE,
                    "recipients": _MAX_RECIPIENTS,
                    "fqdn": fqdn,
                    "enabled": True,
                    "now": now,
                },
            )


def upgrade() -> None:
    conn = op.get_bind()
    _accepted_domains(conn)
    _tables()
    _default_connectors(conn)


def downgrade() -> None:
    op.drop_table("transport_server")
    with op.batch_alter_table("send_connector_source") as batch_op:
        batch_op.drop_index(batch_op.f("ix_send_connector_source_server_id"))
    op.drop_table("send_connector_source")
    op.drop_table("send_connector")
    with op.batch_alter_table("receive_connector") as batch_op:
        batch_op.drop_index(batch_op.f("ix_receive_connector_name_key"))
        batch_op.drop_index(batch_op.f("ix_receive_connector_server_id"))
    op.drop_table("receive_connector")
    with op.batch_alter_table("accepted_domain") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_accepted_domain_name_key"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_accepted_domain_guid"), type_="unique")
        for column in ("domain_type", "name_key", "name", "guid"):
            batch_op.drop_column(column)
