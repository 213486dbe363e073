"""The tables of a mailbox database (SQLAlchemy Core): the same on SQLite and
PostgreSQL, created idempotently when a store is opened, with the schema version in
`ms_meta`.

Every table name starts with `ms_` so that a mailbox database may share a PostgreSQL
schema with the directory (which has its own `mailbox` table).

- `ms_mailbox`: one row per mailbox (its directory GUID) and the last UIDVALIDITY it
  handed out, so every folder incarnation gets a new one.
- `ms_folder`: name (canonical, see `names`), UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ,
  SPECIAL-USE.
- `ms_subscription`: subscribed names, which need not exist (RFC 3501 SUBSCRIBE).
- `ms_message`: one row per message in a folder: UID, flags (system flags as bits,
  keywords as text), INTERNALDATE (epoch seconds and the zone's offset), size, modseq,
  \\Recent, and its content. Indexed by (folder, uid), (folder, modseq) and (folder,
  INTERNALDATE, uid): Exchange's order of a folder, newest received first, which EWS's
  FindItem pages through (`MailboxStore.newest`; schema version 2).
- `ms_content`: what FETCH answers without parsing (ENVELOPE, BODYSTRUCTURE, BODY),
  shared by the copies of a message (COPY adds a message row, not a content row).
- `ms_raw`: the RFC 5322 bytes, apart from the metadata so that listing a folder never
  reads them.
- `ms_expunged`: tombstones (folder, uid, modseq), so `changes_since` reports expunges
  to every other session.
- `ms_urlauth_key`: a mailbox's URLAUTH keys (RFC 4467), one per folder name and
  UIDVALIDITY, so every Client Access process verifies what another generated, across
  restarts; created on first use in a database made before it existed.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    true,
)

SCHEMA_VERSION = 2
# What each version added to a database made by the one before (`upgrade_steps`).
# 2: ix_ms_message_folder_date.

# An auto-incrementing 64-bit key: BIGINT on PostgreSQL, the rowid on SQLite (only
# "INTEGER PRIMARY KEY" is the rowid there).
Key = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

meta = Table(
    "ms_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

mailbox = Table(
    "ms_mailbox",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("guid", String(64), nullable=False, unique=True),
    Column("last_uid_validity", BigInteger, nullable=False),
    Column("created", BigInteger, nullable=False),
)

folder = Table(
    "ms_folder",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("mailbox_id", Key, ForeignKey("ms_mailbox.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("uid_validity", BigInteger, nullable=False),
    Column("uid_next", BigInteger, nullable=False),
    Column("highest_modseq", BigInteger, nullable=False),
    Column("special_use", String(32)),
    UniqueConstraint("mailbox_id", "name"),
)

subscription = Table(
    "ms_subscription",
    metadata,
    Column(
        "mailbox_id",
        Key,
        ForeignKey("ms_mailbox.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("name", Text, primary_key=True),
)

content = Table(
    "ms_content",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column(
        "mailbox_id",
        Key,
        ForeignKey("ms_mailbox.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("envelope", Text, nullable=False),
    Column("bodystructure", Text, nullable=False),
    Column("body", Text, nullable=False),
)

raw = Table(
    "ms_raw",
    metadata,
    Column(
        "content_id",
        Key,
        ForeignKey("ms_content.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("data", LargeBinary, nullable=False),  # BYTEA on PostgreSQL,
)

message = Table(
    "ms_message",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("folder_id", Key, ForeignKey("ms_folder.id", ondelete="CASCADE"), nullable=False),
    Column("uid", BigInteger, nullable=False),
    Column(
        "content_id",
        Key,
        ForeignKey("ms_content.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("internal_date", BigInteger, nullable=False),  # seconds since the epoch
    Column("tz_offset", Integer, nullable=False),  # the zone's minutes east of UTC
    Column("size", Integer, nullable=False),
    Column("system_flags", Integer, nullable=False),  # flags.SEEN | flags.ANSWERED ...
    Column("keywords", Text, nullable=False),  # space-separated
    Column("modseq", BigInteger, nullable=False),
    Column("recent", Boolean(create_constraint=False), nullable=False),
    UniqueConstraint("folder_id", "uid"),
    Index("ix_ms_message_folder_modseq", "folder_id", "modseq"),
    Index("ix_ms_message_folder_date", "folder_id", "internal_date", "uid"),
)
# Only the few \\Recent messages: take_recent finds them without reading the folder.
Index(
    "ix_ms_message_recent",
    message.c.folder_id,
    sqlite_where=message.c.recent == true(),
    postgresql_where=message.c.recent == true(),
)

expunged = Table(
    "ms_expunged",
    metadata,
    Column(
        "folder_id",
        Key,
        ForeignKey("ms_folder.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("uid", BigInteger, primary_key=True),
    Column("modseq", BigInteger, nullable=False),
    Index("ix_ms_expunged_folder_modseq", "folder_id", "modseq"),
)

urlauth_key = Table(
    "ms_urlauth_key",
    metadata,
    Column(
        "mailbox_id",
        Key,
        ForeignKey("ms_mailbox.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("folder", Text, primary_key=True),  # the canonical folder name
    Column("uid_validity", BigInteger, nullable=False),
    Column("secret", LargeBinary, nullable=False),
)


def upgrade_steps(version: int) -> list[Index]:
    """The indexes a database of schema `version` lacks (each version so far only
    added one)."""
    by_name = {str(ix.name): ix for ix in message.indexes}
    steps = []
    if version < 2:
        steps.append(by_name["ix_ms_message_folder_date"])
    return steps
