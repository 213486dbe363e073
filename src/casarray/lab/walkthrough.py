"""`casarray lab walkthrough` (what `make demo` runs): Exchange 2010's CAS-array set-up
procedure (the text casarray comes from), replayed for real.

It makes a new lab organization (the procedure's "before": no array yet) in `--home`
(default: a new temporary folder), starts it (`lab up --detach`), then runs each step
through the Exchange Management Shell, printing the command, a line on why, and the
command's real output, and checks that the step did what it claims:

1. `Install-WindowsFeature NLB` on CAS01 and CAS02;
2. the NLB cluster bj-cas.lab.net on 127.77.1.10 with CAS01 and CAS02 and port rules
   for IMAP and HTTPS (the lab starts its balancer; both nodes converge);
3. the DNS record bj-cas -> 127.77.1.10, then a real DNS query to the lab's server;
4. `New-ClientAccessArray` for site BJ (its members: CAS01 and CAS02), and the NLB
   cluster set to follow the array's members (`Set-NlbCluster -FollowArray`);
5. per Client Access server, a request with the array FQDN, mail.lab.net,
   autodiscover.lab.net and the server's own FQDN as subject alternative names, signed
   by the lab CA, imported and enabled for IMAP and IIS (a TLS handshake to
   bj-cas.lab.net then verifies against the lab root);
6. DB02 gets the array, DB01 still names CAS01, `Test-ClientAccessArray` flags DB01;
   BJ's databases are pointed at the array (the seed's `Get-MailboxDatabase |
   Set-MailboxDatabase`, limited to BJ's Mailbox server: SH's DB03 belongs to SH's
   Client Access server) and the test is clean;
7. the client side, with casarray's Outlook-like client (`casarray.client`): alice's
   profile by Autodiscover names bj-cas.lab.net; her inbox is read through the array;
   CAS01 is killed (`lab kill`) and her client carries on through CAS02 with the same
   profile (the time it took is shown); CAS04 is added to BJ (`lab add-server`) and
   gets connections through the cluster IP with no command (Test-ClientAccessArray then
   flags its self-signed certificate, and it gets the array's certificate); DB01 is
   pointed at CAS02.lab.net and her client is referred there (the seed's last line);
8. mail from outside: lab.net's MX, asked of the lab's DNS, names smtp.lab.net (the
   Hub Transport servers); a message handed to it on port 25 is in alice's inbox,
   read through the array;
9. the Hub Transport behind NLB: the lab's sites have one Hub Transport server each
   (MBX01, MBX02), so a second one, HUB01 (Hub Transport only), is installed in BJ
   (`lab add-server`); the NLB cluster bj-smtp.lab.net on 127.77.1.20 with MBX01 and
   HUB01 and port rules for 25 and 587 (-ProxyProtocol: where the data plane is a
   proxy, each connection starts with a PROXY header naming the client, which the
   transport trusts from the cluster IP); lab.net's MX and _submission._tcp then name
   the cluster, and a message sent to it from an outside address (127.77.9.25) is in
   alice's inbox with a Received header naming that address.

It stops at the first step that fails, prints a table of the steps with their timings,
stops the lab (unless `--keep`), and exits 0 only if every step passed.

With `--hosts` the same steps run on a lab on several hosts (`lab up --hosts`: one
network namespace per server, the directory and mailboxes on PostgreSQL in DC01), at
its addresses (`HOSTS_ADDRESSES`: bj-cas.lab.net on 198.18.1.10). The walkthrough
itself then works from CLIENT-BJ, a workstation of site BJ (the process enters its
namespace once the lab is up; the shell reaches the directory through its socket), and
what comes from outside the organization (step 9's MTA, step 10's smart host) from
CLIENT-OUT. The NLB clusters run on their hosts (the Hosts data plane, Auto's choice
there), with heartbeats every 100 ms; step 7c kills CAS01's whole host (`lab kill-host`)
rather than its process.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

CLUSTER = "bj-cas.lab.net"
CLUSTER_IP = "127.77.1.10"
SMTP_CLUSTER = "bj-smtp.lab.net"  # the Hub Transport servers of BJ, step 9
SMTP_CLUSTER_IP = "127.77.1.20"
SMTP_NODES = ("MBX01", "HUB01")
SMART_HOST = "127.77.9.60"  # the ISP's smart host the Internet send connector uses, step 10
OUTSIDE_MTA = "127.77.9.25"  # the address an outside MTA sends from, in step 9
# the same, in a lab on several hosts (`--hosts`): step 9's MTA and step 10's smart
# host are CLIENT-OUT, outside the organization
HOSTS_ADDRESSES = {
    "cluster_ip": "198.18.1.10",
    "smtp_cluster_ip": "198.18.1.20",
    "smart_host": "198.18.3.100",
    "outside_mta": "198.18.3.100",
}
HOSTS_HEARTBEAT = 100  # ms: the lab's faster NLB heartbeats, NLB's minimum (its default is 1000)
ARRAY_NAME = "BJ CAS Array"
USER = "alice@lab.net"
REDIRECT_WAIT = 20.0  # seconds for the members to follow Set-MailboxDatabase
WAIT = 20.0  # seconds a step waits for the lab to show its effect


class StepFailed(Exception):
    """A step did not do what it claims."""


@dataclass
class Outcome:
    number: str
    title: str
    seconds: float = 0.0
    ok: bool | None = None  # None: not run
    detail: str = ""


@dataclass
class Walk:
    """What the steps share."""

    home: Path
    console: Console
    passwords: dict[str, str]
    config: Any = None  # lab.config.LabConfig
    session: Any = None  # shell.runtime.Session
    profile: Any = None  # client.profile.Profile, once step 7a made it
    hosts: Any = None  # lab.hosts.network.HostNetwork: a lab on several hosts
    cluster_ip: str = CLUSTER_IP
    smtp_cluster_ip: str = SMTP_CLUSTER_IP
    smart_host: str = SMART_HOST
    outside_mta: str = OUTSIDE_MTA
    out: io.StringIO = field(default_factory=io.StringIO)
    err: io.StringIO = field(default_factory=io.StringIO)

    # -- the shell ------------------------------------------------------------------

    def shell(self, command: str, *, show: bool = True) -> str:
        """Run `command` in the shell as an administrator types it; its output. A
        command that writes an error fails the step."""
        from casarray.shell.runtime import Host, Session

        if self.session is None:
            host = Host(out=self.out, err=self.err, stdin=io.StringIO(""), terminal=False)
            self.session = Session(directory_url=self.config.directory, host=host)
        out_at, err_at = self.out.tell(), self.err.tell()
        errors_at = len(self.session.errors)
        self.console.print(f"[bold cyan][PS] C:\\>[/] {command}", highlight=False)
        ok = self.session.run(command)
        written = self.out.getvalue()[out_at:].rstrip()
        errors = self.err.getvalue()[err_at:].rstrip()
        if show and written:
            self.console.print(written, highlight=False, markup=False)
        if errors:
            self.console.print(errors, style="red", highlight=False, markup=False)
        if not ok or len(self.session.errors) > errors_at:
            raise StepFailed(f"{command}: {errors or 'failed'}")
        return written

    def say(self, text: str) -> None:
        self.console.print(f"  [green]->[/] {text}", highlight=False)

    def directory(self) -> Any:
        return self.session.directory

    # -- waiting for the lab ----------------------------------------------------------

    def wait(self, what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Call `check` until it returns something true; StepFailed after `timeout`."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                result = check()
            except Exception as exc:  # the lab is still settling
                last = exc
            else:
                if result:
                    return result
            time.sleep(0.1)
        raise StepFailed(f"{what}: not after {timeout:.0f} s" + (f" ({last})" if last else ""))

    def network(self) -> Any:
        from casarray.client.network import Network

        return Network.configure(home=self.home)

    def outside(self, function: Callable[[], Any]) -> Any:
        """`function()` from outside the organization: CLIENT-OUT in a lab on several
        hosts (a thread in its namespace), else here."""
        if self.hosts is None:
            return function()
        from casarray.lab.hosts.network import call_in

        return call_in(self.hosts.plan.host("CLIENT-OUT").namespace, function)

    def states(self, cluster: str, nodes: tuple[str, ...]) -> dict[str, str]:
        """The cluster's nodes' states: as its balancer says, or (NLB on the hosts) as
        each node's own driver does."""
        from casarray.balancer.balancer_process import read_host_status, read_status

        status = read_status(cluster, self.home)
        if status is not None:
            return {node["name"]: node["state"] for node in status.get("nodes", ())}
        return {
            node: str((read_host_status(cluster, node, self.home) or {}).get("state", ""))
            for node in nodes
        }

    def engine(self, cluster: str) -> str:
        from casarray.balancer.balancer_process import read_status

        status = read_status(cluster, self.home)
        if status is not None:
            return str(status.get("engine", "?"))
        return "Hosts" if self.hosts is not None else "?"


