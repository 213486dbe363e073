"""server.allow_cross_site_rpc_client_access

Set-ClientAccessServer -AllowCrossSiteRpcClientAccess: whether a Client Access server
serves users whose database names a Client Access server or array of another site.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("server") as batch_op:
        batch_op.add_column(
            sa.Column(
                "allow_cross_site_rpc_client_access",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("server") as batch_op:
        batch_op.drop_column("allow_cross_site_rpc_client_access")
