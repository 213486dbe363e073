"""DNS benchmark: casarray's DNS server against NSD, on the same zone, in one run.

The script builds an organization in a temporary directory (sites BJ and SH, five
servers, the BJ array behind an NLB cluster, a CNAME added by cmdlet), exports its
zone lab.net (Export-DnsServerZone's code) and serves it twice on the same free high
port: `casarray dns run` (uvloop, `--processes N`) on 127.77.55.1, and NSD (Debian's
/usr/sbin/nsd, started by the script, `server-count` N, RRL off, its defaults
otherwise) on 127.77.55.2. Before measuring it asks both every query of the mix and
stops when their rcodes or answers differ.

dnsperf (Debian's, `dnsperf -s IP -p PORT -d FILE -l SECONDS -c CLIENTS -q
OUTSTANDING`, UDP, EDNS off) then measures each server in turn, ROUNDS times
alternately after a one-second warm-up each, with two query files (the server not
measured is idle):

- mix: A of servers, the array and the public names (hits), a CNAME chased to the
  array's A, MX, SRV and NS (with additional addresses), SOA, AAAA NODATA and a few
  NXDOMAIN names: what clients of the lab ask;
- new names: 100,000 different names that don't exist (NXDOMAIN): a cache of
  prepared answers doesn't help, every query is worked out.

It prints queries/s (the median of the rounds), average latency and its standard
deviation, lost queries, the CPU time the server used per 1,000 queries, and the ratio
casarray/NSD against the goal of issue 7 (the mix at >= 0.5x NSD's queries/s). The
exit status is 0 whether the goal is met or not; 1 on an error, 2 when dnsperf or nsd
is missing. When the machine has more CPUs than the server's processes, each server
runs on the last N CPUs and dnsperf on the others (sched_setaffinity), so that the
two don't take each other's CPU; `--no-pin` lets them share all. What goes where is
printed. The CPU time per query is the steadier figure on a busy machine.

    .venv/bin/python bench/dns.py                               # about 1.5 minutes
    .venv/bin/python bench/dns.py --seconds 3 --rounds 1        # quick
    .venv/bin/python bench/dns.py --processes 2                 # 2 processes each

Options: `--seconds S` (10) per measurement, `--rounds N` (3), `--clients N` (8,
dnsperf's -c), `--outstanding N` (200, dnsperf's -q), `--processes N` (1: casarray's
--processes and NSD's server-count), `--no-pin`, `--keep DIR` (work in DIR and keep it: the
directory, the zone file, nsd.conf, both servers' logs, the query files and dnsperf's
output). Every process started here is stopped on exit (also on Ctrl-C).
"""

from __future__ import annotations

import os
import sys

import benchlib  # before the folder leaves the path (see below)

# Run as a script, this file's folder is sys.path[0], and bench/http.py would shadow
# the standard library's `http`, bench/dns.py dnspython's `dns`.
if sys.path and os.path.realpath(sys.path[0] or os.curdir) == os.path.dirname(
    os.path.realpath(__file__)
):
    del sys.path[0]

import argparse
import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CASARRAY_ADDRESS = "127.77.55.1"
NSD_ADDRESS = "127.77.55.2"
DNSPERF = shutil.which("dnsperf") or "dnsperf"
NSD = shutil.which("nsd") or shutil.which("nsd", path="/usr/sbin:/sbin") or "nsd"
GOAL = 0.5
START_TIMEOUT = 30.0
NEW_NAMES = 100_000

MIX = [
    ("cas01.lab.net", "A"),
    ("cas02.lab.net", "A"),
    ("CAS03.lab.net", "A"),
    ("mbx01.lab.net", "A"),
    ("bj-cas.lab.net", "A"),
    ("autodiscover.lab.net", "A"),
    ("mail.lab.net", "A"),
    ("owa.lab.net", "A"),  # CNAME to bj-cas
    ("lab.net", "MX"),
    ("lab.net", "SOA"),
    ("lab.net", "NS"),
    ("_autodiscover._tcp.lab.net", "SRV"),
    ("_imaps._tcp.lab.net", "SRV"),
    ("cas01.lab.net", "AAAA"),  # NODATA
    ("nothere.lab.net", "A"),  # NXDOMAIN
    ("www.lab.net", "A"),
    ("owa2.lab.net", "A"),
    ("a.b.lab.net", "A"),
]


# -- processes ----------------------------------------------------------------------------


