"""NLB on the hosts of a whole hosts lab (as root): `casarray lab up` of a lab made on
several hosts under a test prefix, with bj-cas.lab.net on CAS01 and CAS02 (Hosts data
plane, multicast, heartbeats every 200 ms). From CLIENT-BJ, bj-cas.lab.net resolves
through the lab DNS (dig, curl) to the cluster IP, exchangelib reads alice's inbox
through EWS at that name, and IMAP connections to it spread over both
hosts; after `kill-host CAS01` new connections land on CAS02 within a few seconds, an
IDLE session on CAS02 is told of a message appended meanwhile, and after `start-host
CAS01` both serve again; `partition CAS02` (its link only) sends new connections to
CAS01 alone until `heal`.

The lab's addresses are the real ones (198.18.x): every host is a namespace of the
test's own prefix, so they collide with no other lab or test; only the prefix must be
unique (`conftest.fresh_prefix`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from casarray.directory import Directory
from casarray.lab.config import LabConfig
from casarray.lab.hosts.network import HostNetwork, missing, namespaces
from casarray.lab.hosts.plan import HostPlan
from casarray.lab.topology import build_seed_organization
from tests.lab import required, tool
from tests.lab.hosts.conftest import fresh_prefix

TEST_TIMEOUT = 180  # a guard against a hang: 60 s is short for a whole lab on busy cores
CLUSTER, CLUSTER_IP = "bj-cas.lab.net", "198.18.1.10"
PERIOD_MS = 200

# Run inside CLIENT-BJ: resolve the name through the lab DNS, then open IMAP connections
# to it for N connections (or until K good ones in a row, or a deadline), and print
# which server greeted each (its FQDN is in the greeting) and when.
CLIENT = """
import imaplib, json, sys, time
import dns.resolver
name, n, streak_wanted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = float(sys.argv[4])
resolver = dns.resolver.Resolver(configure=False)
resolver.nameservers = ["198.18.1.5"]
address = resolver.resolve(name, "A")[0].to_text()
outcomes, streak, started = [], 0, time.monotonic()
while len(outcomes) < n and time.monotonic() - started < deadline:
    try:
        imap = imaplib.IMAP4(address, 143, timeout=0.5)
        outcome = imap.welcome.decode().split("] ", 1)[1].split()[0]
        imap.logout()
    except Exception as exc:
        outcome = type(exc).__name__
    outcomes.append((round(time.monotonic() - started, 3), outcome))
    streak = streak + 1 if outcome.endswith(".lab.net") else 0
    if streak_wanted and streak >= streak_wanted:
        break
print(json.dumps({"address": address, "outcomes": outcomes}))
"""


def lab(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "casarray", "lab", args[0], "--home", str(home), *args[1:]]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def connect(
    network: HostNetwork, n: int, streak: int = 0, deadline: float = 20
) -> tuple[str, list[tuple[float, str]]]:
    done = network.exec(
        "CLIENT-BJ",
        [sys.executable, "-c", CLIENT, CLUSTER, str(n), str(streak), str(deadline)],
        capture_output=True,
        text=True,
        timeout=deadline + 15,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    return result["address"], [(float(t), str(o)) for t, o in result["outcomes"]]


# Run inside CLIENT-BJ: an IMAP session through the cluster IP that lands on the host
# named (connecting again until it does), logs in, selects INBOX and IDLEs; prints
# "idling on <host>", then each untagged response it is sent, until an EXISTS.
IDLER = """
import socket, ssl, sys, time
address, host, user, password = sys.argv[1:5]
for _ in range(100):
    sock = socket.create_connection((address, 143), timeout=5)
    f = sock.makefile("rwb")
    if host.encode() in f.readline():
        break
    sock.close()
else:
    sys.exit("never landed on " + host)
def command(tag, text):
    f.write(f"{tag} {text}\\r\\n".encode()); f.flush()
    while not (line := f.readline()).startswith(tag.encode()):
        pass
    assert b" OK" in line, line
