"""`casarray server run CAS01`: its `run()`, and the master process of a multi-process
server (`--processes N`).

One Python process runs on one core at a time (the GIL), so a Client Access server
that must use the machine runs N worker processes. The supervisor:

- opens the directory, makes or renews the server's certificate, and binds a
  placeholder socket per service with SO_REUSEPORT and no `listen()`: it holds the
  ports (and turns port 0 into a real port) without taking connections;
- starts N workers (`casarray server run CAS01 --worker I` with the exact ports),
  each binding its own listening sockets on those ports with SO_REUSEPORT, so the
  kernel spreads new connections over them; a worker says `ready` on its stdout
  once it serves, and the master writes the status file when all have;
- restarts a worker that dies (after 0.5 s, doubling up to 30 s while it keeps
  dying), and says so in the log; the other workers go on serving meanwhile;
- follows the directory and renews the self-signed certificate when the names it
  must cover change, then tells the workers to load it (SIGHUP); the certificates
  enabled for IMAP and IIS each worker follows itself in the directory (`access.tls`);
- on SIGTERM or SIGINT passes the signal on, waits for the workers to finish their
  sessions, and exits 0. A worker dies with its master (PR_SET_PDEATHSIG), also
  when the master is killed with kill -9.

The workers share nothing but the directory and the mailbox databases, as Client
Access servers of an array do; what each keeps per process (cached lookups, the
failed-login counters) is per worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from casarray.access.cas_process import (
    SERVICES,
    WORKERS_ENV,
    ClientAccessProcess,
    RunOptions,
    certificate_names,
    ensure_certificate,
    open_listeners,
    open_server,
    service_status,
    status_file,
)
from casarray.process.lifecycle import Job, ServiceProcess, run_process
from casarray.process.pool import WorkerPool
from casarray.process.status import StatusFile

if TYPE_CHECKING:
    import socket

    from casarray.access.tls import CertificateFiles
    from casarray.directory import Directory

log = logging.getLogger("casarray.server")


class ClientAccessMaster(ServiceProcess):
    """Runs `options.processes` workers of one Client Access server."""

    log = log

    def __init__(self, options: RunOptions) -> None:
        super().__init__()
        self.label = options.server
        self.options = options
        self.pool = WorkerPool(
            options.server,
            self.command,
            options.processes,
            on_restarted=self._write_status,
            log=log,
        )
        self.directory: Directory | None = None
        self.name = options.server
        self.address = ""
        self.fqdn = ""
        self.ports: dict[str, int] = {}
        self._placeholders: dict[str, socket.socket] = {}
        self._cert_files: CertificateFiles | None = None
        self._cert_names: list[str] = []
        self._status: StatusFile | None = None

    def command(self, index: int) -> list[str]:
        """The command line of worker `index`."""
        opts = self.options
        args = [sys.executable, "-m", "casarray", "server", "run", self.name]
        if opts.directory:
            args += ["--directory", opts.directory]
        for service in SERVICES:
            args += [f"--{service}-port", str(self.ports[service])]
        args += ["--processes", "1", "--worker", str(index), "--threads", str(opts.threads)]
        args += ["--log-level", opts.log_level]
        if opts.log_file:
            args += ["--log-file", opts.log_file]
        if not opts.use_uvloop:
            args.append("--no-uvloop")
        if opts.allow_plaintext_login:
            args.append("--allow-plaintext-login")
        return args

    async def start(self) -> None:
        directory, self.name, self.address = await asyncio.to_thread(open_server, self.options)
        self.directory = directory
        record = await asyncio.to_thread(directory.servers.one, self.name)
        self.fqdn = record.fqdn
        self._cert_files, self._cert_names = await asyncio.to_thread(
            ensure_certificate, directory, self.name
        )
        self._placeholders, self.ports = open_listeners(
            self.name, self.address, self.options, reuse_port=True, listen=False
        )
        if self.options.allow_plaintext_login:
            log.warning("%s: LOGIN is allowed without TLS (--allow-plaintext-login)", self.name)
        # the workers count their connections each against their share of the limits
        os.environ[WORKERS_ENV] = str(self.options.processes)
        await self.pool.start()
        log.info(
            "%s: %d worker processes serve IMAP on %s:%d (STARTTLS) and %s:%d (TLS), "
            "HTTP on %s:%d and HTTPS on %s:%d",
            self.name,
            len(self.pool.workers),
            *(part for service in SERVICES for part in (self.address, self.ports[service])),
        )
        self.label = self.name

    def started(self) -> None:
        self._status = status_file(self.name)
        self._write_status()

    def jobs(self) -> list[Job]:
        return [self.pool.supervise(self.stopping), self.watch_directory()]

    def _write_status(self) -> None:
        if self._status is None or self._cert_files is None:
            return
        pids = self.pool.pids()
        self._status.write(
            service_status(self.name, self.fqdn, self.address, self.ports, self._cert_files, pids)
        )

    async def watch_directory(self) -> None:
        """Renew the certificate when its names change, and tell the workers."""
        from casarray.access import tls

        assert self.directory is not None
        async for version in self.directory.watch(interval=0.2):
            try:
                names = await asyncio.to_thread(certificate_names, self.directory, self.name)
            except Exception as exc:  # e.g. the server was removed meanwhile
                log.warning("%s: directory changed (version %d): %s", self.name, version, exc)
                continue
            if names == self._cert_names:
                continue
            await asyncio.to_thread(tls.ensure_certificate, self.name, names)
            self._cert_names = names
            log.info("%s: new certificate for %s", self.name, ", ".join(names))
            self.pool.signal(signal.SIGHUP)

    async def stop(self) -> None:
        await self.pool.stop()
        for sock in self._placeholders.values():
            sock.close()
        if self._status is not None:
            self._status.remove()
        if self.directory is not None:
            self.directory.close()
        log.info("%s: stopped", self.name)


def default_processes() -> int:
    """One worker process per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def run(options: RunOptions) -> int:
    """`casarray server run`: the server in this process (`--processes 1`, or a worker),
    else a master with its workers; until SIGTERM or SIGINT. The exit status."""

    def make() -> ServiceProcess:
        if options.processes > 1 and options.worker_index is None:
            return ClientAccessMaster(options)
        return ClientAccessProcess(options)

    return run_process(
        make,
        log_file=options.log_file,
        log_level=options.log_level,
        worker_index=options.worker_index,
        use_uvloop=options.use_uvloop,
    )
