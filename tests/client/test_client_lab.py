"""`casarray client` against real processes: `casarray dns run`, `casarray server run`
CAS01 and CAS02 behind `casarray balancer run bj-cas.lab.net` (Proxy plane, ports
plus a free offset), certificates from the lab CA for the array's names and each
server's own. The client finds alice's settings by Autodiscover (through the SRV
record, then through autodiscover.lab.net when the SRV target is gone), reads her
inbox through the array, follows a referral and a change Autodiscover announces by
updating her profile and telling her, and in watch mode carries on through the other
server when the one it is connected to is killed (kill -9): the failover as the client
sees it, from the kill to connected again and listing, is measured (goal 1 s)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dns.message
import dns.query
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from casarray.balancer.balancer_process import status_file as balancer_status
from casarray.client.errors import AuthenticationFailed
from casarray.client.network import Network
from casarray.client.profile import Profile, ProfileStore
from casarray.dns.dns_process import read_status as dns_status
from tests.access.imap.server_harness import PASSWORD, Lab, free_offset, make_lab

VIP = "127.77.1.10"
HOSTS = {"CAS01": "127.77.1.11", "CAS02": "127.77.1.12"}
# The ports wanted free (plus an offset): the array's on the cluster IP, the servers' own.
LAB_PORTS = [(VIP, (993, 143, 443))] + [(host, (143, 993, 80, 443)) for host in HOSTS.values()]
DNS_ADDRESS = "127.77.0.53"
FAILOVER_GOAL = 1.0
ROUNDS = 3
SUBJECTS = ("Welcome to the lab", "Quarterly report", "Lunch on Friday?")


def wait_for(predicate: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if predicate():
                return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def message(subject: str, sender: str = "Bob Li <bob@lab.net>") -> bytes:
    return (
        f"From: {sender}\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n"
        f"Date: Tue, 07 May 2024 09:30:00 +0000\r\nMessage-ID: <{hash(subject)}@lab.net>\r\n"
        f"\r\n{subject}, the body.\r\n"
    ).encode()


@dataclass
class Org:
    """The running organization: the lab, its processes, and where they listen."""

    lab: Lab
    offset: int
    dns_port: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = self.lab.env
        env.pop("CASARRAY_PASSWORD", None)
        return env

    @property
    def dns(self) -> str:
        return f"{DNS_ADDRESS}:{self.dns_port}"

    def network(self) -> Network:
        return Network.configure(self.dns, port_offset=self.offset, home=self.lab.home)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "casarray", *args, "--directory", self.lab.url,
             "--log-file", str(self.lab.home / f"{name}.log")],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def start_server(self, name: str) -> None:
        self.start(name, "server", "run", name, "--port-offset", str(self.offset),
                   "--processes", "1")  # fmt: skip
        wait_for(lambda: socket.create_connection((HOSTS[name], 993 + self.offset), 1).close()
                 or True, what=f"{name} listening")  # fmt: skip

    def converged(self) -> bool:
        status = json.loads(balancer_status("bj-cas.lab.net", self.lab.home).path.read_text())
        return {n["state"] for n in status["nodes"]} == {"Converged"}

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def client(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`casarray client ...`; its output."""
        proc = subprocess.run(
            [sys.executable, "-m", "casarray", "client", *args],
            env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if check:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def profile_new(self, *extra: str) -> str:
        return self.client("profile", "new", "alice@lab.net", "--password", PASSWORD,
                           "--dns", self.dns, "--port-offset", str(self.offset),
                           *extra).stdout  # fmt: skip

    def profile(self) -> Profile:
        return ProfileStore(self.lab.home / "client" / "profiles").load("alice@lab.net")

    def point_db01(self, name: str) -> None:
        self.lab.shell(f"Set-MailboxDatabase DB01 -RpcClientAccessServer {name}")


def enable_lab_certificate(lab: Lab, server: str) -> None:
    """The administrator's certificate for `server`: the array's names and its own,
    issued by the lab CA, imported and enabled for IMAP and IIS."""
    request, issued = lab.home / f"{server}.csr", lab.home / f"{server}.cer"
    names = f"bj-cas.lab.net,autodiscover.lab.net,mail.lab.net,{server}.lab.net"
    lab.shell(
        f"New-ExchangeCertificate -Server {server} -GenerateRequest "
        f'-SubjectName "C=CN, O=Lab, CN=bj-cas.lab.net" -DomainName {names} '
        f"-RequestFile '{request}'; "
        f"Get-LabCertificate -RequestFile '{request}' -Path '{issued}'; "
        f"Import-ExchangeCertificate -Server {server} -FileName '{issued}'"
    )
    cert = x509.load_pem_x509_certificate(issued.read_bytes())
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    lab.shell(
        f"Enable-ExchangeCertificate -Server {server} -Thumbprint {thumbprint} -Services IMAP,IIS"
    )


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory, password_hash: str) -> Iterator[Org]:
    lab = make_lab(tmp_path_factory.mktemp("client-lab"), password_hash)
    lab.directory.arrays.new("bj-cas.lab.net", "BJ", name="BJ CAS Array")
    lab.directory.databases.set("DB01", rpc_client_access_server="bj-cas.lab.net")
    lab.add_user("alice")
    inbox = lab.mailbox_store("alice")
    for subject in SUBJECTS:
        inbox.append("INBOX", message(subject))
    offset = free_offset(LAB_PORTS)
    lab.shell(
        "Install-WindowsFeature NLB -ComputerName CAS01; "
        "Install-WindowsFeature NLB -ComputerName CAS02; "
        'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName bj-cas.lab.net '
        f"-ClusterPrimaryIP {VIP} -DataPlane Proxy; "
        "Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet; "
        "Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force; "
        + "; ".join(
            f"Add-NlbClusterPortRule -HostName CAS01 -StartPort {port} -EndPort {port} "
            "-Protocol Tcp -Affinity None"
            for port in (143, 993, 443)
        )
    )
    for server in HOSTS:
        enable_lab_certificate(lab, server)
    assert (lab.home / "pki" / "lab-root.pem").is_file()
    org = Org(lab, offset)
    try:
        dns_proc = org.start("dns", "dns", "run", "--address", DNS_ADDRESS, "--port", "0")
        for server in HOSTS:
            org.start_server(server)
        org.start(
            "balancer", "balancer", "run", "bj-cas.lab.net", "--engine", "Proxy",
            "--listen-offset", str(offset), "--backend-offset", str(offset),
        )  # fmt: skip
        wait_for(org.converged, what="the balancer converged")
        wait_for(lambda: (dns_status(lab.home) or {}).get("pid") == dns_proc.pid, what="DNS")
        org.dns_port = int((dns_status(lab.home) or {})["port"])
        yield org
    finally:
        org.stop_all()
        lab.directory.close()


