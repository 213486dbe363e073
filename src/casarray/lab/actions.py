"""`casarray lab ...`: make, start, watch, change and stop the lab organization.

- `up`: makes the organization in the lab's folder (`--home`, default
  $CASARRAY_HOME) when it has none (`topology.build_seed_organization`, the users'
  passwords printed this once) and decides its ports (`config.LabConfig`), then runs
  the supervisor (`supervisor.LabSupervisor`) here with a live status view until Ctrl-C,
  which stops everything; with `--detach` the supervisor runs in the background (a new
  session: `casarray lab supervise`, its output in logs/lab.log) and `up` returns once
  all is healthy, saying how to reach the lab and how long that took, or fails after
  `--timeout` (60 s) with what wasn't healthy and the end of its logs (and stops it).
- with `--hosts`, `up` runs the lab on several hosts (`lab.hosts`: one network
  namespace per server); `kill-host NAME`, `start-host NAME`, `partition NAME` (and
  `heal`) act on a host through the supervisor (directly when none runs), `exec NAME --
  CMD` runs a command inside one, `status` adds the hosts and their links, and `down`
  removes the hosts network too.
- `status` prints the status once (`--json` for programs); `logs [NAME] [-f]` prints a
  process's log (the supervisor's without NAME); `kill NAME` and `start NAME` go
  through the control socket (`control_socket`); `add-server` installs a server in the
  directory (the next free address of its site unless `--ip-address`), and the
  running supervisor starts its process by itself; `down` stops a running lab and
  clears what it left (status files, the socket, nftables tables, stray processes);
  `reset` is `down` and deletes the organization (asks unless `--yes`).

One supervisor runs per folder (it holds a lock on the folder). `status` exits with 3
when the lab isn't running.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console

from casarray.config import casarray_home, may_admin_network
from casarray.errors import CasarrayError
from casarray.lab import claim, control_socket
from casarray.lab.config import LabConfig
from casarray.lab.supervisor import (
    LAB_LOG,
    LabSupervisor,
    log_path,
    read_state,
    remove_nft_tables,
)
from casarray.process.errors import StartupError
from casarray.process.status import StatusFile, pid_alive

if TYPE_CHECKING:
    from casarray.lab.hosts.network import HostNetwork, HostState
    from casarray.lab.status import LabStatus

log = logging.getLogger("casarray.lab")

READY_TIMEOUT = 60.0
DOWN_TIMEOUT = 60.0
LOG_TAIL = 15
ERROR_SCAN = 100  # lines searched for errors before the tail
ERROR_LINE = re.compile(r" ERROR |^\w+(?:\.\w+)*(?:Error|Exception): ")
# what `reset` deletes from the lab's folder (and nothing else there)
LAB_ENTRIES = (
    "directory.db",
    "directory.db-wal",
    "directory.db-shm",
    "databases",
    "logs",
    "run",
    "certs",
    "pki",
    "postgres",  # a hosts lab's PostgreSQL cluster: its directory and mailboxes
    "nlb-hosts",
    "lab.json",
)


class LabError(CasarrayError):
    """A lab command that can't be done (the message says why)."""


def lab_home(home: str | None) -> Path:
    """The lab's folder, made absolute and put in $CASARRAY_HOME for this process and
    every process it starts."""
    folder = Path(home).expanduser().resolve() if home else casarray_home().resolve()
    os.environ["CASARRAY_HOME"] = str(folder)
    return folder


