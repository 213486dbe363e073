"""The Proxy data plane for UDP: datagram flows relayed by asyncio (uvloop when it runs
the loop).

`DatagramProxy` is `proxy.Proxy`'s twin for the port rules whose protocol is Udp or
Both. It takes the same `chooser` and `on_refused` callables, so the control plane
hands the same ones to both. It listens on the cluster IP (the rule's IP, else the
view's), on every port of those rules that are not Disabled, plus `view.listen_offset`.
The per-rule port cap is the TCP proxy's (`max_ports_per_rule`).

UDP has no connections, so the proxy keeps flows. A flow is one client address and port
on one listening socket (one cluster port on one IP):

- the first datagram asks the chooser for a node and opens a connected UDP socket to
  the node's address, at the cluster port plus `view.backend_offset`, from
  `source_address` (the cluster IP) when that can be bound, else from any address;
- datagrams from the client go out on the flow's socket, replies from the node go back
  out of the listening socket, so the client sees them come from the cluster IP and
  port;
- datagrams that arrive while the flow's socket opens are held (at most
  `MAX_PENDING_DATAGRAMS`); a socket whose write buffer is above `MAX_WRITE_BUFFER`
  drops datagrams instead of buffering more (UDP may lose them anyway);
- a flow with no traffic either way for `idle_timeout` seconds is forgotten (its socket
  closed); one timer serves all flows, which are kept in order of last activity;
- at most `max_flows` flows: a new one evicts the one idle the longest;
- an ICMP port unreachable from the node (the flow socket's ConnectionRefusedError)
  calls `on_refused(node, port)` and unlinks the flow from the node; the next datagram
  chooses again, with the nodes that refused this flow excluded (all of them refused:
  none excluded).

Payloads are opaque: nothing is parsed, and there is no PROXY protocol for UDP.

`set_view()` opens and closes listeners for added and removed ports, and drops the
flows of closed listeners and of nodes gone from the view (or moved to another
address). `flows(node)` counts flows, `close_node_flows(node)` drops a node's flows (the
drain timeout expired), `close()` stops everything.

    udp = DatagramProxy(view, chooser, on_refused=health.refused, source_address=view.ip)
    await udp.start()
    ...
    await udp.set_view(new_view)
    udp.flows("CAS01")
    await udp.close()
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from casarray.balancer.model import ClusterView, FilteringMode, Node, PortRule, RuleProtocol
from casarray.balancer.proxy import (
    MAX_PORTS_PER_RULE,
    Chooser,
    Listener,
    OnRefused,
    listeners_for,
)

log = logging.getLogger("casarray.balancer.udp_proxy")

IDLE_TIMEOUT = 60.0
MAX_FLOWS = 65536
# Datagrams a flow holds while its socket to the node opens; more are dropped.
MAX_PENDING_DATAGRAMS = 32
# A socket's write buffer above which datagrams are dropped rather than buffered.
MAX_WRITE_BUFFER = 256 * 1024

# (listening socket, client address, client port)
FlowKey = tuple[Listener, str, int]


def udp_listeners_for(
    view: ClusterView, max_ports_per_rule: int = MAX_PORTS_PER_RULE
) -> list[Listener]:
    """The UDP sockets the proxy listens on for `view`: each port of each Udp or Both
    rule that is not Disabled, on the rule's IP or else the cluster IP. Raises
    ProxyConfigError as `proxy.listeners_for` does (same cap, same port checks)."""
    # proxy.listeners_for takes Tcp and Both rules: hand it the Udp and Both ones.
    rules = tuple(
        replace(rule, protocol=RuleProtocol.BOTH)
        for rule in view.rules
        if rule.protocol is not RuleProtocol.TCP
    )
    return listeners_for(replace(view, rules=rules), max_ports_per_rule)


def _rule_for(view: ClusterView, host: str, port: int) -> PortRule | None:
    """The Udp or Both rule serving `port` on `host`: one naming that IP before one for
    all IPs, the narrowest first (as `proxy` does for TCP)."""
    best: PortRule | None = None
    best_key: tuple[int, int] | None = None
    for rule in view.rules:
        if not rule.covers(port) or rule.protocol is RuleProtocol.TCP:
            continue
        if rule.ip is not None and rule.ip != host:
            continue
        key = (0 if rule.ip is not None else 1, rule.end_port - rule.start_port)
        if best_key is None or key < best_key:
            best, best_key = rule, key
    return best


def _key(node: Node | str) -> str:
    return (node.name if isinstance(node, Node) else node).lower()


def _family(address: str) -> int | None:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).version
    except ValueError:
        return None  # a name: let the system decide


async def _closed(sockets: Iterable[asyncio.Future[None]]) -> None:
    """Wait (a little) for listening sockets to be closed."""
    pending = set(sockets)
    if pending:
        await asyncio.wait(pending, timeout=1.0)


def _send(transport: Any, data: bytes, addr: Any = None) -> bool:
    """Send a datagram unless the transport is closing or its buffer is full."""
    if transport.is_closing() or transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
        return False
    transport.sendto(data, addr)
    return True


class _Flow:
    """One client (address, port) on one listening socket, and its node if linked."""

    __slots__ = (
        "client",
        "closed",
        "excluded",
        "key",
        "last",
        "listener",
        "node",
        "pending",
        "task",
        "transport",
    )

    def __init__(self, key: FlowKey, listener: _ListenerSide, client: Any, now: float) -> None:
        self.key = key
        self.listener = listener
        self.client = client  # the address as received (sendto takes it back)
        self.last = now
        self.node: Node | None = None
        self.transport: Any = None  # the connected socket to the node, once linked
        self.task: asyncio.Task[None] | None = None  # choosing and opening
        self.pending: list[bytes] = []
        self.excluded: set[str] = set()  # nodes that refused this flow
        self.closed = False


class _ListenerSide(asyncio.DatagramProtocol):
    """A listening socket on the cluster IP."""

    __slots__ = ("listener", "lost", "proxy", "transport")

    def __init__(self, proxy: DatagramProxy, listener: Listener) -> None:
        self.proxy = proxy
        self.listener = listener
        self.transport: Any = None
        # done when the socket is closed (the port can be bound again)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.proxy._from_client(self, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("%s:%d: %s", self.listener.host, self.listener.port, exc)


class _NodeSide(asyncio.DatagramProtocol):
    """A flow's connected socket to its node."""

    __slots__ = ("flow", "proxy", "transport")

    def __init__(self, proxy: DatagramProxy, flow: _Flow) -> None:
        self.proxy = proxy
        self.flow = flow
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.proxy._from_node(self, data)

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, ConnectionRefusedError):
            self.proxy._node_refused(self)
        else:
            log.debug("flow %s:%d: %s", self.flow.key[1], self.flow.key[2], exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.proxy._node_lost(self)


class DatagramProxy:
    """The user-space UDP data plane of one NLB cluster."""

    def __init__(
        self,
        view: ClusterView,
        chooser: Chooser,
        *,
        on_refused: OnRefused | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        max_flows: int = MAX_FLOWS,
        max_ports_per_rule: int = MAX_PORTS_PER_RULE,
        source_address: str | None = None,
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
        if max_flows < 1:
            raise ValueError(f"max_flows must be at least 1, not {max_flows}")
        udp_listeners_for(view, max_ports_per_rule)  # refuse an unservable view early
        # Send to the nodes from this address (the cluster IP) when it can be bound;
        # None, or an address that can't be bound: any.
        self.source_address = source_address
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self.max_ports_per_rule = max_ports_per_rule
        self._view = view
        self._chooser = chooser
        self._on_refused = on_refused
        self._listeners: dict[Listener, _ListenerSide] = {}
        # by last activity, the longest idle first
        self._flows: OrderedDict[FlowKey, _Flow] = OrderedDict()
        self._by_node: dict[str, set[_Flow]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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
        return sorted(self._listeners, key=lambda item: (item.host, item.port))

    async def start(self) -> None:
        """Listen on every UDP port of the view. Raises OSError if a port can't be bound
        (nothing is left listening then)."""
        self._loop = asyncio.get_running_loop()
        self._started = True
        await self.set_view(self._view)

    async def set_view(self, view: ClusterView) -> None:
        """Serve `view` from now on. New flows use it at once; listeners open for new
        ports and close for removed ones, with their flows; flows to nodes no longer in
        the view are dropped, the others go on. If the view can't be served
        (ProxyConfigError) or a new port can't be bound (OSError), the previous view and
        listeners stay."""
        wanted = udp_listeners_for(view, self.max_ports_per_rule)
        if not self._started or self._closing:
            self._view = view
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            opened: dict[Listener, _ListenerSide] = {}
            # A port that now serves another cluster port (listen_offset changed): its
            # old listener goes first, or the new one couldn't bind.
            rebound = {(item.host, item.port) for item in wanted if item not in self._listeners}
            await _closed(
                self._close_listener(listener)
                for listener in [item for item in self._listeners if item not in set(wanted)]
                if (listener.host, listener.port) in rebound
            )
            try:
                for listener in wanted:
                    if listener in self._listeners:
                        continue
                    _, side = await loop.create_datagram_endpoint(
                        functools.partial(_ListenerSide, self, listener),
                        local_addr=(listener.host, listener.port),
                    )
                    opened[listener] = side
            except OSError as exc:
                for side in opened.values():
                    side.transport.close()
                await _closed(side.lost for side in opened.values())
                raise OSError(
                    exc.errno,
                    f"cluster {view.name}: can't listen on UDP {listener.host}:"
                    f"{listener.port} (cluster port {listener.cluster_port}): "
                    f"{exc.strerror or exc}",
                ) from exc
            self._view = view
            keep = set(wanted)
            closing = [
                self._close_listener(listener)
                for listener in [item for item in self._listeners if item not in keep]
            ]
            for listener, side in opened.items():
                self._listeners[listener] = side
                log.info(
                    "%s: listening on UDP %s:%d (port %d)",
                    view.name,
                    listener.host,
                    listener.port,
                    listener.cluster_port,
                )
            nodes = {(_key(node), node.address) for node in view.nodes}
            for flow in list(self._flows.values()):
                if flow.node is not None and (_key(flow.node), flow.node.address) not in nodes:
                    self._drop(flow)
            await _closed(closing)

    def _close_listener(self, listener: Listener) -> asyncio.Future[None]:
        """Close a listener and drop its flows; done when the socket is closed."""
        side = self._listeners.pop(listener)
        side.transport.close()
        for flow in [flow for flow in self._flows.values() if flow.listener is side]:
            self._drop(flow)
        log.info(
            "%s: stopped listening on UDP %s:%d", self._view.name, listener.host, listener.port
        )
        return side.lost

    # -- flows --------------------------------------------------------------------------

    def flows(self, node: Node | str | None = None) -> int:
        """The flows linked to `node` (a Node or its name); without one, every flow
        known (those choosing or opening, or unlinked by a refusal, too)."""
        if node is None:
            return len(self._flows)
        return len(self._by_node.get(_key(node), ()))

    def close_node_flows(self, node: Node | str) -> int:
        """Drop every flow to `node` now (the drain timeout expired); how many."""
        flows = list(self._by_node.get(_key(node), ()))
        for flow in flows:
            self._drop(flow)
        if flows:
            log.info("%s: dropped %d UDP flow(s) to %s", self._view.name, len(flows), _key(node))
        return len(flows)

    async def close(self) -> None:
        """Stop listening and drop every flow."""
        self._closing = True
        tasks = [flow.task for flow in self._flows.values() if flow.task is not None]
        async with self._lock:
            await _closed([self._close_listener(listener) for listener in list(self._listeners)])
        for flow in list(self._flows.values()):
            self._drop(flow)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # let the closed transports report connection_lost

    # -- datagrams ----------------------------------------------------------------------

    def _from_client(self, side: _ListenerSide, data: bytes, addr: Any) -> None:
        if self._closing or self._loop is None:
            return
        now = self._loop.time()
        key: FlowKey = (side.listener, addr[0], addr[1])
        flow = self._flows.get(key)
        if flow is None:
            if len(self._flows) >= self.max_flows:
                self._drop(next(iter(self._flows.values())))  # the longest idle
            flow = self._flows[key] = _Flow(key, side, addr, now)
            self._arm()
        else:
            self._flows.move_to_end(key)
            flow.last = now
        if flow.transport is not None:
            _send(flow.transport, data)
            return
        if len(flow.pending) < MAX_PENDING_DATAGRAMS:
            flow.pending.append(data)
        if flow.task is None:
            flow.task = self._loop.create_task(self._link(flow))

    def _from_node(self, side: _NodeSide, data: bytes) -> None:
        flow = side.flow
        if flow.closed or flow.transport is not side.transport or self._loop is None:
            return
        flow.last = self._loop.time()
        self._flows.move_to_end(flow.key)
        _send(flow.listener.transport, data, flow.client)

    def _node_refused(self, side: _NodeSide) -> None:
        """ICMP port unreachable: report the node, unlink the flow from it."""
        flow = side.flow
        node = flow.node
        if flow.closed or flow.transport is not side.transport or node is None:
            return
        self._unlink(flow)
        flow.excluded.add(node.name)
        log.info("UDP %s:%d -> %s (%s) refused", flow.key[1], flow.key[2], node.name, node.address)
        self._refused(node, flow.listener.listener.cluster_port)

    def _node_lost(self, side: _NodeSide) -> None:
        flow = side.flow
        if not flow.closed and flow.transport is side.transport:
            self._unlink(flow)  # closed under us: the next datagram chooses again

    # -- choosing and opening -----------------------------------------------------------

    async def _link(self, flow: _Flow) -> None:
        view = self._view
        listener = flow.listener.listener
        client_ip, client_port = flow.key[1], flow.key[2]
        rule = _rule_for(view, listener.host, listener.cluster_port)
        if rule is None or rule.mode is FilteringMode.DISABLED:
            log.debug(
                "UDP %s:%d: no rule for port %d", client_ip, client_port, listener.cluster_port
            )
            flow.task = None  # (this task is ending: not to be cancelled)
            self._drop(flow)
            return
        backend_port = listener.cluster_port + view.backend_offset
        for _ in range(max(1, len(view.nodes))):
            node = self._choose(rule, flow)
            if node is None:
                break
            side = _NodeSide(self, flow)
            try:
                transport = await self._open(side, node.address, backend_port)
            except OSError as exc:
                if flow.closed:
                    return
                flow.excluded.add(node.name)
                log.info(
                    "UDP %s:%d -> %s (%s:%d) failed: %s",
                    client_ip,
                    client_port,
                    node.name,
                    node.address,
                    backend_port,
                    exc,
                )
                self._refused(node, listener.cluster_port)
                continue
            if flow.closed:
                transport.close()
                return
            flow.task = None
            flow.transport = transport
            self._assign(flow, node)
            pending, flow.pending = flow.pending, []
            for data in pending:
                _send(transport, data)
            return
        log.warning("UDP %s:%d: no node for port %d", client_ip, client_port, listener.cluster_port)
        flow.task = None  # (this task is ending: not to be cancelled)
        self._drop(flow)

    def _choose(self, rule: PortRule, flow: _Flow) -> Node | None:
        listener = flow.listener.listener
        args = (rule, flow.key[1], flow.key[2], listener.cluster_port)
        try:
            node = self._chooser(*args, set(flow.excluded))
            if node is None and flow.excluded:
                flow.excluded.clear()  # every node refused this flow: start over
                node = self._chooser(*args, set())
        except Exception:
            log.exception("chooser failed for UDP %s:%d", flow.key[1], flow.key[2])
            return None
        return node

    async def _open(self, side: _NodeSide, address: str, port: int) -> Any:
        """A UDP socket connected to (address, port), bound to the source address when
        it can be."""
        loop = asyncio.get_running_loop()
        source = self.source_address
        if source and _family(source) == _family(address):
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: side, local_addr=(source, 0), remote_addr=(address, port)
                )
                return transport
            except OSError as exc:
                # (uvloop's error for a failed bind carries no errno: try without)
                log.debug("can't send from %s (%s): from any address", source, exc)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: side, remote_addr=(address, port)
        )
        return transport

    # -- bookkeeping --------------------------------------------------------------------

    def _assign(self, flow: _Flow, node: Node | None) -> None:
        if flow.node is not None:
            members = self._by_node.get(_key(flow.node))
            if members is not None:
                members.discard(flow)
                if not members:
                    del self._by_node[_key(flow.node)]
        flow.node = node
        if node is not None:
            self._by_node.setdefault(_key(node), set()).add(flow)

    def _unlink(self, flow: _Flow) -> None:
        transport, flow.transport = flow.transport, None
        self._assign(flow, None)
        if transport is not None:
            transport.close()

    def _drop(self, flow: _Flow) -> None:
        if self._flows.get(flow.key) is flow:
            del self._flows[flow.key]
        flow.closed = True
        flow.pending.clear()
        if flow.task is not None and not flow.task.done():
            flow.task.cancel()
        flow.task = None
        self._unlink(flow)

    def _arm(self) -> None:
        """Wake when the longest idle flow expires (if not already due to wake)."""
        if self._timer is None and self._flows and self._loop is not None:
            first = next(iter(self._flows.values()))
            self._timer = self._loop.call_at(first.last + self.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        self._timer = None
        if self._loop is None:
            return
        # (a timer may fire up to the clock's resolution early)
        now = self._loop.time() + 0.001
        while self._flows:
            first = next(iter(self._flows.values()))
            if first.last + self.idle_timeout > now:
                break
            log.debug("UDP flow %s:%d idle: forgotten", first.key[1], first.key[2])
            self._drop(first)
        self._arm()

    def _refused(self, node: Node, port: int) -> None:
        if self._on_refused is None:
            return
        try:
            self._on_refused(node, port)
        except Exception:
            log.exception("on_refused(%s, %d) failed", node.name, port)
