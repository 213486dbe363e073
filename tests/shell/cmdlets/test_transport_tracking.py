"""Get-MessageTrackingLog as an administrator types it, over a Hub Transport server's
message tracking log (written here with `TrackingLog` under the test's $CASARRAY_HOME):
Exchange's table and fields, every filter, -ResultSize, every server by default, and
bad parameters refused by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.transport.tracking import TrackingLog, tracking_path
from tests.shell.cmdlet_shell import Shell

T0 = datetime(2010, 3, 28, 9, 0, tzinfo=UTC)


@pytest.fixture
def org(bj: Directory) -> Directory:
    bj.servers.new("HUB01", "HubTransport", "127.77.1.31")
    bj.servers.new("HUB02", "HubTransport", "127.77.2.31")
    bj.servers.new("HUB03", "HubTransport", "127.77.2.32")
    return bj


@pytest.fixture
def logs(org: Directory, casarray_home: Path) -> None:
    """HUB01: a message from bob to alice received and delivered, one to dan failed;
    HUB02: one message received. HUB03's transport never ran."""
    now = [T0]
    hub01 = TrackingLog("HUB01", casarray_home, clock=lambda: now[0])
    hub01.record(
        "RECEIVE",
        internal_message_id="018F000000000001",
        message_id="<one@lab.net>",
        sender="bob@lab.net",
        recipients=["alice@lab.net"],
        client_ip="198.51.100.7",
        client_hostname="mta.far.net",
        server_ip="127.77.1.31",
        server_hostname="HUB01.lab.net",
        connector_id="HUB01\\Default HUB01",
        total_bytes=1234,
        message_subject="Lunch today",
        return_path="bob@lab.net",
    )
    now[0] = T0 + timedelta(minutes=1)
    hub01.record(
        "DELIVER",
        internal_message_id="018F000000000001",
        message_id="<one@lab.net>",
        sender="bob@lab.net",
        recipients=["alice@lab.net"],
        source="STOREDRIVER",
        total_bytes=1234,
        message_subject="Lunch today",
    )
    now[0] = T0 + timedelta(hours=2)
    hub01.record(
        "FAIL",
        internal_message_id="018F000000000002",
        message_id="<two@lab.net>",
        sender="carol@lab.net",
        recipients=["dan@contoso.com"],
        recipient_status=["550 5.4.7 Message expired"],
        message_subject="Report",
    )
    hub01.close()
    hub02 = TrackingLog("HUB02", casarray_home, clock=lambda: T0 + timedelta(hours=1))
    hub02.record(
        "RECEIVE",
        internal_message_id="018F000000000003",
        message_id="<three@lab.net>",
        sender="eve@lab.net",
        recipients=["alice@lab.net"],
        message_subject="From HUB02",
    )
    hub02.close()


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip()]


def test_the_default_table_and_every_server(shell: Shell, logs: None) -> None:
    out = shell.ok("Get-MessageTrackingLog -Server HUB01").out
    table = rows(out)
    assert table[0] == ["EventId", "Source", "Sender", "Recipients", "MessageSubject"]
    assert table[2] == ["RECEIVE", "SMTP", "bob@lab.net", "{alice@lab.net}", "Lunch", "today"]
    assert table[3] == [
        "DELIVER",
        "STOREDRIVER",
        "bob@lab.net",
        "{alice@lab.net}",
        "Lunch",
        "today",
    ]
    assert table[4][:2] == ["FAIL", "SMTP"] and len(table) == 5
    # every Hub Transport server whose log is here (HUB03 has none, and isn't an error)
    out = shell.ok("Get-MessageTrackingLog").out
    assert "From HUB02" in out and "Lunch" in out and "Report" in out


