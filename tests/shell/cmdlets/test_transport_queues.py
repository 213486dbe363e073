"""The queue viewer's cmdlets as an administrator types them: Get-Queue and Get-Message
over a Hub Transport server's queue store (built here with `SqliteQueue` under the
test's $CASARRAY_HOME), Retry-, Suspend-, Resume-Queue, Suspend-, Resume-Message and
Remove-Message; bad identities refused by name with nothing changed."""

from __future__ import annotations

import email
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.directory import Directory
from casarray.transport.queue import (
    FAILED,
    READY,
    RELAY,
    RETRY,
    SUSPENDED,
    NewMessage,
    NewRecipient,
    SqliteQueue,
    default_path,
)
from casarray.transport.transport_process import status_file
from tests.shell.cmdlet_shell import Shell, what_if


def mail(subject: str) -> bytes:
    return (
        f"From: bob@lab.net\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@lab.net>\r\n\r\nHello.\r\n"
    ).encode()


@pytest.fixture
def org(bj: Directory) -> Directory:
    bj.servers.new("HUB01", "HubTransport", "127.77.1.31")
    bj.servers.new("HUB02", "HubTransport", "127.77.2.31")
    bj.transport.new_send_connector(
        "Relay",
        address_spaces=["SMTP:contoso.com;1"],
        smart_hosts=["relay.lab.net"],
        dns_routing_enabled=False,
    )
    return bj


@pytest.fixture
def store(org: Directory, casarray_home: Path) -> Iterator[SqliteQueue]:
    queue = SqliteQueue(default_path("HUB01", casarray_home))
    yield queue
    queue.close()


@pytest.fixture
def ids(store: SqliteQueue) -> dict[str, str]:
    """Three messages on HUB01: one to alice (local), one to alice and to an outside
    address (local and relay), one from the null sender to contoso.com waiting a retry."""
    local = store.enqueue(
        NewMessage("bob@lab.net", (NewRecipient("alice@lab.net"),), mail("Local one"))
    )
    both = store.enqueue(
        NewMessage(
            "carol@lab.net",
            (
                NewRecipient("alice@lab.net"),
                NewRecipient("dan@contoso.com", RELAY, "contoso.com"),
            ),
            mail("To both"),
            authenticated_as="carol",
        )
    )
    bounce = store.enqueue(
        NewMessage("", (NewRecipient("eve@contoso.com", RELAY, "contoso.com"),), mail("Bounce"))
    )
    taken = store.take_due(time.time() + 1)
    for recipient in taken:
        if recipient.message_id == bounce:
            store.retry(
                recipient.message_id,
                recipient.index,
                "451 4.4.1 relay.lab.net refused",
                time.time() + 3600,
            )
        else:
            store.retry(recipient.message_id, recipient.index, "", time.time() - 1)
    # back to Ready: the others were only taken to give the bounce its Retry
    for recipient in taken:
        if recipient.message_id != bounce:
            store.suspend(recipient.message_id)
            store.suspend(recipient.message_id, False)
    return {"local": local, "both": both, "bounce": bounce}


def states(store: SqliteQueue, message_id: str) -> list[str]:
    message = store.message(message_id)
    assert message is not None
    return [r.state for r in message.recipients]


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip()]


# -- Get-Queue ---------------------------------------------------------------------------


def test_get_queue_shows_exchanges_table(shell: Shell, ids: dict[str, str]) -> None:
    table = rows(shell.ok("Get-Queue -Server HUB01").out)
    assert table[0] == ["Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain"]
    assert ["HUB01\\Submission", "Undefined", "Ready", "0", "submission"] in table
    assert ["HUB01\\1", "MapiDelivery", "Ready", "2", "lab.net"] in table
    assert ["HUB01\\2", "SmartHostConnectorDelivery", "Retry", "2", "contoso.com"] in table


def test_get_queue_by_identity_and_next_hop(shell: Shell, ids: dict[str, str]) -> None:
    out = shell.ok("Get-Queue HUB01\\contoso.com | Format-List").out
    assert "Identity         : HUB01\\2" in out
    assert "LastError        : 451 4.4.1 relay.lab.net refused" in out
    assert "NextHopConnector : Relay" in out
    assert "NextHopCategory  : External" in out
    # every server that has a queue; HUB02's transport never ran
    table = rows(shell.ok("Get-Queue").out)
    assert [r[0] for r in table[2:]] == ["HUB01\\Submission", "HUB01\\1", "HUB01\\2"]


