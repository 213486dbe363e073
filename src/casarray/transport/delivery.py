"""Delivery of queued messages into the mailbox databases (Exchange's store driver),
in the transport process.

For each due local recipient: its mailbox is found by address and opened in its
database's store (created there with its default folders at first use, as at first
logon), the message gets `Return-Path` on top (our Received header is already there)
and is appended to INBOX, and the delivery is recorded in the queue. A mailbox over its
ProhibitSendReceiveQuota refuses it for good (`5.2.2`, as Exchange does). A temporary
failure (the database dismounted, its store unreachable, its disk full: `452 4.3.1`)
leaves the recipient in Retry, the message in the queue, due again after the server's
MessageRetryInterval; a permanent one (no such mailbox any more) fails it. A recipient
not delivered within MessageExpirationTimeout fails as expired (`5.4.7`). A recipient
to relay (another domain) is sent on through the send connector that routes its domain
(`relay`): the recipients of one message for one next hop in one SMTP transaction; a
temporary failure retries after MessageRetryInterval, doubled after each failed
attempt up to four times it. Relay runs in tasks and threads of its own
(`RELAY_PARALLEL` sessions), so a slow next hop holds up neither local delivery nor
the receive service.

Every recipient that fails for good (here or in relay, or by Remove-Message -WithNDR)
is recorded with a report due, and the loop queues the sender's delivery status
notification (`dsn.send_reports`: one per message, none for the null sender).

Exactly once, as far as two stores allow. The queue and the mailbox database are two
databases, so the append and the record of delivery can't be one transaction. Taking a
recipient for an attempt is committed before any mailbox is touched, with the time the
attempt started (a commit that survives the death of the process, not a power loss:
see `queue`); the message is appended with that moment as its
INTERNALDATE, and our Received header names the queue id. After a crash (a recipient
found with an attempt started and no outcome), the delivery looks at the messages of
INBOX dated from the attempt's start on: one whose Received header names the queue id
means the append happened, and the recipient is recorded as delivered; none means it
didn't, and the message is delivered again. What remains possible: a message appended
just before a crash and then moved out of INBOX or expunged by a client before the
transport restarts is delivered a second time (so is one whose INBOX was deleted and
made again meanwhile, or if the clock went back by more than a second across the
crash), and, after a power loss rather than a crash, one whose attempt mark had not
reached the disk. Nothing acknowledged is lost: the queue keeps the message until every
recipient is Delivered or Failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from casarray.mailstore.interface import StorageFull
from casarray.transport import dsn, relay
from casarray.transport.config import TransportConfig
from casarray.transport.headers import mentions_queue_id, return_path
from casarray.transport.mailboxes import Mailboxes, PermanentFailure, TemporaryFailure
from casarray.transport.queue import (
    LOCAL,
    QueuedMessage,
    QueuedRecipient,
    QueueError,
    QueueFull,
    QueueStore,
)
from casarray.transport.tracking import (
    DEFER,
    DELIVER,
    FAIL,
    SEND,
    SMTP,
    STOREDRIVER,
    TrackingLog,
    track_recipient,
)

log = logging.getLogger("casarray.transport")

INBOX = "INBOX"
RELAY_BACKOFF = 4  # a relayed recipient's retry interval grows up to this many times
BATCH = 64
IDLE_WAIT = 1.0  # seconds between looks at the queue when nothing wakes the loop
PARALLEL = 4
RELAY_PARALLEL = 8  # SMTP sessions to next hops at once, in threads of their own
OUTBOUND_WAIT = 0.05  # seconds between looks for a free outbound connection
RECOVERY_INTERVAL = 10.0  # seconds between looks at attempts a crash left unsettled


@dataclass(frozen=True)
class Outcome:
    state: str  # "delivered", "retry", "failed"
    error: str = ""


def by_mailbox(recipients: Sequence[QueuedRecipient]) -> list[list[QueuedRecipient]]:
    """The recipients delivered together: those to one address; those relayed, by
    message and next hop (one SMTP transaction each)."""
    groups: dict[str, list[QueuedRecipient]] = {}
    relayed: dict[tuple[str, str], list[QueuedRecipient]] = {}
    for recipient in recipients:
        if recipient.route == LOCAL:
            groups.setdefault(recipient.address.strip().lower(), []).append(recipient)
        else:
            key = (recipient.message_id, next_hop_of(recipient))
            relayed.setdefault(key, []).append(recipient)
    return [*groups.values(), *relayed.values()]


def _by_message_and_hop(
    relaying: list[tuple[int, QueuedRecipient, QueuedMessage]],
) -> list[list[tuple[int, QueuedRecipient, QueuedMessage]]]:
    groups: dict[tuple[str, str], list[tuple[int, QueuedRecipient, QueuedMessage]]] = {}
    for item in relaying:
        groups.setdefault((item[1].message_id, next_hop_of(item[1])), []).append(item)
    return list(groups.values())


def next_hop_of(recipient: QueuedRecipient) -> str:
    """The domain a relayed recipient goes to."""
    hop = recipient.next_hop or recipient.address.rpartition("@")[2]
    return hop.strip().rstrip(".").lower()


class Deliverer:
    """Takes due recipients from the queue and delivers them; blocking methods run in
    worker threads, `run` is the process's job."""

    def __init__(
        self,
        queue: QueueStore,
        mailboxes: Mailboxes,
        config: Callable[[], TransportConfig],
        *,
        clock: Callable[[], float] = time.time,
        tracking: TrackingLog | None = None,
    ) -> None:
        self.queue = queue
        self.tracking = tracking  # DELIVER, DEFER, FAIL in the message tracking log
        self.mailboxes = mailboxes
        self.config = config
        self.clock = clock
        self.wake = asyncio.Event()
        self.delivered_count = 0
        self.unsettled = 0  # interrupted attempts `recover` could not settle yet
        # relayed recipients whose attempt (a task of `run`) ended without an outcome
        # recorded; `recover` settles them, and every relayed one only at its first run
        self.relay_unsettled: set[tuple[str, int]] = set()
        self.outbound = 0  # relay sessions under way (MaxOutboundConnections bounds them)
        self.recovered_once = False

    # -- delivering (blocking) ----------------------------------------------------------

    def deliver(self, recipient: QueuedRecipient) -> Outcome:
        """Deliver one taken recipient and record the outcome in the queue."""
        return self.deliver_all([recipient])[0]

    def deliver_all(self, recipients: Sequence[QueuedRecipient]) -> list[Outcome]:
        """Deliver taken recipients of one address (or one that is relayed) and record
        their outcomes: the messages that go into the mailbox go in one transaction of
        its store (one fsync however many arrived meanwhile)."""
        config = self.config()
        now = self.clock()
        retry_at = now + config.message_retry_interval.total_seconds()
        outcomes: dict[int, Outcome] = {}
        going: list[tuple[int, QueuedRecipient, bytes]] = []
        relaying: list[tuple[int, QueuedRecipient, QueuedMessage]] = []
        for n, recipient in enumerate(recipients):
            message = self.queue.message(recipient.message_id)
            if message is None:
                outcomes[n] = Outcome("failed", "the message left the queue")
                continue
            if now - message.received.timestamp() > (
                config.message_expiration_timeout.total_seconds()
            ):
                error = f"550 5.4.7 Message expired ({recipient.last_error or 'not delivered'})"
                outcomes[n] = self._failed(recipient, error)
                continue
            if recipient.route != LOCAL:
                relaying.append((n, recipient, message))
                continue
            body = return_path(message.sender) + self.queue.message_data(recipient.message_id)
            going.append((n, recipient, body))
        if going:
            self._into_mailbox(going, outcomes, retry_at)
        for group in _by_message_and_hop(relaying):
            self._relay(group, outcomes, config, now)
        return [outcomes[n] for n in range(len(recipients))]

    def _relay(
        self,
        going: list[tuple[int, QueuedRecipient, QueuedMessage]],
        outcomes: dict[int, Outcome],
        config: TransportConfig,
        now: float,
    ) -> None:
        """Relay recipients of one message for one next hop (`relay`) and record each
        one's outcome."""
        message = going[0][2]
        domain = next_hop_of(going[0][1])
        addresses = [recipient.address for _, recipient, _ in going]
        connector = config.route(domain)
        data = b""
        if connector is None:
            error = relay.UNROUTABLE.format(domain=domain)
            results = [relay.RecipientResult(a, "failed", error) for a in addresses]
        elif connector.max_message_size and message.size > connector.max_message_size:
            error = (
                f"552 5.3.4 The message is larger than the send connector {connector.name} "
                f"takes ({connector.max_message_size} bytes)"
            )
            results = [relay.RecipientResult(a, "failed", error) for a in addresses]
        else:
            data = self.queue.message_data(message.message_id)
            try:
                hosts = relay.next_hosts(connector, domain, relay.Resolver(config.resolver))
                results = relay.send_message(
                    config, connector, message.sender, addresses, data, hosts
                )
            except relay.RelayFailure as exc:
                state = "failed" if exc.permanent else "retry"
                results = [relay.RecipientResult(a, state, exc.reply) for a in addresses]
        interval = config.message_retry_interval.total_seconds()
        delivered = []
        for (n, recipient, _), result in zip(going, results, strict=True):
            error = relay.with_remote(result.reply, result.remote)
            if result.state == "delivered":
                delivered.append((recipient.message_id, recipient.index))
                outcomes[n] = Outcome("delivered")
                log.info(
                    "%s relayed to %s via %s: %s",
                    recipient.message_id,
                    recipient.address,
                    result.remote,
                    result.reply,
                )
            elif result.state == "failed":
                outcomes[n] = self._failed(recipient, error)
            else:
                backoff = min(2 ** max(recipient.attempts - 1, 0), RELAY_BACKOFF)
                retry_at = now + interval * backoff
                self.queue.retry(recipient.message_id, recipient.index, error, retry_at)
                outcomes[n] = Outcome("retry", error)
                log.warning(
                    "%s to %s will be retried: %s", recipient.message_id, recipient.address, error
                )
                if self.tracking is not None:
                    track_recipient(
                        self.tracking,
                        self.queue,
                        DEFER,
                        recipient,
                        source=SMTP,
                        status=error,
                        data=data or None,
                        server_hostname=result.remote,
                    )
        if delivered:
            self.queue.delivered_all(delivered)
            self.delivered_count += len(delivered)
            self._track_sent(message, results, data, connector.name if connector else "")

    def _track_sent(
        self,
        message: QueuedMessage,
        results: list[relay.RecipientResult],
        data: bytes,
        connector: str,
    ) -> None:
        """SEND in the message tracking log: the recipients the next hop took, in one
        event (as Exchange's), with its replies and its name and address."""
        tracking = self.tracking
        if tracking is None:
            return
        sent = [r for r in results if r.state == "delivered"]
        name, _, address = sent[0].remote.partition(" [")
        try:
            subject, message_id = dsn.original_fields(data)
            tracking.record(
                SEND,
                internal_message_id=message.message_id,
                message_id=message_id,
                sender=message.sender,
                recipients=[r.address for r in sent],
                source="SMTP",
                server_ip=address.rstrip("]") or name,
                server_hostname=name,
                connector_id=connector,
                recipient_status=[r.reply for r in sent],
                total_bytes=message.size,
                message_subject=subject,
                return_path=message.sender,
            )
        except Exception:
            log.exception("SEND of %s wasn't tracked", message.message_id)

    def send_reports(self) -> list[str]:
        """Queue the delivery status notifications due (`dsn.send_reports`)."""
        return dsn.send_reports(
            self.queue,
            self.config(),
            exists=getattr(self.mailboxes, "exists", None),
            tracking=self.tracking,
        )

    def _failed(self, recipient: QueuedRecipient, error: str) -> Outcome:
        self.queue.failed(recipient.message_id, recipient.index, error)
        log.warning("%s to %s: failed: %s", recipient.message_id, recipient.address, error)
        if self.tracking is not None:
            source = STOREDRIVER if recipient.route == LOCAL else SMTP
            track_recipient(self.tracking, self.queue, FAIL, recipient, source=source, status=error)
        return Outcome("failed", error)

    def _into_mailbox(
        self,
        going: list[tuple[int, QueuedRecipient, bytes]],
        outcomes: dict[int, Outcome],
        retry_at: float,
    ) -> None:
        address = going[0][1].address
        accepted: list[tuple[int, QueuedRecipient, bytes]] = []
        try:
            store = self.mailboxes.open(address)
            limit = self.mailboxes.storage_limit(address)
            used = store.storage_used() if limit is not None else 0
            for n, recipient, body in going:
                if limit is not None and used + len(body) > limit:
                    outcomes[n] = self._failed(
                        recipient,
                        f"550 5.2.2 The mailbox of {address} is full (over its "
                        "ProhibitSendReceiveQuota)",
                    )
                    continue
                used += len(body)
                accepted.append((n, recipient, body))
            if accepted:
                stamp = datetime.now(UTC)
                store.append_many(INBOX, [(body, (), stamp) for _, _, body in accepted])
        except PermanentFailure as exc:
            for n, recipient, _ in going:
                if n not in outcomes:
                    outcomes[n] = self._failed(recipient, str(exc))
            return
        except QueueError:
            raise
        except Exception as exc:  # TemporaryFailure and any store error
            if isinstance(exc, StorageFull):  # the database's disk: deferred, never bounced
                error = (
                    "452 4.3.1 Insufficient system storage: no disk space left for the "
                    f"mailbox database {exc.where}"
                )
            elif isinstance(exc, TemporaryFailure):
                error = str(exc)
            else:
                error = f"451 4.3.0 {exc}"
            for n, recipient, body in going:
                if n not in outcomes:
                    self.queue.retry(recipient.message_id, recipient.index, error, retry_at)
                    outcomes[n] = Outcome("retry", error)
                    if self.tracking is not None:
                        track_recipient(
                            self.tracking, self.queue, DEFER, recipient, status=error, data=body
                        )
            log.warning("delivery to %s will be retried: %s", address, exc)
            return
        self.queue.delivered_all([(r.message_id, r.index) for _, r, _ in accepted])
        for n, recipient, body in accepted:
            outcomes[n] = Outcome("delivered")
            self.delivered_count += 1
            if self.tracking is not None:
                track_recipient(self.tracking, self.queue, DELIVER, recipient, data=body)
            log.debug("%s delivered to %s", recipient.message_id, recipient.address)

    def recover(self) -> int:
        """Settle the attempts a crash interrupted (see the module's docstring); how
        many were found delivered already."""
        found = 0
        now = self.clock()
        self.unsettled = 0
        first, self.recovered_once = not self.recovered_once, True
        for recipient in self.queue.in_flight():
            key = (recipient.message_id, recipient.index)
            if recipient.route != LOCAL and not first and key not in self.relay_unsettled:
                continue  # an attempt of this process, under way or settled by it
            try:
                delivered = self._already_delivered(recipient)
            except TemporaryFailure as exc:
                # its mailbox can't be looked at now: left as it is, looked at again later
                self.unsettled += 1
                log.warning(
                    "%s to %s: can't tell yet whether it was delivered before the restart: %s",
                    recipient.message_id,
                    recipient.address,
                    exc,
                )
                continue
            if delivered:
                self.queue.delivered(recipient.message_id, recipient.index)
                found += 1
                if self.tracking is not None:
                    track_recipient(self.tracking, self.queue, DELIVER, recipient)
                log.info(
                    "%s to %s: found delivered before the restart",
                    recipient.message_id,
                    recipient.address,
                )
            else:
                self.queue.retry(
                    recipient.message_id,
                    recipient.index,
                    recipient.last_error or "interrupted by a restart",
                    now,
                )
            self.relay_unsettled.discard(key)
        return found

    def _already_delivered(self, recipient: QueuedRecipient) -> bool:
        """Whether INBOX holds the message of an interrupted attempt: one dated from
        the attempt's start on (a second's slack: INTERNALDATE has whole seconds) whose
        Received header names the queue id."""
        if recipient.route != LOCAL or recipient.attempt_started is None:
            return False
        since = recipient.attempt_started - 1
        try:
            store = self.mailboxes.open(recipient.address)
            recent = []
            for info in reversed(store.messages(INBOX)):
                if info.internal_date.timestamp() < since:
                    break
                recent.append(info.uid)
            bodies = store.bodies(INBOX, recent) if recent else {}
        except PermanentFailure:
            return False  # no mailbox: nothing there; the next attempt fails it
        except Exception as exc:
            # can't look now: left in flight, looked at again later
            raise TemporaryFailure(str(exc)) from exc
        return any(mentions_queue_id(body, recipient.message_id) for body in bodies.values())

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until cancelled: what is due, then wait to be woken (a message
        queued) or a second. At start, what waits in Retry is made due at once (as
        Exchange's transport retries its queues when it starts) and the attempts a
        crash interrupted are settled."""
        try:
            waiting = await asyncio.to_thread(self.queue.retry_now, self.clock())
        except QueueError as exc:
            log.error("the queue can't be read: %s", exc)
        else:
            if waiting:
                log.info("%d recipient(s) waiting to be retried: retried now", waiting)
        last_recovery = 0.0
        queue_full = False  # the queue's disk had no room for the last take_due
        gate = asyncio.Semaphore(PARALLEL)
        # relay waits on other servers (up to relay.TIMEOUT a command): in threads and
        # tasks of its own, so a slow next hop holds up neither local delivery nor the
        # default executor the receive service's commits run in
        relay_pool = ThreadPoolExecutor(RELAY_PARALLEL, thread_name_prefix="relay")
        relay_gate = asyncio.Semaphore(RELAY_PARALLEL)
        relay_tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()

        async def one(recipients: list[QueuedRecipient]) -> None:
            async with gate:
                try:
                    await asyncio.to_thread(self.deliver_all, recipients)
                except Exception:
                    # outcomes could not be recorded: `recover` settles them shortly
                    self.unsettled += 1
                    log.exception("delivering to %s", recipients[0].address)

        async def relay_one(recipients: list[QueuedRecipient]) -> None:
            try:
                async with relay_gate:
                    # Set-TransportServer -MaxOutboundConnections, followed live
                    while self.outbound >= self.config().max_outbound_connections:
                        await asyncio.sleep(OUTBOUND_WAIT)
                    self.outbound += 1
                    try:
                        await loop.run_in_executor(relay_pool, self.deliver_all, recipients)
                    finally:
                        self.outbound -= 1
            except Exception:
                # outcomes could not be recorded: `recover` settles them shortly
                self.relay_unsettled |= {(r.message_id, r.index) for r in recipients}
                self.unsettled += 1
                log.exception("relaying to %s", recipients[0].address)
            self.wake.set()  # a report may be due

        try:
            while True:
                if (last_recovery == 0.0 or self.unsettled) and (
                    time.monotonic() - last_recovery > RECOVERY_INTERVAL
                ):
                    last_recovery = time.monotonic()
                    try:
                        await asyncio.to_thread(self.recover)
                    except QueueError as exc:
                        log.error("the queue can't be read: %s", exc)
                        self.unsettled = 1
                self.wake.clear()
                try:
                    if await asyncio.to_thread(self.send_reports):
                        continue  # a report was queued: take it at once
                except Exception:
                    log.exception("the delivery status notifications can't be queued now")
                try:
                    due = await asyncio.to_thread(self.queue.take_due, self.clock(), BATCH)
                except QueueFull as exc:  # its disk: said once, tried again each second
                    if not queue_full:
                        log.error("delivery waits for room in the queue: %s", exc)
                    queue_full, due = True, []
                except QueueError as exc:
                    log.error("the queue can't be read: %s", exc)
                    due = []
                else:
                    if queue_full:
                        log.warning("the queue has room again: delivery goes on")
                    queue_full = False
                if due:
                    local = []
                    for group in by_mailbox(due):
                        if group[0].route == LOCAL:
                            local.append(group)
                            continue
                        task = asyncio.create_task(relay_one(group))
                        relay_tasks.add(task)
                        task.add_done_callback(relay_tasks.discard)
                    await asyncio.gather(*(one(group) for group in local))
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), IDLE_WAIT)
        finally:
            for task in relay_tasks:
                task.cancel()
            relay_pool.shutdown(wait=False, cancel_futures=True)
