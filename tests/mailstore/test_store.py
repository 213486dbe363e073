"""The mailbox database store: every `MailboxStore` and `DatabaseStore` method on SQLite
and PostgreSQL, the SQLite settings, the PostgreSQL schema convention, opening stores
(cache, mount state) and the folder-name and flag rules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text, update

from casarray.directory.objects import MailboxDatabase
from casarray.mailstore import flags as flagbits
from casarray.mailstore.interface import (
    SPECIAL_FOLDERS,
    DatabaseUnavailable,
    DestinationNotFound,
    FolderExists,
    FolderHasChildren,
    FolderInUse,
    FolderNotFound,
    InvalidFlag,
    InvalidFolderName,
    MailstoreError,
    MessageNotFound,
    MessageTooLarge,
)
from casarray.mailstore.names import canonical, parents
from casarray.mailstore.schema import SCHEMA_VERSION, content, meta, raw
from casarray.mailstore.store import (
    BUSY_TIMEOUT_MS,
    SqlDatabaseStore,
    SqlMailboxStore,
    close_all,
    open_database_store,
    postgres_location,
    postgres_schema,
    store_for,
)
from casarray.mailstore.store import rows as store_rows
from tests.conftest import PostgresServer

ALICE = "6f1c1a52-5d8e-4a36-9a59-1b1f3a0c0a01"
BOB = "6f1c1a52-5d8e-4a36-9a59-1b1f3a0c0a02"


def make_message(n: int = 1, body: bytes = b"", size: int = 0) -> bytes:
    """A small RFC 5322 message, distinct for each `n`; padded to `size` bytes."""
    head = (
        f"From: Alice <alice@lab.net>\r\nTo: bob@lab.net\r\nSubject: message {n}\r\n"
        f"Message-ID: <{n}@lab.net>\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
    ).encode()
    text = body or f"Body of message {n}.\r\n".encode()
    data = head + text
    if size > len(data):
        data += b"x" * (size - len(data) - 2) + b"\r\n"
    return data


def new_location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new store location: a SQLite file, or a fresh PostgreSQL database with the
    store in schema db01."""
    if backend == "sqlite":
        yield str(tmp_path / "stores" / "DB01.db")
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = server.create_database()
    try:
        yield postgres_location(server.url(name), "db01")
    finally:
        server.drop_database(name)


@pytest.fixture
def location(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from new_location(backend, request, tmp_path)


@pytest.fixture
def db(location: str) -> Iterator[SqlDatabaseStore]:
    store = SqlDatabaseStore(location)
    yield store
    store.engine.dispose()


@pytest.fixture
def box(db: SqlDatabaseStore) -> SqlMailboxStore:
    return db.create_mailbox(ALICE)


def names(box: SqlMailboxStore) -> list[str]:
    return [f.name for f in box.folders()]


def count_rows(db: SqlDatabaseStore, table: object) -> int:
    with db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


# -- opening ---------------------------------------------------------------------------------


def test_schema_is_created_once_with_its_version(location: str) -> None:
    first = SqlDatabaseStore(location)
    second = SqlDatabaseStore(location)  # the tables exist: nothing to do
    try:
        assert first.schema_version() == second.schema_version() == SCHEMA_VERSION
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_a_database_of_schema_1_is_upgraded_when_opened(location: str) -> None:
    """Schema 2 added the (folder, INTERNALDATE, uid) index FindItem pages through: a
    database made before has it once a newer casarray opens it, messages untouched."""
    old = SqlDatabaseStore(location)
    old.create_mailbox(ALICE).append("INBOX", make_message(1))
    with old.write() as conn:
        where = f'"{old.schema}".' if old.schema else ""
        conn.execute(text(f"DROP INDEX {where}ix_ms_message_folder_date"))
        conn.execute(update(meta).where(meta.c.key == "schema_version").values(value="1"))
    old.engine.dispose()
    new = SqlDatabaseStore(location)
    try:
        assert new.schema_version() == SCHEMA_VERSION == 2
        with new.read() as conn:
            found = inspect(conn).get_indexes("ms_message", schema=new.schema)
        assert "ix_ms_message_folder_date" in {ix["name"] for ix in found}
        assert [m.uid for m in new.mailbox(ALICE).newest("INBOX", 0, 10)[1]] == [1]
    finally:
        new.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_settings(db: SqlDatabaseStore) -> None:
    with db.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        }
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL: durable across process crashes (kill -9)
        "foreign_keys": 1,
        "busy_timeout": BUSY_TIMEOUT_MS,
    }


def test_sqlite_synchronous_full_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASARRAY_MAILSTORE_SYNCHRONOUS", "full")
    store = SqlDatabaseStore(str(tmp_path / "full.db"))
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    finally:
        store.engine.dispose()
    with pytest.raises(ValueError):
        SqlDatabaseStore(str(tmp_path / "bad.db"), synchronous="OFF")