def test_get_queue_errors_name_what_was_wrong(shell: Shell, ids: dict[str, str]) -> None:
    error = shell.run("Get-Queue HUB01\\9").error()
    assert 'The queue "HUB01\\9" couldn\'t be found' in error.message
    error = shell.run("Get-Queue nonsense").error()
    assert "nonsense" in error.message and "SERVER\\QueueName" in error.message
    error = shell.run("Get-Queue -Server MBX01").error()
    assert "MBX01" in error.message and "isn't a Hub Transport server" in error.message
    error = shell.run("Get-Queue -Server HUB02").error()
    assert "HUB02" in error.message and "has no queue yet" in error.message
    error = shell.run("Get-Queue -Server NOPE").error()
    assert "NOPE" in error.message
    # nothing was made for HUB02
    assert not default_path("HUB02").exists()


# -- Get-Message -------------------------------------------------------------------------


def test_get_message_lists_each_queues_copy(shell: Shell, ids: dict[str, str]) -> None:
    table = shell.ok("Get-Message -Queue HUB01\\1").out
    assert rows(table)[0] == ["Identity", "FromAddress", "Status", "Queue", "Subject"]
    assert f"HUB01\\1\\{ids['local']}" in table and "Local one" in table
    assert f"HUB01\\1\\{ids['both']}" in table and "To both" in table
    assert ids["bounce"] not in table
    # the message to both shows in both queues
    everything = shell.ok("Get-Message -Server HUB01").out
    assert f"HUB01\\2\\{ids['both']}" in everything and f"HUB01\\1\\{ids['both']}" in everything
    piped = shell.ok("Get-Queue HUB01\\2 | Get-Message").out
    assert ids["bounce"] in piped and ids["local"] not in piped


def test_get_message_fields(shell: Shell, ids: dict[str, str]) -> None:
    out = shell.ok(f"Get-Message HUB01\\2\\{ids['bounce']} | Format-List").out
    assert "FromAddress       : <>" in out
    assert "Status            : Retry" in out
    assert "Queue             : HUB01\\2" in out
    assert "Subject           : Bounce" in out
    assert "LastError         : 451 4.4.1 relay.lab.net refused" in out
    assert "Recipients        : {eve@contoso.com}" in out
    assert "SCL               : 0" in out
    assert "MessageSourceName : SMTP" in out
    assert "InternetMessageId : <Bounce@lab.net>" in out
    assert "bytes)" in out  # Size as Exchange shows it
    out = shell.ok(f"Get-Message HUB01\\1\\{ids['both']} | Format-List").out
    assert "Recipients        : {alice@lab.net}" in out  # only this queue's recipient
    assert "SCL               : -1" in out  # sent by a logged-on user
    # SERVER\Id works when the message is in one queue only
    assert ids["local"] in shell.ok(f"Get-Message HUB01\\{ids['local']}").out
    error = shell.run(f"Get-Message HUB01\\{ids['both']}").error()
    assert "matches multiple entries" in error.message
    error = shell.run("Get-Message HUB01\\1\\0000000000000000").error()
    assert "0000000000000000" in error.message and "couldn't be found" in error.message


# -- Retry-Queue --------------------------------------------------------------------------


def test_retry_queue_makes_it_due_now(
    shell: Shell, store: SqliteQueue, ids: dict[str, str]
) -> None:
    def next_attempt() -> float:
        message = store.message(ids["bounce"])
        assert message is not None and message.recipients[0].next_attempt is not None
        return message.recipients[0].next_attempt

    assert next_attempt() > time.time() + 60  # the bounce waits an hour
    assert what_if("Retry-Queue", "HUB01\\2") in shell.ok("Retry-Queue HUB01\\2 -WhatIf").out
    assert next_attempt() > time.time() + 60
    shell.ok("Retry-Queue HUB01\\2")
    assert next_attempt() <= time.time()
    assert ids["bounce"] in [r.message_id for r in store.take_due(time.time())]
    error = shell.run("Retry-Queue HUB01\\1").error()
    assert "HUB01\\1" in error.message and "isn't in Retry" in error.message