def console() -> Console:
    """Rich on a terminal; wide plain tables otherwise (logs, pipes, tests)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=200, no_color=True, highlight=False)


def _load(home: Path) -> LabConfig:
    config = LabConfig.load(home)
    if config is None:
        raise LabError(f"There is no lab in {home}: make it with `casarray lab up`.")
    return config


# -- making the organization -------------------------------------------------------------


def prepare(home: Path, hosts: bool = False) -> tuple[LabConfig, dict[str, str] | None]:
    """The lab's settings, making the organization first when the folder has none (on
    several hosts with `hosts`); the users' passwords when it was made now (they are
    shown once)."""
    from casarray.config import directory_url
    from casarray.directory import Directory
    from casarray.lab.topology import build_seed_organization

    config = LabConfig.load(home)
    if config is not None:
        config.check_runnable()
        if hosts and not config.hosts:
            raise LabError(
                f"The lab in {home} was made on this machine's loopback addresses, not on "
                "several hosts; make it anew with `casarray lab reset`, then `lab up --hosts`."
            )
        return config, None
    home.mkdir(parents=True, exist_ok=True)
    if hosts:
        config, passwords = prepare_hosts(home)
        config.save()
        return config, passwords
    url = directory_url()
    passwords = None
    with Directory.open(url) as directory:
        if not directory.servers.get():
            passwords = build_seed_organization(directory)
        dns_address = directory.dns.listening_address()
    config = LabConfig.decide(home, url, dns_address)
    config.save()
    return config, passwords


def prepare_hosts(home: Path) -> tuple[LabConfig, dict[str, str] | None]:
    """A new lab on several hosts: its network, its PostgreSQL server in DC01, and the
    organization made on it from inside DC01 (the mailbox databases' locations are
    the server's address, which only the lab's hosts reach)."""
    from casarray.lab.hosts.network import HostNetwork, call_in
    from casarray.lab.hosts.plan import DC, HostPlan, HostsError, default_prefix
    from casarray.lab.hosts.postgres import LabPostgres, tcp_url

    prefix = default_prefix()
    try:
        network = HostNetwork(HostPlan.build(prefix=prefix))
        network.up()
        server = LabPostgres(home, network.plan.host(DC).namespace)
        server.start()
        url = tcp_url()
        passwords, dns_address = call_in(network.plan.host(DC).namespace, _seed, url)
    except HostsError as exc:
        raise LabError(str(exc)) from exc
    config = LabConfig.decide(
        home, server.local_url(), dns_address, hosts=prefix, hosts_directory=url
    )
    return config, passwords


def _seed(url: str) -> tuple[dict[str, str] | None, str]:
    """Make the hosts lab's organization at `url` if it has none: (passwords, the DNS
    server's address)."""
    from casarray.directory import Directory
    from casarray.lab.topology import build_seed_organization

    passwords = None
    with Directory.open(url) as directory:
        if not directory.servers.get():
            passwords = build_seed_organization(directory, hosts=True, store_url=url)
        return passwords, directory.dns.listening_address()


def show_passwords(out: Console, passwords: dict[str, str] | None) -> None:
    if not passwords:
        return
    out.print("The lab's users (their passwords are shown this once; only hashes are kept):")
    for address, password in passwords.items():
        out.print(f"  {address:<20} {password}")


# -- one supervisor per folder ---------------------------------------------------------


@contextlib.contextmanager
def supervisor_lock(home: Path) -> Iterator[None]:
    """Held by the supervisor while it runs: a lock on the lab's folder itself."""
    fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LabError(
                f"The lab in {home} is already running; see `casarray lab status`."
            ) from None
        yield
    finally:
        os.close(fd)


def _log_to(stream: IO[str]) -> logging.Handler:
    from casarray.process.logs import LOG_DATE_FORMAT, LOG_FORMAT

    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    root = logging.getLogger("casarray")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


async def _supervise(config: LabConfig) -> LabSupervisor:
    """Run the supervisor and its control socket until it is stopped."""
    supervisor = LabSupervisor(config)
    try:
        await supervisor.run()
    except StartupError as exc:
        raise LabError(str(exc)) from None
    return supervisor


def supervise(home: Path) -> int:
    """The detached supervisor (`casarray lab supervise`): its output is logs/lab.log."""
    from casarray.process.lifecycle import loop_factory

    config = _load(home)
    config.check_runnable()
    _log_to(sys.stderr)
    with supervisor_lock(home), asyncio.Runner(loop_factory=loop_factory(True)) as runner:
        runner.run(_supervise(config))
    return 0


# -- up ------------------------------------------------------------------------------------


def up(home: Path, detach: bool, timeout: float = READY_TIMEOUT, hosts: bool = False) -> int:
    started = time.monotonic()
    out = console()
    state = read_state(home)
    existing = LabConfig.load(home)
    hosts = hosts or bool(existing and existing.hosts)
    if hosts:
        from casarray.lab.hosts.network import missing

        if (what := missing()) is not None:
            raise LabError(f"Can't run the lab on several hosts: {what}.")
    if state is None:
        try:
            if hosts:
                from casarray.lab.hosts.plan import default_prefix

                block = existing.hosts if existing else default_prefix()
                claim.check_free(home, dns_ports=(), block=block)
            else:
                claim.check_free(home)
        except claim.AddressesTaken as exc:
            raise LabError(str(exc)) from None
    config, passwords = prepare(home, hosts)
    if state is not None:
        if not detach:
            raise LabError(
                f"The lab in {home} is already running (supervisor pid {state['pid']}); "
                "see `casarray lab status`, or stop it with `casarray lab down`."
            )
        from casarray.lab.status import collect

        out.print(f"The lab in {home} is already running (supervisor pid {state['pid']}).")
        show_reach(out, collect(config))
        return 0
    show_passwords(out, passwords)
    if detach:
        return _up_detached(config, out, started, timeout)
    return _up_foreground(config, out, started)


