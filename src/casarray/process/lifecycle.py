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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from casarray.errors import CasarrayError
from casarray.process.logs import log_to
from casarray.process.parent import die_with_parent

Job = Coroutine[Any, Any, None]


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
        try:
            await self.start()
            self.started()
            tasks = [asyncio.ensure_future(job) for job in self.jobs()]
            waiting = asyncio.ensure_future(self.stopping.wait())
            done, _ = await asyncio.wait({*tasks, waiting}, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task in done and not task.cancelled() and task.exception() is not None:
                    self.log.error("%s: %r", self.label, task.exception())
            waiting.cancel()
            if not self.quiet:
                self.log.info("%s: stopping", self.label)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            await self.stop()
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
            with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
                return int(runner.run(make().run()))
        except CasarrayError as exc:
            log.error("%s", exc)
            if log_file:  # the log is a file: say it on the terminal too
                print(f"casarray: {exc}", file=sys.stderr)
            return 1
