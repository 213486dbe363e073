"""The Proxy data plane: a user-space TCP proxy on asyncio (uvloop when it runs the loop).

The Kernel plane (nftables DNAT) needs root on Linux; this one runs anywhere, as any
user, on whatever event loop is running (`casarray.access.cas_process.loop_factory` gives
uvloop's). It listens on the cluster IP, on every port of every TCP port rule of a
`ClusterView` (plus `view.listen_offset`), asks a `chooser` which node takes each new
connection and connects to that node's port (plus `view.backend_offset`). Choosing is
not done here: the hashing (affinity, load weights, rendezvous) and the health checker
are other modules, and the control plane hands their combination in as `chooser`, so
this module knows nothing of either and can be tested with any callable.

Per connection there are two `asyncio.Protocol` objects (client side, backend side)
and no task once connected; bytes are written straight from one transport to the
other:

- backpressure: when one side's transport pauses writing (its buffer is above the high
  water mark, the peer isn't reading), the other side's reading is paused until it
  resumes, so a slow reader costs at most a write buffer plus one read, never the whole
  transfer; data a client sends before the backend is connected is held up to
  `MAX_PENDING` bytes, then its reading is paused too;
- TCP_NODELAY on both sockets (IMAP and HTTP are request/response), which asyncio and
  uvloop set on every TCP transport themselves;
- half-close: an EOF from one side becomes `write_eof()` on the other (after what is
  buffered), and the pair is closed when both directions are done;
- passive detection: a backend connect that is refused, fails or takes longer than
  `connect_timeout` (before any byte was exchanged) calls `on_refused(node, port)` (the
  health checker marks the node down at once) and the next choice is tried with the
  failed nodes excluded, up to the number of nodes; with none left the client is closed;
- PROXY protocol v2 (binary, TCP4/TCP6): for the cluster ports in
  `proxy_protocol_ports` (PortRule has no such field) the header carrying the client's
  address, and the address and port it connected to, is the first thing the backend
  receives.

Drainstop: `set_view()` swaps the view at any time (new connections use the new one
at once; listeners are opened for new ports and closed for removed ones; connections
already open are untouched), `connections(node)` counts a node's open connections
(Get-NlbClusterNode), `close_node_connections(node)` cuts them when the drain timeout
has expired, `close()` stops listening and, after a grace period, cuts the rest.

A port rule is a port range and each port is a listening socket here, so a rule may
cover at most `max_ports_per_rule` (64) ports; NLB's default rule (0-65535) is refused
with an error that says so (narrow the rule, or use the Kernel data plane).

    proxy = Proxy(view, chooser, on_refused=health.refused, proxy_protocol_ports={143})
    await proxy.start()
    ...
    await proxy.set_view(new_view)
    proxy.connections("CAS01")
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from casarray.balancer.model import ClusterView, FilteringMode, Node, PortRule, RuleProtocol
from casarray.errors import CasarrayError

log = logging.getLogger("casarray.balancer.proxy")

# (rule, client_ip, client_port, cluster_port, exclude) -> the node, or None for none
Chooser = Callable[[PortRule, str, int, int, set[str]], Node | None]
# (node, cluster_port): a connect to that node was refused or timed out
OnRefused = Callable[[Node, int], None]

CONNECT_TIMEOUT = 2.0
MAX_PORTS_PER_RULE = 64
# What a client may send before its backend is connected, before its reading is paused.
MAX_PENDING = 256 * 1024
BACKLOG = 1024
CLOSE_GRACE = 5.0

PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_PROXY_V2_PROXY = 0x21  # version 2, command PROXY
_PROXY_V2_TCP4 = 0x11  # AF_INET, STREAM
_PROXY_V2_TCP6 = 0x21  # AF_INET6, STREAM


class ProxyConfigError(CasarrayError, ValueError):
    """A view the proxy can't serve (a port range too wide, a port out of range)."""


