"""nlb_cluster.heartbeat_period, heartbeat_tolerance

NLB's heartbeat settings (AliveMsgPeriod in milliseconds, AliveMsgTolerance) per
cluster, for NLB on the hosts: every member host sends one each period, and one that
misses the tolerance in a row has left. Existing clusters get NLB's defaults, 1000 ms
and 5.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("nlb_cluster") as batch_op:
        batch_op.add_column(
            sa.Column("heartbeat_period", sa.Integer(), nullable=False, server_default="1000")
        )
        batch_op.add_column(
            sa.Column("heartbeat_tolerance", sa.Integer(), nullable=False, server_default="5")
        )


def downgrade() -> None:
    with op.batch_alter_table("nlb_cluster") as batch_op:
        batch_op.drop_column("heartbeat_tolerance")
        batch_op.drop_column("heartbeat_period")
