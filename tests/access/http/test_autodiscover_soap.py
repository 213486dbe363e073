"""SOAP Autodiscover (`/autodiscover/autodiscover.svc`, [MS-OXWSADISC] GetUserSettings):
the request exactly as exchangelib 5.x builds it, answered as Exchange 2010 SP3 does,
read back with exchangelib's own parser; errors, hostile XML, and exchangelib asking
a real uvicorn server over TLS."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from casarray.access import tls
from casarray.access.http import AppContext, create_app
from casarray.access.http.autodiscover_soap import ANS, SOAP11, SOAP12, cas_version
from casarray.directory import Directory
from tests.access.http import Served, build_org, client

exchangelib = pytest.importorskip("exchangelib")

from exchangelib.autodiscover.protocol import AutodiscoverProtocol  # noqa: E402
from exchangelib.configuration import Configuration  # noqa: E402
from exchangelib.credentials import Credentials  # noqa: E402
from exchangelib.properties import UserResponse  # noqa: E402
from exchangelib.services import GetUserSettings  # noqa: E402
from exchangelib.transport import BASIC  # noqa: E402

PATH = "/autodiscover/autodiscover.svc"
A = f"{{{ANS}}}"
EVERY_SETTING = sorted(UserResponse.SETTINGS_MAP)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    d = build_org(bj, password_hash)
    d.virtual_directories.set(
        "WebServices", "CAS01", external_url="https://bj-cas.lab.net/EWS/Exchange.asmx"
    )
    return d


@pytest.fixture
def cas01(org: Directory) -> Iterator[TestClient]:
    with client(org, "CAS01") as c:
        yield c


def basic(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def exchangelib_request(users: list[str], settings: list[str] = EVERY_SETTING) -> bytes:
    """GetUserSettings as exchangelib 5.x builds it (its own code, no network)."""
    protocol = AutodiscoverProtocol(
        config=Configuration(
            service_endpoint=f"https://autodiscover.lab.net{PATH}",
            credentials=Credentials("alice@lab.net", "x"),
            auth_type=BASIC,
        )
    )
    service = GetUserSettings(protocol=protocol)
    body: bytes = service.wrap(
        content=service.get_payload(
            users=users, settings=[s for s in settings if s in UserResponse.SETTINGS_MAP]
        ),
        api_version=protocol.config.version.api_version,
    )
    return body


def ask(c: TestClient, body: bytes, password: str, login: str = "alice") -> Any:
    return c.post(
        PATH,
        content=body,
        headers={
            "Content-Type": "text/xml; charset=utf-8",
            "X-AnchorMailbox": "alice@lab.net",
            **basic(login, password),
        },
    )


def user_responses(content: bytes) -> list[Any]:
    """The UserResponses, parsed by exchangelib's UserResponse.from_xml."""
    root = ET.fromstring(content)
    message = root.find(f"{{{SOAP11}}}Body/{A}GetUserSettingsResponseMessage")
    assert message is not None
    assert message.findtext(f"{A}Response/{A}ErrorCode") == "NoError"
    elements = message.findall(f"{A}Response/{A}UserResponses/{A}UserResponse")
    return [UserResponse.from_xml(elem=e, account=None) for e in elements]


def test_every_setting_exchangelib_asks_for(
    org: Directory, cas01: TestClient, password: str
) -> None:
    response = ask(cas01, exchangelib_request(["alice@lab.net"]), password)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    [user] = user_responses(response.content)
    user.raise_errors()  # only InvalidSetting / SettingIsNotAvailable, which it accepts
    settings = user.user_settings
    assert user.ews_url == "https://bj-cas.lab.net/EWS/Exchange.asmx"
    assert user.version.api_version == "Exchange2010_SP2"
    assert user.autodiscover_smtp_address == "alice@lab.net"
    assert settings["user_display_name"] == "Alice Wang"
    assert settings["user_dn"].endswith("/cn=Recipients/cn=alice")
    assert settings["user_deployment_id"] == org.organization().guid
    assert settings["internal_mailbox_server"] == "MBX01.lab.net"
    assert settings["internal_rpc_client_server"] == "bj-cas.lab.net"  # DB01's
    assert settings["mailbox_dn"].endswith("/cn=bj-cas.lab.net/cn=Microsoft Private MDB")
    assert settings["internal_ews_url"] == "https://CAS01.lab.net/EWS/Exchange.asmx"
    assert settings["external_ews_url"] == "https://bj-cas.lab.net/EWS/Exchange.asmx"
    assert settings["external_mailbox_server"] == "bj-cas.lab.net"
    assert settings["cas_version"] == "14.03.0123.004"
    assert settings["ews_supported_schemas"].split(", ")[-1] == "Exchange2010_SP2"
    errors = user.user_settings_errors
    assert errors["active_directory_server"][0] == "SettingIsNotAvailable"
    assert errors["internal_oab_url"][0] == "SettingIsNotAvailable"
    assert errors["mapi_http_enabled"][0] == "InvalidSetting"  # Exchange 2013's
    # every setting asked is answered or named in an error, once
    assert set(settings) | set(errors) == {s for s in EVERY_SETTING if not s.endswith(",")} | (
        {"ecp_voicemail_url_fragment,"} & set(errors)
    )
    assert not set(settings) & set(errors)


