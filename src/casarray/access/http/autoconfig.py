"""Thunderbird autoconfig: `clientConfig` version 1.1.

`GET /mail/config-v1.1.xml?emailaddress=alice@lab.net` (the URL Thunderbird asks on
`autoconfig.<domain>`) and `GET /.well-known/autoconfig/mail/config-v1.1.xml?...` (on
the domain itself) answer, over HTTP or HTTPS and without authentication, as
Thunderbird expects:

    <clientConfig version="1.1">
      <emailProvider id="lab.net">
        <domain>lab.net</domain> ...           every accepted domain
        <incomingServer type="imap">           the preferred endpoint, 993, SSL
        <incomingServer type="imap">           the preferred endpoint, 143, STARTTLS
        <outgoingServer type="smtp">           the preferred endpoint, 587, STARTTLS
      </emailProvider>
    </clientConfig>

with `%EMAILADDRESS%` as the user name and `password-cleartext` (over TLS) as the
authentication. The host is the mailbox's preferred endpoint (`directory.endpoints`).
Since anyone may ask, an address that no mailbox has gets the same kind of answer,
naming this server's access name (its site's array, else itself), and so does a
request without an address: the response doesn't tell whether a mailbox exists. An
address outside the organization's accepted domains is 404, a malformed one 400, and a
mailbox whose database has no Client Access endpoint 503.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute

from casarray.access.http.context import AppContext, CaseInsensitiveRoute, context_of
from casarray.directory import AmbiguousIdentityError, DirectoryError, NotFoundError
from casarray.directory.endpoints import NoEndpointError, access_name, preferred_endpoint
from casarray.errors import CasarrayError

log = logging.getLogger("casarray.http.autoconfig")

PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")
CONTENT_TYPE = "application/xml; charset=utf-8"


class AutoconfigError(CasarrayError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _server(parent: ET.Element, tag: str, kind: str, host: str, port: int, socket: str) -> None:
    server = ET.SubElement(parent, tag, {"type": kind})
    for name, value in (
        ("hostname", host),
        ("port", str(port)),
        ("socketType", socket),
        ("username", "%EMAILADDRESS%"),
        ("authentication", "password-cleartext"),
    ):
        ET.SubElement(server, name).text = value


def config_xml(
    context: AppContext, host: str, domain: str, domains: Sequence[str], display_name: str
) -> bytes:
    """The clientConfig that sends a client of `domain` to `host`."""
    ports = context.ports
    root = ET.Element("clientConfig", {"version": "1.1"})
    provider = ET.SubElement(root, "emailProvider", {"id": domain})
    for name in [domain, *(d for d in domains if d != domain)]:
        ET.SubElement(provider, "domain").text = name
    ET.SubElement(provider, "displayName").text = display_name
    ET.SubElement(provider, "displayShortName").text = display_name
    _server(provider, "incomingServer", "imap", host, ports.imaps, "SSL")
    _server(provider, "incomingServer", "imap", host, ports.imap, "STARTTLS")
    _server(provider, "outgoingServer", "smtp", host, ports.submission, "STARTTLS")
    ET.indent(root, space="  ")
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + text


def lookup(context: AppContext, address: str | None) -> bytes:
    """The configuration for `address` (blocking: reads the directory)."""
    directory = context.directory
    org = directory.organization()
    if not address:
        host = access_name(directory, context.server)
        return config_xml(context, host, org.default_domain, org.accepted_domains, org.name)
    local, at, domain = address.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise AutoconfigError(400, f"'{address}' is not an e-mail address.")
    if domain not in org.accepted_domains:
        raise AutoconfigError(404, f"{domain} is not a domain of this organization.")
    try:
        mailbox = directory.mailboxes.one(address)
        if mailbox.primary_smtp_address.lower() != address.lower():
            raise NotFoundError("mailbox", address)
    except (NotFoundError, AmbiguousIdentityError):
        host = access_name(directory, context.server)
    else:
        try:
            host = preferred_endpoint(directory, mailbox).fqdn
        except NoEndpointError as exc:
            raise AutoconfigError(503, exc.message) from None
    return config_xml(context, host, domain, org.accepted_domains, org.name)


async def autoconfig(request: Request) -> Response:
    context = context_of(request)
    address = request.query_params.get("emailaddress", "").strip() or None
    try:
        body = await run_in_threadpool(lookup, context, address)
    except AutoconfigError as exc:
        log.info("%s autoconfig for %r: %s", context.server_name, address, exc.message)
        return PlainTextResponse(exc.message + "\n", status_code=exc.status)
    except DirectoryError as exc:
        log.warning("%s autoconfig for %r: %s", context.server_name, address, exc.message)
        return PlainTextResponse(exc.message + "\n", status_code=503)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-cache"})


def routes(context: AppContext) -> Sequence[BaseRoute]:
    """The autoconfig routes."""
    return [CaseInsensitiveRoute(path, autoconfig, methods=["GET"]) for path in PATHS]
