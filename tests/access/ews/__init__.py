"""Tests of Exchange Web Services (`access.ews`): transcripts of the sans-IO cores
(`soap`, `ids`), the operations through the ASGI app against real SQLite mailboxes,
and exchangelib (PyPI) against the app served by uvicorn.

What they share: the organization of `tests.access.http.build_org` (alice in DB01,
bob in DB03, carol in DB04), an in-process client and a SOAP request builder."""

from __future__ import annotations

import base64
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from starlette.testclient import TestClient

from casarray.access.ews.soap import NS_M, NS_SOAP, NS_T
from casarray.access.http import AppContext, create_app
from casarray.access.imap.directory_backend import LoginThrottle
from casarray.directory import Directory
from tests.access.http.test_api import PASSWORD

EWS = "/EWS/Exchange.asmx"
NS = {"s": NS_SOAP, "m": NS_M, "t": NS_T}
ALICE = ("alice@lab.net", PASSWORD)  # the JSON API tests' users and password
BOB = ("bob@lab.net", PASSWORD)


def ews_client(d: Directory, user: tuple[str, str], server: str = "CAS01") -> TestClient:
    ctx = AppContext.for_server(d, server, throttle=LoginThrottle(max_failures=50))
    c = TestClient(create_app(ctx), base_url="https://bj-cas.lab.net", follow_redirects=False)
    c.auth = user
    return c


VERSION_HEADER = '<t:RequestServerVersion Version="Exchange2010_SP2"/>'


def envelope(body: str, header: str = VERSION_HEADER) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<s:Envelope xmlns:s="{NS_SOAP}" xmlns:m="{NS_M}" xmlns:t="{NS_T}">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def call(c: TestClient, body: str, **kw: Any) -> Element:
    """POST one operation; the parsed response body's operation response element."""
    r = c.post(EWS, content=envelope(body, **kw), headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    root = SafeET.fromstring(r.content)
    info = root.find("s:Header/t:ServerVersionInfo", NS)
    assert info is not None and info.get("Version") == "Exchange2010_SP2"
    assert (info.get("MajorVersion"), info.get("MinorVersion")) == ("14", "3")
    response = root.find("s:Body", NS)[0]  # type: ignore[index]
    return response


def messages(response: Element) -> list[Element]:
    return list(response.find("m:ResponseMessages", NS))  # type: ignore[arg-type]


def ok(response: Element) -> list[Element]:
    """The response messages, each asserted Success/NoError."""
    out = messages(response)
    for msg in out:
        assert msg.get("ResponseClass") == "Success", SafeET.tostring(msg)
        assert msg.findtext("m:ResponseCode", namespaces=NS) == "NoError"
    return out


def error_of(msg: Element) -> tuple[str, str]:
    assert msg.get("ResponseClass") == "Error"
    return msg.findtext("m:ResponseCode", "", NS), msg.findtext("m:MessageText", "", NS)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
