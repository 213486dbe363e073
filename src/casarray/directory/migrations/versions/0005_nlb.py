"""windows_feature, nlb_cluster, nlb_node, nlb_port_rule, nlb_node_weight

Network Load Balancing: the Windows features installed per server
(Install-WindowsFeature NLB), NLB clusters (FQDN, primary IP, subnet mask, operation
mode, data plane, an optional client access array whose members the nodes follow),
their nodes (HostID, HostPriority, initial and current state), port rules and
per-node load weights.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "windows_feature",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("when_installed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_windows_feature_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_windows_feature")),
        sa.UniqueConstraint("server_id", "name", name=op.f("uq_windows_feature_server_id")),
    )
    op.create_table(
        "nlb_cluster",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("guid", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("name_key", sa.String(length=255), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=False),
        sa.Column("subnet_mask", sa.String(length=45), nullable=False),
        sa.Column("operation_mode", sa.String(length=16), nullable=False),
        sa.Column("data_plane", sa.String(length=16), nullable=False),
        sa.Column("interface_name", sa.String(length=255), nullable=False),
        sa.Column("array_id", sa.Integer(), nullable=True),
        sa.Column("follow_array", sa.Boolean(), nullable=False),
        sa.Column("when_created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("when_changed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["array_id"],
            ["client_access_array.id"],
            name=op.f("fk_nlb_cluster_array_id_client_access_array"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlb_cluster")),
        sa.UniqueConstraint("array_id", name=op.f("uq_nlb_cluster_array_id")),
        sa.UniqueConstraint("guid", name=op.f("uq_nlb_cluster_guid")),
        sa.UniqueConstraint("ip_address", name=op.f("uq_nlb_cluster_ip_address")),
        sa.UniqueConstraint("name_key", name=op.f("uq_nlb_cluster_name_key")),
    )
    op.create_table(
        "nlb_node",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("interface_name", sa.String(length=255), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("host_priority", sa.Integer(), nullable=False),
        sa.Column("initial_host_state", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("drain_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("when_added", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["nlb_cluster.id"],
            name=op.f("fk_nlb_node_cluster_id_nlb_cluster"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_nlb_node_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlb_node")),
        sa.UniqueConstraint("server_id", name=op.f("uq_nlb_node_server_id")),
    )
    with op.batch_alter_table("nlb_node") as batch_op:
        batch_op.create_index(batch_op.f("ix_nlb_node_cluster_id"), ["cluster_id"], unique=False)
    op.create_table(
        "nlb_port_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("start_port", sa.Integer(), nullable=False),
        sa.Column("end_port", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("affinity", sa.String(length=16), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("proxy_protocol", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["nlb_cluster.id"],
            name=op.f("fk_nlb_port_rule_cluster_id_nlb_cluster"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nlb_port_rule")),
    )
    with op.batch_alter_table("nlb_port_rule") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_nlb_port_rule_cluster_id"), ["cluster_id"], unique=False
        )
    op.create_table(
        "nlb_node_weight",
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("load_weight", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["nlb_port_rule.id"],
            name=op.f("fk_nlb_node_weight_rule_id_nlb_port_rule"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_nlb_node_weight_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", "server_id", name=op.f("pk_nlb_node_weight")),
    )
    with op.batch_alter_table("nlb_node_weight") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_nlb_node_weight_server_id"), ["server_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("nlb_node_weight")
    op.drop_table("nlb_port_rule")
    op.drop_table("nlb_node")
    op.drop_table("nlb_cluster")
    op.drop_table("windows_feature")
