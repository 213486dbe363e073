"""HAProxy engine: rendering of haproxy.cfg, `haproxy -c` on it, and a real haproxy
in front of two greeting backends, drained through the runtime API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from casarray.balancer import haproxy
from casarray.balancer.model import (
    Affinity,
    ClusterView,
    FilteringMode,
    HostState,
    Node,
    PortRule,
    RuleProtocol,
)

CAS01 = Node("CAS01", "127.77.1.11", host_id=1, priority=1)
CAS02 = Node("CAS02", "127.77.1.12", host_id=2, priority=2)
CHECK = "check inter 500 fall 2 rise 2 slowstart 10s observe layer4 error-limit 1 on-error"


def view(*rules: PortRule, nodes: tuple[Node, ...] = (CAS01, CAS02), **kw: int) -> ClusterView:
    return ClusterView("bj-cas.lab.net", "127.77.1.10", nodes, rules, **kw)


def section(config: str, header: str) -> list[str]:
    """The lines of one section (without the header), stripped."""
    blocks = config.split("\n\n")
    block = next(b for b in blocks if b.startswith(header + "\n"))
    return [line.strip() for line in block.splitlines()[1:]]


def test_exact_config_for_an_imap_rule() -> None:
    cluster = view(PortRule(143, 143, protocol=RuleProtocol.TCP, affinity=Affinity.NONE))
    assert haproxy.render_config(cluster, socket_path="/run/ca.sock") == (
        "# casarray: NLB cluster bj-cas.lab.net (127.77.1.10), rendered for HAProxy\n"
        "\n"
        "global\n"
        "    stats socket /run/ca.sock mode 600 level admin\n"
        "    stats timeout 2m\n"
        "    spread-checks 20\n"
        "\n"
        "defaults\n"
        "    mode tcp\n"
        "    option redispatch\n"
        "    retries 2\n"
        "    timeout connect 2s\n"
        "    timeout client 30m\n"
        "    timeout server 30m\n"
        "    timeout check 2s\n"
        "\n"
        "frontend bj-cas.lab.net_143\n"
        "    bind 127.77.1.10:143\n"
        "    default_backend be_bj-cas.lab.net_143\n"
        "\n"
        "backend be_bj-cas.lab.net_143\n"
        "    balance roundrobin\n"
        "    option tcp-check\n"
        '    tcp-check expect string "* OK"\n'
        f"    server CAS01 127.77.1.11:143 {CHECK} mark-down weight 50\n"
        f"    server CAS02 127.77.1.12:143 {CHECK} mark-down weight 50\n"
    )


def test_names() -> None:
    rule = PortRule(1000, 2000)
    assert haproxy.frontend_name(view(), rule) == "bj-cas.lab.net_1000-2000"
    assert haproxy.backend_name(view(), rule) == "be_bj-cas.lab.net_1000-2000"
    assert haproxy.server_name(Node("CAS 03", "1.2.3.4", 3, 3)) == "CAS_03"


def test_affinities_and_stick_tables() -> None:
    config = haproxy.render_config(
        view(
            PortRule(143, 143, affinity=Affinity.SINGLE, timeout_minutes=30),
            PortRule(144, 144, affinity=Affinity.SINGLE),
            PortRule(145, 145, affinity=Affinity.NETWORK, timeout_minutes=5),
            PortRule(146, 146, affinity=Affinity.NONE),
        ),
        socket_path="s",
    )
    single = section(config, "backend be_bj-cas.lab.net_143")
    assert single[:4] == [
        "balance source",
        "hash-type consistent",
        "stick-table type ip size 100k expire 30m",
        "stick on src",
    ]
    assert not any("stick" in line for line in section(config, "backend be_bj-cas.lab.net_144"))
    network = section(config, "backend be_bj-cas.lab.net_145")
    assert network[:4] == [
        "balance hash src,ipmask(24)",
        "hash-type consistent",
        "stick-table type ip size 100k expire 5m",
        "stick on src,ipmask(24)",
    ]
    assert section(config, "backend be_bj-cas.lab.net_146")[0] == "balance roundrobin"
    least = haproxy.render_config(
        view(PortRule(146, 146, affinity=Affinity.NONE)), socket_path="s", balance_none="leastconn"
    )
    assert "    balance leastconn\n" in least


def test_health_checks_by_port() -> None:
    config = haproxy.render_config(
        view(PortRule(993, 993), PortRule(443, 443), PortRule(80, 80), PortRule(25, 25)),
        socket_path="s",
        health_path="/ews/healthcheck.htm",
    )
    imaps = section(config, "backend be_bj-cas.lab.net_993")
    assert 'tcp-check expect string "* OK"' in imaps
    assert imaps[-1].endswith("weight 50 check-ssl verify none")
    https = section(config, "backend be_bj-cas.lab.net_443")
    assert "option httpchk GET /ews/healthcheck.htm" in https
    assert "http-check expect status 200" in https
    assert https[-1].endswith("check-ssl verify none")
    http = section(config, "backend be_bj-cas.lab.net_80")
    assert "option httpchk GET /ews/healthcheck.htm" in http
    assert not any("check-ssl" in line for line in http)
    smtp = section(config, "backend be_bj-cas.lab.net_25")
    assert [line.split()[0] for line in smtp] == ["balance", "hash-type", "server", "server"]


def test_weights_states_and_single_host_mode() -> None:
    nodes = (
        Node("CAS03", "127.77.1.13", 3, 3, state=HostState.STOPPED),
        Node("CAS02", "127.77.1.12", 2, 2, state=HostState.DRAINING),
        CAS01,
    )
    rule = PortRule(143, 143, mode=FilteringMode.SINGLE, weights={"CAS01": 80})
    servers = section(
        haproxy.render_config(view(rule, nodes=nodes), socket_path="s"),
        "backend be_bj-cas.lab.net_143",
    )
    servers = [line for line in servers if line.startswith("server")]
    assert [line.split()[1] for line in servers] == ["CAS01", "CAS02", "CAS03"]
    assert servers[0].endswith("weight 80")
    assert servers[1].endswith("weight 0 backup")
    assert servers[2].endswith("weight 50 backup disabled")


def test_ports_offsets_ranges_disabled_udp() -> None:
    config = haproxy.render_config(
        view(
            PortRule(143, 143),
            PortRule(1000, 1002),
            PortRule(25, 25, mode=FilteringMode.DISABLED),
            PortRule(53, 53, protocol=RuleProtocol.UDP),
            backend_offset=10000,
            listen_offset=20000,
        ),
        socket_path="s",
    )
    assert section(config, "frontend bj-cas.lab.net_143")[0] == "bind 127.77.1.10:20143"
    assert "server CAS01 127.77.1.11:10143 check " in config
    assert section(config, "frontend bj-cas.lab.net_1000-1002")[0] == (
        "bind 127.77.1.10:21000-21002"
    )
    ranged = section(config, "backend be_bj-cas.lab.net_1000-1002")
    assert ranged[-1].startswith("server CAS02 127.77.1.12:-10000 check ")
    assert " port 11000 " in ranged[-1]
    assert section(config, "frontend bj-cas.lab.net_25") == [
        "bind 127.77.1.10:20025",
        "tcp-request connection reject",
    ]
    assert "backend be_bj-cas.lab.net_25" not in config
    assert "# port rule 53/udp left out" in config
    same = haproxy.render_config(
        view(PortRule(1000, 1002), backend_offset=5, listen_offset=5), socket_path="s"
    )
    assert "server CAS01 127.77.1.11 check " in same


# -- a real haproxy --------------------------------------------------------------

HAPROXY = "/usr/sbin/haproxy"
VIP = "127.77.8.10"
BACKENDS = ("127.77.8.11", "127.77.8.12")


@pytest.fixture
def haproxy_binary() -> str:
    if os.path.exists(HAPROXY):
        return HAPROXY
    message = f"{HAPROXY} not found (Debian package haproxy)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def common_free_port() -> int:
    for _ in range(50):
        port = free_port(BACKENDS[0])
        with socket.socket() as sock:
            try:
                sock.bind((BACKENDS[1], port))
            except OSError:
                continue
        return port
    raise RuntimeError("no common free port")


def test_proxy_protocol_rules() -> None:
    text = haproxy.render_config(
        view(PortRule(143, 143, proxy_protocol=True), PortRule(993, 993)), socket_path="s"
    )
    imap, imaps = text.split("\nbackend ")[1:3]
    assert "source 127.77.1.10" in imap and "send-proxy-v2 check-send-proxy" in imap
    assert "source 127" not in imaps and "send-proxy" not in imaps


def test_rendered_config_is_valid(haproxy_binary: str, tmp_path: Path) -> None:
    cluster = view(
        PortRule(143, 143, affinity=Affinity.NONE),
        PortRule(993, 993, timeout_minutes=20),
        PortRule(443, 443, affinity=Affinity.NETWORK, timeout_minutes=5),
        PortRule(80, 80, mode=FilteringMode.SINGLE),
        PortRule(1000, 1010, proxy_protocol=True),
        PortRule(2000, 2000, proxy_protocol=True),
        PortRule(25, 25, mode=FilteringMode.DISABLED),
        PortRule(53, 53, protocol=RuleProtocol.UDP),
        nodes=(CAS01, CAS02, Node("CAS03", "127.77.1.13", 3, 3, state=HostState.SUSPENDED)),
        backend_offset=10000,
    )
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy.render_config(cluster, socket_path=tmp_path / "admin.sock"))
    result = subprocess.run(
        [haproxy_binary, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stdout + result.stderr


@contextlib.asynccontextmanager
async def greeting_backends(port: int) -> AsyncIterator[None]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host = writer.get_extra_info("sockname")[0]
        with contextlib.suppress(ConnectionError):
            writer.write(f"* OK {host} ready\r\n".encode())
            await writer.drain()
            await reader.read(1024)
        writer.close()

    servers = [await asyncio.start_server(serve, host, port) for host in BACKENDS]
    try:
        yield
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


@contextlib.contextmanager
def running_haproxy(binary: str, cfg: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (cfg.parent / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(cfg)], cwd=cfg.parent, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def greeting(port: int) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(VIP, port), 2)
    try:
        line = await asyncio.wait_for(reader.readline(), 2)
        return line.decode().split()[2]
    finally:
        writer.close()


async def test_haproxy_forwards_and_drains(haproxy_binary: str, tmp_path: Path) -> None:
    backend_port = common_free_port()
    listen_port = free_port(VIP)
    nodes = tuple(
        Node(f"N{i}", address, host_id=i, priority=i) for i, address in enumerate(BACKENDS, 1)
    )
    rule = PortRule(143, 143, protocol=RuleProtocol.TCP, affinity=Affinity.NONE)
    cluster = ClusterView(
        "hap-test.lab.net",
        VIP,
        nodes,
        (rule,),
        backend_offset=backend_port - 143,
        listen_offset=listen_port - 143,
    )
    sock = tmp_path / "admin.sock"
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(haproxy.render_config(cluster, socket_path=sock))
    api = haproxy.RuntimeApi(sock)
    backend = haproxy.backend_name(cluster, rule)

    async with greeting_backends(backend_port):
        with running_haproxy(haproxy_binary, cfg) as process:
            deadline = time.monotonic() + 5
            while True:  # the socket is up and both checks (`* OK`) passed
                with contextlib.suppress(haproxy.RuntimeApiError):
                    states = await api.servers_state(backend)
                    checked = all(s.fields["srv_check_result"] == "3" for s in states)
                    if len(states) == 2 and checked and all(s.up for s in states):
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "haproxy.log").read_text()[-2000:]
                    pytest.fail(f"haproxy not ready: {log}")
                await asyncio.sleep(0.05)
            assert {s.server for s in states} == {"N1", "N2"}
            assert all(s.weight == 50 and not s.draining for s in states)

            seen = Counter([await greeting(listen_port) for _ in range(20)])
            assert seen == Counter({BACKENDS[0]: 10, BACKENDS[1]: 10})

            await api.set_state(backend, "N2", "drain")
            n2 = next(s for s in await api.servers_state(backend) if s.server == "N2")
            assert n2.draining and not n2.maintenance
            seen = Counter([await greeting(listen_port) for _ in range(10)])
            assert seen == Counter({BACKENDS[0]: 10})

            await api.set_state(backend, "N2", "ready")
            await api.set_weight(backend, "N1", 0)
            n1 = next(s for s in await api.servers_state(backend) if s.server == "N1")
            assert n1.weight == 0
            seen = Counter([await greeting(listen_port) for _ in range(10)])
            assert seen == Counter({BACKENDS[1]: 10})

            await api.set_state(backend, "N2", "maint")
            n2 = next(s for s in await api.servers_state(backend) if s.server == "N2")
            assert n2.maintenance

            with pytest.raises(haproxy.RuntimeApiError):
                await api.set_state(backend, "nosuch", "drain")