def test_sqlite_url_and_path_are_one_location(tmp_path: Path) -> None:
    path = tmp_path / "x" / "DB09.db"
    try:
        by_path = open_database_store(str(path))
        assert open_database_store(f"sqlite:///{path}") is by_path
        assert path.exists()
    finally:
        close_all()


def test_unsupported_location() -> None:
    with pytest.raises(MailstoreError, match="Unsupported"):
        SqlDatabaseStore("mysql://host/db")


def test_postgres_location_convention() -> None:
    url = postgres_location("postgresql+psycopg://u@h:5432/mail", "db01")
    assert url == "postgresql+psycopg://u@h:5432/mail?options=-csearch_path%3Ddb01"
    assert postgres_schema(url) == "db01"
    assert postgres_schema("postgresql+psycopg://u@h/mail") is None
    assert postgres_location("postgresql://h/m?sslmode=disable", "x").endswith(
        "&options=-csearch_path%3Dx"
    )
    with pytest.raises(ValueError):
        postgres_location("postgresql://h/m", "bad name")


@pytest.mark.postgres
def test_postgres_schemas_keep_databases_apart(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    stores = [
        SqlDatabaseStore(postgres_location(url, "db01")),
        SqlDatabaseStore(postgres_location(url, "db02")),
        SqlDatabaseStore(url),  # the public schema
    ]
    try:
        for i, store in enumerate(stores):
            store.create_mailbox(ALICE).append("INBOX", make_message(i))
        for i, store in enumerate(stores):
            mailbox = store.mailbox(ALICE)
            assert [m.uid for m in mailbox.messages("INBOX")] == [1]
            assert mailbox.body("INBOX", 1) == make_message(i)
        with stores[2].engine.connect() as conn:
            schemas = conn.exec_driver_sql(
                "SELECT table_schema FROM information_schema.tables "
                "WHERE table_name = 'ms_message' ORDER BY 1"
            ).scalars()
            assert list(schemas) == ["db01", "db02", "public"]
    finally:
        for store in stores:
            store.engine.dispose()
        postgres_server.drop_database(name)


def test_open_database_store_caches_per_location(location: str) -> None:
    try:
        store = open_database_store(location)
        assert open_database_store(location) is store
        store.close()
        assert open_database_store(location) is not store
    finally:
        close_all()


def _database(location: str, mounted: bool) -> MailboxDatabase:
    now = datetime.now(UTC)
    return MailboxDatabase(
        guid="0b0d7d8e-0000-4000-8000-000000000001",
        name="DB01",
        server="MBX01",
        server_fqdn="MBX01.lab.net",
        site="BJ",
        rpc_client_access_server="bj-cas.lab.net",
        store_location=location,
        mounted=mounted,
        exchange_legacy_dn="/o=Lab/ou=x/cn=DB01",
        distinguished_name="CN=DB01",
        when_created=now,
    )


def test_store_for_needs_a_mounted_database(tmp_path: Path) -> None:
    location = str(tmp_path / "DB01.db")
    with pytest.raises(DatabaseUnavailable, match=r"dismounted.*Mount-Database DB01") as info:
        store_for(_database(location, mounted=False))
    assert info.value.code == "UNAVAILABLE"
    assert not Path(location).exists()
    try:
        store = store_for(_database(location, mounted=True))
        assert store is open_database_store(location)
        assert store.mailbox(ALICE).folder("INBOX").exists == 0
    finally:
        close_all()


# -- mailboxes --------------------------------------------------------------------------------


def test_create_mailbox_makes_inbox_and_special_folders(db: SqlDatabaseStore) -> None:
    box = db.create_mailbox(ALICE)
    folders = {f.name: f for f in box.folders()}
    assert list(folders) == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    assert {name: f.special_use for name, f in folders.items() if f.special_use} == dict(
        SPECIAL_FOLDERS
    )
    assert all(f.subscribed and f.exists == 0 and f.uid_next == 1 for f in folders.values())
    assert len({f.uid_validity for f in folders.values()}) == 6
    assert box.subscriptions() == ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    again = db.create_mailbox(ALICE)  # idempotent
    assert names(again) == names(box)
    assert db.has_mailbox(ALICE) and not db.has_mailbox(BOB)


def test_mailbox_is_created_on_first_use(db: SqlDatabaseStore) -> None:
    box = db.mailbox(BOB)
    assert names(box)[0] == "INBOX"
    assert db.mailbox(BOB).id == box.id
    assert db.mailbox_guids() == [BOB]


def test_remove_mailbox_removes_everything(db: SqlDatabaseStore) -> None:
    alice, bob = db.create_mailbox(ALICE), db.create_mailbox(BOB)
    alice.append("INBOX", make_message(1))
    alice.copy("INBOX", [1], "Archive")
    bob.append("INBOX", make_message(2))
    db.remove_mailbox(ALICE)
    db.remove_mailbox("not-there")  # nothing to do
    assert db.mailbox_guids() == [BOB]
    assert count_rows(db, content) == count_rows(db, raw) == 1
    assert bob.body("INBOX", 1) == make_message(2)
    with pytest.raises(FolderNotFound):
        alice.messages("INBOX")


def test_mailboxes_are_apart(db: SqlDatabaseStore) -> None:
    alice, bob = db.create_mailbox(ALICE), db.create_mailbox(BOB)
    alice.create_folder("Work")
    alice.append("INBOX", make_message(1))
    assert "Work" not in names(bob)
    assert bob.messages("INBOX") == []


# -- folders ----------------------------------------------------------------------------------


def test_create_folder_makes_parents(box: SqlMailboxStore) -> None:
    created = box.create_folder("Projects/2024/Q1")
    assert (created.name, created.exists, created.uid_next, created.has_children) == (
        "Projects/2024/Q1",
        0,
        1,
        False,
    )
    folders = {f.name: f for f in box.folders()}
    assert folders["Projects"].has_children and folders["Projects/2024"].has_children
    assert not folders["Projects/2024/Q1"].subscribed
    assert box.folder("Projects").has_children
    with pytest.raises(FolderExists) as info:
        box.create_folder("Projects/2024")
    assert info.value.code == "ALREADYEXISTS"
    assert box.create_folder("Projects/2025/").name == "Projects/2025"  # trailing delimiter


def test_folder_names_are_case_sensitive_except_inbox(box: SqlMailboxStore) -> None:
    box.create_folder("work")
    box.create_folder("Work")
    box.create_folder("inbox/Sub")
    assert box.folder("inbox").name == "INBOX"
    assert box.folder("InBox/Sub").name == "INBOX/Sub"
    assert box.folder("INBOX").has_children
    assert {"work", "Work", "INBOX/Sub"} <= set(names(box))
    with pytest.raises(FolderExists):
        box.create_folder("Inbox")
    with pytest.raises(FolderNotFound) as info:
        box.folder("WORK")
    assert info.value.code == "NONEXISTENT"


@pytest.mark.parametrize("bad", ["", "a//b", "/a", "a/", "new\r\nline", "star*", "per%cent"])
def test_invalid_folder_names(box: SqlMailboxStore, bad: str) -> None:
    with pytest.raises(InvalidFolderName):
        box.folder(bad)
    if bad != "a/":  # creating, a trailing delimiter is allowed
        with pytest.raises(InvalidFolderName):
            box.create_folder(bad)


def test_special_use(box: SqlMailboxStore) -> None:
    assert box.create_folder("All Mail", "\\all").special_use == "\\All"
    with pytest.raises(MailstoreError, match="special use"):
        box.create_folder("Other", "\\Important")


def test_uid_validity_is_new_for_each_incarnation(box: SqlMailboxStore) -> None:
    first = box.create_folder("Temp").uid_validity
    box.append("Temp", make_message(1))
    box.delete_folder("Temp")
    second = box.create_folder("Temp")
    assert second.uid_validity > first
    assert (second.exists, second.uid_next) == (0, 1)
    values = [f.uid_validity for f in box.folders()]
    assert len(values) == len(set(values))


def test_delete_folder(box: SqlMailboxStore, db: SqlDatabaseStore) -> None:
    box.create_folder("Old/Child")
    box.subscribe("Old/Child", True)
    box.append("Old/Child", make_message(1))
    with pytest.raises(FolderHasChildren) as info:
        box.delete_folder("Old")
    assert info.value.code == "HASCHILDREN" and "Old/Child" in str(info.value)
    box.delete_folder("Old/Child")
    box.delete_folder("Old")
    assert "Old" not in names(box) and "Old/Child" not in names(box)
    assert "Old/Child" in box.subscriptions()  # RFC 3501: DELETE keeps subscriptions
    assert count_rows(db, content) == count_rows(db, raw) == 0
    with pytest.raises(FolderNotFound):
        box.delete_folder("Old")


def test_inbox_cannot_be_deleted(box: SqlMailboxStore) -> None:
    with pytest.raises(FolderInUse) as info:
        box.delete_folder("inbox")
    assert info.value.code == "CANNOT"


def test_delete_folder_keeps_copies_elsewhere(box: SqlMailboxStore) -> None:
    box.create_folder("Temp")
    box.append("Temp", make_message(7))
    box.copy("Temp", [1], "Archive")
    box.delete_folder("Temp")
    assert box.body("Archive", 1) == make_message(7)


def test_rename_folder_moves_children_and_subscriptions(box: SqlMailboxStore) -> None:
    box.create_folder("A/B/C")
    box.subscribe("A/B", True)
    box.subscribe("A/B/C", True)
    box.subscribe("Z/B", True)  # already subscribed under the new name
    box.append("A/B", make_message(1), ["\\Flagged"])
    before = box.folder("A/B")
    box.rename_folder("A/B", "Z/B")
    assert {"A", "Z", "Z/B", "Z/B/C"} <= set(names(box))
    assert "A/B" not in names(box) and "A/B/C" not in names(box)
    after = box.folder("Z/B")
    assert (after.uid_validity, after.uid_next, after.exists) == (
        before.uid_validity,
        before.uid_next,
        1,
    )
    assert box.messages("Z/B")[0].flags == frozenset({"\\Flagged"})
    subscriptions = box.subscriptions()
    assert "Z/B" in subscriptions and "Z/B/C" in subscriptions
    assert "A/B" not in subscriptions and "A/B/C" not in subscriptions
    assert box.folder("Z").has_children and not box.folder("A").has_children


def test_rename_keeps_special_use(box: SqlMailboxStore) -> None:
    box.rename_folder("Sent", "Sent Items")
    assert box.folder("Sent Items").special_use == "\\Sent"


def test_rename_errors(box: SqlMailboxStore) -> None:
    box.create_folder("A/B")
    box.create_folder("C")
    with pytest.raises(FolderNotFound):
        box.rename_folder("Nope", "X")
    with pytest.raises(FolderExists):
        box.rename_folder("A", "C")
    with pytest.raises(FolderExists):
        box.rename_folder("C", "inbox")
    with pytest.raises(FolderInUse):
        box.rename_folder("A", "A")
    with pytest.raises(FolderInUse):
        box.rename_folder("A", "A/B/D")
    box.rename_folder("C", "c")  # names are case-sensitive
    assert "c" in names(box) and "C" not in names(box)


def test_rename_inbox_moves_its_messages(box: SqlMailboxStore) -> None:
    box.create_folder("INBOX/Child")
    for n in range(3):
        box.append("INBOX", make_message(n), ["\\Seen"] if n == 1 else [])
    inbox = box.folder("INBOX")
    box.rename_folder("INBOX", "Old Mail")
    old = box.folder("Old Mail")
    assert old.exists == 3 and old.uid_validity != inbox.uid_validity
    assert [m.uid for m in box.messages("Old Mail")] == [1, 2, 3]
    assert box.messages("Old Mail")[1].flags == frozenset({"\\Seen"})
    assert old.uid_next == inbox.uid_next
    assert box.body("Old Mail", 2) == make_message(1)
    now = box.folder("INBOX")
    assert (now.exists, now.uid_validity, now.uid_next) == (0, inbox.uid_validity, 4)
    changes = box.changes_since("INBOX", inbox.highest_modseq)
    assert changes.expunged == (1, 2, 3) and changes.changed == ()
    assert "INBOX/Child" in names(box)  # INBOX's children stay
    assert box.append("INBOX", make_message(9)).uid == 4


def test_subscriptions_may_name_missing_folders(box: SqlMailboxStore) -> None:
    box.subscribe("Nowhere/Yet", True)
    box.subscribe("Nowhere/Yet", True)
    box.subscribe("inbox", False)
    box.subscribe("Never", False)
    assert "Nowhere/Yet" in box.subscriptions() and "INBOX" not in box.subscriptions()
    assert not box.folder("INBOX").subscribed
    box.create_folder("Nowhere/Yet")
    assert box.folder("Nowhere/Yet").subscribed


# -- append, messages, body --------------------------------------------------------------------


def test_append(box: SqlMailboxStore) -> None:
    inbox = box.folder("INBOX")
    when = datetime(1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7)))
    first = box.append("INBOX", make_message(1), ["\\seen", "$Forwarded", "\\Recent"], when)
    second = box.append("inbox", make_message(2))
    assert (first.uid_validity, first.uid, second.uid) == (inbox.uid_validity, 1, 2)
    one, two = box.messages("INBOX")
    assert one.flags == frozenset({"\\Seen", "$Forwarded"})
    assert one.internal_date == when and one.internal_date.utcoffset() == timedelta(hours=-7)
    assert one.size == len(make_message(1)) and one.recent
    assert two.flags == frozenset() and two.modseq > one.modseq
    assert abs(two.internal_date - datetime.now(UTC)) < timedelta(minutes=1)
    after = box.folder("INBOX")
    assert (after.exists, after.recent, after.unseen, after.uid_next) == (2, 2, 1, 3)
    assert after.highest_modseq == two.modseq
    assert box.body("INBOX", 1) == make_message(1)