spawn = benchlib.spawn
stop_process = benchlib.stop_process


def cpu_seconds(pid: int) -> float:
    """User and system CPU of `pid` and its descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in benchlib.process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def free_port() -> int:
    """A port free over UDP and TCP on both addresses."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((CASARRAY_ADDRESS, 0))
            port = int(probe.getsockname()[1])
        try:
            for address in (CASARRAY_ADDRESS, NSD_ADDRESS):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as other:
                        other.bind((address, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on both addresses")


# -- the organization and its zone --------------------------------------------------------


def build_directory(base: Path) -> tuple[str, Path]:
    """The directory (its URL) and lab.net exported from it."""
    from casarray.directory import Directory
    from casarray.dns.export import export_zone

    url = f"sqlite:///{base / 'directory.db'}"
    zone_file = base / "lab.net.zone"
    with Directory.open(url) as d:
        d.sites.new("BJ", ["127.77.1.0/24"])
        d.sites.new("SH", ["127.77.2.0/24"])
        d.servers.new("CAS01", "ClientAccess", "127.77.1.11")
        d.servers.new("CAS02", "ClientAccess", "127.77.1.12")
        d.servers.new("MBX01", "Mailbox", "127.77.1.21")
        d.servers.new("CAS03", "ClientAccess", "127.77.2.11")
        d.servers.new("MBX02", "Mailbox", "127.77.2.21")
        d.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
        d.nlb.new_cluster("bj-cas.lab.net", "127.77.1.10", array="BJ CAS Array")
        d.dns.add_record("lab.net", "owa", "CNAME", "bj-cas.lab.net.")
        zone_file.unlink(missing_ok=True)
        export_zone(d, "lab.net", str(zone_file))
    return url, zone_file


# -- the servers ----------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    address: str
    port: int
    proc: subprocess.Popen[bytes]
    note: str = ""


def ask(address: str, port: int, name: str, rdtype: str) -> tuple[int, list[str]]:
    """(rcode, answer records) of one query."""
    import dns.message
    import dns.query

    answer = dns.query.udp(dns.message.make_query(name, rdtype), address, port=port, timeout=1)
    return answer.rcode(), sorted(
        line.lower() for rrset in answer.answer for line in rrset.to_text().splitlines()
    )


def wait_answering(server: Server) -> None:
    import dns.exception

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.label} exited with status {server.proc.returncode}")
        with contextlib.suppress(dns.exception.Timeout, OSError):
            if ask(server.address, server.port, "lab.net", "SOA")[1]:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{server.label} didn't answer in {START_TIMEOUT:.0f} s")


def start_casarray(
    base: Path, url: str, port: int, processes: int, cpus: set[int] | None
) -> Server:
    home = base / "home"
    env = {**os.environ, "CASARRAY_HOME": str(home), "CASARRAY_DIRECTORY": url}
    argv = [sys.executable, "-m", "casarray", "dns", "run", "--address", CASARRAY_ADDRESS]
    argv += ["--port", str(port), "--processes", str(processes), "--log-level", "WARNING"]
    proc = spawn(argv, base / "casarray.log", cpus, env=env)
    server = Server("casarray", CASARRAY_ADDRESS, port, proc)
    wait_answering(server)
    status = json.loads((home / "run" / "dns.json").read_text())
    server.note = f"`casarray dns run --processes {processes}` (uvloop), pids {status['processes']}"
    return server


def start_nsd(
    base: Path, zone_file: Path, port: int, processes: int, cpus: set[int] | None
) -> Server:
    version = subprocess.run([NSD, "-v"], capture_output=True, text=True, check=False)
    text = version.stdout + version.stderr
    rrl = "  rrl-ratelimit: 0\n" if "--enable-ratelimit" in text else ""
    config = base / "nsd.conf"
    config.write_text(
        "server:\n"
        f"  ip-address: {NSD_ADDRESS}@{port}\n"
        f"  server-count: {processes}\n"
        f'  zonesdir: "{base}"\n'
        f'  pidfile: "{base}/nsd.pid"\n'
        f'  xfrdfile: "{base}/xfrd.state"\n'
        f'  zonelistfile: "{base}/zone.list"\n'
        '  database: ""\n'
        '  username: ""\n'
        "  hide-version: yes\n"
        "  verbosity: 1\n"
        f"{rrl}"
        "remote-control:\n"
        "  control-enable: no\n"
        "zone:\n"
        "  name: lab.net\n"
        f"  zonefile: {zone_file}\n"
    )
    proc = spawn([NSD, "-d", "-c", str(config)], base / "nsd.log", cpus)
    server = Server("NSD", NSD_ADDRESS, port, proc)
    wait_answering(server)
    found = re.search(r"NSD version ([\d.]+)", text)
    server.note = (
        f"NSD {found.group(1) if found else '?'}, server-count {processes}, "
        f"RRL {'off' if rrl else 'not built in'}"
    )
    return server


def check_same_answers(servers: list[Server]) -> None:
    """Every query of the mix gets the same rcode and answer from both."""
    for name, rdtype in MIX:
        answers = {s.label: ask(s.address, s.port, name, rdtype) for s in servers}
        if len({json.dumps(a) for a in answers.values()}) != 1:
            raise RuntimeError(f"{name} {rdtype}: the servers differ: {answers}")


# -- dnsperf --------------------------------------------------------------------------------


@dataclass
class Figures:
    qps: float
    latency_ms: float
    stddev_ms: float
    sent: int
    lost: int
    cpu: float  # CPU seconds the server used
    rcodes: str = ""
    output: str = field(default="", repr=False)

    @property
    def cpu_per_1000(self) -> float:
        completed = self.sent - self.lost
        return self.cpu / completed * 1000 if completed else float("nan")


def parse_dnsperf(output: str) -> tuple[float, float, float, int, int, str]:
    def number(pattern: str) -> float:
        found = re.search(pattern, output, re.M)
        if found is None:
            raise RuntimeError(f"dnsperf printed no {pattern!r}:\n{output}")
        return float(found.group(1))

    qps = number(r"Queries per second:\s*([\d.]+)")
    latency = number(r"Average Latency \(s\):\s*([\d.]+)") * 1000
    stddev = number(r"Latency StdDev \(s\):\s*([\d.]+)") * 1000
    sent = int(number(r"Queries sent:\s*(\d+)"))
    lost = int(number(r"Queries lost:\s*(\d+)"))
    found = re.search(r"Response codes:\s*(.*)$", output, re.M)
    return qps, latency, stddev, sent, lost, found.group(1).strip() if found else ""


def run_dnsperf(
    server: Server,
    queries: Path,
    seconds: float,
    clients: int,
    outstanding: int,
    cpus: set[int] | None,
) -> Figures:
    argv = [DNSPERF, "-s", server.address, "-p", str(server.port), "-d", str(queries)]
    argv += ["-l", f"{seconds:g}", "-c", str(clients), "-q", str(outstanding)]
    before = cpu_seconds(server.proc.pid)
    result = subprocess.run(
        argv, capture_output=True, text=True, check=False, preexec_fn=benchlib.pinned(cpus)
    )
    used = cpu_seconds(server.proc.pid) - before
    if result.returncode != 0:
        raise RuntimeError(f"dnsperf failed ({result.returncode}):\n{result.stderr}")
    qps, latency, stddev, sent, lost, rcodes = parse_dnsperf(result.stdout)
    return Figures(qps, latency, stddev, sent, lost, used, rcodes, result.stdout)


def median(runs: list[Figures]) -> Figures:
    """The run with the median queries/s (the lower one of an even count)."""
    return sorted(runs, key=lambda f: f.qps)[(len(runs) - 1) // 2]


# -- main -------------------------------------------------------------------------------------


def split_cpus(
    available: list[int], processes: int, pin: bool
) -> tuple[set[int] | None, set[int] | None]:
    """(dnsperf's CPUs, the server's): the server the last `processes` CPUs, dnsperf
    the others; (None, None) when there are too few CPUs or pinning is off."""
    if not pin or len(available) < processes + 1:
        return None, None
    return set(available[:-processes]), set(available[-processes:])


def write_queries(base: Path) -> dict[str, Path]:
    mix = base / "queries-mix.txt"
    mix.write_text("".join(f"{name} {rdtype}\n" for name, rdtype in MIX))
    new = base / "queries-new-names.txt"
    new.write_text("".join(f"n{i}.nx.lab.net A\n" for i in range(NEW_NAMES)))
    return {"mix": mix, "new names": new}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (10)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per server (3)")
    parser.add_argument("--clients", type=int, default=8, help="dnsperf's -c (8)")
    parser.add_argument("--outstanding", type=int, default=200, help="dnsperf's -q (200)")
    parser.add_argument("--processes", type=int, default=1, help="processes per server (1)")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="don't give dnsperf and the server CPUs of their own",
    )
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    args = parser.parse_args()
    if args.seconds < 1 or args.rounds < 1 or args.clients < 1 or args.processes < 1:
        parser.error("--seconds >= 1, --rounds >= 1, --clients >= 1, --processes >= 1")
    for tool, package in ((DNSPERF, "dnsperf"), (NSD, "nsd")):
        if not os.path.isabs(tool):
            print(f"{tool} is missing (Debian package {package})", file=sys.stderr)
            return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, benchlib.on_signal)

    available = sorted(os.sched_getaffinity(0))
    client_cpus, server_cpus = split_cpus(available, args.processes, args.pin)
    if server_cpus is None:
        placement = f"{len(available)} CPUs shared by dnsperf, the server measured and this script"
    else:
        placement = (
            f"dnsperf on CPU {', '.join(map(str, sorted(client_cpus or [])))}, each server "
            f"on CPU {', '.join(map(str, sorted(server_cpus)))} (of {len(available)})"
        )
    print(
        f"{placement}; dnsperf -c {args.clients} -q {args.outstanding}, {args.seconds:g} s "
        f"per measurement, {args.rounds} rounds, median shown"
    )
    results: dict[str, dict[str, Figures]] = {}
    with (
        benchlib.temporary(args.keep, "casarray-dns-bench-") as base,
        contextlib.ExitStack() as cleanup,
    ):
        url, zone_file = build_directory(base)
        files = write_queries(base)
        port = free_port()
        servers = []
        for start in (
            lambda: start_nsd(base, zone_file, port, args.processes, server_cpus),
            lambda: start_casarray(base, url, port, args.processes, server_cpus),
        ):
            server = start()
            cleanup.callback(stop_process, server.proc)
            servers.append(server)
            print(f"{server.label:8} {server.address}:{port}  {server.note}")
        check_same_answers(servers)
        print(f"the {len(MIX)} queries of the mix get the same rcode and answer from both\n")
        dnsperf_log = (base / "dnsperf.log").open("a")
        cleanup.callback(dnsperf_log.close)
        for what, queries in files.items():
            runs: dict[str, list[Figures]] = {s.label: [] for s in servers}
            for _ in range(args.rounds):
                for server in servers:
                    measure = (args.clients, args.outstanding, client_cpus)
                    run_dnsperf(server, queries, 1, *measure)  # warm-up
                    figures = run_dnsperf(server, queries, args.seconds, *measure)
                    runs[server.label].append(figures)
                    dnsperf_log.write(f"== {server.label} {what}\n{figures.output}\n")
                    print(
                        f"  {what:10} {server.label:8} {figures.qps:10,.0f} q/s  latency "
                        f"{figures.latency_ms:.3f} ms (sd {figures.stddev_ms:.3f}), "
                        f"{figures.lost} lost, {figures.cpu_per_1000 * 1000:.1f} ms CPU "
                        "per 1,000",
                        flush=True,
                    )
            results[what] = {label: median(figs) for label, figs in runs.items()}
    report(results)
    return 0


def report(results: dict[str, dict[str, Figures]]) -> None:
    print()
    header = (
        f"{'queries':10} {'server':8} {'queries/s':>10} {'latency':>9} {'sd':>7} "
        f"{'lost':>6} {'CPU/1000':>9}  response codes"
    )
    print(header)
    print("-" * len(header))
    for what, by_server in results.items():
        for label, f in by_server.items():
            print(
                f"{what:10} {label:8} {f.qps:10,.0f} {f.latency_ms:7.3f}ms "
                f"{f.stddev_ms:5.3f}ms {f.lost:6} {f.cpu_per_1000 * 1000:7.1f}ms  {f.rcodes}"
            )
    print()
    for what, by_server in results.items():
        ratio = by_server["casarray"].qps / by_server["NSD"].qps
        if what == "mix":
            verdict = "met" if ratio >= GOAL else "MISSED"
            print(f"{what}: casarray/NSD {ratio:.2f}x queries/s (goal >= {GOAL}x: {verdict})")
        else:
            print(f"{what}: casarray/NSD {ratio:.2f}x queries/s (no goal)")


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; every process this script started is stopped", file=sys.stderr)
        raise SystemExit(130) from None
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
