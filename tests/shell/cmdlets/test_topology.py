"""Sites, subnets and servers through the shell: *-ADReplicationSite,
*-ADReplicationSubnet, New-/Get-/Remove-ExchangeServer, Get-ClientAccessServer."""

from __future__ import annotations

import pytest

from casarray.directory import Directory, NotFoundError, ServerRole
from casarray.shell.objects import (
    SERVER_TYPE,
    SITE_TYPE,
    SUBNET_TYPE,
    admin_display_version,
    server_object,
    site_object,
)
from casarray.shell.views import view_for
from tests.shell.cmdlet_shell import CONFIRM_QUESTION, Shell, what_if


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- sites ---------------------------------------------------------------------------


def test_new_site(shell: Shell, directory: Directory) -> None:
    result = shell.ok('New-ADReplicationSite -Name "HK"')
    assert "HK" in result.out
    assert [s.name for s in directory.sites.get()] == ["HK"]


def test_new_site_what_if_changes_nothing(shell: Shell, directory: Directory) -> None:
    result = shell.ok("New-ADReplicationSite HK -WhatIf")
    assert result.out.strip() == what_if("New-ADReplicationSite", "HK")
    assert directory.sites.get() == []


def test_new_site_that_exists(shell: Shell, bj: Directory) -> None:
    result = shell.run("New-ADReplicationSite bj")
    error = result.error()
    assert error.category == "ResourceExists"
    assert "BJ" in error.message
    assert error.command == "New-ADReplicationSite"
    assert [s.name for s in bj.sites.get()] == ["BJ", "SH"]


def test_new_site_needs_a_name(shell: Shell, directory: Directory) -> None:
    result = shell.run("New-ADReplicationSite")
    assert "Name" in result.error().message
    assert directory.sites.get() == []


def test_get_site(shell: Shell, bj: Directory) -> None:
    assert lines(shell.ok("(Get-ADReplicationSite).Name").out) == ["BJ", "SH"]
    assert lines(shell.ok("(Get-ADReplicationSite -Filter *).Name").out) == ["BJ", "SH"]
    assert lines(shell.ok("(Get-ADReplicationSite sh).Subnets").out) == ["127.77.2.0/24"]
    guid = bj.sites.one("BJ").guid
    assert lines(shell.ok(f"(Get-ADReplicationSite {guid}).Name").out) == ["BJ"]


def test_get_site_errors(shell: Shell, bj: Directory) -> None:
    error = shell.run("Get-ADReplicationSite NOPE").error()
    assert error.category == "ObjectNotFound"
    assert '"NOPE"' in error.message
    error = shell.run("Get-ADReplicationSite -Filter \"Name -eq 'BJ'\"").error()
    assert "'Filter'" in error.message


def test_site_object_and_view(bj: Directory) -> None:
    site = bj.sites.one("BJ")
    obj = site_object(site)
    assert obj.type_name == SITE_TYPE
    assert str(obj) == "BJ"
    assert obj.base is site
    assert obj.get("Subnets") == ["127.77.1.0/24"]
    assert obj.get("DistinguishedName") == site.distinguished_name
    view = view_for(SITE_TYPE)
    assert view is not None and view.table[0] == "Name"


def test_remove_site_asks_first(shell: Shell, directory: Directory) -> None:
    directory.sites.new("HK")
    result = shell.ok("Remove-ADReplicationSite HK", stdin="n\n")
    assert result.prompts == 1
    assert 'Performing the operation "Remove-ADReplicationSite" on target "HK"' in result.out
    assert [s.name for s in directory.sites.get()] == ["HK"]
    result = shell.ok("Remove-ADReplicationSite HK", stdin="y\n")
    assert result.prompts == 1
    assert directory.sites.get() == []


def test_remove_site_without_asking_and_what_if(shell: Shell, directory: Directory) -> None:
    directory.sites.new("HK")
    result = shell.ok("Remove-ADReplicationSite HK -WhatIf")
    assert result.out.strip() == what_if("Remove-ADReplicationSite", "HK")
    assert len(directory.sites.get()) == 1
    result = shell.ok("Remove-ADReplicationSite HK -Confirm:$false")
    assert result.prompts == 0
    assert directory.sites.get() == []


