"""The balancer's control plane: one NLB cluster kept in step with the directory and
with its nodes' health, on one data plane.

    balancer = Balancer(read_view, ProxyEngine(), status_path=...)
    await balancer.start()          # the first view, probes, the data plane
    await balancer.loop()           # until balancer.stop(); call view_changed() on changes
    await balancer.close()

(`balancer_process.BalancerProcess` is the process that does this for one cluster.)

- `read_view()` (blocking) gives the cluster as the directory has it now
  (`model.ClusterView`); it is read again at every topology change (`follow`), so a
  node added, a port rule changed or a node drained applies within a second.
- A `health.HealthChecker` probes every node on every port rule; each transition (a
  node down, up, or done warming up) re-renders the data plane, and while a node is in
  slow start the data plane is re-rendered every second with its growing weight.
- The engine is the data plane: `ProxyEngine` (asyncio, `proxy.Proxy`, choosing per
  connection with `hashing.ranked` and the live health; a refused connection marks the
  node down at once and is retried on the next node), `KernelEngine` (nftables,
  `nft.render_script` with a rendezvous slot table per rule; conntrack keeps the
  established connections; the table stays when this process dies, so forwarding goes
  on) or an HAProxy engine (`haproxy`).
- Drain (`Stop-NlbClusterNode -Drain`): a draining node gets no new connections (its
  weight is 0) and keeps its open ones; at the drain deadline, the Proxy engine cuts
  them.

The status (per node: state with the failing probe, connections) is written to
`$CASARRAY_HOME/run/balancer-<cluster>.json` for `Get-NlbClusterNode` and the lab.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from casarray.balancer import conntrack, hashing, nft
from casarray.balancer.health_probes import HealthChecker, Transition
from casarray.balancer.model import ClusterView, FilteringMode, HostState, Node, PortRule
from casarray.balancer.proxy import Proxy
from casarray.balancer.udp_proxy import DatagramProxy
from casarray.process.status import StatusFile

log = logging.getLogger("casarray.balancer")

SLOTS_PER_NODE = 256  # nftables buckets per node: shares within a few per cent
RAMP_INTERVAL = 1.0  # seconds between re-renders while a node warms up
PROXY_SLOTS = 1024  # the Proxy plane's first-choice table per rule


class Engine(Protocol):
    """A data plane: started once, told of every new view or health change."""

    name: str

    async def start(self, view: ClusterView, checker: HealthChecker) -> None: ...

    async def update(self, view: ClusterView, checker: HealthChecker) -> None: ...

    def connections(self, node: Node) -> int | None: ...

    def cut(self, node: Node) -> int: ...

    async def close(self, view: ClusterView, *, keep: bool) -> None: ...


def choose(
    view: ClusterView,
    rule: PortRule,
    client_ip: str,
    client_port: int,
    exclude: set[str],
    *,
    healthy: frozenset[str],
    weights: Mapping[str, float],
) -> Node | None:
    """The node for a new connection: the best ranked healthy, started node that
    hasn't refused it already."""
    ranked = hashing.ranked(
        rule, view.nodes, client_ip, client_port, healthy=healthy, weights=weights
    )
    lowered = {name.lower() for name in exclude}
    return next((node for node in ranked if node.name.lower() not in lowered), None)


def proxy_protocol_ports(view: ClusterView) -> frozenset[int]:
    """The cluster ports whose rule sends the nodes a PROXY protocol header."""
    return frozenset(
        port
        for rule in view.rules
        if rule.proxy_protocol and rule.end_port - rule.start_port < 64
        for port in range(rule.start_port, rule.end_port + 1)
    )


