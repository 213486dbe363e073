"""`casarray lab` for real, as root: the standard ports and the Kernel data plane, at the
lab's own addresses (DESIGN.md's table). One lab runs for the module (`lab up
--detach`); the tests reach it with real clients (dig, curl, imaplib, http.client),
change it (the BJ array and its NLB cluster by cmdlet, `lab add-server`), break it
(`lab kill`, kill -9 by pid) and finally take it down (`lab down`, `lab reset`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
import time
from collections.abc import Iterator

import pytest

from casarray.directory import Directory
from tests.lab import Lab, has_row, http_get, imap_inbox, required, tool, wait_for
from tests.lab.conftest import fresh_lab

GOAL = 5.0  # seconds from `lab up` to all healthy (the goal)
CLUSTER_TABLE = "table ip casarray_bj_cas_lab_net"


def root_missing() -> str | None:
    if os.geteuid() != 0:
        return "the lab on the standard ports and the Kernel data plane needs root"
    if shutil.which("nft") is None:
        return "nft is not installed (Debian package nftables)"
    return None


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    required(root_missing())
    with fresh_lab() as lab:
        lab.up()
        yield lab


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> str:
    """The BJ array and the NLB cluster in front of it, made by cmdlet."""
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ; '
        "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
        '-ClientAccessArray "BJ CAS Array"'
    )
    assert wait_for(lambda: lab.process("bj-cas.lab.net").get("state") == "Running"), lab.state()
    return "bj-cas.lab.net"


def nft_tables() -> str:
    return subprocess.run(
        [tool("nft", "nftables"), "list", "tables"], capture_output=True, text=True, check=True
    ).stdout


def test_up_is_healthy_on_the_standard_ports_and_says_how_to_reach_it(lab: Lab) -> None:
    print(f"lab up --detach to all healthy: {lab.healthy_after:.1f} s (goal {GOAL:.0f} s)")
    assert lab.healthy_after < 30  # the goal is measured, not asserted: CI machines vary
    out = lab.up_output
    assert set(lab.passwords) == {"alice@lab.net", "bob@lab.net", "carol@lab.net"}
    assert "DNS          127.77.0.53 port 53" in out
    assert "CAS01        127.77.1.11 (CAS01.lab.net): IMAP 143 (STARTTLS) and 993 (TLS)" in out
    assert "MBX01        127.77.1.21 (MBX01.lab.net): SMTP 25, submission 587" in out
    assert f"Stop         casarray lab down --home {lab.home}" in out
    config = json.loads((lab.home / "lab.json").read_text())
    assert (config["port_offset"], config["dns_port"], config["data_plane"]) == (0, 53, "Kernel")
    assert config["dns_address"] == "127.77.0.53"
    status = lab.status()
    assert status["healthy"], status["problems"]
    assert [(p["name"], p["state"]) for p in status["processes"]] == [
        ("DNS", "Running"),
        ("CAS01", "Running"),
        ("CAS02", "Running"),
        ("MBX01", "Running"),
        ("MBX01-transport", "Running"),
        ("CAS03", "Running"),
        ("MBX02", "Running"),
        ("MBX02-transport", "Running"),
    ]
    # the passwords are stored hashed and shown once: a second `up` only says it runs
    again = lab.run("up", "--detach")
    assert again.returncode == 0
    assert "already running" in again.stdout and "alice@lab.net" not in again.stdout
    foreground = lab.run("up")
    assert foreground.returncode == 1 and "is already running" in foreground.stderr
    stored = b"".join(p.read_bytes() for p in lab.home.glob("directory.db*"))
    assert b"$argon2" in stored
    assert not any(password.encode() in stored for password in lab.passwords.values())
    with Directory.open(f"sqlite:///{lab.home / 'directory.db'}") as d:
        assert d.mailboxes.authenticate("bob@lab.net", lab.passwords["bob@lab.net"])


def test_real_clients_reach_every_role(lab: Lab) -> None:
    dig = tool("dig", "bind9-dnsutils")
    answer = subprocess.run(
        [dig, "@127.77.0.53", "+short", "+time=2", "+tries=1", "cas01.lab.net"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.split() == ["127.77.1.11"]
    curl = tool("curl", "curl")
    page = subprocess.run(
        [curl, "-s", "http://127.77.1.12/owa/healthcheck.htm"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert page.stdout == "200 OK<br/>CAS02.lab.net"
    # the seed's mailboxes hold their first messages; DB01 is served through CAS01
    subjects = imap_inbox("127.77.1.11", 143, "alice@lab.net", lab.passwords["alice@lab.net"])
    assert subjects[0] == "Welcome to lab.net" and len(subjects) == 3
    subjects = imap_inbox("127.77.2.11", 143, "carol@lab.net", lab.passwords["carol@lab.net"])
    assert len(subjects) == 3


def test_mail_from_outside_reaches_a_mailbox_through_the_hub_transport(lab: Lab) -> None:
    """The outside world's MTA (Postfix) hands a message for bob to MBX01's Default
    receive connector; it is in bob's INBOX (DB01, through CAS01) within seconds."""
    from tests.peers.postfix import PostfixPeer, missing

    required(missing())
    started = time.monotonic()
    outside = PostfixPeer(hostname="mx.example.net", relay_to=("127.77.1.21", 25))
    with outside, smtplib.SMTP(outside.host, outside.port) as client:
        client.sendmail(
            "dave@example.net",
            ["bob@lab.net"],
            b"From: Dave <dave@example.net>\r\nTo: bob@lab.net\r\n"
            b"Subject: From outside\r\n\r\nHello Bob.\r\n",
        )
        password = lab.passwords["bob@lab.net"]
        arrived = wait_for(
            lambda: "From outside" in imap_inbox("127.77.1.11", 143, "bob@lab.net", password),
            timeout=30,
        )
        assert arrived, outside.log()[-3000:]
    print(f"\nPostfix -> MBX01 -> bob's INBOX over IMAP: {time.monotonic() - started:.1f} s")


