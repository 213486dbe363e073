"""Autodiscover as Outlook does it: from an e-mail address to the account's settings
(MS-OXDSCLI, the plain-old-XML protocol).

Where it asks, in order (the domain is the address's):

1. the SRV records `_autodiscover._tcp.<domain>`: https://<target>:<port>/autodiscover/
   autodiscover.xml for each target;
2. https://autodiscover.<domain>/autodiscover/autodiscover.xml.

Each name is looked up through the client's DNS, the TLS certificate verified against
its trusted roots for that name (`network`). A URL that can't be reached (no address,
refused, bad certificate, an HTTP error) is noted and the next one tried; a service
that answers ends the search: settings, an Autodiscover error (500 address not found,
600 invalid request, 601 schema not supported, ...) or 401 for a wrong password. A
`redirectAddr` answer starts again with the new address, a `redirectUrl` one posts to
the new (HTTPS) URL, ten hops at most.

The request is Outlook's 2006 schema with HTTP Basic (the address and password); the
answer is parsed with defusedxml into an `AutodiscoverResult`: the EXCH protocol's
Server (the name Outlook connects to) and ServerDN, the IMAP and SMTP settings, the
OWA URL. `parse_response` and `interpret` do no I/O.
"""

from __future__ import annotations

import base64
import http.client
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from casarray import __version__
from casarray.client.errors import (
    AuthenticationFailed,
    AutodiscoverFailed,
    ClientError,
    LookupFailed,
)
from casarray.client.network import Network

REQUEST_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
RESPONSE_SCHEMA = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
PATH = "/autodiscover/autodiscover.xml"
HTTPS_PORT = 443
MAX_RESPONSE = 1024 * 1024
MAX_HOPS = 10
USER_AGENT = f"casarray-client/{__version__} (Outlook-compatible Autodiscover)"


class AutodiscoverError(ClientError):
    """The service answered with an Error element (ErrorCode, Message, DebugData)."""

    def __init__(self, code: int, message: str, debug: str = "") -> None:
        text = f"Autodiscover error {code} ({message})"
        super().__init__(f"{text}: {debug}" if debug else text)
        self.code = code
        self.error_message = message
        self.debug = debug


class InvalidResponse(ClientError):
    """What came back is not an Autodiscover response."""


@dataclass(frozen=True)
class MailProtocol:
    """An IMAP or SMTP Protocol block."""

    server: str
    port: int
    encryption: str  # "SSL" (implicit TLS), "TLS" (STARTTLS) or "None"
    login_name: str = ""


@dataclass(frozen=True)
class Settings:
    """An account's settings (Action "settings")."""

    display_name: str
    legacy_dn: str
    address: str  # AutoDiscoverSMTPAddress
    deployment_id: str
    server: str  # EXCH Server: the name Outlook connects to
    server_dn: str
    mdb_dn: str
    server_version: str
    imap: MailProtocol | None
    smtp: MailProtocol | None
    owa_url: str | None


@dataclass(frozen=True)
class Redirect:
    """Action redirectAddr (another address to discover) or redirectUrl (another
    Autodiscover URL to ask)."""

    kind: Literal["address", "url"]
    target: str


@dataclass(frozen=True)
class Attempt:
    """One URL asked, how it was found, and what happened."""

    url: str
    found_by: str
    outcome: str
    seconds: float


@dataclass(frozen=True)
class AutodiscoverResult:
    """The settings, the URL that gave them and how it was found, and every attempt."""

    settings: Settings
    url: str
    found_by: str
    attempts: tuple[Attempt, ...] = field(default=())

    @property
    def server(self) -> str:
        return self.settings.server

    @property
    def server_dn(self) -> str:
        return self.settings.server_dn


# -- the request and the response (no I/O) ------------------------------------------


def request_body(address: str) -> bytes:
    """Outlook's request for `address`."""
    root = ET.Element("Autodiscover", xmlns=REQUEST_NS)
    request = ET.SubElement(root, "Request")
    ET.SubElement(request, "EMailAddress").text = address
    ET.SubElement(request, "AcceptableResponseSchema").text = RESPONSE_SCHEMA
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="utf-8")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _child(parent: ET.Element | None, name: str) -> ET.Element | None:
    if parent is None:
        return None
    return next((c for c in parent if _local(c.tag) == name), None)