def test_remove_site_in_use(shell: Shell, bj: Directory) -> None:
    error = shell.run("Remove-ADReplicationSite BJ -Confirm:$false").error()
    assert error.category == "InvalidOperation"
    assert "CAS01" in error.message and "MBX01" in error.message
    assert [s.name for s in bj.sites.get()] == ["BJ", "SH"]


def test_remove_sites_from_the_pipeline_yes_to_all(shell: Shell, directory: Directory) -> None:
    for name in ("HK", "SZ", "GZ"):
        directory.sites.new(name)
    result = shell.ok("Get-ADReplicationSite | Remove-ADReplicationSite", stdin="a\n")
    assert result.prompts == 1
    assert directory.sites.get() == []


def test_remove_sites_no_to_all(shell: Shell, directory: Directory) -> None:
    for name in ("HK", "SZ"):
        directory.sites.new(name)
    result = shell.ok("Get-ADReplicationSite | Remove-ADReplicationSite", stdin="l\n")
    assert result.prompts == 1
    assert len(directory.sites.get()) == 2


# -- subnets -------------------------------------------------------------------------


def test_new_subnet(shell: Shell, bj: Directory) -> None:
    result = shell.ok('New-ADReplicationSubnet -Name "10.9.0.0/16" -Site BJ')
    assert "10.9.0.0/16" in result.out
    assert bj.sites.one("BJ").subnets == ("127.77.1.0/24", "10.9.0.0/16")


def test_new_subnet_what_if(shell: Shell, bj: Directory) -> None:
    result = shell.ok("New-ADReplicationSubnet 10.9.0.0/16 -Site BJ -WhatIf")
    assert result.out.strip() == what_if("New-ADReplicationSubnet", "10.9.0.0/16")
    assert bj.sites.one("BJ").subnets == ("127.77.1.0/24",)


@pytest.mark.parametrize(
    ("command", "category", "named"),
    [
        ("New-ADReplicationSubnet 10.9.1.2/16 -Site BJ", "InvalidArgument", "10.9.0.0/16"),
        ("New-ADReplicationSubnet 127.77.2.0/24 -Site BJ", "ResourceExists", "SH"),
        ("New-ADReplicationSubnet 10.9.0.0/16 -Site HK", "ObjectNotFound", "HK"),
        ("New-ADReplicationSubnet 10.9.0.0/16", "InvalidArgument", "Site"),
    ],
)
def test_new_subnet_errors(
    shell: Shell, bj: Directory, command: str, category: str, named: str
) -> None:
    error = shell.run(command).error()
    assert error.category == category
    assert named in error.message
    assert [s.name for s in bj.sites.subnets()] == ["127.77.1.0/24", "127.77.2.0/24"]


def test_get_subnet(shell: Shell, bj: Directory) -> None:
    assert lines(shell.ok("(Get-ADReplicationSubnet).Name").out) == [
        "127.77.1.0/24",
        "127.77.2.0/24",
    ]
    assert lines(shell.ok("(Get-ADReplicationSubnet -Filter *).Site").out) == ["BJ", "SH"]
    assert lines(shell.ok("(Get-ADReplicationSubnet -Site sh).Name").out) == ["127.77.2.0/24"]
    assert lines(shell.ok("(Get-ADReplicationSubnet 127.77.2.0/24).Site").out) == ["SH"]
    assert shell.ok("Get-ADReplicationSubnet 127.77.2.0/24 -Site BJ").out.strip() == ""
    error = shell.run("Get-ADReplicationSubnet 10.0.0.0/8").error()
    assert error.category == "ObjectNotFound"
    assert "10.0.0.0/8" in error.message
    assert view_for(SUBNET_TYPE) is not None
    assert view_for(SUBNET_TYPE).table == ("Name", "Site")  # type: ignore[union-attr]


