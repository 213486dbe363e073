"""Delivery status notifications (RFC 3464): the non-delivery report a sender gets
when recipients of her message fail for good.

`build` makes the report: a `multipart/report; report-type=delivery-status` message
(RFC 6522) from this organization's postmaster to the original sender, with a
human-readable part, a `message/delivery-status` part (per message: Reporting-MTA,
Arrival-Date; per failed recipient: Final-Recipient, Action: failed, Status,
Remote-MTA when a remote server gave the reply, Diagnostic-Code) and the original
message's header section (`text/rfc822-headers`). Its subject is Exchange's
"Undeliverable: ...".

`send_reports` queues the reports due. A recipient that fails for good is recorded
Failed with its report due, in the same commit (`QueueStore.failed`); the delivery
loop then queues one report per message for all of its recipients due at the time
(several failing together get one report), from the null sender `<>`, and clears
their due mark. A message from the null sender gets no report (RFC 5321 6.1: a
report is never answered by a report). Remove-Message -WithNDR $true goes the same
way (the shell process queues the report itself).

What is promised: a due report is not lost (the due mark and the failure are one
commit, and the mark is cleared only after the report is queued). What remains
possible: a crash between queuing the report and clearing the mark, or the shell and
the transport taking the same due report at the same moment, queues it twice.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header, decode_header, make_header
from email.parser import BytesHeaderParser
from email.utils import format_datetime

from casarray.transport.config import AUTHORITATIVE, TransportConfig
from casarray.transport.headers import header_block, received_header
from casarray.transport.queue import (
    LOCAL,
    RELAY,
    NewMessage,
    NewRecipient,
    QueueStore,
    new_queue_id,
)
from casarray.transport.relay import split_remote
from casarray.transport.tracking import TrackingLog

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")

REPORTS_PER_SWEEP = 200


@dataclass(frozen=True)
class Failure:
    """A recipient that failed for good, and why (its last error: an SMTP reply with
    an enhanced status code, perhaps naming the remote server, `relay.with_remote`)."""

    address: str
    error: str


def status_of(error: str) -> str:
    """The enhanced status code (RFC 3463) of a failure's error: the first in its
    text, else 5.0.0."""
    found = _STATUS.search(error)
    if found is None or found.group(1) != "5":
        return "5.0.0"
    return ".".join(found.groups())


def _header_value(text: str) -> str:
    """`text` fit for one header line: no CR or LF."""
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())


def _encoded(text: str) -> str:
    """A header value as it may be sent: as it is when ASCII, else RFC 2047 words."""
    if text.isascii():
        return text
    return Header(text, "utf-8").encode(linesep="\r\n")


def original_fields(original: bytes) -> tuple[str, str]:
    """The original message's subject (decoded) and Message-ID."""
    headers = BytesHeaderParser().parsebytes(header_block(original))
    subject = str(headers.get("Subject", "") or "")
    with contextlib.suppress(ValueError, LookupError):
        subject = str(make_header(decode_header(subject)))
    return _header_value(subject), _header_value(str(headers.get("Message-ID", "") or ""))


def build(
    *,
    reporting_mta: str,
    postmaster: str,
    sender: str,
    original: bytes,
    arrival: datetime,
    failures: Sequence[Failure],
    now: datetime | None = None,
    message_id: str | None = None,
) -> bytes:
    """The report to `sender` that `failures` of the message `original` (its bytes as
    queued, arrived at `arrival`) failed; CRLF line ends, 7-bit except for what the
    original's headers carry."""
    now = now or datetime.now(UTC)
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    message_id = message_id or f"<{secrets.token_hex(16)}@{reporting_mta}>"
    subject, original_id = original_fields(original)
    lines = [
        f"From: Microsoft Exchange <{postmaster}>",
        f"To: <{_header_value(sender)}>",
        f"Date: {format_datetime(now)}",
        "Subject: " + _encoded(f"Undeliverable: {subject}" if subject else "Undeliverable"),
        f"Message-ID: {message_id}",
    ]
    if original_id:
        lines += [f"In-Reply-To: {original_id}", f"References: {original_id}"]
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "Auto-Submitted: auto-replied",
        "X-MS-Exchange-Message-Is-Ndr:",
        "",
        "This is a delivery status notification in MIME format.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Delivery has failed to these recipients:",
        "",
    ]
    for failure in failures:
        reply, remote = split_remote(failure.error)
        lines.append(f"{failure.address}")
        lines.append(f"    {_header_value(reply)}")
        if remote:
            lines.append(f"    (reported by {remote})")
        lines.append("")
    lines += [
        f"Diagnostic information for administrators: generating server {reporting_mta}.",
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Arrival-Date: {format_datetime(arrival)}",
    ]
    for failure in failures:
        reply, remote = split_remote(failure.error)
        lines += ["", f"Final-Recipient: rfc822; {failure.address}", "Action: failed"]
        lines.append(f"Status: {status_of(reply)}")
        if remote:
            host = remote.split(" ", 1)[0]
            lines.append(f"Remote-MTA: dns; {host}")
        lines.append(f"Diagnostic-Code: smtp; {_header_value(reply)}")
    lines += [
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
    ]
    head = "\r\n".join(lines).encode("utf-8") + b"\r\n"
    headers = header_block(original).replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\n", b"\r\n")
    tail = f"\r\n\r\n--{boundary}--\r\n".encode("ascii")
    return head + headers + tail