def _text(parent: ET.Element | None, name: str) -> str:
    element = _child(parent, name)
    return (element.text or "").strip() if element is not None else ""


def _protocol(block: ET.Element) -> MailProtocol:
    kind = _text(block, "Type")
    server = _text(block, "Server")
    port_text = _text(block, "Port")
    if not server or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidResponse(f"the {kind} protocol has no valid Server and Port")
    encryption = _text(block, "Encryption")
    if not encryption:
        encryption = "SSL" if _text(block, "SSL").lower() != "off" else "None"
    return MailProtocol(server, int(port_text), encryption, _text(block, "LoginName"))


def parse_response(body: bytes) -> Settings | Redirect:
    """The settings or redirect in an Autodiscover response body; AutodiscoverError
    for an Error element, InvalidResponse for anything else."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise InvalidResponse("the response declares a DTD or entities") from None
    except (ET.ParseError, ValueError) as exc:
        raise InvalidResponse(f"the response is not well-formed XML: {exc}") from None
    if _local(root.tag) != "Autodiscover":
        raise InvalidResponse(f"the response's root element is {_local(root.tag)}")
    response = _child(root, "Response")
    if response is None:
        raise InvalidResponse("the response has no Response element")
    error = _child(response, "Error")
    if error is not None:
        code = _text(error, "ErrorCode")
        if not code.isdigit():
            raise InvalidResponse(f"the response's ErrorCode '{code}' is not a number")
        raise AutodiscoverError(int(code), _text(error, "Message"), _text(error, "DebugData"))
    account = _child(response, "Account")
    if account is None:
        raise InvalidResponse("the response has neither Account nor Error")
    action = _text(account, "Action")
    if action == "redirectAddr":
        target = _text(account, "RedirectAddr")
        if "@" not in target:
            raise InvalidResponse(f"redirectAddr to '{target}', which is not an address")
        return Redirect("address", target)
    if action == "redirectUrl":
        target = _text(account, "RedirectUrl")
        if urlsplit(target).scheme != "https":
            raise InvalidResponse(f"redirectUrl to '{target}', which is not an HTTPS URL")
        return Redirect("url", target)
    if action != "settings":
        raise InvalidResponse(f"the Account's Action is '{action}'")
    blocks = {_text(b, "Type"): b for b in account if _local(b.tag) == "Protocol"}
    exch = blocks.get("EXCH")
    if exch is None or not _text(exch, "Server"):
        raise InvalidResponse("the settings have no EXCH protocol with a Server")
    web = blocks.get("WEB")
    owa = None
    if web is not None:
        for where in ("Internal", "External"):
            owa = owa or _text(_child(web, where), "OWAUrl") or None
    user = _child(response, "User")
    return Settings(
        display_name=_text(user, "DisplayName"),
        legacy_dn=_text(user, "LegacyDN"),
        address=_text(user, "AutoDiscoverSMTPAddress"),
        deployment_id=_text(user, "DeploymentId"),
        server=_text(exch, "Server"),
        server_dn=_text(exch, "ServerDN"),
        mdb_dn=_text(exch, "MdbDN"),
        server_version=_text(exch, "ServerVersion"),
        imap=_protocol(blocks["IMAP"]) if "IMAP" in blocks else None,
        smtp=_protocol(blocks["SMTP"]) if "SMTP" in blocks else None,
        owa_url=owa,
    )


def interpret(status: int, body: bytes) -> Settings | Redirect:
    """An HTTP answer to the POST: 200 is parsed (`parse_response`); 401 raises
    AuthenticationFailed; anything else InvalidResponse naming the status."""
    if status == 401:
        raise AuthenticationFailed("the Autodiscover service refused the address and password")
    if status != 200:
        reason = http.client.responses.get(status, "")
        raise InvalidResponse(f"HTTP {status} {reason}".rstrip())
    return parse_response(body)


# -- asking ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    url: str
    found_by: str


def candidates(domain: str, network: Network) -> list[Candidate]:
    """The URLs to ask for `domain`, in order (module doc), each once. The SRV
    lookup's failure is not fatal: autodiscover.<domain> is asked next."""
    found: list[Candidate] = []
    srv_name = f"_autodiscover._tcp.{domain}"
    try:
        targets = network.resolver.srv(srv_name)
    except LookupFailed:
        targets = []
    for target in targets:
        found.append(
            Candidate(_url(target.host, target.port + network.port_offset), f"SRV {srv_name}")
        )
    fallback = _url(f"autodiscover.{domain}", HTTPS_PORT + network.port_offset)
    if all(c.url != fallback for c in found):  # an SRV record naming it: asked once
        found.append(Candidate(fallback, f"autodiscover.{domain}"))
    return found


