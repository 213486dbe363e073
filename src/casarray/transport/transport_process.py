"""`casarray transport run MBX01`: the process of one Hub Transport server.

It reads the server's transport configuration from the directory (`config.load_config`:
accepted domains, its receive connectors, its settings), opens its queue (SQLite under
`$CASARRAY_HOME/transport/<server>/queue.db`, or `--queue sqlite:///PATH` or
`postgresql://...`), and serves SMTP on one
listener per binding of its enabled receive connectors: `Default MBX01` on 25 and
`Client MBX01` on 587 as Exchange makes them. A binding on 0.0.0.0 listens on the
server's own address (from the directory). Ports are the connectors' own when the
process may bind them, else each plus 10000 (said once at start); `--port-offset N`
makes them port+N, and `--port 25=0` maps one port exactly (0: a free port, for tests).

In the same process, delivery (`delivery.Deliverer`) takes what is due from the queue
and appends it to the recipients' INBOXes, woken at once by every message queued; it
relays mail for other domains through the send connectors (`relay`) and queues the
senders' non-delivery reports (`dsn`).

It follows the directory (`Directory.watch`): after a change the configuration is read
again (new connectors, domains, limits, certificates apply to the next session) and
listeners are opened or closed when bindings changed.

While it runs, its status file (`$CASARRAY_HOME/run/transport-<server>.json`) says where
it listens (`ports`: configured port -> the port it listens on) and where its queue is;
it is removed at exit. SIGTERM and SIGINT stop it (exit status 0); a kill -9 loses
nothing that was answered `250` (the queue is durable, delivery recovers).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from casarray.process import status
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess, run_process
from casarray.process.ports import UNPRIVILEGED_OFFSET

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.transport.config import TransportConfig
    from casarray.transport.delivery import Deliverer
    from casarray.transport.mailboxes import DirectoryMailboxes
    from casarray.transport.queue import SqliteQueue
    from casarray.transport.receive import ReceiveContext
    from casarray.transport.tls import SmtpTls
    from casarray.transport.tracking import TrackingLog

log = logging.getLogger("casarray.transport")

WILDCARDS = {"0.0.0.0", "::", ""}


@dataclass
class TransportOptions:
    server: str
    directory: str | None = None
    port_offset: int | None = None
    ports: dict[int, int] = field(default_factory=dict)  # configured port -> exact port
    queue: str | None = None  # the queue store's URL (None: the server's SQLite file)
    use_uvloop: bool = True
    log_file: str | None = None
    log_level: str = "INFO"


def status_file(server: str, home: Any = None) -> status.StatusFile:
    return status.status_file(status.TRANSPORT, server, home)


def read_status(server: str, home: Any = None) -> dict[str, Any] | None:
    """What the running transport process of `server` says of itself, or None."""
    return status_file(server, home).read()


def parse_port_map(items: list[str]) -> dict[int, int]:
    """`["25=0", "587=10587"]` -> {25: 0, 587: 10587}; ValueError says what is wrong."""
    result: dict[int, int] = {}
    for item in items:
        configured, sep, actual = item.partition("=")
        if not sep or not configured.strip().isdigit() or not actual.strip().isdigit():
            raise ValueError(f"--port {item!r}: use CONFIGURED=ACTUAL, e.g. 25=2525")
        result[int(configured)] = int(actual)
    return result


@dataclass
class _Listener:
    configured: tuple[str, int]
    address: str
    port: int
    server: asyncio.base_events.Server


class TransportProcess(ServiceProcess):
    """SMTP receive and delivery of one Hub Transport server."""

    log = log

    def __init__(self, options: TransportOptions) -> None:
        super().__init__()
        self.label = options.server
        self.options = options
        self.directory: Directory | None = None
        self.address = ""
        self.queue: SqliteQueue | None = None
        self.mailboxes: DirectoryMailboxes | None = None
        self.context: ReceiveContext | None = None
        self.deliverer: Deliverer | None = None
        self.tracking: TrackingLog | None = None
        self.tls: SmtpTls | None = None
        self.listeners: dict[tuple[str, int], _Listener] = {}
        self._said_offset = False
        self._status: status.StatusFile | None = None

    # -- start ---------------------------------------------------------------------------

    def _open(self) -> tuple[Directory, TransportConfig, str]:
        from casarray.directory import Directory, DirectoryError
        from casarray.transport.config import load_config

        try:
            directory = Directory.open(self.options.directory)
        except DirectoryError as exc:
            raise StartupError(str(exc)) from exc
        try:
            record = directory.servers.one(self.options.server)
            config = load_config(directory, record.name)
        except DirectoryError as exc:
            directory.close()
            raise StartupError(str(exc)) from exc
        return directory, config, record.ip_address

    async def start(self) -> None:
        from casarray.transport import tls
        from casarray.transport.delivery import Deliverer
        from casarray.transport.mailboxes import DirectoryMailboxes
        from casarray.transport.queue import QueueError
        from casarray.transport.queue_stores import open_queue
        from casarray.transport.receive import ReceiveContext
        from casarray.transport.tracking import TrackingLog

        if self.options.log_level != "DEBUG":
            # aiosmtpd says every command and connection at INFO: kept for DEBUG
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        directory, config, address = await asyncio.to_thread(self._open)
        self.directory, self.address, self.label = directory, address, config.server
        try:
            self.queue = await asyncio.to_thread(open_queue, config.server, self.options.queue)
        except QueueError as exc:
            raise StartupError(str(exc)) from exc
        fallback = await asyncio.to_thread(tls.ensure_fallback, config.server, [config.fqdn])
        self.tls = tls.SmtpTls(config.server, config.fqdn, fallback)
        await self._follow_certificates()
        self.mailboxes = DirectoryMailboxes(directory)
        self.tracking = TrackingLog(config.server)
        try:
            await asyncio.to_thread(self.tracking.open)  # retention now; a bad folder said
        except OSError as exc:
            log.warning("%s: the message tracking log can't be opened: %s", config.server, exc)
        self.deliverer = Deliverer(self.queue, self.mailboxes, self._config, tracking=self.tracking)
        deliverer = self.deliverer
        self.context = ReceiveContext(
            config=config,
            queue=self.queue,
            recipients=self.mailboxes,
            authenticator=self.mailboxes,
            tls=self.tls.context,
            on_queued=lambda _queue_id: deliverer.wake.set(),
            tracking=self.tracking,
        )
        await self._follow_listeners(config)
        if not self.listeners:
            log.warning("%s: no enabled receive connector; SMTP is not served", config.server)

    def _config(self) -> TransportConfig:
        assert self.context is not None
        return self.context.config

    def _actual_port(self, port: int) -> tuple[int, bool]:
        """(the port to bind for the connector port `port`, whether it was chosen)."""
        if port in self.options.ports:
            return self.options.ports[port], True
        if self.options.port_offset is not None:
            return port + self.options.port_offset, True
        return port, False

    def _listen_address(self, host: str) -> str:
        return self.address if host in WILDCARDS else host

    async def _open_listener(self, binding: tuple[str, int]) -> _Listener:
        from casarray.transport.receive import bind, serve

        assert self.context is not None
        host, port = binding
        address = self._listen_address(host)
        actual, chosen = self._actual_port(port)
        try:
            sock = bind(address, actual)
        except PermissionError:
            if chosen:
                raise StartupError(
                    f"{self.label}: may not bind port {actual} on {address} (ports below 1024 "
                    "need root or CAP_NET_BIND_SERVICE)"
                ) from None
            actual += UNPRIVILEGED_OFFSET
            if not self._said_offset:
                self._said_offset = True
                log.warning(
                    "%s: this process may not bind ports below 1024; SMTP uses the "
                    "connectors' ports plus %d",
                    self.label,
                    UNPRIVILEGED_OFFSET,
                )
            try:
                sock = bind(address, actual)
            except OSError as exc:
                raise StartupError(
                    f"{self.label}: can't listen on {address}:{actual}: {exc}"
                ) from exc
        except OSError as exc:
            raise StartupError(f"{self.label}: can't listen on {address}:{actual}: {exc}") from exc
        bound = int(sock.getsockname()[1])
        try:
            server = await serve(self.context, sock, port)
        except BaseException:
            sock.close()
            raise
        log.info(
            "%s: SMTP listening on %s:%d (connectors on port %d)", self.label, address, bound, port
        )
        return _Listener(binding, address, bound, server)

    async def _follow_listeners(self, config: TransportConfig) -> None:
        from casarray.transport.policy import listen_bindings

        wanted = {
            (self._listen_address(host), port): (host, port)
            for host, port in listen_bindings(config.connectors)
        }
        for key in list(self.listeners):
            if key not in wanted:
                listener = self.listeners.pop(key)
                listener.server.close()
                log.info("%s: SMTP no longer listens on %s:%d", self.label, *key)
        for key, binding in wanted.items():
            if key not in self.listeners:
                try:
                    self.listeners[key] = await self._open_listener(binding)
                except StartupError:
                    if self._status is None:
                        raise  # at start: the process can't serve
                    log.exception("%s: a new listener can't be opened", self.label)

    async def _follow_certificates(self) -> None:
        from casarray.transport.tls import SERVICE

        assert self.directory is not None and self.tls is not None
        try:
            certificates = await asyncio.to_thread(
                self.directory.certificates.serving, self.label, SERVICE
            )
        except Exception as exc:
            log.warning("%s: the SMTP certificates can't be read: %s", self.label, exc)
            return
        await asyncio.to_thread(self.tls.update, certificates)

    def started(self) -> None:
        self._status = status_file(self.label)
        self._write_status()

    def _write_status(self) -> None:
        if self._status is None:
            return
        self._status.write(
            {
                "pid": os.getpid(),
                "server": self.label,
                "address": self.address,
                "ports": {
                    str(listener.configured[1]): listener.port
                    for listener in self.listeners.values()
                },
                "listeners": [
                    {"address": one.address, "port": one.port, "connector_port": one.configured[1]}
                    for one in self.listeners.values()
                ],
                "queue": self.queue.where if self.queue is not None else None,
                "queue_url": self.queue.url if self.queue is not None else None,
                "message_tracking": str(self.tracking.path) if self.tracking is not None else None,
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )

    def jobs(self) -> list[Job]:
        assert self.deliverer is not None
        return [self.deliverer.run(), self.watch_directory()]

    async def watch_directory(self) -> None:
        from casarray.transport.config import load_config

        assert self.directory is not None and self.context is not None
        async for version in self.directory.watch(interval=0.2):
            if version == self.context.config.version:
                continue
            try:
                config = await asyncio.to_thread(load_config, self.directory, self.label)
            except Exception as exc:
                log.warning("%s: directory changed (version %d): %s", self.label, version, exc)
                continue
            self.context.config = config
            if self.mailboxes is not None:
                self.mailboxes.topology_changed()
            await self._follow_certificates()
            await self._follow_listeners(config)
            self._write_status()

    async def stop(self) -> None:
        for listener in self.listeners.values():
            listener.server.close()
        self.listeners.clear()
        if self._status is not None:
            self._status.remove()
        if self.mailboxes is not None:
            await asyncio.to_thread(self.mailboxes.close)
        if self.queue is not None:
            self.queue.close()
        if self.tracking is not None:
            self.tracking.close()
        if self.directory is not None:
            self.directory.close()


def run(options: TransportOptions) -> int:
    """`casarray transport run`: serve until SIGTERM or SIGINT; the exit status."""
    return run_process(
        lambda: TransportProcess(options),
        log_file=options.log_file,
        log_level=options.log_level,
        use_uvloop=options.use_uvloop,
    )
