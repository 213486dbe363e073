"""The HAProxy engine with real backends on loopback, as tests/balancer/test_control.py
runs the Proxy and Kernel engines: connections through the cluster IP spread over the
nodes, a backend killed with -9 costs no new connection after a second, a node added
receives connections, a draining node keeps its open session and gets no new one. Then
what is the HAProxy engine's own: states and weights go through the runtime API with
no reload, a topology change reloads seamlessly (an open session survives in the old
worker, counted and cut there), and a haproxy left behind by a crashed control plane
is replaced. Debian's haproxy is needed: without it the tests are skipped, or fail when
CI is set."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from casarray.balancer.control_plane import Balancer
from casarray.balancer.haproxy_engine import (
    HAPROXY,
    HaproxyEngine,
    HaproxyError,
    haproxy_weight,
    parse_sessions,
    parse_workers,
    topology,
)
from casarray.balancer.model import HostState, PortRule
from tests.balancer.test_control_plane import FAST, Backend, greeting, view_of

VIP = "127.77.7.10"
HOSTS = ["127.77.7.11", "127.77.7.12", "127.77.7.13"]
PORT = 20143


@pytest.fixture
def haproxy_binary() -> str:
    if os.path.exists(HAPROXY):
        return HAPROXY
    message = f"{HAPROXY} not found (Debian package haproxy)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def haproxy_processes(work: Path) -> list[int]:
    """Processes whose command line names a config in `work` (none must be left)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            zombie = stat.rsplit(")", 1)[1].split()[0] == "Z"
            if str(work).encode() in cmdline and not zombie:
                found.append(int(entry))
    return found


@pytest.fixture
async def cluster(
    haproxy_binary: str, tmp_path: Path
) -> AsyncIterator[tuple[Balancer, HaproxyEngine, list[Backend], dict]]:
    backends = [await Backend(f"CAS0{i + 1}", h, PORT).start() for i, h in enumerate(HOSTS[:2])]
    spare = Backend("CAS03", HOSTS[2], PORT)
    state = {"view": view_of(VIP, PORT, backends), "spare": spare}
    engine = HaproxyEngine(tmp_path / "haproxy", haproxy_binary=haproxy_binary, close_grace=1)
    balancer = Balancer(lambda: state["view"], engine, checker_options={"policy": FAST})
    await balancer.start()
    loop = asyncio.ensure_future(balancer.loop())
    try:
        yield balancer, engine, backends, state
    finally:
        balancer.stop()
        await loop
        await balancer.close()
        for backend in [*backends, spare]:
            if backend.server is not None:
                backend.server.close()
        assert engine.process is None
        assert haproxy_processes(engine.work_dir) == []


async def test_spread_failover_join_and_drain(
    cluster: tuple[Balancer, HaproxyEngine, list[Backend], dict],
) -> None:
    balancer, engine, backends, state = cluster
    seen = Counter([await greeting(VIP, PORT) for _ in range(60)])
    assert set(seen) == {"CAS01", "CAS02"} and min(seen.values()) >= 15, seen

    # kill -9 CAS02 under load: after one second, no new connection fails
    killed = time.monotonic()
    await backends[1].kill()
    failures_late = 0
    answered: Counter[str] = Counter()
    while time.monotonic() - killed < 2.0:
        try:
            answered[await greeting(VIP, PORT)] += 1
        except (OSError, ConnectionError, TimeoutError):
            if time.monotonic() - killed > 1.0:
                failures_late += 1
    assert failures_late == 0
    assert answered["CAS01"] > 10
    assert engine.reloads == 0  # health changes went through the runtime API

    # CAS03 joins the view (as a server added to the site does): it takes a share
    spare = await state["spare"].start()
    state["view"] = view_of(VIP, PORT, [backends[0], spare])
    await balancer.view_changed()
    await asyncio.sleep(0.5)
    seen = Counter([await greeting(VIP, PORT) for _ in range(60)])
    assert seen["CAS03"] >= 15 and seen["CAS01"] >= 15, seen
    assert engine.reloads == 1

    # drain CAS03: an open session goes on, new connections all go to CAS01
    reader, writer = await asyncio.open_connection(VIP, PORT)
    first = await reader.readline()
    view = state["view"]
    draining = tuple(
        dataclasses.replace(n, state=HostState.DRAINING) if n.name == "CAS03" else n
        for n in view.nodes
    )
    state["view"] = dataclasses.replace(view, nodes=draining)
    await balancer.view_changed()
    seen = Counter([await greeting(VIP, PORT) for _ in range(30)])
    assert seen == Counter({"CAS01": 30}), seen
    if first.startswith(b"* OK CAS03"):
        writer.write(b"still here\r\n")
        assert await asyncio.wait_for(reader.readline(), 2) == b"still here\r\n"
    writer.close()
    status = balancer.status()
    assert [n["state"] for n in status["nodes"]] == ["Converged", "Draining"]
    assert engine.reloads == 1  # the drain was a runtime command