def _up_detached(config: LabConfig, out: Console, started: float, timeout: float) -> int:
    from casarray.lab.status import wait_healthy

    home = config.home
    lab_log = log_path(home, LAB_LOG)
    lab_log.parent.mkdir(parents=True, exist_ok=True)
    with lab_log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "casarray", "lab", "supervise", "--home", str(home)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "CASARRAY_HOME": str(home), "PYTHONUNBUFFERED": "1"},
        )
    status = wait_healthy(config, timeout, alive=lambda: process.poll() is None)
    took = time.monotonic() - started
    if status.healthy:
        out.print(f"The lab is up in {home}: all healthy in {took:.1f} s.")
        show_reach(out, status)
        return 0
    failing = status.failing_to_start()
    if process.poll() is not None:
        out.print(f"The lab's supervisor exited with status {process.returncode}.")
    elif failing:
        names = ", ".join(p.name for p in failing)
        out.print(
            f"The lab isn't healthy after {took:.0f} s ({names} failed to start twice): "
            "stopping it."
        )
    else:
        out.print(f"The lab isn't healthy after {took:.0f} s: stopping it.")
    for problem in status.problems():
        out.print(f"  - {problem}")
    show_tails(out, home, status)
    if process.poll() is None:  # SIGTERM: it stops what it started
        process.terminate()
        try:
            process.wait(DOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if read_state(home) is None:  # (not when another `up` won the race: that one runs)
        down(home, quiet=True)  # what may be left
    return 1


def _up_foreground(config: LabConfig, out: Console, started: float) -> int:
    from rich.live import Live

    from casarray.lab.status import render
    from casarray.process.lifecycle import loop_factory

    home = config.home
    lab_log = log_path(home, LAB_LOG)
    lab_log.parent.mkdir(parents=True, exist_ok=True)

    async def main() -> None:
        from casarray.directory import Directory
        from casarray.lab.status import collect

        with lab_log.open("a") as stream:
            handler = _log_to(stream)
            try:
                supervising = asyncio.ensure_future(_supervise(config))
                healthy_after: float | None = None
                with (
                    Directory.open(config.directory) as directory,
                    Live(console=out, refresh_per_second=4, transient=False) as live,
                ):
                    while not supervising.done():
                        status = await asyncio.to_thread(collect, config, directory)
                        if healthy_after is None and status.healthy:
                            healthy_after = time.monotonic() - started
                            log.info("all healthy in %.1f s", healthy_after)
                        view = render(status, events=3)
                        if healthy_after is not None:
                            view.renderables.insert(
                                1,
                                f"All healthy {healthy_after:.1f} s after `lab up`; "
                                "Ctrl-C stops the lab.",
                            )
                        live.update(view)
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(supervising), 1.0)
                await supervising
            finally:
                logging.getLogger("casarray").removeHandler(handler)

    with supervisor_lock(home), asyncio.Runner(loop_factory=loop_factory(True)) as runner:
        runner.run(main())
    out.print("The lab is stopped.")
    return 0


