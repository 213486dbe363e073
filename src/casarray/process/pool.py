"""Worker processes of a multi-process server (`casarray server run --processes N`,
`casarray dns run --processes N`): started, awaited, started again when they die.

A worker is a child process that prints `ready` on its stdout once it serves. The pool

- starts every worker and waits for each one's `ready` (`StartupError` if one exits or
  takes longer than READY_TIMEOUT);
- starts a worker that dies again, after 0.5 s, doubling up to 30 s while it keeps
  dying (a worker that ran a minute starts from 0.5 s again), and says so in the log;
- passes signals on (SIGHUP for a reload) and stops them: SIGTERM, then SIGKILL for
  one still running after STOP_TIMEOUT.

The restart policy is `Backoff`, shared with the lab's process table
(`casarray.lab.supervisor`), whose processes announce themselves by status files.

Each worker dies with its parent (`parent.die_with_parent`, set by `run_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from casarray.process.errors import StartupError

__all__ = ["Backoff", "Worker", "WorkerPool", "announce_ready"]

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
STABLE_AFTER = 60.0  # a worker up this long restarts with the first delay again
POLL = 0.1
READY = b"ready\n"  # what a process says on its stdout once it serves


@dataclass
class Backoff:
    """When to start again a process that died: after `first` seconds, doubling up to
    `limit` while it keeps dying; a process that ran `stable_after` seconds or more
    starts from `first` again."""

    first: float = RESTART_DELAY
    limit: float = MAX_RESTART_DELAY
    stable_after: float = STABLE_AFTER
    delay: float = field(init=False, default=RESTART_DELAY)

    def __post_init__(self) -> None:
        self.delay = self.first

    def next_delay(self, ran_for: float) -> float:
        """The wait before the next start of a process that died after running
        `ran_for` seconds; the one after it doubles."""
        if ran_for >= self.stable_after:
            self.delay = self.first
        delay = self.delay
        self.delay = min(self.delay * 2, self.limit)
        return delay

    def reset(self) -> None:
        self.delay = self.first


@dataclass
class Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)
    restart_at: float | None = None

    @property
    def delay(self) -> float:
        """The wait before its next start, should it die now."""
        return self.backoff.delay

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class WorkerPool:
    """`count` workers numbered from 1; `command(index)` is worker `index`'s command
    line; `label` names them in the log ("CAS01", "DNS"); `on_restarted()` is called
    when a restarted worker is ready again (to write a status file, say)."""

    def __init__(
        self,
        label: str,
        command: Callable[[int], list[str]],
        count: int,
        *,
        on_restarted: Callable[[], None] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.label = label
        self.command = command
        self.workers = [Worker(index) for index in range(1, count + 1)]
        self.on_restarted = on_restarted
        self.log = log or logging.getLogger("casarray")
        self._settling: set[asyncio.Task[None]] = set()

    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers if worker.pid is not None]

    async def start(self) -> None:
        for worker in self.workers:
            self._spawn(worker)
        await asyncio.gather(*(self._ready(worker) for worker in self.workers))

    def _spawn(self, worker: Worker) -> None:
        worker.process = subprocess.Popen(
            self.command(worker.index), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
        )
        worker.started = time.monotonic()
        worker.restart_at = None

    async def _ready(self, worker: Worker) -> None:
        """Wait for the worker's `ready` line; StartupError if it exits first."""
        process = worker.process
        assert process is not None and process.stdout is not None
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                line = await asyncio.to_thread(process.stdout.readline)
        except TimeoutError:
            raise StartupError(
                f"{self.label}: worker {worker.index} didn't start in {READY_TIMEOUT:.0f} s"
            ) from None
        if line.strip() != READY.strip():
            code = await asyncio.to_thread(process.wait)
            raise StartupError(f"{self.label}: worker {worker.index} exited with status {code}")

    async def supervise(self, stopping: asyncio.Event) -> None:
        """Start again the workers that die, until `stopping` is set."""
        while not stopping.is_set():
            now = time.monotonic()
            for worker in self.workers:
                process = worker.process
                if worker.restart_at is not None:
                    if now >= worker.restart_at:
                        self.log.info("%s: starting worker %d again", self.label, worker.index)
                        self._spawn(worker)
                        settling = asyncio.ensure_future(self._settle(worker))
                        self._settling.add(settling)
                        settling.add_done_callback(self._settling.discard)
                    continue
                if process is None or process.poll() is None:
                    continue
                delay = worker.backoff.next_delay(now - worker.started)
                self.log.warning(
                    "%s: worker %d (pid %d) exited with status %s; restarting it in %.1f s",
                    self.label,
                    worker.index,
                    process.pid,
                    process.returncode,
                    delay,
                )
                worker.restart_at = now + delay
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await stopping.wait()

    async def _settle(self, worker: Worker) -> None:
        try:
            await self._ready(worker)
        except StartupError as exc:
            self.log.warning("%s", exc)
            return
        if self.on_restarted is not None:
            self.on_restarted()

    def signal(self, signum: int) -> None:
        """Send `signum` to every running worker."""
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    async def stop(self) -> None:
        """SIGTERM every worker and wait for them (SIGKILL after STOP_TIMEOUT)."""
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            try:
                await asyncio.to_thread(process.wait, max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.warning("%s: worker %d didn't stop; killing it", self.label, worker.index)
                process.kill()
                await asyncio.to_thread(process.wait)
            if process.stdout is not None:
                process.stdout.close()


def announce_ready(*, only_to_a_pipe: bool = False) -> None:
    """Tell the parent that this process serves: `ready` on standard output (what
    `WorkerPool` and the lab wait for). With `only_to_a_pipe`, only when standard
    output is a pipe (a process also run by hand on a terminal)."""
    with contextlib.suppress(OSError, ValueError):
        fd = sys.stdout.fileno()
        if only_to_a_pipe and not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return
        os.write(fd, READY)