def test_append_keeps_bytes_exactly_but_line_ends(box: SqlMailboxStore) -> None:
    """Every byte is kept (8-bit, NUL), except that a bare LF is stored as CRLF, as
    IMAP servers (Dovecot) store it, so sizes and sections match what they report."""
    data = make_message(1, body=bytes(range(256)) + b"\n\r\n\x00end")
    box.append("INBOX", data)
    stored = box.body("INBOX", 1)
    assert stored == data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert box.messages("INBOX")[0].size == len(stored)


def test_append_with_8bit_and_nul_header_bytes(box: SqlMailboxStore) -> None:
    """Old mail programs send raw Latin-1 in headers: the message is stored and its
    cached ENVELOPE gives back those exact bytes, as IMAP literals (like Dovecot)."""
    raw = b"Subject: caf\xe9\r\nFrom: J\xf6rg <j@x.de>\r\nX-Odd: a\x00b\r\n\r\nbody\r\n"
    uid = box.append("INBOX", raw).uid
    assert box.body("INBOX", uid) == raw
    envelope = box.envelopes("INBOX", [uid])[uid].encode("utf-8", "surrogateescape")
    assert b"{4}\r\ncaf\xe9" in envelope and b"{4}\r\nJ\xf6rg" in envelope
    parts = box.cached("INBOX", [uid])[uid]
    assert parts.envelope.encode("utf-8", "surrogateescape") == envelope
    assert parts.bodystructure.startswith('("text" "plain"')
    ((_, new_uid),) = box.copy("INBOX", [uid], "Archive").pairs
    copied = box.envelopes("Archive", [new_uid])[new_uid]
    assert copied.encode("utf-8", "surrogateescape") == envelope


