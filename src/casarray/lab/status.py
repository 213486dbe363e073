"""What the lab is doing, gathered from where each part tells it, and shown with rich.

`collect()` reads, in one pass:

- the directory: servers (site, address, roles), client access arrays with their
  members, NLB clusters and their nodes, mailbox databases with RpcClientAccessServer;
- the supervisor's state file (`run/supervisor.json`): every process's state (Starting,
  Running, Restarting, Killed), pid and restarts, and the last events;
- the runners' status files: each Client Access server's ports, the DNS server's, each
  balancer's engine and its nodes' live state and connection counts, each Mailbox
  server's mounted databases;
- the services themselves, as a balancer or a client would see them: each Client
  Access server's health pages (`/owa/healthcheck.htm`, `/autodiscover/...`,
  `/imap/...`, `/api/...`, over HTTP on the address and port of its status file; 200 is
  healthy), and the DNS server (an SOA query for the organization's domain).

`LabStatus.healthy` is what `casarray lab up --detach` waits for: the supervisor up,
every process Running, every health page of every Client Access server 200, the DNS
server answering, every database of a running Mailbox server mounted. `render()` draws
the tables (`casarray lab status` prints them once, `casarray lab up` keeps them live).

When the directory can't be read (a hosts lab whose DC01, with its PostgreSQL server,
is killed or cut off), the status is what the supervisor and the status files say
without it: the processes and the last events, with `LabStatus.directory_problem`
saying why (`casarray lab status` tries for `DIRECTORY_CONNECT_TIMEOUT` seconds).
"""

from __future__ import annotations

import dataclasses
import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.lab.config import LabConfig

HEALTH_PAGES = ("owa", "autodiscover", "imap", "api")
PROBE_TIMEOUT = 1.0
DIRECTORY_CONNECT_TIMEOUT = 2  # seconds, PostgreSQL's connect_timeout (libpq's least)
OK = "OK"
DOWN = "down"
NOT_PROBED = "-"
UNREACHABLE = "unreachable"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    kind: str
    target: str
    state: str  # Starting, Running, Restarting, Killed, Stopping; "Stopped" without a lab
    pid: int | None
    restarts: int
    detail: str
    ready_after: float | None = None


@dataclass(frozen=True)
class ServerStatus:
    name: str
    fqdn: str
    site: str
    address: str
    roles: str
    state: str  # its process's (the Client Access one when it has both)
    ports: dict[str, int]  # imap, imaps, http, https while it serves
    health: dict[str, str]  # page -> OK, an HTTP status, "down" or "-"

    @property
    def is_client_access(self) -> bool:
        return "ClientAccess" in self.roles


@dataclass(frozen=True)
class ArrayStatus:
    name: str
    fqdn: str
    site: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class NodeStatus:
    cluster: str
    cluster_ip: str
    engine: str  # the running balancer's data plane, "" when none runs
    node: str
    address: str
    admin_state: str  # the directory's: Started, Stopped, Draining, Suspended
    state: str  # the balancer's: Converged, Unhealthy, ... ("" when none runs)
    detail: str
    connections: int | None


@dataclass(frozen=True)
class DatabaseStatus:
    name: str
    server: str
    site: str
    mounted: bool
    rpc_client_access_server: str
    mailboxes: int


@dataclass(frozen=True)
class DnsStatus:
    address: str
    port: int
    serial: int | None  # what it answers; None when it doesn't
    running: bool


@dataclass(frozen=True)
class DirectoryProblem:
    """Why the status was collected without the directory."""

    where: str  # "PostgreSQL in DC01, 198.18.1.5", "SQLite file ..."
    state: str  # "unreachable" (no connection), "unreadable" (connected, can't read it)
    reason: str  # the driver's or the directory's first line

    def line(self) -> str:
        said = "is unreachable" if self.state == UNREACHABLE else "can't be read"
        return f"The directory ({self.where}) {said}: {self.reason}; showing the processes only."


