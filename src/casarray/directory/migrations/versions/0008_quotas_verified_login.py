"""quotas and verified_login

Storage quotas as Exchange keeps them: per mailbox database (Set-MailboxDatabase
-IssueWarningQuota, -ProhibitSendQuota, -ProhibitSendReceiveQuota; existing databases
get Exchange 2010's defaults, as a new one does) and per mailbox (Set-Mailbox, with
-UseDatabaseQuotaDefaults). And verified_login: logins whose password was verified
lately, shared by every Client Access process so a repeated login skips argon2.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 06:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Exchange 2010's defaults for a mailbox database (see directory/quotas.py).
_DEFAULTS = {
    "issue_warning_quota": 2_039_480_320,
    "prohibit_send_quota": 2_147_483_648,
    "prohibit_send_receive_quota": 2_469_396_480,
}


def upgrade() -> None:
    with op.batch_alter_table("mailbox_database") as batch_op:
        for column in _DEFAULTS:
            batch_op.add_column(sa.Column(column, sa.BigInteger(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE mailbox_database SET "
            + ", ".join(f"{column} = {value}" for column, value in _DEFAULTS.items())
        )
    )
    with op.batch_alter_table("mailbox") as batch_op:
        batch_op.add_column(
            sa.Column(
                "use_database_quota_defaults",
                sa.Boolean(),
                nullable=False,
                server_default=sa.true(),
            )
        )
        for column in _DEFAULTS:
            batch_op.add_column(sa.Column(column, sa.BigInteger(), nullable=True))
    op.create_table(
        "verified_login",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("user_key", sa.String(length=400), nullable=False),
        sa.Column("mailbox_guid", sa.String(length=36), nullable=False),
        sa.Column("password_check", sa.String(length=64), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_verified_login")),
    )
    with op.batch_alter_table("verified_login") as batch_op:
        batch_op.create_index(batch_op.f("ix_verified_login_user_key"), ["user_key"])
        batch_op.create_index(batch_op.f("ix_verified_login_mailbox_guid"), ["mailbox_guid"])
        batch_op.create_index(batch_op.f("ix_verified_login_expires"), ["expires"])


def downgrade() -> None:
    with op.batch_alter_table("verified_login") as batch_op:
        batch_op.drop_index(batch_op.f("ix_verified_login_expires"))
        batch_op.drop_index(batch_op.f("ix_verified_login_mailbox_guid"))
        batch_op.drop_index(batch_op.f("ix_verified_login_user_key"))
    op.drop_table("verified_login")
    with op.batch_alter_table("mailbox") as batch_op:
        for column in reversed(list(_DEFAULTS)):
            batch_op.drop_column(column)
        batch_op.drop_column("use_database_quota_defaults")
    with op.batch_alter_table("mailbox_database") as batch_op:
        for column in reversed(list(_DEFAULTS)):
            batch_op.drop_column(column)
