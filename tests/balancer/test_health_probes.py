"""Node health: the sans-IO state machine with a fake clock (fall/rise, passive
refusal, slow start, jitter, displayed states), then the asyncio checker against tiny
real servers on loopback (an IMAP greeter, a silent one, a closed port, an HTTP server
answering 200 or 503, IMAP over TLS) with short intervals."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from casarray.access import tls
from casarray.balancer.health_probes import (
    Change,
    HealthChecker,
    HealthPolicy,
    HealthState,
    NodeState,
    NodeStatus,
    ProbeResult,
    ProbeTarget,
    Transition,
    node_status,
    probe_ports,
    probe_targets,
)
from casarray.balancer.model import (
    ClusterView,
    FilteringMode,
    HostState,
    Node,
    PortRule,
    Probe,
    RuleProtocol,
)

POLICY = HealthPolicy()  # 500 ms, +-10%, fall 2, rise 2, slow start 10 s from 10%


def up_state() -> HealthState:
    state = HealthState("CAS01", 143, POLICY, cold=False)
    state.probe_result(True, 0.0)
    return state


def changes(events: list[Transition]) -> list[Change]:
    return [e.change for e in events]


# -- the state machine ---------------------------------------------------------------------


def test_first_result_decides_at_once() -> None:
    warm = HealthState("CAS01", 143, POLICY, cold=False)
    assert warm.up is None and warm.factor(0.0) == 0.0
    assert changes(warm.probe_result(True, 1.0)) == [Change.UP, Change.WARM]
    assert warm.up and warm.factor(1.0) == 1.0

    cold = HealthState("CAS01", 143, POLICY)  # joined a running cluster: slow start
    assert changes(cold.probe_result(True, 1.0)) == [Change.UP]
    assert cold.factor(1.0) == pytest.approx(0.1)

    bad = HealthState("CAS01", 993, POLICY)
    [event] = bad.probe_result(False, 1.0, "imap 993: no greeting")
    assert (event.change, event.reason, event.up, event.passive) == (
        Change.DOWN,
        "imap 993: no greeting",
        False,
        False,
    )


def test_two_failures_take_it_down() -> None:
    state = up_state()
    assert state.probe_result(False, 0.5, "imap 143: connection refused") == []
    assert state.up  # one failure is not enough
    assert state.probe_result(True, 1.0) == []  # and a success resets the count
    assert state.probe_result(False, 1.5, "x") == []
    [event] = state.probe_result(False, 2.0, "imap 143: no greeting")
    assert event == Transition("CAS01", 143, Change.DOWN, 2.0, "imap 143: no greeting")
    assert not state.up and state.reason == "imap 143: no greeting"
    assert state.factor(2.0) == 0.0
    # more failures: no new event, the latest reason is kept
    assert state.probe_result(False, 2.5, "imap 143: connection refused") == []
    assert state.reason == "imap 143: connection refused"


def test_two_successes_bring_it_up_with_a_slow_start() -> None:
    state = up_state()
    state.probe_result(False, 1.0, "r")
    state.probe_result(False, 1.5, "r")
    assert state.probe_result(True, 2.0) == []
    assert state.probe_result(False, 2.5, "r") == []  # a failure resets the successes
    assert state.probe_result(True, 3.0) == []
    [event] = state.probe_result(True, 3.5)
    assert event.change is Change.UP and event.at == 3.5
    assert state.up and state.slow_starting(3.5)


def test_passive_refusal_marks_down_at_once() -> None:
    state = up_state()
    [event] = state.refused(0.7, "imap 143: connection refused (passive)")
    assert event.change is Change.DOWN and event.passive and not state.up
    assert state.refused(0.8) == []  # already down
    # back only after `rise` good probes
    assert state.probe_result(True, 1.0) == []
    assert changes(state.probe_result(True, 1.5)) == [Change.UP]
    unknown = HealthState("CAS01", 143, POLICY)
    assert changes(unknown.refused(0.0)) == [Change.DOWN]


def test_slow_start_ramps_from_ten_percent_to_full() -> None:
    state = up_state()
    state.refused(1.0)
    state.probe_result(True, 1.5)
    state.probe_result(True, 2.0)  # up at t=2
    assert state.factor(2.0) == pytest.approx(0.1)
    assert state.factor(7.0) == pytest.approx(0.55)
    assert state.factor(11.0) == pytest.approx(0.91)
    assert state.factor(12.0) == 1.0
    ramp = [state.factor(2.0 + t / 2) for t in range(21)]
    assert ramp == sorted(ramp)  # never goes back
    assert state.probe_result(True, 11.5) == []  # still ramping
    assert changes(state.probe_result(True, 12.0)) == [Change.WARM]  # slow start over
    assert state.probe_result(True, 12.5) == []  # once
    assert state.factor(12.5) == 1.0 and not state.slow_starting(12.5)
    # no slow start at all
    quick = HealthPolicy(slow_start=0)
    none = HealthState("CAS01", 143, quick)
    assert changes(none.probe_result(True, 0.0)) == [Change.UP, Change.WARM]


def test_jitter_stays_within_ten_percent() -> None:
    rng = random.Random(1)
    delays = [POLICY.next_delay(rng) for _ in range(2000)]
    assert all(0.45 <= d <= 0.55 for d in delays)
    assert min(delays) < 0.46 and max(delays) > 0.54  # and does jitter
    assert HealthPolicy(jitter=0).next_delay(rng) == 0.5


def test_displayed_node_states() -> None:
    node = Node("CAS01", "127.77.1.11", 1, 1)
    imap, https = HealthState("CAS01", 993, POLICY), HealthState("CAS01", 443, POLICY)
    assert node_status(node, [imap, https], 0.0).state is NodeState.CONVERGING
    imap.probe_result(True, 0.0)
    https.probe_result(True, 0.0)
    status = node_status(node, [imap, https], 5.0)
    assert status == NodeStatus(NodeState.CONVERGING, "slow start 55%")
    assert str(status) == "Converging (slow start 55%)"
    assert node_status(node, [imap, https], 10.0) == NodeStatus(NodeState.CONVERGED)
    assert str(NodeStatus(NodeState.CONVERGED)) == "Converged"
    imap.probe_result(False, 11.0, "imap 993: no greeting")
    imap.probe_result(False, 11.5, "imap 993: no greeting")
    assert str(node_status(node, [imap, https], 12.0)) == "Unhealthy (imap 993: no greeting)"
    for host_state, shown in [
        (HostState.STOPPED, NodeState.STOPPED),
        (HostState.SUSPENDED, NodeState.SUSPENDED),
        (HostState.DRAINING, NodeState.DRAINING),
    ]:
        other = Node("CAS01", "127.77.1.11", 1, 1, state=host_state)
        assert node_status(other, [imap, https], 12.0).state is shown


def test_probe_targets_follow_ports_and_vdirs() -> None:
    nodes = (Node("CAS01", "127.77.1.11", 1, 1, fqdn="cas01.lab.net"),)
    rules = (
        PortRule(143, 143),
        PortRule(993, 993),
        PortRule(80, 80),
        PortRule(443, 443),
        PortRule(25, 25, protocol=RuleProtocol.TCP),
        PortRule(53, 53, protocol=RuleProtocol.UDP),  # not probed
        PortRule(110, 110, mode=FilteringMode.DISABLED),  # not probed
        PortRule(5000, 6000),  # a range: its start port
    )
    view = ClusterView("bj-cas.lab.net", "127.77.1.10", nodes, rules, backend_offset=10000)
    targets = probe_targets(view, vdirs={443: "api"})
    assert sorted(port for _, port in targets) == [25, 80, 143, 443, 993, 5000]
    imaps = targets["CAS01", 993]
    assert (imaps.kind, imaps.tls, imaps.backend_port, imaps.label) == (
        Probe.IMAP,
        True,
        10993,
        "imap 993",
    )
    assert imaps.server_name == "cas01.lab.net" and imaps.host == "127.77.1.11"
    assert targets["CAS01", 80].path == "/owa/healthcheck.htm"
    assert targets["CAS01", 443].path == "/api/healthcheck.htm" and targets["CAS01", 443].tls
    assert targets["CAS01", 25].kind is Probe.TCP
    assert probe_ports(PortRule(1, 65535)) == (80, 143, 443, 993)
    # told to probe IMAP ports by HTTP: the imap page
    http = probe_targets(view, probes={143: (Probe.HTTP, False)})["CAS01", 143]
    assert (http.kind, http.path) == (Probe.HTTP, "/imap/healthcheck.htm")


def _view(
    *nodes: Node, rules: tuple[PortRule, ...] = (PortRule(143, 143),), offset: int = 0
) -> ClusterView:
    return ClusterView("bj-cas.lab.net", "127.77.1.10", nodes, rules, backend_offset=offset)


CAS = [Node(f"CAS0{i}", f"127.0.0.{i + 1}", i, i) for i in range(1, 6)]


def test_checker_weights_and_refusals_with_a_fake_clock() -> None:
    now = [100.0]
    events: list[Transition] = []
    rule = PortRule(143, 143, weights={"CAS01": 40, "CAS02": 80})
    draining = Node("CAS03", "127.0.0.4", 3, 3, state=HostState.DRAINING)
    view = _view(CAS[0], CAS[1], draining, rules=(rule,))
    checker = HealthChecker(view, events.append, clock=lambda: now[0])
    for name in ("CAS01", "CAS02", "CAS03"):
        checker.state(name, 143).probe_result(True, now[0])  # type: ignore[union-attr]
    assert checker.weights(rule) == {"CAS01": 40.0, "CAS02": 80.0, "CAS03": 0.0}
    assert checker.healthy(rule) == {"CAS01", "CAS02", "CAS03"}  # health, host state aside
    assert checker.statuses()["CAS03"].state is NodeState.DRAINING

    [down] = checker.report_refused("cas02", 143)  # any case, as NLB names
    assert down.passive and down.reason == "imap 143: connection refused (passive)"
    assert events == [down]
    assert not checker.is_up("CAS02", 143)
    assert checker.effective_weight("CAS02", rule) == 0.0
    assert str(checker.status("CAS02")) == "Unhealthy (imap 143: connection refused (passive))"

    state = checker.state("CAS02", 143)
    assert state is not None
    state.probe_result(True, 101.0)
    state.probe_result(True, 101.5)  # up again at 101.5, slow start
    now[0] = 106.5  # halfway
    assert checker.effective_weight("CAS02", rule) == pytest.approx(80 * 0.55)
    assert checker.ramping()
    assert checker.status("CAS02").state is NodeState.CONVERGING
    now[0] = 112.0
    assert checker.effective_weight(CAS[1], rule) == 80.0 and not checker.ramping()
    assert checker.is_up("CAS01", 9999)  # nothing probes that port
    with pytest.raises(KeyError):
        checker.status("CAS09")


def test_refusal_on_a_port_of_a_range_marks_its_rule() -> None:
    rule = PortRule(5000, 6000)
    checker = HealthChecker(_view(CAS[0], rules=(rule,)), clock=lambda: 0.0)
    checker.state("CAS01", 5000).probe_result(True, 0.0)  # type: ignore[union-attr]
    assert checker.rule_up("CAS01", rule)
    [event] = checker.report_refused("CAS01", 5555)
    assert event.port == 5000 and not checker.rule_up("CAS01", rule)


# -- the asyncio checker against real servers -----------------------------------------------

FAST = HealthPolicy(interval=0.05, jitter=0.1, timeout=0.25, slow_start=0.3)


@dataclass
class Backends:
    port: int
    servers: dict[str, asyncio.Server] = field(default_factory=dict)
    http_status: int = 200
    http_requests: list[bytes] = field(default_factory=list)
    held: list[asyncio.StreamWriter] = field(default_factory=list)

    async def greeter(self, host: str, *, ssl: ssl_module.SSLContext | None = None) -> None:
        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"* OK [CAPABILITY IMAP4rev1] CAS ready\r\n")
            with contextlib.suppress(Exception):
                await writer.drain()
                await reader.read(100)  # until the prober hangs up
            writer.close()

        self.servers[host] = await asyncio.start_server(greet, host, self.port, ssl=ssl)

    async def silent(self, host: str) -> None:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.held.append(writer)
            with contextlib.suppress(Exception):
                await reader.read(100)
            writer.close()

        self.servers[host] = await asyncio.start_server(hold, host, self.port)

    async def http(self, host: str) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            self.http_requests.append(head)
            status = self.http_status
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            writer.close()

        self.servers[host] = await asyncio.start_server(answer, host, self.port)

    async def stop(self, host: str) -> None:
        server = self.servers.pop(host)
        server.close()
        await server.wait_closed()

    async def close(self) -> None:
        for writer in self.held:
            writer.close()
        for host in list(self.servers):
            await self.stop(host)


def free_port() -> int:
    """A port free on 127.0.0.2 .. 127.0.0.6 (each node has its own address)."""
    for _ in range(20):
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
            port: int = probe.getsockname()[1]
        try:
            for i in range(3, 7):
                with socket.socket() as other:
                    other.bind((f"127.0.0.{i}", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    b = Backends(free_port())
    yield b
    await b.close()


class Recorder:
    """The checker's callback: keeps the events, lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[Transition] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Transition) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait(self, test: Callable[[Transition], bool], timeout: float = 2.0) -> Transition:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if test(event):
                        return event
                self._changed.clear()
                await self._changed.wait()


