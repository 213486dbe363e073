"""exchangelib 5.x (PyPI) against a running lab, as a user's client finds it: SOAP
Autodiscover through the lab's DNS and the BJ array, then EWS through the array, and a
kill -9 of the Client Access server that served the session (as root: the standard
ports, the Kernel data plane).

What exchangelib needs of the organization (its code): it tries only
https://<domain>/... and https://autodiscover.<domain>/... on port 443 (SRV targets
on another port are skipped), checks each name with dnspython and connects through the
system resolver, and verifies TLS. So the client runs in a subprocess under
`unshare --mount` whose /etc/resolv.conf names the lab's DNS (127.77.0.53), with
REQUESTS_CA_BUNDLE the lab root; CAS01 and CAS02 get lab-CA certificates for the
array, mail and autodiscover names (the walkthrough's step 5), and their EWS virtual
directories the ExternalUrl https://bj-cas.lab.net/EWS/Exchange.asmx, which is what
exchangelib reads from GetUserSettings (ExternalEwsUrl).

The tests share the lab (module fixtures) and run in order.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import selectors
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

import pytest

from tests.lab import Lab, required, wait_for
from tests.lab.conftest import fresh_lab

ARRAY, VIP, DNS = "bj-cas.lab.net", "127.77.1.10", "127.77.0.53"
MBX01 = "127.77.1.21"
MEMBERS = {"CAS01": "127.77.1.11", "CAS02": "127.77.1.12"}
EWS_URL = f"https://{ARRAY}/EWS/Exchange.asmx"
COUNT = 130  # more than exchangelib's page of 100
TOKEN = secrets.token_hex(3)  # in every subject: this run's messages only
SEEN: dict[str, Any] = {}  # what the first test's client saw, for the second

CLIENT = r"""
import json, sys
from exchangelib import Account, Configuration, Credentials, FaultTolerance, __version__

address, password = sys.argv[1:3]
credentials = Credentials(address, password)
config = Configuration(credentials=credentials, retry_policy=FaultTolerance(max_wait=60))
account = Account(address, credentials=credentials, config=config, autodiscover=True)


def say(**values):
    print(json.dumps(values), flush=True)


listed = list(account.inbox.all().order_by("-datetime_received").only("subject"))
page = list(account.inbox.all().order_by("subject").only("subject")[100:110])
first = listed[:5]
say(
    version=__version__,
    ews_url=account.protocol.service_endpoint,
    server=str(account.version.build),
    api_version=account.version.api_version,
    address=account.primary_smtp_address,
    count=len(listed),
    distinct=len({m.id for m in listed}),
    subjects=[m.subject for m in listed],
    page=[m.subject for m in page],
    ids=[[m.id, m.changekey] for m in first],
    first=[m.subject for m in first],
)
sys.stdin.readline()  # the test kills the member that served us meanwhile
again = list(account.fetch(ids=[(m.id, m.changekey) for m in first], only_fields=["subject"]))
say(
    ids=[[m.id, m.changekey] for m in again],
    first=[m.subject for m in again],
    count=account.inbox.all().count(),
)
sys.stdin.readline()
"""


def root_missing() -> str | None:
    if os.geteuid() != 0:
        return "the lab on the standard ports, the Kernel data plane and unshare need root"
    for name, package in (("nft", "nftables"), ("unshare", "util-linux"), ("ss", "iproute2")):
        if shutil.which(name) is None:
            return f"{name} is not installed (Debian package {package})"
    try:
        import exchangelib  # noqa: F401
    except ImportError:
        return "exchangelib is not installed (the project's test extra)"
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    required(root_missing())
    with fresh_lab() as lab:
        lab.up()
        yield lab


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ews-lab")


def issue_certificate(lab: Lab, folder: Path, server: str) -> None:
    names = f"{ARRAY},mail.lab.net,autodiscover.lab.net,{server}.lab.net"
    request, issued = folder / f"{server}.csr", folder / f"{server}.cer"
    lab.shell(
        f'New-ExchangeCertificate -Server {server} -GenerateRequest -SubjectName "C=CN, '
        f'O=Lab, CN={ARRAY}" -DomainName {names} -FriendlyName "BJ CAS Array" '
        f"-RequestFile {request}"
    )
    lab.shell(f"Get-LabCertificate -RequestFile {request} -Path {issued}")
    lab.shell(
        f"Import-ExchangeCertificate -Server {server} -FileName {issued} | "
        "Enable-ExchangeCertificate -Services IMAP,IIS"
    )


def verifies(address: str, name: str, root: Path) -> bool:
    context = ssl.create_default_context(cafile=str(root))
    try:
        with (
            socket.create_connection((address, 443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=name),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


@pytest.fixture(scope="module")
def array(lab: Lab, folder: Path) -> str:
    """The BJ array behind its NLB cluster, MBX01's databases naming it, lab-CA
    certificates on both members, and the EWS ExternalUrl through the array; alice's
    INBOX gets COUNT messages (through MBX01's port 25, as from outside)."""
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ; '
        "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
        '-ClientAccessArray "BJ CAS Array"; '
        "Get-MailboxDatabase -Server MBX01 | Set-MailboxDatabase -RpcClientAccessServer "
        "bj-cas.lab.net"
    )
    for server in MEMBERS:
        issue_certificate(lab, folder, server)
        lab.shell(
            f"Set-WebServicesVirtualDirectory -Identity '{server}\\EWS (Default Web Site)' "
            f"-ExternalUrl {EWS_URL}"
        )
    assert wait_for(lambda: lab.process(ARRAY).get("state") == "Running"), lab.state()
    assert wait_for(lambda: all(n["state"] == "Converged" for n in lab.status()["nodes"]))
    root = lab.home / "pki" / "lab-root.pem"
    for address in (*MEMBERS.values(), VIP):  # each member takes its certificate anew
        assert wait_for(lambda a=address: verifies(a, ARRAY, root), timeout=30), address
    with smtplib.SMTP(MBX01, 25, timeout=30) as smtp:
        for n in range(1, COUNT + 1):
            message = EmailMessage()
            message["From"] = "Bob Li <bob@lab.net>"
            message["To"] = "alice@lab.net"
            message["Subject"] = f"EWS {TOKEN} {n:03d}"
            message.set_content(f"Message {n} for exchangelib.\n")
            smtp.send_message(message)
    return ARRAY


