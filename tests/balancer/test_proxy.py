"""The Proxy data plane against real tiny asyncio backends on loopback.

Each node has its own 127.0.0.x address (Linux routes all of 127.0.0.0/8 to lo); the
cluster IP is another one. Every test runs on asyncio's own loop and on uvloop's."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from casarray.balancer.model import ClusterView, FilteringMode, Node, PortRule, RuleProtocol
from casarray.balancer.proxy import (
    Proxy,
    ProxyConfigError,
    listeners_for,
    proxy_v2_header,
)
from tests.balancer.conftest import Run

CLUSTER_IP = "127.0.0.10"
A = Node("CAS01", "127.0.0.11", host_id=1, priority=1)
B = Node("CAS02", "127.0.0.12", host_id=2, priority=2)
DEAD = Node("CAS09", "127.0.0.19", host_id=9, priority=9)  # nothing listens there
SIGNATURE = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
TIMEOUT = 5.0


# -- ports, backends, choosers ------------------------------------------------------------


def free_block(hosts: list[str], count: int) -> int:
    """A port p such that p..p+count-1 are free on every host."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        sockets: list[socket.socket] = []
        try:
            for host in hosts:
                for port in range(base, base + count):
                    sock = socket.socket()
                    sockets.append(sock)
                    sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports")


@dataclass
class Backend:
    """An echo server on one node's address, on one or more ports. Modes: `echo`
    (echo; on EOF write b"[eof]" and close), `greet-eof` (send b"hi", shut writing,
    record what arrives after), `record` (keep what arrives, send nothing)."""

    host: str
    ports: list[int]
    mode: str = "echo"
    accepted: int = 0
    received: bytearray = field(default_factory=bytearray)
    transports: list[Any] = field(default_factory=list)
    servers: list[asyncio.AbstractServer] = field(default_factory=list)

    async def start(self) -> Backend:
        loop = asyncio.get_running_loop()
        for port in self.ports:
            self.servers.append(
                await loop.create_server(lambda: _BackendProtocol(self), self.host, port)
            )
        return self

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.transports:
            transport.abort()


