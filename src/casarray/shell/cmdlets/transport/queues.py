"""The queue viewer's cmdlets, with Exchange 2010's names: Get-Queue, Get-Message,
Retry-Queue, Suspend-/Resume-Queue, Suspend-/Resume-Message, Remove-Message.

They read and change a Hub Transport server's queue store (`transport.queue`): the one
its running transport process names in its status file, else the default file under
$CASARRAY_HOME. The store keeps recipients, each on a route (Local: into a mailbox
database; Relay: to another domain) and a next hop; a queue here is the waiting
recipients of one route and next hop, as Exchange 2010 keeps one delivery queue per
next hop: a mailbox delivery queue per mailbox database (a local recipient whose
address no mailbox has any more waits under its domain), a queue per domain for
relay:

    MBX01\\Submission   Undefined             (messages are routed as they are received,
                                             so it is always empty)
    MBX01\\1            MapiDelivery          db01
    MBX01\\2            SmartHostConnectorDelivery  contoso.com

Delivery queues are numbered in the order of their route and next hop, so a number
names a queue only while the queues before it exist; `SERVER\\NextHopDomain` names one
for good (Exchange takes that form too). A message's identity is
`SERVER\\Queue\\QueueId` (the store's 16-digit queue id); a message with recipients in
two queues shows once in each, as in Exchange.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from casarray.directory.errors import (
    AmbiguousIdentityError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.objects import ServerRole
from casarray.directory.quotas import format_size
from casarray.errors import CasarrayError
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.transport.common import server_ref
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view
from casarray.transport.dsn import send_reports
from casarray.transport.queue import (
    LOCAL,
    PENDING,
    READY,
    RETRY,
    SUSPENDED,
    QueuedMessage,
    QueuedRecipient,
    QueueError,
    SqliteQueue,
    default_path,
)
from casarray.transport.queue_stores import open_queue
from casarray.transport.transport_process import read_status

QUEUE_TYPE = "Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo"
MESSAGE_TYPE = "Microsoft.Exchange.Data.QueueViewer.ExtensibleMessageInfo"

# Exchange 2010's default tables.
register_view(QUEUE_TYPE, ("Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain"))
register_view(MESSAGE_TYPE, ("Identity", "FromAddress", "Status", "Queue", "Subject"))

SUBMISSION = "Submission"
QUEUED = (*PENDING, SUSPENDED)  # the recipient states that are in a queue

# Exchange's text for a message an administrator deleted ("QUEUE.Admin")
REMOVED = (
    "550 4.3.2 QUEUE.Admin; message deleted by administrative action "
    "(Remove-Message -WithNDR ${}): {}"
)
NDR_DUE = "a non-delivery report is due to the sender"
NO_NDR = "no non-delivery report"


class QueueUnavailableError(CasarrayError):
    """A Hub Transport server has no queue store to read."""

    category = "ResourceUnavailable"


# -- the server's queue store ------------------------------------------------------------


def queue_url(server: str) -> str:
    """Where `server`'s queue is: what its running transport process says (a SQLite
    file or a PostgreSQL database), else the default file under $CASARRAY_HOME."""
    status = read_status(server)
    if status and status.get("queue_url"):
        return str(status["queue_url"])
    return f"sqlite:///{default_path(server)}"


def open_store(server: str) -> SqliteQueue:
    """The queue store of the Hub Transport server `server` (its name as the directory
    has it); QueueUnavailableError when it has none yet (it is never created here)."""
    url = queue_url(server)
    if not url.startswith("sqlite:///"):
        try:
            return open_queue(server, url)
        except QueueError as exc:
            raise QueueUnavailableError(str(exc), target=server) from exc
    path = Path(url[len("sqlite:///") :])
    if not path.is_file():
        raise QueueUnavailableError(
            f"The Hub Transport server '{server}' has no queue yet: its transport service "
            f"hasn't run (start it with: casarray transport run {server}).",
            target=server,
        )
    return SqliteQueue(path)


# -- the queues as Exchange shows them ---------------------------------------------------


def hop_of(recipient: QueuedRecipient) -> str:
    """The next hop the store groups a recipient by: its next hop, else its domain."""
    hop = recipient.next_hop or recipient.address.rpartition("@")[2]
    return hop.lower()


@dataclass
class QueueView:
    server: str
    name: str
    delivery_type: str
    next_hop: str
    next_hop_connector: str = ""
    key: tuple[str, str] | None = None  # (route, next hop); None for Submission
    members: frozenset[tuple[str, int]] = frozenset()  # its recipients (message id, index)
    status: str = "Ready"
    last_error: str = ""
    next_retry: datetime | None = None
    messages: list[QueuedMessage] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return f"{self.server}\\{self.name}"

    def recipients(self, message: QueuedMessage) -> list[QueuedRecipient]:
        """The message's recipients waiting in this queue."""
        return [r for r in message.recipients if (r.message_id, r.index) in self.members]

    def matches(self, name: str) -> bool:
        wanted = name.strip().lower()
        return wanted == self.name.lower() or (self.key is not None and wanted == self.next_hop)