def srv_targets(org: Org) -> list[str]:
    query = dns.message.make_query("_autodiscover._tcp.lab.net", "SRV")
    answer = dns.query.udp(query, DNS_ADDRESS, port=org.dns_port, timeout=2)
    return [rdata.target.to_text() for rrset in answer.answer for rdata in rrset]


# -- Autodiscover ---------------------------------------------------------------------


def test_profile_by_autodiscover_through_srv_then_autodiscover_name(org: Org) -> None:
    out = org.profile_new()
    url = f"https://autodiscover.lab.net:{443 + org.offset}/autodiscover/autodiscover.xml"
    assert f"Autodiscover: {url} (SRV _autodiscover._tcp.lab.net) answered in" in out
    assert "Server       : bj-cas.lab.net" in out
    profile = org.profile()
    assert profile.server == "bj-cas.lab.net"
    assert profile.server_dn.lower().endswith("/cn=bj-cas.lab.net")
    assert profile.imap_port == 993 + org.offset
    assert profile.login_name == "alice@lab.net"
    shown = org.client("profile", "show").stdout
    assert "Server       : bj-cas.lab.net" in shown
    assert f"ServerDN     : {profile.server_dn}" in shown
    assert f"IMAP         : bj-cas.lab.net port {993 + org.offset}, SSL" in shown

    # the SRV record now names a host that has no address: the next URL answers
    org.lab.shell(
        "Add-DnsServerResourceRecord -Srv -ZoneName lab.net -Name _autodiscover._tcp "
        "-DomainName gone.lab.net -Priority 0 -Weight 1 -Port 443"
    )
    try:
        wait_for(lambda: srv_targets(org) == ["gone.lab.net."], what="the new SRV record")
        out = org.profile_new()
        assert (
            f"Autodiscover: https://gone.lab.net:{443 + org.offset}/autodiscover/autodiscover.xml "
            f"(SRV _autodiscover._tcp.lab.net): gone.lab.net has no address in the DNS server "
            f"{org.dns}"
        ) in out
        assert f"Autodiscover: {url} (autodiscover.lab.net) answered in" in out
        assert org.profile().server == "bj-cas.lab.net"
    finally:
        org.lab.shell(
            "Remove-DnsServerResourceRecord -ZoneName lab.net -RRType Srv "
            "-Name _autodiscover._tcp -Force"
        )
    wait_for(lambda: srv_targets(org) == ["autodiscover.lab.net."], what="the SRV record back")


