"""The HAProxy engine: Debian's haproxy as the data plane of a cluster, kept in step
with the view and the health checker through its runtime API, without reloads for
everything that changes often.

    engine = HaproxyEngine(Path("run/balancer-bj-cas.lab.net"))
    Balancer(read_view, engine).run()

`start()` renders haproxy.cfg (`haproxy.render_config`) into the work folder, checks
it (`haproxy -c`) and starts haproxy in master-worker mode as a child process:

    /usr/sbin/haproxy -W -db -S <work>/master.sock,mode,600 -f <work>/haproxy.cfg
        -p <work>/haproxy.pid

then waits until the worker answers on the runtime socket (`<work>/admin.sock`, the
config's `stats socket ... level admin`).

`update()` is called at every health transition, every second while a node warms up,
and at every new view:

- node admin states, through the runtime socket: Started -> `set server <be>/<srv>
  state ready`, Draining -> `state drain` (no new connections, the open ones go on),
  Stopped or Suspended -> `state maint`;
- weights, through the runtime socket: `checker.weights(rule)` (LoadWeight 0..100,
  times the slow start ramp, 0 when our checker finds the node down) rounded to
  HAProxy's integer weight (`set server <be>/<srv> weight N`; a positive weight below
  1 becomes 1, so that a node in slow start is not shut out). Only what differs from
  what was last sent is sent;
- when the topology changes (a node added or removed, an address or priority changed,
  a port rule added, removed or changed, the offsets or the cluster IP changed; not a
  state or a LoadWeight, which the runtime API sets) the config is rendered again,
  checked, and haproxy is reloaded seamlessly through its master: SIGUSR2 to the
  master process (the same as `reload` on the master socket). The master re-reads the
  config, starts a new worker that takes over the listening sockets (master-worker mode
  hands them over, no connection is refused during the reload) and tells the old
  worker to finish softly: it stops accepting and keeps its established connections
  (a drained IMAP session goes on) until they end. The config of a reload is rendered
  with the current effective weights and states, and the runtime state is sent again
  to the new worker as soon as it answers.

Health is checked twice, on purpose. HAProxy runs its own checks from the rendered
config (`check inter 500 fall 2 rise 2`, the IMAP greeting or the health page, and
`observe layer4 ... on-error mark-down`: a refused connection takes the server down at
once, and `option redispatch` retries the connection on another server), and our
`HealthChecker` runs the built-in probes too. A node gets new connections only when
both agree: HAProxy's check must find it up, and our checker's view sets its weight
(0 when down, ramping during slow start) and its drain. The checker's view is what
Get-NlbClusterNode shows; HAProxy's checks make its own reaction to a dead node
immediate (it needn't wait for our probes and a runtime command), and slow start is
applied by both (HAProxy's `slowstart 10s` when its check brings a server back, our
ramp on the weight), so a returning node warms up at the slower of the two.

`connections(node)` adds up `scur` of the node's servers (`show stat`) in every
worker, the current one and old ones still finishing their connections after a
reload (through the master socket, `@!<pid> show stat`); `cut(node)` runs `shutdown
sessions server <be>/<srv>` in each of them. Both are synchronous (the Engine
protocol's) and use a blocking unix socket with a short timeout; haproxy answers in
well under a millisecond.

`close()` stops haproxy: a soft stop first (SIGUSR1 to the master: stop accepting,
let open connections finish) for up to `close_grace` seconds, then a hard stop. The
`keep` flag makes no difference: haproxy is this process's child. It runs in a
session of its own, though, so if the control plane crashes haproxy goes on
forwarding with the last state it was given; the next `start()` with the same work
folder stops that haproxy (found by its pid file) before starting its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import hashlib
import io
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from casarray.balancer import haproxy
from casarray.balancer.haproxy import (
    RuntimeApi,
    RuntimeApiError,
    ServerAdminState,
    backend_name,
    render_config,
    server_name,
)
from casarray.balancer.health_probes import HealthChecker
from casarray.balancer.model import (
    ClusterView,
    FilteringMode,
    HostState,
    Node,
    PortRule,
    RuleProtocol,
)
from casarray.errors import CasarrayError

__all__ = [
    "HAPROXY",
    "HaproxyEngine",
    "HaproxyError",
    "desired_servers",
    "haproxy_weight",
    "topology",
]

log = logging.getLogger("casarray.balancer.haproxy")

HAPROXY = "/usr/sbin/haproxy"
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the final NUL
STATS_CACHE = 0.2  # seconds a `show stat` of every worker is reused by connections()

ServerKey = tuple[str, str]  # (backend, server)


class HaproxyError(CasarrayError, RuntimeError):
    """haproxy could not be started, reloaded or reached."""


def haproxy_weight(weight: float) -> int:
    """HAProxy's integer weight (0..256) for an effective weight (0..100, fractional
    during slow start): 0 stays 0, anything positive is at least 1."""
    if weight <= 0:
        return 0
    return max(1, min(256, round(weight)))


def _admin_state(node: Node) -> ServerAdminState:
    if node.state is HostState.STARTED:
        return "ready"
    if node.state is HostState.DRAINING:
        return "drain"
    return "maint"


def _balanced_rules(view: ClusterView) -> list[PortRule]:
    """The rules that have a backend in the rendered config."""
    return [
        rule
        for rule in view.rules
        if rule.protocol is not RuleProtocol.UDP and rule.mode is not FilteringMode.DISABLED
    ]


def desired_servers(
    view: ClusterView, checker: HealthChecker
) -> dict[ServerKey, tuple[ServerAdminState, int | None]]:
    """(backend, server) -> (admin state, weight) for every server of the view: the
    weight is the checker's effective weight for Started nodes, None (left as it is)
    for the others, whose admin state keeps them from new connections."""
    wanted: dict[ServerKey, tuple[ServerAdminState, int | None]] = {}
    for rule in _balanced_rules(view):
        weights = checker.weights(rule)
        backend = backend_name(view, rule)
        for node in view.nodes:
            state = _admin_state(node)
            weight = haproxy_weight(weights.get(node.name, 0.0)) if state == "ready" else None
            wanted[(backend, server_name(node))] = (state, weight)
    return wanted


def topology(view: ClusterView) -> ClusterView:
    """The view without what the runtime API sets (node states, drain deadlines,
    LoadWeights): two views with the same topology need no reload."""
    nodes = tuple(
        dataclasses.replace(node, state=HostState.STARTED, drain_until=None) for node in view.nodes
    )
    rules = tuple(dataclasses.replace(rule, weights={}) for rule in view.rules)
    return dataclasses.replace(view, nodes=nodes, rules=rules)


def _effective_view(view: ClusterView, checker: HealthChecker) -> ClusterView:
    """The view with each rule's weights replaced by the effective ones (Started
    nodes), so that a fresh worker starts with the weights the runtime API would set."""
    rules = []
    for rule in view.rules:
        weights = dict(rule.weights)
        effective = checker.weights(rule)
        for node in view.nodes:
            if node.state is HostState.STARTED:
                weights[node.name] = haproxy_weight(effective.get(node.name, 0.0))
        rules.append(dataclasses.replace(rule, weights=weights))
    return dataclasses.replace(view, rules=tuple(rules))


def _socket_dir(work_dir: Path) -> Path:
    """Where the engine's unix sockets go: its work directory, or, when that path is too
    long for a socket (a deep home), a directory of its own under the system's
    temporary directory named by a hash of the work directory."""
    if len(os.fsencode(str(work_dir / "master.sock"))) <= SOCKET_PATH_MAX:
        return work_dir
    digest = hashlib.blake2b(os.fsencode(str(work_dir)), digest_size=8).hexdigest()
    return Path(tempfile.gettempdir()) / f"casarray-haproxy-{digest}"


def _socket_command(path: Path, line: str, timeout: float) -> str:
    """One command on a unix socket, blocking: the whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def parse_workers(answer: str) -> list[tuple[int, bool]]:
    """(pid, current) of every worker in the master's `show proc`: the current worker
    and old ones still finishing their connections after a reload."""
    workers = []
    section = ""
    for line in answer.splitlines():
        if line.startswith("#"):
            section = line.lstrip("#").strip().lower()
            continue
        fields = line.split()
        if len(fields) >= 2 and fields[0].isdigit() and fields[1] == "worker":
            workers.append((int(fields[0]), section == "workers"))
    return workers


