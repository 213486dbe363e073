"""Autodiscover for Outlook: the plain-old-XML protocol (MS-OXDISCO, MS-OXDSCLI).

`POST /autodiscover/autodiscover.xml` (any letter case), over TLS, with HTTP Basic
authentication against the mailbox password, and a body such as

    <Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/
                         requestschema/2006">
      <Request>
        <EMailAddress>alice@lab.net</EMailAddress>            (or <LegacyDN>)
        <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/
          outlook/responseschema/2006a</AcceptableResponseSchema>
      </Request>
    </Autodiscover>

answers as Exchange 2010 does: the user (DisplayName, LegacyDN,
AutoDiscoverSMTPAddress, DeploymentId = the organization GUID) and the account's
protocols: EXCH, whose Server is the mailbox's preferred endpoint
(`directory.endpoints`: the database's RpcClientAccessServer, the array FQDN after the
seed's step), ServerDN its legacyExchangeDN, MdbDN ServerDN plus
`/cn=Microsoft Private MDB`, ServerVersion the mailbox server's version in Exchange's
hexadecimal form (7383807B for 14.3.123), and ASUrl, EwsUrl and OOFUrl the internal
URL of the EWS virtual directory (`directory.virtual_directories.urls_for`: the
answering server's when it is in the mailbox's site, else the site's first Client
Access server's); EXPR, when that virtual directory has an ExternalUrl, with its host
as Server, SSL, the AuthPackage and the external ASUrl, EwsUrl and OOFUrl (Exchange
sends EXPR for Outlook Anywhere; the clients that read it here, Thunderbird, Evolution
and exchangelib 4.x, take EWS's URLs from it); WEB with the OWA URL on the endpoint;
IMAP (the endpoint, 993, SSL) and SMTP (the endpoint, 587, STARTTLS). No OABUrl:
casarray publishes no offline address book, and Exchange leaves OABUrl out when the
mailbox has none. A URL with no port gets the advertised HTTPS port when the server
listens on another one (`advertised_url`).

Errors, as Exchange sends them (HTTP 200 with an Error element): 600 "Invalid
Request" for a body that isn't a well-formed Outlook request (a DTD or an entity
declaration included: every request is parsed with defusedxml, which refuses entity
expansion and external entities), 601 for an AcceptableResponseSchema other than
2006a, 500 for an address no mailbox has and for another user's address (a user may
discover only their own settings; DebugData says which of the two it was), 602 when
the mailbox's database has no Client Access endpoint, 603 for a directory failure.
401 (with `WWW-Authenticate: Basic`) for missing or wrong credentials, 403 for a POST
over plain HTTP.

`GET http://<any name>/autodiscover/autodiscover.xml` answers 302 to the HTTPS URL on
this server's access name (its site's array, else itself: names its certificate
covers), MS-OXDISCO's HTTP redirect method. A GET over HTTPS is authenticated and then
answered 600, as Exchange answers a browser.
"""

from __future__ import annotations

import logging
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from casarray.access.http.context import (
    AppContext,
    CaseInsensitiveRoute,
    context_of,
    is_tls,
)
from casarray.access.http.vdir_auth import AUTODISCOVER, authenticate_for
from casarray.directory import AmbiguousIdentityError, DirectoryError, Mailbox, NotFoundError
from casarray.directory.endpoints import (
    Endpoint,
    NoEndpointError,
    access_name,
    preferred_endpoint,
    server_version_hex,
)
from casarray.directory.virtual_directories import ServiceUrls
from casarray.errors import CasarrayError

log = logging.getLogger("casarray.http.autodiscover")

PATH = "/autodiscover/autodiscover.xml"

RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
OUTLOOK_REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_RESPONSE_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

MAX_BODY = 64 * 1024
CONTENT_TYPE = "text/xml; charset=utf-8"

# Error codes (MS-OXDSCLI 2.2.4.1.1.3.2, ErrorCode).
ADDRESS_NOT_FOUND = 500
INVALID_REQUEST = 600
PROVIDER_UNAVAILABLE = 601
CONFIGURATION_ERROR = 602
SERVER_ERROR = 603

MESSAGES = {
    ADDRESS_NOT_FOUND: "The e-mail address cannot be found.",
    INVALID_REQUEST: "Invalid Request",
    PROVIDER_UNAVAILABLE: "Provider is not available",
    CONFIGURATION_ERROR: "Bad Address",
    SERVER_ERROR: "Internal Server Error",
}