def test_append_naive_date_is_utc(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1), internal_date=datetime(2020, 1, 2, 3, 4, 5))
    assert box.messages("INBOX")[0].internal_date == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_append_errors(box: SqlMailboxStore, db: SqlDatabaseStore) -> None:
    with pytest.raises(DestinationNotFound) as info:
        box.append("Nope", make_message(1))
    assert info.value.code == "TRYCREATE"
    assert isinstance(info.value, FolderNotFound)
    with pytest.raises(InvalidFlag):
        box.append("INBOX", make_message(1), ["\\Important"])
    with pytest.raises(InvalidFlag):
        box.append("INBOX", make_message(1), ["bad(keyword"])
    db.max_message_size = 1000
    with pytest.raises(MessageTooLarge) as too_big:
        box.append("INBOX", make_message(1, size=1001))
    assert too_big.value.code == "TOOBIG"
    box.append("INBOX", make_message(1, size=1000))
    assert [m.uid for m in box.messages("INBOX")] == [1]  # failures used no UID


def test_default_size_limit_is_50_mb(
    db: SqlDatabaseStore, location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert db.max_message_size == 50 * 1024 * 1024
    monkeypatch.setenv("CASARRAY_MAILSTORE_MAX_MESSAGE_SIZE", "2048")
    other = SqlDatabaseStore(location)
    try:
        assert other.max_message_size == 2048
        with pytest.raises(MessageTooLarge):
            other.mailbox(ALICE).append("INBOX", make_message(1, size=2049))
    finally:
        other.engine.dispose()


def test_body_errors(box: SqlMailboxStore) -> None:
    with pytest.raises(MessageNotFound):
        box.body("INBOX", 1)
    with pytest.raises(FolderNotFound):
        box.body("Nope", 1)


def test_messages_in_uid_order(box: SqlMailboxStore) -> None:
    for n in range(5):
        box.append("INBOX", make_message(n))
    box.store_flags("INBOX", [2, 4], "add", ["\\Deleted"])
    box.expunge("INBOX")
    box.append("INBOX", make_message(9))
    assert [m.uid for m in box.messages("INBOX")] == [1, 3, 5, 6]
    assert box.messages("Trash") == []
    with pytest.raises(FolderNotFound):
        box.messages("Nope")


def test_newest_pages_by_internal_date_then_uid_descending(box: SqlMailboxStore) -> None:
    day = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    # UIDs 1..5 with dates out of UID order; 2 and 4 share a date (the UID breaks the tie)
    for n, hours in enumerate((3, 1, 5, 1, 2)):
        box.append("INBOX", make_message(n), (), day + timedelta(hours=hours))
    everything = box.newest("INBOX", 0, 100)
    assert everything[0] == 5
    assert [m.uid for m in everything[1]] == [3, 1, 5, 4, 2]
    assert [[m.uid for m in box.newest("INBOX", o, 2)[1]] for o in (0, 2, 4, 6)] == [
        [3, 1],
        [5, 4],
        [2],
        [],
    ]
    assert box.newest("INBOX", 1, 1)[1][0] == everything[1][1]  # the same MessageInfo
    assert box.newest("Trash", 0, 10) == (0, [])
    with pytest.raises(FolderNotFound):
        box.newest("Nope", 0, 10)


def test_cached(box: SqlMailboxStore) -> None:
    for n in range(3):
        box.append("INBOX", make_message(n))
    parts = box.cached("INBOX", [3, 1, 99])
    assert sorted(parts) == [1, 3]
    assert "message 0" in parts[1].envelope and "message 2" in parts[3].envelope
    assert parts[1].bodystructure and parts[1].body
    assert box.cached("INBOX", []) == {}
    with pytest.raises(FolderNotFound):
        box.cached("Nope", [1])


def test_many_uids_are_read_as_a_range(
    box: SqlMailboxStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_rows, "_IN_LIMIT", 3)
    for n in range(12):
        box.append("INBOX", make_message(n))
    assert sorted(box.cached("INBOX", range(1, 13))) == list(range(1, 13))  # dense
    assert sorted(box.cached("INBOX", [2, 3, 5, 8, 9, 30])) == [2, 3, 5, 8, 9]  # range, filtered
    assert sorted(box.cached("INBOX", [1, 100, 200, 300, 400])) == [1]  # sparse: IN chunks
    changed = box.store_flags("INBOX", [1, 2, 4, 5, 6, 7], "add", ["\\Seen"])
    assert [m.uid for m in changed] == [1, 2, 4, 5, 6, 7]


# -- take_recent ------------------------------------------------------------------------------


def test_take_recent(box: SqlMailboxStore) -> None:
    assert box.take_recent("INBOX") == []
    box.append("INBOX", make_message(1))
    box.append("INBOX", make_message(2))
    assert box.take_recent("INBOX") == [1, 2]
    assert box.take_recent("INBOX") == []  # no longer recent for anyone else
    assert box.folder("INBOX").recent == 0
    assert not any(m.recent for m in box.messages("INBOX"))
    box.append("INBOX", make_message(3))
    assert box.take_recent("inbox") == [3]
    with pytest.raises(FolderNotFound):
        box.take_recent("Nope")


# -- flags ----------------------------------------------------------------------------------------


def test_store_flags_modes(box: SqlMailboxStore) -> None:
    for n in range(3):
        box.append("INBOX", make_message(n))
    added = box.store_flags("INBOX", [1, 2], "add", ["\\SEEN", "$Label1"])
    assert [m.uid for m in added] == [1, 2]
    assert all(m.flags == frozenset({"\\Seen", "$Label1"}) for m in added)
    assert len({m.modseq for m in added}) == 1
    assert added[0].modseq == box.folder("INBOX").highest_modseq
    removed = box.store_flags("INBOX", [1, 2, 3], "remove", ["$label1"])
    assert [m.uid for m in removed] == [1, 2]  # 3 had no $Label1: unchanged
    assert removed[0].flags == frozenset({"\\Seen"})
    replaced = box.store_flags("INBOX", [1, 3], "set", ["\\Flagged", "Work"])
    assert {m.uid: m.flags for m in replaced} == {
        1: frozenset({"\\Flagged", "Work"}),
        3: frozenset({"\\Flagged", "Work"}),
    }
    flags = {m.uid: m.flags for m in box.messages("INBOX")}
    assert flags == {
        1: frozenset({"\\Flagged", "Work"}),
        2: frozenset({"\\Seen"}),
        3: frozenset({"\\Flagged", "Work"}),
    }
    with pytest.raises(ValueError):
        box.store_flags("INBOX", [1], "toggle", ["\\Seen"])
    with pytest.raises(FolderNotFound):
        box.store_flags("Nope", [1], "add", ["\\Seen"])


def test_keywords_keep_case_and_compare_without(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1), ["$Junk"])
    modseq = box.messages("INBOX")[0].modseq
    assert box.store_flags("INBOX", [1], "add", ["$JUNK"]) == []
    assert box.store_flags("INBOX", [1], "set", ["$junk"]) == []
    assert box.messages("INBOX")[0].flags == frozenset({"$Junk"})
    assert box.messages("INBOX")[0].modseq == modseq  # no change, no new modseq
    assert box.store_flags("INBOX", [1], "remove", ["$jUnK"])[0].flags == frozenset()