class ProxyEngine:
    """The user-space data plane: `proxy.Proxy` for TCP, `udp_proxy.DatagramProxy` for
    the UDP side of Udp and Both rules. On the rules that send a PROXY
    protocol header it connects to the nodes from the cluster IP, the address the nodes
    trust to send one. A connection's first choice is a slot table lookup (one hash);
    the rendezvous ranking is computed only to retry after a refusal."""

    name = "Proxy"

    def __init__(self) -> None:
        self.proxy: Proxy | None = None
        self.udp: DatagramProxy | None = None
        self._view: ClusterView | None = None
        self._checker: HealthChecker | None = None
        # per rule (by identity): the healthy nodes, their weights and the slot table of
        # first choices, computed at each update (every health change, and each second
        # of a slow start), not per connection
        self._inputs: dict[int, tuple[frozenset[str], dict[str, float]]] = {}
        self._slots: dict[int, tuple[Node | None, ...]] = {}

    def _refresh(self, view: ClusterView, checker: HealthChecker) -> None:
        self._inputs = {
            id(rule): (checker.healthy(rule), checker.weights(rule)) for rule in view.rules
        }
        self._slots = {
            id(rule): hashing.slot_table(
                rule, view.nodes, PROXY_SLOTS, healthy=healthy, weights=weights
            )
            for rule in view.rules
            for healthy, weights in (self._inputs[id(rule)],)
            if rule.mode is FilteringMode.MULTIPLE
        }

    def _choose(
        self, rule: PortRule, client_ip: str, client_port: int, port: int, exclude: set[str]
    ) -> Node | None:
        assert self._view is not None and self._checker is not None
        table = self._slots.get(id(rule))
        if table is not None and not exclude:  # the first choice: one hash, one lookup
            node = table[hashing.slot_index(rule.affinity, client_ip, client_port, PROXY_SLOTS)]
            if node is not None:
                return node
        inputs = self._inputs.get(id(rule))
        if inputs is None:  # a rule of a view not seen by update() yet
            inputs = (self._checker.healthy(rule), self._checker.weights(rule))
        healthy, weights = inputs
        return choose(
            self._view, rule, client_ip, client_port, exclude, healthy=healthy, weights=weights
        )

    def _refused(self, node: Node, port: int) -> None:
        if self._checker is not None:
            self._checker.report_refused(node.name, port)
            if self._view is not None:  # at once, not at the next update
                self._refresh(self._view, self._checker)

    async def start(self, view: ClusterView, checker: HealthChecker) -> None:
        self._view, self._checker = view, checker
        self._refresh(view, checker)
        self.proxy = Proxy(
            view,
            self._choose,
            on_refused=self._refused,
            proxy_protocol_ports=proxy_protocol_ports(view),
            source_address=view.ip,
        )
        await self.proxy.start()
        # UDP: an ICMP refusal moves the flow to another node; the node's health is the
        # TCP probes' to judge (a Both rule's TCP side may be fine)
        self.udp = DatagramProxy(view, self._choose, source_address=view.ip)
        try:
            await self.udp.start()
        except BaseException:
            await self.proxy.close()
            raise

    async def update(self, view: ClusterView, checker: HealthChecker) -> None:
        # health changes need nothing here: every connection asks the checker
        if self.proxy is not None and view != self._view:
            await self.proxy.set_view(view, proxy_protocol_ports=proxy_protocol_ports(view))
            self.proxy.source_address = view.ip
        if self.udp is not None and view != self._view:
            await self.udp.set_view(view)
            self.udp.source_address = view.ip
        self._view, self._checker = view, checker
        self._refresh(view, checker)

    def connections(self, node: Node) -> int | None:
        """Open TCP connections and live UDP flows (idle ones end after a minute)."""
        if self.proxy is None:
            return None
        return self.proxy.connections(node) + (self.udp.flows(node) if self.udp else 0)

    def cut(self, node: Node) -> int:
        if self.proxy is None:
            return 0
        udp = self.udp.close_node_flows(node) if self.udp is not None else 0
        return self.proxy.close_node_connections(node) + udp

    async def close(self, view: ClusterView, *, keep: bool) -> None:
        if self.udp is not None:
            await self.udp.close()
        if self.proxy is not None:
            await self.proxy.close()


