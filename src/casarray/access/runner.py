"""`casarray server run CAS01`: run the access services of one Client Access server.

Everything comes from the directory: the server's address, its site's array (a name
its certificate must cover), and per login the user's database and its
RpcClientAccessServer. The IMAP service listens on the server's address, on 143
(STARTTLS) and 993 (implicit TLS) when the process may bind them, else on 10143 and
10993 (each plus 10000, said once at start); `port_offset` or explicit ports override
that (tests use port 0: a free port, reported in the status file).

While it runs, `$CASARRAY_HOME/run/<server>.imap.json` says that the IMAP listeners
are up and on which ports (the HTTP service's health check reads it); it is removed at
exit. SIGTERM and SIGINT close the listeners, say BYE to every session once its
current command has finished, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.config import casarray_home

if TYPE_CHECKING:
    from casarray.access.imap.directory_backend import DirectoryBackend
    from casarray.access.imap.server import ImapServer
    from casarray.directory import Directory

log = logging.getLogger("casarray.server")

STANDARD_PORTS = {"imap": 143, "imaps": 993}
UNPRIVILEGED_OFFSET = 10_000
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class StartupError(Exception):
    """The server can't start (unknown server, not a Client Access server, port taken)."""


@dataclass
class RunOptions:
    server: str
    directory: str | None = None
    port_offset: int | None = None
    imap_port: int | None = None
    imaps_port: int | None = None
    workers: int = 16
    allow_plaintext_login: bool = False  # LOGIN without TLS: benchmarks on loopback only
    use_uvloop: bool = True
    log_file: str | None = None
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)


def status_file(server: str, home: Path | None = None) -> Path:
    """The file that says a server's IMAP listeners are up (JSON), while they are."""
    return (home or casarray_home()) / "run" / f"{server}.imap.json"


def read_status(server: str, home: Path | None = None) -> dict[str, Any] | None:
    """The status of a running server's IMAP service, or None when it isn't running."""
    path = status_file(server, home)
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return dict(status)


def _write_status(path: Path, status: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(status, indent=2) + "\n")
    os.replace(tmp, path)


