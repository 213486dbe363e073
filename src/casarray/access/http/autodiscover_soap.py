"""Autodiscover for Exchange Web Services clients: the SOAP protocol ([MS-OXWSADISC]).

`POST /autodiscover/autodiscover.svc` (any letter case), over TLS, authenticated as
the POX endpoint is (`context.authenticate`: an unauthenticated request gets 401 with
`WWW-Authenticate`, which is how exchangelib learns the scheme), with a SOAP 1.1 (or
1.2) envelope whose body is a `GetUserSettingsRequestMessage`: the users' addresses
and the settings wanted, as exchangelib 5.x sends it (it asks for every setting it
knows, with `RequestedServerVersion` Exchange2016 in the header and an
`X-AnchorMailbox` header, and reads `ExternalEwsUrl` and `EwsSupportedSchemas`).

The answer is Exchange 2010 SP3's: `ServerVersionInfo` in the SOAP header (14.3, the
answering server's build, `Exchange2010_SP2`, the newest schema 2010 SP3 speaks), a
`GetUserSettingsResponseMessage` with one `UserResponse` per user, each with the
settings casarray has (`answer_settings`) and, in `UserSettingErrors`,
`SettingIsNotAvailable` for a known setting that has no value here (an ExternalEwsUrl
nobody set) and `InvalidSetting` for the rest. Which URLs: those of
`directory.virtual_directories.urls_for`, as POX gives them.

A user may discover only their own settings, as on the POX endpoint: another user's
address or one no mailbox has is `InvalidUser` (the message says which). A request
with no users, no settings, or another operation is answered with the response's
`InvalidRequest`, or a SOAP fault for an envelope that isn't one (HTTP 500, as
SOAP 1.1 sends faults); malformed XML, a DTD or entities are refused by defusedxml
with a fault naming the problem. `GET` over plain HTTP is redirected to HTTPS on this
server's access name (exchangelib's step 3); `GET` and `HEAD` over HTTPS answer 200
(the probe exchangelib makes of a redirect target).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute

from casarray.access.http.autodiscover import (
    AutodiscoverError,
    OutlookRequest,
    advertised_url,
    read_body,
    someone_has,
)
from casarray.access.http.autodiscover import lookup as pox_lookup
from casarray.access.http.context import (
    AppContext,
    CaseInsensitiveRoute,
    context_of,
    is_tls,
)
from casarray.access.http.vdir_auth import AUTODISCOVER, authenticate_for
from casarray.directory import Mailbox
from casarray.directory.endpoints import access_name
from casarray.errors import CasarrayError

log = logging.getLogger("casarray.http.autodiscover")

PATHS = ("/autodiscover/autodiscover.svc", "/autodiscover/autodiscover.svc/wssecurity")

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
ANS = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ACTION = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/"

# What Exchange 2010 SP3 speaks: its schemas, the newest as its Version.
EWS_SUPPORTED_SCHEMAS = (
    "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2"
)
SCHEMA_VERSION = "Exchange2010_SP2"

# Every setting name of [MS-OXWSADISC] 2.2.4.26 that Exchange 2010 knows; a requested
# name outside this set is InvalidSetting, one inside without a value here is
# SettingIsNotAvailable.
KNOWN_SETTINGS = frozenset(
    [
        "UserDisplayName",
        "UserDN",
        "UserDeploymentId",
        "InternalMailboxServer",
        "InternalRpcClientServer",
        "InternalMailboxServerDN",
        "InternalEcpUrl",
        "InternalEcpVoicemailUrl",
        "InternalEcpEmailSubscriptionsUrl",
        "InternalEcpTextMessagingUrl",
        "InternalEcpDeliveryReportUrl",
        "InternalEcpRetentionPolicyTagsUrl",
        "InternalEcpPublishingUrl",
        "InternalEwsUrl",
        "InternalOABUrl",
        "InternalUMUrl",
        "InternalWebClientUrls",
        "MailboxDN",
        "PublicFolderServer",
        "ActiveDirectoryServer",
        "ExternalMailboxServer",
        "ExternalMailboxServerRequiresSSL",
        "ExternalMailboxServerAuthenticationMethods",
        "EcpVoicemailUrlFragment",
        "EcpEmailSubscriptionsUrlFragment",
        "EcpTextMessagingUrlFragment",
        "EcpDeliveryReportUrlFragment",
        "EcpRetentionPolicyTagsUrlFragment",
        "EcpPublishingUrlFragment",
        "ExternalEcpUrl",
        "ExternalEcpVoicemailUrl",
        "ExternalEcpEmailSubscriptionsUrl",
        "ExternalEcpTextMessagingUrl",
        "ExternalEcpDeliveryReportUrl",
        "ExternalEcpRetentionPolicyTagsUrl",
        "ExternalEcpPublishingUrl",
        "ExternalEwsUrl",
        "ExternalOABUrl",
        "ExternalUMUrl",
        "ExternalWebClientUrls",
        "CrossOrganizationSharingEnabled",
        "AlternateMailboxes",
        "CasVersion",
        "EwsSupportedSchemas",
        "InternalPop3Connections",
        "ExternalPop3Connections",
        "InternalImap4Connections",
        "ExternalImap4Connections",
        "InternalSmtpConnections",
        "ExternalSmtpConnections",
        "InternalServerExclusiveConnect",
        "ExternalServerExclusiveConnect",
        "ExchangeRpcUrl",
        "ShowGalAsDefaultView",
        "AutoDiscoverSMTPAddress",
        "InteropExternalEwsUrl",
        "InteropExternalEwsVersion",
        "ExternalEwsVersion",
        "MobileMailboxPolicyInterop",
    ]
)


class SoapFault(CasarrayError):
    """A request that isn't a SOAP request casarray can answer: a fault."""

    def __init__(self, message: str, *, client: bool = True) -> None:
        super().__init__(message)
        self.client = client


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WebClientUrl:
    authentication_methods: str
    url: str


