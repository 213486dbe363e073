"""What every soak client was told, as it happens: one JSON line per operation,
appended and flushed before the client goes on, so a crash of the harness loses
nothing of what was acknowledged before it.

A record is a dict with at least:

- `client`: who did it (`imap-alice-0`, `smtp25`, `ews-bob`, `shell`...); one client's
  records are in the order it did them (a client does one thing at a time);
- `op`: what (`imap.append`, `imap.store`, `imap.copy`, `imap.move`, `imap.expunge`,
  `imap.fetch`, `smtp.send`, `ews.create`, `ews.update`, `ews.move`, `ews.delete`,
  `web.send`, `shell.new-database`, `shell.set-database`, `shell.set-portrule`);
- `outcome`: `ok` (acknowledged: the tagged OK, the SMTP 250, the EWS success, the
  cmdlet's exit status 0), `failed` (refused, or the connection failed before the whole
  request was sent: it was not done), or `unknown` (the request was sent and no answer
  came: done or not, never twice);
- `t0`, `t1`: when it started and ended (seconds since the epoch);
- what the checker needs of it (`user`, `folder`, `soak_id`, `uid`, `flags`, `raw`
  (base64), `queue_id`, `item_id`...), and `error` for what went wrong.

Faults are in the same form (`op` `fault.<kind>`, `outcome` `ok` or `failed`), written
by the chaos loop to a file of their own.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"
OUTCOMES = (OK, FAILED, UNKNOWN)
SUFFIX = ".jsonl"


def encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def decode(text: str) -> bytes:
    return base64.b64decode(text)


class History:
    """An append-only JSONL file that threads (and processes: O_APPEND, one write a
    line) share. Each `record` is on the file (in the OS) before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def record(
        self, client: str, op: str, outcome: str, t0: float, **fields: Any
    ) -> dict[str, Any]:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        entry = {"client": client, "op": op, "outcome": outcome, "t0": t0, "t1": time.time()}
        entry.update(fields)
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
        return entry

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Every record of these files, each file's in its order; a torn last line (the
    writer killed in the middle of it) is left out."""
    records: list[dict[str, Any]] = []
    for path in paths:
        records.extend(read_one(path))
    return records


def read_one(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text()
    except OSError:
        return
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def files(folder: Path, prefix: str = "") -> list[Path]:
    return sorted(folder.glob(f"{prefix}*{SUFFIX}"))
