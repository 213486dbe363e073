"""Balancer benchmark: the Kernel, Proxy and HAProxy data planes against the backends
themselves, in one run, on the same backends.

Two nginx backends (Debian's /usr/sbin/nginx, started by this script, one worker
process each, `access_log off`, a 13-byte static page) listen on 127.77.1.11 and
127.77.1.12 on a free high port P; the cluster IP is 127.77.1.10:P, one port rule
(Affinity None, TCP), the default health policy (a TCP connect every 500 ms, 2 failures
down, 2 successes up, 10 s slow start). Each plane runs in a process of its own
(`control.Balancer` with its engine, on uvloop), one plane at a time:

- direct: wrk asks one backend itself (no balancer): the ceiling;
- Kernel: `control.KernelEngine`, nftables DNAT (root and Debian's nft needed);
- Proxy: `control.ProxyEngine`, the asyncio proxy;
- bare: a bare uvloop relay (`bare_main`: accept, connect, relay, close; nothing else),
  the floor of any asyncio proxy on this machine;
- HAProxy: `haproxy_engine.HaproxyEngine`, Debian's haproxy in master-worker mode with
  the config `haproxy.render_config` makes, kept in step through its runtime API.

For each, wrk (Debian's, `wrk -t2 -cCONNECTIONS -dSECONDS --latency`) measures
keep-alive requests/s, and new connections/s with `Connection: close` (nginx closes
after each answer, wrk connects again: one TCP connection per request through the
balancer), each with p99 latency (wrk's: from the request's write, so without the TCP
handshake), failures, and the CPU the plane's processes used (the Kernel plane works
in softirq: not counted). A short warm-up (`--warmup`) comes before each measurement.

Then the failover time over TRIALS trials per plane: under a light load of new
connections (4 Python clients, `GET /` with a new connection each, a few hundred per
second), one nginx backend (master and worker) is killed with SIGKILL; the failover
time is from the kill until the end of the last failed attempt started after it (0
when none failed), so after it 100% of new connections succeed; each trial watches
`--observe` seconds (3) after the kill. An attempt fails when it is refused or reset,
gets anything but the page, or takes more than 2 s; the slowest attempt that succeeded
is shown too (a balancer that retries may answer late rather than fail). The killed
backend is started again and the next trial waits until the plane has it back (its
status file, and for HAProxy its own check too), then kills the other backend. The
Proxy plane retries a refused connection on the next node, so its failover should be
~0; the Kernel plane only learns of the dead node from the probes; HAProxy marks a
server down on the first refused connection (`observe layer4`) and redispatches it.

It prints a table with the ratios against HAProxy and marks the goals of issue 6 that
are missed: Kernel >= 1.2x HAProxy on new connections/s, Proxy >= 0.8x HAProxy (both
measures), failover <= 1 s max. The exit status is 0 whether the goals are met or not;
1 on an error, 2 when a tool is missing. wrk, nginx, the plane and this script share the
machine's CPUs: their number is printed.

    .venv/bin/python bench/balancer.py                       # as root, about 10 minutes
    .venv/bin/python bench/balancer.py --seconds 3 --trials 3            # quick
    .venv/bin/python bench/balancer.py --planes proxy,haproxy

`--hosts` measures NLB on the hosts against the central planes and the HAProxy pair in
network namespaces instead (`balancer_hosts.py`, issue 16; its docstring).

Options: `--seconds S` (10) per wrk measurement, `--connections N` (50, wrk's -c),
`--trials N` (20 failover trials per plane; 0: none), `--planes LIST` (direct, kernel,
proxy, bare, haproxy; default all, Kernel only as root), `--warmup S` (1), `--observe S` (3),
`--keep DIR` (work in DIR and keep it: nginx configs and logs, each plane's log,
haproxy.cfg, wrk's output). Every process started here is stopped on exit (also on
Ctrl-C), and the Kernel plane's nftables table is removed.
"""

from __future__ import annotations

import os
import sys

import balancer_hosts  # the hosts mode (--hosts)
import benchlib  # before the folder leaves the path (see below)