# -- the steps ---------------------------------------------------------------------------


def step_nlb_feature(walk: Walk) -> str:
    for server in ("CAS01", "CAS02"):
        walk.shell(f"Install-WindowsFeature NLB -ComputerName {server}")
    shown = walk.shell("Get-WindowsFeature NLB -ComputerName CAS02", show=False)
    if "Installed" not in shown:
        raise StepFailed(f"NLB is not installed on CAS02: {shown}")
    return "NLB installed on CAS01 and CAS02"


def step_nlb_cluster(walk: Walk) -> str:
    walk.shell(
        f'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName {CLUSTER} '
        f"-ClusterPrimaryIP {walk.cluster_ip} -SubnetMask 255.255.255.0 -OperationMode Multicast"
    )
    if walk.hosts is not None:
        walk.shell(f"Set-NlbCluster -HostName CAS01 -HeartbeatPeriod {HOSTS_HEARTBEAT}")
    walk.shell("Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet")
    walk.shell("Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force")
    for start, end in ((143, 143), (993, 993), (443, 443), (80, 80)):
        walk.shell(
            f"Add-NlbClusterPortRule -HostName CAS01 -StartPort {start} -EndPort {end} "
            "-Protocol Tcp -Affinity None",
            show=False,
        )
    walk.shell("Get-NlbClusterPortRule -HostName CAS01")

    def converged() -> bool:
        states = walk.states(CLUSTER, ("CAS01", "CAS02"))
        return states.get("CAS01") == "Converged" and states.get("CAS02") == "Converged"

    walk.wait("the lab's balancer with CAS01 and CAS02 converged", converged)
    walk.shell("Get-NlbClusterNode -HostName CAS01")
    engine = walk.engine(CLUSTER)
    return f"balancer running ({engine} data plane), CAS01 and CAS02 converged"


