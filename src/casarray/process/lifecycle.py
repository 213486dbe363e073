"""The one life cycle of a casarray server process.

`ServiceProcess` is the base every role specialises (as Mailman 3's `Runner` and
aiosmtpd's `Controller` are): `start()` binds and opens what the role needs (raising
`StartupError` when it can't), `started()` announces it (a status file, `ready` to a
parent), `jobs()` are the coroutines that serve until SIGTERM or SIGINT (or until one
of them ends: its error is logged), and `stop()` always runs last, even after a
failed start. `signal_handlers()` adds a role's own (SIGHUP: reload).

`run_process()` is a process's `main`: logging (`logs.log_to`), dying with the parent
for a worker (`parent.die_with_parent`), the event loop (uvloop when there), and the
exit status: 0 after a stop, 1 with the error said once, as one line, when the process
can't start.

A database that can't be reached (the directory's PostgreSQL restarting, say:
`unreachable_database`) is not a reason to exit: when `start()` fails on it, or a job
ends with it, the process is stopped and built anew in place after a short wait (0.5 s
doubling up to 5 s; a line in the log each time), so it serves again as soon as the
database is back instead of exiting with a traceback into its supervisor's growing
backoff (measured in the soak: 90 s and more after a PostgreSQL restart before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from casarray.errors import CasarrayError
from casarray.process.logs import log_to
from casarray.process.parent import die_with_parent

Job = Coroutine[Any, Any, None]

RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between attempts while the database is away


def unreachable_database(exc: BaseException) -> bool:
    """Whether `exc` says a database server can't be reached or went away, which passes
    (SQLAlchemy's OperationalError or InterfaceError from a server: refused, reset,
    shutting down, starting up). A SQLite file's own errors (no such table, a damaged
    file) are not: they won't pass by waiting."""
    import sqlite3

    try:
        from sqlalchemy.exc import InterfaceError, OperationalError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    if not isinstance(exc, OperationalError | InterfaceError):
        return False
    return not isinstance(getattr(exc, "orig", None), sqlite3.Error)


def loop_factory(use_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when asked for and installed, else asyncio's (None)."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class ServiceProcess:
    """The life of one server process; subclasses fill in the hooks."""

    label = "casarray"  # names the process in the log: CAS01, DNS, bj-cas.lab.net
    log = logging.getLogger("casarray")
    quiet = False  # no "stopping" line (a worker of a pool: its supervisor says it)

    def __init__(self) -> None:
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        """Bind, open, load; `StartupError` when the process can't serve."""

    def started(self) -> None:
        """Called once `start()` succeeded: write the status file, announce `ready`."""

    def jobs(self) -> list[Job]:
        """What serves until the process stops."""
        return []

    async def stop(self) -> None:
        """Close everything `start()` opened (also after a failed start)."""

    def signal_handlers(self) -> dict[int, Callable[[], None]]:
        """Signals of the role's own, beyond SIGTERM and SIGINT (which stop it)."""
        return {}

    async def run(self) -> int:
        """SIGTERM and SIGINT set `stopping`; `start()`, `started()`, then `jobs()`
        until `stopping` is set or one of them ends; then `stop()`, always. Exit 0."""
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, self.stopping.set)
        for signum, handler in self.signal_handlers().items():
            loop.add_signal_handler(signum, handler)
        tasks: list[asyncio.Task[None]] = []
        away: BaseException | None = None
        try:
            try:
                await self.start()
            except Exception as exc:
                if self.stopping.is_set() and unreachable_database(exc):
                    return 0  # stopped while it waited for the database: not again
                raise
            self.started()
            tasks = [asyncio.ensure_future(job) for job in self.jobs()]
            waiting = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({*tasks, waiting}, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task in done and not task.cancelled() and task.exception() is not None:
                    self.log.error("%s: %r", self.label, task.exception())
                    if unreachable_database(task.exception() or Exception()):
                        away = task.exception()
            waiting.cancel()
            if not self.quiet:
                self.log.info("%s: stopping", self.label)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self.stop()
        if away is not None and not self.stopping.is_set():
            raise away  # `run_process` builds the process anew once the database is back
        return 0


def run_process(
    make: Callable[[], ServiceProcess],
    *,
    log_file: str | None = None,
    log_level: str = "INFO",
    worker_index: int | None = None,
    use_uvloop: bool = True,
) -> int:
    """Run the process `make()` builds until SIGTERM or SIGINT; its exit status. A
    worker (`worker_index` set) dies with its parent. A `StartupError`, or any other
    `CasarrayError` that ends the process (a setting the data plane refuses, say), is
    logged and, when the log goes to a file, said on the terminal too: exit status 1."""
    log = logging.getLogger("casarray")
    with log_to(log_file, log_level, worker_index=worker_index):
        if worker_index is not None:
            die_with_parent()
        try:
            return _run_until_reachable(make, use_uvloop, log)
        except CasarrayError as exc:
            log.error("%s", exc)
            if log_file:  # the log is a file: say it on the terminal too
                print(f"casarray: {exc}", file=sys.stderr)
            return 1


def _run_until_reachable(
    make: Callable[[], ServiceProcess], use_uvloop: bool, log: logging.Logger
) -> int:
    delay = RETRY_FIRST
    while True:
        began = time.monotonic()
        try:
            with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
                return int(runner.run(make().run()))
        except Exception as exc:
            if not unreachable_database(exc):
                raise
            if time.monotonic() - began > 30:  # it served a while: a new outage
                delay = RETRY_FIRST
            reason = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["?"])[0][:200]
            log.warning("a database can't be reached (%s); starting again in %.1f s", reason, delay)
        # the event loop is gone, and with it the handlers it set: SIGTERM must end the
        # process while it waits (nothing is open), as before it started
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            time.sleep(delay)
        except KeyboardInterrupt:
            return 0
        delay = min(delay * 2, RETRY_MAX)