async def test_checker_imap_greeting_silence_and_refusal(backends: Backends) -> None:
    await backends.greeter("127.0.0.2")  # CAS01: greets
    await backends.silent("127.0.0.3")  # CAS02: accepts, says nothing
    # CAS03 (127.0.0.4): nothing listens, refused
    view = _view(CAS[0], CAS[1], CAS[2], offset=backends.port - 143)
    recorder = Recorder()
    checker = HealthChecker(view, recorder, policy=FAST)
    async with checker:  # start() returns once each has answered once
        statuses = {name: str(status) for name, status in checker.statuses().items()}
        assert statuses == {
            "CAS01": "Converged",
            "CAS02": "Unhealthy (imap 143: no greeting (timed out))",
            "CAS03": "Unhealthy (imap 143: connection refused)",
        }
        assert checker.healthy(view.rules[0]) == {"CAS01"}
        assert {(e.node, e.change) for e in recorder.events} == {
            ("CAS01", Change.UP),
            ("CAS01", Change.WARM),
            ("CAS02", Change.DOWN),
            ("CAS03", Change.DOWN),
        }

        # CAS01's IMAP service dies: down after two failed probes, ~0.1 s
        await backends.stop("127.0.0.2")
        down = await recorder.wait(lambda e: e.node == "CAS01" and e.change is Change.DOWN)
        assert down.reason == "imap 143: connection refused" and not down.passive

        # it comes back: up after two good probes, then slow start, then warm
        await backends.greeter("127.0.0.2")
        up = await recorder.wait(lambda e: e.node == "CAS01" and e.at > down.at and e.up)
        assert up.change is Change.UP
        assert 0 < checker.effective_weight("CAS01", view.rules[0]) < 50
        assert checker.status("CAS01").state is NodeState.CONVERGING
        await recorder.wait(lambda e: e.change is Change.WARM and e.at > up.at)
        assert checker.effective_weight("CAS01", view.rules[0]) == 50.0

        # passive: the data plane saw a refusal; down at once, up again by probes
        [refused] = checker.report_refused("CAS01", 143)
        assert refused.passive and not checker.is_up("CAS01", 143)
        await recorder.wait(lambda e: e.node == "CAS01" and e.at > refused.at and e.up)


