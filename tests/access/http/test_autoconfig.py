"""Thunderbird autoconfig (clientConfig 1.1): the preferred endpoint as the IMAP and
SMTP host, both URLs, and the answers for unknown, foreign and malformed addresses."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from casarray.access.http import ServicePorts
from casarray.directory import Directory
from tests.access.http import build_org, client

PATHS = ("/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml")


@pytest.fixture
def backend() -> str:
    """The HTTP tests run on SQLite only (the directory tests cover PostgreSQL)."""
    return "sqlite"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    return build_org(bj, password_hash)


@pytest.fixture
def cas01(org: Directory) -> Iterator[TestClient]:
    with client(org, "CAS01", base_url="http://autoconfig.lab.net") as c:
        yield c


def config(c: TestClient, address: str | None, path: str = PATHS[0]) -> ET.Element:
    params = {"emailaddress": address} if address is not None else {}
    response = c.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml; charset=utf-8"
    assert response.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(response.content)


def servers(root: ET.Element) -> list[tuple[str, str, str, str, str, str]]:
    """(element, type, hostname, port, socketType, username+authentication) of each."""
    provider = root.find("emailProvider")
    assert provider is not None
    out = []
    for server in provider:
        if server.tag not in ("incomingServer", "outgoingServer"):
            continue
        out.append(
            (
                server.tag,
                server.get("type", ""),
                server.findtext("hostname", ""),
                server.findtext("port", ""),
                server.findtext("socketType", ""),
                f"{server.findtext('username')} {server.findtext('authentication')}",
            )
        )
    return out


AUTH = "%EMAILADDRESS% password-cleartext"


@pytest.mark.parametrize("path", PATHS)
def test_mailbox_config(cas01: TestClient, path: str) -> None:
    root = config(cas01, "alice@lab.net", path)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "lab.net"
    assert [d.text for d in provider.findall("domain")] == ["lab.net"]
    assert provider.findtext("displayName") == "Lab"
    assert servers(root) == [
        ("incomingServer", "imap", "bj-cas.lab.net", "993", "SSL", AUTH),
        ("incomingServer", "imap", "bj-cas.lab.net", "143", "STARTTLS", AUTH),
        ("outgoingServer", "smtp", "bj-cas.lab.net", "587", "STARTTLS", AUTH),
    ]


def test_mailbox_of_another_site(org: Directory) -> None:
    for server in ("CAS01", "CAS03"):
        with client(org, server, base_url="https://cas.lab.net") as c:
            root = config(c, "Bob@Lab.Net")
        assert {host for _, _, host, *_ in servers(root)} == {"CAS03.lab.net"}


@pytest.mark.parametrize(
    "path", ["/MAIL/Config-v1.1.xml", "/.well-known/AutoConfig/mail/config-v1.1.XML"]
)
def test_path_is_case_insensitive(cas01: TestClient, path: str) -> None:
    assert servers(config(cas01, "alice@lab.net", path))[0][2] == "bj-cas.lab.net"


def test_unknown_or_missing_address_gives_this_site(org: Directory, cas01: TestClient) -> None:
    """Anyone may ask: an address no mailbox has is answered like a mailbox's, with this
    server's access name, so the answer tells nothing about which mailboxes exist."""
    for address in ("nobody@lab.net", None, ""):
        root = config(cas01, address)
        assert {host for _, _, host, *_ in servers(root)} == {"bj-cas.lab.net"}
    with client(org, "CAS03") as c:
        root = config(c, "nobody@lab.net")
    assert {host for _, _, host, *_ in servers(root)} == {"CAS03.lab.net"}


def test_accepted_domains(org: Directory, cas01: TestClient) -> None:
    org.add_accepted_domain("contoso.com")
    root = config(cas01, "someone@CONTOSO.com")
    provider = root.find("emailProvider")
    assert provider is not None and provider.get("id") == "contoso.com"
    assert [d.text for d in provider.findall("domain")] == ["contoso.com", "lab.net"]


@pytest.mark.parametrize(
    ("address", "status"),
    [
        ("not-an-address", 400),
        ("@lab.net", 400),
        ("alice@", 400),
        ("a b@lab.net", 400),
        ("alice@example.org", 404),
    ],
)
def test_refused(cas01: TestClient, address: str, status: int) -> None:
    response = cas01.get(PATHS[0], params={"emailaddress": address})
    assert response.status_code == status
    assert "clientConfig" not in response.text


def test_no_endpoint_503(cas01: TestClient) -> None:
    response = cas01.get(PATHS[1], params={"emailaddress": "carol@lab.net"})
    assert response.status_code == 503
    assert "'DB04'" in response.text


def test_ports_follow_the_context(org: Directory) -> None:
    with client(org, ports=ServicePorts.offset(10_000)) as c:
        ports = [port for _, _, _, port, *_ in servers(config(c, "alice@lab.net"))]
    assert ports == ["10993", "10143", "10587"]


def test_only_get(cas01: TestClient) -> None:
    assert cas01.post(PATHS[0], content=b"x").status_code == 405


def test_odd_local_part(org: Directory) -> None:
    """The local part is not echoed: only the (accepted) domain is."""
    org.add_accepted_domain("x-y.lab.net")
    with client(org) as c:
        response = c.get(PATHS[0], params={"emailaddress": "<x>&@x-y.lab.net"})
    assert response.status_code == 200
    ET.fromstring(response.content)  # well-formed
