"""Message tracking, as Exchange 2010's Hub Transport keeps it: one line per event of a
message's way through the server (RECEIVE, SUBMIT, DELIVER, SEND, FAIL, DSN, DEFER),
read back by Get-MessageTrackingLog.

Storage is Exchange's. Daily log files `MSGTRK<yyyymmdd>-<n>.LOG` (the UTC date, n from
1) under `$CASARRAY_HOME/transport/<server>/MessageTracking/`, UTF-8, each opening with
W3C-style directives (`#Software`, `#Version`, `#Log-type`, `#Date`, `#Fields`) and then
one comma-separated line per event (quoted by the `csv` module, CRLF ends). Multi-valued
fields (recipient-address, recipient-status, reference) join their values with `;`.
A file full at MessageTrackingLogMaxFileSize (10 MB) is followed by `-<n+1>`; the UTC
day's change starts a new file. Retention (MessageTrackingLogMaxAge, 30 days, and
MessageTrackingLogMaxDirectorySize, 250 MB: the oldest files go first) is applied when
the writer opens its first file and whenever it starts a new one.

Cheap and crash-safe. Every event is one `os.write` of one whole line on an O_APPEND
descriptor, with no fsync and no buffer in the process: several writers (threads, or
processes of the same server) interleave whole lines, and a kill -9 leaves every line
written so far (the operating system has it). A line torn anyway (a power loss, a full
disk) is skipped by the reader, as is any line that doesn't parse. A new file appears
with its directives already in it (written to a temporary name, then hard-linked into
place), so no writer's line ever comes before a file's `#Fields`. Values have CR and LF
made spaces, so that one event is always one physical line.

A failure to write (a full disk, permissions) is logged, once until writing works again,
and never raised: tracking must not fail the mail it describes.

Events and their sources, as Exchange logs them:

- RECEIVE (SMTP): a message committed to the queue by the receive service
  (`track_receive`, called by `receive` after the enqueue).
- SUBMIT (STOREDRIVER): a message from a mailbox handed to the Hub (in Exchange, by the
  Mailbox server's submission service): here web mail's and the API's, which their
  Client Access server submits over SMTP as an Exchange server; logged before its
  RECEIVE (`track_submit`).
- DELIVER (STOREDRIVER): delivered into a mailbox, one event per recipient.
- DEFER (STOREDRIVER or SMTP): an attempt failed for now; the recipient is retried.
- FAIL (STOREDRIVER or SMTP): the recipient failed for good (RecipientStatus says why).
- SEND (SMTP), DSN (DSN): relay to another server, a delivery status notification made.

InternalMessageId is the queue id (`queue.new_queue_id`), which is also in our Received
header.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path
from typing import TYPE_CHECKING

from casarray.transport.headers import header_block

if TYPE_CHECKING:
    from casarray.transport.queue import NewMessage, QueuedRecipient, QueueStore

log = logging.getLogger("casarray.transport")

# Event ids and sources (Exchange 2010's names).
RECEIVE = "RECEIVE"
SUBMIT = "SUBMIT"
DELIVER = "DELIVER"
SEND = "SEND"
FAIL = "FAIL"
DSN = "DSN"
DEFER = "DEFER"
# Every event id Exchange 2010 logs (a search may name any of them).
EVENT_IDS = (
    "BADMAIL",
    DEFER,
    DELIVER,
    DSN,
    "EXPAND",
    FAIL,
    "POISONMESSAGE",
    RECEIVE,
    "REDIRECT",
    "RESOLVE",
    SEND,
    SUBMIT,
    "TRANSFER",
)
SMTP = "SMTP"
STOREDRIVER = "STOREDRIVER"

MB = 1024 * 1024
DEFAULT_MAX_FILE_SIZE = 10 * MB  # MessageTrackingLogMaxFileSize
DEFAULT_MAX_AGE = timedelta(days=30)  # MessageTrackingLogMaxAge
DEFAULT_MAX_DIRECTORY_SIZE = 250 * MB  # MessageTrackingLogMaxDirectorySize

FIELDS = (
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "connector-id",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "recipient-address",
    "recipient-status",
    "total-bytes",
    "recipient-count",
    "related-recipient-address",
    "reference",
    "message-subject",
    "sender-address",
    "return-path",
    "message-info",
)
_FILE = re.compile(r"^MSGTRK(\d{8})-(\d+)\.LOG$", re.IGNORECASE)
KNOWN_MESSAGES = 4096  # messages whose RECEIVE fields are kept for their later events
_CONTROL = re.compile(r"[\r\n\x00]")
_NEEDS_CARE = re.compile(r'[\r\n\x00",]')


def tracking_path(server: str, home: Path | None = None) -> Path:
    """The message tracking folder of `server`: `$CASARRAY_HOME/transport/<server>/
    MessageTracking` (beside its queue, `queue.default_path`)."""
    from casarray.config import casarray_home

    return (home or casarray_home()) / "transport" / server.lower() / "MessageTracking"


def file_name(day: str, number: int) -> str:
    """`MSGTRK20100328-1.LOG` for the UTC day `20100328` and the number 1."""
    return f"MSGTRK{day}-{number}.LOG"


def timestamp_text(when: datetime) -> str:
    """`2010-03-28T09:15:22.123Z`: the time in UTC, to the millisecond."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _clean(value: str) -> str:
    return _CONTROL.sub(" ", value)


