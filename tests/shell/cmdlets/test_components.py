"""Set-ServerComponentState and Get-ServerComponentState through the shell: the
maintenance-mode commands of Exchange 2013, their output, -WhatIf/-Confirm, errors."""

from __future__ import annotations

import pytest

from casarray.directory import Directory
from casarray.shell.cmdlets.components import COMPONENT_STATE_TYPE, component_state_object
from casarray.shell.views import view_for
from tests.shell.cmdlet_shell import Shell, what_if

SET_OFFLINE = (
    "Set-ServerComponentState -Identity CAS01 -Component ServerWideOffline -State Inactive "
    "-Requester Maintenance"
)


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def table(text: str) -> list[list[str]]:
    """The rows of a table's output (after the header and its underline), split."""
    return [line.split() for line in lines(text)[2:]]


# -- Set-ServerComponentState -------------------------------------------------------


def test_maintenance_mode(shell: Shell, bj: Directory) -> None:
    result = shell.ok(SET_OFFLINE)
    assert result.out.strip() == ""  # Set- cmdlets write nothing, as in Exchange
    assert not bj.components.is_active("CAS01", "Owa")
    assert bj.components.is_active("CAS02", "Owa")
    assert table(shell.ok("Get-ServerComponentState CAS01").out) == [
        ["CAS01.lab.net", "ServerWideOffline", "Inactive"],
        ["CAS01.lab.net", "Autodiscover", "Inactive"],
        ["CAS01.lab.net", "Imap", "Inactive"],
        ["CAS01.lab.net", "Owa", "Inactive"],
        ["CAS01.lab.net", "Api", "Inactive"],
    ]
    shell.ok(SET_OFFLINE.replace("Inactive", "Active"))
    assert bj.components.is_active("CAS01", "Owa")


def test_set_in_any_case_with_exchange_names(shell: Shell, bj: Directory) -> None:
    shell.ok("set-servercomponentstate cas01.lab.net -comp owaproxy -st inactive -req healthapi")
    (record,) = bj.components.get("CAS01", "Owa")
    assert record.state == "Inactive"
    assert [(e.requester, e.state) for e in record.entries] == [("HealthApi", "Inactive")]


def test_any_requester_keeps_it_inactive(shell: Shell, bj: Directory) -> None:
    shell.ok(
        "Set-ServerComponentState CAS02 -Component Imap -State Inactive -Requester Maintenance"
    )
    shell.ok("Set-ServerComponentState CAS02 -Component Imap -State Inactive -Requester Functional")
    shell.ok("Set-ServerComponentState CAS02 -Component Imap -State Active -Requester Maintenance")
    assert lines(shell.ok("(Get-ServerComponentState CAS02 -Component Imap).State").out) == [
        "Inactive"
    ]
    shell.ok("Set-ServerComponentState CAS02 -Component Imap -State Active -Requester Functional")
    assert bj.components.is_active("CAS02", "Imap")


def test_set_what_if_changes_nothing(shell: Shell, bj: Directory) -> None:
    version = bj.topology_version()
    result = shell.ok(SET_OFFLINE + " -WhatIf")
    target = "CAS01 (ServerWideOffline: Inactive, requester Maintenance)"
    assert result.out.strip() == what_if("Set-ServerComponentState", target)
    assert bj.components.is_active("CAS01", "Owa")
    assert bj.topology_version() == version


def test_set_confirm(shell: Shell, bj: Directory) -> None:
    result = shell.ok(SET_OFFLINE + " -Confirm", stdin="n\n")
    assert result.prompts == 1
    assert bj.components.is_active("CAS01", "Owa")
    result = shell.ok(SET_OFFLINE + " -Confirm", stdin="y\n")
    assert result.prompts == 1
    assert not bj.components.is_active("CAS01", "Owa")


def test_set_from_the_pipeline(shell: Shell, bj: Directory) -> None:
    shell.ok(
        "Get-ClientAccessServer | Where-Object {$_.Site -eq 'BJ'} | "
        "Set-ServerComponentState -Component Owa -State Inactive -Requester Maintenance"
    )
    assert [r.server for r in bj.components.get(component="Owa") if not r.is_active] == [
        "CAS01",
        "CAS02",
    ]
    # Get-ServerComponentState's objects name their server too
    shell.ok(
        "Get-ServerComponentState -Component Owa | "
        "Set-ServerComponentState -Component Owa -State Active -Requester Maintenance"
    )
    assert all(r.is_active for r in bj.components.get(component="Owa"))


