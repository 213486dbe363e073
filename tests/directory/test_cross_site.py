"""AllowCrossSiteRpcClientAccess (a Client Access server setting, schema revision 0002)
and a Client Access server's side of the referral rule (`servers.rpc_access_policy`).
The rule itself, whose users a server serves and whom it refers to their preferred
endpoint, cross-site access included, is tested with the endpoints (test_endpoints)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from casarray.directory import Directory, InvalidOperationError, NotFoundError, migrate
from casarray.directory.store import Store
from tests.shell.cmdlet_shell import Shell


def test_off_by_default(bj: Directory) -> None:
    assert [s.allow_cross_site_rpc_client_access for s in bj.servers.get()] == [False] * 5


def test_set_and_read_back(bj: Directory, second_directory: Directory) -> None:
    before = bj.topology_version()
    record = bj.servers.set_client_access("cas01.lab.net", allow_cross_site_rpc_client_access=True)
    assert record.name == "CAS01" and record.allow_cross_site_rpc_client_access
    assert bj.topology_version() > before  # running servers learn of it
    # another process sees it
    assert second_directory.servers.one("CAS01").allow_cross_site_rpc_client_access
    assert not second_directory.servers.one("CAS02").allow_cross_site_rpc_client_access
    assert second_directory.servers.rpc_access_policy("CAS01").allow_cross_site
    bj.servers.set_client_access("CAS01", allow_cross_site_rpc_client_access=False)
    assert not bj.servers.one("CAS01").allow_cross_site_rpc_client_access


def test_only_client_access_servers(bj: Directory) -> None:
    with pytest.raises(InvalidOperationError, match="isn't a Client Access server"):
        bj.servers.set_client_access("MBX01", allow_cross_site_rpc_client_access=True)
    with pytest.raises(InvalidOperationError):
        bj.servers.rpc_access_policy("MBX02")
    with pytest.raises(NotFoundError):
        bj.servers.set_client_access("CAS09", allow_cross_site_rpc_client_access=True)


def test_policy_without_arrays(bj: Directory) -> None:
    policy = bj.servers.rpc_access_policy("CAS01")
    assert (policy.server, policy.server_fqdn, policy.site) == ("CAS01", "CAS01.lab.net", "BJ")
    assert policy.array_fqdn is None
    assert not policy.allow_cross_site


def test_policy_with_arrays(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    bj.arrays.new("sh-cas.lab.net", "SH")
    cas02 = bj.servers.rpc_access_policy("cas02.lab.net")
    assert (cas02.server, cas02.site, cas02.array_fqdn) == ("CAS02", "BJ", "bj-cas.lab.net")
    cas03 = bj.servers.rpc_access_policy("CAS03")
    assert (cas03.site, cas03.array_fqdn) == ("SH", "sh-cas.lab.net")


# -- the migration -------------------------------------------------------------------


def test_upgrade_from_0001_keeps_servers_off(empty_directory_url: str) -> None:
    store = Store(empty_directory_url)
    try:
        migrate.upgrade(store, "0001")
        assert migrate.current_revision(store) == "0001"
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO site (id, guid, name, name_key, when_created) "
                    "VALUES (1, 'g-site', 'BJ', 'bj', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO server (id, guid, name, name_key, fqdn, fqdn_key, ip_address,"
                    " site_id, client_access, mailbox, hub_transport, install_order, version,"
                    " when_created) VALUES (1, 'g-server', 'CAS01', 'cas01', 'CAS01.lab.net',"
                    " 'cas01.lab.net', '127.77.1.11', 1, true, false, false, 1, '14.3.123.4',"
                    " CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(store)
        assert migrate.current_revision(store) == migrate.HEAD
        with store.engine.connect() as conn:
            value = conn.execute(
                text("SELECT allow_cross_site_rpc_client_access FROM server")
            ).scalar_one()
        assert not value
        migrate.upgrade(store)  # harmless at head
    finally:
        store.dispose()


def test_downgrade_to_0001(empty_directory_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = Store(empty_directory_url)
    try:
        migrate.upgrade(store)
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0001")
        assert migrate.current_revision(store) == "0001"
        migrate.upgrade(store)
        assert migrate.current_revision(store) == migrate.HEAD
    finally:
        store.dispose()


# -- the cmdlets -----------------------------------------------------------------------


@pytest.fixture
def shell(directory_url: str, bj: Directory) -> Iterator[Shell]:
    sh = Shell(directory_url)
    yield sh
    sh.close()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_set_client_access_server_cmdlet(shell: Shell, bj: Directory) -> None:
    out = shell.ok("(Get-ClientAccessServer CAS01).AllowCrossSiteRpcClientAccess").out
    assert out.strip() == "False"
    shell.ok("Set-ClientAccessServer -Identity CAS01 -AllowCrossSiteRpcClientAccess $true")
    assert bj.servers.one("CAS01").allow_cross_site_rpc_client_access
    out = shell.ok("Get-ClientAccessServer | ft Name,AllowCrossSiteRpcClientAccess -AutoSize").out
    assert [line.split() for line in out.strip().splitlines()[2:]] == [
        ["CAS01", "True"],
        ["CAS02", "False"],
        ["CAS03", "False"],
    ]
    # en dash, abbreviated parameter, pipeline
    shell.ok("Get-ClientAccessServer | Set-ClientAccessServer \u2013AllowCross $true")
    assert all(
        s.allow_cross_site_rpc_client_access for s in bj.servers.get() if s.name[:3] == "CAS"
    )
    shell.ok("Set-ClientAccessServer CAS02 -AllowCrossSiteRpcClientAccess:$false")
    assert not bj.servers.one("CAS02").allow_cross_site_rpc_client_access
    result = shell.ok("Set-ClientAccessServer CAS02 -AllowCrossSiteRpcClientAccess $true -WhatIf")
    assert "CAS02" in result.out
    assert not bj.servers.one("CAS02").allow_cross_site_rpc_client_access


@pytest.mark.parametrize("backend", ["sqlite"])
def test_set_client_access_server_refuses_other_roles(shell: Shell, bj: Directory) -> None:
    error = shell.run("Set-ClientAccessServer MBX01 -AllowCrossSiteRpcClientAccess $true").error()
    assert error.category == "InvalidOperation"
    assert "MBX01" in error.message and "Client Access" in error.message
    error = shell.run("Set-ClientAccessServer CAS09 -AllowCrossSiteRpcClientAccess $true").error()
    assert error.category == "ObjectNotFound"
