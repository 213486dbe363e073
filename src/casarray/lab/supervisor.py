"""The lab supervisor: every role of the organization as its own process.

The table follows the directory (`Directory.watch`): one process per role, made from
what the directory holds now, so a server installed or an NLB cluster created gets its
process within a second, and one removed is stopped.

- `DNS`: `casarray dns run`, ready when its status file (`run/dns.json`) names its pid;
- each Client Access server, `CAS01`: `casarray server run CAS01 --processes 1` (or
  the number $CASARRAY_LAB_CAS_PROCESSES says: a master and its workers), ready with
  `run/cas-cas01.json`;
- each Mailbox server, `MBX01`: `casarray mailbox run MBX01`, ready with
  `run/mailbox-mbx01.json`;
- each NLB cluster, `bj-cas.lab.net`: `casarray balancer run bj-cas.lab.net`, ready
  with `run/balancer-bj-cas.lab.net.json`;
- in a lab on several hosts, a cluster of the Hosts or Auto data plane has no central
  balancer: each of its nodes runs its own NLB driver instead, `CAS01-nlb`: `python -m
  casarray.balancer.nlb_host nlb-hosts/<cluster>-<server>.json` (`lab.hosts.nlb`
  writes the config from the directory), ready with
  `run/nlbhost-bj-cas.lab.net-cas01.json`. A change of the node's admin state, weights,
  heartbeats or the cluster's port rules only rewrites the file (the driver takes it
  live); a change of what the host is (cluster IP, mode, HostID) restarts the driver,
  once the old one has left the cluster (its exit removes the cluster IP and filter
  the new one sets up);
- in a lab on several hosts, a cluster of the HAProxy data plane runs on the two
  balancer hosts of its network (`LB-BJ1`, `LB-BJ2`), `bj-cas.lab.net-vrrp0` and
  `-vrrp1`: `casarray balancer run bj-cas.lab.net --engine HAProxy --vrrp-rank N ...`,
  ready with `run/balancer-bj-cas.lab.net-vrrp<N>.json` (`pair_roles`).

A server with both roles runs two processes: `NAME` (Client Access) and `NAME-store`.
Every process gets the lab's port offset (lab.json) and its addresses from the
directory, writes its output to `$CASARRAY_HOME/logs/<NAME>.log`, is ready once its
status file names its pid, runs in a process group of its own (a Ctrl-C on the
terminal reaches the supervisor only, which stops the processes in order) and gets
SIGTERM when the supervisor dies, even by kill -9 (PR_SET_PDEATHSIG).

States: Starting (until ready), Running, Restarting (it exited: started again after
`workers.Backoff`'s delay, 0.5 s doubling up to 30 s while it keeps dying, or at once
when the directory changes meanwhile; the lab log and the process's own log say so),
Killed (`casarray lab kill NAME`: kill -9, and not started again until `casarray lab
start NAME`), Stopping.

A clean stop (SIGTERM, SIGINT, `lab down`) stops the balancers first, then the Client
Access servers and the DNS server, and the Mailbox servers last, once no Client Access
server uses their databases (SIGTERM, SIGKILL after STOP_TIMEOUT), then removes what
killed processes left: their status files, and the nftables tables of the clusters.

A lab on several hosts (lab.json's `hosts`: `casarray lab up --hosts`) runs each
process inside its server's network namespace (`lab.hosts`): a server's roles and its
NLB driver in its own host, DNS and the central balancers in DC01 (which then holds
the cluster IP); a server installed later gets its host before its process starts.
For a cluster on the hosts the supervisor also sets up the network around it
(`network.ClusterPlumbing`): the multicast cluster MAC as a static neighbour entry on
the router, and in each member a DNAT of the cluster IP to the host's own address,
where its Client Access server listens.
`kill_host` (`casarray lab kill-host NAME`) kills a host's processes and takes its link
down, and they stay Killed until `start_host`; `partition` and `heal` only cut and
restore its link.

What the supervisor knows (its pid, every process's state, the last events) is in its
status file, `$CASARRAY_HOME/run/lab-supervisor.json`, while it runs;
`casarray.lab.control_socket` serves the commands on `run/lab.sock`. Its life cycle is
`process.ServiceProcess`'s (SIGHUP, a closed terminal, stops it too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.lab import claim, control_socket
from casarray.lab.control_socket import SupervisorError
from casarray.process import status
from casarray.process.errors import StartupError
from casarray.process.lifecycle import Job, ServiceProcess
from casarray.process.parent import death_signal_preexec
from casarray.process.pool import Backoff
from casarray.process.status import StatusFile

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.directory.nlb.objects import NlbCluster
    from casarray.lab.config import LabConfig
    from casarray.lab.hosts.network import HostNetwork
    from casarray.lab.hosts.postgres import LabPostgres

log = logging.getLogger("casarray.lab")

DNS, CLIENT_ACCESS, MAILBOX, NLB = "DNS", "ClientAccess", "Mailbox", "NLB"
HUB_TRANSPORT = "HubTransport"
NLB_HOST = "NlbHost"  # one host's NLB driver (a cluster on the hosts of a hosts lab)
NLB_PAIR = "NlbPair"  # one balancer host of an HAProxy + keepalived pair (a hosts lab)
# who is stopped first (the Hub Transport before the Mailbox role: it writes to its databases)
STOP_ORDER = ((NLB, NLB_HOST, NLB_PAIR), (CLIENT_ACCESS, DNS, HUB_TRANSPORT), (MAILBOX,))
NLB_HOSTS_DIR = "nlb-hosts"  # $CASARRAY_HOME/nlb-hosts/<cluster>-<server>.json
STARTING, RUNNING, RESTARTING, KILLED, STOPPING = (
    "Starting",
    "Running",
    "Restarting",
    "Killed",
    "Stopping",
)
STOP_TIMEOUT = 15.0
TICK = 0.05
CAS_PROCESSES_VARIABLE = "CASARRAY_LAB_CAS_PROCESSES"
FOLLOW_INTERVAL = 0.2
EVENTS = 50  # events kept in the state file
LAB_LOG = "lab"  # logs/lab.log: the supervisor's own


@dataclass(frozen=True)
class Role:
    """One process of the lab, as the directory asks for it."""

    name: str  # how the commands name it: DNS, CAS01, MBX01, bj-cas.lab.net
    kind: str  # DNS, ClientAccess, Mailbox, NLB
    target: str  # the server or cluster it runs ("" for DNS)
    command: tuple[str, ...]
    status_file: Path  # names the process's pid once it serves
    address: str = ""  # NLB, NlbHost: the cluster IP
    # NlbHost: the driver's config file, what it says, and what of it needs a restart
    config_path: Path | None = None
    config: str = field(default="", compare=False)
    restart_key: str = ""
    # NLB in a hosts lab on the central Kernel plane: the members whose answers go back
    # through the balancer's host, from these TCP port ranges
    reply_members: tuple[str, ...] = ()
    reply_ports: tuple[tuple[int, int], ...] = ()


def cas_processes() -> str:
    """How many processes each Client Access server runs: 1 (no master) unless
    $CASARRAY_LAB_CAS_PROCESSES says more (a master and its workers, as `casarray server
    run --processes N`; the soak kills either)."""
    value = os.environ.get(CAS_PROCESSES_VARIABLE, "").strip()
    return value if value.isdigit() and int(value) >= 1 else "1"


def state_path(home: Path) -> Path:
    """The supervisor's status file: its pid, every process's state, the last events."""
    return status.status_file(status.LAB, "supervisor", home).path


def log_path(home: Path, name: str) -> Path:
    return home / "logs" / f"{name}.log"


def roles_of(directory: Directory, config: LabConfig) -> list[Role]:
    """The processes the lab runs for what the directory holds now. Blocking."""
    from casarray.access.cas_process import status_file as server_status
    from casarray.balancer.balancer_process import status_file as balancer_status
    from casarray.dns.dns_process import status_file as dns_status
    from casarray.mailstore.mailbox_process import status_file as mailbox_status
    from casarray.transport.transport_process import status_file as transport_status

    home, offset = config.home, str(config.port_offset)
    base: tuple[str, ...] = (sys.executable, "-m", "casarray")
    url = ("--directory", config.process_directory)
    command: tuple[str, ...]
    roles = [
        Role(
            DNS,
            DNS,
            "",
            (*base, "dns", "run", *url, "--port-offset", offset),
            dns_status(home).path,
        )
    ]
    for server in directory.servers.get():
        if server.is_client_access_server:
            command = (*base, "server", "run", server.name, *url, "--port-offset", offset)
            command += ("--processes", cas_processes())
            roles.append(
                Role(
                    server.name,
                    CLIENT_ACCESS,
                    server.name,
                    command,
                    server_status(server.name, home).path,
                )
            )
        if server.is_mailbox_server:
            name = f"{server.name}-store" if server.is_client_access_server else server.name
            roles.append(
                Role(
                    name,
                    MAILBOX,
                    server.name,
                    (*base, "mailbox", "run", server.name, *url),
                    mailbox_status(server.name, home).path,
                )
            )
        if server.is_hub_transport_server:
            roles.append(
                Role(
                    f"{server.name}-transport",
                    HUB_TRANSPORT,
                    server.name,
                    (*base, "transport", "run", server.name, *url, "--port-offset", offset),
                    transport_status(server.name, home).path,
                )
            )
    for cluster in directory.nlb.clusters():
        if config.hosts:
            from casarray.lab.hosts.nlb import on_hosts

            if on_hosts(cluster.data_plane):
                roles += host_driver_roles(directory, config, cluster.guid)
                continue
            if cluster.data_plane.lower() == "haproxy":
                roles += pair_roles(cluster, config)
                continue
        command = (*base, "balancer", "run", cluster.name, *url)
        command += ("--listen-offset", offset, "--backend-offset", offset)
        members: tuple[str, ...] = ()
        ports: tuple[tuple[int, int], ...] = ()
        if config.hosts and cluster.data_plane == "Kernel":  # DNAT without source NAT
            members = tuple(cluster.nodes)
            ports = tuple(
                (r.start_port, r.end_port)
                for r in directory.nlb.port_rules(cluster.guid)
                if r.protocol != "Udp"
            )
        roles.append(
            Role(
                cluster.name,
                NLB,
                cluster.name,
                command,
                balancer_status(cluster.name, home).path,
                address=cluster.ip_address,
                reply_members=members,
                reply_ports=ports,
            )
        )
    return roles


def host_driver_roles(directory: Directory, config: LabConfig, cluster: str) -> list[Role]:
    """The NLB drivers of a cluster on the hosts, one per node (`lab.hosts.nlb`); none
    (and the reason in the lab log) when the cluster can't run there. Blocking."""
    from casarray.balancer.balancer_process import host_status_file
    from casarray.balancer.nlb_host.config import NlbConfigError
    from casarray.lab.hosts.nlb import host_configs, restart_key

    snapshot = directory.nlb.snapshot(cluster)
    files = {
        n.name: host_status_file(snapshot.name, n.name, config.home).path for n in snapshot.nodes
    }
    try:
        configs = host_configs(snapshot, files)
    except NlbConfigError as exc:
        log.error("%s can't run on its hosts: %s", snapshot.name, exc)
        return []
    roles = []
    for host in configs:
        path = config.home / NLB_HOSTS_DIR / f"{snapshot.name.lower()}-{host.name.lower()}.json"
        roles.append(
            Role(
                f"{host.name}-nlb",
                NLB_HOST,
                host.name,
                (sys.executable, "-m", "casarray.balancer.nlb_host", str(path)),
                files[host.name],
                address=host.cluster_ip,
                config_path=path,
                config=host.to_json(),
                restart_key=restart_key(host),
            )
        )
    return roles