def test_store_flags_unchanged_since(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1))
    box.append("INBOX", make_message(2))
    seen = box.messages("INBOX")
    box.store_flags("INBOX", [2], "add", ["\\Answered"])  # 2 changes after `seen`
    changed = box.store_flags("INBOX", [1, 2], "add", ["\\Flagged"], unchanged_since=seen[1].modseq)
    assert [m.uid for m in changed] == [1]
    assert box.messages("INBOX")[1].flags == frozenset({"\\Answered"})
    assert box.store_flags("INBOX", [1], "add", ["\\Seen"], unchanged_since=0) == []


def test_store_flags_ignores_missing_uids(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1))
    assert [m.uid for m in box.store_flags("INBOX", [1, 5, 9], "add", ["\\Seen"])] == [1]
    assert box.store_flags("INBOX", [], "add", ["\\Seen"]) == []


# -- changes_since -----------------------------------------------------------------------------


def test_changes_since(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1))
    box.append("INBOX", make_message(2))
    start = box.folder("INBOX")
    nothing = box.changes_since("INBOX", start.highest_modseq)
    assert (nothing.changed, nothing.expunged, nothing.highest_modseq) == (
        (),
        (),
        start.highest_modseq,
    )
    assert nothing.uid_validity == start.uid_validity
    box.append("INBOX", make_message(3))
    box.store_flags("INBOX", [1], "add", ["\\Deleted"])
    box.store_flags("INBOX", [2], "add", ["\\Seen"])
    box.expunge("INBOX")
    changes = box.changes_since("INBOX", start.highest_modseq)
    assert [m.uid for m in changes.changed] == [2, 3]
    assert changes.changed[0].flags == frozenset({"\\Seen"})
    assert changes.expunged == (1,)
    assert changes.highest_modseq == box.folder("INBOX").highest_modseq
    everything = box.changes_since("INBOX", 0)
    assert [m.uid for m in everything.changed] == [2, 3] and everything.expunged == (1,)
    later = box.changes_since("INBOX", changes.highest_modseq)
    assert later.changed == () and later.expunged == ()
    with pytest.raises(FolderNotFound):
        box.changes_since("Nope", 0)


