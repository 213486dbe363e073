"""The HAProxy pair with keepalived (`balancer.keepalived`): the configuration it
writes, and, in network namespaces as root, two balancer hosts sharing a cluster IP in
front of a backend: kill the active host (every process, SIGKILL, and its link down)
and new connections through the cluster IP recover through the other.

The namespaces and the bridge are this module's own (`ckp` and a random suffix), with
addresses from 198.19.201.0/24 only, removed however the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casarray.balancer import haproxy
from casarray.balancer.keepalived import (
    Keepalived,
    KeepalivedError,
    VrrpInstance,
    render_config,
    virtual_router_id,
    vrrp_priority,
)
from casarray.balancer.model import Affinity, ClusterView, Node, PortRule, RuleProtocol

SUBNET = "198.19.201"
VIP = f"{SUBNET}.10"
PORT = 8143


def test_config_names_the_address_the_peers_and_the_check(tmp_path: Path) -> None:
    instance = VrrpInstance(
        cluster="bj-cas.lab.net",
        interface="eth0",
        address="198.18.1.10/24",
        priority=vrrp_priority(0),
        advert_interval=0.2,
        peers=("198.18.1.7",),
        source="198.18.1.6",
        haproxy_pid_file=tmp_path / "haproxy.pid",
    )
    text = render_config(instance)
    assert "vrrp_instance casarray_bj_cas_lab_net {" in text
    assert f"virtual_router_id {virtual_router_id('bj-cas.lab.net')}" in text
    assert "priority 250" in text and "advert_int 0.2" in text and "vrrp_version 3" in text
    assert "unicast_src_ip 198.18.1.6" in text and "        198.18.1.7" in text
    assert "198.18.1.10/24 dev eth0" in text
    assert f"kill -0 $(head -n 1 {tmp_path / 'haproxy.pid'})" in text and "weight -100" in text
    # the same router id on every host of the pair, and one in VRRP's range
    assert 1 <= virtual_router_id("BJ-CAS.lab.net") == virtual_router_id("bj-cas.lab.net") <= 255
    assert vrrp_priority(0) - 100 < vrrp_priority(1) < vrrp_priority(0)  # a failed check hands over


def test_bad_settings_are_refused() -> None:
    good = VrrpInstance("c.lab.net", "eth0", "198.18.1.10/24", 100)
    with pytest.raises(KeepalivedError, match="priority 255"):
        render_config(VrrpInstance("c.lab.net", "eth0", "198.18.1.10/24", 255))
    with pytest.raises(ValueError):
        render_config(VrrpInstance("c.lab.net", "eth0", "not-an-address", 100))
    assert "advert_int 1" in render_config(good) and "vrrp_version" not in render_config(good)


# -- the pair in network namespaces ------------------------------------------------------------


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "root (network namespaces)"
    for tool in ("ip", "haproxy", "keepalived"):
        if shutil.which(tool) is None:
            return tool
    return None


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def in_ns(ns: str, *argv: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)  # type: ignore[call-overload]


def kill_host(ns: str, link: str) -> None:
    """The host dies: every process in it gets SIGKILL, then its link goes down."""
    kill_all(ns)
    ip("link", "set", link, "down")


BACKEND = textwrap.dedent(
    """
    import socket
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", {port})); s.listen(128)
    while True:
        c, _ = s.accept(); c.sendall(b"hello\\n"); c.close()
    """
)
CLIENT = textwrap.dedent(
    """
    import json, socket, sys, time
    end = time.monotonic() + float(sys.argv[1]); out = []
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            with socket.create_connection(("{vip}", {port}), timeout=0.3) as c:
                c.settimeout(0.5)
                ok = c.recv(16) == b"hello\\n"
        except OSError:
            ok = False
        out.append((t, ok)); time.sleep(0.02)
    print(json.dumps(out))
    """
)


@pytest.fixture
def network() -> Iterator[dict[str, str]]:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):  # CI runs as root with the Makefile's packages
            pytest.fail(f"the HAProxy pair test needs {missing}")
        pytest.skip(f"the HAProxy pair test needs {missing}")
    tag = "ckp" + secrets.token_hex(2)
    hosts = {
        "lb1": f"{SUBNET}.2",
        "lb2": f"{SUBNET}.3",
        "be": f"{SUBNET}.20",
        "cl": f"{SUBNET}.100",
    }
    bridge = f"{tag}br"
    names = {h: f"{tag}{h}" for h in hosts}
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("link", "set", bridge, "up")
        for host, address in hosts.items():
            ns = names[host]
            ip("netns", "add", ns)
            ip("link", "add", f"{tag}{host}v", "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", f"{tag}{host}v", "master", bridge, "up")
            ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield {**names, "tag": tag}
    finally:
        for ns in names.values():
            kill_all(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        for host in hosts:
            subprocess.run(["ip", "link", "del", f"{tag}{host}v"], capture_output=True, check=False)


def kill_all(ns: str) -> None:
    found = subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10, check=False
    )
    for pid in found.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def has_vip(ns: str) -> bool:
    out = subprocess.run(
        ["ip", "-n", ns, "-4", "addr", "show", "dev", "eth0"], capture_output=True, text=True
    )
    return f"{VIP}/" in out.stdout


def wait_for(what: str, check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:g} s")
        time.sleep(0.05)


Pair = list[tuple[subprocess.Popen[bytes], Keepalived]]


def recovery(after: list[tuple[float, bool]], run: int = 20) -> float | None:
    """When the first of `run` consecutive successful new connections began (the
    failover measure of bench/balancer.py); None if there is no such run."""
    streak = 0
    for i, (_, ok) in enumerate(after):
        streak = streak + 1 if ok else 0
        if streak == run:
            return after[i - run + 1][0]
    return None


def reachable(ns: str) -> bool:
    """One new connection from `ns` through the cluster IP is answered."""
    probe = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            ns,
            sys.executable,
            "-c",
            CLIENT.format(vip=VIP, port=PORT),
            "0.01",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return probe.returncode == 0 and all(ok for _, ok in json.loads(probe.stdout or "[]"))


def kill_lb1_while_connecting(
    network: dict[str, str], *, seconds: float, lead: float
) -> tuple[float, list[tuple[float, bool]]]:
    """A client in `cl` opening new connections through the cluster IP for `seconds`;
    `lead` seconds in, lb1 (the active host) is killed. (When, every attempt.)"""
    client = in_ns(
        network["cl"],
        sys.executable,
        "-c",
        CLIENT.format(vip=VIP, port=PORT),
        str(seconds),
        stdout=subprocess.PIPE,
    )
    time.sleep(lead)
    killed = time.monotonic()
    kill_host(network["lb1"], f"{network['tag']}lb1v")
    out, _ = client.communicate(timeout=30)
    return killed, [(t, ok) for t, ok in json.loads(out)]


def start_pair(
    network: dict[str, str], tmp_path: Path
) -> list[tuple[subprocess.Popen[bytes], Keepalived]]:
    """haproxy and keepalived on lb1 (the preferred master) and lb2, in front of `be`."""
    view = ClusterView(
        name="pair.lab.net",
        ip=VIP,
        nodes=(Node("BE", f"{SUBNET}.20", 1, 1),),
        rules=(PortRule(PORT, PORT, protocol=RuleProtocol.TCP, affinity=Affinity.NONE),),
    )
    pairs = []
    for rank, host in enumerate(("lb1", "lb2")):
        ns = network[host]
        subprocess.run(
            ["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"],
            check=True,
        )
        work = tmp_path / host
        work.mkdir()
        (work / "haproxy.cfg").write_text(
            haproxy.render_config(view, socket_path=work / "haproxy.sock")
        )
        proxy = in_ns(
            ns,
            "haproxy",
            "-db",
            "-f",
            str(work / "haproxy.cfg"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (work / "haproxy.pid").write_text(f"{proxy.pid}\n")
        keeper = Keepalived(
            VrrpInstance(
                cluster=view.name,
                interface="eth0",
                address=f"{VIP}/24",
                priority=vrrp_priority(rank),
                advert_interval=0.2,
                peers=(f"{SUBNET}.{3 - rank}",),
                source=f"{SUBNET}.{2 + rank}",
                haproxy_pid_file=work / "haproxy.pid",
            ),
            work,
            wrapper=("ip", "netns", "exec", ns),
        )
        pairs.append((proxy, keeper))
        keeper.start()
    return pairs


def test_killing_the_active_balancer_host_moves_the_cluster_ip(
    network: dict[str, str], tmp_path: Path
) -> None:
    backend = in_ns(network["be"], sys.executable, "-c", BACKEND.format(port=PORT))
    pairs: Pair = []
    try:
        pairs = start_pair(network, tmp_path)
        wait_for("the preferred host holds the cluster IP", lambda: has_vip(network["lb1"]))
        assert not has_vip(network["lb2"])
        wait_for("a connection through the cluster IP", lambda: reachable(network["cl"]))

        killed, results = kill_lb1_while_connecting(network, seconds=6, lead=1.5)
        before = [ok for t, ok in results if t < killed]
        after = [(t, ok) for t, ok in results if t >= killed]
        assert before and all(before), "connections through the cluster IP before the kill"
        assert has_vip(network["lb2"]), "the backup took the cluster IP"
        back = recovery(after)
        assert back is not None, "new connections through the cluster IP recover"
        assert all(ok for _, ok in after[-20:]), "and keep succeeding"
        print(f"failover: {back - killed:.2f} s to the first of 20 successful connections")
    finally:
        backend.kill()
        for proxy, keeper in pairs:
            keeper.stop()
            proxy.kill()


def test_the_active_hosts_haproxy_dying_hands_the_address_over(
    network: dict[str, str], tmp_path: Path
) -> None:
    """keepalived on the master checks its haproxy: once it is gone the master's
    priority drops below the backup's, which takes the address; the master takes it
    back when its haproxy returns."""
    pairs: Pair = []
    try:
        pairs = start_pair(network, tmp_path)
        wait_for("the preferred host holds the cluster IP", lambda: has_vip(network["lb1"]))
        proxy, keeper = pairs[0]
        proxy.kill()
        proxy.wait()
        wait_for("the backup takes the address", lambda: has_vip(network["lb2"]))
        assert not has_vip(network["lb1"])
        again = in_ns(
            network["lb1"],
            "haproxy",
            "-db",
            "-f",
            str(tmp_path / "lb1" / "haproxy.cfg"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        (tmp_path / "lb1" / "haproxy.pid").write_text(f"{again.pid}\n")
        pairs[0] = (again, keeper)
        wait_for("the preferred host takes the address back", lambda: has_vip(network["lb1"]))
    finally:
        for proxy, keeper in pairs:
            keeper.stop()
            proxy.kill()


def test_the_pair_as_balancer_processes_driven_from_the_directory(
    network: dict[str, str], tmp_path: Path
) -> None:
    """`casarray balancer run CLUSTER --engine HAProxy --vrrp-rank N` on each balancer
    host: the cluster, its node and port rule come from the directory (New-NlbCluster,
    Add-NlbClusterPortRule); the preferred host holds the cluster IP, its loss moves
    it, and new connections recover through the other."""
    from casarray.directory import Directory

    url = f"sqlite:///{tmp_path / 'directory.db'}"
    with Directory.open(url) as directory:
        directory.sites.new("BJ", (f"{SUBNET}.0/24",))
        directory.servers.new("CAS01", "ClientAccess", f"{SUBNET}.20", site="BJ")
        directory.nlb.install_feature("CAS01", ["NLB"])
        directory.nlb.new_cluster("pair.lab.net", VIP, host="CAS01", subnet_mask="255.255.255.0")
        directory.nlb.remove_port_rule("pair.lab.net", 0)
        directory.nlb.add_port_rule("pair.lab.net", PORT, PORT, protocol="Tcp", affinity="None")
    tag = network["tag"]
    backend = in_ns(network["be"], sys.executable, "-c", BACKEND.format(port=PORT))
    balancers = []
    homes: list[Path] = []
    try:
        for rank, host in enumerate(("lb1", "lb2")):
            # short: haproxy's socket paths must fit 97 characters
            home = Path(tempfile.mkdtemp(prefix=f"{tag}{host}"))
            homes.append(home)
            env = dict(os.environ, CASARRAY_HOME=str(home))
            argv = [sys.executable, "-m", "casarray", "balancer", "run", "pair.lab.net"]
            argv += ["--directory", url, "--engine", "HAProxy", "--vrrp-rank", str(rank)]
            argv += ["--vrrp-peer", f"{SUBNET}.{3 - rank}", "--vrrp-source", f"{SUBNET}.{2 + rank}"]
            argv += ["--vrrp-advert", "0.2", "--log-file", str(home / "balancer.log")]
            balancers.append(in_ns(network[host], *argv, env=env))
        wait_for("the preferred host holds the cluster IP", lambda: has_vip(network["lb1"]), 30)
        wait_for("a connection through the cluster IP", lambda: reachable(network["cl"]), 30)
        assert not has_vip(network["lb2"])
        wait_for("the other host's haproxy is up", lambda: any(homes[1].rglob("haproxy.pid")))
        killed, results = kill_lb1_while_connecting(network, seconds=5, lead=1.0)
        after = [(t, ok) for t, ok in results if t >= killed]
        back = recovery(after)
        assert back is not None and has_vip(network["lb2"]), "the other host took over"
        print(f"failover: {back - killed:.2f} s to the first of 20 successful connections")
    finally:
        backend.kill()
        for process in balancers:
            process.terminate()
        for process in balancers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        for home in homes:
            shutil.rmtree(home, ignore_errors=True)