def step_dns(walk: Walk) -> str:
    import dns.message
    import dns.query
    import dns.rdatatype

    walk.shell(
        "Add-DnsServerResourceRecordA -ZoneName lab.net -Name bj-cas -IPv4Address "
        + walk.cluster_ip
    )
    walk.shell("Get-DnsServerResourceRecord -ZoneName lab.net -Name bj-cas")
    address, port = walk.config.dns_address, walk.config.dns_port

    def answer() -> list[str]:
        query = dns.message.make_query(CLUSTER, dns.rdatatype.A)
        reply = dns.query.udp(query, address, port=port, timeout=1.0)
        return [item.to_text() for rrset in reply.answer for item in rrset]

    found = walk.wait(f"{CLUSTER} in the lab's DNS", answer)
    walk.console.print(f"[dim]dig @{address} -p {port} {CLUSTER} +short[/]", highlight=False)
    walk.console.print("\n".join(found), highlight=False)
    if found != [walk.cluster_ip]:
        raise StepFailed(f"{CLUSTER} resolves to {found}, not {walk.cluster_ip}")
    return f"{CLUSTER} A {walk.cluster_ip}, answered by the lab's DNS at {address}:{port}"


def step_array(walk: Walk) -> str:
    walk.shell(f'New-ClientAccessArray -Name "{ARRAY_NAME}" -Fqdn "{CLUSTER}" -Site "BJ"')
    walk.shell(f'Get-ClientAccessArray "{ARRAY_NAME}" | Format-List Name,Fqdn,Site,Members')
    members = sorted(walk.directory().arrays.one(CLUSTER).members)
    if members != ["CAS01", "CAS02"]:
        raise StepFailed(f"the array's members are {members}")
    # beyond NLB: the cluster's nodes follow the array's members from now on
    walk.shell(f'Set-NlbCluster -HostName CAS01 -ClientAccessArray "{ARRAY_NAME}" -FollowArray')
    return "the array has CAS01 and CAS02 as members; the NLB cluster follows it"


def issue_certificate(walk: Walk, server: str) -> None:
    """The seed's step 4 for one Client Access server: a request with every name clients
    use (the array FQDN, mail, autodiscover, the server's own FQDN), the lab CA's
    certificate for it, imported and enabled for IMAP and IIS."""
    names = f"{CLUSTER},mail.lab.net,autodiscover.lab.net,{server}.lab.net"
    request = walk.home / f"{server}.csr"
    issued = walk.home / f"{server}.cer"
    walk.shell(
        f'New-ExchangeCertificate -Server {server} -GenerateRequest -SubjectName "C=CN, '
        f'O=Lab, CN={CLUSTER}" -DomainName {names} -FriendlyName "BJ CAS Array" '
        f"-RequestFile {request}",
        show=False,
    )
    walk.say(f"request written to {request.name}")
    walk.shell(f"Get-LabCertificate -RequestFile {request} -Path {issued}", show=False)
    walk.shell(
        f"Import-ExchangeCertificate -Server {server} -FileName {issued} | "
        "Enable-ExchangeCertificate -Services IMAP,IIS",
        show=False,
    )


def step_certificate(walk: Walk) -> str:
    from casarray.client.network import Network

    for server in ("CAS01", "CAS02"):
        issue_certificate(walk, server)
    walk.shell(
        "Get-ExchangeCertificate -Server CAS01 | "
        "Format-List Subject,CertificateDomains,Services,Status"
    )
    network: Network = walk.network()

    def verified() -> bool:
        # every member and worker takes the certificate on its own (within a second):
        # IMAP and HTTPS through the array, several handshakes in a row
        for _ in range(10):
            for port in (993, 443):
                network.connect(CLUSTER, walk.config.port(port)).sock.close()
        return True

    walk.wait(f"TLS with {CLUSTER} (IMAP and HTTPS) verified against the lab root", verified)
    ports = f"{walk.config.port(993)} and {walk.config.port(443)}"
    return f"TLS to {CLUSTER} on {ports} verifies against the lab root"


