"""The hosts lab's network, made and changed with iproute2 (`ip`, as root): the
namespaces, bridges and veth pairs a `plan.HostPlan` lays out, and what the lab does to
a host (run a command in it, kill it, cut its link, bring it back).

The bridges are in a namespace of their own (the switch), and set so that every frame
reaches every port, as NLB on the hosts needs (every Client Access host must receive
every packet to the cluster IP, whatever its MAC):

- `mcast_snooping 0` on each bridge: without it the bridge forwards a multicast MAC's
  frames (NLB's multicast and IGMP multicast modes, 03-BF-... and 01-00-5E-7F-...) only
  to ports that joined the group by IGMP, and NLB's multicast mode joins none;
- `learning off` and `flood on`, `mcast_flood on` on each port: no port is ever learned
  for a MAC, so a frame to the cluster MAC that every CAS host shares (unicast mode,
  02-BF-...) is flooded to all ports instead of going to the one that spoke last;
- `stp_state 0`: a port forwards at once (no STP listening delay);
- `net.bridge.bridge-nf-call-iptables`, `-ip6tables`, `-arptables` = 0 in the switch
  namespace (they are per namespace), and `nf_call_*` 0 on each bridge: with
  `br_netfilter` loaded, bridged frames would otherwise cross the switch namespace's
  netfilter hooks and its conntrack, which has nothing to say about the lab's traffic
  and would track connections NLB's hosts must track themselves.

The router namespace has `net.ipv4.ip_forward` = 1 and no default route; every other
host's default route is the router. Nothing is linked to the machine's own namespace
and nothing is NATed, so nothing leaves the lab.

Making is idempotent: `up` makes what is missing and sets again what is there, so a
network half made by a crash is completed by the next `up` (a veth pair missing one
end is made anew). A link taken down on purpose (`partition`, `kill_host`) keeps a note
in its switch port's alias ("partitioned", "killed"), so `up` leaves it down and
`status` says why. `down` kills what runs in the namespaces and removes every namespace
of the prefix (bridges and veth pairs go with them).

Every host's namespace has `/etc/netns/<namespace>/resolv.conf` naming the lab's DNS
server (198.18.1.5), which `ip netns exec` (and so `casarray lab exec`) mounts on
/etc/resolv.conf: a command run in a host resolves the lab's names as its hosts do.

Links go down at the switch's port, as a pulled cable: the host sees NO-CARRIER and
keeps its addresses and routes, so bringing the port up again is all `heal` does.

An NLB cluster's IP on the hosts (`lab.hosts.nlb`) needs three things of the network:

- `publish_cluster`: in the multicast modes, a static neighbour entry (the cluster IP
  at the cluster MAC, `nud permanent`) on the router's link to the cluster's network,
  as Microsoft documents (routers refuse an ARP answer naming a multicast MAC). The
  other hosts of that network (clients, DC01, servers) learn the cluster MAC by ARP:
  one member's driver answers for the cluster IP (`balancer.nlb_host.arp`). Unicast
  needs no entry at all.
- `serve_cluster_ip`: in a member host, a `nat` table that DNATs what arrives for the
  cluster IP to the host's own address, where its Client Access server listens (a
  Windows host's services listen on every address of the adapter, the cluster IP
  among them; casarray's listen on the server's address). It runs after the NLB
  driver's filter (priority dstnat, -100, after the filter's -150), so only the
  connections of the host's own buckets are DNATed, and conntrack keeps the reply's
  source the cluster IP.
- `own_cluster_ip`: for a central balancer in DC01 (a cluster of the Kernel, Proxy or
  HAProxy plane), the cluster IP as a second address of DC01's `eth0`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from casarray.lab.hosts.plan import DNS_ADDRESS, ROUTER_KIND, Host, HostPlan, HostsError

log = logging.getLogger("casarray.lab.hosts")
T = TypeVar("T")

NETNS_DIR = Path("/run/netns")  # where `ip netns` keeps the namespaces' names
ETC_NETNS = Path("/etc/netns")  # `ip netns exec NS` bind-mounts /etc/netns/NS/* on /etc
CLONE_NEWNET = 0x40000000
IP_TIMEOUT = 15.0
KILL_TIMEOUT = 5.0
KILLED, PARTITIONED, UP = "killed", "partitioned", "up"  # a port's alias: why it is down
SWITCH_SYSCTLS = (
    "net.bridge.bridge-nf-call-iptables=0",
    "net.bridge.bridge-nf-call-ip6tables=0",
    "net.bridge.bridge-nf-call-arptables=0",
)
BRIDGE_SETTINGS = (
    ("mcast_snooping", "0"),
    ("stp_state", "0"),
    ("nf_call_iptables", "0"),
    ("nf_call_ip6tables", "0"),
    ("nf_call_arptables", "0"),
)
PORT_SETTINGS = (("learning", "off"), ("flood", "on"), ("mcast_flood", "on"))


class NetworkError(HostsError):
    """An `ip` command of the hosts lab failed (the message has its error)."""


def missing() -> str | None:
    """What this machine lacks to make the hosts lab (the `ip` command, root, network
    namespaces), or None."""
    if shutil.which("ip") is None:
        return "the `ip` command is not installed (Debian package iproute2)"
    if os.geteuid() != 0:
        return "the hosts lab makes network namespaces: run it as root"
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespaces (CONFIG_NET_NS)"
    return None


def require() -> None:
    what = missing()
    if what is not None:
        raise HostsError(f"Can't make the hosts lab: {what}.")


# the members' routing table and rule priority for a central Kernel plane's answers
REPLY_TABLE, REPLY_PRIORITY = "110", "1100"


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    """Run `ip [-n NAMESPACE] ARGS...`; its output. NetworkError when it fails (with
    `check`)."""
    argv = ["ip", *(("-n", namespace) if namespace else ()), *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(f"`{' '.join(argv)}` didn't finish in {IP_TIMEOUT:.0f} s") from exc
    if check and done.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")
    return done.stdout


def sysctl(namespace: str, *settings: str) -> None:
    """Set sysctls inside `namespace` (a key this kernel lacks is skipped: `-e`)."""
    argv = ["ip", "netns", "exec", namespace, "sysctl", "-q", "-e", "-w", *settings]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT)
    if done.returncode != 0:
        raise NetworkError(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


def write_resolv_conf(namespace: str) -> None:
    """/etc/netns/NAMESPACE/resolv.conf naming the lab's DNS server, so what runs in a
    host through `ip netns exec` (`casarray lab exec CLIENT-BJ -- curl
    https://bj-cas.lab.net/`) resolves the lab's names there; removed by `down`."""
    folder = ETC_NETNS / namespace
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text(
            f"# casarray hosts lab\nnameserver {DNS_ADDRESS}\nsearch lab.net\n"
        )
    except OSError as exc:
        log.warning("can't write %s: %s", folder / "resolv.conf", exc)


