"""The control plane with real backends on loopback: connections through the cluster IP
spread over the nodes, a backend killed under load costs no new connection after a
second, a node added to the view receives connections, and a draining node keeps its
open connections but gets no new ones. On the Proxy engine, and on the Kernel engine
(nftables) when root."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from casarray.balancer import nft
from casarray.balancer.control_plane import Balancer, Engine, KernelEngine, ProxyEngine
from casarray.balancer.health_probes import HealthPolicy
from casarray.balancer.model import Affinity, ClusterView, HostState, Node, PortRule, RuleProtocol

FAST = HealthPolicy(interval=0.1, timeout=0.3, slow_start=0)


class Backend:
    """An IMAP-ish node: greets with `* OK <name>` and echoes lines."""

    def __init__(self, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            writer.write(f"* OK {self.name}\r\n".encode())
            await writer.drain()
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def kill(self) -> None:
        """Like kill -9: the listener and every connection go at once."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        await self.server.wait_closed()


async def greeting(host: str, port: int) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    try:
        line = await asyncio.wait_for(reader.readline(), 2)
    finally:
        writer.close()
    if not line.startswith(b"* OK "):
        raise ConnectionError(f"no greeting: {line!r}")
    return line.decode().split()[2]


def view_of(vip: str, port: int, backends: list[Backend], **changes: object) -> ClusterView:
    nodes = tuple(
        Node(b.name, b.host, host_id=i + 1, priority=i + 1) for i, b in enumerate(backends)
    )
    rule = PortRule(port, port, affinity=Affinity.NONE)
    view = ClusterView("bj-cas.lab.net", vip, nodes, (rule,))
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


def kernel_missing() -> str | None:
    if os.geteuid() != 0:
        return "the Kernel engine needs root"
    if shutil.which("nft") is None:
        return "nft (Debian's nftables) is not installed"
    return None


def engines() -> list[str]:
    return ["proxy", "kernel"]


@pytest.fixture(params=engines())
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "kernel" and (missing := kernel_missing()):
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return name


def make_engine(name: str) -> Engine:
    return ProxyEngine() if name == "proxy" else KernelEngine()


# Each engine gets addresses of its own (kernel: 127.77.9.x, as the nft tests use).
ADDRESSES = {
    "proxy": ("127.0.3.10", ["127.0.3.11", "127.0.3.12", "127.0.3.13"]),
    "kernel": ("127.77.9.30", ["127.77.9.31", "127.77.9.32", "127.77.9.33"]),
}
PORT = 20143


@pytest.fixture
async def cluster(engine_name: str) -> AsyncIterator[tuple[Balancer, list[Backend], dict]]:
    vip, hosts = ADDRESSES[engine_name]
    backends = [await Backend(f"CAS0{i + 1}", h, PORT).start() for i, h in enumerate(hosts[:2])]
    spare = Backend("CAS03", hosts[2], PORT)
    state = {"view": view_of(vip, PORT, backends), "spare": spare, "vip": vip}
    balancer = Balancer(
        lambda: state["view"], make_engine(engine_name), checker_options={"policy": FAST}
    )
    await balancer.start()
    loop = asyncio.ensure_future(balancer.loop())
    try:
        yield balancer, backends, state
    finally:
        balancer.stop()
        await loop
        await balancer.close()
        for backend in [*backends, spare]:
            if backend.server is not None:
                backend.server.close()
        if engine_name == "kernel":
            assert not nft.table_exists(state["view"])