def proxy_v2_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """The PROXY protocol v2 header (command PROXY, TCP) for a connection from `source`
    to `destination` (address, port). TCP4 when both addresses are IPv4, TCP6 otherwise
    (an IPv4 address is then written IPv4-mapped, ::ffff:a.b.c.d)."""
    src = ipaddress.ip_address(source[0].split("%", 1)[0])
    dst = ipaddress.ip_address(destination[0].split("%", 1)[0])
    ports = struct.pack("!HH", source[1], destination[1])
    if src.version == 4 and dst.version == 4:
        family, body = _PROXY_V2_TCP4, src.packed + dst.packed + ports
    else:
        family, body = _PROXY_V2_TCP6, _v6(src) + _v6(dst) + ports
    return PROXY_V2_SIGNATURE + struct.pack("!BBH", _PROXY_V2_PROXY, family, len(body)) + body


def _v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    if address.version == 4:
        return ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed).packed
    return address.packed


@dataclass(frozen=True)
class Listener:
    """One listening socket: the address, the port bound, the cluster port it serves."""

    host: str
    port: int
    cluster_port: int


def listeners_for(
    view: ClusterView, max_ports_per_rule: int = MAX_PORTS_PER_RULE
) -> list[Listener]:
    """The sockets the proxy listens on for `view`: each port of each TCP rule that is
    not Disabled, on the rule's IP or else the cluster IP. Raises ProxyConfigError for
    a rule wider than `max_ports_per_rule` or a port outside 1..65535."""
    wanted: dict[tuple[str, int], Listener] = {}
    for rule in view.rules:
        if rule.protocol is RuleProtocol.UDP or rule.mode is FilteringMode.DISABLED:
            continue
        count = rule.end_port - rule.start_port + 1
        if count > max_ports_per_rule:
            raise ProxyConfigError(
                f"port rule {rule.start_port}-{rule.end_port} of cluster {view.name} covers "
                f"{count} ports; the Proxy data plane listens on each port and takes at "
                f"most {max_ports_per_rule} per rule: narrow the rule (-StartPort/-EndPort) "
                "or use the Kernel data plane"
            )
        host = rule.ip or view.ip
        for port in range(rule.start_port, rule.end_port + 1):
            listen_port = port + view.listen_offset
            if not 1 <= listen_port <= 65535 or not 1 <= port + view.backend_offset <= 65535:
                raise ProxyConfigError(
                    f"cluster {view.name}: port {port} maps to listen port {listen_port} and "
                    f"backend port {port + view.backend_offset}, outside 1..65535"
                )
            wanted.setdefault((host, listen_port), Listener(host, listen_port, port))
    return list(wanted.values())


def _rule_for(view: ClusterView, host: str, port: int) -> PortRule | None:
    """The TCP rule serving `port` on `host`: one naming that IP before one for all IPs,
    the narrowest first (as `ClusterView.rule_for`)."""
    best: PortRule | None = None
    best_key: tuple[int, int] | None = None
    for rule in view.rules:
        if not rule.covers(port) or rule.protocol is RuleProtocol.UDP:
            continue
        if rule.ip is not None and rule.ip != host:
            continue
        key = (0 if rule.ip is not None else 1, rule.end_port - rule.start_port)
        if best_key is None or key < best_key:
            best, best_key = rule, key
    return best


def _pause(transport: Any) -> None:
    if transport is not None and not transport.is_closing():
        with contextlib.suppress(RuntimeError, AttributeError):
            transport.pause_reading()


def _resume(transport: Any) -> None:
    if transport is not None and not transport.is_closing():
        with contextlib.suppress(RuntimeError, AttributeError):
            transport.resume_reading()


