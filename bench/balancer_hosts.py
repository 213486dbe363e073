"""The balancer benchmark's hosts mode (`bench/balancer.py --hosts`): NLB on the hosts
against the central planes and the HAProxy pair, in network namespaces, on the same
backends, in one run.

The network: namespaces named `cbh` + a random suffix + a role, on one Linux bridge
(in a namespace of its own, so nothing is added to the machine's own network), with
addresses from 198.19.210.0/24 only and no route out:

| role | address | what runs there |
|---|---|---|
| client | .2 | wrk, the failover client |
| bal | .5 | the central planes (Kernel, HAProxy), holding the cluster IP .10 |
| lb1, lb2 | .6, .7 | the HAProxy pair: haproxy and keepalived each |
| cas1, cas2 | .11, .12 | the "CAS hosts": nginx on 0.0.0.0:80 (as balancer.py runs it) |

The planes, one at a time, through the cluster IP 198.19.210.10:80 (one port rule,
Affinity None):

- direct: wrk to cas1 itself, the ceiling;
- NLB on the hosts: `python -m casarray.balancer.nlb_host` in cas1 and cas2 (Multicast
  mode: the client holds a permanent neighbour entry for the cluster IP -> 03:bf:...,
  as Microsoft documents for the router); each host keeps its own buckets with
  nftables, no box in the middle;
- Kernel: `control_plane.Balancer` with `KernelEngine` (nftables DNAT) in bal, which
  holds the cluster IP; without SNAT the replies must come back through it, so for this
  plane the CAS hosts route the client's address via bal (a /32 route; bal forwards,
  without ICMP redirects), NLB's model of a central DNAT box;
- HAProxy: Debian's haproxy in bal with the config `haproxy.render_config` makes (its
  own health checks: `httpchk` of /owa/healthcheck.htm every 500 ms, `observe layer4`);
- HAProxy+keepalived: the same haproxy in lb1 and lb2 (`ip_nonlocal_bind`), and
  `keepalived.Keepalived` holding the cluster IP (VRRP, unicast adverts every 0.2 s,
  lb1 preferred), measured through the shared address.

wrk (in the client) measures keep-alive requests/s and new connections/s (`Connection:
close`) as balancer.py does, the planes in turn, `--rounds` times (3); the table shows
each plane's median round (the machine is shared: one pass alone is noisy).

Failover: a client thread in the client namespace opens a new connection after another
(`GET /`, connect timeout 0.3 s, answer within 0.5 s, 10 ms apart); a host is killed as
`lab kill-host` does (its bridge port down, then SIGKILL to every process in its
namespace): a CAS host for NLB and the central planes, the active balancer host for the
pair. The failover time is from the kill to the start of the first of 20 consecutive
successful new connections; median and max over TRIALS trials, for NLB with NLB's
default heartbeats (1 s, tolerance 5) and with the lab's (0.1 s, tolerance 5, the
directory's least). Between trials the host is restored (port up, its processes started
again) and the next waits until the plane has it back.

Goals: NLB on the hosts >= 1.2x HAProxy's new connections/s, and its failover with the
lab's heartbeats under 1 s (max). Exit 0 whether the goals are met or not, 1 on an
error, 2 when a tool is missing (root, ip, nft, nginx, wrk, haproxy, keepalived).
Everything started is stopped and every namespace removed on exit (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import benchlib

import balancer as flat
from casarray.lab.walkthrough import HOSTS_HEARTBEAT

SUBNET = "198.19.210"
VIP = f"{SUBNET}.10"
PORT = 80
CLUSTER = "bench-hosts.lab.net"
ROLES = {
    "client": f"{SUBNET}.2",
    "bal": f"{SUBNET}.5",
    "lb1": f"{SUBNET}.6",
    "lb2": f"{SUBNET}.7",
    "cas1": f"{SUBNET}.11",
    "cas2": f"{SUBNET}.12",
}
CAS = {"cas1": "CAS01", "cas2": "CAS02"}
PLANES = ("direct", "nlb", "kernel", "haproxy", "pair")
LABELS = {
    "direct": "direct",
    "nlb": "NLB hosts",
    "kernel": "Kernel",
    "haproxy": "HAProxy",
    "pair": "HAProxy+keepalived",
}
NLB_GOAL, FAILOVER_GOAL = 1.2, 1.0
ADVERT = 0.2  # the pair's VRRP advert interval (the lab's)
LAB_PERIOD = HOSTS_HEARTBEAT / 1000  # the lab's NLB heartbeat period (walkthrough --hosts)
RUN = 20  # consecutive successful new connections that end a failover
CONNECT_TIMEOUT, ANSWER_TIMEOUT, PAUSE = 0.3, 0.5, 0.01
WATCH = 20.0  # at most this long after a kill
CLONE_NEWNET = 0x40000000
TOOLS = {
    "ip": "iproute2",
    "nft": "nftables",
    "nginx": "nginx-light",
    "wrk": "wrk",
    "haproxy": "haproxy",
    "keepalived": "keepalived",
}


def missing_tool() -> str | None:
    if os.geteuid() != 0:
        return "root (network namespaces)"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None:
            return f"{tool} (Debian package {package})"
    return None


# -- the network --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def in_netns(ns: str, work: Callable[[], Any]) -> Any:
    """`work()` in a thread that has joined namespace `ns` (sockets it opens stay there)."""
    out: list[Any] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {ns}")
            finally:
                os.close(fd)
            out.append(work())
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return out[0]


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Network:
    """The namespaces and the bridge; `close` removes them all."""

    def __init__(self) -> None:
        self.tag = "cbh" + secrets.token_hex(3)
        self.bridge = f"{self.tag}br"
        self.ns = {role: f"{self.tag}{role}" for role in ROLES}
        self.made: list[str] = []

    def create(self) -> None:
        ip("netns", "add", self.bridge)
        self.made.append(self.bridge)
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        for role, address in ROLES.items():
            ns = self.ns[role]
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"p{role}",
               "netns", self.bridge)  # fmt: skip
            ip("-n", self.bridge, "link", "set", f"p{role}", "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        # bal forwards the CAS hosts' replies to the client (the Kernel plane's DNAT)
        self.sysctl("bal", "net.ipv4.ip_forward=1")
        for scope in ("all", "default", "eth0"):
            self.sysctl("bal", f"net.ipv4.conf.{scope}.send_redirects=0")
        for role in ("lb1", "lb2"):
            self.sysctl(role, "net.ipv4.ip_nonlocal_bind=1")
        # wrk closes first: every connection leaves the client a TIME_WAIT for 60 s, and
        # all the planes share one destination (the cluster IP): without these, the
        # client runs short of ports after a few planes and new connections/s collapse
        self.sysctl("client", "net.ipv4.tcp_tw_reuse=1")
        self.sysctl("client", "net.ipv4.ip_local_port_range=1024 65535")

    def sysctl(self, role: str, setting: str) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.ns[role], "sysctl", "-qw", setting],
            check=True,
            capture_output=True,
        )

    def argv(self, role: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *argv]

    def pids(self, role: str) -> list[int]:
        out = ip("netns", "pids", self.ns[role], check=False)
        return [int(pid) for pid in out.split() if pid.isdigit()]

    def kill_all(self, role: str) -> None:
        for pid in self.pids(role):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def kill_host(self, role: str) -> None:
        """As `lab kill-host`: the host's port down, then SIGKILL to all its processes."""
        ip("-n", self.bridge, "link", "set", f"p{role}", "down")
        self.kill_all(role)

    def link_up(self, role: str) -> None:
        ip("-n", self.bridge, "link", "set", f"p{role}", "up")

    def has_address(self, role: str, address: str) -> bool:
        out = ip("-n", self.ns[role], "-4", "addr", "show", "dev", "eth0", check=False)
        return f" {address}/" in out

    def close(self) -> None:
        for ns in reversed(self.made):
            for pid in [int(p) for p in ip("netns", "pids", ns, check=False).split() if p]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        for ns in reversed(self.made):
            ip("netns", "del", ns, check=False)
        self.made.clear()