def show_reach(out: Console, status: LabStatus) -> None:
    """How to reach the running lab."""
    home = status.home
    dns = f"{status.dns.address} port {status.dns.port}"
    out.print(
        f"  DNS          {dns}, authoritative for {status.domain} "
        f"(dig @{status.dns.address} -p {status.dns.port} cas01.{status.domain})"
    )
    for server in status.servers:
        if server.ports:
            ports = server.ports
            out.print(
                f"  {server.name:<12} {server.address} ({server.fqdn}): IMAP {ports['imap']} "
                f"(STARTTLS) and {ports['imaps']} (TLS), HTTP {ports['http']}, "
                f"HTTPS {ports['https']}"
            )
    for server in status.servers:
        if "HubTransport" in server.roles:
            smtp, submission = 25 + status.port_offset, 587 + status.port_offset
            out.print(
                f"  {server.name:<12} {server.address} ({server.fqdn}): SMTP {smtp}, "
                f"submission {submission} (STARTTLS, then AUTH)"
            )
    for node in {(n.cluster, n.cluster_ip, n.engine) for n in status.nodes}:
        out.print(f"  {node[0]:<12} {node[1]} (NLB cluster, {node[2] or 'no'} data plane)")
    if status.root_ca is not None:
        out.print(f"  Lab root CA  {status.root_ca}")
    else:
        out.print("  Lab root CA  not made yet (`casarray pki root` makes it)")
    where = f" --home {home}"
    directory = ""
    config = LabConfig.load(home)
    if config is not None and config.postgres:  # the directory isn't the home's SQLite file
        directory = f" --directory '{config.directory}'"
        out.print(f"  Directory    {config.process_directory} (PostgreSQL in DC01)")
    out.print(f"  Shell        CASARRAY_HOME={home} casarray shell{directory}")
    out.print(f"  Status       casarray lab status{where}")
    out.print(f"  Stop         casarray lab down{where}")


def show_tails(out: Console, home: Path, status: LabStatus) -> None:
    """The end of the supervisor's log and of the log of every process not running,
    with the errors said shortly before (a traceback can push them out of the end)."""
    names = [LAB_LOG] + [p.name for p in status.processes if p.state != "Running"]
    for name in names:
        path = log_path(home, name)
        lines = tail(path, ERROR_SCAN)
        if not lines:
            continue
        out.print(f"--- the end of {path}")
        shown = lines[-LOG_TAIL:]
        errors = [line for line in lines[:-LOG_TAIL] if ERROR_LINE.search(line)]
        for line in list(dict.fromkeys(errors))[-3:]:
            out.print(f"(earlier) {line}", markup=False, highlight=False)
        for line in shown:
            out.print(line, markup=False, highlight=False)


def tail(path: Path, count: int) -> list[str]:
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - 256 * count))
            data = file.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-count:]


# -- status, kill, start --------------------------------------------------------------------


def status(home: Path, as_json: bool) -> int:
    from casarray.lab.status import collect, render

    config = _load(home)
    lab = collect(config)
    hosts = host_states(config, directory=lab.directory_problem is None)
    if as_json:
        data = lab.to_json()
        if hosts is not None:
            data["hosts"] = [host.to_json() for host in hosts]
        print(json.dumps(data, indent=2))
    else:
        out = console()
        out.print(render(lab))
        if hosts is not None:
            out.print(render_hosts(hosts))
    return 0 if lab.running and lab.directory_problem is None else 3


# -- a lab on several hosts -----------------------------------------------------------------


def host_network(config: LabConfig) -> HostNetwork:
    """The network of the lab on several hosts in `config` (its plan from the
    directory's servers); LabError for a lab on one machine or without root."""
    from casarray.directory import Directory
    from casarray.lab.hosts.network import HostNetwork, missing
    from casarray.lab.hosts.plan import HostPlan, HostsError

    if not config.hosts:
        raise LabError(
            f"The lab in {config.home} runs on this machine's loopback addresses: it has "
            "no hosts (`casarray lab up --hosts` makes a lab on several hosts)."
        )
    if (what := missing()) is not None:
        raise LabError(f"Can't reach the lab's hosts: {what}.")
    from casarray.lab.hosts.nlb import pair_cluster_ips

    with Directory.open(config.directory) as directory:
        servers = [(s.name, s.site, s.ip_address) for s in directory.servers.get()]
        pairs = pair_cluster_ips(directory)
    try:
        return HostNetwork(HostPlan.build(servers, prefix=config.hosts, pairs=pairs))
    except HostsError as exc:
        raise LabError(str(exc)) from exc


def host_states(config: LabConfig, *, directory: bool = True) -> list[HostState] | None:
    """Every host and its link, for a lab on several hosts that this process may read
    (root); None otherwise. Without `directory` (it can't be read), the hosts of the
    lab as it was made (the servers added since are the directory's)."""
    from casarray.lab.hosts.network import HostNetwork, missing
    from casarray.lab.hosts.plan import HostPlan

    if not config.hosts or missing() is not None:
        return None
    if not directory:
        return HostNetwork(HostPlan.build(prefix=config.hosts)).state()
    return host_network(config).state()