class Client:
    """The exchangelib subprocess: its own mount namespace and resolver, the lab root
    as its CA bundle; it prints a JSON line per step and waits for a line between."""

    def __init__(self, lab: Lab, folder: Path, user: str) -> None:
        resolv = folder / "resolv.conf"
        resolv.write_text(f"nameserver {DNS}\noptions timeout:2 attempts:2\n")
        script = folder / "client.py"
        script.write_text(CLIENT)
        env = dict(os.environ)
        env.update(
            REQUESTS_CA_BUNDLE=str(lab.home / "pki" / "lab-root.pem"),
            NO_PROXY="*",
            HOME=str(folder),
            TMPDIR=str(folder),  # exchangelib's autodiscover cache
        )
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            env.pop(name, None)
        shell = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh",
             str(resolv), sys.executable, str(script), user, lab.passwords[user]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(folder / "client.err", "w"),  # noqa: SIM115 - the child holds it
            text=True,
            env=env,
            cwd=folder,
        )  # fmt: skip
        self.errors = folder / "client.err"

    def read(self, timeout: float = 180) -> dict[str, Any]:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(1):
                    line = stdout.readline()
                    if line:
                        return dict(json.loads(line))
                    break
                if self.proc.poll() is not None:
                    break
        raise AssertionError(f"exchangelib said nothing: {self.errors.read_text()[-6000:]}")

    def go_on(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def member_serving(lab: Lab, client_pid: int) -> set[str]:
    """The array members with an established HTTPS connection from the client process
    (its sockets' local ports, matched with the members' accepted sockets)."""
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    client_ports = set()
    servers: list[tuple[str, int, int]] = []  # (local address, peer port, pid)
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local, peer = fields[2], fields[3]
        pids = [int(p) for p in re.findall(r"pid=(\d+)", line)]
        if client_pid in pids and peer.endswith(":443"):
            client_ports.add(int(local.rsplit(":", 1)[1]))
        elif local.endswith(":443") and pids:
            servers.append((local.rsplit(":", 1)[0], int(peer.rsplit(":", 1)[1]), pids[0]))
    found = set()
    for address, peer_port, _pid in servers:
        if peer_port in client_ports:
            for name, member in MEMBERS.items():
                if address == member:
                    found.add(name)
    return found


@pytest.fixture(scope="module")
def client(lab: Lab, array: str, folder: Path) -> Iterator[Client]:
    running = Client(lab, folder, "alice@lab.net")
    yield running
    running.close()


def test_discovery_listing_and_paging_through_the_array(client: Client) -> None:
    found = client.read()
    assert found["version"].startswith("5.")
    assert found["ews_url"] == EWS_URL  # ExternalEwsUrl from SOAP Autodiscover
    assert found["server"].startswith("14.")  # from EwsSupportedSchemas (or the header)
    assert found["api_version"] == "Exchange2010_SP2"
    assert found["address"] == "alice@lab.net"
    ours = [s for s in found["subjects"] if TOKEN in s]
    assert len(ours) == COUNT
    assert found["distinct"] == found["count"]  # the welcome message too
    # (delivered within a second or two: newest first can't tell most of them apart)
    assert sorted(ours) == [f"EWS {TOKEN} {n:03d}" for n in range(1, COUNT + 1)]
    everything = sorted(found["subjects"])
    assert found["page"] == everything[100:110]
    SEEN.update(found)


def test_kill_9_of_the_serving_member_and_the_next_call_goes_through_another(
    lab: Lab, client: Client
) -> None:
    before = SEEN
    assert before, "the first test's client saw nothing"
    serving = member_serving(lab, client.proc.pid)
    assert len(serving) == 1, f"the client's connections reach {serving}"
    [victim] = serving
    killed = lab.run("kill", victim)
    assert killed.returncode == 0 and f"{victim} killed" in killed.stdout, killed.stderr
    [other] = set(MEMBERS) - {victim}
    assert wait_for(
        lambda: any(
            str(n.get("node") or n.get("name")).upper().startswith(victim)
            and n["state"] != "Converged"
            for n in lab.status()["nodes"]
        ),
        timeout=10,
    ), lab.status()["nodes"]
    client.go_on()
    after = client.read()
    assert after["first"] == before["first"]
    assert after["ids"] == before["ids"]  # the same ids, decoded by another member
    assert after["count"] == before["count"]
    assert member_serving(lab, client.proc.pid) == {other}
    client.go_on()
    assert lab.run("start", victim).returncode == 0