def http_ok_in(net: Network, role: str, host: str, timeout: float = 1.0) -> bool:
    return bool(in_netns(net.ns[role], lambda: flat.http_ok(host, PORT, timeout)))


# -- the backends -------------------------------------------------------------------------


class HostNginx(flat.Backend):
    """balancer.py's nginx backend on 0.0.0.0:80 inside a CAS host's namespace, with the
    page HAProxy's check asks for (/owa/healthcheck.htm)."""

    def __init__(self, net: Network, role: str, base: Path) -> None:
        super().__init__("0.0.0.0", PORT, base / role)
        with contextlib.suppress(OSError):  # nginx's worker (`nobody`) reads below it
            base.chmod(0o755)
        self.net, self.role = net, role
        owa = self.base / "www" / "owa"
        owa.mkdir(exist_ok=True)
        (owa / "healthcheck.htm").write_bytes(flat.PAGE)
        owa.chmod(0o755)
        (owa / "healthcheck.htm").chmod(0o644)

    def start(self) -> None:
        self.proc = flat.spawn(self.net.argv(self.role, *self._argv), self.base / "nginx.out")
        address = ROLES[self.role]
        flat.wait_until(
            lambda: self._up() and http_ok_in(self.net, "client", address, 0.5),
            f"nginx in {self.role}",
        )

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"nginx in {self.role} exited with {self.proc.returncode}")
        return True

    def killed(self) -> None:
        """Its host was killed: reap the process."""
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.proc = None