def test_autodiscover_refuses_a_wrong_password_and_an_untrusted_server(org: Org) -> None:
    wrong = org.client("profile", "new", "alice@lab.net", "--password", "wrong",
                       "--dns", org.dns, "--port-offset", str(org.offset), check=False)  # fmt: skip
    assert wrong.returncode == 1
    assert "casarray client: the Autodiscover service refused the address and password" in (
        wrong.stderr
    )
    # trusting another CA (a server's self-signed certificate): no URL answers
    other = org.lab.home / "certs" / "CAS01.pem"
    untrusted = org.client("profile", "new", "alice@lab.net", "--password", PASSWORD,
                           "--dns", org.dns, "--port-offset", str(org.offset),
                           "--ca", str(other), check=False)  # fmt: skip
    assert untrusted.returncode == 1
    assert "no Autodiscover service answered for alice@lab.net" in untrusted.stderr
    assert "the certificate of autodiscover.lab.net" in untrusted.stderr
    assert "is not trusted" in untrusted.stderr
    # the API says the same
    from casarray.client.autodiscover import autodiscover

    with pytest.raises(AuthenticationFailed):
        autodiscover("alice@lab.net", "wrong", network=org.network())


# -- the mailbox ----------------------------------------------------------------------


def test_mail_lists_the_inbox_through_the_array(org: Org) -> None:
    org.profile_new()
    out = org.client("mail", "--password", PASSWORD).stdout
    assert f"Connected to bj-cas.lab.net ({VIP}:{993 + org.offset}): CAS0" in out
    assert "INBOX of alice@lab.net: 3 messages" in out
    for subject in SUBJECTS:
        assert subject in out
    assert "Bob Li <bob@lab.net>" in out
    assert "2024-05-07 09:30" in out
    last = org.client("mail", "--password", PASSWORD, "--count", "1").stdout
    assert SUBJECTS[-1] in last and SUBJECTS[0] not in last
    missing = org.client("mail", "--password", PASSWORD, "--folder", "Nowhere", check=False)
    assert missing.returncode == 1
    assert "casarray client: alice@lab.net has no folder 'Nowhere'" in missing.stderr

    # the API, as Test-OutlookConnectivity uses it
    from casarray.client import open_mailbox

    with open_mailbox(org.profile(), PASSWORD, network=org.network()) as session:
        assert session.server in ("CAS01.lab.net", "CAS02.lab.net")
        assert session.address == f"{VIP}:{993 + org.offset}"
        assert [m.subject for m in session.list("INBOX")] == list(SUBJECTS)
        assert {"resolve", "connect", "tls", "greeting", "login"} <= set(session.timings)


def test_mail_follows_a_referral_and_updates_the_profile(org: Org) -> None:
    org.point_db01("CAS01.lab.net")
    try:
        assert "Server       : CAS01.lab.net" in org.profile_new()
        org.point_db01("CAS02.lab.net")
        out = org.client("mail", "--password", PASSWORD).stdout
        assert (
            "Your Exchange administrator moved the mailbox alice@lab.net to another server: "
            "CAS01.lab.net referred the login to CAS02.lab.net." in out
        )
        assert "The profile now uses CAS02.lab.net (it used CAS01.lab.net)" in out
        assert f"Connected to CAS02.lab.net ({HOSTS['CAS02']}:{993 + org.offset}): " in out, out
        assert "CAS02.lab.net answered" in out
        profile = org.profile()
        assert profile.server == "CAS02.lab.net"
        assert profile.server_dn.endswith("/cn=CAS02")  # from Autodiscover, asked again
        again = org.client("mail", "--password", PASSWORD).stdout
        assert "moved the mailbox" not in again
        assert "CAS02.lab.net answered" in again
    finally:
        org.point_db01("bj-cas.lab.net")


# -- watching ---------------------------------------------------------------------------