def test_retry_queue_leaves_other_queues_waiting(shell: Shell, store: SqliteQueue) -> None:
    """Two relay queues in Retry: retrying one leaves the other's retry time alone."""
    waiting = {}
    for domain in ("contoso.com", "fabrikam.com"):
        waiting[domain] = store.enqueue(
            NewMessage("bob@lab.net", (NewRecipient(f"x@{domain}", RELAY, domain),), mail(domain))
        )
    for recipient in store.take_due(time.time() + 1):
        store.retry(recipient.message_id, recipient.index, "451 4.4.1 down", time.time() + 3600)
    shell.ok("Retry-Queue HUB01\\contoso.com")
    due = {r.message_id for r in store.take_due(time.time() + 1)}
    assert due == {waiting["contoso.com"]}


# -- suspending and resuming ---------------------------------------------------------------


def test_suspend_and_resume_queue(shell: Shell, store: SqliteQueue, ids: dict[str, str]) -> None:
    shell.ok("Suspend-Queue HUB01\\1 -WhatIf")
    assert states(store, ids["local"]) == [READY]
    shell.ok("Suspend-Queue HUB01\\1")
    assert states(store, ids["local"]) == [SUSPENDED]
    assert states(store, ids["both"]) == [SUSPENDED, READY]  # this queue's recipient only
    table = rows(shell.ok("Get-Queue HUB01\\1").out)
    assert table[2][2] == "Suspended"
    assert not [r for r in store.take_due(time.time() + 1) if r.message_id == ids["local"]]
    shell.ok("Get-Queue HUB01\\1 | Resume-Queue")
    assert states(store, ids["local"]) == [READY]
    assert states(store, ids["both"]) == [READY, READY]
    error = shell.run("Suspend-Queue HUB01\\Submission").error()
    assert "Submission" in error.message


def test_suspend_and_resume_message(shell: Shell, store: SqliteQueue, ids: dict[str, str]) -> None:
    identity = f"HUB01\\1\\{ids['local']}"
    shell.ok(f"Suspend-Message {identity}")
    assert states(store, ids["local"]) == [SUSPENDED]
    assert "Suspended" in shell.ok(f"Get-Message {identity}").out
    error = shell.run(f"Suspend-Message {identity}").error()
    assert identity in error.message and "already suspended" in error.message
    shell.ok(
        "Get-Message -Queue HUB01\\1 | Where-Object { $_.Status -eq 'Suspended' } | Resume-Message"
    )
    assert states(store, ids["local"]) == [READY]
    error = shell.run(f"Resume-Message {identity}").error()
    assert "isn't suspended" in error.message
    assert states(store, ids["local"]) == [READY]


# -- Remove-Message ------------------------------------------------------------------------


def test_remove_message_fails_its_recipients_in_that_queue(
    shell: Shell, store: SqliteQueue, ids: dict[str, str]
) -> None:
    identity = f"HUB01\\2\\{ids['both']}"
    out = shell.ok(f"Remove-Message {identity} -WithNDR $false -WhatIf").out
    assert what_if("Remove-Message", identity) in out
    assert states(store, ids["both"]) == [READY, READY]
    shell.ok(f"Remove-Message {identity} -WithNDR $false -Confirm:$false")
    message = store.message(ids["both"])
    assert message is not None
    alice, dan = message.recipients
    assert (alice.state, dan.state) == (READY, FAILED)  # only this queue's recipient
    assert "deleted by administrative action" in dan.last_error.lower()
    assert "no non-delivery report" in dan.last_error
    shell.ok(f"Remove-Message HUB01\\1\\{ids['local']} -Confirm:$false")  # -WithNDR $true
    local = store.message(ids["local"])
    assert local is not None
    assert local.recipients[0].state == FAILED
    assert "a non-delivery report is due to the sender" in local.recipients[0].last_error
    assert ids["local"] not in shell.ok("Get-Message -Server HUB01").out
    # the report to bob, from the null sender, queued at once; none for the $false one
    [report] = [m for m in store.messages() if m.message_id not in ids.values()]
    assert report.sender == "" and [r.address for r in report.recipients] == ["bob@lab.net"]
    parsed = email.message_from_bytes(store.message_data(report.message_id))
    assert parsed.get_content_type() == "multipart/report"
    status = parsed.get_payload()[1].get_payload()  # type: ignore[index, union-attr]
    fields = [part for part in status][1]  # the recipient's fields
    assert fields["Final-Recipient"] == "rfc822; alice@lab.net"
    assert fields["Action"] == "failed" and fields["Status"] == "5.0.0"
    assert (
        "550 4.3.2 QUEUE.Admin; message deleted by administrative action"
        in (fields["Diagnostic-Code"])
    )
    assert fields["Status"] == "5.0.0"  # a failure's class, whatever the text's says