def slot_lists(view: ClusterView, checker: HealthChecker) -> dict[int, list[str]]:
    """Per rule (by index), the nftables buckets: node addresses by rendezvous."""
    started = [n for n in view.nodes if n.state is HostState.STARTED]
    size = SLOTS_PER_NODE * max(1, len(started))
    lists: dict[int, list[str]] = {}
    for index, rule in enumerate(view.rules):
        if rule.mode is FilteringMode.DISABLED:
            lists[index] = []
            continue
        table = hashing.slot_table(
            rule, view.nodes, size, healthy=checker.healthy(rule), weights=checker.weights(rule)
        )
        lists[index] = [node.address for node in table if node is not None]
        if len(lists[index]) != len(table):  # no eligible node for some buckets
            lists[index] = []
    return lists


class KernelEngine:
    """The nftables data plane: one table, replaced atomically at every change. Tracked
    connections that would follow an old DNAT are dropped (`balancer.conntrack`): a
    failed node's at once, stale ones at start and at every change of the cluster, all
    of them when the cluster stops."""

    name = "Kernel"

    def __init__(self, nft_command: str = "nft") -> None:
        self.nft_command = nft_command
        self._script = ""
        self._view: ClusterView | None = None
        self._serving: set[str] = set()  # node addresses in the slot lists
        self._counts: dict[str, tuple[float, int]] = {}  # address -> (when, connections)

    async def start(self, view: ClusterView, checker: HealthChecker) -> None:
        await self.update(view, checker)

    async def update(self, view: ClusterView, checker: HealthChecker) -> None:
        lists = slot_lists(view, checker)
        script = nft.render_script(view, [], rule_slots=lists)
        if script != self._script:
            await asyncio.to_thread(nft.apply, script, nft=self.nft_command)
            self._script = script
        serving = {address for slots in lists.values() for address in slots}
        draining = {n.address for n in view.nodes if n.state is not HostState.STARTED}
        for address in self._serving - serving - draining:  # failed, not drained
            await asyncio.to_thread(conntrack.forget_node, address)
        self._serving = serving
        if view != self._view:
            await asyncio.to_thread(conntrack.prune, view)
            self._view = view

    def connections(self, node: Node) -> int | None:
        """The node's established connections, as the kernel tracks them (read with
        `conntrack -L` at most once a second per node)."""
        now = time.monotonic()
        cached = self._counts.get(node.address)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        count = conntrack.count_established(node.address)
        if count is not None:
            self._counts[node.address] = (now, count)
        return count

    def cut(self, node: Node) -> int:
        return 0  # the kernel keeps them; drain's end is the node's to enforce

    async def close(self, view: ClusterView, *, keep: bool) -> None:
        if not keep:
            await asyncio.to_thread(nft.remove, view, nft=self.nft_command)
            await asyncio.to_thread(conntrack.forget_cluster, view)


@dataclass
class Drain:
    node: str
    deadline: float | None  # monotonic; None: until the connections end