async def test_checker_follows_a_new_view(backends: Backends) -> None:
    await backends.greeter("127.0.0.2")
    await backends.greeter("127.0.0.6")
    await backends.silent("127.0.0.3")
    recorder = Recorder()
    checker = HealthChecker(
        _view(CAS[0], CAS[1], offset=backends.port - 143), recorder, policy=FAST
    )
    async with checker:
        assert checker.status("CAS02").state is NodeState.UNHEALTHY
        # CAS05 joins (a Client Access server added to the site), CAS02 leaves
        checker.update(_view(CAS[0], CAS[4], offset=backends.port - 143))
        joined = await recorder.wait(lambda e: e.node == "CAS05" and e.change is Change.UP)
        assert checker.effective_weight("CAS05", checker.view.rules[0]) < 50  # cold: slow start
        assert checker.state("CAS02", 143) is None
        with pytest.raises(KeyError):
            checker.status("CAS02")
        count = len([e for e in recorder.events if e.node == "CAS02"])
        await recorder.wait(lambda e: e.change is Change.WARM and e.at > joined.at)
        assert len([e for e in recorder.events if e.node == "CAS02"]) == count
        assert set(checker.statuses()) == {"CAS01", "CAS05"}
    assert all(t.done() for t in asyncio.all_tasks() if t.get_name().startswith("probe "))


