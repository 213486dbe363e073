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

Windows authentication (`NTLM`, and raw NTLM under `Negotiate`) is offered beside
Basic on every 401, as IIS offers it for Exchange's virtual directories: the
handshake's protocol is `ntlm`; here, its HTTP side. The first request's NEGOTIATE gets
a 401 carrying the challenge, the second's AUTHENTICATE is checked against the user's
NT hash from the directory (`directory.mailboxes.nt_credentials`), with the same
lockout and the same rule on plain HTTP as Basic. A user whose password predates NT
hashes is refused over NTLM with a log line saying why; Basic still works for them.
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
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Route

from casarray.access.http.credentials import AnswerCache, CredentialCache
from casarray.access.http.ntlm import (
    AUTHENTICATE_MESSAGE,
    NEGOTIATE_MESSAGE,
    Handshakes,
    NtlmAcceptor,
    NtlmError,
    Target,
    decode_token,
    message_type,
)
from casarray.directory.lockout import DirectoryLockout, Lockout, MemoryLockout
from casarray.errors import CasarrayError

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
    # NTLM handshakes waiting for their third message, by connection (`ntlm`).
    handshakes: Handshakes = field(default_factory=Handshakes)

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


def unauthorized(
    context: AppContext, detail: str = "Unauthorized", *, basic: bool = True, windows: bool = True
) -> HTTPException:
    """A 401 offering what this resource takes, one `WWW-Authenticate` each, in IIS's
    order: Negotiate, NTLM (`windows`), Basic (`basic`)."""
    offers = ["Negotiate", "NTLM"] if windows else []
    if basic:
        offers.append(f'Basic realm="{context.server_fqdn}"')
    raw = [(b"www-authenticate", offer.encode("latin-1")) for offer in offers]
    return HTTPException(401, detail, headers=Headers(raw=raw))


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


async def authenticate(request: Request, *, basic: bool = True, windows: bool = True) -> Mailbox:
    """The mailbox whose credentials the request carries (HTTP Basic, or NTLM's
    handshake when `windows`), or an HTTPException: 403 over plain HTTP when TLS is
    required, 401 (with `WWW-Authenticate`) for missing or wrong credentials and for
    NTLM's challenge, 429 while throttled."""
    context = context_of(request)
    if context.require_tls and not is_tls(request):
        raise HTTPException(403, "HTTPS is required.")
    header = request.headers.get("authorization")
    scheme = (header or "").strip().partition(" ")[0].lower()
    if windows and scheme in ("ntlm", "negotiate"):
        return await _windows_login(request, context, header or "", basic=basic)
    credentials = parse_basic(header) if basic else None
    if credentials is None:
        raise unauthorized(context, basic=basic, windows=windows)
    login, password = credentials
    cache = context.credentials
    await _follow_directory(context)
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


async def _follow_directory(context: AppContext) -> None:
    """Without a directory watcher, read the topology version (a cheap query) so the
    caches forget what a change made stale."""
    if not context.credentials.followed:
        version = await run_in_threadpool(context.directory.topology_version)
        context.credentials.topology_changed(version)
        context.answers.topology_changed(version)


def _connection(request: Request) -> tuple[object, ...]:
    """This request's TCP connection, as far as ASGI tells (see `ntlm` on why)."""
    scope = request.scope
    return (tuple(scope.get("client") or ()), tuple(scope.get("server") or ()), scope["scheme"])


async def _windows_login(
    request: Request, context: AppContext, header: str, *, basic: bool
) -> Mailbox:
    """NTLM's handshake over two requests (`ntlm`): the first gets the challenge in a
    401, the second is checked against the directory's NT hash for the user."""
    scheme_text, _, value = header.strip().partition(" ")
    scheme = "Negotiate" if scheme_text.lower() == "negotiate" else "NTLM"
    address = client_address(request)
    connection = _connection(request)
    try:
        token = decode_token(value)
        kind = message_type(token)
        if kind is None:
            raise NtlmError(f"The {scheme} token is not an NTLM message (Kerberos isn't offered).")
        if kind == NEGOTIATE_MESSAGE:
            acceptor = NtlmAcceptor(
                Target.of(
                    context.directory.names.ad_domain, context.server_name, context.server_fqdn
                )
            )
            challenge = acceptor.challenge(token)
            context.handshakes.put(connection, scheme, acceptor)
            raise HTTPException(
                401,
                "Unauthorized",
                headers={"WWW-Authenticate": f"{scheme} {base64.b64encode(challenge).decode()}"},
            )
        if kind != AUTHENTICATE_MESSAGE:
            raise NtlmError(f"The {scheme} token is an NTLM message of type {kind}, not 1 or 3.")
        waiting = context.handshakes.take(connection, scheme)
        if waiting is None:
            raise NtlmError(
                "NTLM AUTHENTICATE without a challenge on this connection (or too late)."
            )
        user = waiting.login(token)
    except NtlmError as exc:
        log.info("%s %s login from %s: %s", context.server_name, scheme, address, exc.message)
        raise unauthorized(context, basic=basic) from None
    login = user.user
    retry = await run_in_threadpool(context.throttle.retry_after, login, address)
    if retry is not None:
        log.info(
            "%s %s login %r from %s: throttled", context.server_name, scheme, user.display, address
        )
        raise HTTPException(
            429, "Too many failed logins; try again later.", {"Retry-After": str(int(retry) + 1)}
        )
    await _follow_directory(context)
    cache = context.credentials
    found = cache.get_nt(login)
    remembered = found is not None
    if found is None:
        try:
            found = await run_in_threadpool(context.directory.mailboxes.nt_credentials, login)
        except CasarrayError as exc:
            log.warning(
                "%s %s login %r: %s", context.server_name, scheme, user.display, exc.message
            )
            raise unauthorized(context, basic=basic) from None
    if found is not None and found.nt_hash is None:
        log.warning(
            "%s %s login %r from %s: refused, the mailbox %s has no NT hash (its password "
            "was set before NTLM was supported); set its password again (Set-Mailbox "
            "-Password) to enable NTLM. Basic authentication still works.",
            context.server_name,
            scheme,
            user.display,
            address,
            found.mailbox.primary_smtp_address,
        )
        raise unauthorized(context, basic=basic)
    if found is None or found.nt_hash is None or not waiting.verify(found.nt_hash):
        if remembered:
            cache.forget_nt(login)
        await run_in_threadpool(context.throttle.failed, login, address)
        log.info(
            "%s %s login %r from %s: failed", context.server_name, scheme, user.display, address
        )
        raise unauthorized(context, basic=basic)
    if not remembered:
        await run_in_threadpool(context.throttle.succeeded, login)
        cache.put_nt(login, found)
    return found.mailbox
