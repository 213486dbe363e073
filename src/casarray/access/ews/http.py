"""EWS in the HTTP service of a Client Access server: `/EWS/Exchange.asmx` (SOAP
over POST; GET answers a short page, as IIS does for a browser) and
`/EWS/Services.wsdl` (a small WSDL naming the endpoint), behind the service's
authentication (`access.http.context.authenticate`).

    app = create_app(context, [*default_services(), ews.http.routes])

The request body is read up to `soap.MAX_BODY` octets (413 with a SOAP fault past
it), then `dispatch.answer` runs in a worker thread. Any member of the array serves any
user: the mailbox opens from its database's store wherever the request lands, the ids
decode with the organization's key, and nothing is kept between requests (Exchange
2010 proxies such a request to a CAS of the mailbox's site; with every store reachable
from every member, serving it here is the same answer without the hop).
X-AnchorMailbox, which exchangelib and Outlook send on every request to pin the
backend, is accepted and needs nothing: every member is the right one.
"""

from __future__ import annotations

from collections.abc import Sequence
from weakref import WeakKeyDictionary
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute

from casarray.access.ews.context import EwsContext, run_store
from casarray.access.ews.dispatch import answer
from casarray.access.ews.ids import IdCodec
from casarray.access.ews.soap import (
    MAX_BODY,
    NS_M,
    NS_T,
    EwsError,
    SoapFault,
    SoapRequest,
    fault,
)
from casarray.access.http.context import AppContext, CaseInsensitiveRoute, context_of
from casarray.access.http.vdir_auth import WEB_SERVICES, authenticate_for
from casarray.directory import Directory, MailboxDatabase
from casarray.directory.errors import DirectoryError
from casarray.mailstore.provisioning import open_mailbox

XML = "text/xml; charset=utf-8"
SUBMISSION_PORT = 587  # the standard port `ports.submission` is offset from
PATH = "/EWS/Exchange.asmx"
WSDL_PATH = "/EWS/Services.wsdl"


def routes(context: AppContext) -> Sequence[BaseRoute]:
    return [
        CaseInsensitiveRoute(PATH, exchange_asmx, methods=["GET", "POST"]),
        CaseInsensitiveRoute(WSDL_PATH, services_wsdl, methods=["GET"]),
    ]


async def _read_body(request: Request) -> bytes:
    """The body, or SoapFault(413) as soon as it passes MAX_BODY."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise SoapFault(
            f"The request body has {declared} octets; the limit is {MAX_BODY}.",
            code="ErrorInvalidRequest",
            status=413,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise SoapFault(
                f"The request body has more than {MAX_BODY} octets, the limit.",
                code="ErrorInvalidRequest",
                status=413,
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def exchange_asmx(request: Request) -> Response:
    mailbox = await authenticate_for(request, WEB_SERVICES)
    context = context_of(request)
    if request.method == "GET":
        return HTMLResponse(
            "<!DOCTYPE html><html><head><title>Exchange Web Services</title></head><body>"
            f"<p>Exchange Web Services on {escape(context.server_fqdn)}: POST SOAP 1.1 "
            f"requests to this URL. The service description is at "
            f'<a href="{WSDL_PATH}">{WSDL_PATH}</a>.</p></body></html>'
        )
    try:
        data = await _read_body(request)
    except SoapFault as exc:
        return Response(fault(exc), exc.status, media_type=XML)

    def open_context(soap: SoapRequest) -> EwsContext:
        directory = context.directory
        try:
            secret = directory.session_secret()
            database = _database(directory, mailbox.database)
        except DirectoryError as exc:
            raise EwsError("ErrorMailboxStoreUnavailable", exc.message) from None
        store = run_store(open_mailbox, database, mailbox.guid)
        return EwsContext(
            mailbox=mailbox,
            store=store,
            directory=directory,
            server=context.server,
            ids=IdCodec.for_secret(secret),
            request=soap,
            port_offset=context.ports.submission - SUBMISSION_PORT,
            store_location=database.store_location,
        )

    status, body = await run_in_threadpool(answer, data, open_context)
    return Response(body, status, media_type=XML)


# by directory (tests open many organizations in one process, some alike)
_databases: WeakKeyDictionary[Directory, dict[tuple[int, str], MailboxDatabase]] = (
    WeakKeyDictionary()
)


def _database(directory: Directory, name: str) -> MailboxDatabase:
    """The mailbox database record, read again whenever the directory's topology
    version changes (every write bumps it, a dismount or a move included): one small
    query a request instead of the database's."""
    known = _databases.setdefault(directory, {})
    key = (directory.topology_version(), name)
    found = known.get(key)
    if found is None:
        found = directory.databases.one(name)
        if len(known) > 256:
            known.clear()
        known[key] = found
    return found


async def services_wsdl(request: Request) -> Response:
    await authenticate_for(request, WEB_SERVICES)
    context = context_of(request)
    location = escape(f"{request.url.scheme}://{request.url.netloc}{PATH}", {'"': "&quot;"})
    wsdl = f"""<?xml version="1.0" encoding="utf-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:tns="{NS_M}" xmlns:t="{NS_T}" targetNamespace="{NS_M}">
  <wsdl:documentation>Exchange Web Services of {escape(context.server_fqdn)} (Exchange2010_SP2
  schema names; the operations are those of Exchange 2010's Services.wsdl that this server
  implements).</wsdl:documentation>
  <wsdl:service name="ExchangeServices">
    <wsdl:port name="ExchangeServicePort" binding="tns:ExchangeServiceBinding">
      <soap:address location="{location}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""
    return Response(wsdl.encode(), media_type=XML)