def render_hosts(hosts: list[HostState]) -> Any:
    from rich.table import Table

    table = Table(title="Hosts", title_justify="left")
    for column in ("Host", "Namespace", "Address", "Link", "Processes"):
        table.add_column(column)
    for host in hosts:
        link = host.link + (f" ({host.reason})" if host.reason else "")
        table.add_row(
            host.name, host.namespace, ", ".join(host.addresses), link, str(host.processes)
        )
    return table


def host_command(home: Path, command: str, name: str) -> int:
    """`kill-host`, `start-host`, `partition`, `heal`: through the running supervisor
    (it keeps a killed host's processes down until `start-host`), else on the network
    itself."""
    from casarray.lab.hosts.plan import HostsError

    config = _load(home)
    if read_state(home) is not None:  # (without the directory: DC01 may be down)
        print(_ask(home, command, name)["message"])
        return 0
    network = host_network(config)
    try:
        host = network.host(name).name
        if command == "kill-host":
            pids = network.kill_host(host)
            print(f"{host} killed: its link is down and {len(pids)} processes got SIGKILL.")
        elif command == "partition":
            network.partition(host)
            print(f"{host} partitioned: its link is down.")
        else:
            network.heal(host)
            print(f"{host}: its link is up (the lab isn't running: `casarray lab up`).")
    except HostsError as exc:
        raise LabError(str(exc)) from exc
    return 0


def exec_in(home: Path, name: str, argv: list[str]) -> int:
    """Run a command inside host `name` (replacing this process: a shell works)."""
    from casarray.lab.hosts.plan import HostsError

    config = _load(home)
    if not argv:
        raise LabError("`casarray lab exec NAME -- COMMAND...`: which command?")
    try:
        line = host_network(config).exec_argv(name, argv)
    except HostsError as exc:
        raise LabError(str(exc)) from exc
    sys.stdout.flush()
    os.execvp(line[0], line)


def kill(home: Path, name: str) -> int:
    _load(home)
    answer = _ask(home, "kill", name)
    print(answer["message"])
    return 0


def start(home: Path, name: str) -> int:
    _load(home)
    answer = _ask(home, "start", name)
    print(answer["message"])
    return 0


def _ask(home: Path, command: str, name: str | None = None) -> dict[str, Any]:
    try:
        return control_socket.request(home, command, name)
    except (control_socket.LabNotRunning, control_socket.ControlError) as exc:
        raise LabError(str(exc)) from exc


# -- down and reset ---------------------------------------------------------------------


