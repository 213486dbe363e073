"""Schema migrations (Alembic). `HEAD` is the revision this code expects; a test
checks it matches the newest migration, so opening a directory does not need to
import Alembic unless the schema must change."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from casarray.directory.errors import SchemaOutOfDateError
from casarray.directory.store import Store

HEAD = "0012"
MIGRATIONS = Path(__file__).with_name("migrations")


# Any fixed number: the PostgreSQL advisory lock that serialises migrations.
MIGRATION_LOCK = 0x6361_7361_7272_6179


def current_revision(store: Store) -> str | None:
    """The schema revision in the database, or None for an empty database."""
    with store.engine.connect() as conn:
        for attempt in (1, 2):
            try:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
            except DBAPIError:
                conn.rollback()
                if not inspect(conn).has_table("alembic_version"):
                    return None
                # Another process created it between our two reads: read again.
                if attempt == 2:
                    raise
                continue
            return row[0] if row else None
    return None


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # BEGIN IMMEDIATE on SQLite: a second process opening an empty directory waits.
    with store.engine.execution_options(casarray_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            # Processes starting together on an empty database take turns; the
            # later ones find the schema at head and Alembic does nothing.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def ensure_schema(store: Store) -> None:
    """Create the schema in an empty database; refuse an older or unknown one."""
    revision = current_revision(store)
    if revision == HEAD:
        return
    if revision is None:
        try:
            upgrade(store)
        except Exception:
            # Another process may have created it at the same moment.
            if current_revision(store) != HEAD:
                raise
        return
    raise SchemaOutOfDateError(
        f"The directory at {store.url} has schema revision {revision}, this casarray expects "
        f"{HEAD}. Run `casarray directory upgrade` to bring it up to date."
    )
