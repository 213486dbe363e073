"""The UDP Proxy data plane against real UDP echo backends on loopback.

Each node has its own 127.0.4.x address (Linux routes all of 127.0.0.0/8 to lo); the
cluster IP and the clients' address are other ones. A backend answers each datagram
with its name, a colon and the datagram. Every test runs on asyncio's own loop and on
uvloop's."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from casarray.balancer.model import ClusterView, FilteringMode, Node, PortRule, RuleProtocol
from casarray.balancer.proxy import ProxyConfigError
from casarray.balancer.udp_proxy import DatagramProxy, udp_listeners_for
from tests.balancer.conftest import Run

CLUSTER_IP = "127.0.4.10"
CLIENT_IP = "127.0.4.5"
A = Node("CAS01", "127.0.4.11", host_id=1, priority=1)
B = Node("CAS02", "127.0.4.12", host_id=2, priority=2)
TIMEOUT = 5.0
QUIET = 0.3  # how long "no reply" is waited for


# -- ports, backends, clients, choosers ---------------------------------------------------


def free_block(hosts: list[str], count: int) -> int:
    """A port p such that p..p+count-1 are free for UDP on every host."""
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        sockets: list[socket.socket] = []
        try:
            for host in hosts:
                for port in range(base, base + count):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    sockets.append(sock)
                    sock.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free ports")


def udp_port_free(host: str, port: int) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True


@dataclass
class Backend:
    """A UDP echo server on one node's address, on one or more ports: it answers
    `name:datagram` and records (datagram, sender address) per port."""

    node: Node
    ports: list[int]
    received: list[tuple[int, bytes, tuple[str, int]]] = field(default_factory=list)
    transports: list[Any] = field(default_factory=list)

    async def start(self) -> Backend:
        loop = asyncio.get_running_loop()
        for port in self.ports:
            transport, _ = await loop.create_datagram_endpoint(
                functools.partial(_Echo, self, port), local_addr=(self.node.address, port)
            )
            self.transports.append(transport)
        return self

    def senders(self) -> set[tuple[str, int]]:
        return {addr for _, _, addr in self.received}

    async def stop(self) -> None:
        for transport in self.transports:
            transport.close()
        self.transports.clear()
        await asyncio.sleep(0)


class _Echo(asyncio.DatagramProtocol):
    def __init__(self, backend: Backend, port: int) -> None:
        self.backend = backend
        self.port = port
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.backend.received.append((self.port, data, (addr[0], addr[1])))
        self.transport.sendto(self.backend.node.name.encode() + b":" + data, addr)


class Client(asyncio.DatagramProtocol):
    """An unconnected UDP socket on CLIENT_IP: replies are kept with their sender."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.replies: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    @classmethod
    async def open(cls) -> Client:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(cls, local_addr=(CLIENT_IP, 0))
        return client

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait((data, (addr[0], addr[1])))

    @property
    def port(self) -> int:
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, port: int, data: bytes) -> None:
        self.transport.sendto(data, (CLUSTER_IP, port))

    async def reply(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.replies.get(), TIMEOUT)

    async def ask(self, port: int, data: bytes) -> bytes:
        """Send, and the reply, which must come from the cluster IP and `port`."""
        self.send(port, data)
        reply, sender = await self.reply()
        assert sender == (CLUSTER_IP, port)
        return reply

    async def unanswered(self, port: int, data: bytes) -> bool:
        self.send(port, data)
        try:
            await asyncio.wait_for(self.replies.get(), QUIET)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.transport.close()


Call = tuple[PortRule, str, int, int, set[str]]


class Ordered:
    """Chooses the first node in `order` not excluded; records its calls."""

    def __init__(self, *order: Node) -> None:
        self.order = list(order)
        self.calls: list[Call] = []

    def __call__(
        self, rule: PortRule, client_ip: str, client_port: int, port: int, exclude: set[str]
    ) -> Node | None:
        self.calls.append((rule, client_ip, client_port, port, set(exclude)))
        return next((node for node in self.order if node.name not in exclude), None)