@dataclass(frozen=True)
class MessageView:
    queue: QueueView
    message: QueuedMessage
    recipients: tuple[QueuedRecipient, ...]

    @property
    def identity(self) -> str:
        return f"{self.queue.identity}\\{self.message.message_id}"


class ServerQueues:
    """One Hub Transport server's queues, read once from its store."""

    def __init__(self, cmdlet: Cmdlet, server: str, store: SqliteQueue) -> None:
        self.server = server
        self.store = store
        messages = store.messages()
        in_flight = {(r.message_id, r.index) for r in store.in_flight()}
        self.in_flight = in_flight
        submission = QueueView(server, SUBMISSION, "Undefined", SUBMISSION.lower())
        self.queues: list[QueueView] = [submission]
        databases: dict[str, str] = {}
        groups: dict[tuple[str, str], list[QueuedRecipient]] = {}
        for message in messages:
            for r in message.recipients:
                if r.state in QUEUED:
                    key = (r.route, self._next_hop(cmdlet, r, databases))
                    groups.setdefault(key, []).append(r)
        for number, key in enumerate(sorted(groups), start=1):
            route, next_hop = key
            members = groups[key]
            retrying = [r for r in members if r.state == RETRY and r.next_attempt is not None]
            errors = [r.last_error for r in members if r.last_error]
            view = QueueView(
                server,
                str(number),
                "MapiDelivery" if route == LOCAL else "Undefined",
                next_hop,
                key=key,
                members=frozenset((r.message_id, r.index) for r in members),
                last_error=errors[-1] if errors else "",
                next_retry=(
                    datetime.fromtimestamp(min(r.next_attempt or 0.0 for r in retrying), UTC)
                    if retrying
                    else None
                ),
            )
            if route != LOCAL:
                connector = cmdlet.directory.transport.route_for(next_hop, server)
                if connector is None:
                    view.delivery_type = "Undefined"
                else:
                    view.next_hop_connector = connector.name
                    view.delivery_type = (
                        "DnsConnectorDelivery"
                        if connector.dns_routing_enabled
                        else "SmartHostConnectorDelivery"
                    )
            view.messages = [m for m in messages if view.recipients(m)]
            states = {r.state for m in view.messages for r in view.recipients(m)}
            busy = any(
                (r.message_id, r.index) in in_flight
                for m in view.messages
                for r in view.recipients(m)
            )
            if states == {SUSPENDED}:
                view.status = "Suspended"
            elif busy:
                view.status = "Active"
            elif RETRY in states:
                view.status = "Retry"
            self.queues.append(view)

    @staticmethod
    def _next_hop(cmdlet: Cmdlet, recipient: QueuedRecipient, databases: dict[str, str]) -> str:
        """A recipient's next hop as Exchange's queues show it: the mailbox database of
        a local recipient (its mailbox delivery queue; the domain when no mailbox has
        the address), the domain of a relayed one."""
        if recipient.route != LOCAL:
            return hop_of(recipient)
        address = recipient.address.strip().lower()
        if address not in databases:
            try:
                mailbox = cmdlet.directory.mailboxes.one(address)
            except CasarrayError:
                databases[address] = hop_of(recipient)
            else:
                found = mailbox.primary_smtp_address.lower() == address and mailbox.database
                databases[address] = str(found).lower() if found else hop_of(recipient)
        return databases[address]

    def queue(self, name: str, identity: str) -> QueueView:
        found = [q for q in self.queues if q.matches(name)]
        if not found:
            raise NotFoundError("queue", identity)
        return found[0]

    def message_views(self, queue: QueueView) -> list[MessageView]:
        return [MessageView(queue, m, tuple(queue.recipients(m))) for m in queue.messages]

    def message_status(self, view: MessageView) -> str:
        if any((r.message_id, r.index) in self.in_flight for r in view.recipients):
            return "Active"
        states = {r.state for r in view.recipients}
        if states == {SUSPENDED}:
            return "Suspended"
        return RETRY if RETRY in states else READY