def _remove_status(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


@contextlib.contextmanager
def _logging(options: RunOptions) -> Iterator[None]:
    handler: logging.Handler
    if options.log_file:
        Path(options.log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(options.log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    root = logging.getLogger("casarray")
    root.addHandler(handler)
    previous = root.level
    root.setLevel(options.log_level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()


def certificate_names(directory: Directory, server: str) -> list[str]:
    """What the server's certificate covers: its FQDN, its address, its site's array."""
    record = directory.servers.one(server)
    policy = directory.servers.rpc_access_policy(record.name)
    names = [record.fqdn, record.ip_address]
    if policy.array_fqdn:
        names.append(policy.array_fqdn)
    return names


class Runner:
    """The running access services of one Client Access server."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.directory: Directory | None = None
        self.backend: DirectoryBackend | None = None
        self.imap: ImapServer | None = None
        self.stopping = asyncio.Event()
        self._cert_names: list[str] = []
        self._status_path: Path | None = None

    def _open(self) -> tuple[str, str]:
        """Open the directory; the server's name and address. Blocking."""
        from casarray.directory import Directory, DirectoryError

        try:
            self.directory = Directory.open(self.options.directory)
            record = self.directory.servers.one(self.options.server)
        except DirectoryError as exc:
            raise StartupError(str(exc)) from exc
        if not record.is_client_access_server:
            raise StartupError(
                f"The server '{record.name}' isn't a Client Access server (its roles: "
                f"{record.roles}); only Client Access servers run the access services."
            )
        return record.name, record.ip_address

    def _ports(self) -> tuple[int, int, bool]:
        """(IMAP port, IMAPS port, whether they were chosen by the caller)."""
        opts = self.options
        offset = opts.port_offset or 0
        imap = opts.imap_port if opts.imap_port is not None else STANDARD_PORTS["imap"] + offset
        imaps = opts.imaps_port if opts.imaps_port is not None else STANDARD_PORTS["imaps"] + offset
        chosen = (
            opts.port_offset is not None
            or opts.imap_port is not None
            or opts.imaps_port is not None
        )
        return imap, imaps, chosen

    async def start(self) -> None:
        from casarray.access import tls
        from casarray.access.imap.directory_backend import DirectoryBackend
        from casarray.access.imap.server import ImapServer

        name, address = await asyncio.to_thread(self._open)
        assert self.directory is not None
        self._cert_names = await asyncio.to_thread(certificate_names, self.directory, name)
        files, made = await asyncio.to_thread(tls.ensure_certificate, name, self._cert_names)
        context = tls.server_context(files)
        log.info(
            "%s: %s certificate %s for %s",
            name,
            "made a self-signed" if made else "using the",
            files.certificate,
            ", ".join(self._cert_names),
        )
        self.backend = DirectoryBackend(self.directory, name)
        self.imap = ImapServer(
            self.backend,
            name=name,
            host=address,
            ssl_context=context,
            workers=self.options.workers,
            allow_plaintext=self.options.allow_plaintext_login,
        )
        if self.options.allow_plaintext_login:
            log.warning("%s: LOGIN is allowed without TLS (--allow-plaintext-login)", name)
        imap_port, imaps_port, chosen = self._ports()
        try:
            await self.imap.start(imap_port, imaps_port)
        except PermissionError:
            if chosen:
                raise StartupError(
                    f"{name}: may not bind port {imap_port} or {imaps_port} on {address} "
                    "(ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                ) from None
            imap_port += UNPRIVILEGED_OFFSET
            imaps_port += UNPRIVILEGED_OFFSET
            log.warning(
                "%s: this process may not bind ports below 1024; IMAP uses the standard "
                "ports plus %d: %d (STARTTLS) and %d (TLS)",
                name,
                UNPRIVILEGED_OFFSET,
                imap_port,
                imaps_port,
            )
            try:
                await self.imap.start(imap_port, imaps_port)
            except OSError as exc:
                raise StartupError(f"{name}: can't listen on {address}: {exc}") from exc
        except OSError as exc:
            raise StartupError(f"{name}: can't listen on {address}: {exc}") from exc
        log.info(
            "%s: IMAP listening on %s",
            name,
            " and ".join(listener.label for listener in self.imap.listeners),
        )
        self._status_path = status_file(name)
        _write_status(
            self._status_path,
            {
                "server": name,
                "fqdn": self.backend.server_fqdn,
                "pid": os.getpid(),
                "host": address,
                "imap": self.imap.port(False),
                "imaps": self.imap.port(True),
                "certificate": str(files.certificate),
                "started": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )

    async def watch_directory(self) -> None:
        """Follow the topology: drop cached lookups at each change, and renew the
        certificate when the names it must cover change (an array created, say)."""
        from casarray.access import tls

        assert self.directory is not None and self.backend is not None
        assert self.imap is not None
        name = self.backend.server_name
        async for version in self.directory.watch(interval=0.2):
            self.backend.topology_changed(version)
            try:
                names = await asyncio.to_thread(certificate_names, self.directory, name)
            except Exception as exc:  # e.g. the server was removed meanwhile
                log.warning("%s: directory changed (version %d): %s", name, version, exc)
                continue
            if names != self._cert_names and self.imap.ssl_context is not None:
                files, _ = await asyncio.to_thread(tls.ensure_certificate, name, names)
                self.imap.ssl_context.load_cert_chain(str(files.certificate), str(files.key))
                self._cert_names = names
                log.info("%s: new certificate for %s", name, ", ".join(names))

    async def stop(self) -> None:
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
        if self._status_path is not None:
            _remove_status(self._status_path)
        if self.backend is not None:
            await asyncio.to_thread(self.backend.close)
        if self.directory is not None:
            self.directory.close()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        watcher: asyncio.Task[None] | None = None
        try:
            await self.start()
            watcher = asyncio.ensure_future(self.watch_directory())
            stop = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({watcher, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watcher in done and watcher.exception() is not None:
                log.error("directory watcher failed: %r", watcher.exception())
            stop.cancel()
            log.info("%s: stopping", self.options.server)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
            await self.stop()
        return 0


def _loop_factory(use_uvloop: bool) -> Any:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            return None
        return uvloop.new_event_loop
    return None


def run(options: RunOptions) -> int:
    """Run until SIGTERM or SIGINT; the exit status."""
    with _logging(options):
        factory = _loop_factory(options.use_uvloop)
        runner = Runner(options)
        try:
            with asyncio.Runner(loop_factory=factory) as loop_runner:
                return loop_runner.run(runner.run())
        except StartupError as exc:
            log.error("%s", exc)
            return 1
