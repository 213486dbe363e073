"""`casarray server run CAS01`: the process of one Client Access server's access services.

Everything comes from the directory: the server's address, its site's array (a name
its certificate must cover), and per login or request the user's database and its
endpoint, and the certificates enabled for its IMAP and IIS services (chosen by SNI,
followed live: `access.tls`). The server listens on its address for IMAP on 143
(STARTTLS) and 993 (implicit TLS) and HTTP on 80 and 443 (Autodiscover, autoconfig,
health checks, web mail, the JSON API), when the process may bind them, else on each
port plus 10000 (said once at start). `port_offset` or explicit ports override that;
when some ports are given and others not, the others are free ports (tests use port 0
throughout), reported in the status file.

With `processes` > 1 (the command line's default: one per CPU) a master process
(`access.cas_master`) starts that many worker processes, each serving every port on
its own socket with SO_REUSEPORT, so the kernel spreads connections over them and over
the CPUs; the services are stateless, so any worker answers any client. With
`processes` = 1 everything runs in this process.

While it runs, its status file (`process.status_file(CLIENT_ACCESS, server)`,
`$CASARRAY_HOME/run/cas-<server>.json`) says that the listeners are up and on which
ports; it is removed at exit. The life cycle is `process.ServiceProcess`'s: SIGTERM and
SIGINT close the listeners, say BYE to every IMAP session once its current command has
finished, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.process import status
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess
from casarray.process.pool import announce_ready
from casarray.process.ports import UNPRIVILEGED_OFFSET

if TYPE_CHECKING:
    import uvicorn

    from casarray.access.http import AppContext
    from casarray.access.http.health_pages import HealthContext
    from casarray.access.imap.directory_backend import DirectoryBackend
    from casarray.access.imap.server import ImapServer
    from casarray.access.tls import CertificateFiles, TlsContexts
    from casarray.directory import Directory

log = logging.getLogger("casarray.server")

# The listeners of a Client Access server, in the order they are bound.
SERVICES = ("imap", "imaps", "http", "https")
STANDARD_PORTS = {"imap": 143, "imaps": 993, "http": 80, "https": 443}
SUBMISSION_PORT = 587
BACKLOG = 1024
HTTP_START_TIMEOUT = 10.0
# How many worker processes share the server's ports (set by the master for its
# workers): each counts its own connections against its share of the limits.
WORKERS_ENV = "CASARRAY_CAS_WORKERS"
GC_THRESHOLD = 20_000  # allocations between two collections of young objects (default 700)


@dataclass
class RunOptions:
    server: str
    directory: str | None = None
    port_offset: int | None = None
    imap_port: int | None = None
    imaps_port: int | None = None
    http_port: int | None = None
    https_port: int | None = None
    processes: int = 1  # worker processes (1: serve in this process)
    threads: int = 16  # threads per process for the mailbox store
    allow_plaintext_login: bool = False  # LOGIN without TLS: benchmarks on loopback only
    use_uvloop: bool = True
    log_file: str | None = None
    log_level: str = "INFO"
    worker_index: int | None = None  # set in the worker processes of a supervisor
    extra: dict[str, Any] = field(default_factory=dict)

    def requested_ports(self) -> tuple[dict[str, int], bool]:
        """(port per service, whether the caller chose them). Unchosen: the standard
        ports plus the offset; when some are chosen, the others are 0 (free ports)."""
        explicit = {service: getattr(self, f"{service}_port") for service in SERVICES}
        some_explicit = any(port is not None for port in explicit.values())
        offset = self.port_offset or 0
        ports: dict[str, int] = {}
        for service in SERVICES:
            port = explicit[service]
            if port is not None:
                ports[service] = port
            elif some_explicit and self.port_offset is None:
                ports[service] = 0
            else:
                ports[service] = STANDARD_PORTS[service] + offset
        return ports, some_explicit or self.port_offset is not None


def status_file(server: str, home: Path | None = None) -> status.StatusFile:
    """The file that says a server's listeners are up (JSON), while they are."""
    return status.status_file(status.CLIENT_ACCESS, server, home)


def read_status(server: str, home: Path | None = None) -> dict[str, Any] | None:
    """The status of a running server's services, or None when it isn't running."""
    return status_file(server, home).read()


def certificate_names(directory: Directory, server: str) -> list[str]:
    """What the server's certificate covers: its FQDN, its address, its site's array."""
    record = directory.servers.one(server)
    policy = directory.servers.rpc_access_policy(record.name)
    names = [record.fqdn, record.ip_address]
    if policy.array_fqdn:
        names.append(policy.array_fqdn)
    return names


