"""What the benchmark scripts share: reading wrk's output, starting and stopping the
processes measured (`spawn`, `stop_process`) and a process's tree, the work folder
(`temporary`) and stopping on a signal (`on_signal`, `check_stop`).

Kept to a few modules of the standard library that never import `http`: bench/http.py
and bench/balancer.py import it before they take their own folder off the import path
(where bench/http.py would shadow the standard library's `http`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass
class WrkFigures:
    rate: float  # requests/s
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    failed: int  # non-2xx/3xx responses, socket errors (timeouts included)


def parse_wrk(output: str) -> WrkFigures:
    """requests/s, p50/p99 and failures from `wrk --latency` output."""
    found = re.search(r"^Requests/sec:\s*([\d.]+)", output, re.M)
    if found is None:
        raise RuntimeError(f"wrk printed no Requests/sec:\n{output}")
    figures = WrkFigures(float(found.group(1)), None, None, 0, 0)
    for percent, attribute in (("50", "p50_ms"), ("99", "p99_ms")):
        found = re.search(rf"^\s*{percent}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
        if found is not None:
            setattr(figures, attribute, float(found.group(1)) * UNITS[found.group(2)])
    found = re.search(r"^\s*(\d+) requests in", output, re.M)
    figures.requests = int(found.group(1)) if found else 0
    found = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", output)
    figures.failed += int(found.group(1)) if found else 0
    found = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if found is not None:
        figures.failed += sum(int(n) for n in found.groups())
    return figures


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


@contextlib.contextmanager
def temporary(keep: str | None, prefix: str, mode: int | None = None) -> Iterator[Path]:
    """`keep` (made if missing, kept afterwards), or a new temporary folder named with
    `prefix` (given `mode`, if any) that is removed afterwards."""
    if keep:
        path = Path(keep).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if mode is not None:
        path.chmod(mode)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


_stopping: list[int] = []  # the signal that asked the script to stop, once one did


def on_signal(signum: int, _frame: object) -> None:
    """A signal handler: stop the script (KeyboardInterrupt) at the first signal, so
    that its `finally` blocks stop every process it started."""
    if _stopping:
        return
    _stopping.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def check_stop() -> None:
    """Raise KeyboardInterrupt if a signal asked the script to stop (where a handler's
    exception may have been swallowed, e.g. by a subprocess call)."""
    if _stopping:
        raise KeyboardInterrupt(f"signal {_stopping[0]}")


def die_with_parent() -> None:
    """In a child, before exec: get SIGTERM when the script dies (Linux), so that a
    killed benchmark leaves no server behind."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def pinned(cpus: set[int] | None) -> Callable[[], None]:
    """A preexec_fn: die with the script, and run on `cpus` (None: any)."""

    def prepare() -> None:
        die_with_parent()
        if cpus:
            os.sched_setaffinity(0, cpus)

    return prepare


def spawn(
    argv: list[str], log: Path, cpus: set[int] | None = None, **kw: object
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own (a Ctrl-C reaches the script only, which then
    stops it in order), on `cpus` if given, its output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(  # type: ignore[call-overload]
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=pinned(cpus),
            **kw,
        )


def stop_process(proc: subprocess.Popen[bytes], signum: int = signal.SIGTERM) -> None:
    """Stop `proc` (`signum`, then SIGKILL after 20 s) and whatever is left of its
    process group (the one start_new_session made: workers that outlived it)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