def parse_sessions(answer: str) -> dict[ServerKey, int]:
    """(backend, server) -> current sessions (scur) from `show stat` CSV."""
    text = answer.lstrip()
    if not text.startswith("# "):
        return {}
    sessions: dict[ServerKey, int] = {}
    for row in csv.DictReader(io.StringIO(text[2:])):
        server = row.get("svname") or ""
        if server in ("FRONTEND", "BACKEND", ""):
            continue
        with contextlib.suppress(ValueError, TypeError):
            sessions[(row["pxname"], server)] = int(row.get("scur") or 0)
    return sessions


class HaproxyEngine:
    """Debian's haproxy as the data plane (see the module's docstring)."""

    name = "HAProxy"

    def __init__(
        self,
        work_dir: str | Path,
        *,
        haproxy_binary: str = HAPROXY,
        health_path: str = haproxy.HEALTH_PATH,
        balance_none: Literal["roundrobin", "leastconn"] = "roundrobin",
        maxconn: int | None = None,
        start_timeout: float = 10.0,
        close_grace: float = 5.0,
        socket_timeout: float = 1.0,
    ) -> None:
        self.work_dir = Path(work_dir).absolute()
        self.haproxy_binary = haproxy_binary
        self.health_path = health_path
        self.balance_none: Literal["roundrobin", "leastconn"] = balance_none
        self.maxconn = maxconn
        self.start_timeout = start_timeout
        self.close_grace = close_grace
        self.socket_timeout = socket_timeout
        self.config_path = self.work_dir / "haproxy.cfg"
        sockets = _socket_dir(self.work_dir)
        self.admin_socket = sockets / "admin.sock"
        self.master_socket = sockets / "master.sock"
        self.pid_file = self.work_dir / "haproxy.pid"
        self.log_path = self.work_dir / "haproxy.log"
        self.api = RuntimeApi(self.admin_socket, timeout=socket_timeout)
        self.process: subprocess.Popen[bytes] | None = None
        self.worker: int | None = None  # the current worker's pid
        self.reloads = 0
        self._view: ClusterView | None = None
        self._topology: ClusterView | None = None
        self._applied: dict[ServerKey, tuple[ServerAdminState, int | None]] = {}
        self._lock = asyncio.Lock()
        self._stats: tuple[float, dict[ServerKey, int]] | None = None

    # -- the Engine protocol -------------------------------------------------------------

    async def start(self, view: ClusterView, checker: HealthChecker) -> None:
        async with self._lock:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.admin_socket.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in (self.admin_socket, self.master_socket):
                if len(str(path)) > SOCKET_PATH_MAX:
                    raise HaproxyError(f"socket path too long for a unix socket: {path}")
            await asyncio.to_thread(self._stop_stale)
            await self._write_config(view, checker)
            with self.log_path.open("ab") as out:
                self.process = subprocess.Popen(
                    [
                        self.haproxy_binary,
                        "-W",
                        "-db",
                        "-S",
                        f"{self.master_socket},mode,600",
                        "-f",
                        str(self.config_path),
                        "-p",
                        str(self.pid_file),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.work_dir,
                    start_new_session=True,  # survives a crash of the control plane
                )
            try:
                self.worker = await self._wait_for_worker(None)
            except BaseException:
                await asyncio.to_thread(self._stop_process, 0.0)
                raise
            self._view, self._topology = view, topology(view)
            self._applied = {}
            await self._apply(view, checker)
            log.info(
                "%s: haproxy started (master %d, worker %d), %s",
                view.name,
                self.process.pid,
                self.worker,
                self.config_path,
            )

    async def update(self, view: ClusterView, checker: HealthChecker) -> None:
        async with self._lock:
            if self.process is None:
                return
            if self.process.poll() is not None:
                raise HaproxyError(
                    f"haproxy exited with {self.process.returncode}: {self._log_tail()}"
                )
            shape = topology(view)
            if shape != self._topology:
                await self._reload(view, checker)
                self._topology = shape
            self._view = view
            await self._apply(view, checker)

    def connections(self, node: Node) -> int | None:
        if self.process is None or self._view is None:
            return None
        try:
            sessions = self._sessions()
        except (OSError, HaproxyError):
            return None
        server = server_name(node)
        return sum(count for (_, srv), count in sessions.items() if srv == server)

    def cut(self, node: Node) -> int:
        if self.process is None or self._view is None:
            return 0
        server = server_name(node)
        cut = 0
        try:
            self._stats = None
            before = self._sessions()
            backends = [backend_name(self._view, rule) for rule in _balanced_rules(self._view)]
            for pid, _ in self._workers():
                for backend in backends:
                    self._shutdown_sessions(pid, backend, server)
            cut = sum(count for (_, srv), count in before.items() if srv == server)
        except (OSError, HaproxyError) as exc:
            log.warning("cutting the connections of %s failed: %s", node.name, exc)
        self._stats = None
        return cut

    async def close(self, view: ClusterView, *, keep: bool) -> None:
        async with self._lock:
            if self.process is None:
                return
            await asyncio.to_thread(self._stop_process, self.close_grace)
            log.info("%s: haproxy stopped", view.name)
            self.process = None
            self.worker = None

    # -- config and processes ------------------------------------------------------------

    def render(self, view: ClusterView, checker: HealthChecker) -> str:
        """The haproxy.cfg for `view`, with the checker's effective weights."""
        return render_config(
            _effective_view(view, checker),
            socket_path=self.admin_socket,
            health_path=self.health_path,
            balance_none=self.balance_none,
            maxconn=self.maxconn,
        )

    async def _write_config(self, view: ClusterView, checker: HealthChecker) -> None:
        """Render, check with `haproxy -c` and put the config in place (a config that
        fails the check never replaces the one haproxy runs)."""
        candidate = self.config_path.with_name(self.config_path.name + ".new")
        candidate.write_text(self.render(view, checker))
        check = await asyncio.create_subprocess_exec(
            self.haproxy_binary,
            "-c",
            "-f",
            str(candidate),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await check.communicate()
        if check.returncode != 0:
            raise HaproxyError(
                f"haproxy -c rejected {candidate}: {output.decode(errors='replace').strip()}"
            )
        os.replace(candidate, self.config_path)

    async def _reload(self, view: ClusterView, checker: HealthChecker) -> None:
        assert self.process is not None
        await self._write_config(view, checker)
        old = self.worker
        os.kill(self.process.pid, signal.SIGUSR2)
        self.worker = await self._wait_for_worker(old)
        self.reloads += 1
        self._applied = {}  # a new worker: send every state again
        self._stats = None
        log.info("%s: haproxy reloaded (worker %s -> %d)", view.name, old, self.worker)

    async def _wait_for_worker(self, old: int | None) -> int:
        """The pid of the worker that answers on the runtime socket, once it is not
        `old` any more."""
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        problem = "no answer"
        while True:
            if self.process.poll() is not None:
                raise HaproxyError(
                    f"haproxy exited with {self.process.returncode}: {self._log_tail()}"
                )
            try:
                info = await self.api.command("show info")
                pid = next(
                    (
                        int(line.split(":", 1)[1])
                        for line in info.splitlines()
                        if line.startswith("Pid:")
                    ),
                    None,
                )
                if pid is not None and pid != old:
                    # the master re-executes itself on a reload: its socket answers
                    # again, listing the new worker, a moment later
                    workers = parse_workers(await asyncio.to_thread(self._master, "show proc"))
                    if (pid, True) in workers:
                        return pid
                    problem = f"the master does not list worker {pid} yet"
                else:
                    problem = f"still worker {pid}"
            except (RuntimeApiError, HaproxyError, OSError, ValueError) as exc:
                problem = str(exc)
            if time.monotonic() > deadline:
                raise HaproxyError(
                    f"haproxy's worker did not answer on {self.admin_socket} within "
                    f"{self.start_timeout:g} s ({problem}): {self._log_tail()}"
                )
            await asyncio.sleep(0.02)

    async def _apply(self, view: ClusterView, checker: HealthChecker) -> None:
        """Send the admin states and weights that differ from what was last sent. A
        command that fails is logged and sent again at the next update."""
        for (backend, server), (state, weight) in desired_servers(view, checker).items():
            applied_state, applied_weight = self._applied.get((backend, server), (None, None))
            try:
                if weight is not None and weight != applied_weight:
                    await self.api.set_weight(backend, server, weight)
                    applied_weight = weight
                if state != applied_state:
                    await self.api.set_state(backend, server, state)
                    applied_state = state
            except (RuntimeApiError, OSError) as exc:
                log.warning("haproxy: %s/%s: %s", backend, server, exc)
                self._applied.pop((backend, server), None)
                continue
            self._applied[(backend, server)] = (state, applied_weight)

    def _stop_process(self, grace: float) -> None:
        """Soft stop (SIGUSR1: stop accepting, finish the open connections) for up to
        `grace` seconds, then SIGTERM (hard stop), then SIGKILL to what is left of the
        process group."""
        process = self.process
        if process is None:
            return
        for signum, wait in ((signal.SIGUSR1, grace), (signal.SIGTERM, 5.0)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(wait, 0.05))
        if process.poll() is None:
            process.kill()
            process.wait(5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # workers that outlived the master
        with contextlib.suppress(OSError):
            self.pid_file.unlink()

    def _stop_stale(self) -> None:
        """Stop a haproxy left running with this work folder's config (the control plane
        died without closing it): its pid file names its master."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if str(self.config_path).encode() not in cmdline:
            return
        log.warning("stopping haproxy %d left running with %s", pid, self.config_path)
        for signum in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signum)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
            if not Path(f"/proc/{pid}").exists():
                break

    def _log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:].strip()
        except OSError:
            return "(no log)"

    # -- the master socket ---------------------------------------------------------------

    def _master(self, line: str) -> str:
        """One command on the master socket (`@!<pid> ...` goes to that worker). A
        refused connection is tried again a few times: the master re-executes itself
        at a reload."""
        for attempt in range(5):
            try:
                return _socket_command(self.master_socket, f"{line}; quit", self.socket_timeout)
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                problem: OSError = exc
                time.sleep(0.02 * (attempt + 1))
            except OSError as exc:
                problem = exc
                break
        raise HaproxyError(f"haproxy's master socket {self.master_socket}: {problem}")

    def _shutdown_sessions(self, pid: int, backend: str, server: str) -> None:
        """Close the connections of `backend/server` in worker `pid`. An old worker
        refuses `shutdown sessions server` (its proxies are stopped: "Proxy is
        disabled"), so there each session is shut down by its id from `show sess`."""
        answer = self._master(f"@!{pid} shutdown sessions server {backend}/{server}")
        if not answer.strip():
            return
        for line in self._master(f"@!{pid} show sess").splitlines():
            ident, _, rest = line.partition(":")
            fields = rest.split()
            if f"be={backend}" in fields and f"srv={server}" in fields:
                self._master(f"@!{pid} shutdown session {ident.strip()}")

    def _workers(self) -> list[tuple[int, bool]]:
        return parse_workers(self._master("show proc"))

    def _sessions(self) -> dict[ServerKey, int]:
        """(backend, server) -> sessions, added up over every worker (cached briefly)."""
        now = time.monotonic()
        if self._stats is not None and now - self._stats[0] < STATS_CACHE:
            return self._stats[1]
        total: dict[ServerKey, int] = {}
        for pid, _ in self._workers():
            for key, count in parse_sessions(self._master(f"@!{pid} show stat -1 4 -1")).items():
                total[key] = total.get(key, 0) + count
        self._stats = (now, total)
        return total

    def sessions(self) -> Mapping[ServerKey, int]:
        """(backend, server) -> open connections, every worker added up."""
        return dict(self._sessions())