async def test_runtime_states_reload_and_old_workers(
    cluster: tuple[Balancer, HaproxyEngine, list[Backend], dict],
) -> None:
    balancer, engine, backends, state = cluster
    first_worker = engine.worker
    states = {s.server: s for s in await engine.api.servers_state()}
    assert {name: s.weight for name, s in states.items()} == {"CAS01": 50, "CAS02": 50}

    # a LoadWeight and a Stopped node: runtime commands, the same worker
    view = state["view"]
    rule = dataclasses.replace(view.rules[0], weights={"CAS01": 100, "CAS02": 10})
    nodes = (view.nodes[0], dataclasses.replace(view.nodes[1], state=HostState.STOPPED))
    state["view"] = dataclasses.replace(view, rules=(rule,), nodes=nodes)
    await balancer.view_changed()
    states = {s.server: s for s in await engine.api.servers_state()}
    assert states["CAS01"].weight == 100 and not states["CAS01"].maintenance
    assert states["CAS02"].maintenance
    seen = Counter([await greeting(VIP, PORT) for _ in range(10)])
    assert seen == Counter({"CAS01": 10})
    assert engine.worker == first_worker and engine.reloads == 0

    # Started again: ready with its weight, still no reload
    state["view"] = dataclasses.replace(view, rules=(rule,))
    await balancer.view_changed()
    states = {s.server: s for s in await engine.api.servers_state()}
    assert states["CAS02"].weight == 10 and not states["CAS02"].maintenance
    assert engine.reloads == 0

    # an open session to CAS01, then a node added: a reload; the session stays in the
    # old worker, is counted there, and can be cut there
    reader, writer = await asyncio.open_connection(VIP, PORT)
    node = (await reader.readline()).split()[2].decode()
    spare = await state["spare"].start()
    state["view"] = dataclasses.replace(
        view_of(VIP, PORT, [*backends, spare]), rules=state["view"].rules
    )
    await balancer.view_changed()
    assert engine.reloads == 1 and engine.worker != first_worker
    workers = await asyncio.to_thread(engine._workers)
    assert (first_worker, False) in workers and (engine.worker, True) in workers
    writer.write(b"after the reload\r\n")
    assert await asyncio.wait_for(reader.readline(), 2) == b"after the reload\r\n"
    by_name = {n.name: n for n in state["view"].nodes}
    assert engine.connections(by_name[node]) == 1
    await asyncio.sleep(0.6)  # CAS03 passes two checks of ours
    seen = Counter([await greeting(VIP, PORT) for _ in range(40)])
    assert seen["CAS03"] >= 5, seen
    assert engine.cut(by_name[node]) == 1
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert engine.connections(by_name[node]) == 0