def namespaces(prefix: str) -> list[str]:
    """The named network namespaces starting with `prefix`."""
    try:
        return sorted(name for name in os.listdir(NETNS_DIR) if name.startswith(prefix))
    except FileNotFoundError:
        return []


def namespace_pids(namespace: str) -> list[int]:
    """The processes in `namespace` (`ip netns pids`)."""
    out = ip("netns", "pids", namespace, check=False)
    return [int(word) for word in out.split() if word.isdigit()]


def _libc_setns() -> Callable[[int, int], int]:
    setns: Callable[[int, int], int] = ctypes.CDLL(None, use_errno=True).setns
    return setns


def enter_preexec(namespace: str, then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A `preexec_fn` that moves the child into `namespace` (setns) before it runs, then
    calls `then` (a death signal, say): a Python child then serves there, its pid the
    one `Popen` knows."""
    path = str(NETNS_DIR / namespace)
    setns = _libc_setns()

    def preexec() -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns into {namespace}: {os.strerror(errno)}")
        finally:
            os.close(fd)
        if then is not None:
            then()

    return preexec


# -- NLB clusters on the hosts ------------------------------------------------------------

NAT_TABLE = "casarray_lab_cluster"


def _neighbour_links(
    plan: HostPlan, cluster_ip: str, members: Collection[str]
) -> list[tuple[Host, str]]:
    network = plan.network_of(cluster_ip).name
    wanted = {m.lower() for m in members}
    return [
        (host, link.name)
        for host in plan.hosts
        if host.kind == ROUTER_KIND and host.name.lower() not in wanted
        for link in host.links
        if link.network == network
    ]


class ClusterPlumbing:
    """What `HostNetwork` does for NLB clusters (a mixin: see the module docstring)."""

    plan: HostPlan

    def publish_cluster(self, cluster_ip: str, mac: str, members: Collection[str]) -> None:
        """The cluster IP at `mac` on the router's link to its network (a static
        entry; none left elsewhere, and none at all for a Unicast MAC, which the
        router learns by ARP)."""
        self.unpublish_cluster(cluster_ip)
        if not int(mac.split(":")[0], 16) & 1:  # a unicast MAC: ARP is enough
            return
        for host, device in _neighbour_links(self.plan, cluster_ip, members):
            if (NETNS_DIR / host.namespace).exists():
                ip(
                    "neigh",
                    *("replace", cluster_ip, "lladdr", mac, "dev", device, "nud", "permanent"),
                    namespace=host.namespace,
                )

    def unpublish_cluster(self, cluster_ip: str, hosts: Collection[str] | None = None) -> None:
        """No static entry for the cluster IP left on the hosts named (lower-case), or
        on every host."""
        for host in self.plan.hosts:
            if hosts is not None and host.name.lower() not in hosts:
                continue
            if (NETNS_DIR / host.namespace).exists():
                for link in host.links:
                    ip(
                        "neigh",
                        "del",
                        cluster_ip,
                        "dev",
                        link.name,
                        namespace=host.namespace,
                        check=False,
                    )

    def serve_cluster_ip(self, name: str, cluster_ip: str) -> None:
        """In member host `name`: what arrives for `cluster_ip` goes to the host's own
        address (one nat table, made anew)."""
        host = self.plan.host(name)
        script = (
            f"table ip {NAT_TABLE} {{}}\ndelete table ip {NAT_TABLE}\n"
            f"table ip {NAT_TABLE} {{\n"
            "\tchain prerouting {\n"
            "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
            f"\t\tip daddr {cluster_ip} dnat to {host.address}\n"
            "\t}\n}\n"
        )
        nft(host.namespace, script)

    def stop_serving_cluster_ip(self, name: str) -> None:
        host = self.plan.host(name)
        if (NETNS_DIR / host.namespace).exists():
            nft(host.namespace, f"table ip {NAT_TABLE} {{}}\ndelete table ip {NAT_TABLE}\n")

    def own_cluster_ip(self, name: str, cluster_ip: str, prefixlen: int = 32) -> None:
        """The cluster IP as an address of host `name`'s first link (a central
        balancer's host)."""
        host = self.plan.host(name)
        ip(
            "addr",
            "replace",
            f"{cluster_ip}/{prefixlen}",
            "dev",
            host.links[0].name,
            namespace=host.namespace,
        )

    def route_replies_through(
        self, balancer: str, members: Collection[str], ports: Collection[tuple[int, int]]
    ) -> None:
        """A central Kernel plane in host `balancer` DNATs the cluster IP to the members
        and NLB's model keeps the client's address (no source NAT), so the members'
        answers from the cluster's ports must come back through it to be un-DNATed:
        each member sends them by a routing table of its own whose default route is
        the balancer (policy rules by source address and TCP source port), and the
        balancer forwards them (with no ICMP redirects, which would send the members
        around it)."""
        gateway = self.plan.host(balancer)
        sysctl(
            gateway.namespace,
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.send_redirects=0",
            *(f"net.ipv4.conf.{link.name}.send_redirects=0" for link in gateway.links),
        )
        for name in members:
            host = self.plan.host(name)
            if not (NETNS_DIR / host.namespace).exists():
                continue
            self._clear_reply_routes(host)
            ip(
                "route",
                "replace",
                "default",
                "via",
                gateway.address,
                "table",
                REPLY_TABLE,
                namespace=host.namespace,
            )
            for start, end in ports:
                ip(
                    "rule",
                    "add",
                    "from",
                    host.address,
                    "ipproto",
                    "tcp",
                    "sport",
                    f"{start}-{end}",
                    "lookup",
                    REPLY_TABLE,
                    "priority",
                    REPLY_PRIORITY,
                    namespace=host.namespace,
                )

    def stop_routing_replies(self, members: Collection[str]) -> None:
        for name in members:
            host = self.plan.host(name)
            if (NETNS_DIR / host.namespace).exists():
                self._clear_reply_routes(host)

    def _clear_reply_routes(self, host: Host) -> None:
        for _ in range(256):  # one rule per port range; bounded, should `del` fail
            if "lookup" not in ip(
                "rule", "show", "priority", REPLY_PRIORITY, namespace=host.namespace
            ):
                break
            ip("rule", "del", "priority", REPLY_PRIORITY, namespace=host.namespace, check=False)
        ip("route", "flush", "table", REPLY_TABLE, namespace=host.namespace, check=False)

    def disown_cluster_ip(self, name: str, cluster_ip: str, prefixlen: int = 32) -> None:
        host = self.plan.host(name)
        if (NETNS_DIR / host.namespace).exists():
            ip(
                "addr",
                "del",
                f"{cluster_ip}/{prefixlen}",
                "dev",
                host.links[0].name,
                namespace=host.namespace,
                check=False,
            )


