"""Where New-MailboxDatabase puts a database's store without -EdbFilePath: a SQLite file
beside a directory on SQLite, a schema of its own in the directory's PostgreSQL database
beside a directory on PostgreSQL; and the rule of a PostgreSQL location's schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from casarray.directory import Directory
from casarray.directory.store_locations import (
    postgres_location,
    postgres_schema,
    schema_for,
)
from casarray.mailstore.store import SqlDatabaseStore, close_all, open_database_store, store_for
from tests.conftest import PostgresServer
from tests.mailstore.test_store import ALICE, make_message
from tests.shell.cmdlet_shell import Shell

# -- the schema of a database's name ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "schema"),
    [
        ("DB03", "db03"),
        ("DB 03", "db_03"),
        ("Sales-DB", "sales_db"),
        ("Sales -- DB (EU)", "sales_db_eu"),
        ("03", "db_03"),
        ("2024 Archive", "db_2024_archive"),
        ("Public", "db_public"),
        ("information_schema", "db_information_schema"),
        ("pg_mail", "db_pg_mail"),
        ("Почта", "db"),
        ("_x_", "x"),
    ],
)
def test_schema_of_a_name(name: str, schema: str) -> None:
    assert schema_for(name) == schema


def test_schema_taken_gets_a_suffix() -> None:
    assert schema_for("Sales DB", {"sales_db"}) == "sales_db_2"
    assert schema_for("Sales DB", {"SALES_DB", "sales_db_2"}) == "sales_db_3"
    long = "x" * 64
    assert schema_for(long) == "x" * 63
    assert schema_for(long, {"x" * 63}) == "x" * 61 + "_2"


def test_location_replaces_a_search_path_and_keeps_other_options() -> None:
    url = "postgresql+psycopg://u@h/mail?options=-csearch_path%3Ddir%20-cstatement_timeout%3D5s"
    location = postgres_location(url, "db01")
    assert location == (
        "postgresql+psycopg://u@h/mail?options=-cstatement_timeout%3D5s%20-csearch_path%3Ddb01"
    )
    assert postgres_schema(location) == "db01"


def test_schema_read_as_postgresql_reads_it() -> None:
    # an unquoted name in search_path is folded to lower case by PostgreSQL
    assert postgres_schema("postgresql+psycopg://h/m?options=-csearch_path%3DDB01") == "db01"
    assert postgres_schema("postgresql+psycopg://h/m") is None
    assert postgres_schema("not a url ://") is None


# -- New-MailboxDatabase's default location ------------------------------------------------


@pytest.fixture
def shell(directory_url: str, bj: Directory) -> Iterator[Shell]:
    sh = Shell(directory_url)
    yield sh
    sh.close()


def test_default_location_follows_the_directory(
    shell: Shell, bj: Directory, directory_url: str, backend: str, casarray_home: Path
) -> None:
    shell.ok('New-MailboxDatabase "Sales-DB" -Server MBX01')
    shell.ok('New-MailboxDatabase "Sales DB" -Server MBX02')
    shell.ok("New-MailboxDatabase DB09 -Server MBX01 -EdbFilePath postgresql+psycopg://h/x")
    locations = {db.name: db.store_location for db in bj.databases.get()}
    shown = shell.ok("Get-MailboxDatabase Sales-DB | Format-List Name,EdbFilePath").out
    if backend == "sqlite":
        assert locations["Sales-DB"] == str(casarray_home / "databases" / "Sales-DB.db")
        assert locations["Sales DB"] == str(casarray_home / "databases" / "Sales DB.db")
    else:
        # the directory's own PostgreSQL database, a schema each
        assert locations["Sales-DB"] == f"{directory_url}?options=-csearch_path%3Dsales_db"
        assert locations["Sales DB"] == f"{directory_url}?options=-csearch_path%3Dsales_db_2"
    assert locations["DB09"] == "postgresql+psycopg://h/x"  # -EdbFilePath as given
    assert locations["Sales-DB"] in shown.replace("\n", "").replace(" ", "")


@pytest.mark.parametrize("backend", ["postgres"])
def test_default_schema_never_shared(bj: Directory, directory_url: str, backend: str) -> None:
    # a database already in schema db03 (written by hand, in capitals)
    bj.databases.new(
        "Legacy", "MBX01", store_location=f"{directory_url}?options=-csearch_path%3DDB03"
    )
    db03 = bj.databases.new("DB03", "MBX01")
    assert postgres_schema(db03.store_location) == "db03_2"
    public = bj.databases.new("Public", "MBX01")
    assert postgres_schema(public.store_location) == "db_public"  # not the directory's


# -- a store at the default PostgreSQL location works ----------------------------------------


@pytest.mark.parametrize("backend", ["postgres"])
def test_new_database_on_postgres_holds_mail(
    shell: Shell, bj: Directory, directory_url: str, backend: str
) -> None:
    shell.ok('New-MailboxDatabase "DB 03" -Server MBX01')
    shell.ok('Mount-Database "DB 03"')
    database = bj.databases.one("DB 03")
    assert database.store_location.startswith(directory_url + "?")
    assert postgres_schema(database.store_location) == "db_03"
    try:
        # what the Mailbox server does to mount it, and what delivery and IMAP use
        store = store_for(database)
        assert store is open_database_store(database.store_location)
        assert store.schema == "db_03"
        store.create_mailbox(ALICE).append("INBOX", make_message(1))
        again = SqlDatabaseStore(database.store_location)  # another process
        try:
            assert again.mailbox_guids() == [ALICE]
            assert again.mailbox(ALICE).body("INBOX", 1) == make_message(1)
        finally:
            again.engine.dispose()
        # in its own schema of the directory's database, beside the directory's tables
        with bj.store.engine.connect() as conn:
            where = conn.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name IN ('ms_message', 'mailbox_database') ORDER BY 1"
                )
            ).scalars()
            assert list(where) == ["db_03", "public"]
    finally:
        close_all()


def test_location_in_capitals_holds_mail(postgres_server: PostgresServer) -> None:
    """A location written by hand with a schema in capitals: PostgreSQL reads the name
    in lower case, and so does the store (it used to create "DB01" and find no schema)."""
    name = postgres_server.create_database()
    store = SqlDatabaseStore(postgres_location(postgres_server.url(name), "DB01"))
    try:
        assert store.schema == "db01"
        store.create_mailbox(ALICE).append("INBOX", make_message(2))
        assert store.mailbox(ALICE).body("INBOX", 1) == make_message(2)
    finally:
        store.engine.dispose()
        postgres_server.drop_database(name)