class _BackendProtocol(asyncio.Protocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.backend.accepted += 1
        self.backend.transports.append(transport)
        if self.backend.mode == "greet-eof":
            transport.write(b"hi")
            transport.write_eof()

    def data_received(self, data: bytes) -> None:
        self.backend.received += data
        if self.backend.mode == "echo":
            self.transport.write(data)

    def eof_received(self) -> bool:
        if self.backend.mode == "echo":
            self.transport.write(b"[eof]")
        self.transport.close()
        return True

    # an echo that respects backpressure
    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class Ordered:
    """Chooses the first node in `order` not excluded; records its calls."""

    def __init__(self, *order: Node) -> None:
        self.order = list(order)
        self.calls: list[tuple[PortRule, str, int, int, set[str]]] = []

    def __call__(
        self, rule: PortRule, client_ip: str, client_port: int, port: int, exclude: set[str]
    ) -> Node | None:
        self.calls.append((rule, client_ip, client_port, port, set(exclude)))
        return next((node for node in self.order if node.name not in exclude), None)


def make_view(
    ports: list[tuple[int, int]],
    listen_base: int,
    backend_base: int,
    nodes: tuple[Node, ...] = (A, B),
) -> ClusterView:
    """A view whose cluster ports start at 1000: cluster port 1000 + i is listened on at
    listen_base + i and forwarded to backend_base + i."""
    return ClusterView(
        name="bj-cas.lab.net",
        ip=CLUSTER_IP,
        nodes=nodes,
        rules=tuple(PortRule(start, end, protocol=RuleProtocol.TCP) for start, end in ports),
        backend_offset=backend_base - 1000,
        listen_offset=listen_base - 1000,
    )


@dataclass
class Lab:
    listen: int  # listen port of cluster port 1000
    backend: int  # backend port of cluster port 1000


def lab(count: int = 3) -> Lab:
    return Lab(
        listen=free_block([CLUSTER_IP], count),
        backend=free_block([A.address, B.address, DEAD.address], count),
    )


async def exchange(port: int, payload: bytes, local: tuple[str, int] | None = None) -> bytes:
    """Connect to the cluster, send `payload`, shut writing, read to EOF."""
    reader, writer = await asyncio.open_connection(CLUSTER_IP, port, local_addr=local)
    writer.write(payload)
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    return data


async def refused_by_proxy(port: int) -> bool:
    """Whether the proxy accepts a connection and then closes it unanswered (an EOF,
    or a reset when it closed with the client's bytes unread)."""
    try:
        return await exchange(port, b"hello") == b""
    except ConnectionResetError:
        return True


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- tests --------------------------------------------------------------------------------


def test_bytes_flow_both_ways_and_half_close(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A.address, [ports.backend]).start()
        chooser = Ordered(A, B)
        proxy = Proxy(make_view([(1000, 1000)], ports.listen, ports.backend), chooser)
        await proxy.start()
        try:
            # request/response on one connection
            reader, writer = await asyncio.open_connection(CLUSTER_IP, ports.listen)
            for line in (b"a1 CAPABILITY\r\n", b"a2 NOOP\r\n"):
                writer.write(line)
                assert await asyncio.wait_for(reader.readexactly(len(line)), TIMEOUT) == line
            sock = writer.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            # the client shuts writing: the backend sees EOF, yet can still answer
            writer.write_eof()
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"[eof]"
            writer.close()
            # the chooser was asked with the rule, the client and the cluster port
            rule, client_ip, client_port, port, exclude = chooser.calls[0]
            assert (rule.start_port, client_ip, port, exclude) == (1000, "127.0.0.1", 1000, set())
            assert client_port == sock.getsockname()[1]
            assert a.accepted == 1
            await until(lambda: proxy.connections() == 0)
        finally:
            await proxy.close(grace=0)
            await a.stop()

    run(main())


def test_backend_half_close_client_still_sends(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A.address, [ports.backend], mode="greet-eof").start()
        proxy = Proxy(make_view([(1000, 1000)], ports.listen, ports.backend), Ordered(A))
        await proxy.start()
        try:
            reader, writer = await asyncio.open_connection(CLUSTER_IP, ports.listen)
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b"hi"  # then EOF
            writer.write(b"late")  # the other direction is still open
            await writer.drain()
            await until(lambda: bytes(a.received) == b"late")
            writer.write_eof()
            await until(lambda: proxy.connections() == 0)
            writer.close()
        finally:
            await proxy.close(grace=0)
            await a.stop()

    run(main())


def test_large_transfer_with_slow_reader_stays_bounded(run: Run) -> None:
    ports = lab(1)
    size = 10 * 1024 * 1024
    payload = random.Random(7).randbytes(size)

    async def main() -> None:
        a = await Backend(A.address, [ports.backend]).start()
        proxy = Proxy(make_view([(1000, 1000)], ports.listen, ports.backend), Ordered(A))
        await proxy.start()
        peak = 0
        done = asyncio.Event()

        async def monitor() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, proxy.buffered())
                await asyncio.sleep(0.002)

        async def write_all(writer: asyncio.StreamWriter) -> None:
            for offset in range(0, size, 256 * 1024):
                writer.write(payload[offset : offset + 256 * 1024])
                await writer.drain()
            writer.write_eof()

        try:
            watcher = asyncio.create_task(monitor())
            # small client socket buffers, so that what the kernel takes in is small too
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (CLUSTER_IP, ports.listen))
            reader, writer = await asyncio.open_connection(sock=sock)
            sender = asyncio.create_task(write_all(writer))
            # The reader doesn't read at all for a while. (Loopback's socket buffers
            # may take in all 10 MB meanwhile: what counts is that the proxy doesn't.)
            await asyncio.sleep(0.3)
            stalled_peak = peak
            digest = hashlib.sha256()
            got = 0
            while True:
                chunk = await asyncio.wait_for(reader.read(256 * 1024), TIMEOUT)
                if not chunk:
                    break
                digest.update(chunk)
                got += len(chunk)
                if got % (2 * 1024 * 1024) < len(chunk):
                    await asyncio.sleep(0.02)  # and then reads slowly
            await sender
            done.set()
            await watcher
            writer.close()
            assert got == size + len(b"[eof]")
            expected = hashlib.sha256(payload + b"[eof]").hexdigest()
            assert digest.hexdigest() == expected
            # a write buffer per side and a read in flight, not megabytes
            print(f"peak buffered in the proxy: {stalled_peak} stalled, {peak} overall")
            assert stalled_peak < 1024 * 1024, stalled_peak
            assert peak < 1024 * 1024, peak
        finally:
            await proxy.close(grace=0)
            await a.stop()

    run(main())