class Hashed:
    """Chooses by a hash of the client's address and port (affinity None)."""

    def __init__(self, *nodes: Node) -> None:
        self.nodes = list(nodes)
        self.calls: list[Call] = []

    def expected(self, client_ip: str, client_port: int) -> Node:
        digest = hashlib.sha256(f"{client_ip}:{client_port}".encode()).digest()
        return self.nodes[digest[0] % len(self.nodes)]

    def __call__(
        self, rule: PortRule, client_ip: str, client_port: int, port: int, exclude: set[str]
    ) -> Node | None:
        self.calls.append((rule, client_ip, client_port, port, set(exclude)))
        return self.expected(client_ip, client_port)


def make_view(
    ports: list[tuple[int, int]],
    listen_base: int,
    backend_base: int,
    nodes: tuple[Node, ...] = (A, B),
    protocol: RuleProtocol = RuleProtocol.UDP,
) -> ClusterView:
    """A view whose cluster ports start at 1000: cluster port 1000 + i is listened on at
    listen_base + i and forwarded to backend_base + i."""
    return ClusterView(
        name="bj-cas.lab.net",
        ip=CLUSTER_IP,
        nodes=nodes,
        rules=tuple(PortRule(start, end, protocol=protocol) for start, end in ports),
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
        backend=free_block([A.address, B.address], count),
    )


async def spread_clients(chooser: Hashed, count: int = 12) -> list[Client]:
    """At least `count` clients, more if needed until the chooser sends some to each
    node (ephemeral ports are random)."""
    clients = [await Client.open() for _ in range(count)]
    while {chooser.expected(CLIENT_IP, c.port).name for c in clients} != {
        node.name for node in chooser.nodes
    }:
        assert len(clients) < 100
        clients.append(await Client.open())
    return clients


async def until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


# -- listeners (no I/O) -------------------------------------------------------------------


def test_listeners_are_the_udp_and_both_rules_not_disabled() -> None:
    view = ClusterView(
        "bj-cas.lab.net",
        CLUSTER_IP,
        (A,),
        (
            PortRule(53, 53, protocol=RuleProtocol.UDP),
            PortRule(88, 89, protocol=RuleProtocol.BOTH),
            PortRule(143, 143, protocol=RuleProtocol.TCP),
            PortRule(500, 500, protocol=RuleProtocol.UDP, mode=FilteringMode.DISABLED),
            PortRule(123, 123, ip="127.0.4.20", protocol=RuleProtocol.UDP),
        ),
        listen_offset=10000,
    )
    found = {(item.host, item.port, item.cluster_port) for item in udp_listeners_for(view)}
    assert found == {
        (CLUSTER_IP, 10053, 53),
        (CLUSTER_IP, 10088, 88),
        (CLUSTER_IP, 10089, 89),
        ("127.0.4.20", 10123, 123),
    }


def test_wide_udp_rule_is_refused_and_wide_tcp_rule_ignored() -> None:
    wide_udp = ClusterView(
        "bj-cas.lab.net", CLUSTER_IP, (A,), (PortRule(0, 65535, protocol=RuleProtocol.UDP),)
    )
    with pytest.raises(ProxyConfigError, match="at most 64 per rule"):
        DatagramProxy(wide_udp, Ordered(A))
    wide_tcp = ClusterView(
        "bj-cas.lab.net", CLUSTER_IP, (A,), (PortRule(0, 65535, protocol=RuleProtocol.TCP),)
    )
    assert udp_listeners_for(wide_tcp) == []
    DatagramProxy(wide_tcp, Ordered(A))  # nothing to listen on, nothing refused


# -- relaying -----------------------------------------------------------------------------