def step_databases(walk: Walk) -> str:
    walk.shell("New-MailboxDatabase DB02 -Server MBX01")
    shown = walk.shell("Get-MailboxDatabase | Format-Table Name,Server,RpcClientAccessServer")
    databases = walk.directory().databases
    if databases.one("DB02").rpc_client_access_server.lower() != CLUSTER:
        raise StepFailed("DB02 did not get the array")
    if databases.one("DB01").rpc_client_access_server.lower() != "cas01.lab.net":
        raise StepFailed("DB01 should still name CAS01.lab.net")
    flagged = walk.shell(f'Test-ClientAccessArray -Identity "{ARRAY_NAME}"')
    if "DB01" not in flagged:
        raise StepFailed("Test-ClientAccessArray did not flag DB01")
    walk.shell(
        f"Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer {CLUSTER}"
    )
    walk.shell("Get-MailboxDatabase | Format-Table Name,Server,RpcClientAccessServer")
    clean = walk.shell(f'Test-ClientAccessArray -Identity "{ARRAY_NAME}"')
    if "No issues found" not in clean:
        raise StepFailed(f"Test-ClientAccessArray is not clean:\n{clean}")
    del shown
    return "DB01 was flagged, then every BJ database names the array and the test is clean"


def _password(walk: Walk) -> str:
    password = walk.passwords.get(USER)
    if password is None:
        raise StepFailed(f"no password known for {USER} (the walkthrough makes its own lab)")
    return password


def step_profile(walk: Walk) -> str:
    from casarray.client.autodiscover import autodiscover
    from casarray.client.profile import Profile

    result = autodiscover(USER, _password(walk), network=walk.network())
    profile = Profile.from_autodiscover(result)
    walk.console.print(
        f"  Autodiscover ({result.found_by}): {result.url}\n"
        f"  Server     {profile.server}\n  ServerDN   {profile.server_dn}\n"
        f"  IMAP       {profile.server}:{profile.imap_port} ({profile.imap_encryption})",
        highlight=False,
    )
    if profile.server.lower() != CLUSTER:
        raise StepFailed(f"the profile names {profile.server}, not {CLUSTER}")
    walk.profile = profile
    return f"alice's profile: Server {profile.server}"


def _session_on(walk: Walk, server: str | None, tries: int = 40) -> Any:
    """A logged-in session through the profile; with `server`, one greeted by it."""
    from casarray.client.mailbox import open_mailbox

    network = walk.network()
    for _ in range(tries):
        session = open_mailbox(walk.profile, _password(walk), network=network)
        if server is None or (session.server or "").upper().startswith(server):
            return session
        session.close()
    raise StepFailed(f"no connection through {CLUSTER} reached {server} in {tries} tries")


def step_inbox(walk: Walk) -> str:
    session = _session_on(walk, "CAS01")
    try:
        messages = session.list("INBOX")
    finally:
        session.close()
    for message in messages:
        walk.console.print(
            f"  {message.sender:28} {message.subject}", highlight=False, markup=False
        )
    if not messages:
        raise StepFailed("alice's inbox is empty")
    return f"{len(messages)} messages read through {CLUSTER}, served by {session.server}"


def step_failover(walk: Walk) -> str:
    from casarray.client.errors import ClientError
    from casarray.lab import actions

    session = _session_on(walk, "CAS01")
    session.list("INBOX")
    before = walk.profile.server
    killed = time.monotonic()
    if walk.hosts is not None:  # the whole host: its link and every process
        actions.host_command(walk.home, "kill-host", "CAS01")
    else:
        actions.kill(walk.home, "CAS01")
    deadline = killed + WAIT
    served_by = None
    dead_host = walk.hosts is not None
    if dead_host:
        # a dead host answers nothing (no reset): the client would wait for its read
        # timeout on the old connection; it reconnects at once instead, as after one
        walk.say("the old connection gets no answer from a dead host: the client reconnects")
        with contextlib.suppress(OSError):
            session.sock.close()  # no LOGOUT to wait for
    while time.monotonic() < deadline:
        try:
            if dead_host:
                raise ClientError("CAS01's host is dead")
            session.list("INBOX")  # the old connection: broken now
        except ClientError:
            session.close()
            try:
                session = _session_on(walk, None, tries=1)
                session.list("INBOX")
                served_by = session.server
                break
            except ClientError:
                time.sleep(0.05)
                continue
        time.sleep(0.02)
    outage = time.monotonic() - killed
    session.close()
    if served_by is None or not served_by.upper().startswith("CAS02"):
        raise StepFailed(f"the client did not carry on through CAS02 (last: {served_by})")
    if walk.profile.server != before:
        raise StepFailed("the profile changed")
    walk.say(f"the inbox is read again through {CLUSTER}, served by {served_by}")
    return (
        f"CAS01 killed; alice carried on through CAS02 after {outage * 1000:.0f} ms, same profile"
    )