def test_remove_subnet(shell: Shell, bj: Directory) -> None:
    shell.ok("Remove-ADReplicationSubnet 127.77.2.0/24", stdin="n\n")
    assert bj.sites.one("SH").subnets == ("127.77.2.0/24",)
    result = shell.ok("Remove-ADReplicationSubnet 127.77.2.0/24 -WhatIf")
    assert result.out.strip() == what_if("Remove-ADReplicationSubnet", "127.77.2.0/24")
    shell.ok("Get-ADReplicationSubnet -Site SH | Remove-ADReplicationSubnet -Confirm:$false")
    assert bj.sites.one("SH").subnets == ()
    assert [s.name for s in bj.servers.get(site="SH")] == ["CAS03", "MBX02"]


# -- servers -------------------------------------------------------------------------


def test_new_exchange_server_site_from_address(shell: Shell, bj: Directory) -> None:
    result = shell.ok("New-ExchangeServer -Name CAS04 -Roles ClientAccess -IPAddress 127.77.1.13")
    assert "CAS04" in result.out
    server = bj.servers.one("CAS04")
    assert (server.site, server.fqdn, server.roles) == (
        "BJ",
        "CAS04.lab.net",
        ServerRole.ClientAccess,
    )


def test_new_exchange_server_roles_site_and_fqdn(shell: Shell, bj: Directory) -> None:
    shell.ok(
        "New-ExchangeServer EX01 -Roles ClientAccess,mailbox,HubTransport -IPAddress 10.0.0.5 "
        "-Site sh -Fqdn ex01.corp.lab.net"
    )
    server = bj.servers.one("ex01.corp.lab.net")
    assert server.site == "SH"
    assert server.roles == ServerRole.ClientAccess | ServerRole.Mailbox | ServerRole.HubTransport


def test_new_exchange_server_what_if(shell: Shell, bj: Directory) -> None:
    result = shell.ok("New-ExchangeServer CAS04 -Roles ClientAccess -IPAddress 127.77.1.13 -wi")
    assert result.out.strip() == what_if("New-ExchangeServer", "CAS04")
    assert len(bj.servers.get()) == 5


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("New-ExchangeServer CAS04 -Roles Edge -IPAddress 127.77.1.13", "Roles"),
        ("New-ExchangeServer CAS04 -Roles ClientAccess -IPAddress 10.1.1.1", "Site"),
        ("New-ExchangeServer CAS04 -Roles ClientAccess -IPAddress 999.1.1.1", "IPAddress"),
        ("New-ExchangeServer CAS04 -Roles ClientAccess -IPAddress 127.77.1.11", "CAS01"),
        ("New-ExchangeServer CAS01 -Roles ClientAccess -IPAddress 127.77.1.19", "CAS01"),
        ("New-ExchangeServer CAS04 -Roles ClientAccess -IPAddress 127.77.1.13 -Site SH", "BJ"),
        ("New-ExchangeServer CAS04 -IPAddress 127.77.1.13", "Roles"),
        ("New-ExchangeServer CAS_04 -Roles ClientAccess -IPAddress 127.77.1.13", "Name"),
    ],
)
def test_new_exchange_server_errors(shell: Shell, bj: Directory, command: str, named: str) -> None:
    error = shell.run(command).error()
    assert named in error.message
    assert len(bj.servers.get()) == 5


def test_get_exchange_server(shell: Shell, bj: Directory) -> None:
    names = lines(shell.ok("(Get-ExchangeServer).Name").out)
    assert names == ["CAS01", "CAS02", "MBX01", "CAS03", "MBX02"]
    assert lines(shell.ok("(Get-ExchangeServer cas01.LAB.net).ServerRole").out) == ["ClientAccess"]
    out = shell.ok("(Get-ExchangeServer MBX02).AdminDisplayVersion").out
    assert out.strip() == "Version 14.3 (Build 123.4)"
    assert lines(shell.ok("(Get-ExchangeServer MBX02).Site").out) == ["SH"]
    error = shell.run("Get-ExchangeServer CAS09").error()
    assert error.category == "ObjectNotFound" and "CAS09" in error.message