def nft(namespace: str, script: str) -> None:
    """Run an nftables script inside `namespace` (`ip netns exec NS nft -f -`)."""
    if shutil.which("nft") is None:
        raise NetworkError("nft is not installed (Debian package nftables)")
    argv = ["ip", "netns", "exec", namespace, "nft", "-f", "-"]
    done = subprocess.run(argv, input=script, capture_output=True, text=True, timeout=IP_TIMEOUT)
    if done.returncode != 0:
        raise NetworkError(f"nft in {namespace} failed: {done.stderr.strip()}")


def enter(namespace: str) -> int:
    """Move the calling thread into `namespace` (the threads and processes it starts
    from then on are there too: the whole process, when it has no other thread yet); a
    descriptor of the namespace it was in, for `leave`."""
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        enter_preexec(namespace)()
    except OSError as exc:
        os.close(previous)
        raise NetworkError(str(exc)) from exc
    return previous


def leave(previous: int) -> None:
    """Back to the namespace `enter` left (and close its descriptor)."""
    try:
        if _libc_setns()(previous, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise NetworkError(f"Can't go back to the namespace: {os.strerror(errno)}")
    finally:
        os.close(previous)


@dataclass(frozen=True)
class HostState:
    """A host as the kernel has it now."""

    name: str
    kind: str
    namespace: str
    addresses: tuple[str, ...]
    exists: bool  # its namespace is there
    link: str  # up, down, or absent (no port on the switch)
    reason: str  # why a link is down: killed, partitioned, or ""
    processes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "namespace": self.namespace,
            "addresses": list(self.addresses),
            "exists": self.exists,
            "link": self.link,
            "reason": self.reason,
            "processes": self.processes,
        }