async def test_stale_haproxy_replaced_and_bad_config(haproxy_binary: str, tmp_path: Path) -> None:
    backend = await Backend("CAS01", HOSTS[0], PORT).start()
    view = view_of(VIP, PORT, [backend])
    work = tmp_path / "haproxy"
    try:
        for _ in range(2):  # the second start finds the first haproxy still running
            balancer = Balancer(
                lambda: view,
                HaproxyEngine(work, haproxy_binary=haproxy_binary),
                checker_options={"policy": FAST},
            )
            await balancer.start()
            assert await greeting(VIP, PORT) == "CAS01"
            # the control plane "crashes": nothing closes haproxy
            await balancer.checker.stop()  # type: ignore[union-attr]
            assert len(haproxy_processes(work)) >= 2  # master and worker
        engine = balancer.engine
        assert isinstance(engine, HaproxyEngine)
        await engine.close(view, keep=False)
        assert haproxy_processes(work) == []

        # a config haproxy -c refuses is reported, and nothing is left running
        bad = dataclasses.replace(view, ip="not-an-address")
        engine = HaproxyEngine(work, haproxy_binary=haproxy_binary)
        with pytest.raises(HaproxyError, match="haproxy -c"):
            await Balancer(lambda: bad, engine, checker_options={"policy": FAST}).start()
        assert engine.process is None and haproxy_processes(work) == []
    finally:
        for pid in haproxy_processes(work):  # only if an assertion failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        backend.server.close()  # type: ignore[union-attr]


def test_weights_topology_and_parsing() -> None:
    assert [haproxy_weight(w) for w in (0, -1, 0.2, 1.4, 50, 99.6, 300)] == [
        0,
        0,
        1,
        1,
        50,
        100,
        256,
    ]
    backends = [Backend("CAS01", HOSTS[0], PORT), Backend("CAS02", HOSTS[1], PORT)]
    view = view_of(VIP, PORT, backends)
    drained = dataclasses.replace(
        view,
        nodes=(view.nodes[0], dataclasses.replace(view.nodes[1], state=HostState.DRAINING)),
        rules=(dataclasses.replace(view.rules[0], weights={"CAS01": 80}),),
    )
    assert topology(drained) == topology(view)
    assert topology(view_of(VIP, PORT, backends[:1])) != topology(view)
    assert topology(dataclasses.replace(view, rules=(PortRule(PORT, PORT),))) != topology(view)

    show_proc = (
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "100             master          1 [failed: 0]   0d00h00m10s     2.6.12\n"
        "# workers\n"
        "102             worker          0               0d00h00m01s     2.6.12\n"
        "# old workers\n"
        "101             worker          1               0d00h00m10s     2.6.12\n"
        "# programs\n\n"
    )
    assert parse_workers(show_proc) == [(102, True), (101, False)]
    show_stat = (
        "# pxname,svname,qcur,qmax,scur,smax\n"
        "fe,FRONTEND,,,3,4\n"
        "be,CAS01,0,0,2,3\n"
        "be,CAS02,0,0,1,1\n"
        "be,BACKEND,0,0,3,4\n"
    )
    assert parse_sessions(show_stat) == {("be", "CAS01"): 2, ("be", "CAS02"): 1}
    assert parse_sessions("Unknown command\n") == {}


async def test_reloads_under_load_lose_no_connection(
    cluster: tuple[Balancer, HaproxyEngine, list[Backend], dict],
) -> None:
    balancer, engine, backends, state = cluster
    spare = await state["spare"].start()
    answered: Counter[str] = Counter()
    failures: list[BaseException] = []
    stopping = asyncio.Event()

    async def load() -> None:
        while not stopping.is_set():
            try:
                answered[await greeting(VIP, PORT)] += 1
            except (OSError, ConnectionError, TimeoutError) as exc:
                failures.append(exc)

    clients = [asyncio.ensure_future(load()) for _ in range(4)]
    try:
        for round_ in range(6):  # CAS03 in, out, in, ...: a reload each time
            members = [*backends, spare] if round_ % 2 == 0 else backends
            state["view"] = view_of(VIP, PORT, members)
            await balancer.view_changed()
            await asyncio.sleep(0.1)
    finally:
        stopping.set()
        await asyncio.gather(*clients)
    assert engine.reloads == 6
    assert failures == [] and sum(answered.values()) > 100, (failures[:3], answered)