class AutodiscoverError(CasarrayError):
    """An Autodiscover error response (ErrorCode, Message, DebugData)."""

    def __init__(self, code: int, debug: str = "", message: str | None = None) -> None:
        super().__init__(f"{code} {message or MESSAGES[code]}: {debug}")
        self.code = code
        self.message = message or MESSAGES[code]
        self.debug = debug


@dataclass(frozen=True)
class OutlookRequest:
    """A parsed Outlook Autodiscover request: exactly one of the two is set."""

    email_address: str | None
    legacy_dn: str | None


# -- the request ---------------------------------------------------------------------


def _local(tag: str) -> tuple[str, str]:
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _text(element: ET.Element | None) -> str:
    return (element.text or "").strip() if element is not None else ""


def parse_request(body: bytes) -> OutlookRequest:
    """The Outlook request in `body`, or AutodiscoverError 600 (not a well-formed
    Outlook request, or it declares a DTD or entities) or 601 (it asks for another
    response schema)."""
    if not body.strip():
        raise AutodiscoverError(INVALID_REQUEST, "The request body is empty.")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise AutodiscoverError(
            INVALID_REQUEST, f"The request declares a DTD or entities ({type(exc).__name__})."
        ) from None
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: an encoding
        raise AutodiscoverError(
            INVALID_REQUEST, f"The request isn't well-formed XML: {exc}."
        ) from None
    ns, local = _local(root.tag)
    if local != "Autodiscover":
        raise AutodiscoverError(INVALID_REQUEST, f"The root element is {local}, not Autodiscover.")
    request: ET.Element | None = root.find(f"{{{ns}}}Request" if ns else "Request")
    if request is None:
        raise AutodiscoverError(INVALID_REQUEST, "The request has no Request element.")

    def child(name: str) -> ET.Element | None:
        found: ET.Element | None = request.find(f"{{{ns}}}{name}" if ns else name)
        return found

    schema = _text(child("AcceptableResponseSchema"))
    if not schema:
        raise AutodiscoverError(INVALID_REQUEST, "AcceptableResponseSchema is missing.")
    if schema != OUTLOOK_RESPONSE_NS:
        raise AutodiscoverError(
            PROVIDER_UNAVAILABLE, f"No provider for the response schema {schema}."
        )
    if ns != OUTLOOK_REQUEST_NS:
        raise AutodiscoverError(
            INVALID_REQUEST, f"The request schema is '{ns}', not {OUTLOOK_REQUEST_NS}."
        )
    address = _text(child("EMailAddress"))
    legacy_dn = _text(child("LegacyDN"))
    if address:
        if "@" not in address:
            raise AutodiscoverError(INVALID_REQUEST, f"'{address}' is not an e-mail address.")
        return OutlookRequest(email_address=address, legacy_dn=None)
    if legacy_dn:
        return OutlookRequest(email_address=None, legacy_dn=legacy_dn)
    raise AutodiscoverError(INVALID_REQUEST, "The request has no EMailAddress or LegacyDN.")


# -- the response --------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What the response says, read from the directory in one go."""

    mailbox: Mailbox
    endpoint: Endpoint
    server_version: str
    deployment_id: str
    urls: ServiceUrls | None = None  # the EWS virtual directory's (None: no EWS)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _serialize(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + text