async def test_checker_http_healthcheck_page(backends: Backends) -> None:
    await backends.http("127.0.0.2")
    node = Node("CAS01", "127.0.0.2", 1, 1, fqdn="cas01.lab.net")
    rule = PortRule(80, 80)
    recorder = Recorder()
    checker = HealthChecker(
        _view(node, rules=(rule,), offset=backends.port - 80), recorder, policy=FAST
    )
    async with checker:
        assert checker.is_up("CAS01", 80)
        head = backends.http_requests[0].decode()
        assert head.startswith("GET /owa/healthcheck.htm HTTP/1.1\r\n")
        assert f"Host: cas01.lab.net:{backends.port}\r\n" in head
        backends.http_status = 503  # the component was set Inactive
        down = await recorder.wait(lambda e: e.change is Change.DOWN)
        assert down.reason == "http 80: GET /owa/healthcheck.htm answered 503"
        backends.http_status = 200
        await recorder.wait(lambda e: e.up and e.at > down.at)

    # another vdir for the port
    backends.http_requests.clear()
    view = _view(node, rules=(rule,), offset=backends.port - 80)
    async with HealthChecker(view, policy=FAST, vdirs={80: "imap"}):
        assert backends.http_requests[0].startswith(b"GET /imap/healthcheck.htm ")


