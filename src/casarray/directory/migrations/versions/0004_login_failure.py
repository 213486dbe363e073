"""login_failure: failed-login counters shared by every Client Access server

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failure",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Text(), nullable=False),
        sa.Column("strikes", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.Float(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failure")),
    )
    with op.batch_alter_table("login_failure") as batch_op:
        batch_op.create_index(batch_op.f("ix_login_failure_last"), ["last"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failure") as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failure_last"))
    op.drop_table("login_failure")