class Balancer:
    """Runs one cluster until `stop()`."""

    def __init__(
        self,
        read_view: Callable[[], ClusterView],
        engine: Engine,
        *,
        status_path: Path | None = None,
        checker_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.read_view = read_view
        self.engine = engine
        self.status_path = status_path
        self.checker_options = dict(checker_options or {})
        self.view: ClusterView | None = None
        self.checker: HealthChecker | None = None
        self._dirty = asyncio.Event()
        self._stopping = asyncio.Event()
        self._drains: dict[str, Drain] = {}

    def _on_transition(self, transition: Transition) -> None:
        log.info(
            "%s: node %s port %d %s%s",
            self.view.name if self.view else "?",
            transition.node,
            transition.port,
            transition.change.name,
            f" ({transition.reason})" if transition.reason else "",
        )
        self._dirty.set()

    async def start(self) -> None:
        self.view = await asyncio.to_thread(self.read_view)
        self.checker = HealthChecker(
            self.view, on_transition=self._on_transition, **self.checker_options
        )
        await self.checker.start(wait=True)
        await self.engine.start(self.view, self.checker)
        self._note_drains(self.view)
        self.write_status()
        log.info(
            "%s: %s data plane on %s with %d nodes and %d port rules",
            self.view.name,
            self.engine.name,
            self.view.ip,
            len(self.view.nodes),
            len(self.view.rules),
        )

    async def view_changed(self) -> None:
        """Read the cluster again (the directory changed) and apply it."""
        assert self.checker is not None
        view = await asyncio.to_thread(self.read_view)
        if view == self.view:
            return
        self.view = view
        self.checker.update(view)
        self._note_drains(view)
        await self.engine.update(view, self.checker)
        self.write_status()

    def _note_drains(self, view: ClusterView) -> None:
        """Follow the draining nodes and their deadlines (Stop-NlbClusterNode -Drain
        -Timeout: the node's `drain_until`)."""
        draining = {n.name: n for n in view.nodes if n.state is HostState.DRAINING}
        now = datetime.now(UTC)
        for name, node in draining.items():
            deadline = None
            if node.drain_until is not None:
                left = (node.drain_until - now).total_seconds()
                deadline = time.monotonic() + max(0.0, left)
            known = self._drains.get(name)
            if known is None or (known.deadline is not None) != (deadline is not None):
                self._drains[name] = Drain(name, deadline)
        for name in set(self._drains) - set(draining):
            del self._drains[name]

    def _expire_drains(self) -> bool:
        """Cut the connections of nodes whose drain timed out; whether any did (the
        directory then shows them Stopped: the view is read again)."""
        assert self.view is not None
        now = time.monotonic()
        expired = False
        for drain in list(self._drains.values()):
            if drain.deadline is not None and now >= drain.deadline:
                node = self.view.node(drain.node)
                if node is not None:
                    cut = self.engine.cut(node)
                    log.info("%s: drain of %s timed out; %d cut", self.view.name, node.name, cut)
                drain.deadline = None
                expired = True
        return expired

    async def _rerender(self) -> None:
        assert self.view is not None and self.checker is not None
        await self.engine.update(self.view, self.checker)
        self.write_status()

    async def loop(self) -> None:
        """Re-render on health transitions, and every second while a node warms up."""
        assert self.checker is not None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RAMP_INTERVAL):
                    await self._dirty.wait()
            self._dirty.clear()
            if self._expire_drains():
                await self.view_changed()
            await self._rerender()

    def status(self) -> dict[str, Any]:
        assert self.view is not None and self.checker is not None
        statuses = self.checker.statuses()
        nodes = []
        for node in self.view.nodes:
            shown = statuses.get(node.name)
            nodes.append(
                {
                    "name": node.name,
                    "address": node.address,
                    "host_id": node.host_id,
                    "priority": node.priority,
                    "state": shown.state.value if shown is not None else node.state.value,
                    "detail": shown.detail if shown is not None else "",
                    "connections": self.engine.connections(node),
                }
            )
        return {
            "cluster": self.view.name,
            "ip": self.view.ip,
            "engine": self.engine.name,
            "pid": os.getpid(),
            "listen_offset": self.view.listen_offset,
            "backend_offset": self.view.backend_offset,
            "nodes": nodes,
            "updated": time.time(),
        }

    def write_status(self) -> None:
        if self.status_path is None or self.view is None:
            return
        StatusFile(self.status_path).write(self.status())

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()

    async def close(self, *, keep_data_plane: bool = False) -> None:
        if self.checker is not None:
            await self.checker.stop()
        if self.view is not None:
            await self.engine.close(self.view, keep=keep_data_plane)
        if self.status_path is not None:
            StatusFile(self.status_path).remove()