@pytest.mark.parametrize(
    ("command", "category", "needles"),
    [
        (
            "Set-ServerComponentState CAS01 -Component Pop3 -State Inactive -Requester Maintenance",
            "InvalidArgument",
            ["'Pop3' is not a server component", "ServerWideOffline", "Owa", "Imap", "Api"],
        ),
        (
            "Set-ServerComponentState CAS01 -Component Owa -State Draining -Requester Maintenance",
            "InvalidData",
            ["'State'", "Active,Inactive"],
        ),
        (
            "Set-ServerComponentState CAS01 -Component Owa -State Inactive -Requester Admin",
            "InvalidData",
            ["'Requester'", "HealthApi,Maintenance,Sidelined,Functional,Deployment"],
        ),
        (
            "Set-ServerComponentState MBX01 -Component Owa -State Inactive -Requester Maintenance",
            "InvalidOperation",
            ["MBX01", "isn't a Client Access server"],
        ),
        (
            "Set-ServerComponentState CAS09 -Component Owa -State Inactive -Requester Maintenance",
            "ObjectNotFound",
            ["CAS09"],
        ),
        (
            "Set-ServerComponentState CAS01 -Component Owa -State Inactive",
            "InvalidArgument",
            ["Requester"],
        ),
    ],
)
def test_set_errors(
    shell: Shell, bj: Directory, command: str, category: str, needles: list[str]
) -> None:
    version = bj.topology_version()
    error = shell.run(command).error()
    assert error.category == category, error.message
    for needle in needles:
        assert needle in error.message
    assert bj.topology_version() == version


def test_server_wide_offline_on_a_mailbox_server(shell: Shell, bj: Directory) -> None:
    shell.ok(
        "Set-ServerComponentState MBX01 -Component ServerWideOffline -State Inactive "
        "-Requester Deployment"
    )
    assert table(shell.ok("Get-ServerComponentState MBX01").out) == [
        ["MBX01.lab.net", "ServerWideOffline", "Inactive"]
    ]


# -- Get-ServerComponentState -------------------------------------------------------


def test_get_every_server(shell: Shell, bj: Directory) -> None:
    rows = table(shell.ok("Get-ServerComponentState").out)
    assert len(rows) == 17
    assert rows[0] == ["CAS01.lab.net", "ServerWideOffline", "Active"]
    assert ["MBX01.lab.net", "ServerWideOffline", "Active"] in rows
    assert {row[2] for row in rows} == {"Active"}
    header = lines(shell.ok("Get-ServerComponentState CAS01").out)[0].split()
    assert header == ["Server", "Component", "State"]


def test_get_one_component(shell: Shell, bj: Directory) -> None:
    shell.ok(SET_OFFLINE)
    assert table(shell.ok("Get-ServerComponentState -Component serverwideoffline").out) == [
        ["CAS01.lab.net", "ServerWideOffline", "Inactive"],
        ["CAS02.lab.net", "ServerWideOffline", "Active"],
        ["MBX01.lab.net", "ServerWideOffline", "Active"],
        ["CAS03.lab.net", "ServerWideOffline", "Active"],
        ["MBX02.lab.net", "ServerWideOffline", "Active"],
    ]


def test_format_list_shows_the_requesters(shell: Shell, bj: Directory) -> None:
    shell.ok("Set-ServerComponentState CAS01 -Component Owa -State Inactive -Requester Sidelined")
    out = shell.ok("Get-ServerComponentState CAS01 -Component Owa | Format-List").out
    fields = {
        name.strip(): value.strip()
        for name, _, value in (line.partition(":") for line in lines(out))
    }
    assert fields["Server"] == "CAS01.lab.net"
    assert fields["Component"] == "Owa"
    assert fields["State"] == "Inactive"
    assert fields["RemoteStates"].startswith("{Sidelined: Inactive at ")
    entries = shell.ok("(Get-ServerComponentState CAS01 -Component Owa).RemoteStates").out
    assert lines(entries)[0].split() == ["Requester", "State", "Timestamp"]
    assert lines(entries)[2].split()[:2] == ["Sidelined", "Inactive"]


def test_get_errors(shell: Shell, bj: Directory) -> None:
    error = shell.run("Get-ServerComponentState CAS09").error()
    assert error.category == "ObjectNotFound"
    error = shell.run("Get-ServerComponentState CAS01 -Component Nope").error()
    assert error.category == "InvalidArgument" and "Valid components" in error.message


def test_object_and_view(bj: Directory) -> None:
    bj.components.set_state("CAS01", "Imap", "Inactive", "Maintenance")
    (record,) = bj.components.get("CAS01", "Imap")
    obj = component_state_object(record)
    assert obj.type_name == COMPONENT_STATE_TYPE
    assert obj.base is record
    assert str(obj) == "CAS01.lab.net"
    assert obj.get("ServerName") == "CAS01"
    assert [str(e.get("Requester")) for e in obj.get("RemoteStates")] == ["Maintenance"]
    view = view_for(COMPONENT_STATE_TYPE)
    assert view is not None and view.table == ("Server", "Component", "State")


def test_help(shell: Shell) -> None:
    out = shell.ok("Get-Help Set-ServerComponentState -Full").out
    assert "ServerWideOffline" in out and "-WhatIf" in out
    out = shell.ok("Get-Help Get-ServerComponentState -Examples").out
    assert "Get-ServerComponentState CAS01" in out