def down(home: Path, *, quiet: bool = False) -> int:
    started = time.monotonic()
    state = read_state(home)
    if state is not None:
        pid = int(state["pid"])
        try:
            control_socket.request(home, "down")
        except (control_socket.LabNotRunning, control_socket.ControlError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    strays = stop_strays(home)
    clear_leftovers(home)
    removed = remove_hosts(home)
    if not quiet:
        if state is None:
            print(f"The lab in {home} isn't running.", end="")
            print(f" Stopped {len(strays)} stray processes." if strays else "")
        else:
            count = len(state.get("processes", ()))
            took = time.monotonic() - started
            print(f"The lab is down ({count} processes stopped in {took:.1f} s).")
        if removed:
            print(f"Removed the hosts network ({len(removed)} namespaces).")
    return 0


def remove_hosts(home: Path) -> list[str]:
    """Remove the network of a lab on several hosts (every namespace of its prefix);
    the namespaces removed."""
    from casarray.lab.hosts.network import HostNetwork, missing
    from casarray.lab.hosts.plan import DC, HostPlan, HostsError
    from casarray.lab.hosts.postgres import LabPostgres

    config = LabConfig.load(home)
    if config is None or not config.hosts:
        return []
    if (what := missing()) is not None:
        raise LabError(f"Can't remove the lab's hosts network: {what}.")
    try:
        network = HostNetwork(HostPlan.build([], prefix=config.hosts))
        if config.postgres:  # stopped by the supervisor, unless it was killed
            LabPostgres(home, network.plan.host(DC).namespace).stop()
        return network.down()
    except HostsError as exc:
        raise LabError(str(exc)) from exc


def _status_files(home: Path) -> list[Path]:
    run = home / "run"
    return sorted(p for p in run.glob("*.json")) if run.is_dir() else []


def _is_casarray(pid: int) -> bool:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"casarray" in command


def stop_strays(home: Path) -> list[int]:
    """Stop the casarray processes the lab's status files name that still run without
    a supervisor (SIGTERM, then SIGKILL); their pids."""
    pids: set[int] = set()
    for path in _status_files(home):
        said = StatusFile(path).read()
        if said is not None and said["pid"] != os.getpid() and _is_casarray(said["pid"]):
            pids.add(said["pid"])
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return sorted(pids)


def clear_leftovers(home: Path) -> None:
    """Status files of dead processes, the socket, the kernel tables of the clusters."""
    for path in _status_files(home):
        StatusFile(path).remove_if_dead()
    with contextlib.suppress(FileNotFoundError):
        control_socket.socket_path(home).unlink()
    config = LabConfig.load(home)
    if config is not None and may_admin_network() and not config.hosts:
        from casarray.directory import Directory, DirectoryError

        with contextlib.suppress(DirectoryError), Directory.open(config.directory) as directory:
            remove_nft_tables(directory)


def reset(home: Path, yes: bool) -> int:
    config = LabConfig.load(home)
    if config is None and not (home / "directory.db").exists():
        print(f"There is no lab in {home}.")
        return 0
    if not yes:
        if not sys.stdin.isatty():
            raise LabError("`casarray lab reset` deletes the organization: add --yes to confirm.")
        answer = input(f"Delete the lab organization in {home} (every mailbox too)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return 1
    down(home, quiet=True)
    for name in LAB_ENTRIES:
        path = home / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    note = ""
    if config is not None and not config.directory.startswith("sqlite:") and not config.postgres:
        note = f" The directory at {config.directory} is left as it is."
    print(f"The lab in {home} is deleted; `casarray lab up` makes it anew.{note}")
    return 0


# -- logs -----------------------------------------------------------------------------------


def logs(home: Path, name: str | None, follow: bool, lines: int) -> int:
    folder = home / "logs"
    wanted = (name or LAB_LOG).lower()
    found = [p for p in folder.glob("*.log")] if folder.is_dir() else []
    path = next((p for p in found if p.stem.lower() == wanted), None)
    if path is None:
        known = ", ".join(sorted(p.stem for p in found)) or "none yet"
        raise LabError(f"The lab has no log named '{name}' (its logs: {known}).")
    for line in tail(path, lines):
        print(line)
    if not follow:
        return 0
    with path.open("rb") as file:
        file.seek(0, os.SEEK_END)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                chunk = file.read()
                if chunk:
                    sys.stdout.write(chunk.decode("utf-8", "replace"))
                    sys.stdout.flush()
                else:
                    time.sleep(0.2)
    return 0


# -- add-server -----------------------------------------------------------------------------


def add_server(home: Path, name: str, site: str, roles: str, ip_address: str | None) -> int:
    from casarray.directory import Directory
    from casarray.lab.topology import next_address

    config = _load(home)
    with Directory.open(config.directory) as directory:
        address = ip_address or next_address(directory, site)
        server = directory.servers.new(name, roles, address, site=site)
        array = directory.arrays.for_site(server.site)
    print(
        f"Installed {server.name} ({server.fqdn}, {server.ip_address}) in site {server.site} "
        f"with the roles {server.roles}."
    )
    if array is not None and server.is_client_access_server:
        print(f"It is a member of the client access array {array.name} ({array.fqdn}).")
    if read_state(home) is None:
        print("The lab isn't running: its process starts with `casarray lab up`.")
        return 0
    names = []
    if server.is_client_access_server:
        names.append(server.name)
    if server.is_mailbox_server:
        names.append(f"{server.name}-store" if server.is_client_access_server else server.name)
    if server.is_hub_transport_server:
        names.append(f"{server.name}-transport")
    return _wait_running(home, names)


def _wait_running(home: Path, names: list[str], timeout: float = READY_TIMEOUT) -> int:
    deadline = time.monotonic() + timeout
    wanted = {name.lower() for name in names}
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        state = read_state(home) or {}
        states = {
            str(p["name"]).lower(): str(p["state"])
            for p in state.get("processes", ())
            if str(p.get("name", "")).lower() in wanted
        }
        if len(states) == len(wanted) and all(s == "Running" for s in states.values()):
            print(f"The lab runs {', '.join(names)}.")
            return 0
        time.sleep(0.1)
    shown = ", ".join(f"{name}: {states.get(name.lower(), 'not started')}" for name in names)
    raise LabError(f"The lab didn't bring up {', '.join(names)} in {timeout:.0f} s ({shown}).")
