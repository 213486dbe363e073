"""Relay through a send connector, against `casarray transport run MBX01` as a real
process and Debian's Postfix as the smart host: the message arrives as queued (our
Received header, the body byte for byte), recipients of one message go in one
transaction, a recipient the smart host refuses comes back to the sender as an RFC
3464 report in her INBOX, a smart host that is down is retried until it is up, a
message that can't leave expires (5.4.7) with a report, the null sender gets no
report, and a kill -9 in the middle of a relay loses nothing."""

from __future__ import annotations

import email
import email.message
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from casarray.transport.queue import DELIVERED, FAILED, RETRY, SqliteQueue
from casarray.transport.tracking import TrackingLog
from tests.dns.nsd import NSD_ADDRESS, nsd_missing, start_nsd, stop_nsd
from tests.peers.postfix import PostfixPeer, missing
from tests.transport.harness import PASSWORD, Org, TransportProcess, make_org, wait_for

pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))

MESSAGE = (
    b"From: Alice <alice@lab.net>\r\nTo: carol@far.net\r\nSubject: out into the world\r\n"
    b"Message-ID: <out.1@lab.net>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n"
    b"Hello Carol.\r\n.leading dot\r\nBye.\r\n"
)


@pytest.fixture
def org(tmp_path: Path, password_hash: str) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    org.add_user("alice")
    org.directory.transport.set_server_settings(
        "MBX01", message_retry_interval=timedelta(seconds=1)
    )
    yield org
    org.directory.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def smart_host(org: Org, port: int) -> None:
    org.directory.transport.new_send_connector(
        "Internet",
        address_spaces=["SMTP:*;1"],
        smart_hosts=["127.0.0.1"],
        dns_routing_enabled=False,
        port=port,
    )


def submit(
    transport: TransportProcess,
    recipients: list[str],
    data: bytes = MESSAGE,
    sender: str = "alice@lab.net",
) -> str:
    """alice submits through 587 (STARTTLS, AUTH); the queue id. `sender` "": the null
    sender."""
    with transport.smtp(587) as client:
        client.starttls(context=transport.tls_context())
        client.login("alice@lab.net", PASSWORD)
        assert client.mail(sender)[0] == 250
        for recipient in recipients:
            assert client.rcpt(recipient)[0] == 250
        code, text = client.data(data)
        assert code == 250, text
        return text.decode().split("<")[1].split(">")[0]


def queue_of(org: Org) -> SqliteQueue:
    return SqliteQueue(org.home / "transport" / "mbx01" / "queue.db")


def states(org: Org, queue_id: str) -> dict[str, tuple[str, str]]:
    queue = queue_of(org)
    try:
        message = queue.message(queue_id)
        assert message is not None
        return {r.address: (r.state, r.last_error) for r in message.recipients}
    finally:
        queue.close()


def lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def report_parts(raw: bytes) -> tuple[email.message.Message, list[email.message.Message]]:
    """The report and the fields of its message/delivery-status part (per message,
    then per recipient)."""
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = report.get_payload()
    assert isinstance(parts, list) and len(parts) == 3
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() == "text/rfc822-headers"
    fields = parts[1].get_payload()
    assert isinstance(fields, list)
    return report, fields


def test_relayed_through_a_smart_host(org: Org) -> None:
    with PostfixPeer() as sink:
        smart_host(org, sink.port)
        transport = TransportProcess(org).start()
        try:
            queue_id = submit(transport, ["carol@far.net", "dan@far.net"])
            [got] = sink.wait_received(1)
            assert wait_for(
                lambda: {s for s, _ in states(org, queue_id).values()} == {DELIVERED}
            ), states(org, queue_id)
        finally:
            transport.close()
        log = sink.log()
    assert got.startswith(b"Return-Path: <alice@lab.net>\n")
    assert b"by smarthost.example.test (Postfix) with ESMTP" in got  # from MBX01.lab.net
    assert b"from MBX01.lab.net (localhost [127.0.0.1])" in got
    # our Received header, then the message byte for byte
    ours = got.index(b"Received: from ")  # Postfix's
    ours = got.index(b"Received: from ", ours + 1)
    assert f"by MBX01.lab.net with ESMTPSA id {queue_id}".encode() in got[ours:]
    assert got.endswith(lf(MESSAGE))
    assert got[ours:].split(b"\n\n", 1)[1] == lf(MESSAGE).split(b"\n\n", 1)[1]
    # both recipients in one transaction
    assert "rcpt=2 data=1" in log, log
    assert transport.logs().count("relayed to") == 2
    # one SEND in the message tracking log for both, with the smart host's reply
    [send] = TrackingLog("MBX01", home=org.home).search(event_ids=["SEND"])
    assert send.internal_message_id == queue_id and send.message_id == "<out.1@lab.net>"
    assert sorted(send.recipients) == ["carol@far.net", "dan@far.net"]
    assert all(status.startswith("250 2.0.0 Ok") for status in send.recipient_status)
    assert send.connector_id == "Internet" and send.server_ip == "127.0.0.1"


