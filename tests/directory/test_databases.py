"""Mailbox databases and their RpcClientAccessServer."""

from __future__ import annotations

from pathlib import Path

import pytest

from casarray.directory import (
    ConflictError,
    Directory,
    InUseError,
    InvalidValueError,
    NotFoundError,
)

ADMIN_GROUP_DN = (
    "CN=Exchange Administrative Group (FYDIBOHF23SPDLT),CN=Administrative Groups,CN=Lab,"
    "CN=Microsoft Exchange,CN=Services,CN=Configuration,DC=lab,DC=net"
)


def rpc(d: Directory) -> dict[str, str]:
    return {db.name: db.rpc_client_access_server for db in d.databases.get()}


def default_location(backend: str, url: str, home: Path, name: str) -> str:
    """Where a database is stored without -EdbFilePath: beside the directory
    (test_database_locations.py)."""
    if backend == "sqlite":
        return str(home / "databases" / f"{name}.db")
    return f"{url}?options=-csearch_path%3D{name.lower()}"


def test_new_database(bj: Directory, casarray_home: Path, backend: str, directory_url: str) -> None:
    db = bj.databases.new("DB01", "mbx01.lab.net")
    assert db.name == "DB01"
    assert (db.server, db.server_fqdn, db.site) == ("MBX01", "MBX01.lab.net", "BJ")
    assert db.mounted is False
    assert db.store_location == default_location(backend, directory_url, casarray_home, "DB01")
    file = casarray_home / "databases" / "DB01.db" if backend == "sqlite" else None
    assert bj.databases.store_path(db) == file
    assert db.distinguished_name == f"CN=DB01,CN=Databases,{ADMIN_GROUP_DN}"
    assert db.exchange_legacy_dn == (
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration"
        "/cn=Databases/cn=DB01"
    )
    assert bj.databases.one("db01") == db
    assert bj.databases.count() == 1


def test_store_location_and_mounted(bj: Directory, tmp_path: Path) -> None:
    db = bj.databases.new("DB01", "MBX01", store_location=str(tmp_path / "x.db"), mounted=True)
    assert db.mounted is True
    assert db.store_location == str(tmp_path / "x.db")
    url = bj.databases.new("DB02", "MBX01", store_location="postgresql+psycopg://h/db02")
    assert bj.databases.store_path(url) is None


