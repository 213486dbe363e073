"""server_component_state; organization.session_secret

Set-ServerComponentState (Exchange 2013's maintenance mode): per server, component
and requester, the state that requester set and when. And the session secret: 32
random bytes made once, with which every array member signs and checks session
cookies; an organization that exists already gets its secret here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 12:00:00.000000
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_component_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("requester", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("when_changed", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["server.id"],
            name=op.f("fk_server_component_state_server_id_server"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_component_state")),
        sa.UniqueConstraint(
            "server_id",
            "component",
            "requester",
            name=op.f("uq_server_component_state_server_id"),
        ),
    )
    with op.batch_alter_table("organization") as batch_op:
        batch_op.add_column(sa.Column("session_secret", sa.LargeBinary(), nullable=True))
    organization = sa.table(
        "organization", sa.column("id", sa.Integer()), sa.column("session_secret", sa.LargeBinary())
    )
    bind = op.get_bind()
    for (org_id,) in bind.execute(sa.select(organization.c.id)).all():
        bind.execute(
            organization.update()
            .where(organization.c.id == org_id)
            .values(session_secret=secrets.token_bytes(32))
        )
    with op.batch_alter_table("organization") as batch_op:
        batch_op.alter_column("session_secret", existing_type=sa.LargeBinary(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("organization") as batch_op:
        batch_op.drop_column("session_secret")
    op.drop_table("server_component_state")