def test_a_refused_recipient_comes_back_as_a_report(org: Org) -> None:
    with PostfixPeer(reject={"bob@far.net": "550 5.1.1 No such user here"}) as sink:
        smart_host(org, sink.port)
        transport = TransportProcess(org).start()
        try:
            queue_id = submit(transport, ["bob@far.net", "carol@far.net"])
            [reply] = wait_for(lambda: org.inbox("alice"))
            assert len(sink.wait_received(1)) == 1
            after = states(org, queue_id)
        finally:
            transport.close()
    assert after["carol@far.net"][0] == DELIVERED
    assert after["bob@far.net"][0] == FAILED
    assert after["bob@far.net"][1].startswith("550 5.1.1 <bob@far.net>: Recipient address")
    assert reply.startswith(b"Return-Path: <>\r\n")
    report, fields = report_parts(reply)
    assert report["To"] == "<alice@lab.net>"
    assert report["From"] == "Microsoft Exchange <postmaster@lab.net>"
    assert report["Subject"] == "Undeliverable: out into the world"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report["In-Reply-To"] == "<out.1@lab.net>"
    per_message, bob = fields  # one report, for bob only
    assert per_message["Reporting-MTA"] == "dns; MBX01.lab.net"
    assert per_message["Arrival-Date"]
    assert bob["Final-Recipient"] == "rfc822; bob@far.net"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; 127.0.0.1"
    assert bob["Diagnostic-Code"].startswith("smtp; 550 5.1.1 <bob@far.net>")
    headers = report.get_payload()[2].get_payload()  # type: ignore[index, union-attr]
    assert "Subject: out into the world" in headers and "Hello Carol" not in headers
    assert f"id {queue_id}" in headers
    events = {e.event_id: e for e in TrackingLog("MBX01", home=org.home).search()}
    assert events["FAIL"].recipients == ("bob@far.net",)
    assert events["DSN"].reference == ("<out.1@lab.net>",)
    assert events["DSN"].recipients == ("alice@lab.net",)


def test_a_smart_host_that_is_down_is_retried_until_it_is_up(org: Org) -> None:
    port = free_port()
    smart_host(org, port)
    transport = TransportProcess(org).start()
    try:
        queue_id = submit(transport, ["carol@far.net"])
        assert wait_for(lambda: states(org, queue_id)["carol@far.net"][0] == RETRY)
        _, error = states(org, queue_id)["carol@far.net"]
        assert error.startswith("451 4.4.1 127.0.0.1 can't be reached")
        with PostfixPeer(port=port) as sink:
            [got] = sink.wait_received(1, timeout=20)
            assert got.endswith(lf(MESSAGE))
        assert states(org, queue_id)["carol@far.net"][0] == DELIVERED
        assert org.inbox("alice") == []  # no report for a delivery
    finally:
        transport.close()


def test_a_message_that_cant_leave_expires_with_a_report(org: Org) -> None:
    org.directory.transport.set_server_settings(
        "MBX01", message_expiration_timeout=timedelta(seconds=5)
    )
    smart_host(org, free_port())  # nobody listens there
    transport = TransportProcess(org).start()
    try:
        queue_id = submit(transport, ["carol@far.net"])
        [reply] = wait_for(lambda: org.inbox("alice"), timeout=20)
        state, error = states(org, queue_id)["carol@far.net"]
    finally:
        transport.close()
    assert state == FAILED and error.startswith("550 5.4.7 Message expired (451 4.4.1")
    _, (_, carol) = report_parts(reply)
    assert carol["Final-Recipient"] == "rfc822; carol@far.net"
    assert carol["Status"] == "5.4.7"
    assert carol["Diagnostic-Code"].startswith("smtp; 550 5.4.7 Message expired")