# Run as a script, this file's folder is sys.path[0], and bench/http.py would shadow
# the standard library's `http` (which asyncio's and uvloop's neighbours import).
if sys.path and os.path.realpath(sys.path[0] or os.curdir) == os.path.dirname(
    os.path.realpath(__file__)
):
    del sys.path[0]

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VIP = "127.77.1.10"
BACKENDS = ("127.77.1.11", "127.77.1.12")
CLUSTER = "bench-balancer.lab.net"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin") or "nginx"
WRK = shutil.which("wrk") or "wrk"
HAPROXY = "/usr/sbin/haproxy"
PAGE = b"casarray ok\r\n"
PLANES = ("direct", "kernel", "proxy", "bare", "haproxy")
LABELS = {
    "direct": "direct",
    "kernel": "Kernel",
    "proxy": "Proxy",
    "bare": "bare",
    "haproxy": "HAProxy",
}
ENGINES = {"kernel": "Kernel", "proxy": "Proxy", "haproxy": "HAProxy"}
START_TIMEOUT = 30.0
WRK_THREADS = 2
KERNEL_GOAL, PROXY_GOAL, FAILOVER_GOAL = 1.2, 0.8, 1.0
LOAD_CLIENTS, LOAD_PAUSE, ATTEMPT_TIMEOUT = 4, 0.004, 2.0

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {base}/nginx.pid;
error_log {base}/error.log warn;
events {{
    worker_connections 8192;
}}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    client_body_temp_path {base}/tmp;
    proxy_temp_path {base}/tmp;
    fastcgi_temp_path {base}/tmp;
    uwsgi_temp_path {base}/tmp;
    scgi_temp_path {base}/tmp;
    server {{
        listen {host}:{port} backlog=4096;
        root {base}/www;
        location / {{
            index index.html;
        }}
    }}
}}
"""


# -- processes ----------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


process_tree = benchlib.process_tree
spawn = benchlib.spawn
stop_process = benchlib.stop_process


def processes_naming(text: str) -> list[int]:
    """Live processes whose command line contains `text` (a work folder)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError, IndexError):
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if text.encode() in cmdline and _proc_stat(int(entry))[0] != "Z":
                found.append(int(entry))
    return found


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _proc_stat(pid)
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def common_free_port() -> int:
    """A port free on the cluster IP and on both backends."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((VIP, 0))
            port = int(sock.getsockname()[1])
        if port >= 20000 and all(port_free(host, port) for host in BACKENDS):
            return port
    raise RuntimeError(f"no port free on {VIP} and {', '.join(BACKENDS)}")


def http_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """A blocking `GET /` with a new connection: 200 and the page?"""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200") and data.endswith(PAGE)


def wait_until(check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> float:
    """Poll `check` every 20 ms; the seconds it took."""
    began = time.monotonic()
    while not check():
        benchlib.check_stop()
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)
    return time.monotonic() - began


# -- the nginx backends -------------------------------------------------------------------


class Backend:
    """One nginx: master and one worker, in a process group of its own."""

    def __init__(self, host: str, port: int, base: Path) -> None:
        self.host, self.port = host, port
        self.base = base / f"nginx-{host}"
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("www", "tmp"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "www" / "index.html").write_bytes(PAGE)
        # nginx's worker runs as `nobody` when started as root: let it in
        for path in (self.base, *self.base.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        with contextlib.suppress(OSError):
            base.chmod(0o755)
        self.conf = self.base / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(base=self.base, host=host, port=port))
        self._argv = [NGINX, "-p", str(self.base), "-e", str(self.base / "error.log")]
        self._argv += ["-c", str(self.conf)]
        check = subprocess.run(
            [*self._argv, "-t", "-q"], capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t: {check.stderr.strip()}")

    def start(self) -> None:
        self.proc = spawn(self._argv, self.base / "nginx.out")
        wait_until(lambda: self._answering(), f"nginx on {self.host}:{self.port}")

    def _answering(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"nginx on {self.host} exited with {self.proc.returncode}")
        return http_ok(self.host, self.port, 0.5)

    def kill9(self) -> None:
        """kill -9 of master and worker at once (the process group)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT)
            self.proc = None


def nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False).stderr
    return out.strip().rsplit("/", 1)[-1]


# -- the planes ---------------------------------------------------------------------------