def test_replies_come_from_the_cluster_address_and_port(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        chooser = Ordered(A, B)
        view = make_view([(1000, 1000)], ports.listen, ports.backend)
        proxy = DatagramProxy(view, chooser, source_address=CLUSTER_IP)
        await proxy.start()
        client = await Client.open()
        try:
            assert [(item.host, item.port) for item in proxy.listeners] == [
                (CLUSTER_IP, ports.listen)
            ]
            assert await client.ask(ports.listen, b"ping") == b"CAS01:ping"
            assert await client.ask(ports.listen, b"again") == b"CAS01:again"
            # the chooser was asked once, with the rule, the client and the cluster port
            assert len(chooser.calls) == 1
            rule, client_ip, client_port, port, exclude = chooser.calls[0]
            assert (rule.start_port, client_ip, client_port, port, exclude) == (
                1000,
                CLIENT_IP,
                client.port,
                1000,
                set(),
            )
            # the node saw both datagrams from one socket on the cluster IP
            assert [data for _, data, _ in a.received] == [b"ping", b"again"]
            ((source_ip, _),) = a.senders()
            assert source_ip == CLUSTER_IP
            assert (proxy.flows(), proxy.flows(A), proxy.flows("cas01"), proxy.flows(B)) == (
                1,
                1,
                1,
                0,
            )
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


def test_source_address_that_cant_be_bound_falls_back_to_any(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        view = make_view([(1000, 1000)], ports.listen, ports.backend)
        proxy = DatagramProxy(view, Ordered(A), source_address="192.0.2.1")
        await proxy.start()
        client = await Client.open()
        try:
            assert await client.ask(ports.listen, b"ping") == b"CAS01:ping"
            ((source_ip, _),) = a.senders()
            assert source_ip != "192.0.2.1"
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


def test_datagrams_sent_while_the_flow_opens_are_kept_in_order(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        proxy = DatagramProxy(make_view([(1000, 1000)], ports.listen, ports.backend), Ordered(A))
        await proxy.start()
        client = await Client.open()
        try:
            for i in range(5):
                client.send(ports.listen, b"%d" % i)
            replies = [(await client.reply())[0] for _ in range(5)]
            assert replies == [b"CAS01:%d" % i for i in range(5)]
            assert len(a.senders()) == 1
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


def test_clients_spread_over_nodes_and_each_sticks_to_one(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        b = await Backend(B, [ports.backend]).start()
        chooser = Hashed(A, B)
        proxy = DatagramProxy(make_view([(1000, 1000)], ports.listen, ports.backend), chooser)
        await proxy.start()
        clients = await spread_clients(chooser)
        count = len(clients)
        try:
            seen: dict[int, set[bytes]] = {}
            for round_ in range(3):
                for client in clients:
                    reply = await client.ask(ports.listen, b"r%d" % round_)
                    name, _, data = reply.partition(b":")
                    assert data == b"r%d" % round_
                    seen.setdefault(client.port, set()).add(name)
            # each client stayed on the node the chooser gave it
            for client in clients:
                expected = chooser.expected(CLIENT_IP, client.port)
                assert seen[client.port] == {expected.name.encode()}
            assert set().union(*seen.values()) == {b"CAS01", b"CAS02"}
            # one choice per client (per flow), not per datagram
            assert sorted(call[2] for call in chooser.calls) == sorted(c.port for c in clients)
            on_a = sum(chooser.expected(CLIENT_IP, c.port) is A for c in clients)
            assert (proxy.flows(), proxy.flows(A), proxy.flows(B)) == (count, on_a, count - on_a)
            # one socket per flow towards its node
            assert len(a.senders()) == on_a
            assert len(b.senders()) == count - on_a
        finally:
            for client in clients:
                client.close()
            await proxy.close()
            await a.stop()
            await b.stop()

    run(main())


def test_refused_node_is_reported_and_the_next_datagram_chooses_again(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        b = await Backend(B, [ports.backend]).start()
        chooser = Ordered(A, B)
        refused: list[tuple[str, int]] = []
        proxy = DatagramProxy(
            make_view([(1000, 1000)], ports.listen, ports.backend),
            chooser,
            on_refused=lambda node, port: refused.append((node.name, port)),
        )
        await proxy.start()
        client = await Client.open()
        try:
            assert await client.ask(ports.listen, b"one") == b"CAS01:one"
            await a.stop()  # A's port is closed: the kernel answers ICMP port unreachable
            assert await client.unanswered(ports.listen, b"lost")
            await until(lambda: refused == [("CAS01", 1000)])
            assert proxy.flows(A) == 0
            # the next datagram chooses again, without the node that refused
            assert await client.ask(ports.listen, b"two") == b"CAS02:two"
            assert [call[4] for call in chooser.calls] == [set(), {"CAS01"}]
            assert (proxy.flows(), proxy.flows(A), proxy.flows(B)) == (1, 0, 1)
            assert [data for _, data, _ in b.received] == [b"two"]
        finally:
            client.close()
            await proxy.close()
            await b.stop()

    run(main())


def test_when_every_node_refused_the_choice_starts_over(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        chooser = Ordered(A)
        refused: list[str] = []
        proxy = DatagramProxy(
            make_view([(1000, 1000)], ports.listen, ports.backend, nodes=(A,)),
            chooser,
            on_refused=lambda node, port: refused.append(node.name),
        )
        await proxy.start()
        client = await Client.open()
        try:
            assert await client.ask(ports.listen, b"one") == b"CAS01:one"
            await a.stop()
            assert await client.unanswered(ports.listen, b"lost")
            await until(lambda: refused == ["CAS01"])
            a = await Backend(A, [ports.backend]).start()  # back
            assert await client.ask(ports.listen, b"two") == b"CAS01:two"
            assert [call[4] for call in chooser.calls] == [set(), {"CAS01"}, set()]
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


# -- forgetting flows ---------------------------------------------------------------------


def test_idle_flows_are_forgotten_and_traffic_keeps_them(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        chooser = Ordered(A)
        proxy = DatagramProxy(
            make_view([(1000, 1000)], ports.listen, ports.backend), chooser, idle_timeout=0.5
        )
        await proxy.start()
        client = await Client.open()
        loop = asyncio.get_running_loop()
        try:
            # traffic every 0.1 s keeps the flow for well past the timeout
            start = loop.time()
            while loop.time() - start < 1.2:
                assert await client.ask(ports.listen, b"tick") == b"CAS01:tick"
                assert proxy.flows() == 1
                await asyncio.sleep(0.1)
            assert len(chooser.calls) == 1
            assert len(a.senders()) == 1
            # then silence: forgotten after the timeout, not before
            assert await client.ask(ports.listen, b"last") == b"CAS01:last"
            quiet_since = loop.time()
            await asyncio.sleep(0.3)
            assert proxy.flows() == 1
            await until(lambda: proxy.flows() == 0)
            assert loop.time() - quiet_since >= 0.45
            assert proxy.flows(A) == 0
            # its socket is closed (the port can be bound again)
            ((source_ip, source_port),) = a.senders()
            await until(lambda: udp_port_free(source_ip, source_port))
            # the next datagram is a new flow: chosen again, from a new socket
            assert await client.ask(ports.listen, b"new") == b"CAS01:new"
            assert len(chooser.calls) == 2
            assert len(a.senders()) == 2
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


def test_max_flows_evicts_the_longest_idle(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        chooser = Ordered(A)
        proxy = DatagramProxy(
            make_view([(1000, 1000)], ports.listen, ports.backend), chooser, max_flows=2
        )
        await proxy.start()
        one, two, three = [await Client.open() for _ in range(3)]

        def choices(client: Client) -> int:
            return sum(call[2] == client.port for call in chooser.calls)

        try:
            await one.ask(ports.listen, b"a")
            await two.ask(ports.listen, b"b")
            await one.ask(ports.listen, b"c")  # two is now the longest idle
            await three.ask(ports.listen, b"d")  # evicts two
            assert proxy.flows() == 2
            assert (choices(one), choices(two), choices(three)) == (1, 1, 1)
            await one.ask(ports.listen, b"e")  # still a flow
            assert choices(one) == 1
            await two.ask(ports.listen, b"f")  # a new flow (evicting three)
            assert choices(two) == 2
            assert proxy.flows() == 2
        finally:
            for client in (one, two, three):
                client.close()
            await proxy.close()
            await a.stop()

    run(main())


# -- views --------------------------------------------------------------------------------


def test_set_view_adds_and_removes_ports_and_their_flows(run: Run) -> None:
    ports = lab(3)

    async def main() -> None:
        a = await Backend(A, [ports.backend + i for i in range(3)]).start()
        proxy = DatagramProxy(make_view([(1000, 1000)], ports.listen, ports.backend), Ordered(A))
        await proxy.start()
        client = await Client.open()
        try:
            assert [item.port for item in proxy.listeners] == [ports.listen]
            assert await client.ask(ports.listen, b"zero") == b"CAS01:zero"

            # add a Both rule of two ports
            await proxy.set_view(
                ClusterView(
                    "bj-cas.lab.net",
                    CLUSTER_IP,
                    (A, B),
                    (
                        PortRule(1000, 1000, protocol=RuleProtocol.UDP),
                        PortRule(1001, 1002, protocol=RuleProtocol.BOTH),
                    ),
                    backend_offset=ports.backend - 1000,
                    listen_offset=ports.listen - 1000,
                )
            )
            assert [item.port for item in proxy.listeners] == [ports.listen + i for i in range(3)]
            assert [item.cluster_port for item in proxy.listeners] == [1000, 1001, 1002]
            assert await client.ask(ports.listen + 2, b"two") == b"CAS01:two"
            assert (ports.backend + 2, b"two") in {(port, data) for port, data, _ in a.received}
            assert proxy.flows() == 2

            # remove the first: its listener and its flow go, the others stay
            await proxy.set_view(make_view([(1001, 1002)], ports.listen, ports.backend))
            assert [item.port for item in proxy.listeners] == [ports.listen + 1, ports.listen + 2]
            assert proxy.flows() == 1
            assert udp_port_free(CLUSTER_IP, ports.listen)
            assert await client.unanswered(ports.listen, b"gone")
            assert await client.ask(ports.listen + 2, b"still") == b"CAS01:still"

            # a Disabled rule (and a Tcp one) closes the ports
            await proxy.set_view(
                ClusterView(
                    "bj-cas.lab.net",
                    CLUSTER_IP,
                    (A, B),
                    (
                        PortRule(1001, 1001, protocol=RuleProtocol.TCP),
                        PortRule(
                            1002, 1002, protocol=RuleProtocol.UDP, mode=FilteringMode.DISABLED
                        ),
                    ),
                    backend_offset=ports.backend - 1000,
                    listen_offset=ports.listen - 1000,
                )
            )
            assert proxy.listeners == []
            assert proxy.flows() == 0
            assert udp_port_free(CLUSTER_IP, ports.listen + 2)
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


def test_set_view_drops_the_flows_of_removed_nodes(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        b = await Backend(B, [ports.backend]).start()
        chooser = Hashed(A, B)
        proxy = DatagramProxy(make_view([(1000, 1000)], ports.listen, ports.backend), chooser)
        await proxy.start()
        clients = await spread_clients(chooser)
        try:
            first = {}
            for client in clients:
                first[client.port] = await client.ask(ports.listen, b"x")
            on_a = [c for c in clients if first[c.port] == b"CAS01:x"]
            on_b = [c for c in clients if first[c.port] == b"CAS02:x"]
            assert on_a and on_b
            assert (proxy.flows(A), proxy.flows(B)) == (len(on_a), len(on_b))

            # B leaves the view: its flows are dropped, A's are kept
            chooser.nodes = [A]
            await proxy.set_view(make_view([(1000, 1000)], ports.listen, ports.backend, (A,)))
            assert (proxy.flows(), proxy.flows(A), proxy.flows(B)) == (len(on_a), len(on_a), 0)
            # B's former clients are chosen again (onto A); A's clients are not
            calls = len(chooser.calls)
            for client in on_b + on_a:
                assert await client.ask(ports.listen, b"y") == b"CAS01:y"
            assert len(chooser.calls) == calls + len(on_b)
            assert len(b.received) == len(on_b)  # nothing more reached B
        finally:
            for client in clients:
                client.close()
            await proxy.close()
            await a.stop()
            await b.stop()

    run(main())


def test_close_node_flows_drops_only_that_node(run: Run) -> None:
    ports = lab(1)

    async def main() -> None:
        a = await Backend(A, [ports.backend]).start()
        b = await Backend(B, [ports.backend]).start()
        chooser = Ordered(A, B)
        proxy = DatagramProxy(make_view([(1000, 1000)], ports.listen, ports.backend), chooser)
        await proxy.start()
        one, two = await Client.open(), await Client.open()
        try:
            await one.ask(ports.listen, b"1")
            chooser.order = [B, A]
            await two.ask(ports.listen, b"2")
            assert (proxy.flows(A), proxy.flows(B)) == (1, 1)
            assert proxy.close_node_flows(A) == 1
            assert (proxy.flows(), proxy.flows(A), proxy.flows(B)) == (1, 0, 1)
            assert await one.ask(ports.listen, b"3") == b"CAS02:3"  # chosen again
        finally:
            one.close()
            two.close()
            await proxy.close()
            await a.stop()
            await b.stop()

    run(main())


def test_close_closes_listeners_and_flow_sockets(run: Run) -> None:
    ports = lab(2)

    async def main() -> None:
        a = await Backend(A, [ports.backend, ports.backend + 1]).start()
        proxy = DatagramProxy(
            make_view([(1000, 1001)], ports.listen, ports.backend),
            Ordered(A),
            source_address=CLUSTER_IP,
        )
        await proxy.start()
        client = await Client.open()
        try:
            assert await client.ask(ports.listen, b"a") == b"CAS01:a"
            assert await client.ask(ports.listen + 1, b"b") == b"CAS01:b"
            sources = a.senders()
            assert len(sources) == 2
            assert not udp_port_free(CLUSTER_IP, ports.listen)
            assert not any(udp_port_free(*source) for source in sources)

            await proxy.close()
            assert proxy.listeners == []
            assert proxy.flows() == 0
            assert udp_port_free(CLUSTER_IP, ports.listen)
            assert udp_port_free(CLUSTER_IP, ports.listen + 1)
            assert all(udp_port_free(*source) for source in sources)
            assert await client.unanswered(ports.listen, b"after")
            assert len(a.received) == 2
        finally:
            client.close()
            await proxy.close()  # twice is fine
            await a.stop()

    run(main())


def test_set_view_moves_a_port_to_another_cluster_port(run: Run) -> None:
    ports = lab(3)

    async def main() -> None:
        a = await Backend(A, [ports.backend + i for i in range(3)]).start()
        view = make_view([(1000, 1001)], ports.listen, ports.backend)
        proxy = DatagramProxy(view, Ordered(A))
        await proxy.start()
        client = await Client.open()
        try:
            assert await client.ask(ports.listen + 1, b"x") == b"CAS01:x"
            assert a.received[-1][0] == ports.backend + 1
            # listen_offset + 1: the port that served 1001 now serves 1000
            await proxy.set_view(make_view([(1000, 1001)], ports.listen + 1, ports.backend))
            assert [(item.port, item.cluster_port) for item in proxy.listeners] == [
                (ports.listen + 1, 1000),
                (ports.listen + 2, 1001),
            ]
            assert proxy.flows() == 0  # the old listener's flow went with it
            assert await client.ask(ports.listen + 1, b"y") == b"CAS01:y"
            assert a.received[-1][0] == ports.backend
        finally:
            client.close()
            await proxy.close()
            await a.stop()

    run(main())


def test_set_view_keeps_old_view_when_a_port_cant_be_bound(run: Run) -> None:
    ports = lab(2)

    async def main() -> None:
        view1 = make_view([(1000, 1000)], ports.listen, ports.backend)
        proxy = DatagramProxy(view1, Ordered(A))
        await proxy.start()
        squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        squatter.bind((CLUSTER_IP, ports.listen + 1))
        try:
            with pytest.raises(OSError, match="can't listen on UDP"):
                await proxy.set_view(make_view([(1000, 1001)], ports.listen, ports.backend))
            assert proxy.view is view1
            assert [item.port for item in proxy.listeners] == [ports.listen]
        finally:
            squatter.close()
            await proxy.close()

    run(main())
