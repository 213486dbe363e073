"""Node health for the balancer: service-aware probes per (node, port), passive
detection and slow start; where NLB falls short (it keeps sending clients to a host
whose service died, as long as the host answers its heartbeats).

Two layers, as in the protocol cores (h11 style):

- `HealthState`, sans-IO: one (node, port)'s state machine. Feed it probe results and
  refused connections with their timestamps; it answers with `Transition` events
  (UP, DOWN, WARM = slow start over). `fall` failures in a row take an up node down,
  `rise` successes in a row bring a down node up; a connection the data plane saw
  refused takes it down at once (passive detection). A node that comes back is ramped
  from `slow_start_floor` (10%) of its weight to 100% over `slow_start` seconds, so a
  cold server isn't flooded the moment it answers (`HealthState.factor`).
- `HealthChecker`, asyncio: runs one probe loop per (node, port) of a `ClusterView`
  (every `interval`, 500 ms, jittered by +-10% so probes of many balancers don't
  synchronize), accepts a new view at any time (nodes or rules added or removed), calls
  `on_transition` for every event (the control plane re-renders the data plane then),
  and answers the data planes: `healthy(rule)`, `effective_weight(node, rule)`,
  `weights(rule)`, and the node states shown by Get-NlbClusterNode (`status`).

Probes (`run_probe`), by the cluster port (`model.PORT_PROBES`, or the checker's
`probes` override): IMAP (143, 993 over TLS) reads the greeting and wants `* OK`;
HTTP (80, 443 over TLS) GETs `/<vdir>/healthcheck.htm` (vdir per port, `owa` by
default; the access services answer 503 there while a component is Inactive) and
wants 200; any other port is a TCP connect. TLS doesn't verify the certificate: the
backends have self-signed ones, and a probe asks whether the service answers, not who
it is. Probes go to the node's address and the cluster port plus the view's
`backend_offset`; a state is named by the cluster port ("imap 993: no greeting").

A rule covering a range is probed on the ports of the range that have a known probe,
or else on its start port; UDP-only and Disabled rules aren't probed (their nodes
count as healthy as far as probes go).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from casarray.balancer.model import (
    PORT_PROBES,
    ClusterView,
    FilteringMode,
    HostState,
    Node,
    PortRule,
    Probe,
    RuleProtocol,
)

log = logging.getLogger("casarray.balancer.health_probes")

# The virtual directory whose healthcheck.htm an HTTP probe asks for, per cluster port
# (IMAP ports, if they are told to be probed by HTTP, ask the IMAP component's page).
DEFAULT_VDIRS: Mapping[int, str] = {80: "owa", 443: "owa", 143: "imap", 993: "imap"}
DEFAULT_VDIR = "owa"
HEALTH_PAGE = "healthcheck.htm"


# -- the sans-IO part -------------------------------------------------------------------


@dataclass(frozen=True)
class HealthPolicy:
    """How often to probe and how to judge (HAProxy's inter/fall/rise, slowstart)."""

    interval: float = 0.5  # seconds between the starts of two probes
    jitter: float = 0.1  # each interval is interval * (1 +- jitter), uniformly
    fall: int = 2  # failures in a row that take an up node down
    rise: int = 2  # successes in a row that bring a down node up
    slow_start: float = 10.0  # seconds from slow_start_floor to full weight; 0: none
    slow_start_floor: float = 0.1  # the weight factor the moment a node comes up
    timeout: float = 0.5  # seconds a probe may take (connect, TLS, answer)
    # seconds until the next probe while an up node is failing (HAProxy's fastinter):
    # the second failure that takes it down comes soon after the first
    fast_interval: float = 0.1

    def next_delay(self, rng: random.Random) -> float:
        """The jittered time until the next probe."""
        return self.interval * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def ramp(self, elapsed: float) -> float:
        """The weight factor `elapsed` seconds after coming up: floor .. 1, linearly."""
        if self.slow_start <= 0 or elapsed >= self.slow_start:
            return 1.0
        floor = self.slow_start_floor
        return floor + (1.0 - floor) * max(0.0, elapsed) / self.slow_start


class Change(enum.Enum):
    UP = "up"  # the node may take new connections on this port
    DOWN = "down"  # it may not
    WARM = "warm"  # its slow start is over: full weight


@dataclass(frozen=True)
class Transition:
    """An event of a (node, port)'s health."""

    node: str
    port: int  # the cluster port
    change: Change
    at: float  # the clock's time
    reason: str = ""  # for DOWN: what failed, e.g. "imap 993: no greeting"
    passive: bool = False  # DOWN because the data plane saw a connection refused

    @property
    def up(self) -> bool:
        return self.change is not Change.DOWN


class HealthState:
    """The health of one (node, port), a pure state machine fed with timestamps.

    `up` is None until the first result, which decides at once (a balancer that starts
    knows nothing worth waiting `rise` probes for); later it takes `fall` failures or
    `rise` successes in a row to change. `cold` says whether the first UP starts slow
    (a node that joins a running cluster) or at full weight (the nodes a balancer finds
    when it starts)."""

    def __init__(
        self,
        node: str,
        port: int,
        policy: HealthPolicy | None = None,
        *,
        cold: bool = True,
    ) -> None:
        self.node = node
        self.port = port
        self.policy = policy or HealthPolicy()
        self.cold = cold
        self.up: bool | None = None
        self.reason = "not probed yet"  # why it is down (or "")
        self.changed_at: float | None = None  # when it last went up or down
        self.warm = False  # up, and the slow start is over
        self.fails = 0  # failures in a row
        self.oks = 0  # successes in a row

    def __repr__(self) -> str:
        state = {None: "unknown", True: "up", False: "down"}[self.up]
        return f"<HealthState {self.node}:{self.port} {state} {self.reason!r}>"

    def probe_result(self, ok: bool, now: float, reason: str = "") -> list[Transition]:
        """A probe's outcome at `now` (`reason`: why it failed); the events it causes."""
        if ok:
            self.fails, self.oks = 0, self.oks + 1
            if self.up is None or (not self.up and self.oks >= self.policy.rise):
                return self._go_up(now, warm=self.up is None and not self.cold)
            return self.poll(now)
        self.oks, self.fails = 0, self.fails + 1
        if not self.up:  # down already, or unknown: record the latest reason
            self.reason = reason or "probe failed"
            if self.up is None:
                return self._go_down(now, self.reason, passive=False)
            return []
        if self.fails >= self.policy.fall:
            return self._go_down(now, reason or "probe failed", passive=False)
        return []

    def refused(self, now: float, reason: str = "connection refused") -> list[Transition]:
        """The data plane saw a connection to this node and port refused: down at once,
        and up again only after `rise` good probes."""
        self.oks = 0
        self.fails = max(self.fails, self.policy.fall)
        if self.up is False:
            return []
        return self._go_down(now, reason, passive=True)

    def poll(self, now: float) -> list[Transition]:
        """WARM once the slow start is over (checked with every probe result)."""
        started = self.changed_at
        if self.up and not self.warm and started is not None:
            if now - started < self.policy.slow_start:
                return []
            self.warm = True
            return [Transition(self.node, self.port, Change.WARM, now)]
        return []

    def factor(self, now: float) -> float:
        """The share of its weight the node gets on this port now: 0 when not up, the
        slow start ramp, then 1."""
        if not self.up or self.changed_at is None:
            return 0.0
        if self.warm:
            return 1.0
        return self.policy.ramp(now - self.changed_at)

    def slow_starting(self, now: float) -> bool:
        return bool(self.up) and self.factor(now) < 1.0

    def _go_up(self, now: float, *, warm: bool) -> list[Transition]:
        self.up, self.reason, self.changed_at = True, "", now
        self.warm = warm or self.policy.slow_start <= 0
        events = [Transition(self.node, self.port, Change.UP, now)]
        if self.warm:
            events.append(Transition(self.node, self.port, Change.WARM, now))
        return events

    def _go_down(self, now: float, reason: str, *, passive: bool) -> list[Transition]:
        self.up, self.reason, self.changed_at, self.warm = False, reason, now, False
        return [Transition(self.node, self.port, Change.DOWN, now, reason, passive)]


class NodeState(enum.Enum):
    """A node's state as Get-NlbClusterNode shows it."""

    CONVERGED = "Converged"
    CONVERGING = "Converging"  # not probed yet, or in its slow start
    DRAINING = "Draining"
    STOPPED = "Stopped"
    SUSPENDED = "Suspended"
    UNHEALTHY = "Unhealthy"  # a probed port is down (detail: which and why)


@dataclass(frozen=True)
class NodeStatus:
    state: NodeState
    detail: str = ""  # e.g. "imap 993: no greeting", "slow start 40%"

    def __str__(self) -> str:
        return f"{self.state.value} ({self.detail})" if self.detail else self.state.value


def node_status(node: Node, states: Iterable[HealthState], now: float) -> NodeStatus:
    """The displayed state of `node` from its host state and its ports' health."""
    if node.state is HostState.STOPPED:
        return NodeStatus(NodeState.STOPPED)
    if node.state is HostState.SUSPENDED:
        return NodeStatus(NodeState.SUSPENDED)
    if node.state is HostState.DRAINING:
        return NodeStatus(NodeState.DRAINING)
    ordered = sorted(states, key=lambda s: s.port)
    down = [s for s in ordered if s.up is False]
    if down:
        return NodeStatus(NodeState.UNHEALTHY, "; ".join(s.reason for s in down))
    if any(s.up is None for s in ordered):
        return NodeStatus(NodeState.CONVERGING, "waiting for the first probe")
    ramp = min((s.factor(now) for s in ordered), default=1.0)
    if ramp < 1.0:
        return NodeStatus(NodeState.CONVERGING, f"slow start {ramp:.0%}")
    return NodeStatus(NodeState.CONVERGED)


# -- what to probe ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeTarget:
    """One probe: of which node, on which cluster port, how, at which address."""

    node: str
    port: int  # the cluster port (names the state)
    host: str  # the node's address
    backend_port: int  # the port probed: cluster port + backend_offset
    kind: Probe
    tls: bool = False
    path: str = ""  # HTTP: /<vdir>/healthcheck.htm
    server_name: str = ""  # TLS SNI and HTTP Host (the node's FQDN, else its address)

    @property
    def label(self) -> str:
        return f"{self.kind.value} {self.port}"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str = ""  # why not, e.g. "no greeting (timed out)"


ProbeKinds = Mapping[int, tuple[Probe, bool]]


def probe_ports(rule: PortRule, probes: ProbeKinds | None = None) -> tuple[int, ...]:
    """The cluster ports probed for `rule`: those of its range with a known probe
    (`PORT_PROBES` and `probes`), else its start port; none for a Disabled or UDP-only
    rule."""
    if rule.mode is FilteringMode.DISABLED or rule.protocol is RuleProtocol.UDP:
        return ()
    known = sorted({*PORT_PROBES, *(probes or {})})
    ports = tuple(port for port in known if rule.covers(port))
    return ports or (rule.start_port,)


def probe_targets(
    view: ClusterView,
    *,
    vdirs: Mapping[int, str] | None = None,
    probes: ProbeKinds | None = None,
) -> dict[tuple[str, int], ProbeTarget]:
    """Every probe of a view, by (node name, cluster port)."""
    vdirs = DEFAULT_VDIRS if vdirs is None else {**DEFAULT_VDIRS, **vdirs}
    targets: dict[tuple[str, int], ProbeTarget] = {}
    ports = sorted({port for rule in view.rules for port in probe_ports(rule, probes)})
    for node in view.nodes:
        for port in ports:
            rule = view.rule_for(port)
            kind, tls = (probes or {}).get(port) or (
                rule.probe(port) if rule else (Probe.TCP, False)
            )
            path = f"/{vdirs.get(port, DEFAULT_VDIR)}/{HEALTH_PAGE}" if kind is Probe.HTTP else ""
            targets[node.name, port] = ProbeTarget(
                node=node.name,
                port=port,
                host=node.address,
                backend_port=port + view.backend_offset,
                kind=kind,
                tls=tls,
                path=path,
                server_name=node.fqdn or node.address,
            )
    return targets


# -- the probes ---------------------------------------------------------------------------


@functools.cache
def unverified_context() -> ssl.SSLContext:
    """A client TLS context that accepts any certificate (the backends' are
    self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _failure(exc: BaseException, phase: str) -> ProbeResult:
    """A probe's exception, in words."""
    if isinstance(exc, TimeoutError):
        return ProbeResult(False, "connect timed out" if phase == "connect" else phase)
    if isinstance(exc, ConnectionRefusedError):
        return ProbeResult(False, "connection refused")
    if isinstance(exc, ssl.SSLError):
        return ProbeResult(False, f"TLS failed ({exc.reason or exc})")
    if isinstance(exc, (ConnectionResetError, asyncio.IncompleteReadError)):
        return ProbeResult(False, "connection reset")
    if isinstance(exc, OSError):
        return ProbeResult(False, f"connect failed ({exc.strerror or exc})")
    return ProbeResult(False, f"probe error ({exc!r})")


async def _close(writer: asyncio.StreamWriter | None) -> None:
    if writer is None:
        return
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(0.2):
            await writer.wait_closed()


async def _connect(
    target: ProbeTarget,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        target.host,
        target.backend_port,
        ssl=unverified_context() if target.tls else None,
        server_hostname=target.server_name if target.tls else None,
    )


async def probe_tcp(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Does host:port accept a TCP connection (and a TLS handshake, if `tls`)?"""
    writer = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await _connect(target)
        return ProbeResult(True)
    except Exception as exc:
        return _failure(exc, "connect")
    finally:
        await _close(writer)


async def probe_imap_greeting(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Does the IMAP server greet with `* OK`? (Like `access.http.health.probe_imap`,
    which says only yes or no; this one says why not.)"""
    writer = None
    phase = "connect"
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(target)
            phase = "no greeting (timed out)"
            line = await reader.readline()
    except Exception as exc:
        return _failure(exc, phase)
    finally:
        await _close(writer)
    if line[:4].upper() == b"* OK":
        return ProbeResult(True)
    if not line:
        return ProbeResult(False, "no greeting (connection closed)")
    text = line.decode("ascii", "replace").strip()[:60]
    return ProbeResult(False, f"no greeting (got {text!r})")


async def probe_http(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Does GET <path> answer 200?"""
    writer = None
    phase = "connect"
    default_port = 443 if target.tls else 80
    host = target.server_name or target.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    if target.backend_port != default_port:
        host = f"{host}:{target.backend_port}"
    request = (
        f"GET {target.path} HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: casarray-balancer\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await _connect(target)
            phase = f"GET {target.path}: no answer (timed out)"
            writer.write(request)
            await writer.drain()
            line = await reader.readline()
    except Exception as exc:
        return _failure(exc, phase)
    finally:
        await _close(writer)
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, f"GET {target.path}: no HTTP answer")
    status = int(parts[1])
    if status == 200:
        return ProbeResult(True)
    return ProbeResult(False, f"GET {target.path} answered {status}")


async def run_probe(target: ProbeTarget, timeout: float) -> ProbeResult:
    """Run the probe `target` asks for, within `timeout` seconds. Never raises."""
    if target.kind is Probe.IMAP:
        return await probe_imap_greeting(target, timeout)
    if target.kind is Probe.HTTP:
        return await probe_http(target, timeout)
    return await probe_tcp(target, timeout)


# -- the asyncio checker -----------------------------------------------------------------

Prober = Callable[[ProbeTarget, float], Awaitable[ProbeResult]]
OnTransition = Callable[[Transition], object]


@dataclass
class _Check:
    target: ProbeTarget
    state: HealthState
    first: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class HealthChecker:
    """Probes every (node, port) of a cluster view and keeps their `HealthState`s.

        checker = HealthChecker(view, on_transition=control_plane.rerender)
        await checker.start()          # returns once the first probes have answered
        checker.update(new_view)       # nodes or rules added or removed, any time
        checker.report_refused("CAS01", 993)   # from the data plane
        checker.weights(rule)          # name -> effective weight, for hashing.pick
        await checker.stop()

    The callback is called (synchronously, in the event loop) with every `Transition`;
    it mustn't block. Exceptions it raises are logged and otherwise ignored.
    """

    def __init__(
        self,
        view: ClusterView,
        on_transition: OnTransition | None = None,
        *,
        policy: HealthPolicy | None = None,
        vdirs: Mapping[int, str] | None = None,
        probes: ProbeKinds | None = None,
        prober: Prober = run_probe,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or HealthPolicy()
        self.on_transition = on_transition
        self.vdirs = vdirs
        self.probes = probes
        self._prober = prober
        self._clock = clock
        self._rng = rng or random.Random()
        self._view = view
        self._checks: dict[tuple[str, int], _Check] = {}
        self._retired: set[asyncio.Task[None]] = set()  # cancelled, not yet finished
        self._running = False
        self._sync(view, cold=False)

    @property
    def view(self) -> ClusterView:
        return self._view

    # lifecycle

    async def start(self, *, wait: bool = True) -> None:
        """Start probing; with `wait`, return once every probe has answered once (or
        timed out), so the first data plane is rendered with known health."""
        self._running = True
        for key, check in self._checks.items():
            self._spawn(key, check)
        if wait:
            await self.settled()

    async def settled(self, timeout: float | None = None) -> None:
        """Wait until every current (node, port) has had a probe result."""
        waits = [check.first.wait() for check in self._checks.values()]
        if waits:
            limit = self.policy.timeout + 1.0 if timeout is None else timeout
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(limit):
                    await asyncio.gather(*waits)

    async def stop(self) -> None:
        """Stop every probe (the states stay readable)."""
        self._running = False
        tasks = [c.task for c in self._checks.values() if c.task is not None]
        tasks += self._retired
        self._retired.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for check in self._checks.values():
            check.task = None

    async def __aenter__(self) -> HealthChecker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def update(self, view: ClusterView) -> None:
        """Follow a new view: probes of nodes or ports that are gone stop, new ones
        start (cold: a node joining gets a slow start), changed ones (a new address,
        another probe) start afresh. Call from the event loop."""
        self._view = view
        self._sync(view, cold=True)

    def _sync(self, view: ClusterView, *, cold: bool) -> None:
        targets = probe_targets(view, vdirs=self.vdirs, probes=self.probes)
        for key in list(self._checks):
            if key not in targets or targets[key] != self._checks[key].target:
                check = self._checks.pop(key)
                if check.task is not None:
                    check.task.cancel()
                    self._retired.add(check.task)
                    check.task.add_done_callback(self._retired.discard)
        for key, target in targets.items():
            if key not in self._checks:
                state = HealthState(target.node, target.port, self.policy, cold=cold)
                self._checks[key] = check = _Check(target, state)
                if self._running:
                    self._spawn(key, check)

    def _spawn(self, key: tuple[str, int], check: _Check) -> None:
        if check.task is None or check.task.done():
            name = f"probe {key[0]} {check.target.label}"
            check.task = asyncio.get_running_loop().create_task(self._run(check), name=name)

    async def _run(self, check: _Check) -> None:
        target, state = check.target, check.state
        while True:
            began = self._clock()
            try:
                async with asyncio.timeout(self.policy.timeout + 1.0):  # a stuck prober
                    result = await self._prober(target, self.policy.timeout)
            except TimeoutError:
                result = ProbeResult(False, "probe timed out")
            except Exception as exc:
                log.exception("probe %s of %s failed", target.label, target.node)
                result = ProbeResult(False, f"probe error ({exc!r})")
            now = self._clock()
            reason = "" if result.ok else f"{target.label}: {result.reason or 'failed'}"
            self._emit(state.probe_result(result.ok, now, reason))
            check.first.set()
            if state.up and state.fails:  # failing: confirm it quickly
                delay = self.policy.fast_interval - (self._clock() - began)
            else:
                delay = self.policy.next_delay(self._rng) - (self._clock() - began)
            await asyncio.sleep(max(0.0, delay))

    def _emit(self, events: Iterable[Transition]) -> None:
        for event in events:
            if event.change is Change.DOWN:
                log.warning("%s down: %s", event.node, event.reason)
            else:
                log.info("%s %s on port %d", event.node, event.change.value, event.port)
            if self.on_transition is not None:
                try:
                    self.on_transition(event)
                except Exception:
                    log.exception("the health transition callback failed")

    # passive detection

    def report_refused(self, node: str, port: int, now: float | None = None) -> list[Transition]:
        """The data plane's connection to `node` on cluster `port` was refused: that
        port of the node is down at once (or, for a port of a range that isn't probed
        itself, the probed ports of its rule). Returns the events (also sent to the
        callback)."""
        now = self._clock() if now is None else now
        events: list[Transition] = []
        for check in self._checks_for(node, port):
            reason = f"{check.target.label}: connection refused (passive)"
            events += check.state.refused(now, reason)
        self._emit(events)
        return events

    # queries

    def _checks_for(self, node: str, port: int) -> list[_Check]:
        """The checks that judge `node` on cluster `port`."""
        name = self._name(node)
        check = self._checks.get((name, port))
        if check is not None:
            return [check]
        rule = self._view.rule_for(port)
        if rule is None:
            return []
        checks = (self._checks.get((name, p)) for p in probe_ports(rule, self.probes))
        return [c for c in checks if c is not None]

    def _name(self, node: Node | str) -> str:
        if isinstance(node, Node):
            return node.name
        found = self._view.node(node)
        return found.name if found is not None else node

    def state(self, node: str, port: int) -> HealthState | None:
        """The health state of `node` on a probed cluster `port`."""
        check = self._checks.get((self._name(node), port))
        return None if check is None else check.state

    def states(self, node: str) -> list[HealthState]:
        name = self._name(node)
        return [c.state for (n, _), c in sorted(self._checks.items()) if n == name]

    def is_up(self, node: str, port: int) -> bool:
        """Whether `node` passes its probes for cluster `port` (True if nothing probes
        that port)."""
        return all(c.state.up for c in self._checks_for(node, port))

    def rule_up(self, node: Node | str, rule: PortRule) -> bool:
        """Whether `node` passes every probe of `rule`."""
        name = self._name(node)
        checks = (self._checks.get((name, p)) for p in probe_ports(rule, self.probes))
        return all(c.state.up for c in checks if c is not None)

    def healthy(self, rule: PortRule) -> frozenset[str]:
        """The names of the nodes that pass `rule`'s probes (host state aside)."""
        return frozenset(n.name for n in self._view.nodes if self.rule_up(n, rule))

    def effective_weight(self, node: Node | str, rule: PortRule, now: float | None = None) -> float:
        """The weight `node` gets for new connections under `rule` now: its LoadWeight,
        times its slow start ramp (the slowest of the rule's ports), 0 when it is down
        or not Started (Stopped, Suspended, Draining)."""
        found = node if isinstance(node, Node) else self._view.node(node)
        if found is None or found.state is not HostState.STARTED:
            return 0.0
        now = self._clock() if now is None else now
        factor = 1.0
        for port in probe_ports(rule, self.probes):
            check = self._checks.get((found.name, port))
            if check is not None:
                factor = min(factor, check.state.factor(now))
        return rule.weight(found.name) * factor

    def weights(self, rule: PortRule, now: float | None = None) -> dict[str, float]:
        """name -> effective weight of every node, for `hashing.pick(weights=...)`."""
        now = self._clock() if now is None else now
        return {n.name: self.effective_weight(n, rule, now) for n in self._view.nodes}

    def ramping(self, now: float | None = None) -> bool:
        """Whether some node is in its slow start (the control plane may re-render its
        weights now and then until the WARM events)."""
        now = self._clock() if now is None else now
        return any(c.state.slow_starting(now) for c in self._checks.values())

    def status(self, node: Node | str, now: float | None = None) -> NodeStatus:
        """The state Get-NlbClusterNode shows for `node`."""
        found = node if isinstance(node, Node) else self._view.node(node)
        if found is None:
            raise KeyError(f"no node {node} in cluster {self._view.name}")
        now = self._clock() if now is None else now
        return node_status(found, self.states(found.name), now)

    def statuses(self, now: float | None = None) -> dict[str, NodeStatus]:
        now = self._clock() if now is None else now
        return {n.name: self.status(n, now) for n in self._view.nodes}


__all__ = [
    "DEFAULT_VDIRS",
    "Change",
    "HealthChecker",
    "HealthPolicy",
    "HealthState",
    "NodeState",
    "NodeStatus",
    "ProbeResult",
    "ProbeTarget",
    "Transition",
    "node_status",
    "probe_http",
    "probe_imap_greeting",
    "probe_ports",
    "probe_targets",
    "probe_tcp",
    "run_probe",
    "unverified_context",
]
