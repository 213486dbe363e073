"""Get-MessageTrackingLog, with Exchange 2010's parameters and output: the events of a
Hub Transport server's message tracking log (`transport.tracking`), read from its files
under $CASARRAY_HOME (the folder its running transport process names in its status
file, else the default one).

    Get-MessageTrackingLog -Server MBX01 -Sender bob@lab.net -Start "3/28/2010 9:00AM"
    Get-MessageTrackingLog -MessageId "<1234@lab.net>" | Format-List
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from casarray.directory.errors import InvalidValueError
from casarray.directory.objects import ServerRole
from casarray.errors import CasarrayError
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.mailboxes import DEFAULT_RESULT_SIZE, parse_result_size
from casarray.shell.cmdlets.transport.common import server_ref
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view
from casarray.transport.tracking import EVENT_IDS, TrackingEvent, TrackingLog, tracking_path
from casarray.transport.transport_process import read_status

EVENT_TYPE = "Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent"

# Exchange 2010's default table.
register_view(EVENT_TYPE, ("EventId", "Source", "Sender", "Recipients", "MessageSubject"))

# The date forms an administrator types (.NET's en-US ones), besides ISO 8601.
DATE_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S%p",
    "%m/%d/%Y %I:%M%p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y",
)


class TrackingLogUnavailableError(CasarrayError):
    """A Hub Transport server has no message tracking log to read."""

    category = "ResourceUnavailable"


def log_path(server: str) -> Path:
    """Where `server`'s message tracking log is: what its running transport process says,
    else the default folder under $CASARRAY_HOME."""
    status = read_status(server)
    if status and status.get("message_tracking"):
        return Path(str(status["message_tracking"]))
    return tracking_path(server)


def open_log(server: str) -> TrackingLog:
    """A reader of `server`'s log (never creating anything)."""
    log = TrackingLog(server)
    log.path = log_path(server)
    return log


def parse_date(parameter: str, value: Any) -> datetime:
    """-Start and -End: a date (Get-Date), ISO 8601 text, or "3/28/2010 9:00AM" as
    Exchange's examples write it; a date without an offset is local time."""
    if isinstance(value, PSObject):
        value = value.base
    if isinstance(value, datetime):
        return value
    text = " ".join(str(value).split())
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in DATE_FORMATS:
        try:
            return datetime.strptime(text.upper(), form)
        except ValueError:
            continue
    raise InvalidValueError(
        parameter,
        value,
        'isn\'t a date: use "3/28/2010 9:00AM", 2010-03-28T09:00, or (Get-Date -Hour 9 -Minute 0).',
    )


def event_object(server: str, event: TrackingEvent) -> PSObject:
    return PSObject(
        {
            "Timestamp": event.timestamp,
            "ClientIp": event.client_ip,
            "ClientHostname": event.client_hostname,
            "ServerIp": event.server_ip,
            "ServerHostname": event.server_hostname,
            "SourceContext": event.source_context,
            "ConnectorId": event.connector_id,
            "Source": event.source,
            "EventId": event.event_id,
            "InternalMessageId": event.internal_message_id,
            "MessageId": event.message_id,
            "Recipients": list(event.recipients),
            "RecipientStatus": list(event.recipient_status),
            "TotalBytes": event.total_bytes,
            "RecipientCount": event.recipient_count,
            "RelatedRecipientAddress": event.related_recipient_address,
            "Reference": list(event.reference) or None,
            "MessageSubject": event.message_subject,
            "Sender": event.sender,
            "ReturnPath": event.return_path,
            "MessageInfo": event.message_info,
        },
        type_name=EVENT_TYPE,
        base=event,
        display=f"{server} {event.event_id} {event.internal_message_id}",
    )