# -- the planes ---------------------------------------------------------------------------


def cluster_view() -> Any:
    from casarray.balancer.model import Affinity, ClusterView, Node, PortRule, RuleProtocol

    nodes = tuple(
        Node(CAS[role], ROLES[role], host_id=i, priority=i)
        for i, role in enumerate(("cas1", "cas2"), 1)
    )
    rule = PortRule(PORT, PORT, protocol=RuleProtocol.TCP, affinity=Affinity.NONE)
    return ClusterView(CLUSTER, VIP, nodes, (rule,))


def plane_main(argv: list[str]) -> int:
    """`balancer.py _hosts_plane ENGINE WORK`: balancer.py's plane process with this
    mode's cluster (run inside the balancer host's namespace)."""
    return flat.plane_main([argv[0], str(PORT), argv[1]], view=cluster_view())


@dataclass
class Plane:
    """One plane as measured: where wrk points, what to kill, how to restore."""

    name: str
    target: str  # the address wrk and the failover client use
    note: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def pids(self) -> list[int]:
        return [pid for proc in self.procs for pid in flat.process_tree(proc.pid)]


class Bench:
    def __init__(self, net: Network, base: Path, sockets: Path) -> None:
        self.net, self.base, self.sockets = net, base, sockets
        self.nginx = {role: HostNginx(net, role, base) for role in CAS}
        self.drivers: dict[str, subprocess.Popen[bytes]] = {}
        self.timings = (1.0, 5)
        self.central: flat.Plane | None = None  # the Kernel plane's process
        self.haproxy: dict[str, subprocess.Popen[bytes]] = {}
        self.keepalived: dict[str, Any] = {}

    # NLB on the hosts

    def nlb_config(self, role: str) -> Any:
        from casarray.balancer.model import Affinity, PortRule, RuleProtocol
        from casarray.balancer.nlb_host.config import NlbHostConfig

        index = int(role[-1])
        period, tolerance = self.timings
        return NlbHostConfig(
            cluster_ip=VIP,
            cluster_name=CLUSTER,
            interface="eth0",
            name=CAS[role],
            address=ROLES[role],
            prefix_length=24,
            host_id=index,
            priority=index,
            rules=(PortRule(PORT, PORT, protocol=RuleProtocol.TCP, affinity=Affinity.NONE),),
            heartbeat_period=period,
            tolerance=tolerance,
            status_file=str(self.base / f"nlb-{role}.status.json"),
        )

    def start_driver(self, role: str) -> None:
        path = self.base / f"nlb-{role}.json"
        path.write_text(self.nlb_config(role).to_json())
        with contextlib.suppress(FileNotFoundError):
            (self.base / f"nlb-{role}.status.json").unlink()
        argv = self.net.argv(role, sys.executable, "-m", "casarray.balancer.nlb_host", str(path))
        self.drivers[role] = flat.spawn(argv, self.base / f"nlb-{role}.log")

    def nlb_converged(self, roles: tuple[str, ...] = ("cas1", "cas2")) -> bool:
        for role in roles:
            proc = self.drivers.get(role)
            if proc is not None and proc.poll() is not None:
                log = (self.base / f"nlb-{role}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the NLB driver of {role} exited:\n{log}")
            try:
                status = json.loads((self.base / f"nlb-{role}.status.json").read_text())
            except (OSError, ValueError):
                return False
            if status.get("state") != "Converged" or len(status.get("members", ())) != 2:
                return False
        return True

    def stop_drivers(self) -> None:
        for proc in self.drivers.values():
            flat.stop_process(proc, signal.SIGTERM)
        self.drivers.clear()

    def start_nlb(self, timings: tuple[float, int]) -> Plane:
        from casarray.balancer.nlb_host.macs import multicast_mac

        self.timings = timings
        client = self.net.ns["client"]
        ip("-n", client, "neigh", "replace", VIP, "lladdr", multicast_mac(VIP), "dev", "eth0")
        ip("-n", client, "neigh", "change", VIP, "lladdr", multicast_mac(VIP), "dev", "eth0",
           "nud", "permanent")  # fmt: skip
        for role in CAS:
            self.start_driver(role)
        flat.wait_until(lambda: self.nlb_converged() and self.vip_ok(), "NLB on the hosts")
        period, tolerance = timings
        plane = Plane("nlb", VIP, f"2 drivers, Multicast, heartbeat {period:g} s x {tolerance}")
        plane.procs = list(self.drivers.values())
        return plane

    def stop_nlb(self) -> None:
        self.stop_drivers()
        ip("-n", self.net.ns["client"], "neigh", "del", VIP, "dev", "eth0", check=False)

    # the central planes in bal

    def start_kernel(self) -> Plane:
        self.net_vip_on("bal")
        for role in CAS:
            self.route_via_bal(role)
        work = self.base / "plane-kernel"
        work.mkdir(exist_ok=True)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "balancer.py")
        argv = self.net.argv("bal", sys.executable, script, "_hosts_plane", "Kernel", str(work))
        proc = flat.spawn(argv, work / "plane.log")
        self.central = flat.Plane("kernel", VIP, PORT, work, proc)
        central = self.central

        def ready() -> bool:
            if proc.poll() is not None:
                log = (work / "plane.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the Kernel plane exited with {proc.returncode}:\n{log}")
            return all(central.has(n) for n in CAS.values()) and self.vip_ok()

        flat.wait_until(ready, "the Kernel plane")
        plane = Plane("kernel", VIP, "nftables DNAT in bal; CAS replies routed via bal")
        plane.procs = [proc]
        return plane

    def route_via_bal(self, role: str) -> None:
        ip("-n", self.net.ns[role], "route", "replace", f"{ROLES['client']}/32", "via",
           ROLES["bal"])  # fmt: skip

    def stop_kernel(self) -> None:
        if self.central is not None and self.central.proc is not None:
            flat.stop_process(self.central.proc, signal.SIGTERM)
        self.central = None
        for role in CAS:
            ip("-n", self.net.ns[role], "route", "del", f"{ROLES['client']}/32", check=False)
        self.net_vip_off("bal")

    def net_vip_on(self, role: str) -> None:
        ip("-n", self.net.ns[role], "addr", "replace", f"{VIP}/24", "dev", "eth0")

    def net_vip_off(self, role: str) -> None:
        ip("-n", self.net.ns[role], "addr", "del", f"{VIP}/24", "dev", "eth0", check=False)
        ip("-n", self.net.ns["client"], "neigh", "del", VIP, "dev", "eth0", check=False)

    def start_haproxy(self, role: str) -> subprocess.Popen[bytes]:
        from casarray.balancer import haproxy

        work = self.base / f"haproxy-{role}"
        work.mkdir(exist_ok=True)
        sock = self.sockets / f"{role}.sock"
        (work / "haproxy.cfg").write_text(haproxy.render_config(cluster_view(), socket_path=sock))
        argv = self.net.argv(role, flat.HAPROXY, "-db", "-f", str(work / "haproxy.cfg"))
        proc = flat.spawn(argv, work / "haproxy.log")
        (work / "haproxy.pid").write_text(f"{proc.pid}\n")
        self.haproxy[role] = proc
        return proc

    def haproxy_up(self, role: str) -> bool:
        proc = self.haproxy.get(role)
        if proc is not None and proc.poll() is not None:
            log = (self.base / f"haproxy-{role}" / "haproxy.log").read_text(errors="replace")
            raise RuntimeError(f"haproxy in {role} exited:\n{log[-2000:]}")
        sock = self.sockets / f"{role}.sock"
        return all(flat.haproxy_server_up(sock, node) for node in CAS.values())

    def start_central_haproxy(self) -> Plane:
        self.net_vip_on("bal")
        proc = self.start_haproxy("bal")
        flat.wait_until(lambda: self.haproxy_up("bal") and self.vip_ok(), "HAProxy in bal")
        plane = Plane("haproxy", VIP, f"haproxy {flat.haproxy_version()} in bal, render_config")
        plane.procs = [proc]
        return plane

    def stop_central_haproxy(self) -> None:
        self.stop_haproxy("bal")
        self.net_vip_off("bal")

    def stop_haproxy(self, role: str) -> None:
        proc = self.haproxy.pop(role, None)
        if proc is not None:
            flat.stop_process(proc, signal.SIGTERM)

    # the pair

    def start_lb(self, role: str) -> None:
        from casarray.balancer.keepalived import Keepalived, VrrpInstance, vrrp_priority

        rank = ("lb1", "lb2").index(role)
        other = ("lb2", "lb1")[rank]
        self.start_haproxy(role)
        keeper = Keepalived(
            VrrpInstance(
                cluster=CLUSTER,
                interface="eth0",
                address=f"{VIP}/24",
                priority=vrrp_priority(rank),
                advert_interval=ADVERT,
                peers=(ROLES[other],),
                source=ROLES[role],
                haproxy_pid_file=self.base / f"haproxy-{role}" / "haproxy.pid",
            ),
            self.base / f"keepalived-{role}",
            wrapper=tuple(self.net.argv(role)),
        )
        keeper.start()
        self.keepalived[role] = keeper

    def pair_settled(self) -> bool:
        """lb1 (the preferred host) holds the cluster IP, lb2 doesn't, both haproxies
        have both servers up, and the client gets through."""
        return (
            self.net.has_address("lb1", VIP)
            and not self.net.has_address("lb2", VIP)
            and self.haproxy_up("lb1")
            and self.haproxy_up("lb2")
            and self.vip_ok()
        )

    def pair_state(self) -> str:
        return (
            f"cluster IP on lb1 {self.net.has_address('lb1', VIP)}, on lb2 "
            f"{self.net.has_address('lb2', VIP)}; servers up in lb1 {self.haproxy_up('lb1')}, "
            f"in lb2 {self.haproxy_up('lb2')}; the client gets through {self.vip_ok()}"
        )

    def start_pair(self) -> Plane:
        for role in ("lb1", "lb2"):
            self.start_lb(role)
        flat.wait_until(self.pair_settled, "the HAProxy pair")
        plane = Plane("pair", VIP, f"haproxy in lb1 and lb2, keepalived adverts {ADVERT:g} s")
        plane.procs = [self.haproxy["lb1"], self.haproxy["lb2"]]
        return plane

    def stop_pair(self) -> None:
        for role in ("lb1", "lb2"):
            keeper = self.keepalived.pop(role, None)
            if keeper is not None:
                keeper.stop()
            self.stop_haproxy(role)
            self.net_vip_off(role)

    def vip_ok(self) -> bool:
        return http_ok_in(self.net, "client", VIP, 0.5)

    # kill and restore

    def kill(self, plane: Plane, index: int) -> str:
        """Kill the plane's host of trial `index`; the role killed."""
        if plane.name == "pair":
            role = "lb1" if self.net.has_address("lb1", VIP) else "lb2"
        else:
            role = ("cas1", "cas2")[index % 2]
        self.net.kill_host(role)
        return role

    def restore(self, plane: Plane, role: str) -> None:
        if role in CAS:
            self.nginx[role].killed()
            self.drivers.pop(role, None)
            self.net.link_up(role)
            if plane.name == "kernel":
                self.route_via_bal(role)
            self.nginx[role].start()
            if plane.name == "nlb":
                self.start_driver(role)
                plane.procs = list(self.drivers.values())
                flat.wait_until(self.nlb_converged, f"NLB: {role} back")
            elif plane.name == "kernel":
                assert self.central is not None
                central, node = self.central, CAS[role]
                flat.wait_until(lambda: central.has(node), f"Kernel: {node} back")
            elif plane.name == "haproxy":
                flat.wait_until(lambda: self.haproxy_up("bal"), f"HAProxy: {role} back")
        else:  # a balancer host of the pair: it comes back as a rebooted host would
            keeper = self.keepalived.pop(role)
            keeper.stop()
            proc = self.haproxy.pop(role)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            flat.wait_until(lambda: not self.net.pids(role), f"{role}'s processes gone")
            ip("-n", self.net.ns[role], "addr", "del", f"{VIP}/24", "dev", "eth0", check=False)
            for pid_file in ("keepalived.pid", "vrrp.pid"):  # keepalived would wait on them
                (keeper.work / pid_file).unlink(missing_ok=True)
            self.net.link_up(role)
            self.start_lb(role)
            plane.procs = [self.haproxy["lb1"], self.haproxy["lb2"]]
            try:
                flat.wait_until(self.pair_settled, f"the pair: {role} back")
            except RuntimeError as exc:
                raise RuntimeError(f"{exc} ({self.pair_state()})") from None
        # the plane serves again: 20 good connections in a row before the next trial
        flat.wait_until(lambda: all(self.vip_ok() for _ in range(RUN)), "20 good connections")