# -- copy, move, expunge ----------------------------------------------------------------------


def test_copy(box: SqlMailboxStore, db: SqlDatabaseStore) -> None:
    when = datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=8)))
    for n in range(3):
        box.append("INBOX", make_message(n), ["\\Seen", "$Work"], when)
    box.append("Archive", make_message(99))
    box.take_recent("INBOX")
    archive = box.folder("Archive")
    copied = box.copy("INBOX", [3, 1, 42], "Archive")
    assert copied.uid_validity == archive.uid_validity
    assert copied.pairs == ((1, 2), (3, 3))
    messages = {m.uid: m for m in box.messages("Archive")}
    assert sorted(messages) == [1, 2, 3]
    assert messages[2].flags == frozenset({"\\Seen", "$Work"})
    assert messages[2].internal_date == when and messages[3].recent
    assert box.body("Archive", 3) == make_message(2)
    assert box.cached("Archive", [2])[2].envelope == box.cached("INBOX", [1])[1].envelope
    assert box.folder("INBOX").exists == 3  # the source is untouched
    assert box.folder("Archive").uid_next == 4
    assert count_rows(db, raw) == 4  # copies share the bytes
    # the copy outlives its original
    box.store_flags("INBOX", [1, 2, 3], "add", ["\\Deleted"])
    box.expunge("INBOX")
    assert box.body("Archive", 2) == make_message(0)
    assert count_rows(db, raw) == 3


