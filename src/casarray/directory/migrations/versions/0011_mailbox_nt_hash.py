"""mailbox.nt_hash

The NT hash of a mailbox's password, for NTLM (EWS and Autodiscover), sealed with the
organization's key-encryption key (`directory.nt_hashes`). Existing mailboxes get none:
their passwords are known only as argon2 hashes, so NTLM works for them once their
password is next set (Basic works meanwhile).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox") as batch_op:
        batch_op.add_column(sa.Column("nt_hash", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailbox") as batch_op:
        batch_op.drop_column("nt_hash")