def test_header_and_collections(cas01: TestClient, password: str) -> None:
    body = exchangelib_request(["alice@lab.net"], ["internal_web_client_urls", "cas_version"])
    response = ask(cas01, body, password)
    root = ET.fromstring(response.content)
    info = root.find(f"{{{SOAP11}}}Header/{A}ServerVersionInfo")
    assert info is not None
    assert [info.findtext(f"{A}{t}") for t in ("MajorVersion", "MinorVersion", "Version")] == [
        "14",
        "3",
        "Exchange2010_SP2",
    ]
    urls = root.findall(f".//{A}UserSetting/{A}WebClientUrls/{A}WebClientUrl/{A}Url")
    assert [u.text for u in urls] == ["https://bj-cas.lab.net/owa/"]


def test_soap_12_envelope(cas01: TestClient, password: str) -> None:
    body = exchangelib_request(["alice@lab.net"], ["user_display_name"]).replace(
        SOAP11.encode(), SOAP12.encode()
    )
    response = ask(cas01, body, password)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/soap+xml")
    assert b"Alice Wang" in response.content


@pytest.mark.parametrize(
    ("user", "says"),
    [
        ("bob@lab.net", "another user's"),
        ("nobody@lab.net", "No mailbox has the address nobody@lab.net"),
    ],
)
def test_invalid_user(cas01: TestClient, password: str, user: str, says: str) -> None:
    response = ask(cas01, exchangelib_request([user]), password)
    assert response.status_code == 200
    [answer] = user_responses(response.content)
    assert answer.error_code == "InvalidUser"
    assert says in answer.error_message
    assert b"Bob Li" not in response.content


def test_no_endpoint_is_not_available(cas01: TestClient, password: str) -> None:
    # carol's site GZ has no Client Access server
    response = ask(cas01, exchangelib_request(["carol@lab.net"]), password, login="carol")
    [answer] = user_responses(response.content)
    assert answer.error_code == "SettingIsNotAvailable"
    assert "DB04" in answer.error_message


def test_unauthenticated_gets_401_as_exchangelib_probes(cas01: TestClient) -> None:
    response = cas01.post(
        PATH,
        content=exchangelib_request(["DUMMY@example.com"], ["auto_discover_smtp_address"]),
        headers={"Content-Type": "text/xml", "X-AnchorMailbox": "DUMMY@example.com"},
    )
    assert response.status_code == 401
    assert "basic" in response.headers["www-authenticate"].lower()


def test_get_and_paths(org: Directory, cas01: TestClient) -> None:
    assert cas01.get("/Autodiscover/Autodiscover.svc").status_code == 200
    assert cas01.head(PATH).status_code == 200
    with client(org, "CAS01", base_url="http://autodiscover.lab.net") as plain:
        redirect = plain.get(PATH)
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://bj-cas.lab.net/autodiscover/autodiscover.svc"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b"<not xml", "well-formed"),
        (b"<Autodiscover/>", "not a SOAP Envelope"),
        (
            f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><GetDomainSettingsRequestMessage '
            f'xmlns="{ANS}"/></s:Body></s:Envelope>'.encode(),
            "GetDomainSettingsRequestMessage isn't supported",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
            + f'<s:Envelope xmlns:s="{SOAP11}"><s:Body>&a;</s:Body></s:Envelope>'.encode(),
            "DTD or entities",
        ),
        (b"<x>" + b"a" * 70_000 + b"</x>", "larger than"),
    ],
)
def test_bad_requests_get_a_fault(cas01: TestClient, password: str, body: bytes, says: str) -> None:
    response = ask(cas01, body, password)
    assert response.status_code == 500
    fault = ET.fromstring(response.content).find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None
    assert fault.findtext("faultcode") == "s:Client"
    assert says in (fault.findtext("faultstring") or "")


def test_no_settings_is_invalid_request(cas01: TestClient, password: str) -> None:
    body = exchangelib_request(["alice@lab.net"], [])
    response = ask(cas01, body, password)
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    assert root.findtext(f".//{A}Response/{A}ErrorCode") == "InvalidRequest"
    assert "no setting" in (root.findtext(f".//{A}Response/{A}ErrorMessage") or "")


def test_cas_version() -> None:
    assert cas_version("14.3.123.4") == "14.03.0123.004"
    assert cas_version("14.1.218") == "14.01.0218.000"


@pytest.mark.parametrize("auth_type", [None, BASIC], ids=["detected", "basic"])
def test_exchangelib_asks_a_real_server(
    org: Directory,
    password: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    auth_type: str | None,
) -> None:
    """exchangelib's AutodiscoverProtocol, over TLS to uvicorn, finds the EWS URL and
    the version: with the scheme it picks from the 401 (NTLM when offered) and with
    Basic."""
    org.mailboxes.set("alice", password=password)  # a password set now has an NT hash
    files, _ = tls.ensure_certificate("CAS01", ["CAS01.lab.net", "127.0.0.1"], home=tmp_path)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(files.certificate))
    app = create_app(AppContext.for_server(org, "CAS01"))
    with Served(app, tls.server_context(files)) as https:
        protocol = AutodiscoverProtocol(
            config=Configuration(
                service_endpoint=f"https://127.0.0.1:{https.port}{PATH}",
                credentials=Credentials("alice@lab.net", password),
                auth_type=auth_type,
            )
        )
        try:
            answer = protocol.get_user_settings(user="alice@lab.net")
        finally:
            protocol.close()
    answer.raise_errors()
    assert answer.ews_url == "https://bj-cas.lab.net/EWS/Exchange.asmx"
    assert answer.version.api_version == "Exchange2010_SP2"
