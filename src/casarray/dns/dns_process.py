"""`casarray dns run`: the process of the organization's authoritative DNS server.

It serves the zones of the directory (`dns.zones.build_zones`: every zone, in an inside
and an outside view) on the DNS server's address (`Set-DnsServerSetting
-ListeningIPAddress`, default 127.77.0.53) or `--address`, over UDP and TCP on port 53
when the process may bind it, else on 10053 (said once at start); `--port-offset N`
makes it 53+N, `--port P` exactly P (0: a free port).

It follows the directory (`Directory.watch`, every 0.2 s, at once on PostgreSQL): after
a change the zones are built again and answered from within a second, their SOA
serial being the directory's new version. A build that fails keeps the zones served.

With `--processes N` (N > 1) this process and N-1 worker processes (`casarray dns run
--port P --worker I`) each bind both sockets with SO_REUSEPORT, so the kernel spreads
queries over them; each process follows the directory itself. A worker that dies is
started again (after 0.5 s, doubling up to 30 s while it keeps dying), and dies with
this process (PR_SET_PDEATHSIG).

While it runs, its status file (`$CASARRAY_HOME/run/dns.json`) says where it listens,
the serial this process serves and the processes' ids; it is removed at exit. SIGTERM
and SIGINT stop it (exit status 0).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.process import status
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess, run_process
from casarray.process.pool import WorkerPool, announce_ready
from casarray.process.ports import UNPRIVILEGED_OFFSET

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.dns.server import DnsServer
    from casarray.dns.zones import ZoneSet

log = logging.getLogger("casarray.dns")

STANDARD_PORT = 53
FOLLOW_INTERVAL = 0.2
BIND_TRIES = 20  # for port 0: a free TCP port whose UDP twin is free too


@dataclass
class DnsOptions:
    directory: str | None = None
    address: str | None = None  # None: the directory's ListeningIPAddress
    port_offset: int | None = None
    port: int | None = None  # exact port (0: any free one); overrides the offset
    processes: int = 1
    worker_index: int | None = None  # set in the worker processes
    use_uvloop: bool = True
    log_file: str | None = None
    log_level: str = "INFO"


def status_file(home: Path | None = None) -> status.StatusFile:
    """The file that says the DNS server is up (JSON), while it is."""
    return status.status_file(status.DNS, home=home)


def read_status(home: Path | None = None) -> dict[str, Any] | None:
    """What the running DNS server says of itself, or None when none runs."""
    return status_file(home).read()


def bind_pair(address: str, port: int, *, reuse_port: bool) -> tuple[socket.socket, socket.socket]:
    """A UDP socket and a listening TCP socket on address:port (port 0: the same free
    port for both). All or nothing: OSError (PermissionError for a low port)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    tries = BIND_TRIES if port == 0 else 1
    for attempt in range(tries):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            for sock in (tcp, udp):
                if sock is tcp:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.bind((address, port))
            udp.bind((address, tcp.getsockname()[1]))
            tcp.listen(1024)
            tcp.setblocking(False)
            udp.setblocking(False)
        except OSError:
            tcp.close()
            udp.close()
            if port == 0 and attempt < tries - 1:
                continue  # the UDP twin of that free TCP port was taken
            raise
        return udp, tcp
    raise AssertionError("unreachable")


def open_sockets(
    options: DnsOptions, address: str, *, reuse_port: bool
) -> tuple[socket.socket, socket.socket, int]:
    """Bind UDP and TCP on the port the options ask for: exactly `port`, else 53 plus
    the offset; when the process may not bind port 53 and nothing was asked, 10053,
    said once. Returns the sockets and their port."""
    if options.port is not None:
        port, chosen = options.port, True
    else:
        port, chosen = STANDARD_PORT + (options.port_offset or 0), options.port_offset is not None
    try:
        udp, tcp = bind_pair(address, port, reuse_port=reuse_port)
    except PermissionError:
        if chosen:
            raise StartupError(
                f"DNS: may not bind port {port} on {address} (ports below 1024 need root "
                "or CAP_NET_BIND_SERVICE)"
            ) from None
        port += UNPRIVILEGED_OFFSET
        log.warning(
            "DNS: this process may not bind ports below 1024; the DNS server uses port "
            "%d (53 plus %d)",
            port,
            UNPRIVILEGED_OFFSET,
        )
        try:
            udp, tcp = bind_pair(address, port, reuse_port=reuse_port)
        except OSError as exc:
            raise StartupError(f"DNS: can't listen on {address} port {port}: {exc}") from exc
    except OSError as exc:
        raise StartupError(f"DNS: can't listen on {address} port {port}: {exc}") from exc
    return udp, tcp, int(tcp.getsockname()[1])


