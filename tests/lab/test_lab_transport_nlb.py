"""The Hub Transport behind NLB in a running lab (as root: the standard ports): a
second Hub Transport server in BJ (`lab add-server HUB01 --roles HubTransport`), the
NLB cluster bj-smtp.lab.net of MBX01 and HUB01 with port rules for 25 and 587 on the
Proxy data plane with -ProxyProtocol, made by cmdlet. The lab's DNS names the cluster
as lab.net's MX and _submission._tcp host; swaks, from an outside address, hands a
message to the cluster on 25 and submits one (STARTTLS, AUTH) on 587; both are
delivered, and their Received header names the client's real address, not the
balancer's."""

from __future__ import annotations

import imaplib
import os
import ssl
import subprocess
from collections.abc import Iterator

import pytest

from tests.lab import Lab, required, tool, wait_for
from tests.lab.conftest import fresh_lab

CLUSTER, VIP = "bj-smtp.lab.net", "127.77.1.20"
OUTSIDE, USER_SIDE = "127.77.9.25", "127.77.9.26"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    required(None if os.geteuid() == 0 else "the lab on the standard ports needs root")
    with fresh_lab() as lab:
        lab.up()
        added = lab.run("add-server", "HUB01", "--site", "BJ", "--roles", "HubTransport")
        assert added.returncode == 0, added.stdout + added.stderr + lab.logs()
        lab.shell(
            "Install-WindowsFeature NLB -ComputerName MBX01; "
            "Install-WindowsFeature NLB -ComputerName HUB01; "
            f"New-NlbCluster -HostName MBX01 -ClusterName {CLUSTER} -ClusterPrimaryIP {VIP} "
            "-DataPlane Proxy; "
            "Add-NlbClusterNode -HostName MBX01 -NewNodeName HUB01; "
            "Remove-NlbClusterPortRule -HostName MBX01 -Port 0 -Force; "
            "Add-NlbClusterPortRule -HostName MBX01 -StartPort 25 -EndPort 25 -Protocol Tcp "
            "-Affinity None -ProxyProtocol; "
            "Add-NlbClusterPortRule -HostName MBX01 -StartPort 587 -EndPort 587 -Protocol Tcp "
            "-Affinity None -ProxyProtocol"
        )

        def converged() -> bool:
            status = lab.process(CLUSTER)
            return status.get("state") == "Running" and all(
                "Converged" in lab.shell(f"Get-NlbClusterNode -HostName {node}")
                for node in ("MBX01", "HUB01")
            )

        assert wait_for(converged, timeout=30), lab.state()
        yield lab


def dig(*query: str) -> list[str]:
    answer = subprocess.run(
        [tool("dig", "bind9-dnsutils"), "@127.77.0.53", "+short", "+time=2", "+tries=1", *query],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(answer.stdout.split("\n")[:-1])


def received_header(user: str, password: str, subject: str) -> str | None:
    """The first Received header of the message `subject` in `user`'s INBOX (through
    CAS01), or None while it isn't there."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with imaplib.IMAP4("127.77.1.11", 143, timeout=10) as client:
        client.starttls(ssl_context=context)
        client.login(user, password)
        client.select("INBOX", readonly=True)
        _, found = client.search(None, "SUBJECT", f'"{subject}"')
        numbers = found[0].split() if found and found[0] else []
        if not numbers:
            return None
        _, data = client.fetch(numbers[-1], "(BODY.PEEK[HEADER])")
        client.logout()
    header = next(part[1] for part in data if isinstance(part, tuple)).decode()
    return next(line for line in header.splitlines() if line.startswith("Received:"))


def swaks(*args: str) -> str:
    result = subprocess.run(
        [tool("swaks", "swaks"), "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_cluster_is_the_mx_and_the_submission_host(lab: Lab) -> None:
    assert dig("lab.net", "MX") == [f"10 {CLUSTER}.", "10 smtp.lab.net."]  # SH: MBX02
    assert dig("_submission._tcp.lab.net", "SRV") == [
        f"0 1 587 {CLUSTER}.",
        "0 1 587 smtp.lab.net.",
    ]
    assert dig(CLUSTER) == [VIP]
    assert dig("smtp.lab.net") == [VIP, "127.77.2.21"]


def test_mail_through_the_cluster_names_the_client(lab: Lab) -> None:
    swaks(
        "--server",
        f"{VIP}:25",
        "--local-interface",
        OUTSIDE,
        "--helo",
        "mx.example.net",
        "--from",
        "dave@example.net",
        "--to",
        "bob@lab.net",
        "--header",
        "Subject: through the cluster on 25",
    )
    password = lab.passwords["bob@lab.net"]
    received = wait_for(
        lambda: received_header("bob@lab.net", password, "through the cluster on 25"), timeout=30
    )
    assert received, lab.logs()
    assert f"from mx.example.net ({OUTSIDE})" in received, received
    assert VIP not in received


def test_submission_through_the_cluster_names_the_client(lab: Lab) -> None:
    output = swaks(
        "--server",
        f"{VIP}:587",
        "--local-interface",
        USER_SIDE,
        "--tls",
        "--auth",
        "PLAIN",
        "--auth-user",
        "bob@lab.net",
        "--auth-password",
        lab.passwords["bob@lab.net"],
        "--from",
        "bob@lab.net",
        "--to",
        "alice@lab.net",
        "--header",
        "Subject: submitted through the cluster",
    )
    assert "Authentication succeeded" in output or "235 " in output, output
    password = lab.passwords["alice@lab.net"]
    received = wait_for(
        lambda: received_header("alice@lab.net", password, "submitted through the cluster"),
        timeout=30,
    )
    assert received, lab.logs()
    assert f"({USER_SIDE})" in received, received
