"""NLB on the hosts for real: three host namespaces and a client namespace on a Linux
bridge (198.19.200.0/24, nothing routed out), each host running a small TCP server on
the cluster IP and its driver (`python -m casarray.balancer.nlb_host`). Needs root,
`ip` and `nft`; skipped otherwise."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from casarray.balancer.model import Affinity, PortRule, RuleProtocol
from casarray.balancer.nlb_host.config import NlbHostConfig, OperationMode
from casarray.balancer.nlb_host.macs import (
    cluster_mac,
    igmp_group,
    masked_mac,
    multicast_mac,
    unicast_mac,
)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces, nft)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="needs ip (iproute2)"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (nftables)"),
]

CLUSTER_IP = "198.19.200.100"
PORT = 8443
PERIOD = 0.2
TOLERANCE = 3
CONVERGENCE = PERIOD * (TOLERANCE + 2) + 0.5  # generous: silence + heartbeats + nft

# The server: answers each connection with its host name, then echoes what it reads
# (a client keeps a connection open to check that it survives).
SERVER = """
import socket, sys, threading
name = sys.argv[2].encode()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[3]))); s.listen(512)
def serve(c):
    try:
        c.sendall(name + b"\\n")
        while data := c.recv(1024):
            c.sendall(data)
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# The client: opens N connections (or holds one open) from inside the client namespace.
CLIENT = """
import collections, json, socket, sys, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
until = time.time() + float(sys.argv[4]) if len(sys.argv) > 4 else None
counts, events, i = collections.Counter(), [], 0
while (i < n) if until is None else (time.time() < until):
    i += 1
    s = socket.socket(); s.settimeout(8)  # SYN retries at 1, 3, 7 s outlast a slow convergence
    try:
        s.connect((ip, port))
        outcome = s.makefile("rb").readline().decode().strip() or "empty"
    except ConnectionResetError:
        outcome = "reset"
    except ConnectionRefusedError:
        outcome = "refused"
    except OSError:
        outcome = "timeout"
    finally:
        s.close()
    counts[outcome] += 1
    events.append((time.time(), outcome))
print(json.dumps(counts if until is None else {"counts": counts, "events": events}))
"""


# One ARP request for the cluster IP from the client; prints every answer's sender MAC.
ARP_PROBE = """
import socket, struct, sys, time
ip = socket.inet_aton(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind(("eth0", 0x0806)); s.settimeout(0.2)
mac = bytes.fromhex(open("/sys/class/net/eth0/address").read().strip().replace(":", ""))
me = socket.inet_aton(sys.argv[2])
body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + me + bytes(6) + ip
s.send(b"\\xff" * 6 + mac + b"\\x08\\x06" + body)
answers, until = [], time.time() + 1.0
while time.time() < until:
    try:
        frame = s.recv(2048)
    except TimeoutError:
        continue
    if frame[20:22] == b"\\x00\\x02" and frame[28:32] == ip:
        answers.append(frame[22:28].hex(":"))
print(" ".join(answers))
"""


def ns_exec(ns: str, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *args], capture_output=True, text=True, check=True, **kwargs
    )  # type: ignore[call-overload, no-any-return]