def cluster_view(port: int) -> Any:
    from casarray.balancer.model import Affinity, ClusterView, Node, PortRule, RuleProtocol

    nodes = tuple(
        Node(f"CAS0{i}", host, host_id=i, priority=i) for i, host in enumerate(BACKENDS, 1)
    )
    rule = PortRule(port, port, protocol=RuleProtocol.TCP, affinity=Affinity.NONE)
    return ClusterView(CLUSTER, VIP, nodes, (rule,))


def plane_main(argv: list[str], view: Any = None) -> int:
    """`balancer.py _plane ENGINE PORT WORK`: run a Balancer until SIGTERM (a child
    process of the benchmark, on uvloop); of `view` when given (the hosts mode)."""
    engine_name, port, work = argv[0], int(argv[1]), Path(argv[2])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvloop

    from casarray.balancer.control_plane import Balancer, KernelEngine, ProxyEngine
    from casarray.balancer.haproxy_engine import HaproxyEngine

    view = view or cluster_view(port)
    engines: dict[str, Callable[[], Any]] = {
        "Kernel": KernelEngine,
        "Proxy": ProxyEngine,
        "HAProxy": lambda: HaproxyEngine(work / "haproxy"),
    }

    async def run() -> None:
        balancer = Balancer(lambda: view, engines[engine_name](), status_path=work / "status.json")
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await balancer.start()
        task = asyncio.ensure_future(balancer.loop())
        try:
            await stopping.wait()
        finally:
            balancer.stop()
            await task
            await balancer.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
    return 0


def bare_main(argv: list[str]) -> int:
    """`balancer.py _bare PORT`: the least an asyncio proxy can do per connection (accept,
    connect to the backends in turn, relay with two Protocols, close), on uvloop, with
    no choosing, health or accounting. What the Proxy plane costs above it is ours."""
    port = int(argv[0])
    import uvloop

    class Side(asyncio.Protocol):
        def __init__(self, peer: Side | None = None) -> None:
            self.peer, self.held = peer, b""
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            if self.peer is None:  # the client side: connect to a backend
                asyncio.get_running_loop().create_task(self.connect())
            else:
                self.peer.peer = self
                if self.peer.held:
                    transport.write(self.peer.held)

        async def connect(self) -> None:
            backend = BACKENDS[next(turn) % len(BACKENDS)]
            try:
                await asyncio.get_running_loop().create_connection(
                    lambda: Side(self), backend, port
                )
            except OSError:
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.write(data)
            else:
                self.held += data

        def eof_received(self) -> bool:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.close()
            return False

        def connection_lost(self, exc: Exception | None) -> None:
            if self.peer is not None and self.peer.transport is not None:
                self.peer.transport.close()

    turn = itertools.count()

    async def run() -> None:
        server = await asyncio.get_running_loop().create_server(
            Side, VIP, port, reuse_address=True, backlog=4096
        )
        stopping = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
        await stopping.wait()
        server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
    return 0


@dataclass
class Plane:
    name: str  # direct, kernel, proxy, haproxy
    host: str
    port: int
    work: Path
    proc: subprocess.Popen[bytes] | None = None
    note: str = ""

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def pids(self) -> list[int]:
        return process_tree(self.proc.pid) if self.proc is not None else []

    def status(self) -> dict[str, dict[str, Any]]:
        """The Balancer's status file: node name -> its entry."""
        try:
            status = json.loads((self.work / "status.json").read_text())
        except (OSError, ValueError):
            return {}
        return {node["name"]: node for node in status.get("nodes", ())}

    def has(self, node: str) -> bool:
        """Whether the plane sends new connections to `node` again (up, perhaps still
        in slow start; for HAProxy, also up by its own check)."""
        entry = self.status().get(node)
        if entry is None or entry["state"] not in ("Converged", "Converging"):
            return False
        if entry["state"] == "Converging" and "slow start" not in entry.get("detail", ""):
            return False
        if self.name == "haproxy":
            return haproxy_server_up(self.work / "haproxy" / "admin.sock", node)
        return True