def step_new_server(walk: Walk) -> str:
    from casarray.lab import actions

    actions.add_server(walk.home, "CAS04", "BJ", "ClientAccess", None)
    port = walk.config.port(143)

    def greeted_by_cas04() -> bool:
        for _ in range(20):
            with socket.create_connection((walk.cluster_ip, port), timeout=2) as sock:
                greeting = sock.recv(512)
            if b"CAS04" in greeting:
                return True
        return False

    walk.wait(
        f"a connection through {walk.cluster_ip} served by CAS04", greeted_by_cas04, timeout=30
    )
    walk.shell("Get-ClientAccessArray | Format-List Name,Members")
    walk.shell("Get-NlbClusterNode -HostName CAS02")
    # it serves, but with its own self-signed certificate: the analyzer says so
    flagged = walk.shell(f'Test-ClientAccessArray -Identity "{ARRAY_NAME}"')
    if "CAS04" not in flagged or "certificate" not in flagged:
        raise StepFailed("Test-ClientAccessArray did not flag CAS04's certificate")
    issue_certificate(walk, "CAS04")
    network = walk.network()

    def verified_by_cas04() -> bool:
        for _ in range(20):  # every member answers TLS to bj-cas.lab.net now
            for port in (993, 443):
                network.connect(CLUSTER, walk.config.port(port)).sock.close()
        return True

    walk.wait("TLS through the array verified on every member", verified_by_cas04)
    return "CAS04 joined the array and the cluster and took connections with no command"


def step_redirect(walk: Walk) -> str:
    from casarray.client.autodiscover import autodiscover
    from casarray.client.mailbox import open_mailbox

    walk.shell("Set-MailboxDatabase DB01 -RpcClientAccessServer CAS02.lab.net")
    # CAS02 itself serves her (it is her database's server now); any other member of
    # the array refers her there (RFC 2221), as Exchange redirects Outlook. Each member
    # follows the directory on its own (in a fraction of a second; longer when busy).
    network = walk.network()
    deadline = time.monotonic() + REDIRECT_WAIT
    while True:
        session = open_mailbox(walk.profile, _password(walk), network=network)
        try:
            session.list("INBOX")
        finally:
            session.close()
        if session.referrals:
            break
        if time.monotonic() > deadline:
            raise StepFailed(
                f"no member of the array referred alice to CAS02.lab.net in {REDIRECT_WAIT:.0f} s"
            )
        time.sleep(0.05)
    moved = session.profile.server
    if moved.lower() != "cas02.lab.net":
        raise StepFailed(f"alice was referred to {moved}, not CAS02.lab.net")
    walk.say(f"the array's member she reached answers: NO [REFERRAL {session.referrals[0].url}]")
    walk.say(
        "Your Exchange administrator moved your mailbox to another server: the profile "
        f"now uses {moved}, and her inbox is read there."
    )
    again = autodiscover(USER, _password(walk), network=network)
    while again.server.lower() != "cas02.lab.net":
        if time.monotonic() > deadline:
            raise StepFailed(f"Autodiscover still gives {again.server}")
        time.sleep(0.05)
        again = autodiscover(USER, _password(walk), network=network)
    walk.say(f"Autodiscover now gives Server {again.server} too")
    return f"alice's client was referred to {moved} (her profile follows), as Autodiscover says"


def step_mail_in(walk: Walk) -> str:
    """Mail from outside: the sender's MTA asks the lab's DNS for lab.net's MX, hands
    the message to that host on port 25 (a Hub Transport server's Default receive
    connector), and alice reads it through the array."""
    import smtplib

    import dns.message
    import dns.query
    import dns.rdatatype

    address, port = walk.config.dns_address, walk.config.dns_port

    def ask(name: str, rtype: Any) -> list[str]:
        reply = dns.query.udp(dns.message.make_query(name, rtype), address, port=port, timeout=1)
        return [item.to_text() for rrset in reply.answer for item in rrset]

    exchanger = ask("lab.net", dns.rdatatype.MX)[0].split()[1].rstrip(".")
    hosts = ask(exchanger, dns.rdatatype.A)
    walk.console.print(f"[dim]dig @{address} -p {port} lab.net MX +short[/]", highlight=False)
    walk.console.print(f"10 {exchanger}. -> {', '.join(hosts)}", highlight=False)
    subject = f"Hello from outside {int(time.time())}"
    smtp_port = 25 + walk.config.port_offset
    with smtplib.SMTP(hosts[0], smtp_port, local_hostname="mx.example.net", timeout=20) as mta:
        _, greeting = mta.ehlo()
        first = greeting.decode(errors="replace").splitlines()[0]
        walk.console.print(f"[dim]EHLO mx.example.net -> {first}[/]", highlight=False)
        code, reply = mta.docmd("MAIL FROM:<dave@example.net>")
        mta.docmd("RCPT TO:<alice@lab.net>")
        code, reply = mta.data(
            f"From: Dave <dave@example.net>\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n"
            "\r\nA message from the outside world.\r\n".encode()
        )
    walk.say(f"{hosts[0]}:{smtp_port} answered {code} {reply.decode(errors='replace')}")
    if code != 250:
        raise StepFailed(f"the message was refused: {code} {reply!r}")
    started = time.monotonic()

    def arrived() -> Any:
        session = _session_on(walk, None)
        try:
            return next((m for m in session.list("INBOX") if m.subject == subject), None)
        finally:
            session.close()

    message = walk.wait("the message in alice's inbox", arrived)
    seconds = time.monotonic() - started
    walk.console.print(f"  {message.sender:28} {message.subject}", highlight=False, markup=False)
    return f"lab.net's MX {exchanger} took it; in alice's inbox {seconds:.1f} s later"


