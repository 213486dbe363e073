"""Where a process logs, and the one line format: `2026-12-07T02:31:01.123 INFO text`,
the workers of a pool tagging theirs `[w2]`."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@contextlib.contextmanager
def log_to(
    log_file: str | None, level: str = "INFO", *, worker_index: int | None = None
) -> Iterator[None]:
    """Send casarray's log to `log_file` (standard error when None) at `level` while in
    the block."""
    handler: logging.Handler
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    fmt = LOG_FORMAT
    if worker_index is not None:  # the lines of the workers say whose they are
        fmt = fmt.replace("%(message)s", f"[w{worker_index}] %(message)s")
    handler.setFormatter(logging.Formatter(fmt, LOG_DATE_FORMAT))
    root = logging.getLogger("casarray")
    root.addHandler(handler)
    previous = root.level
    root.setLevel(level.upper())
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        handler.close()