def haproxy_server_up(sock_path: Path, server: str) -> bool:
    """Whether haproxy's own check has `server` up (`show servers state`)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1)
            sock.connect(str(sock_path))
            sock.sendall(b"show servers state\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return False
    header: list[str] = []
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("# "):
            header = line[2:].split()
        elif header and line.strip():
            fields = dict(zip(header, line.split(), strict=False))
            if fields.get("srv_name") == server:
                return fields.get("srv_op_state") == "2"
    return False


def kernel_missing() -> str | None:
    if os.geteuid() != 0:
        return "the Kernel plane needs root"
    if shutil.which("nft") is None:
        return "the Kernel plane needs nft (Debian's nftables)"
    return None


def start_plane(name: str, port: int, base: Path) -> Plane:
    if name == "direct":
        return Plane(name, BACKENDS[0], port, base, note=f"wrk to {BACKENDS[0]} itself")
    work = base / f"plane-{name}"
    work.mkdir(parents=True, exist_ok=True)
    if name == "bare":
        argv = ["_bare", str(port)]
    else:
        argv = ["_plane", ENGINES[name], str(port), str(work)]
    proc = spawn([sys.executable, os.path.abspath(__file__), *argv], work / "plane.log")
    plane = Plane(name, VIP, port, work, proc)

    def ready() -> bool:
        if proc.poll() is not None:
            log = (work / "plane.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the {plane.label} plane exited with {proc.returncode}:\n{log}")
        if name == "bare":
            return http_ok(VIP, port)
        return all(plane.has(node) for node in ("CAS01", "CAS02")) and http_ok(VIP, port)

    try:
        wait_until(ready, f"the {plane.label} plane")
    except BaseException:
        stop_plane(plane)
        raise
    plane.note = {
        "kernel": "nftables DNAT (jhash of the 4-tuple)",
        "proxy": "asyncio proxy on uvloop, 1 process",
        "bare": "a bare uvloop relay (no choice, health or counts): asyncio's floor here",
        "haproxy": f"haproxy {haproxy_version()} master-worker, mode tcp, roundrobin",
    }[name]
    return plane


def stop_plane(plane: Plane) -> None:
    """Stop the plane's process (it closes its data plane), then make sure: no haproxy
    of its work folder left, no nftables table of the cluster left."""
    if plane.proc is not None:
        stop_process(plane.proc, signal.SIGTERM)
        plane.proc = None
    for pid in processes_naming(str(plane.work / "haproxy")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if plane.name == "kernel":
        from casarray.balancer import nft

        view = cluster_view(plane.port)
        with contextlib.suppress(Exception):
            if nft.table_exists(view):
                nft.remove(view)


def haproxy_version() -> str:
    out = subprocess.run([HAPROXY, "-v"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"version (\S+)", out)
    return found.group(1) if found else "?"


# -- wrk ----------------------------------------------------------------------------------


@dataclass
class Result:
    rate: float = 0.0  # requests/s (= new connections/s with Connection: close)
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    failed: int = 0  # non-2xx, socket errors
    cpu_percent: float | None = None  # the plane's processes; 100 = one core
    output: str = ""


def parse_wrk(output: str) -> Result:
    figures = benchlib.parse_wrk(output)
    return Result(
        rate=figures.rate,
        p50_ms=figures.p50_ms,
        p99_ms=figures.p99_ms,
        requests=figures.requests,
        failed=figures.failed,
        output=output,
    )


def wrk_argv(url: str, *, close: bool, seconds: float, connections: int) -> list[str]:
    """wrk's command line for `url`: keep-alive, or a new connection per request."""
    argv = [
        WRK,
        f"-t{WRK_THREADS}",
        f"-c{max(WRK_THREADS, connections)}",
        f"-d{max(1, round(seconds))}s",
        "--timeout=5s",
        "--latency",
    ]
    if close:
        argv += ["-H", "Connection: close"]
    return [*argv, url]


def print_failed(
    keep_alive: dict[str, Result],
    new_conns: dict[str, Result],
    planes: list[str],
    labels: dict[str, str],
) -> None:
    """The line of failed requests per plane, when any failed."""
    failed = {
        labels[n]: keep_alive[n].failed + new_conns[n].failed
        for n in planes
        if n in keep_alive and n in new_conns
    }
    if any(failed.values()):
        print(
            "failed requests (non-2xx, socket errors): "
            + ", ".join(f"{k} {v}" for k, v in failed.items() if v)
        )