def proxy_sources(directory: Directory, server: str) -> frozenset[str]:
    """The balancers that open IMAP connections (port 143) to `server` with a PROXY
    protocol header: the cluster IP of the NLB cluster it is a node of when its rule for
    143 says -ProxyProtocol (the Proxy data plane connects from the cluster IP)."""
    from casarray.directory.errors import DirectoryError

    try:
        return directory.nlb.proxy_sources(server, STANDARD_PORTS["imap"])
    except DirectoryError:
        return frozenset()


def open_server(options: RunOptions) -> tuple[Directory, str, str]:
    """Open the directory; (directory, the server's name, its address). Refuses a
    server that isn't a Client Access server. Blocking."""
    from casarray.directory import Directory, DirectoryError

    try:
        directory = Directory.open(options.directory)
        record = directory.servers.one(options.server)
    except DirectoryError as exc:
        raise StartupError(str(exc)) from exc
    if not record.is_client_access_server:
        directory.close()
        raise StartupError(
            f"The server '{record.name}' isn't a Client Access server (its roles: "
            f"{record.roles}); only Client Access servers run the access services."
        )
    return directory, record.name, record.ip_address


def ensure_certificate(directory: Directory, name: str) -> tuple[CertificateFiles, list[str]]:
    """The server's certificate (made, or renewed when its names changed). Blocking."""
    from casarray.access import tls

    names = certificate_names(directory, name)
    files, made = tls.ensure_certificate(name, names)
    log.info(
        "%s: %s certificate %s for %s",
        name,
        "made a self-signed" if made else "using the",
        files.certificate,
        ", ".join(names),
    )
    return files, names