def pair_roles(cluster: NlbCluster, config: LabConfig) -> list[Role]:
    """A cluster of the HAProxy plane in a hosts lab: one balancer process on each of
    its network's two balancer hosts (`plan.balancer_hosts`), HAProxy bound to the
    cluster IP and keepalived moving the address between them (`--vrrp-rank`), VRRP
    adverts at the cluster's HeartbeatPeriod."""
    from casarray.balancer.balancer_process import status_file as balancer_status
    from casarray.lab.hosts.plan import HostsError, balancer_hosts_of

    try:
        hosts = balancer_hosts_of(cluster.ip_address)
    except HostsError as exc:
        log.error("%s can't run on a balancer pair: %s", cluster.name, exc)
        return []
    offset = str(config.port_offset)
    advert = f"{max(cluster.heartbeat_period, 100) / 1000:g}"
    roles = []
    for rank, (host, address) in enumerate(hosts):
        peer = hosts[1 - rank][1]
        command: tuple[str, ...] = (sys.executable, "-m", "casarray", "balancer", "run")
        command += (cluster.name,)
        command += ("--directory", config.process_directory, "--engine", "HAProxy")
        command += ("--listen-offset", offset, "--backend-offset", offset)
        command += ("--vrrp-rank", str(rank), "--vrrp-peer", peer, "--vrrp-source", address)
        command += ("--vrrp-interface", "eth0", "--vrrp-advert", advert)
        roles.append(
            Role(
                f"{cluster.name}-vrrp{rank}",
                NLB_PAIR,
                host,
                command,
                balancer_status(cluster.name, config.home, rank).path,
                address=cluster.ip_address,
            )
        )
    return roles


