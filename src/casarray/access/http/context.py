"""What the HTTP services of a Client Access server share: the `AppContext` (the
directory, this server's record, the ports clients are told to use), the routes'
helpers, and HTTP Basic authentication with its cache. `app` builds the application
from the services; they import this module, not `app`.

The application is stateless: every answer comes from the directory (read in a worker
thread, since the directory is synchronous), so any member of a client access array
answers any request the same way. Failed logins are counted in the directory
(`directory.lockout`, from `AppContext.for_server`), shared with the IMAP service and
every other array member.

HTTP Basic authentication checks a mailbox's address or alias and password
(`directory.mailboxes.authenticate`, argon2 in a worker thread); a `DOMAIN\\user` login
is taken as `user`. It is refused over plain HTTP unless the context allows that.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib.util
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from casarray.access.http.credentials import AnswerCache, CredentialCache
from casarray.directory.lockout import DirectoryLockout, Lockout, MemoryLockout

if TYPE_CHECKING:
    from casarray.directory import Directory, Mailbox, Server

log = logging.getLogger("casarray.http")

# llhttp (Node.js's parser) through httptools when installed, else h11 (pure Python).
HTTP_PARSER = "httptools" if importlib.util.find_spec("httptools") is not None else "h11"


@dataclass(frozen=True)
class ServicePorts:
    """The ports clients are told to use: in redirects, in Autodiscover's protocol
    blocks and in autoconfig. The standard ones, or each plus an offset when the
    server listens on the unprivileged ports (`ServicePorts.offset(10000)`)."""

    http: int = 80
    https: int = 443
    imap: int = 143
    imaps: int = 993
    submission: int = 587

    @classmethod
    def offset(cls, offset: int) -> ServicePorts:
        base = cls()
        return cls(
            http=base.http + offset,
            https=base.https + offset,
            imap=base.imap + offset,
            imaps=base.imaps + offset,
            submission=base.submission + offset,
        )


@dataclass(frozen=True)
class AppContext:
    """What the HTTP service of one Client Access server needs."""

    directory: Directory
    server: Server  # this Client Access server's record
    ports: ServicePorts = field(default_factory=ServicePorts)
    # Basic authentication over plain HTTP is refused unless this is False (tests that
    # speak plain HTTP to a TLS-terminating proxy in front, say).
    require_tls: bool = True
    # Failed logins: in memory unless given (`for_server` shares the directory's).
    throttle: Lockout = field(default_factory=MemoryLockout)
    # Verified Basic credentials, remembered briefly (`credentials` module).
    credentials: CredentialCache = field(default_factory=CredentialCache)
    # Answers computed from the directory, until it changes (Autodiscover's).
    answers: AnswerCache = field(default_factory=AnswerCache)

    @classmethod
    def for_server(
        cls, directory: Directory, server: object, *, ports: ServicePorts | None = None, **kw: Any
    ) -> AppContext:
        """The context of the Client Access server `server` (a name, FQDN or GUID).
        Blocking: reads the directory."""
        record = directory.servers.one(server)
        if not record.is_client_access_server:
            raise ValueError(f"The server '{record.name}' isn't a Client Access server.")
        kw.setdefault("throttle", DirectoryLockout(directory.store))
        return cls(directory=directory, server=record, ports=ports or ServicePorts(), **kw)

    @property
    def server_name(self) -> str:
        return self.server.name

    @property
    def server_fqdn(self) -> str:
        return self.server.fqdn

    def with_ports(self, ports: ServicePorts) -> AppContext:
        return replace(self, ports=ports)

    def https_url(self, host: str, path: str) -> str:
        """`https://host[:port]/path` with the advertised HTTPS port."""
        port = "" if self.ports.https == 443 else f":{self.ports.https}"
        return f"https://{host.rstrip('.')}{port}{path}"


RouteFactory = Callable[[AppContext], Sequence[BaseRoute]]


# -- helpers for the services --------------------------------------------------------


class CaseInsensitiveRoute(Route):
    """A route whose path matches in any letter case (`/Autodiscover/Autodiscover.xml`,
    as Exchange's IIS does)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.path_regex = re.compile(self.path_regex.pattern, re.IGNORECASE)


def context_of(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


def is_tls(request: Request) -> bool:
    return request.url.scheme in ("https", "wss")


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def unauthorized(context: AppContext, detail: str = "Unauthorized") -> HTTPException:
    return HTTPException(
        401, detail, headers={"WWW-Authenticate": f'Basic realm="{context.server_fqdn}"'}
    )


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(login, password) from an `Authorization: Basic ...` header, else None. A
    `DOMAIN\\user` login becomes `user`."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    login, sep, password = text.partition(":")
    if not sep or not login:
        return None
    if "\\" in login:
        login = login.rsplit("\\", 1)[1]
    return login, password


async def authenticate(request: Request) -> Mailbox:
    """The mailbox whose credentials the request carries (HTTP Basic), or an
    HTTPException: 403 over plain HTTP when TLS is required, 401 (with
    `WWW-Authenticate`) for missing or wrong credentials, 429 while throttled."""
    context = context_of(request)
    if context.require_tls and not is_tls(request):
        raise HTTPException(403, "HTTPS is required.")
    credentials = parse_basic(request.headers.get("authorization"))
    if credentials is None:
        raise unauthorized(context)
    login, password = credentials
    cache = context.credentials
    if not cache.followed:  # no watcher: read the version (a cheap query)
        version = await run_in_threadpool(context.directory.topology_version)
        cache.topology_changed(version)
        context.answers.topology_changed(version)
    remembered = cache.get(login, password)
    if remembered is not None:
        return remembered
    address = client_address(request)
    retry = await run_in_threadpool(context.throttle.retry_after, login, address)
    if retry is not None:
        log.info("%s HTTP login %r from %s: throttled", context.server_name, login, address)
        raise HTTPException(
            429, "Too many failed logins; try again later.", {"Retry-After": str(int(retry) + 1)}
        )
    # Requests that carry the same credentials at once (Outlook opens several) wait for
    # one password check instead of each making its own.
    key = cache.key(login, password)
    pending = cache.checking.get(key)
    if pending is not None:
        mailbox = await asyncio.shield(pending)
        if mailbox is None:
            raise unauthorized(context)
        return mailbox
    pending = cache.checking[key] = asyncio.get_running_loop().create_future()
    try:
        mailbox = await run_in_threadpool(context.directory.mailboxes.authenticate, login, password)
        pending.set_result(mailbox)
    finally:
        del cache.checking[key]
        if not pending.done():
            pending.set_result(None)
    if mailbox is None:
        await run_in_threadpool(context.throttle.failed, login, address)
        log.info("%s HTTP login %r from %s: failed", context.server_name, login, address)
        raise unauthorized(context)
    await run_in_threadpool(context.throttle.succeeded, login)
    cache.put(login, password, mailbox)
    return mailbox