def advertised_url(url: str, context: AppContext) -> str:
    """`url` as clients are told it: an https URL without a port gets the advertised
    HTTPS port when that isn't 443 (a server on the unprivileged ports), so the
    directory keeps Exchange's URLs and clients still reach the server."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https" or parts.port is not None or context.ports.https == 443:
        return url
    netloc = f"{parts.netloc}:{context.ports.https}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _ews_urls(parent: ET.Element, url: str, context: AppContext) -> None:
    ews = advertised_url(url, context)
    for tag in ("ASUrl", "EwsUrl", "OOFUrl"):
        _sub(parent, tag, ews)


def settings_xml(settings: Settings, context: AppContext) -> bytes:
    """The Outlook (2006a) settings response for `settings`."""
    mailbox, endpoint = settings.mailbox, settings.endpoint
    ports = context.ports
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = _sub(root, "Response", xmlns=OUTLOOK_RESPONSE_NS)
    user = _sub(response, "User")
    _sub(user, "DisplayName", mailbox.display_name)
    _sub(user, "LegacyDN", mailbox.exchange_legacy_dn)
    _sub(user, "AutoDiscoverSMTPAddress", mailbox.primary_smtp_address)
    _sub(user, "DeploymentId", settings.deployment_id)
    account = _sub(response, "Account")
    _sub(account, "AccountType", "email")
    _sub(account, "Action", "settings")
    _sub(account, "MicrosoftOnline", "False")

    exch = _sub(account, "Protocol")
    _sub(exch, "Type", "EXCH")
    _sub(exch, "Server", endpoint.fqdn)
    _sub(exch, "ServerDN", endpoint.server_dn)
    _sub(exch, "ServerVersion", settings.server_version)
    _sub(exch, "MdbDN", endpoint.mdb_dn)
    urls = settings.urls
    if urls is not None and urls.internal_ews_url:
        _ews_urls(exch, urls.internal_ews_url, context)
    if urls is not None and urls.external_ews_url:
        expr = _sub(account, "Protocol")
        _sub(expr, "Type", "EXPR")
        _sub(expr, "Server", urllib.parse.urlsplit(urls.external_ews_url).hostname)
        _sub(expr, "SSL", "On" if urls.external_ews_url.startswith("https:") else "Off")
        _sub(expr, "AuthPackage", "Basic" if urls.basic_authentication else "Ntlm")
        _sub(expr, "ServerExclusiveConnect", "On")
        _sub(expr, "CertPrincipalName", "none")
        _ews_urls(expr, urls.external_ews_url, context)

    web = _sub(account, "Protocol")
    _sub(web, "Type", "WEB")
    owa = context.https_url(endpoint.fqdn, "/owa/")
    for where in ("Internal", "External"):
        _sub(_sub(web, where), "OWAUrl", owa, AuthenticationMethod="Basic, Fba")

    imap = _sub(account, "Protocol")
    _sub(imap, "Type", "IMAP")
    _sub(imap, "Server", endpoint.fqdn)
    _sub(imap, "Port", str(ports.imaps))
    _sub(imap, "DomainRequired", "off")
    _sub(imap, "LoginName", mailbox.primary_smtp_address)
    _sub(imap, "SPA", "off")
    _sub(imap, "SSL", "on")
    _sub(imap, "AuthRequired", "on")

    smtp = _sub(account, "Protocol")
    _sub(smtp, "Type", "SMTP")
    _sub(smtp, "Server", endpoint.fqdn)
    _sub(smtp, "Port", str(ports.submission))
    _sub(smtp, "DomainRequired", "off")
    _sub(smtp, "LoginName", mailbox.primary_smtp_address)
    _sub(smtp, "SPA", "off")
    _sub(smtp, "Encryption", "TLS")
    _sub(smtp, "AuthRequired", "on")
    _sub(smtp, "UsePOPAuth", "off")
    _sub(smtp, "SMTPLast", "off")
    return _serialize(root)


def error_xml(error: AutodiscoverError, context: AppContext, *, provider: bool) -> bytes:
    """An error response. Errors found before a provider took the request (600, 601)
    have a Response in the outer namespace, as Exchange sends them; the Outlook
    provider's own errors (500, 602, 603) have the 2006a Response."""
    root = ET.Element("Autodiscover", xmlns=RESPONSE_NS)
    response = (
        _sub(root, "Response", xmlns=OUTLOOK_RESPONSE_NS) if provider else _sub(root, "Response")
    )
    now = datetime.now(UTC)
    element = _sub(
        response,
        "Error",
        Time=now.strftime("%H:%M:%S.") + f"{now.microsecond * 10:07d}",
        Id=str(zlib.crc32(context.server_fqdn.lower().encode()) & 0x7FFFFFFF),
    )
    _sub(element, "ErrorCode", str(error.code))
    _sub(element, "Message", error.message)
    _sub(element, "DebugData", error.debug or None)
    return _serialize(root)


# -- the lookups (blocking: run in a worker thread) ---------------------------------