async def test_checker_imap_over_tls_and_tcp(backends: Backends, tmp_path: Path) -> None:
    files, _ = tls.ensure_certificate("CAS01", ["cas01.lab.net", "127.0.0.2"], home=tmp_path)
    await backends.greeter("127.0.0.2", ssl=tls.server_context(files))  # self-signed
    await backends.greeter("127.0.0.3")  # no TLS on an implicit-TLS port
    imaps = _view(CAS[0], CAS[1], rules=(PortRule(993, 993),), offset=backends.port - 993)
    async with HealthChecker(imaps, policy=FAST) as checker:
        assert checker.is_up("CAS01", 993)
        status = checker.status("CAS02")
        assert status.state is NodeState.UNHEALTHY and status.detail.startswith("imap 993: ")

    # any other port: a TCP connect (CAS03 has nothing listening)
    smtp = _view(CAS[0], CAS[2], rules=(PortRule(25, 25),), offset=backends.port - 25)
    async with HealthChecker(smtp, policy=FAST) as checker:
        assert checker.is_up("CAS01", 25)
        assert str(checker.status("CAS03")) == "Unhealthy (tcp 25: connection refused)"


async def test_a_failing_prober_or_callback_does_not_stop_the_checks() -> None:
    calls: list[str] = []

    async def prober(target: ProbeTarget, timeout: float) -> ProbeResult:
        calls.append(target.node)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return ProbeResult(True)

    def callback(event: Transition) -> None:
        raise ValueError("the control plane failed")

    policy = HealthPolicy(interval=0.02, timeout=0.1, slow_start=0)
    async with HealthChecker(_view(CAS[0]), callback, policy=policy, prober=prober) as checker:
        assert checker.status("CAS01").detail.startswith("imap 143: probe error")
        for _ in range(50):
            await asyncio.sleep(0.02)
            if checker.is_up("CAS01", 143):
                break
        assert checker.is_up("CAS01", 143)
