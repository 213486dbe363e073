"""Mailbox databases through the shell: New-, Get-, Set-, Remove-MailboxDatabase,
Mount-Database and Dismount-Database; the batched, streaming bulk update of
RpcClientAccessServer (the seed's step V)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from casarray.directory import Directory, NotFoundError
from casarray.shell.cmdlet import COMMANDS, Cmdlet, register
from casarray.shell.objects import DATABASE_TYPE, database_object
from casarray.shell.views import view_for
from tests.shell.cmdlet_shell import Shell, add_databases, rpc_of, what_if

ARRAY = "bj-cas.lab.net"


@pytest.fixture
def dbs(bj: Directory) -> Directory:
    """BJ/SH with DB01, DB02 on MBX01 (naming CAS01.lab.net), DB03 on MBX02
    (CAS03.lab.net), then the array bj-cas.lab.net in BJ."""
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    bj.databases.new("DB03", "MBX02")
    bj.arrays.new(ARRAY, "BJ", name="BJ CAS Array")
    return bj


BEFORE = {"DB01": "CAS01.lab.net", "DB02": "CAS01.lab.net", "DB03": "CAS03.lab.net"}


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- New-MailboxDatabase ---------------------------------------------------------------


def test_new_database(shell: Shell, bj: Directory) -> None:
    result = shell.ok("New-MailboxDatabase -Name DB01 -Server MBX01")
    assert "DB01" in result.out and "MBX01" in result.out
    db = bj.databases.one("DB01")
    assert (db.server, db.rpc_client_access_server, db.mounted) == (
        "MBX01",
        "CAS01.lab.net",
        False,
    )


def test_new_database_in_a_site_with_an_array(shell: Shell, bj: Directory, tmp_path: Any) -> None:
    bj.arrays.new(ARRAY, "BJ")
    path = tmp_path / "DB04.db"
    shell.ok(f'New-MailboxDatabase DB04 -Server mbx01.lab.net -EdbFilePath "{path}"')
    db = bj.databases.one("DB04")
    assert db.rpc_client_access_server == ARRAY
    assert db.store_location == str(path)


def test_new_database_what_if(shell: Shell, bj: Directory) -> None:
    result = shell.ok("New-MailboxDatabase DB01 -Server MBX01 -WhatIf")
    assert result.out.strip() == what_if("New-MailboxDatabase", "DB01")
    assert bj.databases.get() == []


@pytest.mark.parametrize(
    ("command", "category", "named"),
    [
        ("New-MailboxDatabase DB09 -Server CAS01", "InvalidArgument", "Server"),
        ("New-MailboxDatabase DB09 -Server MBX09", "ObjectNotFound", "MBX09"),
        ("New-MailboxDatabase db01 -Server MBX02", "ResourceExists", "DB01"),
        ("New-MailboxDatabase DB09", "InvalidArgument", "Server"),
    ],
)
def test_new_database_errors(
    shell: Shell, dbs: Directory, command: str, category: str, named: str
) -> None:
    error = shell.run(command).error()
    assert error.category == category
    assert named in error.message
    assert sorted(rpc_of(dbs)) == ["DB01", "DB02", "DB03"]


# -- Get-MailboxDatabase ---------------------------------------------------------------


def test_get_databases(shell: Shell, dbs: Directory) -> None:
    assert lines(shell.ok("(Get-MailboxDatabase).Name").out) == ["DB01", "DB02", "DB03"]
    assert lines(shell.ok("(Get-MailboxDatabase -Server MBX02).Name").out) == ["DB03"]
    assert lines(shell.ok("(get-mailboxdatabase -server mbx02).name").out) == ["DB03"]
    assert lines(shell.ok("(Get-MailboxDatabase db02).RpcClientAccessServer").out) == [
        "CAS01.lab.net"
    ]
    guid = dbs.databases.one("DB03").guid
    assert lines(shell.ok(f"(Get-MailboxDatabase {guid}).Server").out) == ["MBX02"]
    dn = dbs.databases.one("DB03").distinguished_name
    assert lines(shell.ok(f'(Get-MailboxDatabase "{dn}").Name').out) == ["DB03"]
    assert shell.ok("Get-MailboxDatabase DB03 -Server MBX01").out.strip() == ""


def test_get_database_table(shell: Shell, dbs: Directory) -> None:
    out = shell.ok("Get-MailboxDatabase").out
    header = lines(out)[0].split()
    assert header == ["Name", "Server", "Recovery", "ReplicationType"]
    assert lines(out)[2].split() == ["DB01", "MBX01", "False", "None"]


def test_get_database_mounted_only_with_status(shell: Shell, dbs: Directory) -> None:
    dbs.databases.set_mounted("DB01", True)
    assert shell.ok("(Get-MailboxDatabase DB01).Mounted -eq $null").out.strip() == "True"
    assert shell.ok("(Get-MailboxDatabase DB01 -Status).Mounted").out.strip() == "True"
    assert shell.ok("(Get-MailboxDatabase DB02 -Status).Mounted").out.strip() == "False"


def test_get_database_errors(shell: Shell, dbs: Directory) -> None:
    error = shell.run("Get-MailboxDatabase DB09").error()
    assert error.category == "ObjectNotFound" and '"DB09"' in error.message
    error = shell.run("Get-MailboxDatabase -Server MBX09").error()
    assert error.category == "ObjectNotFound" and "MBX09" in error.message


def test_database_object_and_view(dbs: Directory) -> None:
    db = dbs.databases.one("DB01")
    obj = database_object(db)
    assert obj.type_name == DATABASE_TYPE
    assert str(obj) == "DB01"
    assert obj.base is db
    assert obj.get("Mounted") is None
    assert obj.get("Recovery") is False
    assert obj.get("ReplicationType") == "None"
    assert obj.get("EdbFilePath") == db.store_location
    assert obj.get("MasterServerOrAvailabilityGroup") == "MBX01"
    assert database_object(db, status=True).get("Mounted") is False
    view = view_for(DATABASE_TYPE)
    assert view is not None and view.table == ("Name", "Server", "Recovery", "ReplicationType")


# -- Set-MailboxDatabase -------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        f'Set-MailboxDatabase "DB01" -RpcClientAccessServer {ARRAY}',
        f"set-mailboxdatabase db01 -rpcclientaccessserver {ARRAY.upper()}",
        f"Set-MailboxDatabase DB01 –rpcclientaccessserver {ARRAY}",
        f"Set-MailboxDatabase DB01 —Rpc {ARRAY}",
        f"Set-MailboxDatabase -Identity DB01 -Rpc:{ARRAY}.",
        f"Get-MailboxDatabase DB01 | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}",
    ],
)
def test_set_one_database(shell: Shell, dbs: Directory, command: str) -> None:
    result = shell.ok(command)
    assert result.out == ""
    assert rpc_of(dbs) == {**BEFORE, "DB01": ARRAY}


def test_set_redirects_to_one_good_server(shell: Shell, dbs: Directory) -> None:
    shell.ok("Set-MailboxDatabase DB02 -RpcClientAccessServer cas02.lab.net")
    assert rpc_of(dbs)["DB02"] == "CAS02.lab.net"


def test_set_every_database(shell: Shell, dbs: Directory) -> None:
    result = shell.ok(f"Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}")
    assert result.out == ""
    assert rpc_of(dbs) == dict.fromkeys(BEFORE, ARRAY)


def test_set_by_name_from_the_pipeline(shell: Shell, dbs: Directory) -> None:
    shell.ok(f'"DB02","db03" | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}')
    assert rpc_of(dbs) == {**BEFORE, "DB02": ARRAY, "DB03": ARRAY}


def test_set_what_if_changes_nothing(shell: Shell, dbs: Directory) -> None:
    result = shell.ok(f"Get-MailboxDatabase | Set-MailboxDatabase -Rpc {ARRAY} -WhatIf")
    assert lines(result.out) == [
        what_if("Set-MailboxDatabase", n) for n in ("DB01", "DB02", "DB03")
    ]
    assert rpc_of(dbs) == BEFORE


def test_set_confirm_each(shell: Shell, dbs: Directory) -> None:
    result = shell.ok(
        f"Get-MailboxDatabase | Set-MailboxDatabase -Rpc {ARRAY} -Confirm", stdin="y\nn\ny\n"
    )
    assert result.prompts == 3
    assert rpc_of(dbs) == {"DB01": ARRAY, "DB02": "CAS01.lab.net", "DB03": ARRAY}


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("nosuch.lab.net", "is not the FQDN of a Client Access server"),
        ("MBX01.lab.net", "doesn't have the Client Access role"),
        ("CAS01", "use its FQDN, CAS01.lab.net"),
        ('"BJ CAS Array"', f"use its FQDN, {ARRAY}"),
    ],
)
def test_bad_value_is_one_error_and_changes_nothing(
    shell: Shell, dbs: Directory, value: str, says: str
) -> None:
    result = shell.run(f"Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer {value}")
    error = result.error()
    assert error.category == "InvalidArgument"
    assert "'RpcClientAccessServer'" in error.message and says in error.message
    assert error.command == "Set-MailboxDatabase"
    assert rpc_of(dbs) == BEFORE


def test_unknown_database_is_named_and_the_others_are_set(shell: Shell, dbs: Directory) -> None:
    result = shell.run(f'"DB01","DB09","DB03" | Set-MailboxDatabase -Rpc {ARRAY}')
    error = result.error()
    assert error.category == "ObjectNotFound" and '"DB09"' in error.message
    assert rpc_of(dbs) == {**BEFORE, "DB01": ARRAY, "DB03": ARRAY}


def test_error_action_stop_keeps_what_was_done(shell: Shell, dbs: Directory) -> None:
    result = shell.run(f'"DB01","DB09","DB03" | Set-MailboxDatabase -Rpc {ARRAY} -ea Stop')
    assert '"DB09"' in result.error().message
    assert rpc_of(dbs) == {**BEFORE, "DB01": ARRAY}


def test_failed_batch_is_retried_one_by_one(shell: Shell, dbs: Directory) -> None:
    # DB02 goes away between Get-MailboxDatabase and the batch that names it
    shell.ok("$all = Get-MailboxDatabase")
    dbs.databases.remove("DB02")
    result = shell.run(f"$all | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}")
    error = result.error()
    assert error.category == "ObjectNotFound" and '"DB02"' in error.message
    assert rpc_of(dbs) == {"DB01": ARRAY, "DB03": ARRAY}


def test_failed_batch_error_action(shell: Shell, dbs: Directory) -> None:
    shell.ok("$all = Get-MailboxDatabase")
    dbs.databases.remove("DB02")
    result = shell.run(f"$all | Set-MailboxDatabase -Rpc {ARRAY} -ErrorAction SilentlyContinue")
    assert result.err == ""
    assert rpc_of(dbs) == {"DB01": ARRAY, "DB03": ARRAY}


def test_set_unchanged_warns_once(shell: Shell, dbs: Directory) -> None:
    shell.ok(f"Set-MailboxDatabase DB01 -Rpc {ARRAY}")
    result = shell.ok(f"Set-MailboxDatabase DB01 -Rpc {ARRAY}")
    assert result.warnings == [
        "The command completed successfully but no settings of 'DB01' have been modified."
    ]
    shell.ok(f"Set-MailboxDatabase DB02 -Rpc {ARRAY}")
    result = shell.ok(f"Get-MailboxDatabase | Set-MailboxDatabase -Rpc {ARRAY}")
    (warning,) = result.warnings
    assert "2 databases (DB01, DB02)" in warning
    assert rpc_of(dbs) == dict.fromkeys(BEFORE, ARRAY)


def test_set_name(shell: Shell, dbs: Directory) -> None:
    shell.ok(f"Set-MailboxDatabase DB01 -Name DB10 -RpcClientAccessServer {ARRAY}")
    assert rpc_of(dbs) == {"DB10": ARRAY, "DB02": "CAS01.lab.net", "DB03": "CAS03.lab.net"}
    error = shell.run("Set-MailboxDatabase DB10 -Name db02").error()
    assert error.category == "ResourceExists" and "DB02" in error.message
    result = shell.ok("Set-MailboxDatabase DB10")
    assert "no settings of 'DB10'" in result.warnings[0]


def test_set_needs_an_identity(shell: Shell, dbs: Directory) -> None:
    error = shell.run(f"Set-MailboxDatabase -RpcClientAccessServer {ARRAY}").error()
    assert "Identity" in error.message
    assert rpc_of(dbs) == BEFORE


# -- the bulk update at scale ------------------------------------------------------------


class _Probe:
    """What the streaming test cmdlet saw of the directory while it was yielding."""

    set_before_end: int = -1
    yielded: int = 0


@pytest.fixture
def stream_cmdlet(directory_url: str) -> Iterator[type[_Probe]]:
    """Get-TestDatabaseStream: yields every database like Get-MailboxDatabase and,
    after the 600th was taken downstream, counts the databases that already name the
    array (with its own directory connection)."""
    _Probe.set_before_end, _Probe.yielded = -1, 0

    @register
    class GetTestDatabaseStream(Cmdlet):
        name = "Get-TestDatabaseStream"

        def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
            records = self.directory.databases.get()
            with Directory.open(directory_url) as watcher:
                for n, record in enumerate(records, 1):
                    yield database_object(record)
                    _Probe.yielded = n
                    if n == 600:
                        _Probe.set_before_end = sum(
                            1
                            for db in watcher.databases.get()
                            if db.rpc_client_access_server == ARRAY
                        )

    try:
        yield _Probe
    finally:
        COMMANDS.pop(GetTestDatabaseStream.name.lower(), None)


def test_bulk_update_streams_in_batches(
    shell: Shell, bj: Directory, stream_cmdlet: type[_Probe]
) -> None:
    names = add_databases(bj, 2100)  # naming CAS01.lab.net
    bj.arrays.new(ARRAY, "BJ")
    shell.ok(f"Get-TestDatabaseStream | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}")
    assert stream_cmdlet.yielded == 2100
    # batches (of 500, or of what came in 50 ms) were written while the input was still
    # being read: after 600 databases, some were set and none of those not yet read
    assert 0 < stream_cmdlet.set_before_end <= 600
    assert set(rpc_of(bj).values()) == {ARRAY}
    assert len(names) == 2100


def test_bulk_update_of_10000_databases_is_fast(shell: Shell, bj: Directory) -> None:
    add_databases(bj, 10_000)
    bj.arrays.new(ARRAY, "BJ")
    assert set(rpc_of(bj).values()) == {"CAS01.lab.net"}
    shell.ok("Get-ExchangeServer CAS01")  # load the cmdlets and open the directory
    started = time.perf_counter()
    shell.ok(f"Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}")
    elapsed = time.perf_counter() - started
    assert set(rpc_of(bj).values()) == {ARRAY}
    assert elapsed <= 30, (
        f"{elapsed:.2f} s"
    )  # a guard against runaway (quadratic) time, 10x the usual: bench/ measures speed


# -- Remove-MailboxDatabase ------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "left", "prompts"),
    [
        ("y\nn\ny\n", ["DB02"], 3),
        ("n\nn\nn\n", ["DB01", "DB02", "DB03"], 3),
        ("a\n", [], 1),
        ("y\nl\n", ["DB02", "DB03"], 2),
    ],
)
def test_remove_databases_asks(
    shell: Shell, dbs: Directory, answers: str, left: list[str], prompts: int
) -> None:
    result = shell.ok("Get-MailboxDatabase | Remove-MailboxDatabase", stdin=answers)
    assert result.prompts == prompts
    assert sorted(rpc_of(dbs)) == left


def test_remove_database_without_asking(shell: Shell, dbs: Directory) -> None:
    location = dbs.databases.one("DB02").store_location
    result = shell.ok("Remove-MailboxDatabase DB02 -Confirm:$false")
    assert result.prompts == 0
    (warning,) = result.warnings
    assert location in warning and "DB02" in warning
    assert sorted(rpc_of(dbs)) == ["DB01", "DB03"]


def test_remove_database_what_if(shell: Shell, dbs: Directory) -> None:
    result = shell.ok("Remove-MailboxDatabase DB02 -WhatIf")
    assert result.out.strip() == what_if("Remove-MailboxDatabase", "DB02")
    assert sorted(rpc_of(dbs)) == ["DB01", "DB02", "DB03"]


def test_remove_database_errors(shell: Shell, dbs: Directory, password_hash: str) -> None:
    dbs.mailboxes.new(name="Alice", alias="alice", database="DB01", password_hash=password_hash)
    error = shell.run("Remove-MailboxDatabase DB01 -Confirm:$false").error()
    assert error.category == "InvalidOperation" and "alice" in error.message
    error = shell.run("Remove-MailboxDatabase DB09 -Confirm:$false").error()
    assert error.category == "ObjectNotFound" and "DB09" in error.message
    assert sorted(rpc_of(dbs)) == ["DB01", "DB02", "DB03"]


# -- Mount-Database, Dismount-Database ---------------------------------------------------


def test_mount_and_dismount(shell: Shell, dbs: Directory) -> None:
    result = shell.ok("Mount-Database DB01")
    assert result.out == "" and result.prompts == 0
    assert dbs.databases.one("DB01").mounted is True
    result = shell.ok("Get-MailboxDatabase -Server MBX01 | Mount-Database")
    assert dbs.databases.one("DB02").mounted is True
    result = shell.ok("Dismount-Database DB01", stdin="n\n")
    assert result.prompts == 1
    assert dbs.databases.one("DB01").mounted is True
    shell.ok("Dismount-Database DB01", stdin="y\n")
    assert dbs.databases.one("DB01").mounted is False
    shell.ok("Dismount-Database DB02 -Confirm:$false")
    assert dbs.databases.one("DB02").mounted is False


def test_mount_what_if_and_errors(shell: Shell, dbs: Directory) -> None:
    result = shell.ok("Mount-Database DB01 -WhatIf")
    assert result.out.strip() == what_if("Mount-Database", "DB01")
    result = shell.ok("Dismount-Database DB01 -WhatIf")
    assert result.out.strip() == what_if("Dismount-Database", "DB01")
    assert dbs.databases.one("DB01").mounted is False
    error = shell.run("Mount-Database DB09").error()
    assert error.category == "ObjectNotFound" and "DB09" in error.message
    with pytest.raises(NotFoundError):
        dbs.databases.one("DB09")