def _sigint_default() -> None:
    """Ctrl-C (SIGINT) ends the watcher, as on a terminal, also when this suite runs
    in the background of a shell without job control, which starts it with SIGINT
    ignored (a child inherits that, and Python then installs no KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Watcher:
    """`casarray client mail --watch`, its lines read as they come, each with the time
    it arrived."""

    def __init__(self, org: Org, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "casarray", "client", "mail", "--watch",
             "--password", PASSWORD, *args],
            env=org.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            preexec_fn=_sigint_default,
        )  # fmt: skip
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line.rstrip("\n")))

    def expect(self, text: str, timeout: float = 20) -> tuple[float, str]:
        """The first line from now on containing `text`, and when it came."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                when, line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                seen = "\n".join(self.seen)
                raise AssertionError(f"no line with {text!r}; saw:\n{seen}") from None
            self.seen.append(line)
            if text in line:
                return when, line

    def drain(self) -> list[str]:
        """The lines that came and were not read yet."""
        lines = []
        while True:
            try:
                lines.append(self.lines.get_nowait()[1])
            except queue.Empty:
                break
        self.seen += lines
        return lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def answered(line: str) -> str:
    return next(name for name in HOSTS if f"{name}.lab.net answered" in line)


def test_watch_follows_a_server_change_autodiscover_announces(org: Org) -> None:
    org.profile_new()
    watcher = Watcher(org, "--refresh", "0.5")
    try:
        watcher.expect("Connected to bj-cas.lab.net")
        org.point_db01("CAS02.lab.net")
        watcher.expect(
            "Your Exchange administrator moved the mailbox alice@lab.net to another server: "
            "Autodiscover now names CAS02.lab.net.",
            timeout=10,
        )
        watcher.expect("The profile now uses CAS02.lab.net (it used bj-cas.lab.net)")
        _, line = watcher.expect("Connected to CAS02.lab.net")
        assert "CAS02.lab.net answered" in line
        assert org.profile().server == "CAS02.lab.net"
        # CAS02 dies: the client tries it again and again, and still asks Autodiscover,
        # so the administrator's way out (the database back on the array) reaches it
        org.procs["CAS02"].kill()
        watcher.expect("Lost the connection to CAS02.lab.net (CAS02.lab.net)")
        watcher.expect("Can't connect to CAS02.lab.net (attempt 1): can't connect to "
                       f"CAS02.lab.net port {993 + org.offset}: ")  # fmt: skip
        org.point_db01("bj-cas.lab.net")
        watcher.expect("Autodiscover now names bj-cas.lab.net", timeout=10)
        _, line = watcher.expect("Reconnected to bj-cas.lab.net")
        assert "CAS01.lab.net answered" in line
        assert org.profile().server == "bj-cas.lab.net"
    finally:
        watcher.stop()
        org.point_db01("bj-cas.lab.net")
        if org.procs["CAS02"].poll() is not None:
            org.start_server("CAS02")
    assert watcher.proc.returncode in (0, 130)


def test_watch_carries_on_through_the_other_server_when_its_server_is_killed(
    org: Org,
) -> None:
    org.profile_new()
    before = org.profile()
    watcher = Watcher(org, "--refresh", "3600")
    figures: list[float] = []
    try:
        _, line = watcher.expect("Connected to bj-cas.lab.net")
        current = answered(line)
        # new mail shows while watching
        org.lab.mailbox_store("alice").append("INBOX", message("Fresh news"))
        watcher.expect("New message in INBOX: 4  Bob Li <bob@lab.net>  Fresh news", timeout=5)
        for _ in range(ROUNDS):
            wait_for(org.converged, what="both nodes up")
            unasked = [line for line in watcher.drain() if "Lost" in line]
            assert not unasked, "\n".join(watcher.seen)
            victim = org.procs[current]
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            victim.wait()
            watcher.expect(f"Lost the connection to bj-cas.lab.net ({current}.lab.net)")
            when, line = watcher.expect("Reconnected to bj-cas.lab.net")
            figures.append(when - killed)
            survivor = answered(line)
            assert survivor != current, "\n".join(watcher.seen)
            org.start_server(current)  # back for the next round
            current = survivor
        assert org.profile() == before  # the profile did not change
    finally:
        watcher.stop()
    print(
        f"\nfailover seen by the client (kill -9 to connected again and listed), "
        f"{len(figures)} rounds: "
        + ", ".join(f"{f * 1000:.0f} ms" for f in figures)
        + f"; median {statistics.median(figures) * 1000:.0f} ms (goal {FAILOVER_GOAL:g} s)"
    )
    # The goal is a figure to read above, not a timed assertion; the bound only catches a
    # client that waits for a timeout (tens of seconds) instead of reconnecting at once.
    assert max(figures) <= 10 * FAILOVER_GOAL, figures