def postmaster_of(config: TransportConfig) -> str:
    """postmaster@ the first authoritative accepted domain, else the server's domain."""
    for domain in config.domains:
        if domain.domain_type == AUTHORITATIVE and not domain.domain_name.startswith("*"):
            return f"postmaster@{domain.domain_name}"
    return f"postmaster@{config.fqdn.split('.', 1)[-1]}"


def route_to(
    config: TransportConfig, address: str, exists: Callable[[str], bool | None] | None = None
) -> NewRecipient:
    """The route of a report to `address` (the original sender): local when her domain
    is accepted here (and, for an InternalRelay domain, she has a mailbox), else relay
    to her domain."""
    domain_name = address.rpartition("@")[2].strip().rstrip(".").lower()
    domain = config.domain(domain_name)
    if domain is not None and (
        domain.domain_type == AUTHORITATIVE or (exists is not None and exists(address))
    ):
        return NewRecipient(address, LOCAL)
    return NewRecipient(address, RELAY, domain_name)


def send_reports(
    queue: QueueStore,
    config: TransportConfig,
    *,
    exists: Callable[[str], bool | None] | None = None,
    tracking: TrackingLog | None = None,
    only: Sequence[tuple[str, int]] | None = None,
) -> list[str]:
    """Queue the reports due (those of `only`, else every one due): one per message,
    none for the null sender; clear their due marks. The queue ids of the reports."""
    due = list(only) if only is not None else queue.reports_due(REPORTS_PER_SWEEP)
    by_message: dict[str, set[int]] = {}
    for message_id, index in due:
        by_message.setdefault(message_id, set()).add(index)
    queued = []
    for message_id, indexes in by_message.items():
        done = [(message_id, index) for index in sorted(indexes)]
        message = queue.message(message_id)
        if message is None or not message.sender:
            queue.reported(done)
            continue
        failures = [
            Failure(r.address, r.last_error or "550 5.0.0 Delivery failed")
            for r in message.recipients
            if r.index in indexes
        ]
        original = queue.message_data(message_id)
        queue_id = new_queue_id()
        report_id = f"<{queue_id}@{config.fqdn}>"
        report = build(
            reporting_mta=config.fqdn,
            postmaster=postmaster_of(config),
            sender=message.sender,
            original=original,
            arrival=message.received,
            failures=failures,
            message_id=report_id,
        )
        data = (
            received_header(
                helo=config.fqdn,
                client_address="local",
                by=config.fqdn,
                queue_id=queue_id,
                recipient=message.sender,
                protocol="Local",
                when=datetime.now(UTC),
            )
            + report
        )
        queue.enqueue(
            NewMessage(
                sender="",
                recipients=(route_to(config, message.sender, exists),),
                data=data,
                client_helo=config.fqdn,
                hop_count=1,
                queue_id=queue_id,
            )
        )
        queue.reported(done)
        queued.append(queue_id)
        if tracking is not None:
            _, original_id = original_fields(original)
            tracking.record(
                "DSN",
                internal_message_id=queue_id,
                message_id=report_id,
                sender="",
                recipients=[message.sender],
                source="DSN",
                server_hostname=config.fqdn,
                recipient_status=[f.error for f in failures],
                total_bytes=len(data),
                return_path="<>",
                reference=original_id,
                source_context=f"for {message_id}",
            )
    return queued