def run_wrk(plane: Plane, *, close: bool, seconds: float, connections: int) -> Result:
    url = f"http://{plane.host}:{plane.port}/"
    argv = wrk_argv(url, close=close, seconds=seconds, connections=connections)
    return measure_wrk(argv, plane.pids())


def measure_wrk(argv: list[str], pids: list[int]) -> Result:
    """Runs wrk (`argv`) to its end: its figures, and the CPU `pids` used meanwhile."""
    cpu_before = cpu_seconds(pids)
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=benchlib.die_with_parent
    )
    try:
        while proc.poll() is None:
            benchlib.check_stop()
            time.sleep(0.1)
        output = proc.communicate()[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {' '.join(argv)}\n{output}")
    result = parse_wrk(output)
    if pids:
        result.cpu_percent = 100 * (cpu_seconds(pids) - cpu_before) / elapsed
    return result


# -- failover -----------------------------------------------------------------------------


@dataclass
class Trial:
    failover: float  # seconds from the kill to the end of the last failed attempt
    failed: int  # attempts started after the kill that failed
    attempts: int  # attempts started after the kill
    settled: bool  # the attempts of the last second of the watch all succeeded
    slowest: float  # the longest attempt started after the kill that succeeded (s)


@dataclass
class Failover:
    trials: list[Trial] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [t.failover for t in self.trials]

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.trials else float("nan")

    @property
    def max(self) -> float:
        return max(self.times) if self.trials else float("nan")


async def _attempt(host: str, port: int) -> bool:
    writer = None
    try:
        async with asyncio.timeout(ATTEMPT_TIMEOUT):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = await reader.read()
        return data.startswith(b"HTTP/1.1 200") and data.endswith(PAGE)
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()


async def _trial(plane: Plane, victim: Backend, observe: float) -> Trial:
    attempts: list[tuple[float, float, bool]] = []
    stopping = asyncio.Event()

    async def client() -> None:
        while not stopping.is_set():
            began = time.monotonic()
            ok = await _attempt(plane.host, plane.port)
            attempts.append((began, time.monotonic(), ok))
            await asyncio.sleep(LOAD_PAUSE)

    clients = [asyncio.ensure_future(client()) for _ in range(LOAD_CLIENTS)]
    try:
        await asyncio.sleep(0.5)  # the load runs before the kill
        killed = time.monotonic()
        victim.kill9()
        await asyncio.sleep(observe)
    finally:
        stopping.set()
        await asyncio.gather(*clients, return_exceptions=True)
    after = [a for a in attempts if a[0] >= killed]
    failed = [a for a in after if not a[2]]
    failover = max((end - killed for _, end, _ in failed), default=0.0)
    last = [a for a in after if a[0] >= killed + observe - 1.0]
    slowest = max((end - began for began, end, ok in after if ok), default=0.0)
    settled = bool(last) and all(a[2] for a in last)
    return Trial(failover, len(failed), len(after), settled, slowest)


def failover_trials(plane: Plane, backends: list[Backend], trials: int, observe: float) -> Failover:
    result = Failover()
    for index in range(trials):
        benchlib.check_stop()
        victim = backends[index % len(backends)]
        trial = asyncio.run(_trial(plane, victim, observe))
        result.trials.append(trial)
        victim.start()
        node = f"CAS0{BACKENDS.index(victim.host) + 1}"

        def back(node: str = node) -> bool:
            return plane.has(node)

        wait_until(back, f"{plane.label}: {node} back")
        print(
            f"    trial {index + 1:2}: {victim.host} killed, failover {trial.failover * 1000:6.0f}"
            f" ms, {trial.failed} of {trial.attempts} new connections failed, slowest "
            f"success {trial.slowest * 1000:.0f} ms"
            + ("" if trial.settled else " (NOT settled at the end of the watch)"),
            flush=True,
        )
    return result


# -- the report ---------------------------------------------------------------------------


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def _cpu(result: Result | None) -> str:
    if result is None or result.cpu_percent is None:
        return "-"
    return f"{result.cpu_percent:.0f}%"


def report(
    planes: list[str],
    keep_alive: dict[str, Result],
    new_conns: dict[str, Result],
    failovers: dict[str, Failover],
) -> list[str]:
    """Print the table; the goals missed."""
    print()
    header = (
        f"{'plane':8} {'keep-alive req/s':>16} {'p99':>9} {'CPU':>5}   "
        f"{'new conn/s':>10} {'p99':>9} {'CPU':>5}   {'failover median':>15} {'max':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in planes:
        ka, nc, fo = keep_alive.get(name), new_conns.get(name), failovers.get(name)
        median = "-" if fo is None or not fo.trials else f"{fo.median * 1000:.0f} ms"
        worst = "-" if fo is None or not fo.trials else f"{fo.max * 1000:.0f} ms"
        print(
            f"{LABELS[name]:8} {_rate(ka.rate if ka else None):>16} "
            f"{_ms(ka.p99_ms if ka else None):>9} {_cpu(ka):>5}   "
            f"{_rate(nc.rate if nc else None):>10} {_ms(nc.p99_ms if nc else None):>9} "
            f"{_cpu(nc):>5}   {median:>15} {worst:>8}"
        )
    print_failed(keep_alive, new_conns, planes, LABELS)
    missed: list[str] = []
    print()
    base_ka, base_nc = keep_alive.get("haproxy"), new_conns.get("haproxy")
    if base_ka is None or base_nc is None:
        print("ratios against HAProxy: HAProxy was not measured")
    else:
        print("ratios against HAProxy (keep-alive req/s, new conn/s):")
        goals = {"kernel": (None, KERNEL_GOAL), "proxy": (PROXY_GOAL, PROXY_GOAL)}
        for name in planes:
            if name == "haproxy" or name not in keep_alive or name not in new_conns:
                continue
            ratios = (keep_alive[name].rate / base_ka.rate, new_conns[name].rate / base_nc.rate)
            marks = []
            for what, ratio, goal in zip(
                ("keep-alive", "new connections"),
                ratios,
                goals.get(name, (None, None)),
                strict=True,
            ):
                if goal is None:
                    marks.append(f"{ratio:.2f}x")
                elif ratio >= goal:
                    marks.append(f"{ratio:.2f}x (goal >= {goal}x: met)")
                else:
                    marks.append(f"{ratio:.2f}x (goal >= {goal}x: MISSED)")
                    missed.append(f"{LABELS[name]} {what} {ratio:.2f}x < {goal}x HAProxy")
            print(f"  {LABELS[name]:8} {marks[0]:34} {marks[1]}")
    for name in planes:
        fo = failovers.get(name)
        if fo is None or not fo.trials:
            continue
        ok = fo.max <= FAILOVER_GOAL and all(t.settled for t in fo.trials)
        print(
            f"failover {LABELS[name]:8} median {fo.median * 1000:.0f} ms, max "
            f"{fo.max * 1000:.0f} ms over {len(fo.trials)} trials, "
            f"{sum(t.failed for t in fo.trials)} failed connections in all, slowest success "
            f"{max(t.slowest for t in fo.trials) * 1000:.0f} ms "
            f"(goal max <= {FAILOVER_GOAL:g} s: {'met' if ok else 'MISSED'})"
        )
        if not ok:
            missed.append(f"{LABELS[name]} failover max {fo.max * 1000:.0f} ms")
    print()
    if missed:
        print("goals missed: " + "; ".join(missed))
    else:
        print("every goal measured here is met")
    return missed


# -- main ---------------------------------------------------------------------------------


def conntrack_note() -> str | None:
    """A warning when the connection tracking table is more than half full (the Kernel
    plane's DNAT needs an entry per connection; entries stay 2 min in TIME_WAIT)."""
    try:
        count = int(Path("/proc/sys/net/netfilter/nf_conntrack_count").read_text())
        limit = int(Path("/proc/sys/net/netfilter/nf_conntrack_max").read_text())
    except (OSError, ValueError):
        return None
    if count > limit / 2:
        return f"conntrack table {count:,} of {limit:,} entries: new connections may be dropped"
    return None


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_plane":
        return plane_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_bare":
        return bare_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "_hosts_plane":
        return balancer_hosts.plane_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk measurement (10)")
    parser.add_argument("--connections", type=int, default=50, help="wrk's -c (50)")
    parser.add_argument("--trials", type=int, default=20, help="failover trials per plane (20)")
    parser.add_argument(
        "--planes",
        help=f"comma-separated, of {', '.join(PLANES)} (with --hosts: "
        f"{', '.join(balancer_hosts.PLANES)}); default all",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each (1)")
    parser.add_argument("--observe", type=float, default=3.0, help="seconds after a kill (3)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (configs, logs)")
    parser.add_argument(
        "--hosts", action="store_true", help="in network namespaces: NLB on the hosts and the pair"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="with --hosts: the planes in turn (3)"
    )
    args = parser.parse_args()
    if args.seconds < 1 or args.connections < 1 or args.trials < 0 or args.observe < 3:
        parser.error("--seconds >= 1, --connections >= 1, --trials >= 0, --observe >= 3")
    if args.hosts:
        return balancer_hosts.main(args)
    planes = [p.strip().lower() for p in (args.planes or ",".join(PLANES)).split(",") if p.strip()]
    unknown = [p for p in planes if p not in PLANES]
    if unknown or not planes:
        parser.error(f"--planes: {', '.join(unknown) or 'none'}; use {', '.join(PLANES)}")
    for tool, package in ((WRK, "wrk"), (NGINX, "nginx-light")):
        if not os.path.isabs(tool):
            print(f"{tool} is missing (Debian package {package})", file=sys.stderr)
            return 2
    if "kernel" in planes and (missing := kernel_missing()):
        print(f"Kernel plane left out: {missing}")
        planes.remove("kernel")
    if "haproxy" in planes and not os.path.exists(HAPROXY):
        print(f"HAProxy left out: {HAPROXY} is missing (Debian package haproxy)")
        planes.remove("haproxy")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, benchlib.on_signal)

    cpus = len(os.sched_getaffinity(0))
    print(
        f"{cpus} CPUs shared by wrk ({WRK_THREADS} threads), 2 nginx (1 worker each), the "
        f"plane and this script; wrk -c{args.connections}, {args.seconds:g} s per measurement"
    )
    keep_alive: dict[str, Result] = {}
    new_conns: dict[str, Result] = {}
    failovers: dict[str, Failover] = {}
    with (
        benchlib.temporary(args.keep, "casarray-balancer-bench-") as base,
        contextlib.ExitStack() as cleanup,
    ):
        port = common_free_port()
        backends = [Backend(host, port, base) for host in BACKENDS]
        for backend in backends:
            cleanup.callback(backend.stop)
            backend.start()
        print(
            f"backends: nginx {nginx_version()} on {', '.join(BACKENDS)} port {port}; "
            f"cluster IP {VIP}:{port}\n"
        )
        for name in planes:
            benchlib.check_stop()
            plane = start_plane(name, port, base)
            try:
                print(f"{plane.label}: {plane.note}", flush=True)
                if name == "kernel" and (note := conntrack_note()):
                    print(f"  warning: {note}")
                for close, results in ((False, keep_alive), (True, new_conns)):
                    what = "new connections" if close else "keep-alive"
                    if args.warmup > 0:
                        run_wrk(
                            plane, close=close, seconds=args.warmup, connections=args.connections
                        )
                    result = run_wrk(
                        plane, close=close, seconds=args.seconds, connections=args.connections
                    )
                    results[name] = result
                    with (base / "wrk.log").open("a") as log:
                        log.write(f"== {plane.label} {what}\n{result.output}\n")
                    print(
                        f"  {what:16} {result.rate:10,.0f}/s  p50 {_ms(result.p50_ms)}, p99 "
                        f"{_ms(result.p99_ms)}, {result.failed} failed, plane CPU {_cpu(result)}",
                        flush=True,
                    )
                if name not in ("direct", "bare") and args.trials > 0:
                    print(f"  failover, {args.trials} trials:", flush=True)
                    failovers[name] = failover_trials(plane, backends, args.trials, args.observe)
            finally:
                stop_plane(plane)
        report(planes, keep_alive, new_conns, failovers)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; every process this script started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
