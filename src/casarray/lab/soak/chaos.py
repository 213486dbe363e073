"""The soak's fault injector: at random moments (a seeded schedule) a SIGKILL straight
to a process's pid, as a crash, so that the lab's supervisor (or a Client Access
master, for its workers) sees it die and starts it again by itself; in a lab on
several hosts also whole hosts killed and started again, partitions healed, and
PostgreSQL killed and started again.

Fault kinds:

- `cas-worker`: a worker of a Client Access server (its master starts another);
- `cas-master`: a Client Access server's master (its workers die with it; the
  supervisor starts it again);
- `mailbox`, `transport`, `dns`: the Mailbox role, a Hub Transport, the DNS server;
- `nlb`: the central balancer (one machine) or a host's NLB driver (`CAS01-nlb`);
- `postgres` (hosts): kill -9 of the postmaster in DC01, started again after 1-3 s
  as the lab starts it;
- `host` (hosts): `lab kill-host`, `lab start-host` after 2-6 s;
- `partition` (hosts): `lab partition`, `lab heal` after 2-5 s.

Each fault is a record (`fault.<kind>`) in the chaos history with its time, the
victim and its pid; each recovery another (`recovery.<kind>`: how long until the
victim ran again under a new pid, and the supervisor's restart count), or
`recovery.<kind>` `failed` when it didn't come back within RECOVERY_TIMEOUT.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from casarray.lab.soak.history import FAILED, OK, History

RECOVERY_TIMEOUT = 90.0
MIN_UP = 2.0  # a victim must have run this long (s): the lab recovers between faults
SINGLE_KINDS = ("cas-worker", "cas-master", "mailbox", "transport", "dns", "nlb")
HOSTS_KINDS = (*SINGLE_KINDS, "postgres", "host", "partition")
WEIGHTS = {
    "cas-worker": 3.0,
    "cas-master": 2.0,
    "mailbox": 1.5,
    "transport": 2.0,
    "dns": 1.0,
    "nlb": 1.5,
    "postgres": 1.0,
    "host": 1.0,
    "partition": 1.0,
}
KIND_OF = {
    "ClientAccess": "cas-master",
    "Mailbox": "mailbox",
    "HubTransport": "transport",
    "DNS": "dns",
    "NLB": "nlb",
    "NlbHost": "nlb",
    "NlbPair": "nlb",
}
HOSTS_TO_KILL = ("CAS01", "CAS02", "CAS03", "MBX01", "MBX02")


class LabHandle(Protocol):
    """What the chaos needs of the lab."""

    home: Path
    hosts: bool

    def state(self) -> dict[str, Any]: ...

    def lab(self, *args: str, timeout: float = 60) -> Any: ...

    def kill_postgres(self) -> int | None: ...

    def start_postgres(self) -> None: ...

    def postgres_ok(self) -> bool: ...


@dataclass
class Victim:
    kind: str
    name: str  # the lab's process name (or a host's)
    pid: int | None
    worker_of: str = ""  # cas-worker: its master's process name


@dataclass
class Pending:
    victim: Victim
    killed_at: float
    restarts: int
    check: Callable[[], dict[str, Any] | None]
    undone: threading.Event  # set once the fault is undone (healed, started again)


def cas_status(home: Path, target: str) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((home / "run" / f"cas-{target.lower()}.json").read_text()))
    return {}


@dataclass
class Chaos:
    lab: LabHandle
    history: History
    seed: int = 0
    kinds: tuple[str, ...] = SINGLE_KINDS
    gap: tuple[float, float] = (2.0, 4.0)  # seconds between faults (uniform)
    burst: float = 0.15  # the chance that a fault comes 0.2-0.6 s after the last
    rng: random.Random = field(init=False)
    pending: list[Pending] = field(default_factory=list)
    injected: int = 0
    _up_since: dict[tuple[str, int], float] = field(default_factory=dict)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    # -- choosing --------------------------------------------------------------------

    def processes(self) -> list[dict[str, Any]]:
        return list(self.lab.state().get("processes", ()))

    def _seen_up(self, name: str, pid: int | None) -> bool:
        """Whether (name, pid) has been seen running for MIN_UP seconds."""
        if pid is None:
            return False
        first = self._up_since.setdefault((name, pid), time.monotonic())
        return time.monotonic() - first >= MIN_UP

    def candidates(self, kind: str) -> list[Victim]:
        processes = self.processes()
        running = [p for p in processes if p.get("state") == "Running" and p.get("pid")]
        for entry in running:  # note when each pid was first seen up
            self._seen_up(entry["name"], entry["pid"])
        out: list[Victim] = []
        if kind == "cas-worker":
            for entry in running:
                if entry.get("kind") != "ClientAccess":
                    continue
                said = cas_status(self.lab.home, entry["target"])
                if said.get("pid") != entry["pid"]:
                    continue
                for pid in said.get("processes", ()):
                    if (
                        pid != entry["pid"]
                        and _alive(pid)
                        and self._seen_up(f"{entry['name']} worker", pid)
                    ):
                        out.append(Victim(kind, f"{entry['name']} worker", pid, entry["name"]))
            return out
        # a fault still to be undone (a partition not healed...) isn't doubled
        undoing = {p.victim.name for p in self.pending if not p.undone.is_set()}
        if kind in ("postgres",):
            if "PostgreSQL" in undoing or not self.lab.postgres_ok():
                return []
            return [Victim(kind, "PostgreSQL", None)]
        if kind in ("host", "partition"):
            hosts = {self._host_of(p) for p in processes}
            down = {self._host_of(p) for p in processes if p.get("state") != "Running"}
            return [
                Victim(kind, h, None)
                for h in HOSTS_TO_KILL
                if h in hosts and h not in down and h not in undoing
            ]
        for entry in running:
            if KIND_OF.get(str(entry.get("kind"))) == kind and self._seen_up(
                entry["name"], entry["pid"]
            ):
                out.append(Victim(kind, entry["name"], int(entry["pid"])))
        return out

    @staticmethod
    def _host_of(process: dict[str, Any]) -> str:
        name = str(process.get("target") or process.get("name"))
        return name.split("-")[0].upper()

    def next_gap(self) -> float:
        if self.rng.random() < self.burst:
            return self.rng.uniform(0.2, 0.6)
        return self.rng.uniform(*self.gap)

    # -- injecting -------------------------------------------------------------------

    def inject(self) -> dict[str, Any] | None:
        """One fault of a kind chosen at random among those with a victim now."""
        kinds = list(self.kinds)
        self.rng.shuffle(kinds)
        weights = [WEIGHTS.get(k, 1.0) for k in kinds]
        order = []
        while kinds:
            pick = self.rng.choices(range(len(kinds)), weights)[0]
            order.append(kinds.pop(pick))
            weights.pop(pick)
        for kind in order:
            victims = self.candidates(kind)
            if victims:
                return self._inject(self.rng.choice(victims))
        return None

    def _inject(self, victim: Victim) -> dict[str, Any]:
        t0 = time.time()
        kind = victim.kind
        error = ""
        restarts = self._restarts(victim.worker_of or victim.name)
        undone = threading.Event()
        try:
            if kind == "postgres":
                victim.pid = self.lab.kill_postgres()
                self._later(undone, self.rng.uniform(1.0, 3.0), self.lab.start_postgres)
            elif kind == "host":
                self._command("kill-host", victim.name)
                delay = self.rng.uniform(2.0, 6.0)
                self._later(undone, delay, self._command, "start-host", victim.name)
            elif kind == "partition":
                self._command("partition", victim.name)
                delay = self.rng.uniform(2.0, 5.0)
                self._later(undone, delay, self._command, "heal", victim.name)
            else:
                assert victim.pid is not None
                os.kill(victim.pid, signal.SIGKILL)
                undone.set()  # nothing to undo: the supervisor starts it again
        except (OSError, RuntimeError) as exc:
            error = str(exc)
        entry = self.history.record(
            "chaos",
            f"fault.{kind}",
            FAILED if error else OK,
            t0,
            victim=victim.name,
            pid=victim.pid,
            error=error,
        )
        if not error:
            self.injected += 1
            self.pending.append(
                Pending(victim, time.monotonic(), restarts, self._checker(victim), undone)
            )
        return entry

    def _command(self, *args: str) -> None:
        done = self.lab.lab(*args)
        if getattr(done, "returncode", 0) != 0:
            raise RuntimeError(f"lab {' '.join(args)}: {done.stdout}{done.stderr}".strip())

    def _later(
        self, undone: threading.Event, delay: float, action: Callable[..., Any], *args: Any
    ) -> None:
        def run() -> None:
            time.sleep(delay)
            t0 = time.time()
            what = f"{action.__name__} {' '.join(map(str, args))}".strip()
            try:
                action(*args)
            except Exception as exc:
                self.history.record("chaos", "fault.undo", FAILED, t0, what=what, error=str(exc))
            else:
                self.history.record("chaos", "fault.undo", OK, t0, what=what)
            undone.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _restarts(self, name: str) -> int:
        for entry in self.processes():
            if entry.get("name") == name:
                return int(entry.get("restarts") or 0)
        return 0

    # -- recovering ------------------------------------------------------------------

    def _checker(self, victim: Victim) -> Callable[[], dict[str, Any] | None]:
        """A check that answers what came back (None: not yet)."""
        if victim.kind == "cas-worker":

            def worker_back() -> dict[str, Any] | None:
                master = next((p for p in self.processes() if p["name"] == victim.worker_of), {})
                said = cas_status(self.lab.home, str(master.get("target", "")))
                pids = [p for p in said.get("processes", ()) if p != said.get("pid")]
                if pids and victim.pid not in pids and all(_alive(p) for p in pids):
                    return {"new_pids": pids}
                return None

            return worker_back
        if victim.kind == "postgres":
            return lambda: {"back": True} if self.lab.postgres_ok() else None
        if victim.kind in ("host", "partition"):

            def host_back() -> dict[str, Any] | None:
                on_host = [p for p in self.processes() if self._host_of(p) == victim.name]
                if on_host and all(p.get("state") == "Running" for p in on_host):
                    return {"processes": [p["name"] for p in on_host]}
                return None

            return host_back

        def process_back() -> dict[str, Any] | None:
            entry = next((p for p in self.processes() if p["name"] == victim.name), None)
            if entry and entry.get("state") == "Running" and entry.get("pid") != victim.pid:
                return {"new_pid": entry["pid"], "restarts": entry.get("restarts")}
            return None

        return process_back

    def poll(self, final: bool = False) -> None:
        """Record the recoveries seen (and, `final`, those overdue as failed)."""
        still = []
        now = time.monotonic()
        for pending in self.pending:
            t0 = time.time()
            try:
                back = pending.check() if pending.undone.is_set() else None
            except Exception:
                back = None
            kind, name = pending.victim.kind, pending.victim.name
            if back is not None:
                self.history.record(
                    "chaos",
                    f"recovery.{kind}",
                    OK,
                    t0,
                    victim=name,
                    after=round(now - pending.killed_at, 2),
                    restarts_before=pending.restarts,
                    **back,
                )
            elif final or now - pending.killed_at > RECOVERY_TIMEOUT:
                self.history.record(
                    "chaos",
                    f"recovery.{kind}",
                    FAILED,
                    t0,
                    victim=name,
                    after=round(now - pending.killed_at, 2),
                )
            else:
                still.append(pending)
        self.pending = still

    def run(self, faults: int, until: float, stop: threading.Event) -> int:
        """Inject up to `faults` faults until monotonic time `until` or `stop`; the
        number injected."""
        next_at = time.monotonic() + self.next_gap()
        while self.injected < faults and time.monotonic() < until and not stop.is_set():
            self.poll()
            if time.monotonic() >= next_at:
                self.inject()
                next_at = time.monotonic() + self.next_gap()
            stop.wait(0.1)
        for thread in self._threads:
            thread.join(10)
        return self.injected

    def settle(self, timeout: float) -> bool:
        """Wait for every pending recovery (those left are recorded as failed)."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.2)
        self.poll(final=True)
        return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