@dataclass
class Lab:
    suffix: str
    tmp: Path
    bridge_ns: str
    client: str
    hosts: dict[str, str] = field(default_factory=dict)  # CASnn -> namespace
    mode: OperationMode = OperationMode.MULTICAST
    procs: dict[str, list[subprocess.Popen[bytes]]] = field(default_factory=dict)

    def config(self, name: str, index: int) -> NlbHostConfig:
        return NlbHostConfig(
            cluster_ip=CLUSTER_IP,
            cluster_name="nlbtest.lab.net",
            interface="eth0",
            name=name,
            address=f"198.19.200.{10 + index}",
            prefix_length=24,
            host_id=index,
            priority=index,
            rules=(PortRule(PORT, PORT, protocol=RuleProtocol.TCP, affinity=Affinity.NONE),),
            heartbeat_period=PERIOD,
            tolerance=TOLERANCE,
            mode=self.mode,
            status_file=str(self.tmp / f"{name}.status.json"),
        )

    def start_host(self, name: str) -> None:
        ns = self.hosts[name]
        index = int(name[-2:])
        path = self.tmp / f"{name}.json"
        path.write_text(self.config(name, index).to_json())
        log = (self.tmp / f"{name}.log").open("ab")
        server = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, "0.0.0.0", name, str(PORT)]
        )
        driver = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "casarray.balancer.nlb_host",
                str(path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = [server, driver]

    def kill_host(self, name: str) -> None:
        """The host dies: its link goes down and its processes get SIGKILL (in this
        order: a dead server on a live link would refuse its buckets' SYNs)."""
        subprocess.run(
            ["ip", "-n", self.bridge_ns, "link", "set", f"p{name[-1]}", "down"], check=True
        )
        for proc in self.procs.pop(name, []):
            proc.send_signal(signal.SIGKILL)
            proc.wait()

    def revive_host(self, name: str) -> None:
        subprocess.run(
            ["ip", "-n", self.bridge_ns, "link", "set", f"p{name[-1]}", "up"], check=True
        )
        self.start_host(name)

    def status(self, name: str) -> dict[str, object]:
        try:
            return json.loads((self.tmp / f"{name}.status.json").read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return {}

    def set_state(self, name: str, state: str) -> None:
        path = self.tmp / f"{name}.json"
        data = json.loads(path.read_text())
        data["state"] = state
        path.write_text(json.dumps(data))

    def wait_converged(self, names: list[str], members: int, timeout: float = 15) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            statuses = [self.status(n) for n in names]
            if all(
                s.get("state") == "Converged" and len(s.get("members", [])) == members  # type: ignore[arg-type]
                for s in statuses
            ):
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"not converged: {[self.status(n) for n in names]}")

    def connect(self, n: int) -> Counter[str]:
        result = ns_exec(
            self.client, sys.executable, "-c", CLIENT, CLUSTER_IP, str(PORT), str(n), timeout=120
        )
        return Counter(json.loads(result.stdout))

    def hold(self) -> subprocess.Popen[str]:
        """A connection held open: it prints the host's name, then echoes lines."""
        code = (
            "import socket,sys\n"
            f"s=socket.create_connection(({CLUSTER_IP!r},{PORT}),timeout=5)\n"
            "f=s.makefile('rwb')\n"
            "print(f.readline().decode().strip(),flush=True)\n"
            "for line in sys.stdin:\n"
            "    f.write(line.encode()); f.flush()\n"
            "    print(f.readline().decode().strip() or 'closed',flush=True)\n"
        )
        return subprocess.Popen(
            ["ip", "netns", "exec", self.client, sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )


def echo(proc: subprocess.Popen[str], text: str) -> str:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(text + "\n")
    proc.stdin.flush()
    return proc.stdout.readline().strip()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path, OperationMode.MULTICAST)


@pytest.fixture
def unicast_lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path, OperationMode.UNICAST)


@pytest.fixture
def igmp_lab(tmp_path: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path, OperationMode.IGMP_MULTICAST)


def make_lab(tmp_path: Path, mode: OperationMode) -> Iterator[Lab]:
    suffix = secrets.token_hex(3)
    lab = Lab(suffix, tmp_path, f"cnlbA-br{suffix}", f"cnlbA-cl{suffix}", mode=mode)
    created: list[str] = []
    try:
        subprocess.run(["ip", "netns", "add", lab.bridge_ns], check=True)
        created.append(lab.bridge_ns)
        subprocess.run(
            ["ip", "-n", lab.bridge_ns, "link", "add", "br0", "type", "bridge"], check=True
        )
        subprocess.run(["ip", "-n", lab.bridge_ns, "link", "set", "br0", "up"], check=True)
        names = [("client", lab.client, "198.19.200.2")]
        for i in (1, 2, 3):
            name = f"CAS0{i}"
            lab.hosts[name] = f"cnlbA-h{i}{suffix}"
            names.append((name, lab.hosts[name], f"198.19.200.{10 + i}"))
        for name, ns, address in names:
            port = "pc" if name == "client" else f"p{name[-1]}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            created.append(ns)
            subprocess.run(
                [
                    "ip",
                    "link",
                    "add",
                    "eth0",
                    "netns",
                    ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    port,
                    "netns",
                    lab.bridge_ns,
                ],
                check=True,
            )
            subprocess.run(
                ["ip", "-n", lab.bridge_ns, "link", "set", port, "master", "br0", "up"], check=True
            )
            subprocess.run(
                ["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"], check=True
            )
            subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        yield lab
    finally:
        for procs in lab.procs.values():
            for proc in procs:
                with contextlib.suppress(OSError):
                    proc.kill()
                proc.wait()
        for ns in created:
            subprocess.run(["ip", "netns", "del", ns], check=False)