@dataclass(frozen=True)
class LabStatus:
    home: Path
    domain: str
    supervisor_pid: int | None
    port_offset: int
    data_plane: str
    root_ca: Path | None
    dns: DnsStatus
    processes: tuple[ProcessStatus, ...]
    servers: tuple[ServerStatus, ...]
    arrays: tuple[ArrayStatus, ...]
    nodes: tuple[NodeStatus, ...]
    databases: tuple[DatabaseStatus, ...]
    events: tuple[dict[str, str], ...] = field(default=())
    directory_problem: DirectoryProblem | None = None  # None: read from the directory

    @property
    def running(self) -> bool:
        return self.supervisor_pid is not None

    def problems(self) -> list[str]:
        """What keeps the lab from being healthy, one line each."""
        if not self.running:
            return ["the lab isn't running"]
        found = [self.directory_problem.line()] if self.directory_problem else []
        found += [
            f"{p.name} is {p.state}{f' ({p.detail})' if p.detail else ''}"
            for p in self.processes
            if p.state != "Running"
        ]
        for server in self.servers:
            bad = [f"{page} {value}" for page, value in server.health.items() if value != OK]
            if server.is_client_access and bad and server.state == "Running":
                found.append(f"{server.name} health: {', '.join(bad)}")
        if self.dns.serial is None and self.dns.running and not self.directory_problem:
            found.append(f"DNS doesn't answer on {self.dns.address} port {self.dns.port}")
        running = {p.target for p in self.processes if p.kind == "Mailbox" and p.state == "Running"}
        for database in self.databases:
            if database.server in running and not database.mounted:
                found.append(f"{database.name} is dismounted")
        return found

    @property
    def healthy(self) -> bool:
        return not self.problems()

    def failing_to_start(self) -> list[ProcessStatus]:
        """The processes that exited twice or more without ever serving: waiting
        longer for them is pointless (a port taken, a bad setting)."""
        return [
            p
            for p in self.processes
            if p.state == "Restarting" and p.restarts >= 1 and p.ready_after is None
        ]

    def process(self, name: str) -> ProcessStatus | None:
        return next((p for p in self.processes if p.name.lower() == name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["home"] = str(self.home)
        data["root_ca"] = str(self.root_ca) if self.root_ca else None
        data["healthy"] = self.healthy
        data["problems"] = self.problems()
        data["directory_reachable"] = self.directory_problem is None
        return data


# -- probes ----------------------------------------------------------------------------


def probe_page(host: str, port: int, page: str, timeout: float = PROBE_TIMEOUT) -> str:
    """GET /<page>/healthcheck.htm: OK for 200, else the status, or "down"."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", f"/{page}/healthcheck.htm", headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        return DOWN
    finally:
        connection.close()
    return OK if response.status == 200 else str(response.status)


def probe_dns(address: str, port: int, domain: str, timeout: float = PROBE_TIMEOUT) -> int | None:
    """The SOA serial the DNS server answers for `domain`, None when it doesn't."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(domain, dns.rdatatype.SOA)
    try:
        answer = dns.query.udp(query, address, port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return None
    for rrset in answer.answer:
        for record in rrset:
            if record.rdtype == dns.rdatatype.SOA:
                return int(record.serial)
    return None


# -- collecting ------------------------------------------------------------------------


def _processes(state: dict[str, Any] | None) -> tuple[ProcessStatus, ...]:
    if state is None:
        return ()
    rows = []
    for entry in state.get("processes", ()):
        rows.append(
            ProcessStatus(
                name=str(entry.get("name", "")),
                kind=str(entry.get("kind", "")),
                target=str(entry.get("target", "")),
                state=str(entry.get("state", "")),
                pid=entry.get("pid"),
                restarts=int(entry.get("restarts") or 0),
                detail=str(entry.get("detail") or ""),
                ready_after=entry.get("ready_after"),
            )
        )
    return tuple(rows)


def collect(
    config: LabConfig, directory: Directory | None = None, *, probe: bool = True
) -> LabStatus:
    """The lab's status now (see the module docstring). Blocking: a few directory reads
    and, with `probe`, the health pages and a DNS query, all at once (about a second at
    worst, when something doesn't answer). A lab on several hosts is probed from its
    client in BJ, where the servers' addresses are."""
    if config.hosts and probe:
        from casarray.lab.hosts.network import NETNS_DIR, call_in
        from casarray.lab.hosts.plan import CLIENT_BJ, namespace_name

        client = namespace_name(config.hosts, CLIENT_BJ)
        if (NETNS_DIR / client).exists():
            return call_in(client, _collect, config, directory, probe=probe)
    return _collect(config, directory, probe=probe)


def quick_url(url: str) -> str:
    """The directory's URL for one status read: on PostgreSQL, a connection that isn't
    made within DIRECTORY_CONNECT_TIMEOUT seconds fails (libpq waits for ever)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or "connect_timeout" in parsed.query:
        return url
    quick = parsed.update_query_dict({"connect_timeout": str(DIRECTORY_CONNECT_TIMEOUT)})
    return quick.render_as_string(hide_password=False)


def directory_where(config: LabConfig) -> str:
    """The directory in a few words, no password: "PostgreSQL in DC01, 198.18.1.5"."""
    from sqlalchemy.engine import make_url

    url = make_url(config.process_directory if config.postgres else config.directory)
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}"
    socket = url.query.get("host")
    host = url.host or (socket[0] if isinstance(socket, tuple) else socket) or "its socket"
    return f"PostgreSQL in DC01, {host}" if config.postgres else f"PostgreSQL on {host}"


def directory_problem(config: LabConfig, exc: Exception) -> DirectoryProblem:
    """What to say of `exc`, raised reading the directory."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    reason = lines[0] if lines else type(cause).__name__
    unreachable = isinstance(exc, (OperationalError, InterfaceError, OSError))
    return DirectoryProblem(
        directory_where(config), UNREACHABLE if unreachable else UNREADABLE, reason
    )


def _collect(config: LabConfig, directory: Directory | None, *, probe: bool) -> LabStatus:
    from sqlalchemy.exc import DBAPIError

    from casarray.access.cas_process import read_status as server_status
    from casarray.balancer.balancer_process import live_node, read_host_status
    from casarray.balancer.balancer_process import read_status as balancer_status
    from casarray.directory import Directory, DirectoryError
    from casarray.dns.dns_process import read_status as dns_status
    from casarray.lab.supervisor import read_state

    home = config.home
    own = directory is None
    try:
        d = directory or Directory.open(quick_url(config.directory))
        try:
            domain = d.organization().default_domain
            servers = d.servers.get()
            arrays = d.arrays.get()
            clusters = d.nlb.clusters()
            nodes_by_cluster = {c.guid: d.nlb.nodes(c.guid) for c in clusters}
            databases = d.databases.get()
            counts: dict[str, int] = {}
            for mailbox in d.mailboxes.get():
                counts[mailbox.database] = counts.get(mailbox.database, 0) + 1
            dns_address = d.dns.listening_address()
        finally:
            if own:
                d.close()
    except (DBAPIError, DirectoryError, OSError) as exc:
        return _without_directory(config, directory_problem(config, exc))

    state = read_state(home)
    processes = _processes(state)
    by_name = {p.name.lower(): p for p in processes}
    dns_file = dns_status(home)
    dns_port = int(dns_file["port"]) if dns_file else config.dns_port
    dns_address = str(dns_file["address"]) if dns_file else dns_address
    files = {s.name: server_status(s.name, home) for s in servers if s.is_client_access_server}

    jobs: dict[tuple[str, str], Any] = {}
    serial: int | None = None
    dns_job = None
    with ThreadPoolExecutor(max_workers=16) as pool:
        if probe:
            for name, status in files.items():
                if status is None:
                    continue
                for page in HEALTH_PAGES:
                    jobs[(name, page)] = pool.submit(
                        probe_page, str(status["host"]), int(status["http"]), page
                    )
            dns_job = pool.submit(probe_dns, dns_address, dns_port, domain) if dns_file else None
        results = {key: job.result() for key, job in jobs.items()}
        if dns_job is not None:
            serial = dns_job.result()

    server_rows = []
    for server in servers:
        process = by_name.get(server.name.lower())
        if process is None and server.is_mailbox_server:
            process = by_name.get(f"{server.name}-store".lower())
        status = files.get(server.name)
        ports = {k: int(status[k]) for k in ("imap", "imaps", "http", "https")} if status else {}
        health = {
            page: results.get((server.name, page), NOT_PROBED) if status else NOT_PROBED
            for page in HEALTH_PAGES
        }
        server_rows.append(
            ServerStatus(
                name=server.name,
                fqdn=server.fqdn,
                site=server.site,
                address=server.ip_address,
                roles=str(server.roles),
                state=process.state if process else "Stopped",
                ports=ports,
                health=health if server.is_client_access_server else {},
            )
        )

    node_rows = []
    for cluster in clusters:
        live = balancer_status(cluster.name, home)
        for node in nodes_by_cluster[cluster.guid]:
            entry = live_node(live, node.name)
            if live is None and (reported := read_host_status(cluster.name, node.name, home)):
                # NLB on the hosts: the node's own driver reports it
                entry = {"state": reported.get("state", ""), "detail": "its own driver"}
            node_rows.append(
                NodeStatus(
                    cluster=cluster.name,
                    cluster_ip=cluster.ip_address,
                    engine=str(live.get("engine", "")) if live else ("Hosts" if entry else ""),
                    node=node.name,
                    address=node.ip_address,
                    admin_state=node.admin_state,
                    state=str(entry.get("state", "")) if entry else "",
                    detail=str(entry.get("detail", "")) if entry else "",
                    connections=entry.get("connections") if entry else None,
                )
            )

    database_rows = tuple(
        DatabaseStatus(
            name=db.name,
            server=db.server,
            site=db.site,
            mounted=db.mounted,
            rpc_client_access_server=db.rpc_client_access_server,
            mailboxes=counts.get(db.name, 0),
        )
        for db in databases
    )

    return LabStatus(
        home=home,
        domain=domain,
        supervisor_pid=int(state["pid"]) if state else None,
        port_offset=config.port_offset,
        data_plane=config.data_plane,
        root_ca=config.root_ca if config.root_ca.exists() else None,
        dns=DnsStatus(dns_address, dns_port, serial, dns_file is not None),
        processes=processes,
        servers=tuple(server_rows),
        arrays=tuple(ArrayStatus(a.name, a.fqdn, a.site, tuple(a.members)) for a in arrays),
        nodes=tuple(node_rows),
        databases=database_rows,
        events=tuple(state.get("events", ())) if state else (),
    )


def _without_directory(config: LabConfig, problem: DirectoryProblem) -> LabStatus:
    """The status from the supervisor's state and the DNS server's status file alone:
    nothing probed (which servers there are, and the domain, are the directory's)."""
    from casarray.dns.dns_process import read_status as dns_status
    from casarray.lab.supervisor import read_state

    state = read_state(config.home)
    dns_file = dns_status(config.home)
    return LabStatus(
        home=config.home,
        domain="",
        supervisor_pid=int(state["pid"]) if state else None,
        port_offset=config.port_offset,
        data_plane=config.data_plane,
        root_ca=config.root_ca if config.root_ca.exists() else None,
        dns=DnsStatus(
            str(dns_file["address"]) if dns_file else config.dns_address,
            int(dns_file["port"]) if dns_file else config.dns_port,
            None,
            dns_file is not None,
        ),
        processes=_processes(state),
        servers=(),
        arrays=(),
        nodes=(),
        databases=(),
        events=tuple(state.get("events", ())) if state else (),
        directory_problem=problem,
    )


def wait_healthy(config: LabConfig, timeout: float, *, alive: Any = None) -> LabStatus:
    """Collect until the lab is healthy, `timeout` passes, or a process fails to start
    twice (`LabStatus.failing_to_start`); the last status. `alive()` (optional) says
    whether to go on waiting (the supervisor is still there)."""
    deadline = time.monotonic() + timeout
    from casarray.directory import Directory

    with Directory.open(config.directory) as directory:
        while True:
            status = collect(config, directory)
            if status.healthy or time.monotonic() >= deadline or status.failing_to_start():
                return status
            if alive is not None and not alive():
                return status
            time.sleep(0.1)


# -- rendering -------------------------------------------------------------------------

CLIENT_ACCESS = "ClientAccess"
PAGE_LABELS = {"owa": "OWA", "autodiscover": "AD", "imap": "IMAP", "api": "API"}
ROLE_LABELS = {
    CLIENT_ACCESS: "CAS",
    "Mailbox": "Mailbox",
    "DNS": "DNS",
    "HubTransport": "Transport",
    "NlbHost": "NLB host",
}
STATE_STYLES = {
    "Running": "green",
    "Starting": "yellow",
    "Restarting": "yellow",
    "Stopping": "yellow",
    "Killed": "bold red",
    "Stopped": "red",
}


def _state(text: str, restarts: int = 0) -> Text:
    shown = Text(text or "-", style=STATE_STYLES.get(text, ""))
    if restarts:
        shown.append(f", {restarts} restart{'s' if restarts > 1 else ''}", style="yellow")
    return shown


def _health(health: dict[str, str]) -> Text:
    """Each health page's component, green when it answers 200, else red with what it
    answered ("IMAP:503", "OWA:down"); "-" when not probed."""
    if not health or set(health.values()) == {NOT_PROBED}:
        return Text(NOT_PROBED, style="dim")
    shown = Text()
    for page, value in health.items():
        label = PAGE_LABELS.get(page, page)
        if shown:
            shown.append(" ")
        if value == OK:
            shown.append(label, style="green")
        else:
            shown.append(f"{label}:{value}", style="bold red")
    return shown


def headline(status: LabStatus) -> Text:
    if not status.running:
        return Text(f"The lab in {status.home} isn't running.", style="bold")
    state = "healthy" if status.healthy else "not healthy"
    ports = f"ports +{status.port_offset}" if status.port_offset else "standard ports"
    return Text.assemble(
        (f"Lab {status.domain} " if status.domain else "Lab ", "bold"),
        (state, "green" if status.healthy else "yellow"),
        f" - {status.home}, supervisor pid {status.supervisor_pid}, {ports}, "
        f"{status.data_plane} data plane",
    )


def _table(title: str, *columns: str, wrap: tuple[str, ...] = ()) -> Table:
    """A compact table; only the columns in `wrap` may wrap or shrink."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column not in wrap, overflow="fold")
    return table


def render(status: LabStatus, *, events: int = 5) -> Group:
    """The status as rich tables: processes (servers with their health pages, DNS,
    balancers), arrays, NLB nodes, databases, the last events."""
    parts: list[Any] = [headline(status)]
    problems = status.problems() if status.running else []
    if status.directory_problem is not None:
        parts.append(Text(status.directory_problem.line(), style="bold red"))
        problems = problems[1:]  # the line above
    if problems:
        parts.append(Text("Not healthy: " + "; ".join(problems), style="yellow"))
    by_name = {p.name.lower(): p for p in status.processes}
    shown: set[str] = set()

    rows = _table(
        "Processes", "Name", "Role", "Site", "Address", "State", "Health", wrap=("State", "Health")
    )
    dns = by_name.get("dns")
    if dns is not None or not status.running:
        shown.add("dns")
        answer = f"serial {status.dns.serial}" if status.dns.serial is not None else "no answer"
        rows.add_row(
            "DNS",
            "DNS",
            "",
            f"{status.dns.address}:{status.dns.port}",
            _state(dns.state if dns else "Stopped", dns.restarts if dns else 0),
            Text(answer, style="green" if status.dns.serial is not None else "red")
            if status.dns.running and status.directory_problem is None
            else Text(NOT_PROBED, style="dim"),
        )
    mounted = {db.name for db in status.databases if db.mounted}
    for server in status.servers:
        names = [server.name]
        if "Mailbox" in server.roles and server.is_client_access:
            names.append(f"{server.name}-store")
        for name in names:
            process = by_name.get(name.lower())
            shown.add(name.lower())
            expected = CLIENT_ACCESS if server.is_client_access and name == server.name else ""
            if not expected and "Mailbox" in server.roles:
                expected = "Mailbox"
            kind = process.kind if process else expected
            if kind == CLIENT_ACCESS:
                health = _health(server.health)
            else:
                held = [db.name for db in status.databases if db.server == server.name]
                health = Text(
                    ", ".join(f"{db} {'mounted' if db in mounted else 'dismounted'}" for db in held)
                    or "no databases",
                    style="green" if all(db in mounted for db in held) else "red",
                )
            rows.add_row(
                name,
                ROLE_LABELS.get(kind, kind) or server.roles,
                server.site,
                server.address,
                _state(process.state if process else "Stopped", process.restarts if process else 0),
                health,
            )
    clusters: dict[str, list[NodeStatus]] = {}
    for node in status.nodes:
        clusters.setdefault(node.cluster, []).append(node)
    for cluster, nodes in clusters.items():
        process = by_name.get(cluster.lower())
        shown.add(cluster.lower())
        up = sum(1 for n in nodes if n.state in ("Converged", "Converging"))
        state = _state(process.state if process else "Stopped", process.restarts if process else 0)
        if process is None and nodes[0].engine == "Hosts":  # no central process
            state = Text("on its hosts", style="green" if up else "red")
        rows.add_row(
            cluster,
            f"NLB {nodes[0].engine}".strip(),
            "",
            nodes[0].cluster_ip,
            state,
            Text(f"{up} of {len(nodes)} nodes up", style="green" if up == len(nodes) else "red"),
        )
    for process in status.processes:  # anything else the supervisor runs
        if process.name.lower() not in shown:
            rows.add_row(
                process.name,
                ROLE_LABELS.get(process.kind, process.kind),
                "",
                "",
                _state(process.state, process.restarts),
                "",
            )
    parts.append(rows)
    if status.directory_problem is not None:  # arrays, nodes, databases: the directory's
        _events(parts, status, events)
        return Group(*parts)

    if status.arrays:
        arrays = _table(
            "Client access arrays", "Name", "Fqdn", "Site", "Members", wrap=("Members",)
        )
        for a in status.arrays:
            arrays.add_row(a.name, a.fqdn, a.site, ", ".join(a.members) or "(none)")
        parts.append(arrays)
    else:
        parts.append(Text("Client access arrays: none", style="italic"))

    if status.nodes:
        nodes_table = _table(
            "NLB nodes", "Cluster", "Node", "Admin", "State", "Connections", wrap=("State",)
        )
        for n in status.nodes:
            good = n.state in ("Converged", "Converging")
            state = Text(n.state or "no balancer", style="green" if good else "red")
            if n.detail:
                first, _, more = n.detail.partition("; ")
                state.append(f" ({first}{'; ...' if more else ''})", style="dim")
            connections = "-" if n.connections is None else str(n.connections)
            nodes_table.add_row(n.cluster, n.node, n.admin_state, state, connections)
        parts.append(nodes_table)
    else:
        parts.append(Text("NLB clusters: none", style="italic"))

    databases = _table(
        "Mailbox databases", "Name", "Server", "Mounted", "RpcClientAccessServer", "Mailboxes"
    )
    for db in status.databases:
        databases.add_row(
            db.name,
            db.server,
            Text(str(db.mounted), style="green" if db.mounted else "red"),
            db.rpc_client_access_server,
            str(db.mailboxes),
        )
    parts.append(databases)

    _events(parts, status, events)
    return Group(*parts)


def _events(parts: list[Any], status: LabStatus, events: int) -> None:
    """The last `events` of the supervisor, after `parts`."""
    if events and status.events:
        lines = Text("Events\n", style="italic")
        for event in list(status.events)[-events:]:
            stamp = event.get("time", "")[11:19]
            lines.append(f"  {stamp}  {event.get('text', '')}\n", style="")
        parts.append(lines)