def load(options: DnsOptions) -> tuple[Directory, int, ZoneSet, str]:
    """Open the directory; (directory, its topology version read before the zones, the
    zones, the address to listen on). Blocking."""
    from casarray.directory import Directory, DirectoryError
    from casarray.dns.zones import build_zones, listen_address

    try:
        directory = Directory.open(options.directory)
    except DirectoryError as exc:
        raise StartupError(str(exc)) from exc
    try:
        version = directory.topology_version()
        zones = build_zones(directory)
        address = options.address or listen_address(directory)
    except DirectoryError as exc:
        directory.close()
        raise StartupError(str(exc)) from exc
    except BaseException:
        directory.close()
        raise
    return directory, version, zones, address


def zone_names(zones: ZoneSet) -> list[str]:
    return [zone.origin.to_text(omit_final_dot=True) for zone in zones.inside if zone.origin]


class DnsProcess(ServiceProcess):
    """The DNS server in this process, and its worker processes if it has any."""

    label = "DNS"
    log = log

    def __init__(self, options: DnsOptions) -> None:
        super().__init__()
        self.quiet = options.worker_index is not None
        self.options = options
        self.directory: Directory | None = None
        self.server: DnsServer | None = None
        self.address = ""
        self.port = 0
        self.serial = 0
        self.version = 0  # the directory's topology version the zones were built after
        self.zones: list[str] = []
        workers = 0 if self.is_worker else max(0, options.processes - 1)
        self.pool = WorkerPool(
            "DNS", self.command, workers, on_restarted=self._write_status, log=log
        )
        self._status: status.StatusFile | None = None
        self._started = ""

    @property
    def is_worker(self) -> bool:
        return self.options.worker_index is not None

    async def start(self) -> None:
        from casarray.dns.handler import Responder
        from casarray.dns.server import DnsServer

        self.directory, self.version, zones, self.address = await asyncio.to_thread(
            load, self.options
        )
        responder = await asyncio.to_thread(Responder, zones)
        self.serial, self.zones = zones.serial, zone_names(zones)
        reuse = self.is_worker or self.options.processes > 1
        udp, tcp, self.port = open_sockets(self.options, self.address, reuse_port=reuse)
        self.server = DnsServer(responder)
        try:
            await self.server.start(udp, tcp)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        if self.is_worker:
            return
        await self.pool.start()
        log.info(
            "DNS: %s on %s port %d (UDP and TCP), serial %d, %d process%s",
            ", ".join(self.zones) or "no zones",
            self.address,
            self.port,
            self.serial,
            1 + len(self.pool.workers),
            "es" if self.pool.workers else "",
        )

    def started(self) -> None:
        if self.is_worker:  # tell the first process
            announce_ready()
            return
        self._started = datetime.now(UTC).isoformat(timespec="seconds")
        self._status = status_file()
        self._write_status()

    def jobs(self) -> list[Job]:
        wanted = [self.follow()]
        if self.pool.workers:
            wanted.append(self.pool.supervise(self.stopping))
        return wanted

    def _write_status(self) -> None:
        if self._status is None:
            return
        pids = [os.getpid(), *self.pool.pids()]
        self._status.write(
            {
                "pid": os.getpid(),
                "address": self.address,
                "port": self.port,
                "serial": self.serial,
                "zones": self.zones,
                "processes": pids,
                "started": self._started,
            },
        )

    async def follow(self) -> None:
        """Build the zones again after every directory change, and answer from them."""
        from casarray.dns.handler import Responder
        from casarray.dns.zones import build_zones

        assert self.directory is not None and self.server is not None
        directory = self.directory
        async for version in directory.watch(interval=FOLLOW_INTERVAL):
            if version == self.version:
                continue
            self.version = version
            try:
                zones = await asyncio.to_thread(build_zones, directory)
                responder = await asyncio.to_thread(Responder, zones)
            except Exception as exc:
                log.error("DNS: can't build the zones of version %d: %s", version, exc)
                continue
            self.server.responder = responder
            if zones.serial != self.serial or zone_names(zones) != self.zones:
                self.serial, self.zones = zones.serial, zone_names(zones)
                if not self.is_worker:
                    log.info("DNS: serial %d (%s)", self.serial, ", ".join(self.zones))
                self._write_status()

    # -- worker processes ------------------------------------------------------------

    def command(self, index: int) -> list[str]:
        opts = self.options
        args = [sys.executable, "-m", "casarray", "dns", "run", "--address", self.address]
        args += ["--port", str(self.port), "--processes", "1", "--worker", str(index)]
        if opts.directory:
            args += ["--directory", opts.directory]
        args += ["--log-level", opts.log_level]
        if opts.log_file:
            args += ["--log-file", opts.log_file]
        if not opts.use_uvloop:
            args.append("--no-uvloop")
        return args

    async def stop(self) -> None:
        await self.pool.stop()
        if self.server is not None:
            await self.server.close()
        if self._status is not None:
            self._status.remove()
        if self.directory is not None:
            self.directory.close()


def run(options: DnsOptions) -> int:
    """Run until SIGTERM or SIGINT; the exit status."""
    return run_process(
        lambda: DnsProcess(options),
        log_file=options.log_file,
        log_level=options.log_level,
        worker_index=options.worker_index,
        use_uvloop=options.use_uvloop,
    )