def test_mount_and_dismount(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    assert bj.databases.set_mounted("DB01", True).mounted is True
    assert bj.databases.one("DB01").mounted is True
    assert bj.databases.set_mounted("db01", False).mounted is False


def test_filters(bj: Directory) -> None:
    bj.databases.new("DB02", "MBX01")
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB03", "MBX02")
    assert [d.name for d in bj.databases.get()] == ["DB01", "DB02", "DB03"]
    assert [d.name for d in bj.databases.get(server="MBX01")] == ["DB01", "DB02"]
    assert [d.name for d in bj.databases.get(site="sh")] == ["DB03"]
    assert [d.name for d in bj.databases.get("DB02", server="MBX01")] == ["DB02"]
    assert bj.databases.get("DB02", server="MBX02") == []


# -- the default RpcClientAccessServer ---------------------------------------------


def test_default_is_the_sites_array(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ")
    assert bj.databases.new("DB01", "MBX01").rpc_client_access_server == "bj-cas.lab.net"
    # SH has no array: its first Client Access server
    assert bj.databases.new("DB03", "MBX02").rpc_client_access_server == "CAS03.lab.net"


def test_default_is_the_first_installed_client_access_server(bj: Directory) -> None:
    # CAS00 sorts before CAS01 by name but was installed later
    bj.servers.new("CAS00", "ClientAccess", "127.77.1.10")
    assert bj.databases.new("DB01", "MBX01").rpc_client_access_server == "CAS01.lab.net"
    bj.databases.set_rpc_client_access_server("DB01", "CAS02.lab.net")
    bj.servers.remove("CAS01")
    assert bj.databases.new("DB02", "MBX01").rpc_client_access_server == "CAS02.lab.net"


def test_default_ignores_client_access_servers_of_other_sites(bj: Directory) -> None:
    assert bj.databases.new("DB03", "MBX02").rpc_client_access_server == "CAS03.lab.net"


def test_default_in_a_site_without_client_access_is_the_owning_server(
    directory: Directory,
) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.sites.new("HK", ["127.77.3.0/24"])
    directory.servers.new("CAS01", "ClientAccess", "127.77.1.11")
    directory.servers.new("MBX03", "Mailbox", "127.77.3.21")
    assert directory.databases.new("DB05", "MBX03").rpc_client_access_server == "MBX03.lab.net"


def test_default_for_a_multi_role_server(directory: Directory) -> None:
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.servers.new("EX01", "Mailbox,ClientAccess", "127.77.1.11")
    assert directory.databases.new("DB01", "EX01").rpc_client_access_server == "EX01.lab.net"


def test_database_needs_a_mailbox_server(bj: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.databases.new("DB01", "CAS01")
    assert err.value.parameter == "Server"
    assert "CAS01" in str(err.value)
    assert "Mailbox role" in str(err.value)
    assert bj.databases.get() == []


def test_database_on_unknown_server(bj: Directory) -> None:
    with pytest.raises(NotFoundError) as err:
        bj.databases.new("DB01", "MBX99")
    assert '"MBX99"' in str(err.value)


def test_duplicate_database_refused(bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    with pytest.raises(ConflictError) as err:
        bj.databases.new("db01", "MBX02")
    assert "'DB01' already exists on server MBX01" in str(err.value)
    assert err.value.conflicting == "DB01"
    assert [d.server for d in bj.databases.get()] == ["MBX01"]


@pytest.mark.parametrize("bad", ["", "x" * 65, "DB\x0001"])
def test_bad_database_name_refused(bj: Directory, bad: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.databases.new(bad, "MBX01")
    assert err.value.parameter == "Name"


# -- Set-MailboxDatabase -RpcClientAccessServer -------------------------------------


@pytest.fixture
def dbs(bj: Directory) -> Directory:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    bj.databases.new("DB01", "MBX01")  # bj-cas.lab.net
    bj.databases.new("DB02", "MBX01")  # bj-cas.lab.net
    bj.databases.new("DB03", "MBX02")  # CAS03.lab.net
    return bj


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("CAS02.lab.net", "CAS02.lab.net"),
        ("cas02.LAB.NET", "CAS02.lab.net"),
        (" cas03.lab.net. ", "CAS03.lab.net"),
        ("BJ-CAS.LAB.NET", "bj-cas.lab.net"),
    ],
)
def test_set_accepts_client_access_or_array_fqdn(dbs: Directory, value: str, stored: str) -> None:
    assert dbs.databases.set_rpc_client_access_server("DB03", value) == 1
    assert dbs.databases.one("DB03").rpc_client_access_server == stored


def test_set_one_with_set(dbs: Directory) -> None:
    db = dbs.databases.set("DB01", rpc_client_access_server="cas01.lab.net")
    assert db.rpc_client_access_server == "CAS01.lab.net"
    assert rpc(dbs)["DB02"] == "bj-cas.lab.net"


def test_set_all(dbs: Directory) -> None:
    assert dbs.databases.set_rpc_client_access_server(None, "bj-cas.lab.net") == 3
    assert set(rpc(dbs).values()) == {"bj-cas.lab.net"}


def test_set_a_list(dbs: Directory) -> None:
    db01 = dbs.databases.one("DB01")
    assert dbs.databases.set_rpc_client_access_server([db01, "db03"], "CAS02.lab.net") == 2
    assert rpc(dbs) == {"DB01": "CAS02.lab.net", "DB02": "bj-cas.lab.net", "DB03": "CAS02.lab.net"}


def test_set_from_a_generator_counts_each_database_once(dbs: Directory) -> None:
    names = (n for n in ["DB01", "db01", "DB02"])
    assert dbs.databases.set_rpc_client_access_server(names, "CAS01.lab.net") == 2


def test_set_one_record(dbs: Directory) -> None:
    db = dbs.databases.one("DB02")
    assert dbs.databases.set_rpc_client_access_server(db, "CAS02.lab.net") == 1
    assert rpc(dbs)["DB02"] == "CAS02.lab.net"


def test_set_nothing(dbs: Directory) -> None:
    assert dbs.databases.set_rpc_client_access_server([], "CAS02.lab.net") == 0


def test_set_mailbox_only_server_refused(dbs: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        dbs.databases.set_rpc_client_access_server("DB01", "MBX01.lab.net")
    assert err.value.parameter == "RpcClientAccessServer"
    assert "parameter 'RpcClientAccessServer'" in str(err.value)
    assert "MBX01" in str(err.value)
    assert "Client Access role" in str(err.value)


def test_set_server_short_name_refused_suggesting_its_fqdn(dbs: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        dbs.databases.set_rpc_client_access_server("DB01", "cas02")
    assert "is a server name" in str(err.value)
    assert "CAS02.lab.net" in str(err.value)


def test_set_array_name_refused_suggesting_its_fqdn(dbs: Directory) -> None:
    with pytest.raises(InvalidValueError) as err:
        dbs.databases.set("DB03", rpc_client_access_server="BJ CAS Array")
    assert "is an array name" in str(err.value)
    assert "bj-cas.lab.net" in str(err.value)


@pytest.mark.parametrize("value", ["nowhere.lab.net", "", "MBX01", "127.77.1.11"])
def test_set_unknown_name_refused(dbs: Directory, value: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        dbs.databases.set_rpc_client_access_server(None, value)
    assert err.value.parameter == "RpcClientAccessServer"
    assert "is not the FQDN of a Client Access server or of a client access array" in str(err.value)


def test_failed_set_changes_nothing(dbs: Directory) -> None:
    before = rpc(dbs)
    version = dbs.topology_version()
    with pytest.raises(InvalidValueError):
        dbs.databases.set_rpc_client_access_server(None, "MBX01.lab.net")
    with pytest.raises(NotFoundError) as err:
        dbs.databases.set_rpc_client_access_server(["DB01", "DB99"], "CAS02.lab.net")
    assert '"DB99"' in str(err.value)
    with pytest.raises(ConflictError):
        dbs.databases.set("DB01", rpc_client_access_server="CAS02.lab.net", name="db02")
    assert rpc(dbs) == before
    assert dbs.topology_version() == version


def test_rename_database(dbs: Directory) -> None:
    old = dbs.databases.one("DB01")
    renamed = dbs.databases.set("db01", name="Mailbox Database 01")
    assert renamed.guid == old.guid
    assert renamed.name == "Mailbox Database 01"
    assert renamed.distinguished_name.startswith("CN=Mailbox Database 01,CN=Databases,")
    assert renamed.rpc_client_access_server == old.rpc_client_access_server
    assert dbs.databases.set(old.guid, name="MAILBOX DATABASE 01").name == "MAILBOX DATABASE 01"
    with pytest.raises(NotFoundError):
        dbs.databases.one("DB01")


def test_rename_to_existing_refused(dbs: Directory) -> None:
    with pytest.raises(ConflictError) as err:
        dbs.databases.set("DB01", name="DB03")
    assert "'DB03' already exists" in str(err.value)
    assert err.value.conflicting == "DB03"


# -- Remove-MailboxDatabase ---------------------------------------------------------


def test_remove_empty_database_returns_its_location(
    dbs: Directory, casarray_home: Path, backend: str, directory_url: str
) -> None:
    location = default_location(backend, directory_url, casarray_home, "DB02")
    assert dbs.databases.remove("DB02") == location
    assert [d.name for d in dbs.databases.get()] == ["DB01", "DB03"]


def test_remove_database_with_mailboxes_refused(dbs: Directory, password_hash: str) -> None:
    for alias in ("carol", "alice", "bob"):
        dbs.mailboxes.new(
            name=alias.title(), alias=alias, database="DB01", password_hash=password_hash
        )
    with pytest.raises(InUseError) as err:
        dbs.databases.remove("DB01")
    assert "'DB01'" in str(err.value)
    assert "alice, bob, carol" in str(err.value)
    assert err.value.dependents == ["alice", "bob", "carol"]
    assert dbs.databases.one("DB01").name == "DB01"


def test_remove_database_with_many_mailboxes_lists_ten(dbs: Directory, password_hash: str) -> None:
    from casarray.directory.mailboxes import MailboxSpec

    specs = [MailboxSpec(f"u{i:02}", f"User {i}", f"u{i:02}@lab.net", "DB01") for i in range(25)]
    dbs.mailboxes.new_many(specs, password_hash)
    with pytest.raises(InUseError) as err:
        dbs.databases.remove("DB01")
    assert "u00, u01, u02, u03, u04, u05, u06, u07, u08, u09, ..." in str(err.value)
    assert "u10" not in str(err.value)