# -- wrk ----------------------------------------------------------------------------------


def run_wrk(
    net: Network, plane: Plane, *, close: bool, seconds: float, connections: int
) -> flat.Result:
    url = f"http://{plane.target}:{PORT}/"
    wrk = flat.wrk_argv(url, close=close, seconds=seconds, connections=connections)
    return flat.measure_wrk(net.argv("client", *wrk), plane.pids())


# -- failover -----------------------------------------------------------------------------


@dataclass
class Trial:
    failover: float  # from the kill to the first of RUN consecutive good connections
    failed: int  # attempts started after the kill that failed
    recovered: bool


@dataclass
class Failover:
    label: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def times(self) -> list[float]:
        return [t.failover for t in self.trials]


def attempt(host: str) -> bool:
    """One new connection, `GET /`: connected within 0.3 s, the page within 0.5 s."""
    try:
        with socket.create_connection((host, PORT), timeout=CONNECT_TIMEOUT) as sock:
            sock.settimeout(ANSWER_TIMEOUT)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200") and data.endswith(flat.PAGE)


def trial(bench: Bench, plane: Plane, index: int) -> tuple[Trial, str]:
    attempts: list[tuple[float, bool]] = []
    killed: list[float] = []
    done = threading.Event()

    def client() -> None:
        streak = 0
        while not done.is_set():
            began = time.monotonic()
            ok = attempt(plane.target)
            attempts.append((began, ok))
            if killed and began >= killed[0]:
                streak = streak + 1 if ok else 0
                if streak >= 2 * RUN or began - killed[0] > WATCH:
                    return
            time.sleep(PAUSE)

    thread = threading.Thread(target=in_netns, args=(bench.net.ns["client"], client), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # the load runs before the kill
        killed.append(time.monotonic())
        role = bench.kill(plane, index)
        while thread.is_alive():
            benchlib.check_stop()
            thread.join(0.1)
    finally:
        done.set()
        thread.join()
    after = [a for a in attempts if a[0] >= killed[0]]
    streak = 0
    for i, (_, ok) in enumerate(after):
        streak = streak + 1 if ok else 0
        if streak == RUN:
            start = after[i - RUN + 1][0]
            failed = sum(1 for _, ok in after[: i - RUN + 1] if not ok)
            return Trial(start - killed[0], failed, True), role
    return Trial(WATCH, sum(1 for _, ok in after if not ok), False), role


def failover_trials(bench: Bench, plane: Plane, label: str, trials: int) -> Failover:
    result = Failover(label)
    for index in range(trials):
        benchlib.check_stop()
        one, role = trial(bench, plane, index)
        result.trials.append(one)
        bench.restore(plane, role)
        print(
            f"    trial {index + 1:2}: {role} killed, failover {one.failover * 1000:6.0f} ms, "
            f"{one.failed} new connections failed"
            + ("" if one.recovered else f" (NOT recovered within {WATCH:g} s)"),
            flush=True,
        )
    return result


# -- the report ---------------------------------------------------------------------------


def report(
    planes: list[str],
    keep_alive: dict[str, flat.Result],
    new_conns: dict[str, flat.Result],
    failovers: list[Failover],
    lab_label: str,
) -> None:
    ms = flat._ms
    print()
    header = (
        f"{'plane (median of rounds)':24} {'keep-alive req/s':>16} {'p99':>9} {'x HAProxy':>9}   "
        f"{'new conn/s':>10} {'p99':>9} {'x HAProxy':>9}"
    )
    print(header)
    print("-" * len(header))
    base_ka, base_nc = keep_alive.get("haproxy"), new_conns.get("haproxy")

    def ratio(value: flat.Result | None, base: flat.Result | None) -> str:
        return "-" if value is None or base is None else f"{value.rate / base.rate:.2f}x"

    for name in planes:
        ka, nc = keep_alive.get(name), new_conns.get(name)
        print(
            f"{LABELS[name]:24} {flat._rate(ka.rate if ka else None):>16} "
            f"{ms(ka.p99_ms if ka else None):>9} {ratio(ka, base_ka):>9}   "
            f"{flat._rate(nc.rate if nc else None):>10} {ms(nc.p99_ms if nc else None):>9} "
            f"{ratio(nc, base_nc):>9}"
        )
    flat.print_failed(keep_alive, new_conns, planes, LABELS)
    if failovers:
        print()
        header = (
            f"{'failover (kill -> 20 good new conns)':38} {'median':>8} {'max':>8} "
            f"{'trials':>6} {'failed conns':>12}"
        )
        print(header)
        print("-" * len(header))
        for fo in failovers:
            if not fo.trials:
                continue
            lost = sum(1 for t in fo.trials if not t.recovered)
            print(
                f"{fo.label:38} {statistics.median(fo.times) * 1000:6.0f} ms "
                f"{max(fo.times) * 1000:5.0f} ms {len(fo.trials):>6} "
                f"{sum(t.failed for t in fo.trials):>12}"
                + (f"  ({lost} NOT recovered)" if lost else "")
            )
    print("\ngoals:")
    nc = new_conns.get("nlb")
    if nc is None or base_nc is None:
        print("  NLB on the hosts >= 1.2x HAProxy on new connections/s: not measured")
    else:
        value = nc.rate / base_nc.rate
        verdict = "met" if value >= NLB_GOAL else "MISSED"
        print(f"  NLB on the hosts {value:.2f}x HAProxy on new connections/s (>= 1.2x): {verdict}")
    lab = next((fo for fo in failovers if fo.label == lab_label and fo.trials), None)
    if lab is None:
        print("  NLB failover with the lab's heartbeats < 1 s: not measured")
    else:
        worst = max(lab.times)
        ok = worst < FAILOVER_GOAL and all(t.recovered for t in lab.trials)
        print(
            f"  NLB failover with the lab's heartbeats: max {worst * 1000:.0f} ms "
            f"(< {FAILOVER_GOAL:g} s): {'met' if ok else 'MISSED'}"
        )


# -- main ---------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """The hosts mode, with balancer.py's parsed options."""
    from casarray.directory.nlb import values

    planes = [p.strip().lower() for p in (args.planes or ",".join(PLANES)).split(",")]
    planes = [p for p in planes if p]
    unknown = [p for p in planes if p not in PLANES]
    if unknown or not planes:
        print(f"--planes with --hosts: {', '.join(unknown) or 'none'}; use {', '.join(PLANES)}")
        return 1
    if missing := missing_tool():
        print(f"the hosts mode needs {missing}", file=sys.stderr)
        return 2
    default_timings = (values.HEARTBEAT_PERIOD / 1000, values.HEARTBEAT_TOLERANCE)
    lab_timings = (LAB_PERIOD, values.HEARTBEAT_TOLERANCE_RANGE[0])
    default_label = f"NLB hosts, NLB's {default_timings[0]:g} s x {default_timings[1]}"
    lab_label = f"NLB hosts, the lab's {lab_timings[0]:g} s x {lab_timings[1]}"
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, benchlib.on_signal)
    cpus = len(os.sched_getaffinity(0))
    print(
        f"{cpus} CPUs shared by wrk ({flat.WRK_THREADS} threads), 2 nginx (1 worker each), "
        f"the plane and this script; wrk -c{args.connections}, {args.seconds:g} s per "
        f"measurement; network namespaces on a bridge, {SUBNET}.0/24"
    )
    keep_alive: dict[str, flat.Result] = {}
    new_conns: dict[str, flat.Result] = {}
    failovers: list[Failover] = []
    net = Network()
    with (
        benchlib.temporary(args.keep, "casarray-balancer-hosts-") as base,
        benchlib.temporary(None, "cbh", 0o700) as sockets,
        contextlib.ExitStack() as cleanup,
    ):
        cleanup.callback(net.close)
        net.create()
        bench = Bench(net, base, sockets)
        for nginx in bench.nginx.values():
            cleanup.callback(nginx.stop)
            nginx.start()
        print(
            f"backends: nginx {flat.nginx_version()} in cas1 ({ROLES['cas1']}) and cas2 "
            f"({ROLES['cas2']}), 0.0.0.0:{PORT}; cluster IP {VIP}:{PORT}; namespaces "
            f"{net.tag}*\n",
            flush=True,
        )
        starts: dict[str, Callable[[], Plane]] = {
            "direct": lambda: Plane("direct", ROLES["cas1"], "wrk to cas1 itself"),
            "nlb": lambda: bench.start_nlb(lab_timings),  # converges sooner; same data path
            "kernel": bench.start_kernel,
            "haproxy": bench.start_central_haproxy,
            "pair": bench.start_pair,
        }
        stops: dict[str, Callable[[], None]] = {
            "direct": lambda: None,
            "nlb": bench.stop_nlb,
            "kernel": bench.stop_kernel,
            "haproxy": bench.stop_central_haproxy,
            "pair": bench.stop_pair,
        }
        rounds = max(1, args.rounds)
        measured: dict[str, dict[str, list[flat.Result]]] = {"ka": {}, "nc": {}}
        for round_ in range(1, rounds + 1):  # the planes in turn, `rounds` times
            for name in planes:
                benchlib.check_stop()
                try:
                    plane = starts[name]()
                    print(f"{plane.label} (round {round_} of {rounds}): {plane.note}", flush=True)
                    for close, key in ((False, "ka"), (True, "nc")):
                        what = "new connections" if close else "keep-alive"
                        if args.warmup > 0:
                            run_wrk(
                                net, plane, close=close, seconds=args.warmup,
                                connections=args.connections,
                            )  # fmt: skip
                        result = run_wrk(
                            net, plane, close=close, seconds=args.seconds,
                            connections=args.connections,
                        )  # fmt: skip
                        measured[key].setdefault(name, []).append(result)
                        with (base / "wrk.log").open("a") as log:
                            log.write(f"== {plane.label} {what} round {round_}\n{result.output}\n")
                        print(
                            f"  {what:16} {result.rate:10,.0f}/s  p50 {flat._ms(result.p50_ms)}, "
                            f"p99 {flat._ms(result.p99_ms)}, {result.failed} failed, plane CPU "
                            f"{flat._cpu(result)}",
                            flush=True,
                        )
                finally:
                    stops[name]()
        for key, results in (("ka", keep_alive), ("nc", new_conns)):
            for name, runs in measured[key].items():
                results[name] = sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]
        for name in planes:
            if name == "direct" or args.trials <= 0:
                continue
            benchlib.check_stop()
            try:
                if name == "nlb":
                    plane = bench.start_nlb(default_timings)
                    print(f"failover, {default_label}, {args.trials} trials:", flush=True)
                    failovers.append(failover_trials(bench, plane, default_label, args.trials))
                    bench.stop_nlb()
                    plane = bench.start_nlb(lab_timings)
                    print(f"failover, {lab_label}, {args.trials} trials:", flush=True)
                    failovers.append(failover_trials(bench, plane, lab_label, args.trials))
                else:
                    plane = starts[name]()
                    print(f"failover, {plane.label}, {args.trials} trials:", flush=True)
                    failovers.append(failover_trials(bench, plane, plane.label, args.trials))
            finally:
                stops[name]()
        report(planes, keep_alive, new_conns, failovers, lab_label)
    return 0