def test_server_object_and_view(bj: Directory) -> None:
    obj = server_object(bj.servers.one("CAS01"))
    assert obj.type_name == SERVER_TYPE
    assert str(obj) == "CAS01"
    assert obj.get("IsClientAccessServer") is True
    assert obj.get("IsMailboxServer") is False
    assert obj.get("Fqdn") == "CAS01.lab.net"
    assert obj.get("IPAddress") == "127.77.1.11"
    assert view_for(SERVER_TYPE).table == (  # type: ignore[union-attr]
        "Name",
        "Site",
        "ServerRole",
        "Edition",
        "AdminDisplayVersion",
    )
    assert admin_display_version("14.3.123.4") == "Version 14.3 (Build 123.4)"


def test_get_client_access_server(shell: Shell, bj: Directory) -> None:
    assert lines(shell.ok("(Get-ClientAccessServer).Name").out) == ["CAS01", "CAS02", "CAS03"]
    assert shell.ok("(Get-ClientAccessServer CAS01).ClientAccessArray").out.strip() == ""
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    out = shell.ok("(Get-ClientAccessServer).ClientAccessArray").out
    assert lines(out) == ["BJ CAS Array", "BJ CAS Array"]
    out = shell.ok("(Get-ExchangeServer CAS02 | Get-ClientAccessServer).Fqdn").out
    assert lines(out) == ["CAS02.lab.net"]


def test_get_client_access_server_of_a_mailbox_server(shell: Shell, bj: Directory) -> None:
    error = shell.run("Get-ClientAccessServer MBX01").error()
    assert "MBX01" in error.message
    assert "Client Access" in error.message


def test_remove_exchange_server(shell: Shell, bj: Directory) -> None:
    result = shell.ok("Remove-ExchangeServer CAS02", stdin="n\n")
    assert result.prompts == 1
    assert len(bj.servers.get()) == 5
    result = shell.ok("Remove-ExchangeServer CAS02 -WhatIf")
    assert result.out.strip() == what_if("Remove-ExchangeServer", "CAS02")
    result = shell.ok("Get-ExchangeServer CAS02 | Remove-ExchangeServer", stdin="y\n")
    assert result.prompts == 1
    with pytest.raises(NotFoundError):
        bj.servers.one("CAS02")


def test_remove_exchange_server_in_use(shell: Shell, bj: Directory) -> None:
    bj.databases.new("DB01", "MBX01")  # RpcClientAccessServer: CAS01.lab.net
    error = shell.run("Remove-ExchangeServer MBX01 -Confirm:$false").error()
    assert error.category == "InvalidOperation" and "DB01" in error.message
    error = shell.run("Remove-ExchangeServer CAS01 -Confirm:$false").error()
    assert "DB01" in error.message and "-Force" in error.message
    assert len(bj.servers.get()) == 5
    result = shell.ok("Remove-ExchangeServer CAS01 -Force -Confirm:$false")
    assert len(result.warnings) == 1
    assert "DB01" in result.warnings[0] and "CAS01.lab.net" in result.warnings[0]
    assert "Set-MailboxDatabase -RpcClientAccessServer" in result.warnings[0]
    assert [s.name for s in bj.servers.get()] == ["CAS02", "MBX01", "CAS03", "MBX02"]


# -- the language around them ----------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "get-exchangeserver -identity cas01",
        "GET-EXCHANGESERVER -IDENT CAS01",
        "Get-ExchangeServer –Identity CAS01",
        "Get-ExchangeServer —Id CAS01",
        "Get-ExchangeServer -Identity:CAS01",
    ],
)
def test_case_prefixes_and_dashes(shell: Shell, bj: Directory, command: str) -> None:
    assert lines(shell.ok(f"({command}).Fqdn").out) == ["CAS01.lab.net"]


def test_confirm_prompt_text(shell: Shell, directory: Directory) -> None:
    directory.sites.new("HK")
    result = shell.ok("Remove-ADReplicationSite -Identity HK -Confirm", stdin="y\n")
    assert CONFIRM_QUESTION in result.out
    assert "[Y] Yes [A] Yes to All [N] No [L] No to All" in result.out
    assert directory.sites.get() == []
