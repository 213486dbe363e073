"""The store: SQLite settings, several writers on one database, the organization,
URLs, and timezone-aware timestamps."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from casarray.directory import Directory, InvalidOperationError, InvalidValueError
from casarray.directory.mailboxes import MailboxSpec
from casarray.directory.store import BUSY_TIMEOUT_MS, Store


@pytest.fixture
def sqlite_directory(tmp_path: Path):  # type: ignore[no-untyped-def]
    d = Directory.open(f"sqlite:///{tmp_path / 'dir.db'}")
    yield d
    d.close()


def pragma(d: Directory, name: str) -> object:
    with d.store.engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_directory: Directory) -> None:
    assert str(pragma(sqlite_directory, "journal_mode")).lower() == "wal"
    assert pragma(sqlite_directory, "foreign_keys") == 1
    assert pragma(sqlite_directory, "busy_timeout") == BUSY_TIMEOUT_MS


def test_sqlite_enforces_foreign_keys(sqlite_directory: Directory) -> None:
    from sqlalchemy.exc import IntegrityError

    from casarray.directory.schema import SubnetRow

    with pytest.raises(IntegrityError), sqlite_directory.store.write() as session:
        session.add(SubnetRow(guid="x", cidr="10.0.0.0/8", site_id=999))


def test_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "directory.db"
    with Directory.open(f"sqlite:///{path}") as d:
        d.sites.new("BJ")
    assert path.exists()


def test_two_directories_on_one_file_write_interleaved(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Directory.open(url) as a, Directory.open(url) as b:
        a.sites.new("BJ", ["127.77.1.0/24"])
        b.sites.new("SH", ["127.77.2.0/24"])
        a.servers.new("CAS01", "ClientAccess", "127.77.1.11")
        b.servers.new("CAS03", "ClientAccess", "127.77.2.11")
        a.arrays.new("sh-cas.lab.net", site="SH")
        b.arrays.new("bj-cas.lab.net", site="BJ")
        assert [s.name for s in a.servers.get()] == ["CAS01", "CAS03"]
        assert [x.fqdn for x in b.arrays.get()] == ["bj-cas.lab.net", "sh-cas.lab.net"]
        assert a.topology_version() == b.topology_version()


def test_the_version_follows_changes_made_by_another_process_and_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    with Directory.open(url) as reader, Directory.open(url) as writer:
        before = reader.topology_version()  # the reader's connection is open from here
        writer.sites.new("BJ", ["127.77.1.0/24"])
        assert reader.topology_version() == before + 1
        seen: list[int] = []
        thread = threading.Thread(target=lambda: seen.append(reader.topology_version()))
        thread.start()
        thread.join()
        writer.sites.new("SH", ["127.77.2.0/24"])
        assert seen == [before + 1] and reader.topology_version() == before + 2


def test_concurrent_writers_are_serialised(directory_url: str) -> None:
    """Writers in threads, each with its own Directory (as separate processes would
    have): no 'database is locked', no lost update, and the rules still hold."""
    with Directory.open(directory_url) as setup:
        setup.sites.new("BJ", ["127.77.1.0/24"])
        start = setup.topology_version()
    errors: list[BaseException] = []
    won: list[str] = []
    barrier = threading.Barrier(4)

    def writer(n: int) -> None:
        try:
            with Directory.open(directory_url) as d:
                barrier.wait()
                for i in range(8):
                    d.sites.new(f"S{n}-{i}")
                # all four race for BJ's one array: exactly one may win
                try:
                    d.arrays.new(f"array{n}.lab.net", site="BJ")
                    won.append(f"array{n}.lab.net")
                except Exception as exc:  # the losers get ConflictError
                    if type(exc).__name__ != "ConflictError":
                        raise
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with Directory.open(directory_url) as d:
        assert d.sites.count() == 1 + 4 * 8
        assert [a.fqdn for a in d.arrays.get()] == won
        assert len(won) == 1
        assert d.topology_version() == start + 4 * 8 + 1


def test_unsupported_url_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported directory URL"):
        Store("mysql://localhost/x")


def test_default_location_is_in_casarray_home(casarray_home: Path) -> None:
    with Directory.open() as d:
        d.sites.new("BJ")
        assert d.store.url == f"sqlite:///{casarray_home / 'directory.db'}"
    assert (casarray_home / "directory.db").exists()


def test_directory_url_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CASARRAY_DIRECTORY", str(tmp_path / "env.db"))
    with Directory.open() as d:
        assert d.store.url == f"sqlite:///{tmp_path / 'env.db'}"


# -- the organization ---------------------------------------------------------------


def test_organization(directory: Directory) -> None:
    org = directory.organization()
    assert (org.name, org.ad_domain, org.default_domain) == ("Lab", "lab.net", "lab.net")
    assert org.accepted_domains == ("lab.net",)


def test_accepted_domains(directory: Directory) -> None:
    org = directory.add_accepted_domain("Mail.Example.")
    assert org.accepted_domains == ("lab.net", "mail.example")
    assert org.default_domain == "lab.net"
    org = directory.add_accepted_domain("corp.example", default=True)
    assert org.default_domain == "corp.example"
    assert directory.accepted_domain("MAIL.example", "X") == "mail.example"
    with pytest.raises(InvalidOperationError) as err:
        directory.add_accepted_domain("mail.EXAMPLE")
    assert "'mail.example' already exists" in str(err.value)
    with pytest.raises(InvalidValueError) as err:
        directory.add_accepted_domain("localhost")
    assert err.value.parameter == "DomainName"


def test_bad_organization_domain_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError) as err:
        Directory.open(f"sqlite:///{tmp_path / 'x.db'}", domain="lab")
    assert err.value.parameter == "Domain"


# -- timestamps -----------------------------------------------------------------------


def test_datetimes_are_timezone_aware(bj: Directory, password_hash: str) -> None:
    """Every datetime a record carries is aware; those of the objects made here are
    between this test's start and end (the site and server records come from a
    template made at the start of the session: they are only not in the future)."""
    started = datetime.now().astimezone() - timedelta(seconds=1)
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    bj.databases.new("DB01", "MBX01")
    bj.mailboxes.new(name="Alice", database="DB01", password_hash=password_hash)
    bj.mailboxes.new_many([MailboxSpec("bob", "Bob", "bob@lab.net", "DB01")], password_hash)
    made_here: list[object] = [*bj.arrays.get(), *bj.databases.get(), *bj.mailboxes.get()]
    from_template: list[object] = [bj.organization(), *bj.sites.get(), *bj.servers.get()]
    now = datetime.now().astimezone() + timedelta(seconds=1)
    for record in [*made_here, *from_template]:
        for field in dataclasses.fields(record):  # type: ignore[arg-type]
            value = getattr(record, field.name)
            if isinstance(value, datetime):
                assert value.tzinfo is not None, (record, field.name)
                assert value <= now, (record, field.name)
                if record in made_here:
                    assert value >= started, (record, field.name)


def test_creation_times_follow_install_order(bj: Directory) -> None:
    servers = bj.servers.get()
    times = [s.when_created for s in servers]
    assert times == sorted(times)