def _ask(walk: Walk, name: str, rtype: str) -> list[str]:
    """The lab's DNS answer for `name` `rtype`, as text."""
    import dns.message
    import dns.query

    address, port = walk.config.dns_address, walk.config.dns_port
    reply = dns.query.udp(dns.message.make_query(name, rtype), address, port=port, timeout=1)
    return [item.to_text() for rrset in reply.answer for item in rrset]


def _header_of(walk: Walk, subject: str) -> bytes | None:
    """The header section of the message `subject` in alice's inbox, read over IMAP
    through the array; None while it isn't there."""
    import imaplib
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4(walk.cluster_ip, walk.config.port(143), timeout=10) as client:
        client.starttls(ssl_context=context)
        client.login(USER, _password(walk))
        client.select("INBOX", readonly=True)
        _, found = client.search(None, "SUBJECT", f'"{subject}"')
        numbers = found[0].split() if found and found[0] else []
        if not numbers:
            client.logout()
            return None
        _, data = client.fetch(numbers[-1], "(BODY.PEEK[HEADER])")
        client.logout()
    parts = [part[1] for part in data if isinstance(part, tuple)]
    return parts[0] if parts else None


def step_transport_nlb(walk: Walk) -> str:
    """The Hub Transport servers of BJ behind one NLB cluster for 25 and 587, which the
    domain's MX and _submission._tcp name; mail through it keeps the client's address."""
    import smtplib

    from casarray.lab import actions

    first, second = SMTP_NODES
    if actions.add_server(walk.home, second, "BJ", "HubTransport", None) != 0:
        raise StepFailed(f"{second} did not start")
    for server in SMTP_NODES:
        walk.shell(f"Install-WindowsFeature NLB -ComputerName {server}", show=False)
    walk.shell(
        f'New-NlbCluster -HostName {first} -InterfaceName "Ethernet" -ClusterName '
        f"{SMTP_CLUSTER} -ClusterPrimaryIP {walk.smtp_cluster_ip} -SubnetMask 255.255.255.0"
    )
    if walk.hosts is not None:
        walk.shell(f"Set-NlbCluster -HostName {first} -HeartbeatPeriod {HOSTS_HEARTBEAT}")
    walk.shell(
        f"Add-NlbClusterNode -HostName {first} -NewNodeName {second} -NewNodeInterface Ethernet"
    )
    walk.shell(f"Remove-NlbClusterPortRule -HostName {first} -Port 0 -Force")
    for port in (25, 587):
        walk.shell(
            f"Add-NlbClusterPortRule -HostName {first} -StartPort {port} -EndPort {port} "
            "-Protocol Tcp -Affinity None -ProxyProtocol",
            show=False,
        )
    walk.shell(f"Get-NlbClusterPortRule -HostName {first}")

    def converged() -> bool:
        states = walk.states(SMTP_CLUSTER, SMTP_NODES)
        return all(states.get(node) == "Converged" for node in SMTP_NODES)

    walk.wait(f"the balancer of {SMTP_CLUSTER} with {first} and {second} converged", converged)
    walk.shell(f"Get-NlbClusterNode -HostName {first}")
    engine = walk.engine(SMTP_CLUSTER)

    def published() -> tuple[list[str], list[str]] | None:
        mx = _ask(walk, "lab.net", "MX")
        srv = _ask(walk, "_submission._tcp.lab.net", "SRV")
        wanted = f"{SMTP_CLUSTER}."
        if any(r.endswith(wanted) for r in mx) and any(r.endswith(wanted) for r in srv):
            return mx, srv
        return None

    mx, srv = walk.wait(f"lab.net's MX and _submission._tcp naming {SMTP_CLUSTER}", published)
    address, port = walk.config.dns_address, walk.config.dns_port
    walk.console.print(f"[dim]dig @{address} -p {port} lab.net MX +short[/]", highlight=False)
    walk.console.print("\n".join(sorted(mx)), highlight=False)
    walk.console.print(
        f"[dim]dig @{address} -p {port} _submission._tcp.lab.net SRV +short[/]", highlight=False
    )
    walk.console.print("\n".join(sorted(srv)), highlight=False)
    hosts = _ask(walk, SMTP_CLUSTER, "A")
    if hosts != [walk.smtp_cluster_ip]:
        raise StepFailed(f"{SMTP_CLUSTER} resolves to {hosts}, not {walk.smtp_cluster_ip}")
    subject = f"Through the Hub Transport cluster {int(time.time())}"
    smtp_port = 25 + walk.config.port_offset
    # the outside MTA: its own address on one machine, CLIENT-OUT on several hosts
    source = None if walk.hosts is not None else (walk.outside_mta, 0)

    def send() -> dict[str, Any]:
        with smtplib.SMTP(
            walk.smtp_cluster_ip,
            smtp_port,
            local_hostname="mx.example.net",
            timeout=20,
            source_address=source,
        ) as mta:
            _, greeting = mta.ehlo()
            walk.say(f"{SMTP_CLUSTER}:{smtp_port} greets: {greeting.decode().splitlines()[0]}")
            return mta.sendmail(
                "dave@example.net",
                [USER],
                f"From: Dave <dave@example.net>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
                "\r\nThrough the cluster.\r\n".encode(),
            )

    refused = walk.outside(send)
    if refused:
        raise StepFailed(f"the message was refused: {refused}")
    header = walk.wait("the message in alice's inbox", lambda: _header_of(walk, subject))
    received = next(
        (
            line
            for line in header.decode(errors="replace").splitlines()
            if line.startswith("Received:")
        ),
        "",
    )
    walk.console.print(f"  {received}", highlight=False, markup=False)
    if f"({walk.outside_mta})" not in received:
        raise StepFailed(f"the Received header does not name {walk.outside_mta}: {received!r}")
    return (
        f"{SMTP_CLUSTER} ({engine} data plane) of {first} and {second} is lab.net's MX; "
        f"mail through it names the client {walk.outside_mta}"
    )