def test_the_null_sender_gets_no_report(org: Org) -> None:
    with PostfixPeer(reject={"bob@far.net": "550 5.1.1 No such user here"}) as sink:
        smart_host(org, sink.port)
        transport = TransportProcess(org).start()
        try:
            queue_id = submit(transport, ["bob@far.net"], sender="")
            assert wait_for(lambda: states(org, queue_id)["bob@far.net"][0] == FAILED)
            time.sleep(1.5)  # a report would be queued by now
            queue = queue_of(org)
            try:
                assert [m.message_id for m in queue.messages()] == [queue_id]
                assert queue.reports_due() == []
            finally:
                queue.close()
        finally:
            transport.close()
    assert org.inbox("alice") == []


def test_kill_9_in_the_middle_of_a_relay_loses_nothing(org: Org) -> None:
    """The smart host takes the connection and says nothing: the relay waits with the
    attempt in flight. The transport is killed, the host comes up for real, a new
    transport relays the message: it arrives once."""
    port = free_port()
    smart_host(org, port)
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", port))
    silent.listen(8)
    transport = TransportProcess(org).start()
    try:
        queue_id = submit(transport, ["carol@far.net"])

        def in_flight() -> bool:
            queue = queue_of(org)
            try:
                return any(r.message_id == queue_id for r in queue.in_flight())
            finally:
                queue.close()

        assert wait_for(in_flight)
        transport.kill()
        silent.close()
        with PostfixPeer(port=port) as sink:
            transport.start()
            [got] = sink.wait_received(1, timeout=20)
            assert got.endswith(lf(MESSAGE))
            assert wait_for(lambda: states(org, queue_id)["carol@far.net"][0] == DELIVERED)
            time.sleep(1.5)
            assert len(sink.received()) == 1
    finally:
        silent.close()
        transport.close()


FAR_NET_ZONE = """\
$ORIGIN far.net.
$TTL 60
@     IN SOA ns.far.net. hostmaster.far.net. 1 3600 600 86400 60
@     IN NS  ns.far.net.
ns    IN A   127.0.0.1
@     IN MX  20 backup.far.net.
@     IN MX  10 mx.far.net.
mx    IN A   127.0.0.1
bare  IN A   127.0.0.1
backup IN A  127.0.0.3
"""


