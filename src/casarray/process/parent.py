"""Dying with the parent process (Linux's PR_SET_PDEATHSIG), even when the parent is
killed with kill -9, so that no orphan keeps a port or a database.

Two signals, two reasons: a worker of a pool gets SIGKILL (its supervisor held its
ports and status; nothing is left to clean), a process of the lab gets SIGTERM (it has
its own cleanup to do: dismounting databases, removing its nftables table).
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return prctl


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Have this process get `signum` when its parent dies; exit at once if the parent
    is already gone. Elsewhere than Linux, a supervisor's closing pipe tells instead."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signum)
    if os.getppid() == 1:
        os._exit(1)


def death_signal_preexec(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` for `subprocess.Popen` that has the child get `signum` when this
    process dies; None where the system can't."""
    prctl = _prctl()
    if prctl is None:
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum)

    return preexec