def step_mail_out(walk: Walk) -> str:
    """Mail to the outside: a send connector for every domain through the ISP's smart
    host (here a plain SMTP server the walkthrough runs on an outside address); alice
    submits on 587 (STARTTLS, AUTH) as her mail client would, a Hub Transport server
    relays it, and the message tracking log shows where it went."""
    import smtplib
    import socket
    import ssl

    from aiosmtpd.controller import Controller

    received: list[bytes] = []

    class SmartHost:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            received.append(bytes(envelope.original_content or b""))
            return "250 2.0.0 Ok: queued at the ISP"

    def start() -> tuple[Controller, int]:  # outside: its thread and socket there too
        with socket.socket() as probe:
            probe.bind((walk.smart_host, 0))
            port = probe.getsockname()[1]
        controller = Controller(
            SmartHost(),
            hostname=walk.smart_host,
            port=port,
            server_hostname="smarthost.isp.example",
        )
        controller.start()
        return controller, port

    smart_host, port = walk.outside(start)
    try:
        servers = ",".join(SMTP_NODES)
        walk.shell(
            f'New-SendConnector -Name "Internet" -AddressSpaces "SMTP:*;1" '
            f'-SmartHosts "[{walk.smart_host}]" -Port {port} -DNSRoutingEnabled $false '
            f"-SourceTransportServers {servers}"
        )
        subject = f"Hello to the outside {int(time.time())}"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def submit() -> dict[str, Any] | None:
            submission = 587 + walk.config.port_offset
            with smtplib.SMTP(walk.smtp_cluster_ip, submission, timeout=20) as mua:
                mua.starttls(context=context)
                mua.login(USER, _password(walk))
                refused = mua.sendmail(
                    USER,
                    ["dave@example.net"],
                    f"From: Alice <{USER}>\r\nTo: dave@example.net\r\nSubject: {subject}\r\n"
                    "\r\nA message to the outside world.\r\n".encode(),
                )
            return refused

        # the transports take the new connector at their next look at the directory
        walk.wait("alice's message to dave@example.net taken", lambda: submit() == {})
        walk.say(f"alice submitted to {SMTP_CLUSTER}:587 (STARTTLS, AUTH) for dave@example.net")
        message = walk.wait(
            "the message at the ISP's smart host",
            lambda: next((m for m in received if subject.encode() in m), None),
        )
        for line in message.decode(errors="replace").split("\r\n"):
            if line.startswith(("Received:", "\tby", "\tfor")):
                walk.console.print(f"  {line}", highlight=False, markup=False)
        walk.shell(
            f"Get-MessageTrackingLog -Sender {USER} -EventId SEND | "
            "Format-Table EventId,Source,Recipients,RecipientStatus,MessageSubject"
        )
    finally:
        smart_host.stop()
    return f"the Internet send connector took it to the smart host {walk.smart_host}"