def test_copy_into_the_same_folder_and_nothing(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1))
    assert box.copy("INBOX", [1], "INBOX").pairs == ((1, 2),)
    assert box.copy("INBOX", [7], "Trash").pairs == ()
    with pytest.raises(DestinationNotFound):
        box.copy("INBOX", [1], "Nope")
    with pytest.raises(FolderNotFound):
        box.copy("Nope", [1], "INBOX")


def test_move(box: SqlMailboxStore) -> None:
    for n in range(3):
        box.append("INBOX", make_message(n), ["\\Flagged"])
    inbox = box.folder("INBOX")
    moved = box.move("INBOX", [1, 3], "Trash")
    assert moved.pairs == ((1, 1), (3, 2))
    assert moved.uid_validity == box.folder("Trash").uid_validity
    assert [m.uid for m in box.messages("INBOX")] == [2]
    assert [m.flags for m in box.messages("Trash")] == [frozenset({"\\Flagged"})] * 2
    assert box.body("Trash", 2) == make_message(2)
    changes = box.changes_since("INBOX", inbox.highest_modseq)
    assert changes.expunged == (1, 3) and changes.changed == ()
    same = box.folder("INBOX")
    assert box.move("INBOX", [2], "inbox").pairs == ((2, same.uid_next),)  # new UIDs
    assert [m.uid for m in box.messages("INBOX")] == [same.uid_next]
    changes = box.changes_since("INBOX", same.highest_modseq)
    assert changes.expunged == (2,) and [m.uid for m in changes.changed] == [same.uid_next]
    with pytest.raises(DestinationNotFound):
        box.move("INBOX", [2], "Nope")
    assert box.move("INBOX", [], "Trash").pairs == ()