def _own(mailbox: Mailbox, request: OutlookRequest) -> bool:
    if request.email_address is not None:
        return request.email_address.lower() == mailbox.primary_smtp_address.lower()
    assert request.legacy_dn is not None
    return request.legacy_dn.lower() == mailbox.exchange_legacy_dn.lower()


def someone_has(context: AppContext, request: OutlookRequest) -> bool:
    wanted = request.email_address or request.legacy_dn or ""
    try:
        found = context.directory.mailboxes.one(wanted)
    except (NotFoundError, AmbiguousIdentityError):
        return False
    return wanted.lower() in (
        found.primary_smtp_address.lower(),
        found.exchange_legacy_dn.lower(),
    )


def lookup(context: AppContext, mailbox: Mailbox, request: OutlookRequest) -> Settings:
    """The settings of `mailbox` for `request`, or AutodiscoverError 500/602/603."""
    wanted = request.email_address or request.legacy_dn
    if not _own(mailbox, request):
        if someone_has(context, request):
            raise AutodiscoverError(
                ADDRESS_NOT_FOUND,
                f"{wanted} is another user's; {mailbox.primary_smtp_address} may discover "
                "only their own settings.",
            )
        raise AutodiscoverError(ADDRESS_NOT_FOUND, f"No mailbox has the address {wanted}.")
    directory = context.directory
    try:
        endpoint = preferred_endpoint(directory, mailbox)
        version = directory.servers.one(mailbox.server).admin_display_version
        deployment_id = directory.organization().guid
        urls = directory.virtual_directories.urls_for(context.server, endpoint.site)
        return Settings(mailbox, endpoint, server_version_hex(version), deployment_id, urls)
    except NoEndpointError as exc:
        raise AutodiscoverError(CONFIGURATION_ERROR, exc.message, message=exc.message) from None
    except DirectoryError as exc:
        raise AutodiscoverError(SERVER_ERROR, exc.message) from None


# -- the endpoint --------------------------------------------------------------------


def _xml(body: bytes) -> Response:
    return Response(body, status_code=200, media_type=CONTENT_TYPE)


async def read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise AutodiscoverError(
                INVALID_REQUEST, f"The request is larger than {MAX_BODY // 1024} KiB."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def autodiscover(request: Request) -> Response:
    context = context_of(request)
    if request.method in ("GET", "HEAD") and not is_tls(request):
        host = await run_in_threadpool(access_name, context.directory, context.server)
        return RedirectResponse(context.https_url(host, PATH), status_code=302)
    if request.method == "POST" and not is_tls(request) and context.require_tls:
        return PlainTextResponse("Autodiscover needs HTTPS.", status_code=403)
    mailbox = await authenticate_for(request, AUTODISCOVER)
    try:
        if request.method != "POST":
            raise AutodiscoverError(INVALID_REQUEST, "Autodiscover takes a POST request.")
        outlook = parse_request(await read_body(request))
    except AutodiscoverError as exc:
        log.info("%s autodiscover for %s: %s", context.server_name, mailbox.alias, exc)
        return _xml(error_xml(exc, context, provider=False))
    # The answer depends on the directory only: kept until the topology changes.
    key = ("autodiscover", mailbox.guid, outlook.email_address, outlook.legacy_dn)
    cached = context.answers.get(key)
    if cached is not None:
        return _xml(cached)
    version = context.answers.version
    try:
        settings = await run_in_threadpool(lookup, context, mailbox, outlook)
    except AutodiscoverError as exc:
        log.info("%s autodiscover for %s: %s", context.server_name, mailbox.alias, exc)
        return _xml(error_xml(exc, context, provider=True))
    except Exception as exc:
        log.exception("%s autodiscover for %s failed", context.server_name, mailbox.alias)
        error = AutodiscoverError(SERVER_ERROR, type(exc).__name__)
        return _xml(error_xml(error, context, provider=True))
    log.info(
        "%s autodiscover for %s: %s (%s)",
        context.server_name,
        mailbox.primary_smtp_address,
        settings.endpoint.fqdn,
        settings.endpoint.why,
    )
    body = settings_xml(settings, context)
    context.answers.put(key, body, version)
    return _xml(body)


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The POX Autodiscover route (SOAP's are `autodiscover_soap.routes`, beside it in
    the application's services); the context is read per request, from the app."""
    return [CaseInsensitiveRoute(PATH, autodiscover, methods=["GET", "POST"])]