STEPS: tuple[tuple[str, str, str, Callable[[Walk], str]], ...] = (
    ("1", "Install NLB", "Windows Server's Network Load Balancing.", step_nlb_feature),
    ("2", "NLB cluster", "One cluster IP, IMAP and HTTPS port rules.", step_nlb_cluster),
    ("3", "DNS record", "Point the array's name at the cluster IP.", step_dns),
    ("4", "CAS array", "One name for the site's Client Access servers.", step_array),
    ("5", "Certificate", "Every name clients use, in one certificate.", step_certificate),
    ("6", "Databases", "Old databases keep their server: point them at the array.", step_databases),
    ("7a", "Profile", "Autodiscover gives the array's name, not a server's.", step_profile),
    ("7b", "Inbox", "The mailbox is read through the array.", step_inbox),
    ("7c", "Failover", "A Client Access server dies; the client carries on.", step_failover),
    ("7d", "New server", "A new Client Access server joins with no command.", step_new_server),
    (
        "7e",
        "Redirect",
        "The procedure's last line: send DB01's users to a good CAS.",
        step_redirect,
    ),
    ("8", "Mail in", "Mail from outside finds the MX and reaches the inbox.", step_mail_in),
    (
        "9",
        "Transport NLB",
        "The Hub Transport servers behind one cluster name, the MX.",
        step_transport_nlb,
    ),
    ("10", "Mail out", "Mail to the outside leaves by a send connector.", step_mail_out),
)


# -- running it --------------------------------------------------------------------------


def run(
    home: str | None = None,
    *,
    keep: bool = False,
    console: Console | None = None,
    hosts: bool = False,
) -> int:
    from casarray.lab import actions, claim

    out = console or Console()
    try:
        if not hosts:  # on several hosts `lab up` checks the namespaces' claim
            claim.check_free(Path(home) if home is not None else Path(tempfile.gettempdir()))
    except claim.AddressesTaken as exc:
        out.print(f"[red]{exc}", highlight=False)
        return 2
    scratch = None
    if home is None:
        scratch = Path(tempfile.mkdtemp(prefix="casarray-walkthrough-"))
        folder = scratch
    else:
        folder = Path(home).resolve()
        if (folder / "lab.json").exists() or (folder / "directory.db").exists():
            out.print(
                f"[red]{folder} already holds an organization; the walkthrough starts from "
                "an organization with no array yet: use another --home, or `casarray lab "
                "reset` first."
            )
            return 2
    os.environ["CASARRAY_HOME"] = str(folder)
    outcomes = [Outcome(number, title) for number, title, _, _ in STEPS]
    started = time.monotonic()
    walk: Walk | None = None
    left: int | None = None  # on several hosts: the namespace to go back to
    try:
        out.rule("[bold]Before: the lab organization, with no client access array yet")
        config, passwords = actions.prepare(folder, hosts)
        actions.show_passwords(out, passwords)
        up_started = time.monotonic()
        if actions.up(folder, detach=True, hosts=hosts) != 0:
            out.print("[red]The lab did not start.")
            return 1
        out.print(f"The lab is up and healthy after {time.monotonic() - up_started:.1f} s.")
        walk = Walk(folder, out, passwords or {}, config=config)
        if hosts:
            from casarray.lab.hosts.network import enter

            walk.hosts = actions.host_network(config)
            for name, value in HOSTS_ADDRESSES.items():
                setattr(walk, name, value)
            left = enter(walk.hosts.plan.host("CLIENT-BJ").namespace)
            out.print("The walkthrough works from CLIENT-BJ (198.18.1.100), in site BJ.")
        for outcome, (number, title, why, action) in zip(outcomes, STEPS, strict=True):
            out.rule(f"[bold]{number}. {title}")
            out.print(why)
            begun = time.monotonic()
            try:
                outcome.detail = action(walk)
                outcome.ok = True
            except Exception as exc:  # a step that fails ends the walk
                outcome.ok = False
                outcome.detail = str(exc) if isinstance(exc, StepFailed) else repr(exc)
                out.print(f"[red]Step {number} failed: {outcome.detail}", highlight=False)
            outcome.seconds = time.monotonic() - begun
            if outcome.ok:
                walk.say(outcome.detail)
            else:
                break
    finally:
        if walk is not None and walk.session is not None:
            walk.session.close()
        if left is not None:
            from casarray.lab.hosts.network import leave

            leave(left)
        if not keep:
            actions.down(folder, quiet=True)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
    summary(out, outcomes, time.monotonic() - started)
    if keep:
        out.print(f"The lab keeps running in {folder} (`casarray lab down --home {folder}`).")
    return 0 if all(outcome.ok for outcome in outcomes) else 1


def summary(out: Console, outcomes: list[Outcome], seconds: float) -> None:
    table = Table(title=f"The CAS-array set-up, step by step ({seconds:.1f} s in all)")
    table.add_column("step")
    table.add_column("what")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_column("detail")
    for outcome in outcomes:
        result = {True: "[green]passed", False: "[red]FAILED", None: "[dim]not run"}[outcome.ok]
        took = f"{outcome.seconds:.1f} s" if outcome.ok is not None else ""
        table.add_row(outcome.number, outcome.title, result, took, outcome.detail)
    out.print(table)
