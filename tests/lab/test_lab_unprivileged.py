"""`casarray lab` for a user who may not bind ports below 1024 nor change nftables (as
root: with those rights dropped): every port plus 10000 and the Proxy data plane,
decided when the lab is made and kept in lab.json; reached with real clients; down
leaves nothing running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.config import CAP_NET_ADMIN, CAP_NET_BIND_SERVICE
from tests.lab import Lab, http_get, imap_inbox, required, tool, wait_for
from tests.lab.conftest import fresh_lab

DROPPED = "-net_bind_service,-net_admin"


@pytest.fixture
def lab() -> Iterator[Lab]:
    """As root, the lab runs with CAP_NET_BIND_SERVICE and CAP_NET_ADMIN dropped from
    its bounding set (`setpriv`): what a user without root may do, while the code stays
    readable wherever the checkout is (a user such as nobody can't reach one in /root)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        required(None if setpriv else "setpriv (util-linux) is needed to drop root's rights")
        assert setpriv is not None
        prefix = [setpriv, f"--bounding-set={DROPPED}", f"--inh-caps={DROPPED}"]
    with fresh_lab(prefix) as lab:
        yield lab


def effective_capabilities(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no CapEff in /proc/{pid}/status")


def test_without_root_the_ports_are_plus_10000_on_the_proxy_plane(lab: Lab) -> None:
    lab.up()
    print(f"lab up --detach (unprivileged) to all healthy: {lab.healthy_after:.1f} s")
    assert lab.healthy_after < 30
    config = json.loads((lab.home / "lab.json").read_text())
    assert (config["port_offset"], config["dns_port"], config["data_plane"]) == (
        10_000,
        10_053,
        "Proxy",
    )
    assert "DNS          127.77.0.53 port 10053" in lab.up_output
    assert "CAS01        127.77.1.11 (CAS01.lab.net): IMAP 10143 (STARTTLS) and 10993" in (
        lab.up_output
    )
    # no process of the lab may bind low ports or change nftables
    low_ports_or_nft = 1 << CAP_NET_BIND_SERVICE | 1 << CAP_NET_ADMIN
    assert lab.processes()
    assert not any(effective_capabilities(pid) & low_ports_or_nft for pid in lab.processes())

    dig = tool("dig", "bind9-dnsutils")
    answer = subprocess.run(
        [dig, "@127.77.0.53", "-p", "10053", "+short", "+time=2", "+tries=1", "cas03.lab.net"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert answer.stdout.split() == ["127.77.2.11"]
    subjects = imap_inbox("127.77.1.11", 10143, "bob@lab.net", lab.passwords["bob@lab.net"])
    assert len(subjects) == 3

    # the Proxy plane listens on each port of a rule: NLB's default rule (every port)
    # is narrowed to the services' ports
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ; '
        "New-NlbCluster -ClusterName bj-cas.lab.net -ClusterPrimaryIP 127.77.1.10 "
        '-ClientAccessArray "BJ CAS Array"; '
        "Remove-NlbClusterPortRule -HostName bj-cas.lab.net -Port 0 -Force; "
        + "; ".join(
            f"Add-NlbClusterPortRule -HostName bj-cas.lab.net -StartPort {port} "
            f"-EndPort {port} -Protocol Tcp"
            for port in (80, 143, 443, 993)
        )
    )
    assert wait_for(lambda: lab.process("bj-cas.lab.net").get("state") == "Running")
    assert wait_for(lambda: http_get("127.77.1.10", 10080, "/owa/healthcheck.htm")[0] == 200)
    status = lab.status()
    assert {n["engine"] for n in status["nodes"]} == {"Proxy"}
    assert status["port_offset"] == 10_000 and status["healthy"], status["problems"]

    result = lab.down()
    assert result.returncode == 0 and "The lab is down" in result.stdout
    assert wait_for(lambda: not lab.processes(), timeout=5), lab.processes()
    assert not list((lab.home / "run").glob("*.json"))
