"""Server component states (Set-/Get-ServerComponentState) and the session secret, on
SQLite and PostgreSQL: any requester's Inactive wins, ServerWideOffline takes the
whole server out, names are accepted in any case, and revision 0003 migrates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from casarray.directory import (
    Directory,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
    migrate,
)
from casarray.directory.components import (
    ACTIVE,
    CLIENT_ACCESS_COMPONENTS,
    COMPONENTS,
    INACTIVE,
    REQUESTERS,
    SERVER_WIDE_OFFLINE,
    ComponentState,
    component_name,
)
from casarray.directory.store import Store


def states(d: Directory, server: str) -> dict[str, str]:
    return {r.component: r.state for r in d.components.get(server)}


# -- reading ---------------------------------------------------------------------------


def test_everything_active_at_first(bj: Directory) -> None:
    assert states(bj, "CAS01") == {
        "ServerWideOffline": ACTIVE,
        "Autodiscover": ACTIVE,
        "Imap": ACTIVE,
        "Owa": ACTIVE,
        "Api": ACTIVE,
    }
    # a server without the Client Access role shows only ServerWideOffline
    assert states(bj, "MBX01") == {"ServerWideOffline": ACTIVE}
    records = bj.components.get()
    assert [(r.server, r.component) for r in records][:6] == [
        ("CAS01", "ServerWideOffline"),
        ("CAS01", "Autodiscover"),
        ("CAS01", "Imap"),
        ("CAS01", "Owa"),
        ("CAS01", "Api"),
        ("CAS02", "ServerWideOffline"),
    ]
    assert len(records) == 3 * 5 + 2  # three CAS, two mailbox servers
    first = records[0]
    assert first.server_fqdn == "CAS01.lab.net"
    assert first.entries == () and first.when is None
    assert all(bj.components.is_active("CAS02", c) for c in CLIENT_ACCESS_COMPONENTS)


def test_get_one_component(bj: Directory) -> None:
    owa = bj.components.get(component="owa")
    assert [(r.server, r.component) for r in owa] == [
        ("CAS01", "Owa"),
        ("CAS02", "Owa"),
        ("CAS03", "Owa"),
    ]
    offline = bj.components.get(component="SERVERWIDEOFFLINE")
    assert [r.server for r in offline] == ["CAS01", "CAS02", "MBX01", "CAS03", "MBX02"]
    # asked of one server, any component answers (Active unless the server is offline)
    (record,) = bj.components.get("MBX01", "EwsProxy")
    assert (record.server, record.component, record.state) == ("MBX01", "EwsProxy", ACTIVE)
    (record,) = bj.components.get("cas01.LAB.net", "ImapProxy")
    assert (record.server, record.component) == ("CAS01", "Imap")


# -- the rule ------------------------------------------------------------------------


def test_any_requester_inactive_makes_it_inactive(bj: Directory) -> None:
    record = bj.components.set_state("CAS01", "Owa", "Inactive", "Maintenance")
    assert isinstance(record, ComponentState)
    assert (record.server, record.component, record.state) == ("CAS01", "Owa", INACTIVE)
    assert not bj.components.is_active("CAS01", "Owa")
    bj.components.set_state("CAS01", "Owa", "Inactive", "HealthApi")
    # Maintenance is done, but HealthApi still says Inactive
    record = bj.components.set_state("CAS01", "Owa", "Active", "Maintenance")
    assert record.state == INACTIVE
    assert [(e.requester, e.state) for e in record.entries] == [
        ("HealthApi", INACTIVE),
        ("Maintenance", ACTIVE),
    ]
    # every requester that set it Inactive set it Active: it is back
    record = bj.components.set_state("CAS01", "Owa", "Active", "HealthApi")
    assert record.state == ACTIVE
    assert bj.components.is_active("CAS01", "Owa")
    assert [(e.requester, e.state) for e in record.entries] == [
        ("HealthApi", ACTIVE),
        ("Maintenance", ACTIVE),
    ]
    # nothing else changed
    assert states(bj, "CAS01") == dict.fromkeys(
        ["ServerWideOffline", "Autodiscover", "Imap", "Owa", "Api"], ACTIVE
    )
    assert states(bj, "CAS02")["Owa"] == ACTIVE


def test_each_requester_has_one_entry_with_its_time(bj: Directory) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    bj.components.set_state("CAS02", "Imap", "Inactive", "Functional")
    first = bj.components.get("CAS02", "Imap")[0]
    record = bj.components.set_state("CAS02", "Imap", "Inactive", "Functional")
    assert [e.requester for e in record.entries] == ["Functional"]
    assert record.when is not None and first.when is not None
    assert before < first.when <= record.when <= datetime.now(UTC) + timedelta(seconds=5)
    assert record.entries[0].when == record.when
    for requester in REQUESTERS:
        bj.components.set_state("CAS02", "Imap", "Inactive", requester)
    record = bj.components.get("CAS02", "Imap")[0]
    assert [e.requester for e in record.entries] == list(REQUESTERS)
    for requester in REQUESTERS[:-1]:
        assert bj.components.set_state("CAS02", "Imap", "Active", requester).state == INACTIVE
    assert bj.components.set_state("CAS02", "Imap", "Active", REQUESTERS[-1]).state == ACTIVE


def test_server_wide_offline_takes_every_component(bj: Directory) -> None:
    bj.components.set_state("CAS01", "ServerWideOffline", "Inactive", "Maintenance")
    assert states(bj, "CAS01") == dict.fromkeys(
        ["ServerWideOffline", "Autodiscover", "Imap", "Owa", "Api"], INACTIVE
    )
    for component in CLIENT_ACCESS_COMPONENTS:
        assert not bj.components.is_active("CAS01", component)
    # the components' own entries are untouched: each still has none
    owa = bj.components.get("CAS01", "Owa")[0]
    assert owa.entries == () and owa.own_state == ACTIVE and owa.state == INACTIVE
    # Monitoring and RecoveryActionsEnabled stay up (Exchange keeps the server watched)
    assert bj.components.is_active("CAS01", "Monitoring")
    assert bj.components.is_active("CAS01", "RecoveryActionsEnabled")
    assert not bj.components.is_active("CAS01", "EwsProxy")
    # other servers are not affected
    assert set(states(bj, "CAS02").values()) == {ACTIVE}
    # back in service; a component set Inactive on its own stays so
    bj.components.set_state("CAS01", "Imap", "Inactive", "Sidelined")
    bj.components.set_state("CAS01", "ServerWideOffline", "Active", "Maintenance")
    assert states(bj, "CAS01") == {
        "ServerWideOffline": ACTIVE,
        "Autodiscover": ACTIVE,
        "Imap": INACTIVE,
        "Owa": ACTIVE,
        "Api": ACTIVE,
    }


def test_server_wide_offline_needs_every_requester_too(bj: Directory) -> None:
    bj.components.set_state("CAS03", "ServerWideOffline", "Inactive", "Maintenance")
    bj.components.set_state("CAS03", "ServerWideOffline", "Inactive", "Deployment")
    bj.components.set_state("CAS03", "ServerWideOffline", "Active", "Maintenance")
    assert not bj.components.is_active("CAS03", "Owa")
    bj.components.set_state("CAS03", "ServerWideOffline", "Active", "Deployment")
    assert bj.components.is_active("CAS03", "Owa")


# -- names ---------------------------------------------------------------------------


def test_names_in_any_case_are_stored_canonical(bj: Directory) -> None:
    record = bj.components.set_state("cas01.lab.net", "OWAPROXY", "inactive", "healthapi")
    assert (record.component, record.state) == ("Owa", INACTIVE)
    assert [(e.requester, e.state) for e in record.entries] == [("HealthApi", INACTIVE)]
    record = bj.components.set_state("CAS01", "serverwideOFFLINE", "ACTIVE", "MAINTENANCE")
    assert (record.component, record.state) == ("ServerWideOffline", ACTIVE)
    assert record.entries[0].requester == "Maintenance"
    assert component_name("autodiscoverproxy") == "Autodiscover"
    assert component_name(" umcallrouter ") == "UMCallRouter"
    for name in COMPONENTS:
        assert component_name(name.upper()) == name


def test_exchange_components_are_kept_and_shown(bj: Directory) -> None:
    """Exchange 2013's other components may be set on any server (scripts that set
    them all still run); a server then shows them."""
    bj.components.set_state("MBX01", "HubTransport", "Inactive", "Maintenance")
    assert states(bj, "MBX01") == {"ServerWideOffline": ACTIVE, "HubTransport": INACTIVE}
    bj.components.set_state("CAS01", "EwsProxy", "Inactive", "Maintenance")
    assert list(states(bj, "CAS01")) == [
        "ServerWideOffline",
        "Autodiscover",
        "EwsProxy",
        "Imap",
        "Owa",
        "Api",
    ]
    assert bj.components.is_active("CAS01", "Owa")


# -- errors --------------------------------------------------------------------------


def test_unknown_component_lists_the_valid_ones(bj: Directory) -> None:
    version = bj.topology_version()
    with pytest.raises(InvalidValueError) as err:
        bj.components.set_state("CAS01", "Pop3", "Inactive", "Maintenance")
    assert err.value.parameter == "Component"
    message = str(err.value)
    assert "'Pop3' is not a server component" in message
    for name in ("ServerWideOffline", "Autodiscover", "Imap", "Owa", "Api", "OwaProxy"):
        assert name in message
    with pytest.raises(InvalidValueError):
        bj.components.get(component="Nope")
    assert bj.topology_version() == version


@pytest.mark.parametrize(
    ("state", "requester", "parameter"),
    [("Draining", "Maintenance", "State"), ("Inactive", "Admin", "Requester")],
)
def test_bad_state_or_requester(bj: Directory, state: str, requester: str, parameter: str) -> None:
    with pytest.raises(InvalidValueError) as err:
        bj.components.set_state("CAS01", "Owa", state, requester)
    assert err.value.parameter == parameter
    assert "Valid" in str(err.value)
    assert bj.components.is_active("CAS01", "Owa")


def test_client_access_component_on_another_server(bj: Directory) -> None:
    with pytest.raises(InvalidOperationError) as err:
        bj.components.set_state("MBX01", "Imap", "Inactive", "Maintenance")
    assert "isn't a Client Access server" in str(err.value)
    assert "ServerWideOffline" in str(err.value)
    # ServerWideOffline works on any server
    bj.components.set_state("MBX01", "ServerWideOffline", "Inactive", "Maintenance")
    assert states(bj, "MBX01") == {"ServerWideOffline": INACTIVE}


def test_unknown_server(bj: Directory) -> None:
    with pytest.raises(NotFoundError):
        bj.components.set_state("CAS09", "Owa", "Inactive", "Maintenance")
    with pytest.raises(NotFoundError):
        bj.components.get("CAS09")


# -- changes are seen ----------------------------------------------------------------


def test_a_change_bumps_the_topology_version(bj: Directory, second_directory: Directory) -> None:
    version = bj.topology_version()
    bj.components.set_state("CAS01", "Owa", "Inactive", "Maintenance")
    assert second_directory.topology_version() > version
    assert not second_directory.components.is_active("CAS01", "Owa")


def test_removing_a_server_removes_its_states(bj: Directory) -> None:
    bj.components.set_state("CAS02", "Owa", "Inactive", "Maintenance")
    bj.components.set_state("CAS02", "ServerWideOffline", "Inactive", "Maintenance")
    bj.servers.remove("CAS02")
    with bj.store.read() as session:
        count = session.execute(text("SELECT count(*) FROM server_component_state")).scalar_one()
    assert count == 0
    assert [r.server for r in bj.components.get(component="Owa")] == ["CAS01", "CAS03"]


# -- the session secret ----------------------------------------------------------------


def test_session_secret(directory: Directory, second_directory: Directory) -> None:
    secret = directory.session_secret()
    assert isinstance(secret, bytes) and len(secret) == 32
    assert directory.session_secret() == secret
    assert second_directory.session_secret() == secret  # every array member's


def test_each_organization_has_its_own_secret(empty_directory_url: str, tmp_path: Path) -> None:
    with Directory.open(empty_directory_url) as d:
        first = d.session_secret()
        version = d.topology_version()
    with Directory.open(empty_directory_url) as d:
        assert d.session_secret() == first
        assert d.topology_version() == version  # reading it changes nothing
    with Directory.open(f"sqlite:///{tmp_path / 'other.db'}") as other:
        assert other.session_secret() != first


# -- the migration -------------------------------------------------------------------


def test_upgrade_from_0002(empty_directory_url: str) -> None:
    """An organization made before revision 0003 gets a secret of its own."""
    store = Store(empty_directory_url)
    try:
        migrate.upgrade(store, "0002")
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO organization (id, guid, name, ad_domain, when_created) "
                    "VALUES (1, 'g-org', 'Lab', 'lab.net', CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(store)
        assert migrate.current_revision(store) == migrate.HEAD
        with store.engine.connect() as conn:
            secret = conn.execute(text("SELECT session_secret FROM organization")).scalar_one()
            rows = conn.execute(text("SELECT count(*) FROM server_component_state")).scalar_one()
        assert len(bytes(secret)) == 32 and rows == 0
    finally:
        store.dispose()
    with Directory.open(empty_directory_url) as d:
        assert d.session_secret() == bytes(secret)
        assert d.organization().name == "Lab"


def test_downgrade_to_0002(empty_directory_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    store = Store(empty_directory_url)
    try:
        migrate.upgrade(store)
        config = Config()
        config.set_main_option("script_location", str(migrate.MIGRATIONS))
        with store.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0002")
        assert migrate.current_revision(store) == "0002"
        with store.engine.connect() as conn:
            columns = [c["name"] for c in conn.dialect.get_columns(conn, "organization")]
            assert "session_secret" not in columns
            assert not conn.dialect.has_table(conn, "server_component_state")
        migrate.upgrade(store)
        assert migrate.current_revision(store) == migrate.HEAD
    finally:
        store.dispose()


def test_server_wide_offline_constant() -> None:
    assert COMPONENTS[0] == SERVER_WIDE_OFFLINE
    assert set(CLIENT_ACCESS_COMPONENTS) <= set(COMPONENTS)