class HostNetwork(ClusterPlumbing):
    """The hosts lab's network, as `plan` lays it out (see the module docstring)."""

    def __init__(self, plan: HostPlan) -> None:
        self.plan = plan

    # -- making and removing ----------------------------------------------------------

    def up(self) -> None:
        """Make whatever of the plan is missing, and set again what is there."""
        require()
        started = time.monotonic()
        for namespace in self.plan.namespaces:
            self._namespace(namespace)
        self._switch()
        for host in self.plan.hosts:
            self.add_host(host)
        log.info(
            "hosts network %s* up: %d hosts in %.1f s",
            self.plan.prefix,
            len(self.plan.hosts),
            time.monotonic() - started,
        )

    def exists(self) -> bool:
        return (NETNS_DIR / self.plan.switch).exists()

    def _namespace(self, namespace: str) -> None:
        if not (NETNS_DIR / namespace).exists():
            done = subprocess.run(
                ["ip", "netns", "add", namespace],
                capture_output=True,
                text=True,
                timeout=IP_TIMEOUT,
            )
            if done.returncode != 0 and not (NETNS_DIR / namespace).exists():
                raise NetworkError(f"`ip netns add {namespace}` failed: {done.stderr.strip()}")
        ip("link", "set", "lo", "up", namespace=namespace)

    def _switch(self) -> None:
        switch = self.plan.switch
        sysctl(switch, *SWITCH_SYSCTLS)
        present = self._links(switch)
        for network in self.plan.networks:
            if network.bridge not in present:
                ip("link", "add", network.bridge, "type", "bridge", namespace=switch)
            settings = [word for pair in BRIDGE_SETTINGS for word in pair]
            ip("link", "set", network.bridge, "type", "bridge", *settings, namespace=switch)
            ip("link", "set", network.bridge, "up", namespace=switch)

    def add_host(self, host: Host) -> None:
        """Make `host`'s namespace (if needed) and links; a link half made is made anew;
        a port down on purpose stays down."""
        switch = self.plan.switch
        self._namespace(host.namespace)
        write_resolv_conf(host.namespace)
        ports = self._links(switch)
        inside = self._links(host.namespace)
        for link in host.links:
            bridge = self.plan.network(link.network).bridge
            made = False
            if link.port not in ports or link.name not in inside:
                if link.port in ports:
                    ip("link", "del", link.port, namespace=switch)
                if link.name in inside:
                    ip("link", "del", link.name, namespace=host.namespace)
                ip(
                    "link",
                    *("add", link.port, "type", "veth"),
                    *("peer", "name", link.name, "netns", host.namespace),
                    namespace=switch,
                )
                made = True
            ip("link", "set", link.port, "master", bridge, namespace=switch)
            settings = [word for pair in PORT_SETTINGS for word in pair]
            ip("link", "set", link.port, "type", "bridge_slave", *settings, namespace=switch)
            if made or ports.get(link.port, "") not in (KILLED, PARTITIONED):
                ip("link", "set", link.port, "alias", UP, "up", namespace=switch)
            prefixlen = self.plan.network(link.network).prefixlen
            ip(
                "addr",
                *("replace", f"{link.address}/{prefixlen}", "dev", link.name),
                namespace=host.namespace,
            )
            ip("link", "set", link.name, "up", namespace=host.namespace)
        if host.kind == ROUTER_KIND:
            sysctl(host.namespace, "net.ipv4.ip_forward=1")
        else:
            gateway = self.plan.network(host.links[0].network).router
            ip(
                "route",
                *("replace", "default", "via", gateway, "dev", host.links[0].name),
                namespace=host.namespace,
            )

    def down(self) -> list[str]:
        """Kill what runs in the prefix's namespaces and remove them all (those of hosts
        no longer planned too); the namespaces removed."""
        require()
        found = namespaces(self.plan.prefix)
        switch = [n for n in found if n == self.plan.switch]
        for namespace in [n for n in found if n != self.plan.switch] + switch:
            kill_all(namespace)
            ip("netns", "del", namespace, check=False)
            shutil.rmtree(ETC_NETNS / namespace, ignore_errors=True)
        with contextlib.suppress(OSError):  # those of namespaces removed by other means
            for folder in ETC_NETNS.glob(f"{self.plan.prefix}*"):
                shutil.rmtree(folder, ignore_errors=True)
        left = [n for n in namespaces(self.plan.prefix) if n in found]
        if left:
            raise NetworkError(f"Can't remove the namespaces {', '.join(left)}.")
        return found

    # -- a host -----------------------------------------------------------------------

    def host(self, name: str) -> Host:
        return self.plan.host(name)

    def exec(
        self, name: str, argv: Sequence[str], **options: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run `argv` inside host `name` (`ip netns exec`) and wait for it; `options`
        go to `subprocess.run`."""
        host = self._present(name)
        return subprocess.run(["ip", "netns", "exec", host.namespace, *argv], **options)

    def exec_argv(self, name: str, argv: Sequence[str]) -> list[str]:
        """The command line that runs `argv` inside host `name`."""
        return ["ip", "netns", "exec", self._present(name).namespace, *argv]

    def preexec(self, name: str, then: Callable[[], None] | None = None) -> Callable[[], None]:
        """A `preexec_fn` that runs a child inside host `name` (see `enter_preexec`)."""
        return enter_preexec(self._present(name).namespace, then)

    def pids(self, name: str) -> list[int]:
        return namespace_pids(self._present(name).namespace)

    def kill_host(self, name: str) -> list[int]:
        """Take the host's links down and kill every process in it (SIGKILL); their
        pids."""
        host = self._present(name)
        self._set_links(host, KILLED)
        return kill_all(host.namespace)

    def partition(self, name: str) -> None:
        """Take the host's links down; what runs in it runs on."""
        self._set_links(self._present(name), PARTITIONED)

    def heal(self, name: str) -> None:
        """Bring the host's links up again (after `partition` or `kill_host`)."""
        self._set_links(self._present(name), UP)

    start_host = heal  # the processes are the supervisor's to start again

    def _set_links(self, host: Host, reason: str) -> None:
        state = "up" if reason == UP else "down"
        for link in host.links:
            ip("link", "set", link.port, "alias", reason, state, namespace=self.plan.switch)

    def _present(self, name: str) -> Host:
        host = self.plan.host(name)
        if not (NETNS_DIR / host.namespace).exists():
            raise HostsError(
                f"Host {host.name} has no namespace ({host.namespace}): is the hosts lab "
                "up (`casarray lab up --hosts`)?"
            )
        return host

    # -- what the kernel has ----------------------------------------------------------

    def _links(self, namespace: str) -> dict[str, str]:
        """The links in `namespace`: name -> alias."""
        out = ip("-j", "link", "show", namespace=namespace, check=False)
        try:
            links = json.loads(out) if out.strip() else []
        except ValueError:
            return {}
        return {str(link["ifname"]): str(link.get("ifalias", "")) for link in links}

    def state(self) -> list[HostState]:
        """Every planned host: its namespace, its link and why it is down, how many
        processes run in it."""
        present = set(namespaces(self.plan.prefix))
        ports: dict[str, dict[str, Any]] = {}
        if self.plan.switch in present:
            out = ip("-j", "link", "show", namespace=self.plan.switch, check=False)
            with contextlib.suppress(ValueError):
                ports = {str(p["ifname"]): p for p in json.loads(out or "[]")}
        states = []
        for host in self.plan.hosts:
            exists = host.namespace in present
            found = [ports.get(link.port) for link in host.links]
            if not exists or any(p is None for p in found):
                link, reason = "absent", ""
            else:
                up = all("UP" in p.get("flags", ()) for p in found if p is not None)
                link = "up" if up else "down"
                reasons = {str(p.get("ifalias", "")) for p in found if p is not None}
                reason = "" if up else next(iter(reasons & {KILLED, PARTITIONED}), "")
            count = len(namespace_pids(host.namespace)) if exists else 0
            states.append(
                HostState(
                    host.name,
                    host.kind,
                    host.namespace,
                    tuple(link.address for link in host.links),
                    exists,
                    link,
                    reason,
                    count,
                )
            )
        return states


def kill_all(namespace: str) -> list[int]:
    """SIGKILL every process in `namespace` until none is left (or KILL_TIMEOUT); the
    pids killed."""
    killed: list[int] = []
    deadline = time.monotonic() + KILL_TIMEOUT
    while pids := [p for p in namespace_pids(namespace) if p != os.getpid()]:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if pid not in killed:
                killed.append(pid)
        if time.monotonic() > deadline:
            raise NetworkError(f"Processes {pids} in {namespace} outlive SIGKILL.")
        time.sleep(0.02)
    return killed


def call_in(namespace: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`function(*args, **kwargs)` in a new thread inside `namespace` (setns affects only
    the calling thread; threads it starts are in the namespace too): what it returns or
    raises. The caller's thread stays where it is."""
    outcome: dict[str, Any] = {}
    setns = _libc_setns()

    def run() -> None:
        try:
            fd = os.open(NETNS_DIR / namespace, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise NetworkError(f"Can't enter {namespace}: {os.strerror(errno)}")
            finally:
                os.close(fd)
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"in-{namespace}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return cast(T, outcome["value"])