def _url(host: str, port: int) -> str:
    return f"https://{host}{'' if port == HTTPS_PORT else f':{port}'}{PATH}"


def post(
    url: str, address: str, password: str, network: Network, *, timeout: float = 10
) -> tuple[int, bytes]:
    """POST Outlook's request for `address` to `url` (HTTPS only); (status, body)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidResponse(f"'{url}' is not an HTTPS URL")
    port = parts.port or HTTPS_PORT
    connection = network.connect(parts.hostname, port, timeout=timeout)
    client = http.client.HTTPSConnection(parts.hostname, port, timeout=timeout)
    client.sock = connection.sock  # connected through the client's DNS, verified
    credentials = base64.b64encode(f"{address}:{password}".encode()).decode("ascii")
    try:
        client.request(
            "POST",
            parts.path or PATH,
            body=request_body(address),
            headers={
                "Content-Type": "text/xml; charset=utf-8",
                "Authorization": f"Basic {credentials}",
                "User-Agent": USER_AGENT,
            },
        )
        response = client.getresponse()
        body = response.read(MAX_RESPONSE + 1)
        if len(body) > MAX_RESPONSE:
            raise InvalidResponse(f"the response is larger than {MAX_RESPONSE // 1024} KiB")
        return response.status, body
    except (OSError, http.client.HTTPException) as exc:
        raise InvalidResponse(f"the HTTPS exchange failed: {exc or type(exc).__name__}") from None
    finally:
        client.close()


def autodiscover(
    address: str, password: str, *, network: Network, timeout: float = 10
) -> AutodiscoverResult:
    """The settings of `address` (module doc). AuthenticationFailed for a wrong
    password, AutodiscoverError for an error the service answered, AutodiscoverFailed
    when no URL answered (its message and `attempts` say why, URL by URL)."""
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ClientError(f"'{address}' is not an e-mail address")
    attempts: list[Attempt] = []
    wanted = address
    queue = candidates(address.rpartition("@")[2], network)
    hops = 0
    while queue:
        candidate = queue.pop(0)
        started = time.perf_counter()

        def note(outcome: str, candidate: Candidate = candidate, started: float = started) -> None:
            attempts.append(
                Attempt(candidate.url, candidate.found_by, outcome, time.perf_counter() - started)
            )

        try:
            status, body = post(candidate.url, wanted, password, network, timeout=timeout)
            answer = interpret(status, body)
        except (AuthenticationFailed, AutodiscoverError) as exc:
            note(exc.message)
            raise
        except ClientError as exc:
            note(exc.message)
            continue
        if isinstance(answer, Redirect):
            hops += 1
            note(f"redirect{'Addr' if answer.kind == 'address' else 'Url'} to {answer.target}")
            if hops > MAX_HOPS:
                break
            if answer.kind == "address":
                wanted = answer.target
                queue = candidates(wanted.rpartition("@")[2], network)
            else:
                queue = [Candidate(answer.target, f"redirectUrl from {candidate.url}")]
            continue
        note(f"settings: Server {answer.server}")
        return AutodiscoverResult(answer, candidate.url, candidate.found_by, tuple(attempts))
    tried = "; ".join(f"{a.url} ({a.found_by}): {a.outcome}" for a in attempts)
    if hops > MAX_HOPS:
        raise AutodiscoverFailed(
            f"Autodiscover for {address} was redirected more than {MAX_HOPS} times: {tried}",
            tuple(attempts),
        )
    raise AutodiscoverFailed(
        f"no Autodiscover service answered for {address}: {tried}", tuple(attempts)
    )