@dataclass(frozen=True)
class ProtocolConnection:
    hostname: str
    port: int
    encryption: str


SettingValue = str | tuple[WebClientUrl, ...] | tuple[ProtocolConnection, ...]


@dataclass(frozen=True)
class UserRequest:
    """One GetUserSettings request: the users' addresses and the setting names."""

    users: tuple[str, ...]
    settings: tuple[str, ...]
    requested_version: str | None


@dataclass(frozen=True)
class UserAnswer:
    """One UserResponse: NoError with settings and setting errors, or an error."""

    error_code: str
    error_message: str
    settings: tuple[tuple[str, SettingValue], ...] = ()
    setting_errors: tuple[tuple[str, str, str], ...] = ()  # name, code, message


# -- the request ------------------------------------------------------------------------


def parse_request(body: bytes) -> tuple[str, UserRequest]:
    """(the envelope's namespace, the request), or SoapFault naming what was wrong.
    An envelope whose body holds another operation is a SoapFault too."""
    if not body.strip():
        raise SoapFault("The request body is empty.")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SoapFault(f"The request declares a DTD or entities ({type(exc).__name__}).") from None
    except (ET.ParseError, ValueError, LookupError) as exc:  # LookupError: an encoding
        raise SoapFault(f"The request isn't well-formed XML: {exc}.") from None
    envelope_ns = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if envelope_ns not in (SOAP11, SOAP12) or not root.tag.endswith("}Envelope"):
        raise SoapFault(f"The root element is {root.tag}, not a SOAP Envelope.")
    soap_body = root.find(f"{{{envelope_ns}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise SoapFault("The SOAP envelope has no Body, or an empty one.")
    message = soap_body[0]
    if message.tag != f"{{{ANS}}}GetUserSettingsRequestMessage":
        raise SoapFault(
            f"The operation {message.tag} isn't supported here; this endpoint answers "
            f"GetUserSettings ({{{ANS}}}GetUserSettingsRequestMessage)."
        )
    header = root.find(f"{{{envelope_ns}}}Header")
    version = None
    if header is not None:
        version = (header.findtext(f"{{{ANS}}}RequestedServerVersion") or "").strip() or None
    request = message.find(f"{{{ANS}}}Request")
    users: list[str] = []
    settings: list[str] = []
    if request is not None:
        for user in request.iterfind(f"{{{ANS}}}Users/{{{ANS}}}User"):
            users.append((user.findtext(f"{{{ANS}}}Mailbox") or "").strip())
        for setting in request.iterfind(f"{{{ANS}}}RequestedSettings/{{{ANS}}}Setting"):
            settings.append((setting.text or "").strip())
    return envelope_ns, UserRequest(tuple(users), tuple(settings), version)


def request_error(request: UserRequest) -> str | None:
    """Why the response as a whole is InvalidRequest, or None."""
    if not request.users:
        return "The request names no user (Request/Users/User/Mailbox)."
    if not request.settings:
        return "The request asks for no setting (Request/RequestedSettings/Setting)."
    if any(not user for user in request.users):
        return "A User has an empty Mailbox."
    return None


# -- the answer (blocking: reads the directory) ------------------------------------------


def cas_version(admin_display_version: str) -> str:
    """CasVersion as Exchange writes it: 14.3.123.4 -> 14.03.0123.004."""
    parts = [int(p) for p in admin_display_version.split(".")[:4]]
    parts += [0] * (4 - len(parts))
    return f"{parts[0]}.{parts[1]:02d}.{parts[2]:04d}.{parts[3]:03d}"


def answer_settings(context: AppContext, mailbox: Mailbox) -> dict[str, SettingValue]:
    """Every setting casarray has for `mailbox` (its own), by Exchange's names; raises
    AutodiscoverError as the POX lookup does (no endpoint, a directory failure)."""
    address = mailbox.primary_smtp_address
    found = pox_lookup(context, mailbox, OutlookRequest(email_address=address, legacy_dn=None))
    endpoint, urls = found.endpoint, found.urls
    directory = context.directory
    server = directory.servers.one(mailbox.server)
    ports = context.ports
    values: dict[str, SettingValue] = {
        "UserDisplayName": mailbox.display_name,
        "UserDN": mailbox.exchange_legacy_dn,
        "UserDeploymentId": found.deployment_id,
        "AutoDiscoverSMTPAddress": address,
        "InternalMailboxServer": server.fqdn,
        "InternalMailboxServerDN": server.exchange_legacy_dn,
        "InternalRpcClientServer": endpoint.fqdn,
        "MailboxDN": endpoint.mdb_dn,
        "CasVersion": cas_version(context.server.admin_display_version),
        "EwsSupportedSchemas": EWS_SUPPORTED_SCHEMAS,
        "CrossOrganizationSharingEnabled": "False",
        "InternalServerExclusiveConnect": "False",
    }
    owa = context.https_url(endpoint.fqdn, "/owa/")
    web = (WebClientUrl("Basic, Fba", owa),)
    values["InternalWebClientUrls"] = web
    values["ExternalWebClientUrls"] = web
    imap = (ProtocolConnection(endpoint.fqdn, ports.imaps, "SSL"),)
    smtp = (ProtocolConnection(endpoint.fqdn, ports.submission, "TLS"),)
    for where in ("Internal", "External"):
        values[f"{where}Imap4Connections"] = imap
        values[f"{where}SmtpConnections"] = smtp
    if urls is not None and urls.internal_ews_url:
        values["InternalEwsUrl"] = advertised_url(urls.internal_ews_url, context)
    if urls is not None and urls.external_ews_url:
        external = advertised_url(urls.external_ews_url, context)
        values["ExternalEwsUrl"] = external
        values["ExternalEwsVersion"] = f"{cas_version(context.server.admin_display_version)}"
        values["ExternalMailboxServer"] = external.split("/")[2].split(":")[0]
        values["ExternalMailboxServerRequiresSSL"] = str(external.startswith("https:"))
        values["ExternalMailboxServerAuthenticationMethods"] = (
            "Basic" if urls.basic_authentication else "Ntlm"
        )
        values["ExternalServerExclusiveConnect"] = "False"
    return values


def answer_user(
    context: AppContext,
    mailbox: Mailbox,
    wanted: str,
    settings: Sequence[str],
    someone_has: Callable[[str], bool],
) -> UserAnswer:
    """The UserResponse for the user `wanted`, asked by `mailbox`."""
    if wanted.lower() != mailbox.primary_smtp_address.lower():
        if someone_has(wanted):
            why = f"{wanted} is another user's; {mailbox.primary_smtp_address} may discover "
            why += "only their own settings."
        else:
            why = f"No mailbox has the address {wanted}."
        return UserAnswer("InvalidUser", f"Invalid user: '{wanted}'. {why}")
    try:
        values = answer_settings(context, mailbox)
    except AutodiscoverError as exc:
        code = "InternalServerError" if exc.code == 603 else "SettingIsNotAvailable"
        return UserAnswer(code, exc.debug or exc.message)
    answered: list[tuple[str, SettingValue]] = []
    errors: list[tuple[str, str, str]] = []
    for name in dict.fromkeys(settings):  # each once, in the order asked
        if name in values:
            answered.append((name, values[name]))
        elif name in KNOWN_SETTINGS:
            errors.append(
                (name, "SettingIsNotAvailable", f"User setting '{name}' is not available.")
            )
        else:
            errors.append((name, "InvalidSetting", f"The requested setting '{name}' is invalid."))
    return UserAnswer("NoError", "No error.", tuple(answered), tuple(errors))


# -- the XML -----------------------------------------------------------------------------


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _envelope(envelope_ns: str, action: str, context: AppContext) -> tuple[ET.Element, ET.Element]:
    """(the envelope, its Body), with the header Exchange sends."""
    envelope = ET.Element(f"{{{envelope_ns}}}Envelope")
    header = _sub(envelope, f"{{{envelope_ns}}}Header")
    _sub(header, f"{{{WSA}}}Action", ACTION + action, **{f"{{{envelope_ns}}}mustUnderstand": "1"})
    info = _sub(header, f"{{{ANS}}}ServerVersionInfo")
    numbers = [int(p) for p in context.server.admin_display_version.split(".")[:4]]
    numbers += [0] * (4 - len(numbers))
    for tag, value in zip(
        ("MajorVersion", "MinorVersion", "MajorBuildNumber", "MinorBuildNumber"),
        numbers,
        strict=True,
    ):
        _sub(info, f"{{{ANS}}}{tag}", str(value))
    _sub(info, f"{{{ANS}}}Version", SCHEMA_VERSION)
    return envelope, _sub(envelope, f"{{{envelope_ns}}}Body")


def _serialize(root: ET.Element) -> bytes:
    ET.register_namespace("s", SOAP11)
    ET.register_namespace("a", WSA)
    ET.register_namespace("i", XSI)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>' + text


def _setting(parent: ET.Element, name: str, value: SettingValue) -> None:
    a = f"{{{ANS}}}"
    if isinstance(value, str):
        element = _sub(parent, f"{a}UserSetting", **{f"{{{XSI}}}type": "StringSetting"})
        _sub(element, f"{a}Name", name)
        _sub(element, f"{a}Value", value)
        return
    if all(isinstance(v, WebClientUrl) for v in value):
        element = _sub(
            parent, f"{a}UserSetting", **{f"{{{XSI}}}type": "WebClientUrlCollectionSetting"}
        )
        _sub(element, f"{a}Name", name)
        urls = _sub(element, f"{a}WebClientUrls")
        for web in value:
            assert isinstance(web, WebClientUrl)
            item = _sub(urls, f"{a}WebClientUrl")
            _sub(item, f"{a}AuthenticationMethods", web.authentication_methods)
            _sub(item, f"{a}Url", web.url)
        return
    element = _sub(
        parent, f"{a}UserSetting", **{f"{{{XSI}}}type": "ProtocolConnectionCollectionSetting"}
    )
    _sub(element, f"{a}Name", name)
    connections = _sub(element, f"{a}ProtocolConnections")
    for connection in value:
        assert isinstance(connection, ProtocolConnection)
        item = _sub(connections, f"{a}ProtocolConnection")
        _sub(item, f"{a}EncryptionMethod", connection.encryption)
        _sub(item, f"{a}Hostname", connection.hostname)
        _sub(item, f"{a}Port", str(connection.port))


def response_xml(
    envelope_ns: str,
    context: AppContext,
    answers: Sequence[UserAnswer],
    *,
    error: str | None = None,
) -> bytes:
    """The GetUserSettingsResponse: one UserResponse per answer, or the response's
    InvalidRequest with `error`."""
    a = f"{{{ANS}}}"
    envelope, body = _envelope(envelope_ns, "GetUserSettingsResponse", context)
    message = _sub(body, f"{a}GetUserSettingsResponseMessage")
    response = _sub(message, f"{a}Response")
    _sub(response, f"{a}ErrorCode", "InvalidRequest" if error else "NoError")
    _sub(response, f"{a}ErrorMessage", error or "")
    responses = _sub(response, f"{a}UserResponses")
    for answer in answers:
        user = _sub(responses, f"{a}UserResponse")
        _sub(user, f"{a}ErrorCode", answer.error_code)
        _sub(user, f"{a}ErrorMessage", answer.error_message)
        _sub(user, f"{a}RedirectTarget", **{f"{{{XSI}}}nil": "true"})
        errors = _sub(user, f"{a}UserSettingErrors")
        for name, code, text in answer.setting_errors:
            item = _sub(errors, f"{a}UserSettingError")
            _sub(item, f"{a}ErrorCode", code)
            _sub(item, f"{a}ErrorMessage", text)
            _sub(item, f"{a}SettingName", name)
        settings = _sub(user, f"{a}UserSettings")
        for name, value in answer.settings:
            _setting(settings, name, value)
    return _serialize(envelope)


def fault_xml(envelope_ns: str, fault: SoapFault) -> bytes:
    """A SOAP fault naming what was wrong."""
    envelope = ET.Element(f"{{{envelope_ns}}}Envelope")
    body = _sub(envelope, f"{{{envelope_ns}}}Body")
    element = _sub(body, f"{{{envelope_ns}}}Fault")
    if envelope_ns == SOAP12:
        code = _sub(element, f"{{{envelope_ns}}}Code")
        _sub(code, f"{{{envelope_ns}}}Value", "s:Sender" if fault.client else "s:Receiver")
        reason = _sub(element, f"{{{envelope_ns}}}Reason")
        _sub(reason, f"{{{envelope_ns}}}Text", fault.message, **{"xml:lang": "en-US"})
    else:
        _sub(element, "faultcode", "s:Client" if fault.client else "s:Server")
        _sub(element, "faultstring", fault.message, **{"xml:lang": "en-US"})
    return _serialize(envelope)


# -- the endpoint ------------------------------------------------------------------------


def _lookup(context: AppContext, mailbox: Mailbox, request: UserRequest) -> list[UserAnswer]:
    def exists(address: str) -> bool:
        return someone_has(context, OutlookRequest(email_address=address, legacy_dn=None))

    return [answer_user(context, mailbox, user, request.settings, exists) for user in request.users]


def _xml(body: bytes, status: int = 200, envelope_ns: str = SOAP11) -> Response:
    media = "application/soap+xml" if envelope_ns == SOAP12 else "text/xml"
    return Response(body, status_code=status, media_type=f"{media}; charset=utf-8")


async def autodiscover_svc(request: Request) -> Response:
    context = context_of(request)
    if request.method in ("GET", "HEAD"):
        if not is_tls(request):
            host = await run_in_threadpool(access_name, context.directory, context.server)
            return RedirectResponse(context.https_url(host, PATHS[0]), status_code=302)
        return PlainTextResponse(
            "casarray Autodiscover (SOAP): POST a GetUserSettings request.", status_code=200
        )
    if not is_tls(request) and context.require_tls:
        return PlainTextResponse("Autodiscover needs HTTPS.", status_code=403)
    mailbox = await authenticate_for(request, AUTODISCOVER)
    envelope_ns = SOAP11
    try:
        try:
            body = await read_body(request)
        except AutodiscoverError as exc:
            raise SoapFault(exc.debug) from None
        envelope_ns, parsed = parse_request(body)
    except SoapFault as fault:
        log.info("%s SOAP autodiscover for %s: %s", context.server_name, mailbox.alias, fault)
        return _xml(fault_xml(envelope_ns, fault), 500, envelope_ns)
    error = request_error(parsed)
    if error is not None:
        return _xml(response_xml(envelope_ns, context, [], error=error), 200, envelope_ns)
    try:
        answers = await run_in_threadpool(_lookup, context, mailbox, parsed)
    except Exception as exc:
        log.exception("%s SOAP autodiscover for %s failed", context.server_name, mailbox.alias)
        failure = SoapFault(f"The server failed: {type(exc).__name__}.", client=False)
        return _xml(fault_xml(envelope_ns, failure), 500, envelope_ns)
    log.info(
        "%s SOAP autodiscover for %s: %s",
        context.server_name,
        mailbox.primary_smtp_address,
        ", ".join(f"{u} {a.error_code}" for u, a in zip(parsed.users, answers, strict=True)),
    )
    return _xml(response_xml(envelope_ns, context, answers), 200, envelope_ns)


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The SOAP Autodiscover routes."""
    return [
        CaseInsensitiveRoute(path, autodiscover_svc, methods=["GET", "HEAD", "POST"])
        for path in PATHS
    ]