def test_spread_failover_return_and_drain(lab: Lab) -> None:
    names = list(lab.hosts)
    for name in names:
        lab.start_host(name)
    lab.wait_converged(names, 3)
    counts = lab.connect(300)
    assert set(counts) == set(names), counts  # every host serves, no failures
    assert min(counts.values()) > 30
    # the client found the cluster by ARP: one answer, the multicast cluster MAC
    neigh = ns_exec(lab.client, "ip", "neigh", "show", CLUSTER_IP).stdout
    assert multicast_mac(CLUSTER_IP) in neigh, neigh
    answers = ns_exec(lab.client, sys.executable, "-c", ARP_PROBE, CLUSTER_IP, "198.19.200.2")
    assert answers.stdout.split() == [multicast_mac(CLUSTER_IP)], answers.stdout

    # an established connection on a survivor, kept across the convergence
    held = lab.hold()
    assert held.stdout is not None
    owner = held.stdout.readline().strip()
    victim = next(n for n in names if n != owner)
    survivors = [n for n in names if n != victim]
    owned_before = {n: lab.status(n)["owned"] for n in survivors}

    lab.kill_host(victim)
    killed = time.monotonic()
    took = lab.wait_converged(survivors, 2)
    print(f"converged {took:.2f} s after the kill (period {PERIOD}, tolerance {TOLERANCE})")
    assert took < CONVERGENCE + 2
    assert echo(held, "still there") == "still there"
    counts = lab.connect(200)
    assert set(counts) == set(survivors), counts
    for n in survivors:  # survivors kept their buckets and took the victim's
        key = next(iter(owned_before[n]))  # type: ignore[call-overload]
        assert set(owned_before[n][key]) <= set(lab.status(n)["owned"][key])  # type: ignore[index]
    print(f"failover: {time.monotonic() - killed:.2f} s to 200 good connections")

    # the victim returns: it takes its buckets back, for new connections only
    lab.revive_host(victim)
    lab.wait_converged(names, 3)
    assert echo(held, "after return") == "after return"
    counts = lab.connect(300)
    assert set(counts) == set(names), counts

    # drain the held connection's host: it keeps it and takes no new one
    lab.set_state(owner, "Draining")
    deadline = time.monotonic() + 10
    while lab.status(owner).get("state") != "Draining" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(CONVERGENCE)
    counts = lab.connect(200)
    assert owner not in counts and set(counts) <= set(names) and sum(counts.values()) == 200, counts
    assert set(counts) == set(names) - {owner}, counts
    assert echo(held, "draining") == "draining"
    held.terminate()


def test_no_resets_across_convergence(lab: Lab) -> None:
    names = list(lab.hosts)
    for name in names:
        lab.start_host(name)
    lab.wait_converged(names, 3)
    loop = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.client,
            sys.executable,
            "-c",
            CLIENT,
            CLUSTER_IP,
            str(PORT),
            "0",
            "9",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    lab.set_state("CAS02", "Draining")  # buckets move while connections open
    time.sleep(1.5)
    lab.set_state("CAS02", "Started")
    time.sleep(1.5)
    killed = time.time()
    lab.kill_host("CAS03")
    out, _ = loop.communicate(timeout=180)
    result = json.loads(out)
    counts = Counter(result["counts"])
    events = [(t, outcome) for t, outcome in result["events"] if t >= killed]
    streak, recovered = 0, None
    for t, outcome in events:
        streak = streak + 1 if outcome in names else 0
        if streak == 20:
            recovered = t - killed
            break
    print(
        f"connections across convergences: {dict(counts)}; after the kill, 20 good "
        f"connections in a row {recovered:.2f} s later"
        if recovered
        else f"{dict(counts)}"
    )
    assert counts["reset"] == 0, counts
    assert counts["refused"] == 0, counts
    assert counts["timeout"] == 0, counts  # a SYN to the dead host's bucket is retried
    assert counts["empty"] <= 5, counts  # the dead host's own connections end
    assert recovered is not None and recovered < CONVERGENCE + 3
    assert set(counts) == set(names)