def test_refused_backend_is_retried_on_the_next_node(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        b = await Backend(B.address, [ports.backend]).start()
        refused: list[tuple[str, int]] = []
        chooser = Ordered(DEAD, A, B)  # nothing listens on DEAD or A
        proxy = Proxy(
            make_view([(1000, 1000)], ports.listen, ports.backend, nodes=(DEAD, A, B)),
            chooser,
            on_refused=lambda node, port: refused.append((node.name, port)),
        )
        await proxy.start()
        try:
            assert await exchange(ports.listen, b"hello") == b"hello[eof]"
            assert refused == [("CAS09", 1000), ("CAS01", 1000)]
            assert [call[4] for call in chooser.calls] == [set(), {"CAS09"}, {"CAS09", "CAS01"}]
            assert b.accepted == 1
        finally:
            await proxy.close(grace=0)
            await b.stop()

    run(main())


def test_no_node_left_closes_the_client(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        refused: list[str] = []
        proxy = Proxy(
            make_view([(1000, 1000)], ports.listen, ports.backend, nodes=(DEAD, A)),
            Ordered(DEAD, A, B),  # B isn't in the view: tries stop at the node count
            on_refused=lambda node, port: refused.append(node.name),
        )
        await proxy.start()
        try:
            assert await refused_by_proxy(ports.listen)
            assert refused == ["CAS09", "CAS01"]
            # a chooser with nothing to offer: closed at once
            proxy._chooser = lambda *args: None
            assert await refused_by_proxy(ports.listen)
            await until(lambda: proxy.connections() == 0)
        finally:
            await proxy.close(grace=0)

    run(main())


def test_connect_timeout_counts_as_refused(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        # A listener whose accept queue is full: further SYNs are dropped, so a connect
        # hangs (Linux, tcp_abort_on_overflow=0).
        hold = socket.socket()
        hold.bind((A.address, ports.backend))
        hold.listen(0)
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with pytest.raises(BlockingIOError):
                filler.connect((A.address, ports.backend))
            fillers.append(filler)
        await asyncio.sleep(0.05)
        b = await Backend(B.address, [ports.backend]).start()
        refused: list[str] = []
        proxy = Proxy(
            make_view([(1000, 1000)], ports.listen, ports.backend),
            Ordered(A, B),
            on_refused=lambda node, port: refused.append(node.name),
            connect_timeout=0.3,
        )
        await proxy.start()
        try:
            started = asyncio.get_running_loop().time()
            assert await exchange(ports.listen, b"x") == b"x[eof]"
            assert refused == ["CAS01"]
            assert asyncio.get_running_loop().time() - started >= 0.25
        finally:
            await proxy.close(grace=0)
            await b.stop()
            for filler in fillers:
                filler.close()
            hold.close()

    run(main())


def test_proxy_v2_header_bytes() -> None:
    header = proxy_v2_header(("192.0.2.7", 51234), ("127.77.1.10", 143))
    assert header == (
        SIGNATURE
        + b"\x21\x11\x00\x0c"
        + bytes([192, 0, 2, 7])
        + bytes([127, 77, 1, 10])
        + struct.pack("!HH", 51234, 143)
    )
    header6 = proxy_v2_header(("2001:db8::1", 40000), ("::1", 993))
    assert header6 == (
        SIGNATURE
        + b"\x21\x21\x00\x24"
        + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
        + socket.inet_pton(socket.AF_INET6, "::1")
        + struct.pack("!HH", 40000, 993)
    )
    assert len(header) == 16 + 12 and len(header6) == 16 + 36
    # mixed families: both as IPv6, the IPv4 one mapped
    mixed = proxy_v2_header(("10.1.2.3", 1), ("::1", 2))
    assert mixed[13] == 0x21
    assert mixed[16:32] == socket.inet_pton(socket.AF_INET6, "::ffff:10.1.2.3")


def test_proxy_v2_header_is_sent_first_on_flagged_ports(run: Run) -> None:
    ports = lab(2)

    async def main() -> None:
        backend_ports = [ports.backend, ports.backend + 1]
        a = await Backend(A.address, backend_ports, mode="record").start()
        proxy = Proxy(
            make_view([(1000, 1001)], ports.listen, ports.backend),
            Ordered(A),
            proxy_protocol_ports={1000},
        )
        await proxy.start()
        try:
            client_port = free_block(["127.0.0.5"], 1)
            await exchange(ports.listen, b"a1 LOGIN", local=("127.0.0.5", client_port))
            await until(lambda: len(a.received) >= 28 + 8)
            assert bytes(a.received) == (
                SIGNATURE
                + b"\x21\x11\x00\x0c"
                + socket.inet_aton("127.0.0.5")
                + socket.inet_aton(CLUSTER_IP)
                + struct.pack("!HH", client_port, ports.listen)
                + b"a1 LOGIN"
            )
            # the other port of the rule isn't flagged: the bytes alone
            a.received.clear()
            await exchange(ports.listen + 1, b"a2 NOOP")
            await until(lambda: len(a.received) >= 7)
            assert bytes(a.received) == b"a2 NOOP"
        finally:
            await proxy.close(grace=0)
            await a.stop()

    run(main())


def test_set_view_adds_and_removes_ports_and_keeps_connections(run: Run) -> None:
    ports = lab(3)

    async def main() -> None:
        a = await Backend(A.address, [ports.backend + i for i in range(3)]).start()
        view1 = make_view([(1000, 1000)], ports.listen, ports.backend)
        proxy = Proxy(view1, Ordered(A))
        await proxy.start()
        try:
            assert [item.port for item in proxy.listeners] == [ports.listen]
            reader, writer = await asyncio.open_connection(CLUSTER_IP, ports.listen)
            writer.write(b"one")
            assert await asyncio.wait_for(reader.readexactly(3), TIMEOUT) == b"one"

            # add a rule of two ports
            await proxy.set_view(
                make_view([(1000, 1000), (1001, 1002)], ports.listen, ports.backend)
            )
            assert [item.port for item in proxy.listeners] == [ports.listen + i for i in range(3)]
            assert [item.cluster_port for item in proxy.listeners] == [1000, 1001, 1002]
            assert await exchange(ports.listen + 2, b"two") == b"two[eof]"

            # remove the first: no new connections there, the open one goes on
            await proxy.set_view(make_view([(1001, 1002)], ports.listen, ports.backend))
            assert [item.port for item in proxy.listeners] == [ports.listen + 1, ports.listen + 2]
            with pytest.raises(OSError):
                await asyncio.open_connection(CLUSTER_IP, ports.listen)
            writer.write(b"still")
            assert await asyncio.wait_for(reader.readexactly(5), TIMEOUT) == b"still"
            writer.close()

            # a Disabled rule closes its ports
            disabled = PortRule(1001, 1002, protocol=RuleProtocol.TCP, mode=FilteringMode.DISABLED)
            view = make_view([], ports.listen, ports.backend)
            await proxy.set_view(
                ClusterView(
                    view.name,
                    view.ip,
                    view.nodes,
                    (disabled,),
                    view.backend_offset,
                    view.listen_offset,
                )
            )
            assert proxy.listeners == []
        finally:
            await proxy.close(grace=0)
            await a.stop()

    run(main())


def test_set_view_keeps_old_view_when_a_port_cant_be_bound(run: Run) -> None:
    ports = lab(2)

    async def main() -> None:
        view1 = make_view([(1000, 1000)], ports.listen, ports.backend)
        proxy = Proxy(view1, Ordered(A))
        await proxy.start()
        squatter = socket.socket()
        squatter.bind((CLUSTER_IP, ports.listen + 1))
        squatter.listen(1)
        try:
            with pytest.raises(OSError, match="can't listen on"):
                await proxy.set_view(make_view([(1000, 1001)], ports.listen, ports.backend))
            assert proxy.view is view1
            assert [item.port for item in proxy.listeners] == [ports.listen]
        finally:
            squatter.close()
            await proxy.close(grace=0)

    run(main())


def test_wide_port_range_is_refused() -> None:
    view = ClusterView("bj-cas.lab.net", CLUSTER_IP, (A,), (PortRule(0, 65535),))
    with pytest.raises(ProxyConfigError, match=r"0-65535 .* 65536 ports.* at most 64"):
        Proxy(view, Ordered(A))
    ok = ClusterView("c", CLUSTER_IP, (A,), (PortRule(1000, 1063), PortRule(1100, 1100)))
    assert len(listeners_for(ok)) == 65
    udp = ClusterView("c", CLUSTER_IP, (A,), (PortRule(0, 65535, protocol=RuleProtocol.UDP),))
    assert listeners_for(udp) == []
    with pytest.raises(ProxyConfigError, match="outside"):
        listeners_for(ClusterView("c", CLUSTER_IP, (A,), (PortRule(143, 143),), 0, 65500))


def test_count_and_cut_connections_per_node(run: Run) -> None:
    ports = lab(2)

    async def main() -> None:
        backend_ports = [ports.backend, ports.backend + 1]
        a = await Backend(A.address, backend_ports).start()
        b = await Backend(B.address, backend_ports).start()
        by_port = {1000: A, 1001: B}
        proxy = Proxy(
            make_view([(1000, 1001)], ports.listen, ports.backend),
            lambda rule, ip, client_port, port, exclude: by_port[port],
        )
        await proxy.start()
        try:
            clients = []
            for port in (ports.listen, ports.listen, ports.listen + 1):
                reader, writer = await asyncio.open_connection(CLUSTER_IP, port)
                writer.write(b"x")
                assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"x"
                clients.append((reader, writer))
            assert proxy.connections(A) == 2
            assert proxy.connections("cas02") == 1
            assert proxy.connections() == 3

            assert proxy.close_node_connections(A) == 2
            assert proxy.connections(A) == 0
            for reader, _ in clients[:2]:
                with contextlib.suppress(ConnectionResetError):
                    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            await until(lambda: proxy.connections(A) == 0)
            # B's connection is untouched
            reader, writer = clients[2]
            writer.write(b"y")
            assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"y"
            assert proxy.connections(B) == 1

            # close(): stops listening, and cuts what is left after the grace period
            await proxy.close(grace=0.1)
            assert proxy.connections() == 0
            assert proxy.listeners == []
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            with pytest.raises(OSError):
                await asyncio.open_connection(CLUSTER_IP, ports.listen)
            for _, writer in clients:
                writer.close()
        finally:
            await proxy.close(grace=0)
            await a.stop()
            await b.stop()

    run(main())


def test_client_data_sent_before_the_backend_connects_is_kept(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A.address, [ports.backend]).start()
        proxy = Proxy(make_view([(1000, 1000)], ports.listen, ports.backend), Ordered(DEAD, A))
        await proxy.start()
        try:
            # the first try (DEAD) fails while the client has already sent and shut
            assert await exchange(ports.listen, b"early" * 1000) == b"early" * 1000 + b"[eof]"
        finally:
            await proxy.close(grace=0)
            await a.stop()

    run(main())