def test_the_fields_as_exchange_names_them(shell: Shell, logs: None) -> None:
    out = shell.ok("Get-MessageTrackingLog -Server HUB01 -EventId RECEIVE | Format-List").out
    for line in (
        "ClientIp                : 198.51.100.7",
        "ClientHostname          : mta.far.net",
        "ServerIp                : 127.77.1.31",
        "ServerHostname          : HUB01.lab.net",
        "ConnectorId             : HUB01\\Default HUB01",
        "Source                  : SMTP",
        "EventId                 : RECEIVE",
        "InternalMessageId       : 018F000000000001",
        "MessageId               : <one@lab.net>",
        "Recipients              : {alice@lab.net}",
        "TotalBytes              : 1234",
        "RecipientCount          : 1",
        "MessageSubject          : Lunch today",
        "Sender                  : bob@lab.net",
        "ReturnPath              : bob@lab.net",
    ):
        assert line in out, line
    for name in ("Timestamp", "SourceContext", "RecipientStatus", "RelatedRecipientAddress"):
        assert f"\n{name} " in out, name
    out = shell.ok("Get-MessageTrackingLog -EventId fail | Format-List RecipientStatus").out
    assert "{550 5.4.7 Message expired}" in out
    stamp = shell.ok("(Get-MessageTrackingLog -Server HUB01 -EventId RECEIVE).Timestamp").out
    assert stamp.strip() == T0.astimezone().strftime("%m/%d/%Y %H:%M:%S").lstrip("0")


def test_the_filters(shell: Shell, logs: None) -> None:
    def subjects(command: str) -> list[str]:
        return shell.ok(f"{command} | ForEach-Object {{ $_.MessageSubject }}").out.split("\n")[:-1]

    assert subjects("Get-MessageTrackingLog -Sender BOB@lab.net") == ["Lunch today"] * 2
    assert subjects("Get-MessageTrackingLog -Recipients dan@contoso.com,x@y.z") == ["Report"]
    assert subjects("Get-MessageTrackingLog -MessageId '<three@lab.net>'") == ["From HUB02"]
    assert subjects("Get-MessageTrackingLog -InternalMessageId 018F000000000002") == ["Report"]
    assert subjects("Get-MessageTrackingLog -MessageSubject lunch -EventId DELIVER") == [
        "Lunch today"
    ]
    local = (T0 + timedelta(minutes=30)).astimezone()
    us = local.strftime("%m/%d/%Y %I:%M%p")
    assert subjects(f"Get-MessageTrackingLog -Server HUB01 -Start '{us}'") == ["Report"]
    end = local.strftime("%Y-%m-%dT%H:%M")
    assert subjects(f"Get-MessageTrackingLog -Server HUB01 -End '{end}'") == ["Lunch today"] * 2
    before = (local - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert subjects(
        f"Get-MessageTrackingLog -Start (Get-Date '{before}') -End '{end}' "
        "-Server HUB01 -EventId deliver"
    ) == ["Lunch today"]


def test_result_size(shell: Shell, logs: None) -> None:
    result = shell.ok("Get-MessageTrackingLog -ResultSize 2")
    assert len(rows(result.out)) - 2 == 2 + 1  # two events and the warning line
    assert any("increase the value for the ResultSize" in w for w in result.warnings)
    result = shell.ok("Get-MessageTrackingLog -ResultSize Unlimited")
    assert not result.warnings and "From HUB02" in result.out


def test_bad_parameters_are_named(shell: Shell, logs: None, casarray_home: Path) -> None:
    error = shell.run("Get-MessageTrackingLog -EventId RECIEVE").error()
    assert "'EventId'" in error.message and "RECIEVE" in error.message
    assert "DELIVER" in error.message
    error = shell.run("Get-MessageTrackingLog -Start yesterday").error()
    assert "'Start'" in error.message and "yesterday" in error.message
    error = shell.run(
        "Get-MessageTrackingLog -Start 2010-03-28T10:00 -End 2010-03-28T09:00"
    ).error()
    assert "'End'" in error.message and "before the start" in error.message
    error = shell.run("Get-MessageTrackingLog -ResultSize 0").error()
    assert "'ResultSize'" in error.message
    error = shell.run("Get-MessageTrackingLog -Server HUB03").error()
    assert "HUB03" in error.message and "no message tracking log yet" in error.message
    assert not tracking_path("HUB03", casarray_home).exists()  # nothing was made
    error = shell.run("Get-MessageTrackingLog -Server CAS01").error()
    assert "CAS01" in error.message and "isn't a Hub Transport server" in error.message
    error = shell.run("Get-MessageTrackingLog -Server NOPE").error()
    assert "NOPE" in error.message