def identity_text(value: Any) -> str:
    """An identity as written, or the identity of a queue or message piped in."""
    base = value.base if isinstance(value, PSObject) else value
    return base.identity if isinstance(base, (QueueView, MessageView)) else str(value)


def split_identity(value: Any, parts: int, parameter: str, form: str) -> list[str]:
    """`SERVER\\Queue` (parts=2) or `SERVER\\Queue\\Id` (parts=3) split, with a clear
    error when it has another shape."""
    text = identity_text(value)
    pieces = [p.strip() for p in text.split("\\")]
    if len(pieces) != parts or not all(pieces):
        raise InvalidValueError(parameter, text, f"isn't a valid identity: use {form}.")
    return pieces


# -- the objects -------------------------------------------------------------------------


def queue_object(queue: QueueView) -> PSObject:
    return PSObject(
        {
            "Identity": queue.identity,
            "DeliveryType": queue.delivery_type,
            "Status": queue.status,
            "MessageCount": len(queue.messages),
            "NextHopDomain": queue.next_hop,
            "NextHopConnector": queue.next_hop_connector,
            "NextHopCategory": (
                "Internal" if queue.key is None or queue.key[0] == LOCAL else "External"
            ),
            "LastError": queue.last_error,
            "NextRetryTime": queue.next_retry,
        },
        type_name=QUEUE_TYPE,
        base=queue,
        display=queue.identity,
    )


def _headers(data: bytes) -> tuple[str, str]:
    """The message's Subject (decoded) and Message-ID."""
    headers = BytesHeaderParser().parsebytes(data)
    subject = headers.get("Subject", "")
    try:
        subject = str(make_header(decode_header(str(subject))))
    except (ValueError, LookupError):
        subject = str(subject)
    return " ".join(subject.split()), str(headers.get("Message-ID", "")).strip()


def message_object(queues: ServerQueues, view: MessageView) -> PSObject:
    message = view.message
    subject, message_id = _headers(queues.store.message_data(message.message_id))
    errors = [r.last_error for r in view.recipients if r.last_error]
    return PSObject(
        {
            "Identity": view.identity,
            "FromAddress": message.sender or "<>",
            "Status": queues.message_status(view),
            "Size": format_size(message.size),
            "SCL": -1 if message.authenticated_as else 0,
            "Queue": view.queue.identity,
            "MessageSourceName": "SMTP",
            "SourceIP": message.client_address,
            "Subject": subject,
            "InternetMessageId": message_id,
            "LastError": errors[-1] if errors else "",
            "RetryCount": max((r.attempts for r in view.recipients), default=0),
            "Recipients": [r.address for r in view.recipients],
            "DateReceived": message.received,
        },
        type_name=MESSAGE_TYPE,
        base=view,
        display=view.identity,
    )


# -- what the cmdlets share ---------------------------------------------------------------


