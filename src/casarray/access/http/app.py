"""The HTTP service of a Client Access server: one Starlette application, and the
uvicorn server that runs it inside the caller's event loop.

`create_app(context)` builds the application from an `AppContext` (`context`: the
directory, this server's record, the ports clients are told to use) and a list of
services, each a function from the context to its routes; `default_services()` gives
Autodiscover, Thunderbird autoconfig, web mail and the JSON API, and the Client Access
process adds the health check pages. The services import `context`, never this
module, so that the application may import them all.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from casarray.access.ews import http as ews_http
from casarray.access.http import api, autoconfig, autodiscover, autodiscover_soap, owa
from casarray.access.http.context import HTTP_PARSER, AppContext, RouteFactory
from casarray.access.http.limits import HttpLimits, limited_protocol
from casarray.process.limits import ConnectionCounter

log = logging.getLogger("casarray.http")


def default_services() -> list[RouteFactory]:
    """The services every Client Access server runs: Autodiscover (POX and SOAP),
    autoconfig, web mail, the JSON API and Exchange Web Services (`access.ews`); the
    runner adds the health check pages, which need its IMAP probe. Add one by passing
    `[*default_services(), other.routes]` to `create_app`."""
    return [
        autodiscover.routes,
        autodiscover_soap.routes,
        autoconfig.routes,
        owa.routes,
        api.routes,
        ews_http.routes,
    ]


def create_app(
    context: AppContext,
    services: Sequence[RouteFactory] | None = None,
    *,
    debug: bool = False,
) -> Starlette:
    """The ASGI application of the Client Access server `context.server`, with the
    routes of every service in `services` (default: `default_services()`)."""
    routes: list[BaseRoute] = []
    for service in default_services() if services is None else services:
        routes.extend(service(context))
    app = Starlette(debug=debug, routes=routes, exception_handlers={ClientDisconnect: _client_gone})
    app.state.context = context
    return app


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client went away while its request waited (for a password check, say): there
    is nobody to answer, and nothing to log as an error."""
    log.debug("%s %s: the client disconnected", request.method, request.url.path)
    return Response(status_code=499)


def http_server(
    app: Starlette,
    *,
    ssl_context: ssl.SSLContext | None = None,
    limits: HttpLimits | None = None,
    counter: ConnectionCounter | None = None,
    **options: Any,
) -> uvicorn.Server:
    """A uvicorn server for `app`, to run inside the caller's event loop:

        server = http_server(app, ssl_context=context)   # None: plain HTTP
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        ...
        server.should_exit = True; await task

    `sock` is a listening socket the caller bound (`socket.create_server((host, 443))`,
    so that a PermissionError on a low port can be answered by the +10000 port, which
    uvicorn itself would turn into `sys.exit`). The server leaves signals to the caller
    (uvicorn's own handlers are not installed), doesn't configure logging, sends no
    `Server` header, and ignores X-Forwarded-* headers (a client on a loopback address
    must not pass plain HTTP off as HTTPS). With `ssl_context` the same context object
    is used for the server's life, so one whose `sni_callback` changes what it serves
    (`access.tls.TlsContexts`) applies to the next handshake; requests then have the
    `https` scheme.

    The connections are limited and every state of one has a deadline
    (`access.http.limits`: `limits`, its defaults when None), counted in `counter`
    (shared by a Client Access server's HTTP and HTTPS; its own when None)."""
    limits = limits or HttpLimits()
    protocol: Any = HTTP_PARSER
    if HTTP_PARSER == "httptools":
        protocol = limited_protocol(limits, counter)
    settings: dict[str, Any] = {
        "http": protocol,
        "timeout_keep_alive": limits.keep_alive,
        "lifespan": "on",
        "log_config": None,
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 5,
    }
    settings.update(options)
    config = uvicorn.Config(app, **settings)
    config.load()
    if ssl_context is not None:
        # uvicorn tells https from http by the transport's SSL context, so this is all
        # it takes; `serve` does not load the config again.
        config.ssl = ssl_context
    return _EmbeddedServer(config)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn.Server without its signal handlers: the caller owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
