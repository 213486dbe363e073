"""Test-WebServicesConnectivity's check: a real EWS client's calls against one Client
Access server's EWS URL (its EWS virtual directory's InternalUrl), as the client on
this machine reaches it (`client.network`: the lab's DNS, port offset and CA).

Two scenarios, as Exchange's cmdlet runs them: GetFolder of the inbox, then FindItem
of a page (10 items, IdOnly) of it. Each is a `Scenario` with its Result (Success,
Failure, or Skipped after a failure), its latency in milliseconds and what went wrong:
a name that doesn't resolve, a refused connection, a certificate not trusted for the
name, /EWS answering 404 (no EWS there) or 401 (the credentials, or Basic turned off
on the virtual directory), or an EWS error in the response.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import time
from dataclasses import dataclass, replace
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET

from casarray.client.errors import ClientError
from casarray.client.network import Network

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS_M = "http://schemas.microsoft.com/exchange/services/2006/messages"
NS_T = "http://schemas.microsoft.com/exchange/services/2006/types"
SUCCESS, FAILURE, SKIPPED = "Success", "Failure", "Skipped"
GET_FOLDER, FIND_ITEM = "GetFolder", "FindItem"
PAGE = 10
TIMEOUT = 15.0
MAX_RESPONSE = 4 * 1024 * 1024


@dataclass(frozen=True)
class Scenario:
    scenario: str
    result: str
    latency: float | None
    endpoint: str
    error: str = ""
    detail: str = ""


class _Failed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _LiteralResolver:
    """The network's resolver, except that an IP address is itself."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def addresses(self, name: str) -> list[str]:
        try:
            return [str(ipaddress.ip_address(name))]
        except ValueError:
            return list(self.inner.addresses(name))  # type: ignore[attr-defined]

    def describe(self) -> str:
        return str(self.inner.describe())  # type: ignore[attr-defined]


def _envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{NS_SOAP}" xmlns:m="{NS_M}" xmlns:t="{NS_T}">'
        '<s:Header><t:RequestServerVersion Version="Exchange2010_SP2"/></s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


GET_FOLDER_BODY = (
    "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>"
    '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>'
)
FIND_ITEM_BODY = (
    '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
    f'</m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="{PAGE}" Offset="0" '
    'BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
    "</m:ParentFolderIds></m:FindItem>"
)


def _call(network: Network, url: str, login: str, password: str, body: str) -> Element:
    """POST one operation; its first response message, or _Failed saying why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme != "https":
        raise _Failed(f"the EWS URL {url} is not https")
    port = (parts.port or 443) + network.port_offset
    try:
        connection = network.connect(host, port, timeout=TIMEOUT)
    except ClientError as exc:
        raise _Failed(exc.message) from None
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    conn.sock = connection.sock
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    try:
        conn.request(
            "POST",
            parts.path or "/",
            body=_envelope(body),
            headers={
                "Host": parts.netloc,
                "Content-Type": "text/xml; charset=utf-8",
                "Authorization": f"Basic {token}",
                "X-AnchorMailbox": login,
            },
        )
        response = conn.getresponse()
        data = response.read(MAX_RESPONSE)
    except (OSError, http.client.HTTPException) as exc:
        raise _Failed(f"{url}: the connection failed: {exc}") from None
    finally:
        conn.close()
    if response.status == 404:
        raise _Failed(f"{url} answered 404 Not Found: no EWS virtual directory there")
    if response.status == 401:
        offered = ", ".join(
            v.split()[0] for v in response.headers.get_all("WWW-Authenticate") or []
        )
        raise _Failed(
            f"{url} answered 401 Unauthorized (it offers {offered or 'nothing'}): the "
            "credentials were refused, or Basic authentication is off on the virtual "
            "directory (Get-WebServicesVirtualDirectory)"
        )
    if response.status != 200:
        raise _Failed(f"{url} answered HTTP {response.status} {response.reason}")
    try:
        root = SafeET.fromstring(data)
    except SafeET.ParseError as exc:
        raise _Failed(f"{url} answered something that is not XML: {exc}") from None
    msg = root.find(f"{{{NS_SOAP}}}Body/*/{{{NS_M}}}ResponseMessages/*")
    if msg is None:
        raise _Failed(f"{url} answered no EWS response message")
    if msg.get("ResponseClass") != "Success":
        code = msg.findtext(f"{{{NS_M}}}ResponseCode") or "?"
        text = msg.findtext(f"{{{NS_M}}}MessageText") or ""
        raise _Failed(f"{code}: {text}".rstrip(": "))
    return msg


def ews_scenarios(network: Network, url: str, login: str, password: str) -> list[Scenario]:
    """GetFolder(inbox), then FindItem of a page of it, against `url`."""
    network = replace(network, resolver=_LiteralResolver(network.resolver))  # type: ignore[arg-type]
    out: list[Scenario] = []
    for scenario, body in ((GET_FOLDER, GET_FOLDER_BODY), (FIND_ITEM, FIND_ITEM_BODY)):
        if out and out[-1].result != SUCCESS:
            out.append(Scenario(scenario, SKIPPED, None, url))
            continue
        started = time.perf_counter()
        try:
            msg = _call(network, url, login, password, body)
        except _Failed as exc:
            ms = round((time.perf_counter() - started) * 1000, 1)
            out.append(Scenario(scenario, FAILURE, ms, url, error=exc.message))
            continue
        ms = round((time.perf_counter() - started) * 1000, 1)
        if scenario == GET_FOLDER:
            total = msg.findtext(f"{{{NS_M}}}Folders/{{{NS_T}}}Folder/{{{NS_T}}}TotalCount")
            detail = f"Inbox: {total} items" if total is not None else ""
        else:
            items = msg.findall(f"{{{NS_M}}}RootFolder/{{{NS_T}}}Items/*")
            detail = f"{len(items)} items"
        out.append(Scenario(scenario, SUCCESS, ms, url, detail=detail))
    return out
