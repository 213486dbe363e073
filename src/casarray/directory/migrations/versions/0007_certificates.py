"""exchange_certificate

Certificates: per server, the certificates and pending certificate requests of its
store (New-, Import-, Enable-, Get-, Remove-ExchangeCertificate), with the services
each is enabled for and its private key sealed with the organization's
key-encryption key, which is kept outside the database.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_certificate",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("thumbprint", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("friendly_name", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("domains", sa.Text(), nullable=False),
        sa.Column("serial_number", sa.String(length=64), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("root_ca_type", sa.String(length=16), nullable=False),
        sa.Column("services", sa.String(length=64), nullable=False),
        sa.Column("is_self_signed", sa.Boolean(), nullable=False),
        sa.Column("public_key_size", sa.Integer(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=True),
        sa.Column("request_pem", sa.Text(), nullable=True),
        sa.Column("private_key", sa.LargeBinary(), nullable=True),
        sa.Column("private_key_exportable", sa.Boolean(), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("when_changed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_exchange_certificate_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_certificate")),
        sa.UniqueConstraint(
            "server_id", "thumbprint", name=op.f("uq_exchange_certificate_server_id")
        ),
    )
    with op.batch_alter_table("exchange_certificate") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_certificate_key_id"), ["key_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_certificate_server_id"), ["server_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("exchange_certificate")