class QueueCmdlet(Cmdlet):
    """Opens the stores of the servers a cmdlet names and closes them after."""

    def hub(self, server: Any) -> str:
        """The Hub Transport server's name as the directory has it (NotFoundError, or
        NotHubTransportServerError for a server without the role)."""
        return self.directory.transport.server_settings(server_ref(server)).server

    def server_queues(self, server: Any) -> ServerQueues:
        name = self.hub(server)
        store = open_store(name)
        try:
            return ServerQueues(self, name, store)
        except BaseException:
            store.close()
            raise

    def every_server(self) -> Iterator[ServerQueues]:
        """Every Hub Transport server that has a queue (those whose transport never ran
        have none, and no queues to show)."""
        for server in self.directory.servers.get(role=ServerRole.HubTransport):
            url = queue_url(server.name)
            if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
                continue
            queues = self.server_queues(server.name)
            try:
                yield queues
            finally:
                queues.store.close()

    def one_queue(self, identity: Any) -> tuple[ServerQueues, QueueView]:
        """The server's queues (open: close them) and the queue `identity` names."""
        server, name = split_identity(identity, 2, "Identity", "SERVER\\QueueName")
        queues = self.server_queues(server)
        try:
            return queues, queues.queue(name, f"{queues.server}\\{name}")
        except BaseException:
            queues.store.close()
            raise

    def one_message(self, identity: Any) -> tuple[ServerQueues, MessageView]:
        """The server's queues (open: close them) and the message `identity` names:
        SERVER\\Queue\\Id, or SERVER\\Id when the message is in one queue only."""
        text = identity_text(identity)
        pieces = [p.strip() for p in text.split("\\")]
        if len(pieces) not in (2, 3) or not all(pieces):
            raise InvalidValueError(
                "Identity", text, "isn't a valid message identity: use SERVER\\QueueName\\Id."
            )
        queues = self.server_queues(pieces[0])
        try:
            message_id = pieces[-1].upper()
            if len(pieces) == 3:
                candidates = [queues.queue(pieces[1], f"{queues.server}\\{pieces[1]}")]
            else:
                candidates = queues.queues
            found = [
                view
                for queue in candidates
                for view in queues.message_views(queue)
                if view.message.message_id == message_id
            ]
            if not found:
                raise NotFoundError("message", text)
            if len(found) > 1:
                raise AmbiguousIdentityError("message", text, [v.identity for v in found])
            return queues, found[0]
        except BaseException:
            queues.store.close()
            raise


def identity_parameter(help_text: str, mandatory: bool = True) -> Parameter:
    return Parameter(
        "Identity",
        kind="identity",
        mandatory=mandatory,
        position=0,
        from_pipeline=True,
        help=help_text,
    )


QUEUE_HELP = (
    "The queue: SERVER\\Submission, SERVER\\<number> (as Get-Queue shows it) or "
    "SERVER\\<NextHopDomain>."
)
MESSAGE_HELP = "The message: SERVER\\Queue\\Id as Get-Message shows it (or SERVER\\Id)."


# -- Get-Queue, Get-Message ---------------------------------------------------------------


