"""`casarray balancer run` in front of two real Client Access servers (`casarray server
run CAS01/CAS02`), set up with the seed's cmdlets: IMAP through the cluster IP spreads
over both, a server killed with -9 costs no new connection after a second, a drained
server keeps its open session and gets no new one. Proxy plane everywhere; Kernel plane
(nftables) as root."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.balancer.balancer_process import status_file as balancer_status
from tests.access.imap.server_harness import (
    Lab,
    free_offset,
    make_lab,
    start_casarray,
    stop_process,
)

VIP = "127.77.1.10"
HOSTS = {"CAS01": "127.77.1.11", "CAS02": "127.77.1.12"}
# The ports wanted free (plus an offset): IMAP on the cluster IP, the servers' own.
LAB_PORTS = [(VIP, (143,))] + [(host, (143, 993, 80, 443)) for host in HOSTS.values()]


@pytest.fixture
def lab(tmp_path: Path, password_hash: str) -> Iterator[Lab]:
    lab = make_lab(tmp_path / "lab", password_hash)
    yield lab
    lab.directory.close()


def wait_for(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if predicate():  # type: ignore[operator]
                return
        time.sleep(0.05)
    raise AssertionError("timed out")


def greeting(port: int) -> str:
    """Which server greets through the cluster IP ("CAS01", ...)."""
    with socket.create_connection((VIP, port), timeout=3) as sock:
        line = sock.makefile("rb").readline().decode()
    assert line.startswith("* OK [CAPABILITY"), line
    return line.split("] ", 1)[1].split(".", 1)[0]


def node_states(path: Path) -> dict[str, str]:
    return {n["name"]: n["state"] for n in json.loads(path.read_text())["nodes"]}


def kernel_missing() -> str | None:
    if os.geteuid() != 0:
        return "the Kernel data plane needs root"
    if shutil.which("nft") is None:
        return "nft (Debian's nftables) is not installed"
    return None


@pytest.mark.parametrize("engine", ["Proxy", "Kernel"])
def test_imap_through_the_cluster_ip(lab: Lab, engine: str) -> None:
    if engine == "Kernel" and (missing := kernel_missing()):
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    offset = free_offset(LAB_PORTS)
    # the seed's steps, as an administrator types them
    lab.shell(
        "Install-WindowsFeature NLB -ComputerName CAS01; "
        "Install-WindowsFeature NLB -ComputerName CAS02; "
        'New-NlbCluster -HostName CAS01 -InterfaceName "Ethernet" -ClusterName bj-cas.lab.net '
        f"-ClusterPrimaryIP {VIP} -DataPlane {engine}; "
        "Add-NlbClusterNode -HostName CAS01 -NewNodeName CAS02 -NewNodeInterface Ethernet; "
        "Remove-NlbClusterPortRule -HostName CAS01 -Port 0 -Force; "
        "Add-NlbClusterPortRule -HostName CAS01 -StartPort 143 -EndPort 143 -Protocol Tcp "
        "-Affinity None" + (" -ProxyProtocol" if engine == "Proxy" else "")
    )
    servers = {
        name: start_casarray(
            ["server", "run", name, "--port-offset", str(offset), "--processes", "1"],
            lab,
            lab.home / f"{name}.log",
        )
        for name in HOSTS
    }
    listen = offset if engine == "Proxy" else 0
    port = 143 + listen
    balancer: subprocess.Popen[bytes] | None = None
    log = lab.home / "balancer.log"
    try:
        for host in HOSTS.values():
            wait_for(lambda host=host: socket.create_connection((host, 143 + offset), 1))
        balancer = start_casarray(
            ["balancer", "run", "bj-cas.lab.net", "--engine", engine,
             "--listen-offset", str(listen), "--backend-offset", str(offset)],
            lab,
            log,
        )  # fmt: skip
        status_file = balancer_status("bj-cas.lab.net", lab.home).path
        wait_for(lambda: json.loads(status_file.read_text())["engine"] == engine)
        seen = Counter(greeting(port) for _ in range(40))
        assert set(seen) == {"CAS01", "CAS02"} and min(seen.values()) >= 8, seen

        # kill -9 CAS02: after one second no new connection fails, all go to CAS01
        servers["CAS02"].kill()
        servers["CAS02"].wait()
        killed = time.monotonic()
        late_failures, answered, late = 0, Counter[str](), []
        while time.monotonic() - killed < 2.5:  # ~500 new connections a second
            time.sleep(0.002)
            try:
                answered[greeting(port)] += 1
            except (OSError, AssertionError) as exc:
                if time.monotonic() - killed > 1.0:
                    late_failures += 1
                    late.append(f"{time.monotonic() - killed:.2f}s {exc!r}")
        # Proxy: a refused connection is retried on another node. Kernel: the dead
        # node's tracked connections are dropped, and so are stale ones at start.
        assert late_failures == 0, (answered, late)
        assert node_states(status_file) == {"CAS01": "Converged", "CAS02": "Unhealthy"}
        shown = lab.shell("Get-NlbClusterNode -HostName CAS01 | Format-List Name,State")
        assert "Unhealthy (imap 143: connection refused)" in shown, shown

        # drain CAS01: its open session goes on; then Start-NlbClusterNode brings it back
        with socket.create_connection((VIP, port), timeout=3) as open_session:
            stream = open_session.makefile("rb")
            assert b"CAS01" in stream.readline()
            lab.shell("Stop-NlbClusterNode -HostName CAS01 -Drain")
            wait_for(
                lambda: (
                    {n["name"]: n["state"] for n in json.loads(status_file.read_text())["nodes"]}[
                        "CAS01"
                    ]
                    == "Draining"
                ),
                timeout=5,
            )
            open_session.sendall(b"a NOOP\r\n")
            assert stream.readline().startswith(b"a OK")
    finally:
        if balancer is not None:
            stop_process(balancer)
        for proc in servers.values():
            stop_process(proc)
    text = log.read_text()
    assert f"{engine} data plane on {VIP}" in text
    if engine == "Proxy":
        # the rule sends a PROXY header: the servers log the real client, via the VIP
        served = (lab.home / "CAS01.log").read_text()
        assert "IMAP connections from 127.77.1.10 begin with a PROXY header" in served
        assert " 127.0.0.1:" in served and f" via {VIP}:" in served
    if engine == "Kernel":
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        assert "casarray_bj_cas_lab_net" not in tables.stdout  # removed at a clean stop


def test_a_server_added_to_the_site_receives_connections_with_no_command(lab: Lab) -> None:
    """The cluster follows the BJ array: CAS04, installed in BJ and started, is a node
    and takes a share of the connections without any NLB cmdlet."""
    offset = free_offset(LAB_PORTS)
    with socket.socket() as probe:  # CAS04's ports too
        probe.bind(("127.77.1.14", 143 + offset))
    lab.shell(
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn bj-cas.lab.net -Site BJ; '
        f'New-NlbCluster -ClusterPrimaryIP {VIP} -ClientAccessArray "BJ CAS Array" '
        "-DataPlane Proxy; "
        "Remove-NlbClusterPortRule -HostName bj-cas.lab.net -Port 0 -Force; "
        "Add-NlbClusterPortRule -HostName bj-cas.lab.net -StartPort 143 -EndPort 143 "
        "-Protocol Tcp -Affinity None"
    )
    run = ["--port-offset", str(offset), "--processes", "1"]
    procs = [start_casarray(["server", "run", "CAS01", *run], lab, lab.home / "CAS01.log")]
    log = lab.home / "balancer.log"
    try:
        wait_for(lambda: socket.create_connection((HOSTS["CAS01"], 143 + offset), 1))
        balancer = ["balancer", "run", "bj-cas.lab.net", "--engine", "Proxy"]
        offsets = ["--listen-offset", str(offset), "--backend-offset", str(offset)]
        procs.append(start_casarray([*balancer, *offsets], lab, log))
        status_file = balancer_status("bj-cas.lab.net", lab.home).path
        wait_for(lambda: node_states(status_file)["CAS01"] == "Converged")
        # the only servers up: CAS01 (CAS02 is a member too, but not running)
        assert Counter(greeting(143 + offset) for _ in range(10)) == Counter({"CAS01": 10})
        lab.shell("New-ExchangeServer -Name CAS04 -Roles ClientAccess -IPAddress 127.77.1.14")
        procs.append(start_casarray(["server", "run", "CAS04", *run], lab, lab.home / "CAS04.log"))
        wait_for(lambda: node_states(status_file).get("CAS04") in ("Converging", "Converged"))
        seen: Counter[str] = Counter()
        deadline = time.monotonic() + 20  # slow start: its share grows over 10 s
        while time.monotonic() < deadline and seen["CAS04"] < 5:
            seen[greeting(143 + offset)] += 1
        assert seen["CAS04"] >= 5, seen
        shown = lab.shell("Get-NlbClusterNode -HostName bj-cas.lab.net | Format-List Name,State")
        assert "CAS04" in shown
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def test_a_hosts_cluster_gets_a_central_engine_only_as_auto_would() -> None:
    """Where the members share one network stack (the single-machine lab) no host can
    keep its own share: a cluster of the Hosts plane is served as Auto's choice."""
    from casarray.balancer.balancer_process import engine_name

    assert engine_name(None, "Hosts") == engine_name(None, "Auto")
    assert engine_name(None, "hosts") == engine_name(None, "Auto")
    assert engine_name("Proxy", "Hosts") == "Proxy"
