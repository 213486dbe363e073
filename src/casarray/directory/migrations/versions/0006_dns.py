"""dns_server, dns_zone, dns_record, dns_client_subnet, dns_query_policy

DNS: the DNS server's settings (its listening address), primary zones added by
cmdlet (the accepted domains' zones need no row), resource records added by cmdlet,
client subnets that see the inside view and the query resolution policies that hide
names from the other clients.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dns_server",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("listening_ip_address", sa.String(length=45), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_server")),
    )
    op.create_table(
        "dns_zone",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("name_key", sa.String(length=255), nullable=False),
        sa.Column("zone_file", sa.String(length=255), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_zone")),
        sa.UniqueConstraint("guid", name=op.f("uq_dns_zone_guid")),
        sa.UniqueConstraint("name_key", name=op.f("uq_dns_zone_name_key")),
    )
    op.create_table(
        "dns_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone_key", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("name_key", sa.String(length=255), nullable=False),
        sa.Column("rr_type", sa.String(length=16), nullable=False),
        sa.Column("data", sa.String(length=1024), nullable=False),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_record")),
        sa.UniqueConstraint(
            "zone_key", "name_key", "rr_type", "data", name=op.f("uq_dns_record_zone_key")
        ),
    )
    with op.batch_alter_table("dns_record") as batch_op:
        batch_op.create_index(batch_op.f("ix_dns_record_zone_key"), ["zone_key"], unique=False)
    op.create_table(
        "dns_client_subnet",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("ipv4_subnets", sa.Text(), nullable=False),
        sa.Column("ipv6_subnets", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_client_subnet")),
        sa.UniqueConstraint("name_key", name=op.f("uq_dns_client_subnet_name_key")),
    )
    op.create_table(
        "dns_query_policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("name_key", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("fqdn", sa.Text(), nullable=False),
        sa.Column("processing_order", sa.Integer(), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_query_policy")),
        sa.UniqueConstraint("name_key", name=op.f("uq_dns_query_policy_name_key")),
    )


def downgrade() -> None:
    op.drop_table("dns_query_policy")
    op.drop_table("dns_client_subnet")
    with op.batch_alter_table("dns_record") as batch_op:
        batch_op.drop_index(batch_op.f("ix_dns_record_zone_key"))
    op.drop_table("dns_record")
    op.drop_table("dns_zone")
    op.drop_table("dns_server")