@pytest.mark.skipif(nsd_missing() is not None, reason=str(nsd_missing()))
def test_dns_routing_follows_mx_records(
    org: Org, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A DNSRoutingEnabled connector asks the configured DNS server (NSD serving
    far.net here): the MX of lowest preference first (backup.far.net, where nothing
    listens, is never tried), the domain itself when it has no MX, and a domain that
    doesn't exist fails for good with a report."""
    folder = tmp_path / "nsd"
    folder.mkdir()
    (folder / "far.net.zone").write_text(FAR_NET_ZONE)
    nsd = start_nsd(folder, {"far.net": folder / "far.net.zone"})
    monkeypatch.setenv("CASARRAY_TRANSPORT_DNS", f"{NSD_ADDRESS}:{nsd.port}")
    try:
        with PostfixPeer() as sink:
            org.directory.transport.new_send_connector(
                "Internet", address_spaces=["SMTP:*;1"], dns_routing_enabled=True, port=sink.port
            )
            transport = TransportProcess(org).start()
            try:
                queue_id = submit(
                    transport, ["carol@far.net", "dan@bare.far.net", "eve@nowhere.far.net"]
                )
                got = sink.wait_received(2)
                [reply] = wait_for(lambda: org.inbox("alice"))
                after = states(org, queue_id)
            finally:
                transport.close()
    finally:
        stop_nsd(nsd)
    assert "backup.far.net" not in transport.logs()
    assert len(got) == 2 and all(m.endswith(lf(MESSAGE)) for m in got)
    assert after["carol@far.net"][0] == DELIVERED and after["dan@bare.far.net"][0] == DELIVERED
    state, error = after["eve@nowhere.far.net"]
    assert state == FAILED and error.startswith("554 5.4.4 Unable to route")
    _, (_, eve) = report_parts(reply)
    assert eve["Final-Recipient"] == "rfc822; eve@nowhere.far.net"
    assert eve["Status"] == "5.4.4"


def test_starttls_when_offered_and_required_tls(org: Org) -> None:
    """The connector says RequireTLS: a smart host without STARTTLS gets nothing (the
    recipient waits, 451 4.7.5); one that offers it gets the message over TLS."""
    with PostfixPeer() as clear:
        org.directory.transport.new_send_connector(
            "Internet",
            address_spaces=["SMTP:*;1"],
            smart_hosts=["127.0.0.1"],
            dns_routing_enabled=False,
            port=clear.port,
            require_tls=True,
        )
        transport = TransportProcess(org).start()
        try:
            queue_id = submit(transport, ["carol@far.net"])
            assert wait_for(lambda: states(org, queue_id)["carol@far.net"][0] == RETRY)
            assert "requires TLS" in states(org, queue_id)["carol@far.net"][1]
            assert clear.received() == []
            with PostfixPeer(tls=True) as secure:
                org.directory.transport.set_send_connector("Internet", port=secure.port)
                [got] = secure.wait_received(1, timeout=20)
                log = secure.log()
        finally:
            transport.close()
    assert got.endswith(lf(MESSAGE))
    postfix_received = got[: got.index(b"Received: from", got.index(b"Received: from") + 1)]
    assert b"with ESMTPS id" in postfix_received  # Postfix took it over TLS
    assert "TLS connection established from localhost" in log


def test_a_silent_smart_host_holds_up_no_local_delivery(org: Org) -> None:
    """Relays wait on a smart host that never answers (several messages, more than the
    delivery's parallel slots): mail to a local mailbox is still delivered at once."""
    port = free_port()
    smart_host(org, port)
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", port))
    silent.listen(16)
    transport = TransportProcess(org).start()
    try:
        out = [submit(transport, [f"user{n}@far.net"]) for n in range(6)]

        def in_flight() -> int:
            queue = queue_of(org)
            try:
                return len({r.message_id for r in queue.in_flight()} & set(out))
            finally:
                queue.close()

        assert wait_for(lambda: in_flight() == 6)
        started = time.monotonic()
        with transport.smtp() as client:
            client.sendmail("x@far.net", ["alice@lab.net"], b"Subject: in\r\n\r\nHi.\r\n")
        assert wait_for(lambda: org.inbox("alice"), timeout=5)
        assert time.monotonic() - started < 5
        assert in_flight() == 6  # the relays still wait
    finally:
        silent.close()
        transport.close()


def test_eight_bit_content_and_an_internationalized_address(org: Org) -> None:
    """8-bit content goes with BODY=8BITMIME and a UTF-8 address with SMTPUTF8 (Postfix
    offers both): the smart host gets the bytes as they were."""
    body = (
        "From: alice@lab.net\r\nTo: jörg@far.net\r\nSubject: Grüße\r\n"
        "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <utf8.1@lab.net>\r\n\r\n"
        "Schöne Grüße aus Peking.\r\n"
    ).encode()
    with PostfixPeer() as sink:
        smart_host(org, sink.port)
        transport = TransportProcess(org).start()
        try:
            with transport.smtp(587) as client:
                client.starttls(context=transport.tls_context())
                client.login("alice@lab.net", PASSWORD)
                client.sendmail(
                    "alice@lab.net",
                    ["jörg@far.net"],
                    body,
                    mail_options=["SMTPUTF8", "BODY=8BITMIME"],
                )
            [got] = sink.wait_received(1)
        finally:
            transport.close()
        log = sink.log()
    assert got.endswith(lf(body))
    assert "to=<jörg@far.net>" in log, log  # the address as it was, over SMTPUTF8


def test_max_outbound_connections_bounds_the_relay_sessions(org: Org) -> None:
    """Set-TransportServer -MaxOutboundConnections 2: six relays to a smart host that
    never answers open two connections; raised to 6, the others open too."""
    import threading

    port = free_port()
    smart_host(org, port)
    org.directory.transport.set_server_settings("MBX01", max_outbound_connections=2)
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", port))
    silent.listen(16)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    transport = TransportProcess(org).start()
    try:
        for n in range(6):
            submit(transport, [f"user{n}@far.net"])
        assert wait_for(lambda: len(accepted) == 2)
        time.sleep(1.0)
        assert len(accepted) == 2
        org.directory.transport.set_server_settings("MBX01", max_outbound_connections=6)
        assert wait_for(lambda: len(accepted) == 6, timeout=15), len(accepted)
    finally:
        silent.close()
        for connection in accepted:
            connection.close()
        transport.close()