def test_expunge(box: SqlMailboxStore, db: SqlDatabaseStore) -> None:
    for n in range(5):
        box.append("INBOX", make_message(n))
    assert box.expunge("INBOX") == []  # nothing \Deleted
    box.store_flags("INBOX", [1, 2, 4], "add", ["\\Deleted"])
    assert box.expunge("INBOX", [4, 5]) == [4]  # UID EXPUNGE: only those given
    assert box.expunge("INBOX") == [1, 2]
    assert [m.uid for m in box.messages("INBOX")] == [3, 5]
    assert count_rows(db, content) == count_rows(db, raw) == 2
    with pytest.raises(FolderNotFound):
        box.expunge("Nope")


def test_message_reads_follow_a_folder_deleted_and_made_again(
    db: SqlDatabaseStore, box: SqlMailboxStore
) -> None:
    """SQLite's message reads use the folder id the last row read found: a folder
    deleted (and made again under its name) meanwhile shows none of the old messages,
    and the next change check reads the new folder."""
    box.create_folder("Work")
    box.append("Work", make_message(1))
    before = box.changes_since("Work", 0)
    assert set(box.bodies("Work", [1])) == {1}
    other = db.mailbox(ALICE)  # another session of the same mailbox
    other.delete_folder("Work")
    for read in (box.bodies, box.infos, box.cached):
        # SQLite's direct reads use the id last found; PostgreSQL's look it up
        with contextlib.suppress(FolderNotFound):
            assert read("Work", [1]) == {}
    with pytest.raises(FolderNotFound):
        box.changes_since("Work", 0)
    other.create_folder("Work")
    other.append("Work", make_message(2))
    after = box.changes_since("Work", 0)
    assert after.uid_validity != before.uid_validity
    assert box.bodies("Work", [1]) == {1: other.bodies("Work", [1])[1]}
    assert b"message 2" in box.bodies("Work", [1])[1]


def test_statistics(box: SqlMailboxStore) -> None:
    box.append("INBOX", make_message(1, size=1000))
    box.append("INBOX", make_message(2, size=2000))
    box.append("Sent", make_message(3, size=500))
    stats = {s.name: s for s in box.statistics()}
    assert next(iter(stats)) == "INBOX"
    assert (stats["INBOX"].messages, stats["INBOX"].size) == (2, 3000)
    assert (stats["Sent"].messages, stats["Sent"].size, stats["Sent"].special_use) == (
        1,
        500,
        "\\Sent",
    )
    assert (stats["Trash"].messages, stats["Trash"].size) == (0, 0)


def test_storage_used_is_the_mailboxs_own(db: SqlDatabaseStore, box: SqlMailboxStore) -> None:
    assert box.storage_used() == 0
    box.append("INBOX", make_message(1, size=1000))
    box.append("Sent", make_message(2, size=500))
    other = db.create_mailbox("00000000-0000-0000-0000-0000000000b0")
    other.append("INBOX", make_message(3, size=4000))
    assert box.storage_used() == 1500
    assert other.storage_used() == 4000
    box.store_flags("INBOX", [1], "add", ["\\Deleted"])
    box.expunge("INBOX")
    assert box.storage_used() == 500


# -- names and flags ----------------------------------------------------------------------------


def test_canonical_names() -> None:
    assert canonical("inbox") == "INBOX"
    assert canonical("iNbOx/a/b") == "INBOX/a/b"
    assert canonical("Inboxes") == "Inboxes"
    assert canonical("a/", creating=True) == "a"
    assert canonical("Ünïcode/名前") == "Ünïcode/名前"
    assert parents("a/b/c") == ["a", "a/b"]
    with pytest.raises(InvalidFolderName):
        canonical("x" * 1001)


def test_flag_parsing() -> None:
    assert flagbits.parse(["\\SEEN", "\\draft", "$a", "$A", "\\Recent"]) == (
        flagbits.SEEN | flagbits.DRAFT,
        ("$a",),
    )
    assert flagbits.flag_set(flagbits.SEEN | flagbits.DELETED, "$a Work") == frozenset(
        {"\\Seen", "\\Deleted", "$a", "Work"}
    )
    for bad in ("\\Nope", "a b", "x]", '"q"', "", "é"):
        with pytest.raises(InvalidFlag):
            flagbits.parse([bad])


def test_envelopes_are_the_cached_envelopes(box: SqlMailboxStore) -> None:
    for n in (1, 2, 3):
        box.append("INBOX", make_message(n))
    cached = box.cached("INBOX", [1, 2, 3])
    assert box.envelopes("INBOX", [1, 3, 99]) == {1: cached[1].envelope, 3: cached[3].envelope}
