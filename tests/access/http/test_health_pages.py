"""The health check pages in-process (Starlette's TestClient): 200 with the server's
FQDN while a component is healthy, 503 when it is Inactive in the directory or, for
imap, when the IMAP listener doesn't greet; changes seen within a second; probes that
read no database while nothing changes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event
from starlette.applications import Starlette
from starlette.testclient import TestClient

from casarray.access.http.health_pages import (
    HEALTH_PAGES,
    HealthContext,
    health_routes,
    probe_imap,
)
from casarray.directory import Directory

GREETING = b"* OK [CAPABILITY IMAP4rev1 STARTTLS] CAS01.lab.net casarray ready\r\n"
PAGES = [f"/{vdir}/healthcheck.htm" for vdir in HEALTH_PAGES]


@pytest.fixture
def backend() -> str:
    """SQLite; the tests of change propagation also run on PostgreSQL."""
    return "sqlite"


# -- a real IMAP greeter on 127.0.0.1 ------------------------------------------------


async def _greet(greeting: bytes | None, reader: asyncio.StreamReader, writer: Any) -> None:
    if greeting is not None:
        writer.write(greeting)
        await writer.drain()
    with contextlib.suppress(Exception):
        await reader.read()  # until the prober hangs up
    writer.close()


class Greeter:
    """An asyncio server on 127.0.0.1 (in a thread of its own, so any event loop can
    probe it) that greets each connection with `greeting` (None: says nothing)."""

    def __init__(self, greeting: bytes | None = GREETING) -> None:
        self.greeting = greeting
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.port = 0

    def __enter__(self) -> Greeter:
        self.thread.start()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(
                lambda r, w: _greet(self.greeting, r, w), "127.0.0.1", 0
            )

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def probe(self) -> Callable[[], Any]:
        return lambda: probe_imap("127.0.0.1", self.port)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def greeter() -> Iterator[Greeter]:
    with Greeter() as server:
        yield server


# -- the app -------------------------------------------------------------------------


def make_health(
    d: Directory, probe: Callable[[], Any] | None, server: str = "CAS01", **kw: Any
) -> HealthContext:
    record = d.servers.one(server)
    return HealthContext(d, record.name, record.fqdn, imap_probe=probe, **kw)


def client_for(health: HealthContext) -> TestClient:
    return TestClient(Starlette(routes=health_routes(health)))


def codes(client: TestClient) -> dict[str, int]:
    return {page.split("/")[1]: client.get(page).status_code for page in PAGES}


ALL_UP = {"owa": 200, "autodiscover": 200, "imap": 200, "api": 200}


# -- healthy -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [*PAGES, "/OWA/HealthCheck.htm", "/AutoDiscover/HEALTHCHECK.HTM"])
def test_healthy_page(bj: Directory, greeter: Greeter, path: str) -> None:
    client = client_for(make_health(bj, greeter.probe()))
    response = client.get(path)
    assert response.status_code == 200
    assert response.text == "200 OK<br/>CAS01.lab.net"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["content-type"].startswith("text/html")
    assert "www-authenticate" not in response.headers


def test_head_and_other_methods(bj: Directory, greeter: Greeter) -> None:
    client = client_for(make_health(bj, greeter.probe()))
    assert client.head("/owa/healthcheck.htm").status_code == 200
    assert client.post("/owa/healthcheck.htm").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/ews/healthcheck.htm",
        "/rpc/healthcheck.htm",
        "/microsoft-server-activesync/healthcheck.htm",
        "/owa/other.htm",
        "/owa/healthcheck.html",
        "/healthcheck.htm",
    ],
)
def test_other_paths_are_not_found(bj: Directory, greeter: Greeter, path: str) -> None:
    assert client_for(make_health(bj, greeter.probe())).get(path).status_code == 404


def test_another_server_names_its_own_fqdn(bj: Directory, greeter: Greeter) -> None:
    client = client_for(make_health(bj, greeter.probe(), server="cas03"))
    assert client.get("/api/healthcheck.htm").text == "200 OK<br/>CAS03.lab.net"


# -- inactive components ---------------------------------------------------------------


@pytest.mark.parametrize(("vdir", "component"), sorted(HEALTH_PAGES.items()))
def test_inactive_component_answers_503(
    bj: Directory, greeter: Greeter, vdir: str, component: str
) -> None:
    client = client_for(make_health(bj, greeter.probe(), max_age=0))
    assert codes(client) == ALL_UP
    bj.components.set_state("CAS01", component, "Inactive", "Maintenance")
    response = client.get(f"/{vdir}/healthcheck.htm")
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-cache"
    assert f"{component} is Inactive (requester: Maintenance)" in response.text
    assert codes(client) == {**ALL_UP, vdir: 503}
    # another server is not affected
    assert codes(client_for(make_health(bj, greeter.probe(), server="CAS02"))) == ALL_UP
    bj.components.set_state("CAS01", component, "Active", "Maintenance")
    assert codes(client) == ALL_UP


def test_server_wide_offline_drains_every_page(bj: Directory, greeter: Greeter) -> None:
    client = client_for(make_health(bj, greeter.probe(), max_age=0))
    bj.components.set_state("CAS01", "ServerWideOffline", "Inactive", "Maintenance")
    assert codes(client) == dict.fromkeys(HEALTH_PAGES, 503)
    assert "ServerWideOffline is Inactive" in client.get("/owa/healthcheck.htm").text
    bj.components.set_state("CAS01", "Owa", "Inactive", "HealthApi")
    bj.components.set_state("CAS01", "ServerWideOffline", "Active", "Maintenance")
    assert codes(client) == {**ALL_UP, "owa": 503}


def test_a_removed_server_answers_503(bj: Directory, greeter: Greeter) -> None:
    client = client_for(make_health(bj, greeter.probe(), server="CAS02", max_age=0))
    assert codes(client) == ALL_UP
    bj.servers.remove("CAS02")
    assert codes(client) == dict.fromkeys(HEALTH_PAGES, 503)
    assert "CAS02" in client.get("/owa/healthcheck.htm").text


# -- the IMAP probe --------------------------------------------------------------------


def test_imap_page_follows_the_listener(bj: Directory) -> None:
    with Greeter() as up:
        assert client_for(make_health(bj, up.probe())).get(PAGES[2]).status_code == 200
        down = closed_port()
        client = client_for(make_health(bj, lambda: probe_imap("127.0.0.1", down)))
        response = client.get("/imap/healthcheck.htm")
        assert response.status_code == 503
        assert "IMAP listener" in response.text
        assert codes(client) == {**ALL_UP, "imap": 503}  # the other pages don't probe it


def test_imap_page_without_a_listener(bj: Directory) -> None:
    client = client_for(make_health(bj, None))
    assert codes(client) == {**ALL_UP, "imap": 503}


def test_imap_probe_that_hangs_or_raises(bj: Directory) -> None:
    async def hangs() -> bool:
        await asyncio.sleep(30)
        return True

    async def raises() -> bool:
        raise RuntimeError("boom")

    started = time.monotonic()
    health = make_health(bj, hangs, probe_timeout=0.2)
    assert client_for(health).get("/imap/healthcheck.htm").status_code == 503
    assert time.monotonic() - started < 5
    assert client_for(make_health(bj, raises)).get("/imap/healthcheck.htm").status_code == 503


async def test_probe_imap_greeting() -> None:
    async def serve(greeting: bytes | None) -> tuple[asyncio.Server, int]:
        server = await asyncio.start_server(lambda r, w: _greet(greeting, r, w), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    ok, ok_port = await serve(GREETING)
    bye, bye_port = await serve(b"* BYE too busy\r\n")
    mute, mute_port = await serve(None)
    try:
        assert await probe_imap("127.0.0.1", ok_port)
        assert not await probe_imap("127.0.0.1", bye_port)
        started = time.monotonic()
        assert not await probe_imap("127.0.0.1", mute_port, timeout=0.2)
        assert time.monotonic() - started < 2
        assert not await probe_imap("127.0.0.1", closed_port())
    finally:
        for server in (ok, bye, mute):
            server.close()


# -- the cache -------------------------------------------------------------------------


@dataclass
class QueryCounter:
    count: int = 0


@pytest.fixture
def queries(bj: Directory) -> Iterator[QueryCounter]:
    """The statements the directory sends to its database."""
    counter = QueryCounter()

    def count(*_args: Any) -> None:
        counter.count += 1

    event.listen(bj.store.engine, "before_cursor_execute", count)
    yield counter
    event.remove(bj.store.engine, "before_cursor_execute", count)


def test_probes_read_nothing_while_nothing_changes(
    bj: Directory, greeter: Greeter, queries: QueryCounter
) -> None:
    """Polling: at most one version read per max_age, and the states only when it
    changed."""
    health = make_health(bj, greeter.probe(), max_age=60)
    client = client_for(health)
    assert codes(client) == ALL_UP
    after_first = queries.count
    assert after_first > 0
    for _ in range(20):
        assert client.get("/owa/healthcheck.htm").status_code == 200
    assert queries.count == after_first
    bj.components.set_state("CAS01", "Owa", "Inactive", "Maintenance")
    health.states.invalidate()  # as if max_age had passed
    before = queries.count
    assert client.get("/owa/healthcheck.htm").status_code == 503
    assert queries.count > before


def test_a_watcher_makes_probes_free(
    bj: Directory, greeter: Greeter, queries: QueryCounter
) -> None:
    """With versions from a watcher, a probe reads no version at all: the states are
    read once per version."""
    health = make_health(bj, greeter.probe(), max_age=0)
    health.topology_changed(bj.topology_version())
    client = client_for(health)
    assert codes(client) == ALL_UP
    after_first = queries.count
    for _ in range(20):
        assert client.get("/api/healthcheck.htm").status_code == 200
    assert queries.count == after_first
    assert health.states.queries == 1  # one load, no version read
    bj.components.set_state("CAS01", "Api", "Inactive", "Maintenance")
    health.topology_changed(bj.topology_version())
    assert client.get("/api/healthcheck.htm").status_code == 503
    assert health.states.queries == 2


def test_last_known_states_stand_while_the_directory_is_down(
    bj: Directory, greeter: Greeter, monkeypatch: pytest.MonkeyPatch
) -> None:
    health = make_health(bj, greeter.probe(), max_age=0)
    client = client_for(health)
    assert codes(client) == ALL_UP

    def down() -> int:
        raise ConnectionError("the database is down")

    monkeypatch.setattr(bj, "topology_version", down)
    assert codes(client) == ALL_UP
    fresh = client_for(make_health(bj, greeter.probe(), max_age=0))
    response = fresh.get("/owa/healthcheck.htm")
    assert response.status_code == 503
    assert "the directory can't be read" in response.text


def test_app_context_works_too(bj: Directory, greeter: Greeter) -> None:
    """`health_routes` takes any context with directory, server_name and server_fqdn
    (the HTTP app's context), and its imap_probe if it has one."""

    @dataclass(frozen=True)
    class AppContext:
        directory: Directory
        server_name: str
        server_fqdn: str

    context = AppContext(bj, "CAS02", "CAS02.lab.net")
    client = TestClient(Starlette(routes=health_routes(context)))
    assert codes(client) == {**ALL_UP, "imap": 503}
    assert client.get("/owa/healthcheck.htm").text == "200 OK<br/>CAS02.lab.net"


# -- a change is seen within a second --------------------------------------------------


def wait_for_status(client: TestClient, path: str, status: int, limit: float = 3.0) -> float:
    """Probe every 20 ms until `path` answers `status`; the seconds it took."""
    started = time.monotonic()
    while True:
        if client.get(path).status_code == status:
            return time.monotonic() - started
        if time.monotonic() - started > limit:
            raise AssertionError(f"{path} did not answer {status} within {limit} s")
        time.sleep(0.02)


BOTH = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)


