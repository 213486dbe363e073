"""Health check pages: what load balancers probe, as on Exchange 2013.

`GET /owa/healthcheck.htm`, `/autodiscover/healthcheck.htm`, `/imap/healthcheck.htm`
and `/api/healthcheck.htm` (any letter case, no authentication) answer 200 with
`200 OK<br/>CAS01.lab.net` (the server's FQDN, as Exchange's pages do) while the
component is healthy, and 503 otherwise:

- the component is Inactive in the directory (Set-ServerComponentState by any
  requester, or ServerWideOffline Inactive): so an administrator drains a server
  for maintenance, and its existing sessions finish while balancers send new ones
  elsewhere;
- for imap, also when the local IMAP listener doesn't accept a connection and greet
  with `* OK` (`imap_probe`, see `probe_imap`).

Balancers probe often (every 500 ms each), so a probe reads no database when nothing
changed: the server's component states are cached per topology version. The version
is learnt either from the server's directory watcher (`HealthContext.topology_changed`,
or `HealthContext.follow()`), and then a probe costs no query at all, or, without a
watcher, by reading it at most every `max_age` seconds (0.5 s). Either way a change
is seen within a second. When the directory can't be read (a database outage), the
last states read stand; a server removed from the directory answers 503.

Mounting them (the runner): build one `HealthContext` per server, pass
`health_routes` its context, and feed it the topology versions:

    health = HealthContext(directory, "CAS01", "CAS01.lab.net",
                           imap_probe=lambda: probe_imap("127.77.1.11", 143))
    app = Starlette(routes=[*other_routes, *health_routes(health)])
    ...  # in the directory watcher: health.topology_changed(version)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from casarray.directory.components import (
    API,
    AUTODISCOVER,
    IMAP,
    INACTIVE,
    OWA,
    SERVER_WIDE_OFFLINE,
    ComponentState,
)
from casarray.directory.errors import DirectoryError

if TYPE_CHECKING:
    from casarray.directory import Directory

log = logging.getLogger("casarray.http.health")

# The virtual directories with a health check page, and the component each reports.
HEALTH_PAGES = {"owa": OWA, "autodiscover": AUTODISCOVER, "imap": IMAP, "api": API}
PAGE = "healthcheck.htm"
NO_CACHE = {"Cache-Control": "no-cache"}
MAX_AGE = 0.5  # seconds a read topology version is trusted without a watcher
PROBE_TIMEOUT = 0.5  # seconds for the IMAP listener to accept and greet

ImapProbe = Callable[[], Awaitable[bool]]


async def probe_imap(
    host: str,
    port: int,
    timeout: float = PROBE_TIMEOUT,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> bool:
    """Whether the IMAP listener at host:port accepts a connection and greets with
    `* OK` within `timeout` seconds (with `ssl_context`: after a TLS handshake, for
    an implicit-TLS port). Never raises."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=ssl_context,
                server_hostname=host if ssl_context is not None else None,
            )
            greeting = await reader.readline()
        return greeting[:4].upper() == b"* OK"
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError, ssl.SSLError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(timeout):
                    await writer.wait_closed()


class ComponentStateCache:
    """One server's component states, read again only when the topology version
    changes. Thread-safe: reads run in worker threads, one at a time."""

    def __init__(
        self,
        directory: Directory,
        server: str,
        *,
        max_age: float = MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.server = server
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, ComponentState] | None = None
        self._problem: str | None = None  # why there are no states (server removed, ...)
        self._loaded_version: int | None = None
        self._pushed_version: int | None = None
        self._checked_at = -math.inf
        self._failed = False
        self.queries = 0  # directory reads so far (version checks and loads)

    def topology_changed(self, version: int) -> None:
        """Tell the cache the directory's topology version (from a watcher). Once told,
        it trusts these versions and reads no version itself."""
        self._pushed_version = version

    def invalidate(self) -> None:
        self._checked_at = -math.inf
        self._loaded_version = None

    def is_fresh(self) -> bool:
        """Whether the cached states may be used without reading the directory."""
        if self._states is None and self._problem is None:
            return False
        age = self._clock() - self._checked_at
        if self._failed and age < self.max_age:
            return True  # the directory just failed: don't ask again at once
        if self._pushed_version is not None:
            return self._pushed_version == self._loaded_version
        return age < self.max_age

    def refresh(self) -> None:
        """Read the version (unless a watcher gave it) and, if it changed, the states.
        Blocking."""
        with self._lock:
            if self.is_fresh():
                return
            try:
                version = self._pushed_version
                if version is None:
                    self.queries += 1
                    version = self.directory.topology_version()
                if version != self._loaded_version:
                    self.queries += 1
                    try:
                        records = self.directory.components.get(self.server)
                    except DirectoryError as exc:  # the server is gone, say
                        self._states, self._problem = None, exc.message
                    else:
                        self._states = {r.component: r for r in records}
                        self._problem = None
                    self._loaded_version = version
                self._failed = False
            except Exception as exc:  # the database is unreachable: keep what we had
                log.warning("%s: can't read the component states: %s", self.server, exc)
                self._failed = True
                if self._states is None:
                    self._problem = f"the directory can't be read ({exc})"
            self._checked_at = self._clock()

    async def check(self, component: str) -> tuple[bool, str]:
        """(healthy, why not) for `component`, from the cache when it is fresh."""
        if not self.is_fresh():
            await asyncio.to_thread(self.refresh)
        return self.verdict(component)

    def verdict(self, component: str) -> tuple[bool, str]:
        states = self._states
        if states is None:
            return False, self._problem or "the component states are not known yet"
        offline = states.get(SERVER_WIDE_OFFLINE)
        if offline is not None and offline.own_state == INACTIVE:
            return False, _why(offline)
        record = states.get(component)
        if record is None:
            return False, f"{component} doesn't run on {self.server}"
        if not record.is_active:
            return False, _why(record)
        return True, ""