@register
class GetMessageTrackingLog(Cmdlet):
    name = "Get-MessageTrackingLog"
    parameters = (
        Parameter(
            "Server",
            kind="identity",
            identity_of="server",
            from_pipeline_by_name=True,
            help="The Hub Transport server whose log is searched (default: every one whose "
            "log is on this machine).",
        ),
        Parameter("Sender", help="Only events of messages from this envelope sender."),
        Parameter(
            "Recipients",
            kind="strings",
            help="Only events for any of these recipient addresses.",
        ),
        Parameter(
            "EventId",
            help="Only events of this kind: RECEIVE, SUBMIT, DELIVER, SEND, FAIL, DSN, "
            "DEFER (and Exchange's other event ids).",
        ),
        Parameter("MessageId", help="Only events of the message with this Message-ID header."),
        Parameter(
            "InternalMessageId",
            help="Only events of the message with this id on the server (its queue id).",
        ),
        Parameter("MessageSubject", help="Only events of messages whose subject contains this."),
        Parameter("Start", kind="object", help="Only events from this date and time on."),
        Parameter("End", kind="object", help="Only events up to this date and time."),
        Parameter(
            "ResultSize",
            help=f"How many events at most (default {DEFAULT_RESULT_SIZE}), or Unlimited.",
        ),
    )
    synopsis = "Searches the message tracking log of Hub Transport servers."
    description = (
        "Gets the events of messages on their way through Hub Transport servers: RECEIVE "
        "(queued by the SMTP receive service: ConnectorId names the receive connector), "
        "DELIVER (put into a mailbox), DEFER (delivery failed for now and is retried), "
        "FAIL (failed for good: RecipientStatus says why), SEND and DSN (relay and status "
        "notifications). The filters given must all match; Recipients matches an event "
        "with any of the addresses, MessageSubject any subject containing the text. Dates "
        "without an offset are local time. The first "
        f"{DEFAULT_RESULT_SIZE} events are returned unless -ResultSize says otherwise. "
        "Without -Server, every Hub Transport server whose log is on this machine is "
        "searched."
    )
    examples = (
        Example(
            'Get-MessageTrackingLog -Server MBX01 -Start "3/28/2010 9:00AM" '
            '-End "3/28/2010 5:00PM" -Sender "john@contoso.com"',
            "Lists the events of messages john sent on March 28 during the day.",
        ),
        Example(
            'Get-MessageTrackingLog -MessageId "<1234@lab.net>" | Format-List',
            "Shows every event of one message, with all its fields.",
        ),
        Example(
            "Get-MessageTrackingLog -EventId FAIL -ResultSize Unlimited",
            "Lists every recipient that failed.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        event_id = params.get("EventId")
        if event_id is not None:
            event_id = str(event_id).strip().upper()
            if event_id not in EVENT_IDS:
                raise InvalidValueError(
                    "EventId",
                    params["EventId"],
                    f"isn't a message tracking event id: use one of {', '.join(EVENT_IDS)}.",
                )
        start = parse_date("Start", params["Start"]) if "Start" in params else None
        end = parse_date("End", params["End"]) if "End" in params else None
        if start is not None and end is not None and start.astimezone() > end.astimezone():
            raise InvalidValueError(
                "End", params["End"], f"is before the start ({params['Start']})."
            )
        limit = parse_result_size(params.get("ResultSize"))
        server = params.get("Server")
        logs = [self._one(server)] if server is not None else list(self._every())
        found = 0
        for name, log in logs:
            wanted = None if limit is None else limit - found + 1
            for event in log.search(
                start=start,
                end=end,
                event_ids=(event_id,) if event_id else (),
                sender=params.get("Sender"),
                recipients=params.get("Recipients") or (),
                message_id=params.get("MessageId"),
                internal_message_id=params.get("InternalMessageId"),
                message_subject=params.get("MessageSubject"),
                limit=wanted,
            ):
                if limit is not None and found >= limit:
                    self._warn_more(params)
                    return
                found += 1
                yield event_object(name, event)

    def _one(self, server: Any) -> tuple[str, TrackingLog]:
        name = self.directory.transport.server_settings(server_ref(server)).server
        log = open_log(name)
        if not log.exists():
            raise TrackingLogUnavailableError(
                f"The Hub Transport server '{name}' has no message tracking log yet: its "
                f"transport service hasn't run (start it with: casarray transport run {name}).",
                target=name,
            )
        return name, log

    def _every(self) -> Iterator[tuple[str, TrackingLog]]:
        for server in self.directory.servers.get(role=ServerRole.HubTransport):
            log = open_log(server.name)
            if log.exists():
                yield server.name, log

    def _warn_more(self, params: Mapping[str, Any]) -> None:
        if params.get("ResultSize") is None:
            self.write_warning(
                f"By default only the first {DEFAULT_RESULT_SIZE} items are returned. Use the "
                "ResultSize parameter to specify the number of items returned. To return all "
                'items, specify "-ResultSize Unlimited".'
            )
        else:
            self.write_warning(
                "There are more results available than are currently displayed. To view "
                "them, increase the value for the ResultSize parameter."
            )
