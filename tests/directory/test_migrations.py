"""Alembic migrations: they build exactly the models' schema, HEAD is the newest
revision, and an older or unknown schema is refused with the way out."""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from casarray.directory import Directory, SchemaOutOfDateError, migrate
from casarray.directory.schema import Base
from casarray.directory.store import Store


@pytest.fixture
def store(empty_directory_url: str):  # type: ignore[no-untyped-def]
    s = Store(empty_directory_url)
    yield s
    s.dispose()


def script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    return ScriptDirectory.from_config(config)


def test_head_is_the_newest_revision() -> None:
    script = script_directory()
    assert script.get_heads() == [migrate.HEAD]  # one head, and it is HEAD
    assert script.get_current_head() == migrate.HEAD


def test_revisions_form_one_line() -> None:
    revisions = list(script_directory().walk_revisions())
    assert revisions[-1].down_revision is None
    for newer, older in itertools.pairwise(revisions):
        assert newer.down_revision == older.revision


def test_upgrade_builds_the_models_schema(store: Store) -> None:
    assert migrate.current_revision(store) is None
    migrate.upgrade(store)
    assert migrate.current_revision(store) == migrate.HEAD
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_creates_every_table(store: Store) -> None:
    migrate.upgrade(store)
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_upgrade_twice_is_harmless(store: Store) -> None:
    migrate.upgrade(store)
    migrate.upgrade(store)
    assert migrate.current_revision(store) == migrate.HEAD
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM topology")).scalar_one() == 1


def test_open_creates_the_schema_and_the_organization(empty_directory_url: str) -> None:
    with Directory.open(empty_directory_url, organization="Contoso", domain="Contoso.COM.") as d:
        assert migrate.current_revision(d.store) == migrate.HEAD
        org = d.organization()
        assert (org.name, org.ad_domain) == ("Contoso", "contoso.com")
        assert org.accepted_domains == ("contoso.com",)
        assert org.default_domain == "contoso.com"
        version = d.topology_version()
    # opening again keeps the organization and changes nothing
    with Directory.open(empty_directory_url, organization="Other", domain="other.net") as d:
        assert d.organization().name == "Contoso"
        assert d.topology_version() == version


@pytest.mark.parametrize("revision", ["0000", "ffffffffffff"])
def test_older_or_unknown_schema_refused(empty_directory_url: str, revision: str) -> None:
    Directory.open(empty_directory_url).close()
    store = Store(empty_directory_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    finally:
        store.dispose()
    with pytest.raises(SchemaOutOfDateError) as err:
        Directory.open(empty_directory_url)
    message = str(err.value)
    assert f"schema revision {revision}" in message
    assert f"expects {migrate.HEAD}" in message
    assert "Run `casarray directory upgrade`" in message


OPENER = """
import sys
from casarray.directory import Directory
sys.stdin.readline()  # start together
with Directory.open(sys.argv[1]) as d:
    print(d.organization().guid)
"""


def test_processes_opening_an_empty_database_at_once(empty_directory_url: str) -> None:
    """Several processes starting together on an empty database: one creates the
    schema and the organization, the others wait for it and use them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, empty_directory_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=60) for proc in procs]
    errors = [err for proc, (_, err) in zip(procs, results, strict=True) if proc.returncode]
    assert errors == []
    guids = {out.strip() for out, _ in results}
    assert len(guids) == 1
    with Directory.open(empty_directory_url) as d:
        assert migrate.current_revision(d.store) == migrate.HEAD
        assert d.organization().guid in guids
        assert d.organization().accepted_domains == ("lab.net",)


def test_first_open_waits_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    """SQLite: while another process holds the write lock (say, it is creating the
    schema), opening the directory waits for it (busy timeout) instead of failing
    with 'database is locked'."""
    path = tmp_path / "directory.db"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE scratch (x)")
    release = threading.Timer(0.5, holder.execute, args=("COMMIT",))
    release.start()
    try:
        with Directory.open(f"sqlite:///{path}") as d:
            assert migrate.current_revision(d.store) == migrate.HEAD
            assert d.organization().name == "Lab"
    finally:
        release.join()
        holder.close()
