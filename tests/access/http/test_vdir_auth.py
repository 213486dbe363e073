"""The virtual directories' authentication settings on the running service: what
`Set-WebServicesVirtualDirectory` / `Set-AutodiscoverVirtualDirectory` turn off is
refused on /EWS and /Autodiscover of that server (401 offering the rest), followed
without a restart, and other servers keep theirs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import requests
from requests_ntlm import HttpNtlmAuth

from casarray.access.http import AppContext, create_app
from casarray.directory import Directory
from tests.access.http import Served, build_org
from tests.conftest import PASSWORD
from tests.shell.cmdlet_shell import Shell

EWS = "/EWS/Exchange.asmx"
POX = "/Autodiscover/Autodiscover.xml"
SVC = "/autodiscover/autodiscover.svc"
POX_REQUEST = (
    '<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns='
    '"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
    "<Request><EMailAddress>alice@lab.net</EMailAddress><AcceptableResponseSchema>"
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
    "</AcceptableResponseSchema></Request></Autodiscover>"
)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    build_org(bj, password_hash)
    bj.mailboxes.set("alice", password=PASSWORD)  # an NT hash, for NTLM
    return bj


@pytest.fixture
def shell(directory_url: str, org: Directory) -> Iterator[Shell]:
    sh = Shell(directory_url)
    yield sh
    sh.close()


def serve(org: Directory, server: str) -> Served:
    return Served(create_app(AppContext.for_server(org, server, require_tls=False)), None)


@pytest.fixture
def cas01(org: Directory) -> Iterator[Served]:
    with serve(org, "CAS01") as served:
        yield served


def url(served: Served, path: str) -> str:
    return f"http://127.0.0.1:{served.port}{path}"


def offers(answer: httpx.Response) -> list[str]:
    return answer.headers.get_list("www-authenticate")


def ntlm_get(served: Served, path: str) -> int:
    with requests.Session() as session:
        return session.get(url(served, path), auth=HttpNtlmAuth("LAB\\alice", PASSWORD)).status_code


def test_basic_off_on_ews(shell: Shell, org: Directory, cas01: Served) -> None:
    basic = ("alice@lab.net", PASSWORD)
    assert httpx.get(url(cas01, EWS), auth=basic).status_code == 200
    shell.ok(
        "Set-WebServicesVirtualDirectory 'CAS01\\EWS (Default Web Site)' "
        "-BasicAuthentication $false"
    )
    refused = httpx.get(url(cas01, EWS), auth=basic)
    assert refused.status_code == 401
    assert offers(refused) == ["Negotiate", "NTLM"]
    assert offers(httpx.get(url(cas01, EWS))) == ["Negotiate", "NTLM"]
    assert ntlm_get(cas01, EWS) == 200  # NTLM still works
    assert httpx.get(url(cas01, "/EWS/Services.wsdl"), auth=basic).status_code == 401
    # Autodiscover is its own virtual directory: Basic still works there.
    pox = httpx.post(url(cas01, POX), content=POX_REQUEST, auth=basic)
    assert pox.status_code == 200 and b"EwsUrl" in pox.content
    # Another server of the array keeps its own settings.
    with serve(org, "CAS02") as cas02:
        assert httpx.get(url(cas02, EWS), auth=basic).status_code == 200
    # Turned back on: followed at once.
    shell.ok("Set-WebServicesVirtualDirectory CAS01 -BasicAuthentication $true")
    assert httpx.get(url(cas01, EWS), auth=basic).status_code == 200


def test_windows_off_on_ews(shell: Shell, cas01: Served) -> None:
    shell.ok("Set-WebServicesVirtualDirectory CAS01 -WindowsAuthentication $false")
    assert offers(httpx.get(url(cas01, EWS))) == ['Basic realm="CAS01.lab.net"']
    assert ntlm_get(cas01, EWS) == 401
    assert httpx.get(url(cas01, EWS), auth=("alice", PASSWORD)).status_code == 200


def test_basic_off_on_autodiscover(shell: Shell, cas01: Served) -> None:
    basic = ("alice@lab.net", PASSWORD)
    shell.ok("Set-AutodiscoverVirtualDirectory CAS01 -BasicAuthentication $false")
    for path in (POX, SVC):
        refused = httpx.post(url(cas01, path), content=POX_REQUEST, auth=basic)
        assert refused.status_code == 401, path
        assert offers(refused) == ["Negotiate", "NTLM"]
    assert httpx.get(url(cas01, EWS), auth=basic).status_code == 200
    with requests.Session() as session:
        answer = session.post(
            url(cas01, POX),
            data=POX_REQUEST,
            headers={"Content-Type": "text/xml"},
            auth=HttpNtlmAuth("LAB\\alice", PASSWORD),
        )
    assert answer.status_code == 200 and b"EwsUrl" in answer.content