def _csv_line(values: Sequence[str]) -> str:
    """One CSV line as the csv module writes it (QUOTE_MINIMAL, CRLF), each value
    cleaned of line breaks first: built directly, as the receive path writes one per
    message (the csv module's writer and a StringIO cost four times as much)."""
    if _NEEDS_CARE.search("".join(values)) is None:
        return ",".join(values) + "\r\n"
    fields = []
    for value in values:
        if _NEEDS_CARE.search(value) is not None:
            value = _clean(value)
            if '"' in value or "," in value:
                value = '"' + value.replace('"', '""') + '"'
        fields.append(value)
    return ",".join(fields) + "\r\n"


def _many(values: Sequence[str]) -> str:
    """A multi-valued field: the values joined with `;` (a `;` inside one made `,`)."""
    return ";".join(_clean(v).replace(";", ",") for v in values)


def _header_value(block: bytes, name: bytes) -> bytes | None:
    """The unfolded value of the first header `name` (lower case, with the colon) in a
    header block."""
    lines = block.split(b"\n")
    for n, line in enumerate(lines):
        if line[: len(name)].lower() == name:
            value = [line[len(name) :].strip()]
            for more in lines[n + 1 :]:
                if more[:1] not in (b" ", b"\t"):
                    break
                value.append(more.strip())
            return b" ".join(v for v in value if v)
    return None


def message_fields(data: bytes) -> tuple[str, str]:
    """(Message-ID, Subject) of a message, from its header section only (the body is
    never looked at); the subject decoded (RFC 2047), "" for what is missing."""
    block = header_block(data)
    raw_id = _header_value(block, b"message-id:")
    message_id = raw_id.decode("utf-8", "replace").strip() if raw_id is not None else ""
    raw_subject = _header_value(block, b"subject:")
    if raw_subject is None:
        return message_id, ""
    subject = raw_subject.decode("utf-8", "replace")
    if "=?" in subject:
        with contextlib.suppress(ValueError, LookupError):
            subject = str(make_header(decode_header(subject)))
    return message_id, " ".join(subject.split())


@dataclass(frozen=True)
class TrackingEvent:
    """One line of the message tracking log."""

    timestamp: datetime  # UTC
    event_id: str
    source: str = ""
    internal_message_id: str = ""
    message_id: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    recipient_status: tuple[str, ...] = ()
    total_bytes: int = 0
    recipient_count: int = 0
    client_ip: str = ""
    client_hostname: str = ""
    server_ip: str = ""
    server_hostname: str = ""
    source_context: str = ""
    connector_id: str = ""
    related_recipient_address: str = ""
    reference: tuple[str, ...] = ()
    message_subject: str = ""
    return_path: str = ""
    message_info: str = ""


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(";") if v)


def _int(value: str) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _event(row: dict[str, str]) -> TrackingEvent | None:
    stamp = row.get("date-time", "")
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return TrackingEvent(
        timestamp=when,
        event_id=row.get("event-id", ""),
        source=row.get("source", ""),
        internal_message_id=row.get("internal-message-id", ""),
        message_id=row.get("message-id", ""),
        sender=row.get("sender-address", ""),
        recipients=_split(row.get("recipient-address", "")),
        recipient_status=_split(row.get("recipient-status", "")),
        total_bytes=_int(row.get("total-bytes", "")),
        recipient_count=_int(row.get("recipient-count", "")),
        client_ip=row.get("client-ip", ""),
        client_hostname=row.get("client-hostname", ""),
        server_ip=row.get("server-ip", ""),
        server_hostname=row.get("server-hostname", ""),
        source_context=row.get("source-context", ""),
        connector_id=row.get("connector-id", ""),
        related_recipient_address=row.get("related-recipient-address", ""),
        reference=_split(row.get("reference", "")),
        message_subject=row.get("message-subject", ""),
        return_path=row.get("return-path", ""),
        message_info=row.get("message-info", ""),
    )