def test_status_shows_servers_arrays_nodes_and_databases(lab: Lab, cluster: str) -> None:
    assert wait_for(lambda: all(n["state"] == "Converged" for n in lab.status()["nodes"]))
    result = lab.run("status")
    assert result.returncode == 0
    text = result.stdout
    assert "Lab lab.net healthy" in text and "standard ports, Kernel data plane" in text
    for row in (
        ("DNS", "DNS", "127.77.0.53:53", "Running", "serial"),
        ("CAS01", "CAS", "BJ", "127.77.1.11", "Running", "OWA AD IMAP API"),
        ("MBX01", "Mailbox", "BJ", "127.77.1.21", "Running", "DB01 mounted"),
        ("bj-cas.lab.net", "NLB Kernel", "127.77.1.10", "Running", "2 of 2 nodes up"),
        ("BJ CAS Array", "bj-cas.lab.net", "BJ", "CAS01, CAS02"),
        ("bj-cas.lab.net", "CAS01", "Started", "Converged"),
        ("DB01", "MBX01", "True", "CAS01.lab.net", "2"),
        ("DB03", "MBX02", "True", "CAS03.lab.net", "1"),
    ):
        assert has_row(text, *row), f"{row} not in\n{text}"
    assert "bj-cas.lab.net is up (pid" in text  # the events
    dig = tool("dig", "bind9-dnsutils")
    answer = subprocess.run(
        [dig, "@127.77.0.53", "+short", "+time=2", "+tries=1", "bj-cas.lab.net"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.split() == ["127.77.1.10"]
    assert http_get("127.77.1.10", 80, "/owa/healthcheck.htm")[0] == 200


def test_kill_is_not_restarted_until_start(lab: Lab) -> None:
    pid = lab.process("CAS02")["pid"]
    result = lab.run("kill", "CAS02")
    assert result.returncode == 0
    assert f"CAS02 killed (kill -9 of pid {pid})" in result.stdout
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}"))
    status = lab.status()
    cas02 = next(p for p in status["processes"] if p["name"] == "CAS02")
    assert cas02["state"] == "Killed" and cas02["pid"] is None
    assert "CAS02 is Killed" in " ".join(status["problems"])
    text = lab.run("status").stdout
    assert has_row(text, "CAS02", "CAS", "BJ", "127.77.1.12", "Killed", "-"), text
    with pytest.raises(OSError):
        http_get("127.77.1.12", 80, "/owa/healthcheck.htm")
    assert lab.process("CAS02")["state"] == "Killed"  # still, after the restart delays
    result = lab.run("start", "CAS02")
    assert result.returncode == 0 and "CAS02 started" in result.stdout
    assert wait_for(lambda: lab.process("CAS02").get("state") == "Running")
    assert http_get("127.77.1.12", 80, "/owa/healthcheck.htm")[0] == 200
    unknown = lab.run("kill", "CAS09")
    assert unknown.returncode == 1
    assert "The lab has no process named 'CAS09' (it has DNS, CAS01" in unknown.stderr


def test_a_crash_is_restarted_with_backoff_and_the_log_says_so(lab: Lab) -> None:
    pid = json.loads((lab.home / "run" / "dns.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)  # not through `lab kill`: a crash
    assert wait_for(
        lambda: (p := lab.process("DNS")).get("state") == "Running" and p.get("pid") != pid
    ), lab.state()
    assert lab.process("DNS")["restarts"] == 1
    said = f"DNS (pid {pid}) exited with status -9 (SIGKILL); starting it again in 0.5 s"
    assert said in lab.logs("DNS") and said in lab.logs("lab")
    assert said in lab.run("logs", "DNS").stdout
    dig = tool("dig", "bind9-dnsutils")
    answer = subprocess.run(
        [dig, "@127.77.0.53", "+short", "+time=2", "+tries=1", "mbx01.lab.net"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.split() == ["127.77.1.21"]


def test_a_killed_mailbox_server_leaves_its_databases_mounted(lab: Lab) -> None:
    url = f"sqlite:///{lab.home / 'directory.db'}"
    assert lab.run("kill", "MBX01").returncode == 0
    with Directory.open(url) as d:
        assert d.databases.one("DB01").mounted  # as a crashed store leaves them
    assert lab.run("start", "MBX01").returncode == 0
    assert wait_for(lambda: lab.process("MBX01").get("state") == "Running")
    assert "DB01 was left mounted (its store wasn't stopped cleanly); checking it" in lab.logs(
        "MBX01"
    )


def test_add_server_joins_the_array_and_the_balancer(lab: Lab, cluster: str) -> None:
    result = lab.run("add-server", "CAS04", "--site", "BJ", "--roles", "ClientAccess")
    assert result.returncode == 0, result.stderr
    assert "Installed CAS04 (CAS04.lab.net, 127.77.1.13) in site BJ" in result.stdout
    assert "member of the client access array BJ CAS Array (bj-cas.lab.net)" in result.stdout
    assert "The lab runs CAS04." in result.stdout
    assert http_get("127.77.1.13", 80, "/owa/healthcheck.htm") == (200, "200 OK<br/>CAS04.lab.net")

    def cas04_serving() -> bool:  # up: in its slow start (Converging), then Converged
        nodes = {n["node"]: n["state"] for n in lab.status()["nodes"]}
        return nodes.get("CAS04") in ("Converging", "Converged")

    assert wait_for(cas04_serving), lab.status()["nodes"]
    # clients from many addresses (affinity Single keys on the address): CAS04 gets
    # some, even at the 10% of its weight it starts with
    answered = [
        http_get(
            "127.77.1.10", 80, "/owa/healthcheck.htm", source=f"127.5.{i // 250}.{i % 250 + 1}"
        )
        for i in range(200)
    ]
    assert {status for status, _ in answered} == {200}
    assert "200 OK<br/>CAS04.lab.net" in {body for _, body in answered}
    bad = lab.run("add-server", "CAS04", "--site", "BJ")
    assert bad.returncode == 1 and "CAS04" in bad.stderr


def test_down_leaves_no_process_status_file_or_table(lab: Lab, cluster: str) -> None:
    lab.run("kill", cluster)  # kill -9 leaves the Kernel plane's table behind
    assert CLUSTER_TABLE in nft_tables()
    processes = lab.processes()
    assert len(processes) >= 8  # the supervisor and its processes
    result = lab.down()
    assert result.returncode == 0
    assert "The lab is down (" in result.stdout
    assert wait_for(lambda: not lab.processes(), timeout=5), lab.processes()
    assert not list((lab.home / "run").glob("*.json"))
    assert not (lab.home / "run" / "lab.sock").exists()
    assert CLUSTER_TABLE not in nft_tables()
    status = lab.run("status")
    assert status.returncode == 3 and "isn't running" in status.stdout
    assert "isn't running" in lab.down().stdout
    # reset asks first (no terminal here: it wants --yes), then deletes the organization
    refused = lab.run("reset")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert (lab.home / "directory.db").exists()
    assert lab.run("reset", "--yes").returncode == 0
    assert not (lab.home / "directory.db").exists() and not (lab.home / "lab.json").exists()
    assert not (lab.home / "databases").exists()