async def test_spread_failover_join_and_drain(
    cluster: tuple[Balancer, list[Backend], dict],
) -> None:
    balancer, backends, state = cluster
    vip = state["vip"]
    seen = Counter([await greeting(vip, PORT) for _ in range(60)])
    assert set(seen) == {"CAS01", "CAS02"} and min(seen.values()) >= 15, seen

    # kill -9 CAS02 under load: after one second, no new connection fails
    killed = time.monotonic()
    await backends[1].kill()
    failures_late = 0
    answered: Counter[str] = Counter()
    while time.monotonic() - killed < 2.0:
        try:
            answered[await greeting(vip, PORT)] += 1
        except (OSError, ConnectionError, TimeoutError):
            if time.monotonic() - killed > 1.0:
                failures_late += 1
    assert failures_late == 0
    assert answered["CAS01"] > 10

    # CAS03 joins the view (as a server added to the site does): it takes a share
    spare = await state["spare"].start()
    state["view"] = view_of(vip, PORT, [backends[0], spare])
    await balancer.view_changed()
    await asyncio.sleep(0.5)
    seen = Counter([await greeting(vip, PORT) for _ in range(60)])
    assert seen["CAS03"] >= 15 and seen["CAS01"] >= 15, seen

    # drain CAS03: an open session goes on, new connections all go to CAS01
    for _ in range(40):  # an open session on CAS03
        reader, writer = await asyncio.open_connection(vip, PORT)
        if (await reader.readline()).startswith(b"* OK CAS03"):
            break
        writer.close()
    else:
        raise AssertionError("no connection reached CAS03")
    view = state["view"]
    draining = tuple(
        dataclasses.replace(n, state=HostState.DRAINING) if n.name == "CAS03" else n
        for n in view.nodes
    )
    state["view"] = dataclasses.replace(view, nodes=draining)
    await balancer.view_changed()
    seen = Counter([await greeting(vip, PORT) for _ in range(30)])
    assert seen == Counter({"CAS01": 30}), seen
    writer.write(b"still here\r\n")
    assert await asyncio.wait_for(reader.readline(), 2) == b"still here\r\n"
    # the open session is counted on its node (Proxy: its own count; Kernel: conntrack)
    counts = {n["name"]: n["connections"] for n in balancer.status()["nodes"]}
    assert counts["CAS03"] is not None and counts["CAS03"] >= 1, counts
    writer.close()
    status = balancer.status()
    assert [n["state"] for n in status["nodes"]] == ["Converged", "Draining"]


class UdpEcho(asyncio.DatagramProtocol):
    """A UDP node: answers each datagram with its name and the datagram."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name.encode() + b" " + data, addr)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answers: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.answers.put_nowait((data, addr))


async def test_proxy_plane_relays_udp_of_a_both_rule() -> None:
    """A Both port rule on the Proxy plane: TCP as before, and each UDP client's
    datagrams go to one node, answered from the cluster IP; a node gone moves it."""
    vip, hosts = "127.0.3.20", ["127.0.3.21", "127.0.3.22"]
    loop = asyncio.get_running_loop()
    tcp = [await Backend(f"CAS0{i + 1}", h, PORT).start() for i, h in enumerate(hosts)]
    udp = []
    for backend in tcp:
        transport, _ = await loop.create_datagram_endpoint(
            lambda b=backend: UdpEcho(b.name), local_addr=(backend.host, PORT)
        )
        udp.append(transport)
    view = view_of(vip, PORT, tcp)
    view = dataclasses.replace(
        view, rules=(dataclasses.replace(view.rules[0], protocol=RuleProtocol.BOTH),)
    )
    balancer = Balancer(lambda: view, ProxyEngine(), checker_options={"policy": FAST})
    await balancer.start()
    task = asyncio.ensure_future(balancer.loop())
    clients = []
    try:
        assert (await greeting(vip, PORT)).startswith("CAS0")
        seen: Counter[str] = Counter()
        for _ in range(16):
            transport, client = await loop.create_datagram_endpoint(
                UdpClient, remote_addr=(vip, PORT)
            )
            clients.append((transport, client))
            for attempt in (b"one", b"two"):
                transport.sendto(attempt)
            first, addr = await asyncio.wait_for(client.answers.get(), 2)
            second, _ = await asyncio.wait_for(client.answers.get(), 2)
            assert addr == (vip, PORT)
            assert first.split()[0] == second.split()[0]  # one client, one node
            seen[first.split()[0].decode()] += 1
        assert set(seen) == {"CAS01", "CAS02"}, seen
        # CAS02's UDP service goes away: its clients' next datagrams reach CAS01 (the
        # first one after the refusal is lost, as UDP may lose any)
        udp[1].close()
        moved: set[int] = set()
        deadline = loop.time() + 3
        while len(moved) < len(clients) and loop.time() < deadline:
            for transport, _client in clients:
                transport.sendto(b"again")
            await asyncio.sleep(0.05)
            for index, (_transport, client) in enumerate(clients):
                while not client.answers.empty():
                    name = client.answers.get_nowait()[0].split()[0].decode()
                    assert name == "CAS01", name
                    moved.add(index)
        assert len(moved) == len(clients), moved
    finally:
        for transport, _ in clients:
            transport.close()
        balancer.stop()
        await task
        await balancer.close()
        udp[0].close()
        for backend in tcp:
            await backend.kill()