def _why(record: ComponentState) -> str:
    requesters = [e.requester for e in record.entries if e.state == INACTIVE]
    return f"{record.component} is Inactive (requester: {', '.join(requesters)})"


class AppLike(Protocol):
    """What `health_routes` needs of a context (the HTTP app's context has these)."""

    @property
    def directory(self) -> Directory: ...

    @property
    def server_name(self) -> str: ...

    @property
    def server_fqdn(self) -> str: ...


@dataclass
class HealthContext:
    """What the health check pages of one Client Access server need: the directory,
    the server's name and FQDN, and a probe of its IMAP listener (None: no IMAP
    listener here, so /imap/healthcheck.htm answers 503)."""

    directory: Directory
    server_name: str
    server_fqdn: str
    imap_probe: ImapProbe | None = None
    max_age: float = MAX_AGE
    probe_timeout: float = 1.0  # a bound on the whole imap_probe call
    states: ComponentStateCache = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.states = ComponentStateCache(self.directory, self.server_name, max_age=self.max_age)

    @classmethod
    def of(cls, context: AppLike, imap_probe: ImapProbe | None = None) -> HealthContext:
        """The health context of an app context (anything with `directory`,
        `server_name` and `server_fqdn`; its `imap_probe`, if it has one, unless given)."""
        if isinstance(context, HealthContext):
            return context
        probe = imap_probe if imap_probe is not None else getattr(context, "imap_probe", None)
        return cls(context.directory, context.server_name, context.server_fqdn, probe)

    def topology_changed(self, version: int) -> None:
        """Call from the server's directory watcher with each topology version."""
        self.states.topology_changed(version)

    async def follow(self, interval: float = 0.2) -> None:
        """Watch the directory and feed the versions to the cache (runs until
        cancelled): for a server that has no watcher of its own."""
        async for version in self.directory.watch(interval=interval):
            self.topology_changed(version)

    async def check(self, component: str) -> tuple[bool, str]:
        """(healthy, why not) for one of the components with a health check page."""
        healthy, why = await self.states.check(component)
        if healthy and component == IMAP:
            healthy, why = await self._probe_imap()
        return healthy, why

    async def _probe_imap(self) -> tuple[bool, str]:
        if self.imap_probe is None:
            return False, "no IMAP listener runs here"
        try:
            async with asyncio.timeout(self.probe_timeout):
                up = bool(await self.imap_probe())
        except Exception as exc:
            log.warning("%s: IMAP probe failed: %r", self.server_name, exc)
            up = False
        return (True, "") if up else (False, "the IMAP listener doesn't answer")


class _AnyCaseRoute(Route):
    """A route whose path matches in any letter case (/OWA/HealthCheck.htm)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.path_regex = re.compile(self.path_regex.pattern, re.IGNORECASE)


def _page(health: HealthContext, component: str) -> Callable[[Request], Awaitable[Response]]:
    async def healthcheck(request: Request) -> Response:
        healthy, why = await health.check(component)
        if healthy:
            body = f"200 OK<br/>{health.server_fqdn}"
            return Response(body, 200, headers=NO_CACHE, media_type="text/html")
        body = f"503 Service Unavailable<br/>{health.server_fqdn}<br/>{why}"
        return Response(body, 503, headers=NO_CACHE, media_type="text/html")

    return healthcheck


def health_routes(context: HealthContext | AppLike) -> list[Route]:
    """The four health check routes (GET and HEAD; any case): /owa, /autodiscover,
    /imap and /api, each `/healthcheck.htm`. `context` is a `HealthContext`, or an app
    context it is made from (`HealthContext.of`); the routes share its cache."""
    health = HealthContext.of(context)
    return [
        _AnyCaseRoute(
            f"/{vdir}/{PAGE}", _page(health, component), methods=["GET"], name=f"health-{vdir}"
        )
        for vdir, component in HEALTH_PAGES.items()
    ]


__all__ = [
    "HEALTH_PAGES",
    "ComponentStateCache",
    "HealthContext",
    "ImapProbe",
    "health_routes",
    "probe_imap",
]