def test_unicast_mode_floods_to_every_host_and_fails_over(unicast_lab: Lab) -> None:
    """Unicast: every host's adapter has the cluster MAC 02-BF-..., frames leave from
    02-<HostID>-... so the switch never learns where the cluster MAC is and floods
    frames to it; the client finds the cluster IP by ARP (no static entry)."""
    lab = unicast_lab
    names = list(lab.hosts)
    for name in names:
        lab.start_host(name)
    lab.wait_converged(names, 3)
    counts = lab.connect(300)
    assert set(counts) == set(names), counts
    neigh = ns_exec(lab.client, "ip", "neigh", "show", CLUSTER_IP).stdout
    assert unicast_mac(CLUSTER_IP) in neigh, neigh
    answers = ns_exec(lab.client, sys.executable, "-c", ARP_PROBE, CLUSTER_IP, "198.19.200.2")
    assert answers.stdout.split() == [unicast_mac(CLUSTER_IP)], answers.stdout  # one, not 3
    fdb = subprocess.run(
        ["bridge", "-n", lab.bridge_ns, "fdb", "show", "br", "br0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert unicast_mac(CLUSTER_IP) not in fdb  # never learned: flooded
    assert masked_mac(CLUSTER_IP, 1) in fdb  # what the switch saw instead
    lab.kill_host(names[0])
    lab.wait_converged(names[1:], 2)
    counts = lab.connect(200)
    assert set(counts) == set(names[1:]), counts


QUICK_CONNECT = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.5).close()
    print("connected")
except OSError:
    print("timeout")
"""


def set_rule_mode(lab: Lab, names: list[str], mode: str) -> None:
    for name in names:
        path = lab.tmp / f"{name}.json"
        data = json.loads(path.read_text())
        data["rules"][0]["mode"] = mode
        path.write_text(json.dumps(data))
    time.sleep(CONVERGENCE)
    lab.wait_converged(names, 3)


def test_dead_driver_takes_nothing_and_config_changes_are_taken_live(lab: Lab) -> None:
    """A driver killed with SIGKILL while its host and service live on: its filter's
    dead man's switch stops new connections there before the others take its buckets
    (without it the host would keep answering SYNs of buckets it no longer owns). And
    a changed weight or port rule is taken by the running drivers: same pids, the
    hosts converge, a held connection survives."""
    names = list(lab.hosts)
    for name in names:
        lab.start_host(name)
    lab.wait_converged(names, 3)
    pids = {n: lab.status(n)["pid"] for n in names}

    held = lab.hold()
    assert held.stdout is not None
    owner = held.stdout.readline().strip()

    # a weight of 0 on the held connection's host, in every host's file
    for name in names:
        path = lab.tmp / f"{name}.json"
        data = json.loads(path.read_text())
        data["rules"][0]["weights"] = {owner: 0}
        path.write_text(json.dumps(data))
    time.sleep(CONVERGENCE)
    lab.wait_converged(names, 3)
    assert {n: lab.status(n)["pid"] for n in names} == pids  # no driver restarted
    assert lab.status(owner)["owned"] == {f"{PORT}-{PORT}/Tcp": []}, lab.status(owner)
    counts = lab.connect(150)
    assert set(counts) == set(names) - {owner}, counts
    assert echo(held, "kept") == "kept"

    # a new port rule set (affinity Single instead of None) on every host
    for name in names:
        path = lab.tmp / f"{name}.json"
        data = json.loads(path.read_text())
        data["rules"][0]["weights"] = {}
        data["rules"][0]["affinity"] = "Single"
        path.write_text(json.dumps(data))
    time.sleep(CONVERGENCE)
    lab.wait_converged(names, 3)
    assert {n: lab.status(n)["pid"] for n in names} == pids
    counts = lab.connect(60)
    assert len(counts) == 1 and set(counts) <= set(names), counts  # one client, one host
    assert echo(held, "kept again") == "kept again"

    # the rule Disabled (Disable-NlbClusterPortRule -Drain): no new connection, the
    # established one kept; Enable takes new ones again
    set_rule_mode(lab, names, "Disabled")
    assert echo(held, "disabled") == "disabled"
    probe = ns_exec(lab.client, sys.executable, "-c", QUICK_CONNECT, CLUSTER_IP, str(PORT))
    assert probe.stdout.strip() == "timeout", probe.stdout
    set_rule_mode(lab, names, "Multiple")
    assert echo(held, "enabled") == "enabled"
    held.terminate()
    counts = lab.connect(60)
    assert len(counts) == 1 and set(counts) <= set(names), counts

    # the driver of the client's host dies; its server and link stay
    victim = next(iter(counts))
    driver = lab.procs[victim][1]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    survivors = [n for n in names if n != victim]
    lab.wait_converged(survivors, 2)
    time.sleep(PERIOD * 2)
    counts = lab.connect(60)
    assert set(counts) <= set(survivors) and sum(counts.values()) == 60, counts


def test_igmp_multicast_mode_joins_the_group_and_spreads(igmp_lab: Lab) -> None:
    """IgmpMulticast: the cluster MAC is 01-00-5E-7F-y-z, every host joins IGMP group
    239.255.y.z on the cluster interface (what an IGMP-snooping switch forwards by;
    this bridge floods), and the client learns the MAC by ARP."""
    lab = igmp_lab
    names = list(lab.hosts)
    for name in names:
        lab.start_host(name)
    lab.wait_converged(names, 3)
    for ns in lab.hosts.values():
        groups = ns_exec(ns, "ip", "maddr", "show", "dev", "eth0").stdout
        assert igmp_group(CLUSTER_IP) in groups and "01:00:5e:7f:c8:64" in groups, groups
    counts = lab.connect(150)
    assert set(counts) == set(names), counts
    neigh = ns_exec(lab.client, "ip", "neigh", "show", CLUSTER_IP).stdout
    assert cluster_mac(CLUSTER_IP, OperationMode.IGMP_MULTICAST) in neigh, neigh