class _ClientSide(asyncio.Protocol):
    """A client's connection to the cluster IP, and the pair it belongs to."""

    __slots__ = (
        "_backend",
        "_closed",
        "_eof",
        "_paused_by_backend",
        "_paused_pending",
        "_pending",
        "_pending_size",
        "_task",
        "_timed_out",
        "_write_paused",
        "cluster_port",
        "host",
        "node",
        "opened",
        "peer",
        "proxy",
        "transport",
    )

    def __init__(self, proxy: Proxy, host: str, cluster_port: int) -> None:
        self.proxy = proxy
        self.host = host
        self.cluster_port = cluster_port
        self.transport: Any = None
        self.node: Node | None = None
        self.peer: tuple[str, int] = ("", 0)
        self.opened = time.monotonic()
        self._backend: _BackendSide | None = None  # set once connected
        self._task: asyncio.Task[None] | None = None
        self._timed_out = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._eof = False
        self._closed = False
        self._write_paused = False  # the client isn't reading: backend reading paused
        self._paused_by_backend = False
        self._paused_pending = False

    # -- client transport callbacks -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1]) if peer else ("", 0)
        self.proxy._clients.add(self)
        self._task = asyncio.get_running_loop().create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        backend = self._backend
        if backend is not None:
            backend.transport.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > MAX_PENDING and not self._paused_pending:
            self._paused_pending = True
            _pause(self.transport)

    def eof_received(self) -> bool:
        self._eof = True
        backend = self._backend
        if backend is not None:
            self._forward_eof(backend.transport)
            if backend.eof:
                self.close()
        return True  # keep the transport: the backend may still send

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._backend is not None:
            _pause(self._backend.transport)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._backend is not None:
            _resume(self._backend.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._pending.clear()
        self.close()
        if self.node is not None:
            log.debug(
                "%s:%d -> %s closed after %.1f s%s",
                *self.peer,
                self.node.name,
                time.monotonic() - self.opened,
                f" ({exc})" if exc else "",
            )
        self.proxy._forget(self)

    # -- from the backend side ----------------------------------------------------------

    def backend_paused_writing(self) -> None:
        self._paused_by_backend = True
        _pause(self.transport)

    def backend_resumed_writing(self) -> None:
        self._paused_by_backend = False
        if not self._paused_pending:
            _resume(self.transport)

    def backend_eof(self) -> None:
        self._forward_eof(self.transport)
        if self._eof:
            self.close()

    # -- the pair -----------------------------------------------------------------------

    @staticmethod
    def _forward_eof(transport: Any) -> None:
        if transport.is_closing():
            return
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except (OSError, RuntimeError):
                transport.close()
        else:
            transport.close()

    def close(self) -> None:
        """Close both sides once what is buffered is written."""
        if self._closed:
            return
        self._closed = True
        if self._backend is not None:
            self._backend.transport.close()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Cut both sides now."""
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._backend is not None:
            self._backend.transport.abort()
        if self.transport is not None:
            self.transport.abort()
        self.proxy._forget(self)  # counted out now, not at connection_lost

    # -- connecting ---------------------------------------------------------------------

    async def _connect(self) -> None:
        proxy = self.proxy
        loop = asyncio.get_running_loop()
        client_ip, client_port = self.peer
        exclude: set[str] = set()
        view = proxy.view
        rule = _rule_for(view, self.host, self.cluster_port)
        if rule is None or rule.mode is FilteringMode.DISABLED:
            log.debug("%s:%d: no rule for port %d", client_ip, client_port, self.cluster_port)
            self.transport.close()
            return
        backend_port = self.cluster_port + view.backend_offset
        for _ in range(max(1, len(view.nodes))):
            try:
                node = proxy._chooser(rule, client_ip, client_port, self.cluster_port, exclude)
            except Exception:
                log.exception("chooser failed for %s:%d", client_ip, client_port)
                node = None
            if node is None:
                break
            proxy._assign(self, node)
            side = _BackendSide(self)
            # a timer rather than asyncio.timeout(): a third of the cost per connection
            timer = loop.call_later(proxy.connect_timeout, self._connect_timed_out)
            try:
                await loop.create_connection(
                    lambda side=side: side,
                    node.address,
                    backend_port,
                    local_addr=(proxy.source_address, 0)
                    if proxy.source_address and self.cluster_port in proxy.proxy_protocol_ports
                    else None,
                )
            except (OSError, asyncio.CancelledError) as exc:
                timer.cancel()
                reason = str(exc) or "timed out"
                if isinstance(exc, asyncio.CancelledError):
                    if not self._timed_out or self._closed:
                        proxy._assign(self, None)
                        side.discard()
                        raise
                    self._timed_out = False
                    if self._task is not None:
                        self._task.uncancel()
                    reason = "timed out"
                proxy._assign(self, None)
                side.discard()
                if self._closed:
                    return
                exclude.add(node.name)
                log.info(
                    "%s:%d -> %s (%s:%d) failed: %s",
                    client_ip,
                    client_port,
                    node.name,
                    node.address,
                    backend_port,
                    reason,
                )
                proxy._refused(node, self.cluster_port)
                continue
            timer.cancel()
            if self._closed:
                side.discard()
                return
            self._link(side)
            return
        log.warning(
            "%s:%d: no node for port %d (tried %s)",
            client_ip,
            client_port,
            self.cluster_port,
            ", ".join(sorted(exclude)) or "none",
        )
        self.transport.close()

    def _connect_timed_out(self) -> None:
        if self._task is not None and not self._task.done():
            self._timed_out = True
            self._task.cancel()

    def _link(self, side: _BackendSide) -> None:
        """The backend is connected: send the PROXY header and what the client sent
        meanwhile, and replay what the backend did meanwhile."""
        self._backend = side
        side.linked = True
        backend = side.transport
        if self.cluster_port in self.proxy.proxy_protocol_ports:
            sockname = self.transport.get_extra_info("sockname")
            try:
                header = proxy_v2_header(self.peer, (sockname[0], sockname[1]))
            except (TypeError, ValueError, IndexError):
                log.warning("no PROXY header for %s:%d", *self.peer)
            else:
                backend.write(header)
        if self._pending:
            backend.write(b"".join(self._pending))
            self._pending.clear()
            self._pending_size = 0
        if self._paused_pending:
            self._paused_pending = False
            if not self._paused_by_backend:
                _resume(self.transport)
        if self._write_paused:
            _pause(backend)
        if side.lost:
            self.close()
            return
        if self._eof:
            self._forward_eof(backend)
        if side.eof:
            self.backend_eof()


class _BackendSide(asyncio.Protocol):
    """The proxy's connection to the chosen node."""

    __slots__ = ("client", "eof", "linked", "lost", "transport")

    def __init__(self, client: _ClientSide) -> None:
        self.client = client
        self.transport: Any = None
        self.linked = False  # the client side knows of it (after create_connection)
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.client._write_paused:
            _pause(transport)

    def data_received(self, data: bytes) -> None:
        # (possibly before linked: the client transport is there all along)
        self.client.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.linked:
            self.client.backend_eof()
        return True

    def pause_writing(self) -> None:
        self.client.backend_paused_writing()

    def resume_writing(self) -> None:
        self.client.backend_resumed_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.linked:
            self.client.close()

    def discard(self) -> None:
        """A connection that won't be linked (cancelled, timed out, client gone)."""
        if self.transport is not None:
            self.transport.abort()


class Proxy:
    """The user-space data plane of one NLB cluster."""

    def __init__(
        self,
        view: ClusterView,
        chooser: Chooser,
        *,
        on_refused: OnRefused | None = None,
        proxy_protocol_ports: Iterable[int] = (),
        connect_timeout: float = CONNECT_TIMEOUT,
        max_ports_per_rule: int = MAX_PORTS_PER_RULE,
        source_address: str | None = None,
    ) -> None:
        listeners_for(view, max_ports_per_rule)  # refuse an unservable view early
        # Connections that carry a PROXY header come from this address (the cluster IP,
        # which the nodes trust to send one); None: any. Others come from any address:
        # binding a source costs a tenth of the new connections a second.
        self.source_address = source_address
        self._view = view
        self._chooser = chooser
        self._on_refused = on_refused
        self.proxy_protocol_ports: frozenset[int] = frozenset(proxy_protocol_ports)
        self.connect_timeout = connect_timeout
        self.max_ports_per_rule = max_ports_per_rule
        self._servers: dict[Listener, asyncio.AbstractServer] = {}
        self._clients: set[_ClientSide] = set()
        self._by_node: dict[str, set[_ClientSide]] = {}
        self._lock = asyncio.Lock()
        self._started = False
        self._closing = False

    # -- the view -----------------------------------------------------------------------

    @property
    def view(self) -> ClusterView:
        return self._view

    @property
    def listeners(self) -> list[Listener]:
        """The sockets listening now."""
        return sorted(self._servers, key=lambda item: (item.host, item.port))

    async def start(self) -> None:
        """Listen on every port of the view. Raises OSError if a port can't be bound
        (nothing is left listening then)."""
        self._started = True
        await self.set_view(self._view)

    async def set_view(
        self, view: ClusterView, *, proxy_protocol_ports: Iterable[int] | None = None
    ) -> None:
        """Serve `view` from now on. New connections use it at once; listeners open for
        new ports and close for removed ones; open connections are left as they are.
        If the view can't be served (ProxyConfigError) or a new port can't be bound
        (OSError), the previous view and listeners stay."""
        wanted = listeners_for(view, self.max_ports_per_rule)
        if not self._started or self._closing:
            self._view = view
            if proxy_protocol_ports is not None:
                self.proxy_protocol_ports = frozenset(proxy_protocol_ports)
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            opened: dict[Listener, asyncio.AbstractServer] = {}
            # A port that now serves another cluster port (listen_offset changed): its
            # old listener goes first, or the new one couldn't bind.
            rebound = {(item.host, item.port) for item in wanted if item not in self._servers}
            for listener in [item for item in self._servers if item not in set(wanted)]:
                if (listener.host, listener.port) in rebound:
                    self._servers.pop(listener).close()
            try:
                for listener in wanted:
                    if listener in self._servers:
                        continue
                    opened[listener] = await loop.create_server(
                        functools.partial(_ClientSide, self, listener.host, listener.cluster_port),
                        listener.host,
                        listener.port,
                        reuse_address=True,
                        backlog=BACKLOG,
                    )
            except OSError as exc:
                for server in opened.values():
                    server.close()
                raise OSError(
                    exc.errno,
                    f"cluster {view.name}: can't listen on {listener.host}:{listener.port}"
                    f" (cluster port {listener.cluster_port}): {exc.strerror or exc}",
                ) from exc
            self._view = view
            if proxy_protocol_ports is not None:
                self.proxy_protocol_ports = frozenset(proxy_protocol_ports)
            keep = set(wanted)
            for listener in [item for item in self._servers if item not in keep]:
                self._servers.pop(listener).close()
                log.info("%s: stopped listening on %s:%d", view.name, listener.host, listener.port)
            for listener, server in opened.items():
                self._servers[listener] = server
                log.info(
                    "%s: listening on %s:%d (port %d)",
                    view.name,
                    listener.host,
                    listener.port,
                    listener.cluster_port,
                )

    # -- connections --------------------------------------------------------------------

    def connections(self, node: Node | str | None = None) -> int:
        """Open (or opening) connections to `node` (a Node or its name); all of them
        without one."""
        if node is None:
            return len(self._clients)
        return len(self._by_node.get(_key(node), ()))

    def close_node_connections(self, node: Node | str) -> int:
        """Cut every connection to `node` now (the drain timeout expired); how many."""
        clients = list(self._by_node.get(_key(node), ()))
        for client in clients:
            client.abort()
        if clients:
            log.info("%s: cut %d connection(s) to %s", self._view.name, len(clients), _key(node))
        return len(clients)

    def buffered(self) -> int:
        """Bytes held in the proxy's write buffers and pending reads (all connections)."""
        total = 0
        for client in self._clients:
            total += client._pending_size
            for transport in (
                client.transport,
                client._backend.transport if client._backend else None,
            ):
                if transport is not None and not transport.is_closing():
                    total += transport.get_write_buffer_size()
        return total

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Stop listening; wait up to `grace` seconds for open connections to finish,
        then cut the rest."""
        self._closing = True
        async with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.close()
        deadline = time.monotonic() + grace
        while self._clients and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for client in list(self._clients):
            client.abort()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        await asyncio.sleep(0)  # let the aborted transports report connection_lost

    # -- bookkeeping (from the connections) ---------------------------------------------

    def _assign(self, client: _ClientSide, node: Node | None) -> None:
        if client.node is not None:
            members = self._by_node.get(_key(client.node))
            if members is not None:
                members.discard(client)
                if not members:
                    del self._by_node[_key(client.node)]
        client.node = node
        if node is not None:
            self._by_node.setdefault(_key(node), set()).add(client)

    def _forget(self, client: _ClientSide) -> None:
        self._clients.discard(client)
        self._assign(client, None)

    def _refused(self, node: Node, port: int) -> None:
        if self._on_refused is None:
            return
        try:
            self._on_refused(node, port)
        except Exception:
            log.exception("on_refused(%s, %d) failed", node.name, port)


def _key(node: Node | str) -> str:
    return (node.name if isinstance(node, Node) else node).lower()
