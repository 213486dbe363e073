"""Delivery status notifications (RFC 3464) built by `dsn.build` and read back with
the email package; `send_reports` over a real queue: one report per message for the
recipients due, from the null sender, routed to the sender, none for a message from
the null sender, and the due marks cleared."""

from __future__ import annotations

import email
import email.message
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from casarray.transport import dsn
from casarray.transport.config import (
    AUTHORITATIVE,
    INTERNAL_RELAY,
    Domain,
    TransportConfig,
)
from casarray.transport.queue import (
    LOCAL,
    RELAY,
    NewMessage,
    NewRecipient,
    SqliteQueue,
)
from casarray.transport.relay import split_remote, with_remote

ORIGINAL = (
    b"Received: from client.far.net (127.0.0.1)\r\n\tby MBX01.lab.net with ESMTP id 0123;"
    b" Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    b"From: Alice <alice@lab.net>\r\nTo: bob@far.net\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@lab.net>\r\n\r\nSecret body.\r\n"
)
CONFIG = TransportConfig(
    server="MBX01",
    fqdn="MBX01.lab.net",
    domains=(Domain("lab.net", AUTHORITATIVE), Domain("partner.net", INTERNAL_RELAY)),
)


def parse(raw: bytes) -> tuple[email.message.Message, list[email.message.Message]]:
    report = email.message_from_bytes(raw)
    parts = report.get_payload()
    assert isinstance(parts, list)
    fields = parts[1].get_payload()
    assert isinstance(fields, list)
    return report, fields


def test_a_report_has_rfc_3464s_structure() -> None:
    arrival = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    raw = dsn.build(
        reporting_mta="MBX01.lab.net",
        postmaster="postmaster@lab.net",
        sender="alice@lab.net",
        original=ORIGINAL,
        arrival=arrival,
        failures=[
            dsn.Failure(
                "bob@far.net", with_remote("550 5.1.1 No such user", "mx.far.net [10.0.0.9]")
            ),
            dsn.Failure("carol@far.net", "550 5.4.7 Message expired (451 4.4.1 down)"),
        ],
        message_id="<r1@MBX01.lab.net>",
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
    report, fields = parse(raw)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["To"] == "<alice@lab.net>"
    assert str(make_header(decode_header(report["Subject"]))) == "Undeliverable: Grüße"
    assert report["Message-ID"] == "<r1@MBX01.lab.net>"
    assert report["References"] == "<m1@lab.net>"
    assert report["Auto-Submitted"] == "auto-replied"
    human, status, headers = report.get_payload()  # type: ignore[misc]
    assert human.get_content_type() == "text/plain"
    text = human.get_payload(decode=True).decode()
    assert "bob@far.net" in text and "550 5.1.1 No such user" in text
    assert status.get_content_type() == "message/delivery-status"
    per_message, bob, carol = fields
    assert per_message["Reporting-MTA"] == "dns; MBX01.lab.net"
    assert email.utils.parsedate_to_datetime(per_message["Arrival-Date"]) == arrival
    assert bob["Final-Recipient"] == "rfc822; bob@far.net"
    assert (bob["Action"], bob["Status"]) == ("failed", "5.1.1")
    assert bob["Remote-MTA"] == "dns; mx.far.net"
    assert bob["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user"
    assert carol["Status"] == "5.4.7" and carol["Remote-MTA"] is None
    assert headers.get_content_type() == "text/rfc822-headers"
    returned = headers.get_payload()
    assert "Message-ID: <m1@lab.net>" in returned and "Secret body" not in returned


def test_status_and_remote_are_read_from_the_error() -> None:
    assert dsn.status_of("550 5.1.1 User unknown") == "5.1.1"
    assert dsn.status_of("550 5.4.7 Message expired (451 4.4.1 down)") == "5.4.7"
    assert dsn.status_of("Removed by an administrator") == "5.0.0"
    assert dsn.status_of("451 4.4.1 down") == "5.0.0"  # a failure reports a 5.x.x
    assert split_remote(with_remote("550 5.1.1 x", "h [1.2.3.4]")) == ("550 5.1.1 x", "h [1.2.3.4]")
    assert split_remote("550 5.1.1 x") == ("550 5.1.1 x", "")


def test_a_report_goes_home_by_the_senders_domain() -> None:
    assert dsn.route_to(CONFIG, "alice@lab.net") == NewRecipient("alice@lab.net", LOCAL)
    assert dsn.route_to(CONFIG, "x@partner.net", lambda a: True).route == LOCAL
    assert dsn.route_to(CONFIG, "x@partner.net", lambda a: False) == NewRecipient(
        "x@partner.net", RELAY, "partner.net"
    )
    assert dsn.route_to(CONFIG, "x@Far.NET") == NewRecipient("x@Far.NET", RELAY, "far.net")


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteQueue]:
    store = SqliteQueue(tmp_path / "queue.db")
    yield store
    store.close()


class Tracked:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def record(self, event_id: str, **fields: object) -> None:
        self.events.append((event_id, fields))


def test_send_reports_one_per_message_none_for_the_null_sender(queue: SqliteQueue) -> None:
    far = [NewRecipient(f"{n}@far.net", RELAY, "far.net") for n in ("bob", "carol", "dan")]
    message = queue.enqueue(NewMessage("alice@lab.net", tuple(far), ORIGINAL))
    bounce = queue.enqueue(NewMessage("", (far[0],), ORIGINAL))
    taken = queue.take_due(time.time() + 1)
    for recipient in taken:
        if recipient.address != "dan@far.net" or recipient.message_id == bounce:
            queue.failed(recipient.message_id, recipient.index, "550 5.1.1 No such user")
    assert len(queue.reports_due()) == 3
    tracking = Tracked()
    [report_id] = dsn.send_reports(queue, CONFIG, tracking=tracking)
    assert queue.reports_due() == []
    report = queue.message(report_id)
    assert report is not None and report.sender == ""
    assert [(r.address, r.route) for r in report.recipients] == [("alice@lab.net", LOCAL)]
    data = queue.message_data(report_id)
    assert data.startswith(b"Received: from MBX01.lab.net (local)\r\n")
    assert f"id {report_id}".encode() in data  # found again after a crash mid-delivery
    _, fields = parse(data)
    assert [f["Final-Recipient"] for f in fields[1:]] == [
        "rfc822; bob@far.net",
        "rfc822; carol@far.net",
    ]
    [(event, fields_of)] = tracking.events
    assert event == "DSN" and fields_of["internal_message_id"] == report_id
    assert fields_of["reference"] == "<m1@lab.net>" and fields_of["recipients"] == ["alice@lab.net"]
    # nothing more is due; a later failure of the same message gets its own report
    assert dsn.send_reports(queue, CONFIG) == []
    [dan] = [r for r in taken if r.address == "dan@far.net" and r.message_id == message]
    queue.failed(dan.message_id, dan.index, "550 5.4.7 Message expired", report=False)
    assert dsn.send_reports(queue, CONFIG) == []  # report=False: Remove-Message -WithNDR $false