def write_config(role: Role) -> None:
    """Write an NLB driver's config file (atomically: the driver re-reads it)."""
    assert role.config_path is not None
    role.config_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = role.config_path.with_name(f".{role.config_path.name}.{os.getpid()}.tmp")
    tmp.write_text(role.config + "\n")
    os.replace(tmp, role.config_path)


def exit_text(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"status {code} ({signal.Signals(-code).name})"
    return f"status {code}"


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Entry:
    """A role's process and what the supervisor knows of it."""

    role: Role
    log: Path
    state: str = STARTING
    process: subprocess.Popen[bytes] | None = None
    backoff: Backoff = field(default_factory=Backoff)
    started: float = 0.0  # monotonic, of the current process
    restart_at: float | None = None
    delay: float = 0.0  # the wait before the pending (or last) restart
    restarts: int = 0
    last_exit: int | None = None
    since: str = ""
    ready_after: float | None = None  # seconds from start to ready, the last time

    @property
    def pid(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def snapshot(self) -> dict[str, Any]:
        detail = ""
        if self.state == RESTARTING and self.restart_at is not None:
            detail = f"exited with {exit_text(self.last_exit)}; again in " + (
                f"{max(0.0, self.restart_at - time.monotonic()):.1f} s"
            )
        elif self.state == STARTING and self.restarts and self.last_exit is not None:
            detail = f"restart {self.restarts}; the last run exited with " + exit_text(
                self.last_exit
            )
        elif self.state == KILLED:
            detail = "killed by `casarray lab kill`; `casarray lab start` brings it back"
        return {
            "name": self.role.name,
            "kind": self.role.kind,
            "target": self.role.target,
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "since": self.since,
            "detail": detail,
            "log": str(self.log),
            "ready_after": self.ready_after,
        }


class LabSupervisor(ServiceProcess):
    """Runs the lab's processes until `stopping` is set (see the module docstring).
    `directory` is the lab's, opened by the caller, or by `start()` when None."""

    label = "lab"
    log = log

    def __init__(self, config: LabConfig, directory: Directory | None = None) -> None:
        super().__init__()
        self.config = config
        self._owns_directory = directory is None
        self._directory = directory
        self._control: asyncio.AbstractServer | None = None
        self._claim: StatusFile | None = None
        self.entries: dict[str, Entry] = {}  # by name, lower case
        self.retiring: list[Entry] = []  # left the directory: being stopped
        self.events: deque[dict[str, str]] = deque(maxlen=EVENTS)
        self.started_at = now_text()
        # the lab's processes get SIGTERM, not SIGKILL, when it dies: they clean up
        self._preexec = death_signal_preexec(signal.SIGTERM)
        self._dirty = True
        self._first = True  # the first reconcile starts everything without a word each
        self._env = {
            **os.environ,
            "CASARRAY_HOME": str(config.home),
            "PYTHONUNBUFFERED": "1",
        }
        self._env.pop("CASARRAY_DIRECTORY", None)  # each command says --directory
        self.hosts: HostNetwork | None = None  # a lab on several hosts: its network
        self._wanted: dict[str, Role] = {}  # the directory's roles, by name (lower case)
        self._restarting: set[str] = set()  # roles changed: stopped to be started anew
        # a hosts lab's clusters on the hosts: cluster IP -> (MAC, members, hosts) set up
        self._published: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {}

    # -- events ------------------------------------------------------------------------

    def event(self, text: str, *, entry: Entry | None = None, level: int = logging.INFO) -> None:
        """Say `text` in the lab log, in the process's own log, and in the state file."""
        log.log(level, "%s", text)
        self.events.append({"time": now_text(), "text": text})
        if entry is not None:
            stamp = datetime.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            with contextlib.suppress(OSError), entry.log.open("a") as file:
                file.write(f"{stamp} LAB {text}\n")
        self._dirty = True

    def _set_state(self, entry: Entry, state: str) -> None:
        entry.state = state
        entry.since = now_text()
        self._dirty = True

    # -- processes ---------------------------------------------------------------------

    def _spawn(self, entry: Entry) -> None:
        """Start the role's process (from the event loop's thread: PR_SET_PDEATHSIG
        follows the thread that forked)."""
        entry.log.parent.mkdir(parents=True, exist_ok=True)
        preexec = self._preexec
        if self.hosts is not None:
            host = self._ensure_host(entry.role)
            self._plumb(entry.role, host)
            preexec = self.hosts.preexec(host, then=preexec)
        elif entry.role.kind == NLB_HOST:
            write_config(entry.role)
        with entry.log.open("ab") as output:
            entry.process = subprocess.Popen(
                entry.role.command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self._env,
                process_group=0,
                preexec_fn=preexec,
            )
        entry.started = time.monotonic()
        entry.restart_at = None
        self._set_state(entry, STARTING)
        log.info("%s: started (pid %d)", entry.role.name, entry.process.pid)

    def _ready(self, entry: Entry) -> bool:
        said = StatusFile(entry.role.status_file).read_any()
        return entry.process is not None and said is not None and said["pid"] == entry.process.pid

    def _check(self, entry: Entry, now: float) -> None:
        process = entry.process
        if entry.state in (STARTING, RUNNING) and process is not None:
            code = process.poll()
            if code is not None:
                entry.last_exit = code
                delay = entry.delay = entry.backoff.next_delay(now - entry.started)
                entry.restart_at = now + delay
                self._set_state(entry, RESTARTING)
                self.event(
                    f"{entry.role.name} (pid {process.pid}) exited with {exit_text(code)}; "
                    f"starting it again in {delay:.1f} s",
                    entry=entry,
                    level=logging.WARNING,
                )
                return
            if entry.state == STARTING and self._ready(entry):
                entry.ready_after = round(now - entry.started, 2)
                self._set_state(entry, RUNNING)
                if entry.role.kind == DNS:
                    self._note_dns(entry)
                again = " again" if entry.restarts else ""
                self.event(
                    f"{entry.role.name} is up{again} (pid {process.pid}, "
                    f"ready in {entry.ready_after:.2f} s)",
                    entry=entry if entry.restarts else None,
                )
        elif entry.state == RESTARTING and entry.restart_at is not None and now >= entry.restart_at:
            entry.restarts += 1
            self._spawn(entry)
            self.event(
                f"{entry.role.name}: started again (pid {entry.pid}, restart {entry.restarts})",
                entry=entry,
            )

    def _note_dns(self, entry: Entry) -> None:
        """Keep lab.json's DNS address and port those the DNS server listens on (an
        administrator may move it: Set-DnsServerSetting -ListeningIPAddress)."""
        said = StatusFile(entry.role.status_file).read_any() or {}
        try:
            address, port = str(said["address"]), int(said["port"])
        except (KeyError, TypeError, ValueError):
            return
        if (address, port) != (self.config.dns_address, self.config.dns_port):
            self.config = self.config.with_dns(address, port)
            self.config.save()
            self.event(f"DNS listens on {address} port {port}: lab.json says so now")

    def reconcile(self, roles: list[Role]) -> None:
        """Start the processes of new roles; stop those whose role left the directory
        (or changed: it is started anew)."""
        wanted = {role.name.lower(): role for role in roles}
        self._wanted = wanted
        for key, entry in list(self.entries.items()):
            role = wanted.get(key)
            if role == entry.role:
                if role.config != entry.role.config:  # an NLB node's live config
                    self._reload(entry, role)
                continue
            del self.entries[key]
            if role is None:
                self.event(f"{entry.role.name} left the directory; stopping it")
            else:
                self.event(f"{entry.role.name} changed in the directory; restarting it")
            self.retiring.append(entry)
            self._terminate(entry)
            if role is not None:
                self._restarting.add(key)
        self._start_wanted()
        self._first = False
        if self.hosts is not None:
            self._publish_clusters(roles)

    def _start_wanted(self) -> None:
        """Start the wanted roles that have no process yet; an NLB driver only once
        its predecessor on the host has exited."""
        for key, role in self._wanted.items():
            if key in self.entries:
                continue
            if any(e.role.name.lower() == key for e in self.retiring):
                continue  # started by `_reap_retiring` once the old one is gone
            entry = Entry(role, log_path(self.config.home, role.name))
            self.entries[key] = entry
            if not self._first and role.name.lower() not in self._restarting:
                self.event(f"{role.name} joined the directory; starting it")
            self._restarting.discard(role.name.lower())
            self._spawn(entry)

    def _reload(self, entry: Entry, role: Role) -> None:
        """An NLB driver's new config of the same host (admin state, weights, rules,
        heartbeats): its file rewritten, which the driver takes live."""
        from casarray.balancer.nlb_host.config import NlbHostConfig

        write_config(role)
        entry.role = role
        state = NlbHostConfig.from_json(role.config).state.value
        self.event(f"{role.name}: config rewritten, taken live (admin state {state})", entry=entry)

    def _terminate(self, entry: Entry) -> None:
        entry.restart_at = None
        self._set_state(entry, STOPPING)
        if entry.process is not None and entry.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                entry.process.terminate()
        entry.started = time.monotonic()

    def _reap_retiring(self, now: float) -> None:
        for entry in list(self.retiring):
            process = entry.process
            if process is None or process.poll() is not None:
                self.retiring.remove(entry)
                self._remove_leftovers(entry)
                self._unplumb(entry.role)
                self._start_wanted()
            elif now - entry.started > STOP_TIMEOUT:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()

    def find(self, name: str) -> Entry:
        entry = self.entries.get(name.strip().lower())
        if entry is None:
            known = ", ".join(e.role.name for e in self.entries.values())
            raise SupervisorError(f"The lab has no process named '{name}' (it has {known}).")
        return entry

    def kill(self, name: str) -> str:
        """kill -9 a process, and don't start it again until `start`."""
        entry = self.find(name)
        if entry.state == KILLED:
            return f"{entry.role.name} is already killed."
        pid = entry.pid
        self._set_state(entry, KILLED)
        entry.restart_at = None
        if entry.process is not None and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                entry.process.wait(5)
            entry.last_exit = entry.process.returncode
        text = (
            f"{entry.role.name} killed (kill -9 of pid {pid}); not started again until "
            f"`casarray lab start {entry.role.name}`"
            if pid is not None
            else f"{entry.role.name} marked killed (it wasn't running); not started again "
            f"until `casarray lab start {entry.role.name}`"
        )
        self.event(text, entry=entry)
        return text

    def start_process(self, name: str) -> str:
        """Start a killed (or restarting) process now (`casarray lab start NAME`)."""
        entry = self.find(name)
        if entry.state in (STARTING, RUNNING):
            return f"{entry.role.name} is already {entry.state.lower()} (pid {entry.pid})."
        entry.backoff.reset()
        self._spawn(entry)
        text = f"{entry.role.name} started (pid {entry.pid})"
        self.event(text, entry=entry)
        return text

    # -- hosts (a lab on several hosts) -------------------------------------------------

    def host_of(self, role: Role) -> str:
        """The host a role's process runs in: its server's, DC01 for DNS and balancers."""
        from casarray.lab.hosts.plan import DC

        own = (CLIENT_ACCESS, MAILBOX, HUB_TRANSPORT, NLB_HOST, NLB_PAIR)
        return role.target if role.kind in own else DC

    def _plumb(self, role: Role, host: str) -> None:
        """Before a cluster's process starts in a hosts lab: an NLB driver's config
        written and its host DNATing the cluster IP to itself; a central balancer's
        host (DC01) holding the cluster IP."""
        from casarray.lab.hosts.plan import HostsError

        assert self.hosts is not None
        try:
            if role.kind == NLB_HOST:
                write_config(role)
                self.hosts.serve_cluster_ip(host, role.address)
            elif role.kind == NLB and role.address:
                self.hosts.own_cluster_ip(host, role.address)
                if role.reply_members:
                    self.hosts.route_replies_through(host, role.reply_members, role.reply_ports)
        except HostsError as exc:
            raise SupervisorError(f"{role.name}: {exc}") from exc

    def _unplumb(self, role: Role) -> None:
        """After a cluster's process left for good (its role is no longer wanted)."""
        from casarray.lab.hosts.plan import HostsError

        if self.hosts is None or role.name.lower() in self._wanted:
            return
        try:
            if role.kind == NLB_HOST:
                self.hosts.stop_serving_cluster_ip(role.target)
            elif role.kind == NLB and role.address:
                self.hosts.disown_cluster_ip(self.host_of(role), role.address)
                self.hosts.stop_routing_replies(role.reply_members)
        except HostsError as exc:
            log.error("%s: %s", role.name, exc)

    def _publish_clusters(self, roles: list[Role]) -> None:
        """The static neighbour entries of the clusters on the hosts (and none left of
        a cluster that went), redone when a cluster's IP, mode or members change or a
        host is added."""
        from casarray.balancer.nlb_host.config import NlbHostConfig
        from casarray.lab.hosts.nlb import mac_of
        from casarray.lab.hosts.plan import HostsError

        assert self.hosts is not None
        wanted: dict[str, tuple[str, frozenset[str]]] = {}
        for role in roles:
            if role.kind == NLB_HOST:
                mac = mac_of(NlbHostConfig.from_json(role.config))
                members = wanted.get(role.address, (mac, frozenset()))[1]
                wanted[role.address] = (mac, members | {role.target})
        hosts = tuple(h.name for h in self.hosts.plan.hosts)
        for address in list(self._published):
            if address not in wanted:
                with contextlib.suppress(HostsError):
                    self.hosts.unpublish_cluster(address)
                del self._published[address]
        for address, (mac, members) in wanted.items():
            key = (mac, members, hosts)
            if self._published.get(address) == key:
                continue
            try:
                self.hosts.publish_cluster(address, mac, members)
            except HostsError as exc:
                log.error("can't publish the cluster IP %s: %s", address, exc)
                continue
            self._published[address] = key
            self.event(f"cluster IP {address} at {mac} for the hosts of its network")

    def _ensure_host(self, role: Role) -> str:
        """The role's host, made first when its server was installed after `up` (or,
        for a balancer pair, when its cluster first needs it)."""
        from casarray.lab.hosts.plan import HostsError

        assert self.hosts is not None
        name = self.host_of(role)
        if self.hosts.plan.find(name) is None and role.kind == NLB_PAIR:
            try:
                network = self.hosts.plan.network_of(role.address).name
                plan = self.hosts.plan.with_balancers(network)
                made = [h for h in plan.hosts if self.hosts.plan.find(h.name) is None]
                self.hosts.plan = plan
                for host in made:
                    self.hosts.add_host(host)
            except HostsError as exc:
                raise SupervisorError(f"{role.name}: {exc}") from exc
            self.event(f"balancer hosts {', '.join(h.name for h in made)} made for {role.target}")
        elif self.hosts.plan.find(name) is None:
            server = self.directory.servers.one(name)
            try:
                plan = self.hosts.plan.with_server(server.name, server.site, server.ip_address)
                self.hosts.plan = plan
                self.hosts.add_host(plan.host(name))
            except HostsError as exc:
                raise SupervisorError(f"{role.name}: {exc}") from exc
            self.event(f"host {name} made for {role.name} ({server.ip_address})")
        return name

    def _postgres(self) -> LabPostgres:
        from casarray.lab.hosts.plan import DC, HostPlan
        from casarray.lab.hosts.postgres import LabPostgres

        plan = (
            self.hosts.plan if self.hosts is not None else HostPlan.build(prefix=self.config.hosts)
        )
        return LabPostgres(self.config.home, plan.host(DC).namespace)

    def _start_postgres(self) -> None:
        """The network's hosts (those of the lab as made: the directory, which says
        which others there are, is not reachable yet) and the PostgreSQL server in DC01,
        before anything else. Blocking."""
        from casarray.lab.hosts.network import HostNetwork
        from casarray.lab.hosts.plan import HostPlan, HostsError

        started = time.monotonic()
        try:
            HostNetwork(HostPlan.build(prefix=self.config.hosts)).up()
            made = self._postgres().start()
        except HostsError as exc:
            raise StartupError(str(exc)) from exc
        if made:
            self.event(f"PostgreSQL started in DC01 in {time.monotonic() - started:.1f} s")

    def _stop_postgres(self) -> None:
        from casarray.lab.hosts.plan import HostsError

        try:
            if self._postgres().stop():
                self.event("PostgreSQL stopped")
        except HostsError as exc:
            log.error("%s", exc)

    def _network(self) -> HostNetwork:
        if self.hosts is None:
            raise SupervisorError(
                "This lab runs on one machine's loopback addresses: it has no hosts "
                "(`casarray lab up --hosts` makes a lab on several hosts)."
            )
        return self.hosts

    def _on_host(self, name: str) -> list[Entry]:
        return [e for e in self.entries.values() if self.host_of(e.role).lower() == name.lower()]

    def host_action(self, command: str, name: str) -> str:
        """kill-host, start-host, partition or heal host `name`."""
        from casarray.lab.hosts.plan import DC, HostsError

        network = self._network()
        try:
            host = network.host(name).name
            if command == "kill-host":
                return self._kill_host(network, host)
            if command == "start-host":
                network.start_host(host)
                if host == DC and self.config.postgres:
                    self._postgres().start()  # DC01's server first: the rest need it
                started = []
                for entry in self._on_host(host):
                    if entry.state == KILLED:
                        entry.backoff.reset()
                        self._spawn(entry)
                        started.append(entry.role.name)
                text = f"{host} started: its link is up" + (
                    f", and {', '.join(started)} started again" if started else ""
                )
            elif command == "partition":
                network.partition(host)
                text = f"{host} partitioned: its link is down; its processes run on"
            elif command == "heal":
                network.heal(host)
                text = f"{host} healed: its link is up"
            else:
                raise SupervisorError(f"Unknown host command '{command}'.")
        except HostsError as exc:
            raise SupervisorError(str(exc)) from exc
        self.event(text)
        return text

    def _kill_host(self, network: HostNetwork, host: str) -> str:
        entries = self._on_host(host)
        for entry in entries:
            entry.restart_at = None
            self._set_state(entry, KILLED)
        pids = network.kill_host(host)
        for entry in entries:
            if entry.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    entry.process.wait(5)
                entry.last_exit = entry.process.returncode
        names = ", ".join(e.role.name for e in entries) or "no lab process"
        text = (
            f"{host} killed: its link is down and {len(pids)} processes got SIGKILL "
            f"({names}); `casarray lab start-host {host}` brings it back"
        )
        self.event(text)
        return text

    # -- the state file ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "home": str(self.config.home),
            "started": self.started_at,
            "stopping": self.stopping.is_set(),
            "processes": [entry.snapshot() for entry in self.entries.values()],
            "events": list(self.events),
            "updated": time.time(),
            "hosts": self.config.hosts,
        }

    def write_state(self) -> None:
        StatusFile(state_path(self.config.home)).write(self.snapshot())
        self._dirty = False

    # -- running -----------------------------------------------------------------------

    async def follow(self) -> None:
        """Keep the process table in step with the directory; a process waiting to be
        started again is started at once after a change (the change may be its fix)."""
        first = True
        while not self.stopping.is_set():
            try:
                async for _version in self.directory.watch(interval=FOLLOW_INTERVAL):
                    if self.stopping.is_set():
                        return
                    try:
                        roles = await asyncio.to_thread(roles_of, self.directory, self.config)
                    except Exception as exc:  # a database outage: keep what runs
                        log.error("can't read the directory: %s", exc)
                        continue
                    if self.stopping.is_set():
                        return
                    self.reconcile(roles)
                    if not first:
                        self.retry_now()
                    first = False
                return
            except Exception as exc:  # the directory's server went (DC01 killed): keep
                # what runs, and follow again once it is back
                log.error("can't follow the directory: %s; trying again in 1 s", exc)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self.stopping.wait()

    def retry_now(self) -> None:
        now = time.monotonic()
        for entry in self.entries.values():
            waiting = entry.restart_at
            if entry.state == RESTARTING and waiting is not None and waiting > now:
                entry.restart_at = now
                log.info("%s: the directory changed; starting it now", entry.role.name)

    async def tick(self) -> None:
        """Watch the processes: ready, exited, due for a restart."""
        last_write = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            for entry in list(self.entries.values()):
                self._check(entry, now)
            self._reap_retiring(now)
            if self._dirty or now - last_write > 1.0:  # countdowns move
                self.write_state()
                last_write = now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self.stopping.wait()

    def all_running(self) -> bool:
        return bool(self.entries) and all(e.state == RUNNING for e in self.entries.values())

    @property
    def directory(self) -> Directory:
        assert self._directory is not None, "the supervisor has not started"
        return self._directory

    async def start(self) -> None:
        """Open the directory, start every process, and answer on the control socket."""
        try:
            claim.check_free(self.config.home, dns_ports=(), block=self.config.hosts)
        except claim.AddressesTaken as exc:
            raise StartupError(str(exc)) from None
        self._claim = claim.claim(self.config.home, self.config.hosts)
        if self.config.postgres:
            await asyncio.to_thread(self._start_postgres)
        if self._directory is None:
            from casarray.directory import Directory

            self._directory = await asyncio.to_thread(Directory.open, self.config.directory)
        if self.config.hosts:
            self.hosts = await asyncio.to_thread(hosts_network, self.directory, self.config.hosts)
        roles = await asyncio.to_thread(roles_of, self.directory, self.config)
        self.event(f"lab starting in {self.config.home} (supervisor pid {os.getpid()})")
        self.reconcile(roles)
        self.write_state()
        self._control = await control_socket.serve(self, self.config.home)

    def jobs(self) -> list[Job]:
        return [self.follow(), self.tick()]

    def signal_handlers(self) -> dict[int, Callable[[], None]]:
        return {signal.SIGHUP: self.stopping.set}

    async def stop(self) -> None:
        """Stop every process, then the control socket; remove the status file."""
        self.stopping.set()
        if self._directory is not None:
            await self.stop_all()
        if self._control is not None:
            control_socket.close(self._control, self.config.home)
        with contextlib.suppress(FileNotFoundError):
            state_path(self.config.home).unlink()
        if self._claim is not None:
            self._claim.remove()
        if self._directory is not None and self._owns_directory:
            self._directory.close()
        if self.config.postgres:  # last: every process of the lab used it
            await asyncio.to_thread(self._stop_postgres)

    async def stop_all(self) -> None:
        """Stop the processes in STOP_ORDER, then clear what killed ones left."""
        self.event("lab stopping")
        self.write_state()
        started = time.monotonic()
        for kinds in STOP_ORDER:
            group = [e for e in self.entries.values() if e.role.kind in kinds]
            group += [e for e in self.retiring if e.role.kind in kinds]
            for entry in group:
                self._terminate(entry)
            await asyncio.gather(*(self._wait_stopped(entry) for entry in group))
        self.retiring.clear()
        for entry in self.entries.values():
            self._remove_leftovers(entry)
        await asyncio.to_thread(remove_nft_tables, self.directory)
        self.event(f"lab stopped in {time.monotonic() - started:.1f} s")

    async def _wait_stopped(self, entry: Entry) -> None:
        process = entry.process
        if process is None:
            return
        try:
            await asyncio.to_thread(process.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.event(f"{entry.role.name} didn't stop in {STOP_TIMEOUT:.0f} s; killing it")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.to_thread(process.wait)
        entry.last_exit = process.returncode

    def _remove_leftovers(self, entry: Entry) -> None:
        """The status file of a process that can't remove it any more (killed)."""
        StatusFile(entry.role.status_file).remove_if_dead()


def remove_nft_tables(directory: Directory) -> list[str]:
    """Delete the nftables table of every NLB cluster of the directory that has one
    (the Kernel data plane of a balancer that was killed leaves it); the names of the
    clusters whose table went. Nothing without root or nft."""
    import shutil

    from casarray.balancer import conntrack, nft
    from casarray.balancer.directory_view import cluster_view
    from casarray.config import may_admin_network

    if not may_admin_network() or shutil.which("nft") is None:
        return []
    removed = []
    try:
        clusters = directory.nlb.clusters()
    except Exception as exc:
        log.error("can't read the NLB clusters: %s", exc)
        return []
    for cluster in clusters:
        try:
            view = cluster_view(directory, cluster.guid)
            if nft.table_exists(view):
                nft.remove(view)
                conntrack.forget_cluster(view)
                removed.append(cluster.name)
        except Exception as exc:
            log.error("%s: can't remove its nftables table: %s", cluster.name, exc)
    return removed


def hosts_network(directory: Directory, prefix: str) -> HostNetwork:
    """The network of a lab on several hosts, made (or completed) for the directory's
    servers. StartupError when it can't be."""
    from casarray.lab.hosts.network import HostNetwork
    from casarray.lab.hosts.nlb import pair_cluster_ips
    from casarray.lab.hosts.plan import HostPlan, HostsError

    try:
        servers = [(s.name, s.site, s.ip_address) for s in directory.servers.get()]
        pairs = pair_cluster_ips(directory)
        network = HostNetwork(HostPlan.build(servers, prefix=prefix, pairs=pairs))
        network.up()
    except HostsError as exc:
        raise StartupError(str(exc)) from exc
    return network


def read_state(home: Path) -> dict[str, Any] | None:
    """The running supervisor's state file, or None when no supervisor runs."""
    return StatusFile(state_path(home)).read()