command("s", "STARTTLS")
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
sock = context.wrap_socket(sock, server_hostname="bj-cas.lab.net")
f = sock.makefile("rwb")
command("a", f'LOGIN "{user}" "{password}"')
command("b", "SELECT INBOX")
f.write(b"c IDLE\\r\\n"); f.flush()
assert f.readline().startswith(b"+")
print("idling on", host, flush=True)
sock.settimeout(60)
while line := f.readline():
    print(line.decode().strip(), flush=True)
    if line.rstrip().endswith(b"EXISTS"):
        break
"""

# Run inside CLIENT-BJ: an IMAP session that lands on the host named, logs in and
# selects INBOX, prints "ready on <host>", then on each line read from stdin runs NOOP
# and a FETCH and prints "OK <messages>" (the session kept while its host drains).
KEPT_SESSION = """
import imaplib, ssl, sys
address, host, user, password = sys.argv[1:5]
for _ in range(100):
    imap = imaplib.IMAP4(address, 143, timeout=5)
    if host.encode() in imap.welcome:
        break
    imap.logout()
else:
    sys.exit("never landed on " + host)
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
imap.starttls(context)
imap.login(user, password)
imap.select("INBOX")
print("ready on", host, flush=True)
for _ in sys.stdin:
    imap.noop()
    status, data = imap.fetch("1:*", "(FLAGS)")
    print(status, len(data), flush=True)
"""

# Run inside CLIENT-BJ: APPEND one message to the user's INBOX through the cluster IP.
APPENDER = """
import imaplib, ssl, sys
imap = imaplib.IMAP4(sys.argv[1], 143, timeout=5)
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
imap.starttls(context)
imap.login(sys.argv[2], sys.argv[3])
print(imap.append("INBOX", None, None, b"Subject: while CAS01 is down\\r\\n\\r\\nhello\\r\\n")[0])
imap.logout()
"""


# Run inside CLIENT-BJ: exchangelib (PyPI) to EWS at the array's name, which the host
# resolves through the lab DNS (Basic over TLS; the lab CA isn't trusted here).
EWS_CLIENT = """
import sys
from exchangelib import DELEGATE, Account, Configuration, Credentials
from exchangelib.protocol import BaseProtocol, NoVerifyHTTPAdapter
BaseProtocol.HTTP_ADAPTER_CLS = NoVerifyHTTPAdapter
address, password = sys.argv[1:3]
config = Configuration(
    service_endpoint="https://bj-cas.lab.net/EWS/Exchange.asmx",
    credentials=Credentials(address, password),
    auth_type="basic",
)
account = Account(address, config=config, autodiscover=False, access_type=DELEGATE)
print(account.inbox.all().count(), account.version.api_version)
"""


def both_serve(network: HostNetwork, within: float = 20) -> None:
    """Rounds of 40 connections from CLIENT-BJ until CAS01 and CAS02 both answer."""
    deadline = time.monotonic() + within
    while True:
        _, outcomes = connect(network, 40)
        counts = Counter(o for _, o in outcomes)
        if set(counts) == {"CAS01.lab.net", "CAS02.lab.net"} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert set(counts) == {"CAS01.lab.net", "CAS02.lab.net"}, counts


def only_cas02(network: HostNetwork, within: float = 15) -> None:
    """Rounds of 40 connections from CLIENT-BJ until CAS02 alone answers."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        _, outcomes = connect(network, 40)
        if {o for _, o in outcomes} == {"CAS02.lab.net"}:
            return
        time.sleep(0.5)
    raise AssertionError(f"CAS01 still takes new connections: {outcomes}")


def driver_pids(home: Path) -> dict[str, int]:
    state = json.loads(lab(home, "status", "--json").stdout)
    return {p["name"]: p["pid"] for p in state["processes"] if p["kind"] == "NlbHost"}


