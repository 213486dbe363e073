"""Status files: how a running process says that it serves, and how.

Every long-running process of casarray (a Client Access server, the DNS server, a
Mailbox role, a balancer, the lab supervisor) writes one JSON object to
`$CASARRAY_HOME/run/<kind>-<name>.json` once it serves, and removes it when it stops.
The object always holds `pid`; the rest is the process's own (ports, databases, node
states). Other processes (`lab status`, Test-ClientAccessArray, Get-NlbClusterNode)
read it.

One liveness rule for every reader: a status file counts while the process it names
is alive, that is while `kill(pid, 0)` finds it (also when it belongs to another user:
`PermissionError` means it exists) and it is not a zombie. A file that can't be read,
isn't JSON, or names no pid is no status.

Writes are atomic (a temporary file renamed over the old one), so a reader never sees
half an object.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from casarray.config import casarray_home

# The kinds of process that write status files.
CLIENT_ACCESS = "cas"
MAILBOX = "mailbox"
BALANCER = "balancer"
DNS = "dns"
LAB = "lab"
TRANSPORT = "transport"  # a Hub Transport server
NLB_HOST = "nlbhost"  # one host's NLB driver: "<cluster>-<server>"


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs: it exists (ours or another user's) and is not a
    zombie, dead but not yet reaped by its parent."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: it answered the signal
    fields = stat.rpartition(")")[2].split()
    return not fields or fields[0] != "Z"


@dataclass(frozen=True)
class StatusFile:
    """The status file of one process."""

    path: Path

    def write(self, status: dict[str, Any]) -> None:
        """Replace the file's content with `status` (which names this process's pid)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(status, indent=2) + "\n")
        os.replace(tmp, self.path)

    def read_any(self) -> dict[str, Any] | None:
        """What the file says, alive or not; None when it can't be read or names no pid."""
        try:
            status = json.loads(self.path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(status, dict) or not isinstance(status.get("pid"), int):
            return None
        return status

    def read(self) -> dict[str, Any] | None:
        """What the running process says of itself, or None when none runs."""
        status = self.read_any()
        if status is None or not pid_alive(status["pid"]):
            return None
        return status

    def remove(self) -> None:
        """Remove the file if it is this process's."""
        status = self.read_any()
        if status is not None and status["pid"] == os.getpid():
            with contextlib.suppress(OSError):
                self.path.unlink()

    def remove_if_dead(self) -> bool:
        """Remove the file of a process that can't any more (killed); whether it went."""
        status = self.read_any()
        if status is not None and pid_alive(status["pid"]):
            return False
        with contextlib.suppress(OSError):
            self.path.unlink()
            return True
        return False


def status_file(kind: str, name: str = "", home: Path | None = None) -> StatusFile:
    """The status file of process `name` of `kind` (`CLIENT_ACCESS`, ...): one per
    server, cluster or lab folder. Names are case-insensitive, as in the directory."""
    base = f"{kind}-{name.lower()}" if name else kind
    return StatusFile((home or casarray_home()) / "run" / f"{base}.json")


def read_status(kind: str, name: str = "", home: Path | None = None) -> dict[str, Any] | None:
    """What the running process `name` of `kind` says of itself, or None."""
    return status_file(kind, name, home).read()
