"""virtual_directory, server.autodiscover_service_internal_uri

The Client Access virtual directories clients are told about (EWS and Autodiscover in
IIS's Default Web Site), made for the Client Access servers already installed as
setup makes them for a new one (InternalUrl https://<FQDN>/EWS/Exchange.asmx and
https://<FQDN>/Autodiscover/Autodiscover.xml, no ExternalUrl, Basic and Windows
authentication on), and each Client Access server's AutoDiscoverServiceInternalUri
(https://<FQDN>/Autodiscover/Autodiscover.xml).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 09:00:00.000000
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Written out here so this revision never changes (directory/virtual_directories.py).
_KINDS = (("WebServices", "/EWS/Exchange.asmx"), ("Autodiscover", "/Autodiscover/Autodiscover.xml"))


def upgrade() -> None:
    with op.batch_alter_table("server") as batch_op:
        batch_op.add_column(
            sa.Column("autodiscover_service_internal_uri", sa.String(length=2048), nullable=True)
        )
    op.create_table(
        "virtual_directory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("internal_url", sa.String(length=2048), nullable=True),
        sa.Column("external_url", sa.String(length=2048), nullable=True),
        sa.Column("basic_authentication", sa.Boolean(), nullable=False),
        sa.Column("windows_authentication", sa.Boolean(), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("when_changed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_virtual_directory_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_virtual_directory")),
        sa.UniqueConstraint("guid", name=op.f("uq_virtual_directory_guid")),
        sa.UniqueConstraint("server_id", "kind", name=op.f("uq_virtual_directory_server_id")),
    )
    with op.batch_alter_table("virtual_directory") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_virtual_directory_server_id"), ["server_id"], unique=False
        )
    conn = op.get_bind()
    now = datetime.now(UTC)
    servers = conn.execute(
        sa.text("SELECT id, fqdn FROM server WHERE client_access = :yes ORDER BY id"),
        {"yes": True},
    ).all()
    for server_id, fqdn in servers:
        host = fqdn.rstrip(".")
        conn.execute(
            sa.text("UPDATE server SET autodiscover_service_internal_uri = :uri WHERE id = :id"),
            {"uri": f"https://{host}/Autodiscover/Autodiscover.xml", "id": server_id},
        )
        for kind, path in _KINDS:
            conn.execute(
                sa.text(
                    "INSERT INTO virtual_directory (guid, server_id, kind, internal_url, "
                    "external_url, basic_authentication, windows_authentication, "
                    "when_created, when_changed) VALUES (:guid, :server, :kind, :url, NULL, "
                    ":yes, :yes, :now, :now)"
                ),
                {
                    "guid": str(uuid.uuid4()),
                    "server": server_id,
                    "kind": kind,
                    "url": f"https://{host}{path}",
                    "yes": True,
                    "now": now,
                },
            )


def downgrade() -> None:
    with op.batch_alter_table("virtual_directory") as batch_op:
        batch_op.drop_index(batch_op.f("ix_virtual_directory_server_id"))
    op.drop_table("virtual_directory")
    with op.batch_alter_table("server") as batch_op:
        batch_op.drop_column("autodiscover_service_internal_uri")