def test_remove_message_bad_input_changes_nothing(
    shell: Shell, store: SqliteQueue, ids: dict[str, str]
) -> None:
    before = {key: states(store, value) for key, value in ids.items()}
    error = shell.run("Remove-Message HUB01 -Confirm:$false").error()
    assert "HUB01" in error.message and "SERVER\\QueueName\\Id" in error.message
    error = shell.run(f"Remove-Message HUB01\\7\\{ids['local']} -Confirm:$false").error()
    assert 'The queue "HUB01\\7"' in error.message
    error = shell.run(f"Remove-Message HUB01\\2\\{ids['local']} -Confirm:$false").error()
    assert "couldn't be found" in error.message
    assert shell.run(f"Remove-Message HUB01\\1\\{ids['local']} -WithNDR maybe").errors
    assert {key: states(store, value) for key, value in ids.items()} == before


def test_in_flight_message_shows_active_and_is_not_removed(
    shell: Shell, store: SqliteQueue, ids: dict[str, str]
) -> None:
    store.take_due(time.time() + 1)  # a delivery is under way for the Ready ones
    assert rows(shell.ok("Get-Queue HUB01\\1").out)[2][2] == "Active"
    result = shell.ok(f"Remove-Message HUB01\\1\\{ids['local']} -Confirm:$false")
    assert "under way" in " ".join(result.warnings)
    assert states(store, ids["local"]) == [READY]
    assert RETRY in states(store, ids["bounce"])


def test_a_running_transport_names_its_queue(
    shell: Shell, org: Directory, casarray_home: Path
) -> None:
    elsewhere = SqliteQueue(casarray_home / "elsewhere" / "hub02.db")
    try:
        queued = elsewhere.enqueue(
            NewMessage("bob@lab.net", (NewRecipient("alice@lab.net"),), mail("Elsewhere"))
        )
    finally:
        elsewhere.close()
    status_file("HUB02").write(
        {"pid": os.getpid(), "queue": elsewhere.where, "queue_url": elsewhere.url}
    )
    out = shell.ok("Get-Message -Server HUB02").out
    assert f"HUB02\\1\\{queued}" in out and "Elsewhere" in out
    assert not default_path("HUB02").exists()


def test_a_mailbox_delivery_queue_per_database(
    shell: Shell, org: Directory, store: SqliteQueue, password_hash: str, tmp_path: Path
) -> None:
    """Local recipients wait in their mailbox database's queue (its name as the next
    hop, as Exchange's MapiDelivery queues); one whose address no mailbox has waits
    under its domain. Retry-Queue and Suspend-Queue act on that queue only."""
    for name in ("DB01", "DB02"):
        org.databases.new(name, "MBX01", store_location=str(tmp_path / f"{name}.db"))
    mine = {}
    for alias, database in (("ann", "DB01"), ("ben", "DB02")):
        mailbox = org.mailboxes.new(
            name=alias.title(), alias=alias, database=database, password_hash=password_hash
        )
        mine[alias] = mailbox.primary_smtp_address
    ids = {
        alias: store.enqueue(
            NewMessage("x@far.net", (NewRecipient(address),), mail(f"For {alias}"))
        )
        for alias, address in mine.items()
    }
    ids["gone"] = store.enqueue(
        NewMessage("x@far.net", (NewRecipient("gone@lab.net"),), mail("For nobody"))
    )
    table = rows(shell.ok("Get-Queue -Server HUB01").out)
    assert ["HUB01\\1", "MapiDelivery", "Ready", "1", "db01"] in table
    assert ["HUB01\\2", "MapiDelivery", "Ready", "1", "db02"] in table
    assert ["HUB01\\3", "MapiDelivery", "Ready", "1", "lab.net"] in table
    assert ids["ann"] in shell.ok("Get-Message -Queue HUB01\\db01").out
    shell.ok("Suspend-Queue HUB01\\db01")
    assert states(store, ids["ann"]) == [SUSPENDED]
    assert states(store, ids["ben"]) == [READY] and states(store, ids["gone"]) == [READY]
    for recipient in store.take_due(time.time() + 1):
        store.retry(recipient.message_id, recipient.index, "451 4.3.0 down", time.time() + 600)
    shell.ok("Retry-Queue HUB01\\db02")
    assert {r.message_id for r in store.take_due(time.time() + 1)} == {ids["ben"]}
