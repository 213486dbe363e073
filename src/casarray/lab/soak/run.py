"""One soak from start to end, as `bench/soak.py` and the suite run it:

1. a lab of its own (`lab up --detach` in the soak's folder; Client Access servers as a
   master and two workers, `$CASARRAY_LAB_CAS_PROCESSES`), the BJ array behind its NLB
   cluster and DB01 pointed at it (on one machine; a lab on several hosts has them
   made by `lab up --hosts` under the soak's own namespace prefix);
2. the load (`load`, a process of its own: inside CLIENT-BJ on several hosts) and the
   shell client (here), then the chaos loop until N faults or M minutes;
3. quiet: every recovery awaited, the load and the cmdlets stopped, every process
   Running, the queues drained (each with a bound);
4. the check (`observe` reads the stores, `checker` compares) and the report, saved
   with the histories and the logs under the soak's folder (`--keep`), and `lab down`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casarray.lab.soak import chaos as chaos_module
from casarray.lab.soak import checker, history, observe, report
from casarray.lab.soak.load import LoadConfig, ShellClient
from casarray.lab.supervisor import CAS_PROCESSES_VARIABLE

ARRAY = "bj-cas.lab.net"
CAS_PROCESSES = "2"
SINGLE_DNS = ("127.77.0.53", 53)
HOSTS_DNS = ("198.18.1.5", 53)
SINGLE_VIP = "127.77.1.10"
CLIENT_HOST = "CLIENT-BJ"


@dataclass
class SoakOptions:
    faults: int = 1000
    minutes: float = 60.0
    hosts: bool = False
    seed: int = 0
    keep: Path | None = None
    gap: tuple[float, float] = (2.0, 4.0)
    pace: float = 0.4
    shell_pace: float = 4.0
    clients: dict[str, int] = field(
        default_factory=lambda: {"imap": 4, "smtp25": 1, "smtp587": 1, "ews": 1, "web": 1}
    )
    quiet_timeout: float = 120.0
    say: Callable[[str], None] = print


class SoakLab:
    """The soak's lab: its folder, its commands, its state (chaos.LabHandle)."""

    def __init__(self, home: Path, hosts: bool, prefix: str = "") -> None:
        self.home = home
        self.hosts = hosts
        self.prefix = prefix
        self.passwords: dict[str, str] = {}
        self.env = {**os.environ, "CASARRAY_HOME": str(home)}
        self.env[CAS_PROCESSES_VARIABLE] = CAS_PROCESSES
        self.env.pop("CASARRAY_DIRECTORY", None)
        if prefix:
            self.env["CASARRAY_LAB_HOSTS_PREFIX"] = prefix

    def casarray(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "casarray", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def lab(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.casarray("lab", *args, "--home", str(self.home), timeout=timeout)

    def shell(self, commands: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = self.env
        if self.hosts:  # the directory on PostgreSQL in DC01, through its socket
            env = {**env, "CASARRAY_DIRECTORY": self.directory_url()}
        return subprocess.run(
            [sys.executable, "-m", "casarray", "shell", "-c", commands],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def up(self) -> str:
        args = ["up", "--detach", "--timeout", "180"]
        if self.hosts:
            args.append("--hosts")
        done = self.lab(*args, timeout=300)
        out = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError(f"lab up failed:\n{out[-4000:]}")
        self.passwords = dict(re.findall(r"^  (\S+@lab\.net)\s+(\S+)$", out, re.M))
        return out

    def down(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self.lab("down", timeout=120)

    def state(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads((self.home / "run" / "lab-supervisor.json").read_text()))
        return {}

    def status(self) -> dict[str, Any]:
        done = self.lab("status", "--json", timeout=60)
        try:
            return dict(json.loads(done.stdout))
        except ValueError:
            return {"healthy": False, "problems": [done.stdout + done.stderr], "processes": []}

    def config(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "lab.json").read_text()))

    def directory_url(self) -> str:
        """The directory as this machine's own namespace reaches it (a lab on several
        hosts: PostgreSQL's Unix socket; its processes use TCP, `hosts_directory`)."""
        return str(self.config()["directory"])

    # -- PostgreSQL, in a lab on several hosts ---------------------------------------

    def _postgres(self) -> Any:
        from casarray.lab.hosts.plan import DC, HostPlan
        from casarray.lab.hosts.postgres import LabPostgres

        plan = HostPlan.build(prefix=self.prefix)
        return LabPostgres(self.home, plan.host(DC).namespace)

    def kill_postgres(self) -> int | None:
        pid_file = self._postgres().data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        return pid

    def _orphans(self) -> list[int]:
        """The server's processes left in DC01 (the postgres user's, in DC01's network
        namespace) once its postmaster is gone: its backends, which hold the shared
        memory, so that a new server refuses to start ("pre-existing shared memory
        block is still in use") until they exit."""
        import pwd

        from casarray.lab.hosts.plan import DC, HostPlan

        namespace = HostPlan.build(prefix=self.prefix).host(DC).namespace
        try:
            wanted = os.stat(f"/run/netns/{namespace}").st_ino
            uid = pwd.getpwnam("postgres").pw_uid
        except (OSError, KeyError):
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid and (entry / "ns" / "net").stat().st_ino == wanted:
                    found.append(int(entry.name))
        return found

    def start_postgres(self) -> None:
        """Start the server again as the lab does (`LabPostgres.start`), once the killed
        postmaster's backends are gone: they are killed as a service manager kills what
        is left of a service whose main process died (systemd's control group)."""
        server = self._postgres()
        deadline = time.monotonic() + 30
        while True:
            if not self.postgres_ok():
                for pid in self._orphans():
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
            try:
                server.start()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def postgres_ok(self) -> bool:
        """Whether the postmaster the pid file names runs (a zombie does not)."""
        try:
            pid_file = self._postgres().data / "postmaster.pid"
            pid = int(pid_file.read_text().split()[0])
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return False
        return state not in ("Z", "X")


def wait(predicate: Callable[[], Any], timeout: float, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def all_running(lab: SoakLab) -> bool:
    processes = lab.state().get("processes", ())
    return bool(processes) and all(p.get("state") == "Running" for p in processes)


def setup_single(lab: SoakLab, say: Callable[[str], None]) -> None:
    """The BJ array, its NLB cluster, DB01's clients sent to the array."""
    done = lab.shell(
        f'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn {ARRAY} -Site BJ; '
        f"New-NlbCluster -ClusterName {ARRAY} -ClusterPrimaryIP {SINGLE_VIP} "
        '-ClientAccessArray "BJ CAS Array"; '
        f"Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}"
    )
    if done.returncode != 0:
        raise RuntimeError(f"the array: {(done.stdout + done.stderr)[-2000:]}")
    if not wait(lambda: any(p["name"] == ARRAY for p in lab.state().get("processes", ())), 30):
        raise RuntimeError("the cluster's balancer never started")
    if not wait(lambda: all_running(lab), 60):
        raise RuntimeError(f"not all running: {lab.state()}")
    converged = wait(
        lambda: all(n.get("state") == "Converged" for n in lab.status().get("nodes", [])),
        60,
        1.0,
    )
    if not converged:
        raise RuntimeError("the cluster's nodes never converged")
    say("The BJ array is up behind its NLB cluster.")


def setup_hosts(lab: SoakLab, say: Callable[[str], None]) -> None:
    """In a lab on several hosts: NLB on CAS01 and CAS02 (the walkthrough's cluster:
    Multicast, its port rules for 143, 993, 443 and 80, the lab's fast heartbeats),
    the array, DB01 pointed at it."""
    from casarray.lab.walkthrough import HOSTS_ADDRESSES, HOSTS_HEARTBEAT

    rules = "; ".join(
        f"Add-NlbClusterPortRule -HostName CAS01 -StartPort {port} -EndPort {port} "
        "-Protocol Tcp -Affinity None"
        for port in (143, 993, 443, 80)
    )
    done = lab.shell(
        "Install-WindowsFeature NLB -ComputerName CAS01; "
        "Install-WindowsFeature NLB -ComputerName CAS02; "
        f'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName {ARRAY} '
        f"-ClusterPrimaryIP {HOSTS_ADDRESSES['cluster_ip']} -SubnetMask 255.255.255.0 "
        "-OperationMode Multicast; "
        f"Set-NlbCluster -HostName CAS01 -HeartbeatPeriod {HOSTS_HEARTBEAT}; "
        "Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet; "
        f"Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force; {rules}; "
        f'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn {ARRAY} -Site BJ; '
        f"Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer {ARRAY}",
        timeout=180,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the array: {(done.stdout + done.stderr)[-2000:]}")
    if not wait(
        lambda: any(p["name"] == "CAS02-nlb" for p in lab.state().get("processes", ())), 60
    ):
        raise RuntimeError("the hosts' NLB drivers never started")
    if not wait(lambda: all_running(lab), 120):
        raise RuntimeError(f"not all running: {lab.state()}")
    say("The BJ array is up behind NLB on its hosts.")


def users_of(lab: SoakLab) -> tuple[dict[str, str], dict[str, str]]:
    """(address -> password, address -> the name its IMAP client connects to)."""
    names = {}
    for user in lab.passwords:
        names[user] = "CAS03.lab.net" if user.startswith("carol@") else ARRAY
    return lab.passwords, names


def queues_empty(lab: SoakLab) -> bool:
    observed = checker.Observed()
    try:
        if lab.hosts:
            return True  # read with the rest, from inside DC01
        observe.read_queues(lab.home, observed)
    except Exception:
        return False
    return not observed.queued


def observe_lab(
    lab: SoakLab, users: list[str], settings: list[str], folder: Path
) -> checker.Observed:
    if not lab.hosts:
        return observe.observe(lab.directory_url(), lab.home, users, settings)
    from casarray.lab.hosts.postgres import tcp_url

    out = folder / "observed.json"
    done = lab.lab(
        "exec", "DC01", "--", sys.executable, "-m", "casarray.lab.soak.observe",
        "--directory", tcp_url(), "--home", str(lab.home), "--users", ",".join(users),
        "--settings", ",".join(settings), str(out), timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"observe in DC01: {done.stdout}{done.stderr}")
    return observe.from_json(json.loads(out.read_text()))


def run_soak(options: SoakOptions) -> report.SoakReport:
    say = options.say
    made_folder = options.keep is None
    folder = Path(tempfile.mkdtemp(prefix="soak-")) if options.keep is None else options.keep
    folder.mkdir(parents=True, exist_ok=True)
    histories = folder / "history"
    histories.mkdir(exist_ok=True)
    prefix = ""
    if options.hosts:
        import secrets

        prefix = os.environ.get("CASARRAY_LAB_HOSTS_PREFIX") or f"sk{secrets.token_hex(2)}-"
    lab = SoakLab(folder / "lab", options.hosts, prefix)
    load_process: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    started = time.monotonic()
    try:
        where = f"hosts {prefix}" if options.hosts else "one machine"
        say(f"Starting the lab in {lab.home} ({where})")
        lab.up()
        (setup_hosts if options.hosts else setup_single)(lab, say)
        passwords, imap_names = users_of(lab)
        users = sorted(passwords)
        bj_users = [u for u in users if not u.startswith("carol@")]
        config = LoadConfig(
            run=f"s{options.seed}",
            folder=str(histories),
            dns=HOSTS_DNS if options.hosts else SINGLE_DNS,
            array=ARRAY,
            domain="lab.net",
            users=passwords,
            imap_names=imap_names,
            port_offset=int(lab.config().get("port_offset", 0)),
            clients=options.clients,
            stop_file=str(folder / "stop"),
            seconds=options.minutes * 60 + options.quiet_timeout + 600,
            seed=options.seed,
            pace=options.pace,
            web_users=bj_users[:1],
            ews_users=bj_users[-1:],
        )
        config.save(folder / "load.json")
        command = [sys.executable, "-m", "casarray.lab.soak.load", str(folder / "load.json")]
        if options.hosts:
            from casarray.lab.hosts.plan import HostPlan

            namespace = HostPlan.build(prefix=prefix).host(CLIENT_HOST).namespace
            command = ["ip", "netns", "exec", namespace, *command]
        with (folder / "load.log").open("ab") as log:
            load_process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        chaos_history = history.History(histories / "chaos.jsonl")
        shell_history = history.History(histories / "shell.jsonl")
        shell = ShellClient(
            lambda text, timeout: lab.shell(text, timeout),
            shell_history,
            stop,
            seed=options.seed,
            pace=options.shell_pace,
            affinity="None" if options.hosts else "Single",
        )
        shell.start()
        time.sleep(3)  # the clients log in first
        kinds = chaos_module.HOSTS_KINDS if options.hosts else chaos_module.SINGLE_KINDS
        injector = chaos_module.Chaos(
            lab, chaos_history, seed=options.seed, kinds=kinds, gap=options.gap
        )
        say(f"Load running; chaos: {options.faults} faults within {options.minutes:g} min")
        chaos_started = time.monotonic()
        injected = injector.run(options.faults, chaos_started + options.minutes * 60, stop)
        say(f"{injected} faults in {time.monotonic() - chaos_started:.0f} s; waiting for quiet")
        injector.settle(chaos_module.RECOVERY_TIMEOUT)
        wait(lambda: all_running(lab), options.quiet_timeout)
        time.sleep(2)  # the load goes on a moment against a whole lab
        (folder / "stop").touch()
        stop.set()
        with contextlib.suppress(subprocess.TimeoutExpired):
            load_process.wait(60)
        if load_process.poll() is None:
            load_process.kill()
            load_process.wait(10)
        shell.join(90)
        late = []
        if options.hosts and not lab.postgres_ok():
            late.append("PostgreSQL in DC01 isn't running at the end (started again to check)")
            lab.start_postgres()
        drained = wait(lambda: queues_empty(lab), options.quiet_timeout, 1.0)
        status = lab.status()
        problems = [
            f"{p['name']} is {p['state']}"
            for p in status.get("processes", ())
            if p.get("state") != "Running"
        ]
        problems += [str(p) for p in status.get("problems", ()) if str(p) not in problems]
        problems += late
        if not drained:
            say("The queues didn't drain in time.")
        observed = observe_lab(lab, users, sorted(shell.settings), folder)
        observed.process_problems = problems
        records = history.read(history.files(histories))
        findings = checker.check(records, observed)
        soak = report.build(
            records,
            findings,
            seconds=time.monotonic() - started,
            mode="lab on several hosts (PostgreSQL)"
            if options.hosts
            else "single machine (SQLite)",
            seed=options.seed,
        )
        (folder / "report.txt").write_text(soak.to_text() + "\n")
        (folder / "report.json").write_text(json.dumps(soak.to_json(), indent=2))
        return soak
    finally:
        stop.set()
        if load_process is not None and load_process.poll() is None:
            load_process.kill()
        for name in ("lab-supervisor.json",):
            with contextlib.suppress(OSError):
                shutil.copy(lab.home / "run" / name, folder / name)
        lab.down()
        if options.hosts:
            with contextlib.suppress(Exception):
                from casarray.lab.actions import remove_hosts

                remove_hosts(lab.home)
        if made_folder:
            shutil.rmtree(folder, ignore_errors=True)