@BOTH
def test_change_seen_within_a_second_by_polling(
    bj: Directory, second_directory: Directory, greeter: Greeter
) -> None:
    """No watcher: the default max_age (0.5 s) bounds how stale a probe can be."""
    client = client_for(make_health(bj, greeter.probe()))
    assert codes(client) == ALL_UP
    second_directory.components.set_state("CAS01", "Owa", "Inactive", "Maintenance")
    assert wait_for_status(client, "/owa/healthcheck.htm", 503) < 1.0
    second_directory.components.set_state("CAS01", "Owa", "Active", "Maintenance")
    assert wait_for_status(client, "/owa/healthcheck.htm", 200) < 1.0


@BOTH
def test_change_seen_within_a_second_with_a_watcher(
    bj: Directory, second_directory: Directory, greeter: Greeter
) -> None:
    """A watcher feeding the versions (as the runner's is): the app runs
    HealthContext.follow() for its lifetime, and probes read no version."""
    health = make_health(bj, greeter.probe())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.ensure_future(health.follow(interval=0.1))
        yield
        task.cancel()
        with contextlib.suppress(BaseException):
            await task

    app = Starlette(routes=health_routes(health), lifespan=lifespan)
    with TestClient(app) as client:
        assert wait_for_status(client, "/imap/healthcheck.htm", 200) < 1.0
        second_directory.components.set_state(
            "CAS01", "ServerWideOffline", "Inactive", "Maintenance"
        )
        assert wait_for_status(client, "/imap/healthcheck.htm", 503) < 1.0
        assert codes(client) == dict.fromkeys(HEALTH_PAGES, 503)
        second_directory.components.set_state("CAS01", "ServerWideOffline", "Active", "Maintenance")
        assert wait_for_status(client, "/autodiscover/healthcheck.htm", 200) < 1.0