def make_lab(home: Path, prefix: str, plane: str = "Hosts") -> dict[str, str]:
    """The seed organization at the hosts addresses, NLB on CAS01 and CAS02 with the
    walkthrough's port rules, and lab.json naming the test prefix; the users'
    passwords."""
    home.mkdir()
    url = f"sqlite:///{home / 'directory.db'}"
    with Directory.open(url) as directory:
        passwords = build_seed_organization(directory, hosts=True)
        nlb = directory.nlb
        for server in ("CAS01", "CAS02"):
            nlb.install_feature(server, ["NLB"])
        nlb.new_cluster(
            CLUSTER,
            CLUSTER_IP,
            host="CAS01",
            subnet_mask="255.255.255.0",
            operation_mode="Multicast",
            data_plane=plane,
        )
        nlb.add_node(CLUSTER, "CAS02")
        nlb.remove_port_rule(CLUSTER, 0)
        for port in (143, 993, 443, 80):
            nlb.add_port_rule(CLUSTER, port, port, protocol="Tcp", affinity="None")
        nlb.set_cluster(CLUSTER, heartbeat_period=PERIOD_MS)
        # the seed's step: the array, and DB01's clients sent to it (not to CAS01)
        directory.arrays.new(CLUSTER, "BJ", name="BJ CAS Array")
        directory.databases.set_rpc_client_access_server("DB01", CLUSTER)
    LabConfig.decide(home, url, "198.18.1.5", hosts=prefix).save()
    return passwords