@dataclass(frozen=True)
class _LogFile:
    path: Path
    day: str
    number: int


class TrackingLog:
    """The message tracking log of one Hub Transport server: `record` appends an event
    (from any thread; any number of processes may write the same folder), `search`
    reads events back. Nothing is created until the first `record` (or `open`)."""

    def __init__(
        self,
        server: str,
        home: Path | None = None,
        *,
        max_file_size: int = DEFAULT_MAX_FILE_SIZE,
        max_age: timedelta | None = DEFAULT_MAX_AGE,
        max_directory_size: int | None = DEFAULT_MAX_DIRECTORY_SIZE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.server = server
        self.path = tracking_path(server, home)
        self.max_file_size = max_file_size
        self.max_age = max_age
        self.max_directory_size = max_directory_size
        self.clock = clock
        self._lock = threading.Lock()
        # what RECEIVE read of each message, for its DELIVER/DEFER/FAIL lines (so those
        # read nothing back from the queue): queue id -> (Message-ID, subject, sender,
        # size), the latest KNOWN_MESSAGES
        self._known: collections.OrderedDict[str, tuple[str, str, str, int]] = (
            collections.OrderedDict()
        )
        self._fd = -1
        self._day = ""
        self._full = False
        self._failing = False

    # -- what RECEIVE saw ----------------------------------------------------------------

    def remember(self, queue_id: str, fields: tuple[str, str, str, int]) -> None:
        with self._lock:
            self._known[queue_id] = fields
            if len(self._known) > KNOWN_MESSAGES:
                self._known.popitem(last=False)

    def known(self, queue_id: str) -> tuple[str, str, str, int] | None:
        """(Message-ID, subject, sender, size) of a message this process received."""
        with self._lock:
            return self._known.get(queue_id)

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        event_id: str,
        *,
        internal_message_id: str,
        message_id: str = "",
        sender: str = "",
        recipients: Sequence[str] = (),
        source: str = "SMTP",
        client_ip: str = "",
        server_ip: str = "",
        server_hostname: str = "",
        connector_id: str = "",
        recipient_status: Sequence[str] = (),
        total_bytes: int = 0,
        message_subject: str = "",
        return_path: str = "",
        reference: str = "",
        source_context: str = "",
        client_hostname: str = "",
        related_recipient_address: str = "",
        message_info: str = "",
    ) -> None:
        """Append one event (never raises for a failed write: it is logged)."""
        now = self.clock()
        values = {
            "date-time": timestamp_text(now),
            "client-ip": client_ip,
            "client-hostname": client_hostname,
            "server-ip": server_ip,
            "server-hostname": server_hostname,
            "source-context": source_context,
            "connector-id": connector_id,
            "source": source,
            "event-id": event_id,
            "internal-message-id": internal_message_id,
            "message-id": message_id,
            "recipient-address": _many(recipients),
            "recipient-status": _many(recipient_status),
            "total-bytes": str(total_bytes),
            "recipient-count": str(len(recipients)),
            "related-recipient-address": related_recipient_address,
            "reference": reference,
            "message-subject": message_subject,
            "sender-address": sender,
            "return-path": return_path,
            "message-info": message_info,
        }
        line = _csv_line([values[f] for f in FIELDS]).encode("utf-8", "surrogateescape")
        day = now.astimezone(UTC).strftime("%Y%m%d")
        with self._lock:
            try:
                if self._fd < 0 or self._full or day != self._day:
                    self._roll(day)
                written = os.write(self._fd, line)
                if written < len(line):  # a full disk: end the torn line
                    os.write(self._fd, b"\r\n")
                    raise OSError(f"only {written} of {len(line)} bytes were written")
                if os.lseek(self._fd, 0, os.SEEK_CUR) >= self.max_file_size:
                    self._full = True
            except OSError as exc:
                self._close()
                if not self._failing:
                    self._failing = True
                    log.warning(
                        "%s: the message tracking log can't be written (%s): %s",
                        self.server,
                        self.path,
                        exc,
                    )
                return
            if self._failing:
                self._failing = False
                log.info("%s: the message tracking log is written again", self.server)

    def open(self) -> None:
        """Open today's file now (and apply retention) rather than at the first event;
        OSError when the folder can't be written."""
        with self._lock:
            self._roll(self.clock().astimezone(UTC).strftime("%Y%m%d"))

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1

    def _roll(self, day: str) -> None:
        """Open the file to append to for `day`: its last one, or the next when that is
        full; a new one is made with its directives. Retention runs first."""
        self._close()
        self.path.mkdir(parents=True, exist_ok=True)
        self.apply_retention()
        numbers = [f.number for f in self.files() if f.day == day]
        number = max(numbers, default=1)
        while True:
            path = self.path / file_name(day, number)
            fd = self._open_or_create(path)
            if os.fstat(fd).st_size < self.max_file_size:
                break
            os.close(fd)
            number += 1
        self._fd, self._day, self._full = fd, day, False

    def _open_or_create(self, path: Path) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        with contextlib.suppress(FileNotFoundError):
            return os.open(path, flags)
        now = self.clock()
        header = (
            "#Software: casarray\r\n"
            "#Version: 14.0.0.0\r\n"
            "#Log-type: Message Tracking Log\r\n"
            f"#Date: {timestamp_text(now)}\r\n"
            f"#Fields: {','.join(FIELDS)}\r\n"
        ).encode("ascii")
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, header)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)  # appears whole, directives first
        except FileExistsError:
            pass  # another writer made it meanwhile
        finally:
            temporary.unlink(missing_ok=True)
        return os.open(path, flags)

    def apply_retention(self) -> list[Path]:
        """Remove the files older than max_age (by their last write), then the oldest
        while the folder is over max_directory_size; the removed files."""
        removed: list[Path] = []
        cutoff = (self.clock() - self.max_age).timestamp() if self.max_age is not None else None
        kept: list[tuple[float, int, Path]] = []
        for one in self.files():
            try:
                info = one.path.stat()
            except FileNotFoundError:
                continue
            if cutoff is not None and info.st_mtime < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    one.path.unlink()
                removed.append(one.path)
            else:
                kept.append((info.st_mtime, info.st_size, one.path))
        if self.max_directory_size is not None:
            total = sum(size for _, size, _ in kept)
            for _, size, path in sorted(kept)[:-1]:  # never today's last file
                if total <= self.max_directory_size:
                    break
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed.append(path)
                total -= size
        for path in removed:
            log.info("%s: message tracking log %s removed (retention)", self.server, path.name)
        return removed

    # -- reading -------------------------------------------------------------------------

    def files(self) -> list[_LogFile]:
        """The log files, oldest first."""
        try:
            names = os.listdir(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for name in names:
            match = _FILE.match(name)
            if match:
                found.append(_LogFile(self.path / name, match.group(1), int(match.group(2))))
        return sorted(found, key=lambda f: (f.day, f.number))

    def exists(self) -> bool:
        return self.path.is_dir()

    def search(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        event_ids: Collection[str] = (),
        sender: str | None = None,
        recipients: Collection[str] = (),
        message_id: str | None = None,
        internal_message_id: str | None = None,
        message_subject: str | None = None,
        limit: int | None = None,
    ) -> Iterator[TrackingEvent]:
        """The events that match every filter given, oldest first: from `start` to `end`
        (both included; aware datetimes), any of `event_ids`, this envelope `sender`, any
        of `recipients`, this Message-ID and InternalMessageId (all compared without
        regard to case), a subject containing `message_subject`; at most `limit`."""
        start = start.astimezone(UTC) if start is not None else None  # naive: local time
        end = end.astimezone(UTC) if end is not None else None
        wanted_events = {e.upper() for e in event_ids}
        wanted_recipients = {r.strip().lower() for r in recipients}
        needles = [
            n.strip().lower() for n in (sender, message_id, internal_message_id) if n is not None
        ]
        subject = message_subject.lower() if message_subject is not None else None
        first = _day_text(start.date() - timedelta(days=1)) if start else ""
        last = _day_text(end.date() + timedelta(days=1)) if end else ""
        count = 0
        for one in self.files():
            if (first and one.day < first) or (last and one.day > last):
                continue
            for event in _read(one.path, needles):
                if start is not None and event.timestamp < start:
                    continue
                if end is not None and event.timestamp > end:
                    continue
                if wanted_events and event.event_id.upper() not in wanted_events:
                    continue
                if sender is not None and event.sender.lower() != sender.strip().lower():
                    continue
                if wanted_recipients and not wanted_recipients & {
                    r.lower() for r in event.recipients
                }:
                    continue
                if message_id is not None and (
                    event.message_id.lower() != message_id.strip().lower()
                ):
                    continue
                if internal_message_id is not None and (
                    event.internal_message_id.lower() != internal_message_id.strip().lower()
                ):
                    continue
                if subject is not None and subject not in event.message_subject.lower():
                    continue
                yield event
                count += 1
                if limit is not None and count >= limit:
                    return


def _day_text(day: date) -> str:
    return day.strftime("%Y%m%d")


def _read(path: Path, needles: Sequence[str]) -> Iterator[TrackingEvent]:
    """The events of one file: lines that don't end (the last, torn) or don't parse are
    skipped; lines without every needle (lower case) are not parsed at all."""
    fields: Sequence[str] = FIELDS
    try:
        handle = path.open("rb")
    except FileNotFoundError:  # removed by retention meanwhile
        return
    with handle:
        for raw in handle:
            if not raw.endswith(b"\n"):
                return  # torn (or still being written)
            line = raw.decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
            if line.startswith("#"):
                if line.startswith("#Fields:"):
                    fields = [f.strip() for f in line[len("#Fields:") :].split(",")]
                continue
            if needles:
                lowered = line.lower()
                if not all(n in lowered for n in needles):
                    continue
            try:
                values = next(csv.reader([line]))
            except (csv.Error, StopIteration):
                continue
            if len(values) != len(fields):
                continue
            event = _event(dict(zip(fields, values, strict=True)))
            if event is not None:
                yield event


# -- the transport's events ---------------------------------------------------------------


def track_receive(
    tracking: TrackingLog,
    message: NewMessage,
    *,
    connector_id: str,
    server_ip: str = "",
    server_hostname: str = "",
) -> None:
    """RECEIVE for a message the receive service has just queued (its headers read from
    the header section only). Never raises."""
    try:
        message_id, subject = message_fields(message.data)
        tracking.remember(
            message.queue_id, (message_id, subject, message.sender, len(message.data))
        )
        tracking.record(
            RECEIVE,
            internal_message_id=message.queue_id,
            message_id=message_id,
            sender=message.sender,
            recipients=[r.address for r in message.recipients],
            source=SMTP,
            client_ip=message.client_address,
            client_hostname=message.client_helo,
            server_ip=server_ip,
            server_hostname=server_hostname,
            connector_id=connector_id,
            total_bytes=len(message.data),
            message_subject=subject,
            return_path=message.sender,
        )
    except Exception:
        log.exception("%s: RECEIVE of %s wasn't tracked", tracking.server, message.queue_id)


def track_submit(
    tracking: TrackingLog,
    *,
    internal_message_id: str,
    data: bytes,
    sender: str,
    recipients: Sequence[str],
    server_hostname: str = "",
    source_context: str = "",
) -> None:
    """SUBMIT: a message submitted from a mailbox (source STOREDRIVER), as Exchange's
    store driver logs a mailbox's submission: the receive service records it, before
    RECEIVE, when a Client Access server hands over a message its web mail or API sent
    (the session authenticated as the server's computer account)."""
    try:
        message_id, subject = message_fields(data)
        tracking.record(
            SUBMIT,
            internal_message_id=internal_message_id,
            message_id=message_id,
            sender=sender,
            recipients=recipients,
            source=STOREDRIVER,
            server_hostname=server_hostname,
            total_bytes=len(data),
            message_subject=subject,
            return_path=sender,
            source_context=source_context,
        )
    except Exception:
        log.exception("%s: SUBMIT of %s wasn't tracked", tracking.server, internal_message_id)


def track_recipient(
    tracking: TrackingLog,
    queue: QueueStore,
    event_id: str,
    recipient: QueuedRecipient,
    *,
    source: str = STOREDRIVER,
    status: str = "",
    data: bytes | None = None,
    server_hostname: str = "",
) -> None:
    """DELIVER, DEFER or FAIL of one recipient of a queued message (its envelope read
    from the queue, its headers from `data` when the caller has the bytes). Never
    raises."""
    try:
        known = tracking.known(recipient.message_id)
        if known is None:
            message = queue.message(recipient.message_id)
            if data is None:
                data = queue.message_data(recipient.message_id) if message is not None else b""
            message_id, subject = message_fields(data)
            sender = message.sender if message is not None else ""
            size = message.size if message is not None else len(data)
            known = (message_id, subject, sender, size)
            tracking.remember(recipient.message_id, known)
        message_id, subject, sender, size = known
        tracking.record(
            event_id,
            internal_message_id=recipient.message_id,
            message_id=message_id,
            sender=sender,
            recipients=[recipient.address],
            source=source,
            server_hostname=server_hostname,
            recipient_status=[status] if status else (),
            total_bytes=size,
            message_subject=subject,
            return_path=sender,
        )
    except Exception:
        log.exception(
            "%s: %s of %s to %s wasn't tracked",
            tracking.server,
            event_id,
            recipient.message_id,
            recipient.address,
        )
