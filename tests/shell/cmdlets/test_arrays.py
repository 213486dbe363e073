"""Client access arrays through the shell: New-, Get-, Set-, Remove-ClientAccessArray,
with the seed's reminders (step V) and the rules the directory enforces."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from casarray.shell.objects import ARRAY_TYPE, array_object
from casarray.shell.views import view_for
from tests.shell.cmdlet_shell import Shell, rpc_of, what_if

NEW_BJ = 'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"'


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- New-ClientAccessArray -------------------------------------------------------------


def test_new_array(shell: Shell, bj: Directory) -> None:
    result = shell.ok(NEW_BJ)
    assert "BJ CAS Array" in result.out
    assert result.warnings == []  # BJ has Client Access servers and no databases
    array = bj.arrays.one("bj-cas.lab.net")
    assert (array.name, array.site, array.members) == ("BJ CAS Array", "BJ", ("CAS01", "CAS02"))


def test_new_array_name_defaults_and_positional_name(shell: Shell, bj: Directory) -> None:
    shell.ok("New-ClientAccessArray -Fqdn sh-cas.lab.net -Site SH")
    assert bj.arrays.one("sh-cas.lab.net").name == "sh-cas"
    shell.ok("Remove-ClientAccessArray sh-cas -Confirm:$false")
    shell.ok("New-ClientAccessArray SH-Array -Fqdn sh-cas.lab.net -Site SH")
    assert bj.arrays.one("sh-cas.lab.net").name == "SH-Array"


def test_new_array_what_if(shell: Shell, bj: Directory) -> None:
    result = shell.ok(NEW_BJ + " -WhatIf")
    assert result.out.strip() == what_if("New-ClientAccessArray", "BJ CAS Array")
    assert bj.arrays.get() == []


def test_new_array_confirm(shell: Shell, bj: Directory) -> None:
    result = shell.ok(NEW_BJ + " -Confirm", stdin="n\n")
    assert result.prompts == 1
    assert bj.arrays.get() == []
    shell.ok(NEW_BJ + " -Confirm", stdin="y\n")
    assert len(bj.arrays.get()) == 1


def test_new_array_leaves_existing_databases_and_says_so(shell: Shell, bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB02", "MBX01")
    result = shell.ok(NEW_BJ)
    assert rpc_of(bj) == {"DB01": "CAS01.lab.net", "DB02": "CAS01.lab.net"}
    (warning,) = result.warnings
    assert "DB01 (CAS01.lab.net), DB02 (CAS01.lab.net)" in warning
    # only BJ has databases: the seed's command is the right one
    assert warning.endswith(
        "Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net"
    )
    # databases created now get the array
    assert bj.databases.new("DB03", "MBX01").rpc_client_access_server == "bj-cas.lab.net"


def test_new_array_reminder_spares_other_sites(shell: Shell, bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")
    bj.databases.new("DB03", "MBX02")
    (warning,) = shell.ok(NEW_BJ).warnings
    assert "DB01" in warning and "DB03" not in warning
    assert "Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase" in warning
    assert "Get-MailboxDatabase | Set-MailboxDatabase" not in warning


def test_new_array_in_a_site_without_client_access_servers(shell: Shell, bj: Directory) -> None:
    bj.sites.new("HK")
    result = shell.ok("New-ClientAccessArray -Fqdn hk-cas.lab.net -Site HK")
    (warning,) = result.warnings
    assert "HK" in warning and "no Client Access servers" in warning
    assert bj.arrays.one("hk-cas").members == ()


@pytest.mark.parametrize(
    ("command", "category", "named"),
    [
        ("New-ClientAccessArray -Fqdn other.lab.net -Site BJ", "ResourceExists", "BJ CAS Array"),
        ("New-ClientAccessArray -Fqdn bj-cas.lab.net -Site SH", "ResourceExists", "bj-cas"),
        ("New-ClientAccessArray -Fqdn CAS03.lab.net -Site SH", "ResourceExists", "CAS03"),
        ("New-ClientAccessArray -Fqdn sh-cas -Site SH", "InvalidArgument", "Fqdn"),
        ("New-ClientAccessArray -Fqdn hk-cas.lab.net -Site HK", "ObjectNotFound", "HK"),
        ("New-ClientAccessArray -Fqdn sh-cas.lab.net", "InvalidArgument", "Site"),
    ],
)
def test_new_array_errors(
    shell: Shell, bj: Directory, command: str, category: str, named: str
) -> None:
    shell.ok(NEW_BJ)
    error = shell.run(command).error()
    assert error.category == category
    assert named in error.message
    assert [a.name for a in bj.arrays.get()] == ["BJ CAS Array"]


# -- Get-ClientAccessArray -------------------------------------------------------------


def test_get_array(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.arrays.new("sh-cas.lab.net", "SH", name="SH CAS Array")
    assert lines(shell.ok("(Get-ClientAccessArray).Name").out) == ["BJ CAS Array", "SH CAS Array"]
    assert lines(shell.ok("(Get-ClientAccessArray -Site sh).Fqdn").out) == ["sh-cas.lab.net"]
    assert lines(shell.ok("(Get-ClientAccessArray BJ-CAS.lab.net).Members").out) == [
        "CAS01",
        "CAS02",
    ]
    assert lines(shell.ok('(Get-ClientAccessArray "bj cas array").Site').out) == ["BJ"]
    assert shell.ok("Get-ClientAccessArray bj-cas.lab.net -Site SH").out.strip() == ""
    error = shell.run("Get-ClientAccessArray hk-cas.lab.net").error()
    assert error.category == "ObjectNotFound" and "hk-cas.lab.net" in error.message


def test_members_follow_the_site(shell: Shell, bj: Directory) -> None:
    shell.ok(NEW_BJ)
    shell.ok("New-ExchangeServer CAS04 -Roles ClientAccess -IPAddress 127.77.1.14")
    out = shell.ok("(Get-ClientAccessArray).Members").out
    assert lines(out) == ["CAS01", "CAS02", "CAS04"]


def test_array_object_and_view(bj: Directory) -> None:
    array = bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    obj = array_object(array)
    assert obj.type_name == ARRAY_TYPE
    assert str(obj) == "BJ CAS Array"
    assert obj.base is array
    assert obj.get("Members") == ["CAS01", "CAS02"]
    assert obj.get("ExchangeLegacyDN") == array.exchange_legacy_dn
    assert obj.get("Guid") == array.guid
    assert obj.get("Identity") == "BJ CAS Array"
    assert view_for(ARRAY_TYPE).table == ("Name", "Site", "Fqdn", "Members")  # type: ignore[union-attr]


# -- Set-ClientAccessArray -------------------------------------------------------------


def test_set_array_name(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    result = shell.ok("Set-ClientAccessArray bj-cas.lab.net -Name BJ-Array")
    assert result.out == ""  # Set-* writes nothing
    assert bj.arrays.one("bj-cas.lab.net").name == "BJ-Array"


def test_set_array_fqdn_carries_the_databases(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.databases.new("DB01", "MBX01")
    result = shell.ok("Get-ClientAccessArray | Set-ClientAccessArray -Fqdn outlook.lab.net")
    (warning,) = result.warnings
    assert "outlook.lab.net" in warning and "DNS" in warning and "certificate" in warning
    assert bj.arrays.one("BJ CAS Array").fqdn == "outlook.lab.net"
    assert rpc_of(bj) == {"DB01": "outlook.lab.net"}


def test_set_array_site(shell: Shell, bj: Directory) -> None:
    bj.sites.new("HK")
    bj.arrays.new("sh-cas.lab.net", "SH")
    shell.ok("Set-ClientAccessArray sh-cas -Site HK")
    assert bj.arrays.one("sh-cas").site == "HK"
    assert bj.arrays.one("sh-cas").members == ()


def test_set_array_what_if_and_no_change(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    result = shell.ok("Set-ClientAccessArray bj-cas.lab.net -Name X -WhatIf")
    assert result.out.strip() == what_if("Set-ClientAccessArray", "BJ CAS Array")
    assert bj.arrays.one("bj-cas.lab.net").name == "BJ CAS Array"
    result = shell.ok("Set-ClientAccessArray bj-cas.lab.net -Fqdn bj-cas.lab.net")
    assert result.warnings == [
        "The command completed successfully but no settings of 'BJ CAS Array' have been modified."
    ]


@pytest.mark.parametrize(
    ("command", "category", "named"),
    [
        ("Set-ClientAccessArray bj-cas -Site SH", "ResourceExists", "SH"),
        ("Set-ClientAccessArray bj-cas -Fqdn sh-cas.lab.net", "ResourceExists", "sh-cas"),
        ("Set-ClientAccessArray bj-cas -Fqdn CAS01.lab.net", "ResourceExists", "CAS01"),
        ("Set-ClientAccessArray bj-cas -Fqdn not_a_name.lab.net", "InvalidArgument", "Fqdn"),
        ("Set-ClientAccessArray hk-cas -Name X", "ObjectNotFound", "hk-cas"),
        ("Set-ClientAccessArray bj-cas -Site HK", "ObjectNotFound", "HK"),
    ],
)
def test_set_array_errors(
    shell: Shell, bj: Directory, command: str, category: str, named: str
) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ")
    bj.arrays.new("sh-cas.lab.net", "SH")
    before = bj.arrays.get()
    error = shell.run(command).error()
    assert error.category == category
    assert named in error.message
    assert bj.arrays.get() == before


# -- Remove-ClientAccessArray ----------------------------------------------------------


@pytest.mark.parametrize(("answer", "removed"), [("y", True), ("n", False), ("", True)])
def test_remove_array_asks(shell: Shell, bj: Directory, answer: str, removed: bool) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    result = shell.ok("Remove-ClientAccessArray bj-cas.lab.net", stdin=answer + "\n")
    assert result.prompts == 1
    assert (
        'Performing the operation "Remove-ClientAccessArray" on target "BJ CAS Array".'
        in result.out
    )
    assert (bj.arrays.get() == []) is removed


def test_remove_array_yes_and_no_to_all(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ")
    bj.arrays.new("sh-cas.lab.net", "SH")
    result = shell.ok("Get-ClientAccessArray | Remove-ClientAccessArray", stdin="l\n")
    assert result.prompts == 1
    assert len(bj.arrays.get()) == 2
    result = shell.ok("Get-ClientAccessArray | Remove-ClientAccessArray", stdin="a\n")
    assert result.prompts == 1
    assert bj.arrays.get() == []


def test_remove_array_without_asking_and_what_if(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    result = shell.ok("Remove-ClientAccessArray bj-cas.lab.net -WhatIf")
    assert result.out.strip() == what_if("Remove-ClientAccessArray", "BJ CAS Array")
    assert len(bj.arrays.get()) == 1
    result = shell.ok("Remove-ClientAccessArray -Identity 'BJ CAS Array' -Confirm:$false")
    assert result.prompts == 0
    assert bj.arrays.get() == []


def test_remove_array_in_use(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.databases.new("DB01", "MBX01")
    error = shell.run("Remove-ClientAccessArray bj-cas.lab.net -Confirm:$false").error()
    assert error.category == "InvalidOperation"
    assert "DB01" in error.message and "-Force" in error.message
    assert len(bj.arrays.get()) == 1
    result = shell.ok("Remove-ClientAccessArray bj-cas.lab.net -Force -Confirm:$false")
    (warning,) = result.warnings
    assert "DB01" in warning and "bj-cas.lab.net" in warning
    assert bj.arrays.get() == []
    assert rpc_of(bj) == {"DB01": "bj-cas.lab.net"}


def test_remove_array_by_object_prompt_eof(shell: Shell, bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ")
    result = shell.ok("Get-ClientAccessArray | Remove-ClientAccessArray", stdin="")
    assert result.prompts == 1
    assert any("-Confirm:$false" in w for w in result.warnings)
    assert len(bj.arrays.get()) == 1