def test_cluster_ip_spreads_and_fails_over(tmp_path: Path) -> None:
    required(missing())
    tool("nft", "nftables")
    home, prefix = tmp_path / "lab", fresh_prefix()
    network = HostNetwork(HostPlan.build(prefix=prefix))
    passwords = make_lab(home, prefix)
    user = next(u for u in passwords if u.startswith("alice@"))
    idler: subprocess.Popen[str] | None = None
    try:
        started = time.monotonic()
        done = lab(home, "up", "--detach", "--timeout", "40", timeout=50)
        assert done.returncode == 0, done.stdout + done.stderr
        print(f"lab up in {time.monotonic() - started:.1f} s")
        state = json.loads(lab(home, "status", "--json").stdout)
        kinds = {p["name"]: p["kind"] for p in state["processes"]}
        assert kinds["CAS01-nlb"] == kinds["CAS02-nlb"] == "NlbHost"
        assert CLUSTER not in kinds  # no central balancer
        router = network.exec("ROUTER", ["ip", "neigh"], capture_output=True, text=True)
        assert f"{CLUSTER_IP} dev eth-bj lladdr 03:bf:c6:12:01:0a PERMANENT" in router.stdout

        # a command in a host resolves the lab's names (resolv.conf from /etc/netns)
        done = lab(
            home,
            "exec",
            "CLIENT-BJ",
            "--",
            tool("curl", "curl"),
            "-sk",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{remote_ip}",
            "https://bj-cas.lab.net/owa/healthcheck.htm",
        )
        assert done.stdout == f"200 {CLUSTER_IP}", done.stdout + done.stderr
        # CLIENT-BJ found the cluster MAC by ARP (only the router has a static entry)
        neigh = network.exec(
            "CLIENT-BJ", ["ip", "neigh", "show", CLUSTER_IP], capture_output=True, text=True
        )
        assert "03:bf:c6:12:01:0a" in neigh.stdout and "PERMANENT" not in neigh.stdout, neigh.stdout

        dug = lab(home, "exec", "CLIENT-BJ", "--", tool("dig", "bind9-dnsutils"), "+short", CLUSTER)
        assert dug.stdout.split() == [CLUSTER_IP], dug.stdout + dug.stderr
        ews = network.exec(
            "CLIENT-BJ",
            [sys.executable, "-c", EWS_CLIENT, user, passwords[user]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ews.stdout.split() == ["3", "Exchange2010_SP2"], ews.stdout + ews.stderr[-2000:]

        address, outcomes = connect(network, 60)
        assert address == CLUSTER_IP
        counts = Counter(o for _, o in outcomes)
        assert set(counts) == {"CAS01.lab.net", "CAS02.lab.net"}, counts
        assert min(counts.values()) >= 10, counts

        # an IDLE session on the host that survives
        idler = subprocess.Popen(
            network.exec_argv(
                "CLIENT-BJ",
                [sys.executable, "-c", IDLER, CLUSTER_IP, "CAS02", user, passwords[user]],
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert idler.stdout is not None
        assert idler.stdout.readline().strip() == "idling on CAS02"

        done = lab(home, "kill-host", "CAS01")
        assert done.returncode == 0, done.stderr
        killed = time.monotonic()
        _, outcomes = connect(network, 400, streak=20, deadline=15)
        took = time.monotonic() - killed
        good = [o for _, o in outcomes if o.endswith(".lab.net")]
        print(f"after kill-host CAS01: 20 good connections in a row {took:.2f} s later: {outcomes}")
        assert len(good) >= 20 and set(good[-20:]) == {"CAS02.lab.net"}, outcomes
        assert took < 6

        # the IDLE session on the survivor is told of a message appended meanwhile
        appended = network.exec(
            "CLIENT-BJ",
            [sys.executable, "-c", APPENDER, CLUSTER_IP, user, passwords[user]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert appended.stdout.strip() == "OK", appended.stdout + appended.stderr
        told, _ = idler.communicate(timeout=60)
        assert told.strip().endswith("EXISTS"), told

        done = lab(home, "start-host", "CAS01")
        assert done.returncode == 0, done.stderr
        both_serve(network)

        # a partition (link down only, its processes alive) costs the same as a loss
        done = lab(home, "partition", "CAS02")
        assert done.returncode == 0, done.stderr
        cut = time.monotonic()
        _, outcomes = connect(network, 400, streak=20, deadline=15)
        good = [o for _, o in outcomes if o.endswith(".lab.net")]
        print(f"after partition CAS02: 20 good in a row {time.monotonic() - cut:.2f} s later")
        assert len(good) >= 20 and set(good[-20:]) == {"CAS01.lab.net"}, outcomes
        done = lab(home, "heal", "CAS02")
        assert done.returncode == 0, done.stderr
        both_serve(network)

        # Stop-NlbClusterNode -Drain CAS01: its open IMAP session keeps working, no new
        # session lands there; Start-NlbClusterNode takes it back
        pids = driver_pids(home)
        kept = subprocess.Popen(
            network.exec_argv(
                "CLIENT-BJ",
                [sys.executable, "-c", KEPT_SESSION, CLUSTER_IP, "CAS01", user, passwords[user]],
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert kept.stdin is not None and kept.stdout is not None
        assert kept.stdout.readline().strip() == "ready on CAS01"
        with Directory.open(f"sqlite:///{home / 'directory.db'}") as directory:
            directory.nlb.stop_node("CAS01", drain=True)
        only_cas02(network)
        kept.stdin.write("go\n")
        kept.stdin.flush()
        assert kept.stdout.readline().startswith("OK "), "the drained host's session broke"
        kept.stdin.close()
        kept.wait(timeout=10)
        with Directory.open(f"sqlite:///{home / 'directory.db'}") as directory:
            directory.nlb.start_node("CAS01")
        both_serve(network)

        # a load weight of 0 is taken by the running drivers: no restart, CAS02 alone
        with Directory.open(f"sqlite:///{home / 'directory.db'}") as directory:
            directory.nlb.set_node_weight(CLUSTER, "CAS01", 0, port_number=143)
        only_cas02(network)
        assert driver_pids(home) == pids
    finally:
        if idler is not None and idler.poll() is None:
            idler.kill()
        print(lab(home, "down").stdout)
        network.down()
    assert namespaces(prefix) == []
    assert not list(Path("/etc/netns").glob(f"{prefix}*"))


def test_a_central_kernel_plane_on_the_hosts(tmp_path: Path) -> None:
    """-DataPlane Kernel stays selectable in a hosts lab: the balancer in DC01 holds the
    cluster IP and DNATs it to the members, whose answers come back through DC01 (their
    policy routes) so it can undo the DNAT; clients in BJ and outside are served by both
    CAS hosts."""
    required(missing())
    tool("nft", "nftables")
    home, prefix = tmp_path / "lab", fresh_prefix()
    network = HostNetwork(HostPlan.build(prefix=prefix))
    make_lab(home, prefix, plane="Kernel")
    try:
        done = lab(home, "up", "--detach", "--timeout", "40", timeout=50)
        assert done.returncode == 0, done.stdout + done.stderr
        state = json.loads(lab(home, "status", "--json").stdout)
        kinds = {p["name"]: p["kind"] for p in state["processes"]}
        assert kinds[CLUSTER] == "NLB" and "CAS01-nlb" not in kinds  # central, in DC01
        both_serve(network)
        outside = network.exec(
            "CLIENT-OUT",
            [sys.executable, "-c", GREETINGS, CLUSTER_IP, "20"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert set(outside.stdout.split()) == {"CAS01.lab.net", "CAS02.lab.net"}, (
            outside.stdout + outside.stderr
        )
    finally:
        print(lab(home, "down").stdout)
        network.down()
    assert namespaces(prefix) == []


def test_an_haproxy_pair_on_balancer_hosts(tmp_path: Path) -> None:
    """-DataPlane HAProxy in a hosts lab: the separate load balancer as two balancer
    hosts (LB-BJ1, LB-BJ2) sharing the cluster IP with keepalived. Clients are spread
    over both CAS hosts; the active balancer host's loss moves the address to the other
    and connections through the cluster IP recover; its return takes it back."""
    required(missing())
    tool("haproxy", "haproxy")
    tool("keepalived", "keepalived")
    home, prefix = tmp_path / "lab", fresh_prefix()
    network = HostNetwork(HostPlan.build(prefix=prefix, pairs=[CLUSTER_IP]))
    make_lab(home, prefix, plane="HAProxy")
    try:
        done = lab(home, "up", "--detach", "--timeout", "40", timeout=50)
        assert done.returncode == 0, done.stdout + done.stderr
        state = json.loads(lab(home, "status", "--json").stdout)
        kinds = {p["name"]: p["kind"] for p in state["processes"]}
        assert kinds[f"{CLUSTER}-vrrp0"] == kinds[f"{CLUSTER}-vrrp1"] == "NlbPair", kinds
        assert CLUSTER not in kinds and "CAS01-nlb" not in kinds
        both_serve(network)
        holder = network.exec("LB-BJ1", ["ip", "-br", "addr"], capture_output=True, text=True)
        assert CLUSTER_IP in holder.stdout, holder.stdout  # the preferred host has it

        done = lab(home, "kill-host", "LB-BJ1")
        assert done.returncode == 0, done.stderr
        killed = time.monotonic()
        _, outcomes = connect(network, 400, streak=20, deadline=20)
        took = time.monotonic() - killed
        good = [o for _, o in outcomes if o.endswith(".lab.net")]
        print(f"after kill-host LB-BJ1: 20 good connections in a row {took:.2f} s later")
        assert len(good) >= 20 and set(good[-20:]) <= {"CAS01.lab.net", "CAS02.lab.net"}
        holder = network.exec("LB-BJ2", ["ip", "-br", "addr"], capture_output=True, text=True)
        assert CLUSTER_IP in holder.stdout, holder.stdout

        done = lab(home, "start-host", "LB-BJ1")
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            holder = network.exec("LB-BJ1", ["ip", "-br", "addr"], capture_output=True, text=True)
            if CLUSTER_IP in holder.stdout:
                break
            time.sleep(0.3)
        assert CLUSTER_IP in holder.stdout, holder.stdout  # preempted back
        both_serve(network)
    finally:
        print(lab(home, "down").stdout)
        network.down()
    assert namespaces(prefix) == []


# Run in a host: N IMAP greetings from an address, the greeting server of each.
GREETINGS = """
import imaplib, sys
for _ in range(int(sys.argv[2])):
    imap = imaplib.IMAP4(sys.argv[1], 143, timeout=3)
    print(imap.welcome.decode().split("] ", 1)[1].split()[0])
    imap.logout()
"""