@register
class GetQueue(QueueCmdlet):
    name = "Get-Queue"
    parameters = (
        identity_parameter(QUEUE_HELP, mandatory=False),
        Parameter(
            "Server", kind="identity", identity_of="server", help="Only this server's queues."
        ),
    )
    synopsis = "Gets the queues of Hub Transport servers."
    description = (
        "Gets one queue, a Hub Transport server's queues, or the queues of every Hub "
        "Transport server whose transport service has run (one that never ran has no queue "
        "store; naming it is an error). A delivery queue holds the waiting recipients of "
        "one next hop: MapiDelivery for mailboxes of the organization, DnsConnectorDelivery "
        "or SmartHostConnectorDelivery by the send connector that routes its domain, "
        "Undefined when none does. Status: Active (a delivery is under way), Ready, Retry "
        "(the last attempt failed: LastError says why) or Suspended."
    )
    examples = (
        Example("Get-Queue -Server MBX01", "Lists MBX01's queues."),
        Example("Get-Queue MBX01\\contoso.com | Format-List", "Shows the queue for contoso.com."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        if identity is not None:
            queues, queue = self.one_queue(identity)
            queues.store.close()
            yield queue_object(queue)
            return
        server = params.get("Server")
        if server is not None:
            one = self.server_queues(server)
            one.store.close()
            yield from (queue_object(q) for q in one.queues)
            return
        for each in self.every_server():
            yield from (queue_object(q) for q in each.queues)


@register
class GetMessage(QueueCmdlet):
    name = "Get-Message"
    parameters = (
        identity_parameter(MESSAGE_HELP, mandatory=False),
        Parameter("Queue", kind="identity", help="Only this queue's messages: SERVER\\QueueName."),
        Parameter(
            "Server", kind="identity", identity_of="server", help="Only this server's messages."
        ),
    )
    synopsis = "Gets the messages in Hub Transport queues."
    description = (
        "Gets one message, a queue's messages, a server's, or those of every Hub Transport "
        "server whose transport service has run. A message with recipients in two queues "
        "shows once in each. FromAddress is the envelope sender (<> for the null sender); "
        "SCL is -1 for a message sent by a logged-on user and 0 otherwise (casarray has no "
        "content filter); MessageSourceName is SMTP (the store doesn't keep which receive "
        "connector took it)."
    )
    examples = (
        Example("Get-Message -Queue MBX01\\1", "Lists the messages of MBX01's queue 1."),
        Example(
            "Get-Message -Server MBX01 | Where-Object { $_.Status -eq 'Retry' } | Format-List",
            "Shows every message of MBX01 waiting for a retry, and why.",
        ),
        Example("Get-Queue MBX01\\2 | Get-Message", "Lists the messages of a queue piped in."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        identity = params.get("Identity")
        queue_identity = params.get("Queue")
        piped = identity.base if isinstance(identity, PSObject) else None
        if isinstance(piped, QueueView):  # Get-Queue ... | Get-Message
            identity, queue_identity = None, identity
        if identity is not None:
            queues, view = self.one_message(identity)
            try:
                yield message_object(queues, view)
            finally:
                queues.store.close()
            return
        if queue_identity is not None:
            queues, queue = self.one_queue(queue_identity)
            try:
                yield from (message_object(queues, v) for v in queues.message_views(queue))
            finally:
                queues.store.close()
            return
        server = params.get("Server")
        if server is not None:
            one = self.server_queues(server)
            try:
                yield from self._all(one)
            finally:
                one.store.close()
            return
        for each in self.every_server():
            yield from self._all(each)

    @staticmethod
    def _all(queues: ServerQueues) -> Iterator[PSObject]:
        for queue in queues.queues:
            for view in queues.message_views(queue):
                yield message_object(queues, view)


# -- the queue actions --------------------------------------------------------------------


@register
class RetryQueue(QueueCmdlet):
    name = "Retry-Queue"
    parameters = (identity_parameter(QUEUE_HELP),)
    synopsis = "Makes a queue in Retry try its messages now."
    description = (
        "Makes the messages of the queue waiting for a retry due now, instead of at their "
        "next retry time; the server's other queues keep their times. A queue not in "
        "Retry is refused."
    )
    examples = (Example("Retry-Queue MBX01\\2", "Tries queue 2 of MBX01 again now."),)
    supports_should_process = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        queues, queue = self.one_queue(params["Identity"])
        try:
            if queue.status != "Retry":
                raise InvalidOperationError(
                    f"The queue '{queue.identity}' isn't in Retry (its status is "
                    f"{queue.status}); only a queue in Retry can be retried.",
                    target=queue.identity,
                )
            if not self.should_process(queue.identity):
                return ()
            queues.store.retry_recipients(sorted(queue.members), time.time())
        finally:
            queues.store.close()
        return ()


class _QueueSuspension(QueueCmdlet):
    suspend = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        queues, queue = self.one_queue(params["Identity"])
        try:
            if queue.key is None:
                raise InvalidOperationError(
                    f"The queue '{queue.identity}' can't be suspended or resumed: casarray "
                    "routes a message as it is received, so the Submission queue holds none.",
                    target=queue.identity,
                )
            if not self.should_process(queue.identity):
                return ()
            queues.store.suspend_recipients(sorted(queue.members), self.suspend)
        finally:
            queues.store.close()
        return ()


@register
class SuspendQueue(_QueueSuspension):
    name = "Suspend-Queue"
    parameters = (identity_parameter(QUEUE_HELP),)
    synopsis = "Suspends the messages of a queue."
    description = (
        "Suspends every message waiting in the queue: none is delivered to this next hop "
        "until the queue is resumed; the same messages' recipients in other queues go on. "
        "The store suspends what the queue holds now: a message that arrives later is "
        "not suspended."
    )
    examples = (Example("Suspend-Queue MBX01\\2", "Holds the messages of queue 2."),)
    supports_should_process = True
    suspend = True


@register
class ResumeQueue(_QueueSuspension):
    name = "Resume-Queue"
    parameters = (identity_parameter(QUEUE_HELP),)
    synopsis = "Resumes the suspended messages of a queue."
    description = (
        "Makes every suspended message of the queue Ready: delivery takes it at once. "
        "The same messages' recipients in other queues are left as they are."
    )
    examples = (Example("Resume-Queue MBX01\\2", "Delivers queue 2's messages again."),)
    supports_should_process = True
    suspend = False


# -- the message actions ------------------------------------------------------------------


class _MessageSuspension(QueueCmdlet):
    suspend = True

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        queues, view = self.one_message(params["Identity"])
        try:
            states = {r.state for r in view.recipients}
            if self.suspend and not states & set(PENDING):
                raise InvalidOperationError(
                    f"The message '{view.identity}' is already suspended.", target=view.identity
                )
            if not self.suspend and SUSPENDED not in states:
                raise InvalidOperationError(
                    f"The message '{view.identity}' isn't suspended.", target=view.identity
                )
            if self.should_process(view.identity):
                queues.store.suspend(view.message.message_id, self.suspend)
        finally:
            queues.store.close()
        return ()


MESSAGE_SUSPENSION_NOTE = (
    " The store suspends and resumes a whole message: its recipients in other queues too."
)


@register
class SuspendMessage(_MessageSuspension):
    name = "Suspend-Message"
    parameters = (identity_parameter(MESSAGE_HELP),)
    synopsis = "Suspends a queued message."
    description = (
        "Holds a message: it isn't delivered until Resume-Message." + MESSAGE_SUSPENSION_NOTE
    )
    examples = (
        Example("Suspend-Message MBX01\\2\\018F2A3B4C5D6E7F", "Holds that message."),
        Example("Get-Message -Queue MBX01\\2 | Suspend-Message", "Holds every message of queue 2."),
    )
    supports_should_process = True
    suspend = True


@register
class ResumeMessage(_MessageSuspension):
    name = "Resume-Message"
    parameters = (identity_parameter(MESSAGE_HELP),)
    synopsis = "Resumes a suspended message."
    description = "Makes a suspended message Ready again." + MESSAGE_SUSPENSION_NOTE
    examples = (Example("Resume-Message MBX01\\2\\018F2A3B4C5D6E7F", "Delivers it again."),)
    supports_should_process = True
    suspend = False


@register
class RemoveMessage(QueueCmdlet):
    name = "Remove-Message"
    parameters = (
        identity_parameter(MESSAGE_HELP),
        Parameter(
            "WithNDR",
            kind="bool",
            help="$true (the default): the sender is to get a non-delivery report; $false: not.",
        ),
    )
    synopsis = "Removes a message from a queue: its recipients there fail."
    description = (
        "Removes a message from one queue: each of its recipients in that queue fails with "
        "the error '550 4.3.2 QUEUE.Admin; message deleted by administrative action'. "
        "With -WithNDR $true the sender gets a non-delivery report (RFC 3464), queued "
        "at once from the null sender (none for a message from the null sender). A "
        "recipient whose delivery is under way is left to it (a warning names it): the "
        "check and the removal are one transaction of the queue store; remove it after "
        "the attempt if it is still queued."
    )
    examples = (
        Example(
            "Remove-Message MBX01\\2\\018F2A3B4C5D6E7F -WithNDR $false -Confirm:$false",
            "Removes the message from queue 2 without a non-delivery report.",
        ),
        Example(
            "Get-Message -Queue MBX01\\2 | Remove-Message -WithNDR $true",
            "Removes every message of queue 2; their senders get a non-delivery report.",
        ),
    )
    supports_should_process = True
    confirm_impact = "High"

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        with_ndr = params.get("WithNDR")
        with_ndr = True if with_ndr is None else bool(with_ndr)
        queues, view = self.one_message(params["Identity"])
        try:
            if not self.should_process(view.identity):
                return ()
            error = REMOVED.format("true" if with_ndr else "false", NDR_DUE if with_ndr else NO_NDR)
            message_id = view.message.message_id
            removed = queues.store.fail_unless_in_flight(
                message_id, [r.index for r in view.recipients], error, report=with_ndr
            )
            busy = [r.address for r in view.recipients if r.index not in removed]
            if with_ndr and removed:
                self._report(queues, [(message_id, index) for index in removed])
            if busy:
                self.write_warning(
                    f"The delivery of '{view.identity}' to {', '.join(busy)} is under way; "
                    "those recipients weren't removed."
                )
        finally:
            queues.store.close()
        return ()

    def _report(self, queues: ServerQueues, removed: list[tuple[str, int]]) -> None:
        """The non-delivery report for the recipients removed, queued on the server
        (`transport.dsn.send_reports`, as the transport queues its own)."""
        from casarray.transport.config import load_config
        from casarray.transport.mailboxes import DirectoryMailboxes

        config = load_config(self.directory, queues.server)
        mailboxes = DirectoryMailboxes(self.directory)
        try:
            send_reports(queues.store, config, exists=mailboxes.exists, only=removed)
        finally:
            mailboxes.close()