def bind_socket(host: str, port: int, *, reuse_port: bool, listen: bool = True) -> socket.socket:
    """A TCP socket bound to host:port (listening unless `listen` is False: a
    supervisor's placeholder that holds a port for its workers)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_services(
    host: str, ports: dict[str, int], *, reuse_port: bool, listen: bool = True
) -> dict[str, socket.socket]:
    """One socket per service; all or none (OSError, PermissionError for a low port)."""
    sockets: dict[str, socket.socket] = {}
    try:
        for service in SERVICES:
            sockets[service] = bind_socket(
                host, ports[service], reuse_port=reuse_port, listen=listen
            )
    except BaseException:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


def open_listeners(
    name: str, host: str, options: RunOptions, *, reuse_port: bool, listen: bool = True
) -> tuple[dict[str, socket.socket], dict[str, int]]:
    """Bind every service's socket on the standard ports (or those chosen); when the
    process may not bind low ports and none were chosen, on each plus 10000, said
    once. Returns the sockets and the ports they are bound to."""
    ports, chosen = options.requested_ports()
    try:
        sockets = bind_services(host, ports, reuse_port=reuse_port, listen=listen)
    except PermissionError:
        if chosen:
            raise StartupError(
                f"{name}: may not bind ports {', '.join(map(str, ports.values()))} on "
                f"{host} (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
            ) from None
        ports = {service: port + UNPRIVILEGED_OFFSET for service, port in ports.items()}
        log.warning(
            "%s: this process may not bind ports below 1024; the services use the "
            "standard ports plus %d: IMAP %d (STARTTLS) and %d (TLS), HTTP %d and HTTPS %d",
            name,
            UNPRIVILEGED_OFFSET,
            ports["imap"],
            ports["imaps"],
            ports["http"],
            ports["https"],
        )
        try:
            sockets = bind_services(host, ports, reuse_port=reuse_port, listen=listen)
        except OSError as exc:
            raise StartupError(f"{name}: can't listen on {host}: {exc}") from exc
    except OSError as exc:
        raise StartupError(f"{name}: can't listen on {host}: {exc}") from exc
    bound = {service: int(sock.getsockname()[1]) for service, sock in sockets.items()}
    return sockets, bound


def advertised_offset(ports: dict[str, int]) -> int:
    """The offset of the ports from the standard ones when they all share one (10000
    on an unprivileged lab), else 0: the submission port told to clients follows it."""
    offsets = {ports[service] - STANDARD_PORTS[service] for service in SERVICES}
    return offsets.pop() if len(offsets) == 1 else 0


class ClientAccessProcess(ServiceProcess):
    """The running access services of one Client Access server, in this process
    (alone, or as one worker process of a `ClientAccessMaster`)."""

    log = log

    def __init__(self, options: RunOptions) -> None:
        super().__init__()
        self.label = options.server
        self.options = options
        self.directory: Directory | None = None
        self.backend: DirectoryBackend | None = None
        self.imap: ImapServer | None = None
        self.health: HealthContext | None = None
        self.http_context: AppContext | None = None
        self.http: list[uvicorn.Server] = []
        self.ports: dict[str, int] = {}
        self.address = ""
        self._http_tasks: list[asyncio.Task[None]] = []
        self._cert_names: list[str] = []
        self._cert_files: CertificateFiles | None = None
        self.tls: dict[str, TlsContexts] = {}  # per service (IMAP, IIS)
        self._status: status.StatusFile | None = None

    @property
    def is_worker(self) -> bool:
        return self.options.worker_index is not None

    @property
    def workers(self) -> int:
        """The worker processes of this server (1: this process serves alone); the
        master tells its workers how many they are in WORKERS_ENV."""
        if not self.is_worker:
            return 1
        try:
            return max(1, int(os.environ.get(WORKERS_ENV, "1")))
        except ValueError:
            return 1

    async def start(self) -> None:
        from casarray.access import tls
        from casarray.access.imap.directory_backend import DirectoryBackend
        from casarray.access.imap.server import DEFAULT_LIMITS as IMAP_LIMITS
        from casarray.access.imap.server import ImapServer
        from casarray.process.limits import raise_fd_limit

        directory, name, address = await asyncio.to_thread(open_server, self.options)
        self.directory = directory
        if self.is_worker:  # the master made it; renewals come with SIGHUP
            files = tls.certificate_files(name)
        else:
            files, self._cert_names = await asyncio.to_thread(ensure_certificate, directory, name)
        self._cert_files = files
        self.tls = {
            service: tls.TlsContexts(service, files, server=name) for service in tls.SERVICES
        }
        await self._follow_certificates(name)
        self.backend = DirectoryBackend(directory, name)
        raise_fd_limit()  # as many connections as the machine allows this process
        self.imap = ImapServer(
            self.backend,
            name=name,
            host=address,
            ssl_context=self.tls[tls.IMAP].context,
            workers=self.options.threads,
            allow_plaintext=self.options.allow_plaintext_login,
            # each worker process counts its own: its share of the server's limits
            connection_limits=IMAP_LIMITS.per_worker(self.workers),
        )
        if self.options.allow_plaintext_login and not self.is_worker:
            log.warning("%s: LOGIN is allowed without TLS (--allow-plaintext-login)", name)
        sockets, self.ports = open_listeners(name, address, self.options, reuse_port=self.is_worker)
        try:
            await self.imap.serve(sockets["imap"], sockets["imaps"])
            await self._start_http(name, address, sockets["http"], sockets["https"])
        except BaseException:
            for sock in sockets.values():
                sock.close()
            raise
        log.info(
            "%s: IMAP listening on %s; HTTP on %s:%d and HTTPS on %s:%d",
            name,
            " and ".join(listener.label for listener in self.imap.listeners),
            address,
            self.ports["http"],
            address,
            self.ports["https"],
        )
        await self._follow_balancers()
        self.label, self.address = name, address

    def started(self) -> None:
        # What is loaded by now (modules, the directory's snapshot) stays for the
        # process's life: out of the cyclic collector's sight, and young objects
        # collected less often, so that no collection of everything pauses a command
        # (while it holds a database's write lock, say).
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 100)
        if self.is_worker:  # tell the master
            announce_ready()
            return
        self._status = status_file(self.label)
        self._status.write(self.status(self.label, self.address, [os.getpid()]))

    def jobs(self) -> list[Job]:
        return [self.watch_directory()]

    def signal_handlers(self) -> dict[int, Callable[[], None]]:
        # a worker: the master renewed the self-signed certificate
        return {signal.SIGHUP: self.reload_certificate} if self.is_worker else {}

    async def _follow_certificates(self, name: str) -> None:
        """Serve the certificates enabled for IMAP and IIS on this server (at start and
        after each change); the self-signed one while none is."""
        from casarray.access import tls

        assert self.directory is not None
        try:
            names = await asyncio.to_thread(certificate_names, self.directory, name)
            await asyncio.to_thread(tls.refresh, self.directory, name, names, self.tls.values())
        except Exception as exc:  # e.g. the server was removed meanwhile
            log.warning("%s: can't read the enabled certificates: %s", name, exc)

    async def _follow_balancers(self) -> None:
        """Which balancers send PROXY headers on the IMAP port (after each change)."""
        assert self.directory is not None and self.imap is not None
        try:
            sources = await asyncio.to_thread(proxy_sources, self.directory, self.options.server)
        except Exception as exc:
            log.warning("%s: can't read the NLB clusters: %s", self.options.server, exc)
            return
        port = self.ports["imap"]
        if self.imap.proxy_sources.get(port, frozenset()) != sources:
            self.imap.proxy_sources = {port: sources} if sources else {}
            if sources:
                log.info(
                    "%s: IMAP connections from %s begin with a PROXY header",
                    self.options.server,
                    ", ".join(sorted(sources)),
                )

    def status(self, name: str, address: str, pids: list[int]) -> dict[str, Any]:
        assert self.backend is not None and self._cert_files is not None
        return service_status(
            name, self.backend.server_fqdn, address, self.ports, self._cert_files, pids
        )

    async def _start_http(
        self, name: str, address: str, plain: socket.socket, tls_socket: socket.socket
    ) -> None:
        from casarray.access.http import AppContext, ServicePorts, create_app, default_services
        from casarray.access.http.app import http_server
        from casarray.access.http.health_pages import HealthContext, health_routes, probe_imap
        from casarray.access.http.limits import HttpLimits
        from casarray.access.tls import IIS
        from casarray.process.limits import ConnectionCounter, raise_fd_limit

        assert self.directory is not None
        offset = advertised_offset(self.ports)
        ports = ServicePorts(
            http=self.ports["http"],
            https=self.ports["https"],
            imap=self.ports["imap"],
            imaps=self.ports["imaps"],
            submission=SUBMISSION_PORT + offset,
        )
        context = await asyncio.to_thread(AppContext.for_server, self.directory, name, ports=ports)
        context.credentials.followed = True  # watch_directory feeds it the versions
        self.http_context = context
        imap_port = self.ports["imap"]
        self.health = HealthContext.of(context, imap_probe=lambda: probe_imap(address, imap_port))
        health = self.health
        app = create_app(context, [*default_services(), lambda _: health_routes(health)])
        https = self.tls[IIS].context
        # one count of connections for both ports, each worker its share
        limits = HttpLimits()
        counter = ConnectionCounter(
            limits.connections.per_worker(self.workers).within_fd_limit(raise_fd_limit())
        )
        for sock, ssl_context in ((plain, None), (tls_socket, https)):
            server = http_server(app, ssl_context=ssl_context, limits=limits, counter=counter)
            self.http.append(server)
            self._http_tasks.append(asyncio.ensure_future(server.serve(sockets=[sock])))
        deadline = time.monotonic() + HTTP_START_TIMEOUT
        while not all(server.started for server in self.http):
            for task in self._http_tasks:
                if task.done():  # uvicorn gave up (it logs why)
                    raise StartupError(f"{name}: the HTTP service didn't start")
            if time.monotonic() > deadline:
                raise StartupError(f"{name}: the HTTP service didn't start in time")
            await asyncio.sleep(0.01)

    def reload_certificate(self) -> None:
        """Load the self-signed certificate's files again (a worker, told by SIGHUP that
        the supervisor renewed them); served from the next handshake on."""
        try:
            for contexts in self.tls.values():
                contexts.reload_fallback()
        except (OSError, ssl.SSLError) as exc:
            log.error("can't load the renewed certificate: %s", exc)
        else:
            log.info("loaded the renewed certificate")

    async def watch_directory(self) -> None:
        """Follow the topology: drop cached lookups at each change, and renew the
        certificate when the names it must cover change (an array created, say)."""
        from casarray.access import tls

        assert self.directory is not None and self.backend is not None
        name = self.backend.server_name
        async for version in self.directory.watch(interval=0.2):
            self.backend.topology_changed(version)
            await self._follow_balancers()
            await self._follow_certificates(name)
            if self.health is not None:
                self.health.topology_changed(version)
            if self.http_context is not None:
                self.http_context.credentials.topology_changed(version)
                self.http_context.answers.topology_changed(version)
            if self.is_worker:
                continue
            try:
                names = await asyncio.to_thread(certificate_names, self.directory, name)
            except Exception as exc:  # e.g. the server was removed meanwhile
                log.warning("%s: directory changed (version %d): %s", name, version, exc)
                continue
            if names != self._cert_names and self.tls:
                await asyncio.to_thread(tls.ensure_certificate, name, names)
                for contexts in self.tls.values():
                    contexts.reload_fallback()
                self._cert_names = names
                log.info("%s: new certificate for %s", name, ", ".join(names))

    async def stop(self) -> None:
        for server in self.http:
            server.should_exit = True
        if self.imap is not None:
            started = time.monotonic()
            count = self.imap.connections
            await self.imap.shutdown()
            log.info(
                "%s: IMAP stopped (%d sessions closed in %.2f s)",
                self.imap.name,
                count,
                time.monotonic() - started,
            )
        for task in self._http_tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 10)
        from casarray.access import submission

        await asyncio.to_thread(submission.close_pool)  # QUIT the kept hub sessions
        if self._status is not None:
            self._status.remove()
        if self.backend is not None:
            await asyncio.to_thread(self.backend.close)
        if self.directory is not None:
            self.directory.close()


def service_status(
    name: str,
    fqdn: str,
    address: str,
    ports: dict[str, int],
    files: CertificateFiles,
    pids: list[int],
) -> dict[str, Any]:
    """What the status file says of a running server."""
    return {
        "server": name,
        "fqdn": fqdn,
        "pid": os.getpid(),
        "host": address,
        **{service: ports[service] for service in SERVICES},
        "processes": pids,
        "certificate": str(files.certificate),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
