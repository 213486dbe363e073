"""Autodiscover (Outlook's POX protocol): the settings response as Exchange 2010 sends
it, every error code, authentication, hostile XML, the HTTP redirect method, and one
real uvicorn server asked by curl."""

from __future__ import annotations

import base64
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from casarray.access import tls
from casarray.access.http import AppContext, ServicePorts, create_app
from casarray.access.http.autodiscover import (
    OUTLOOK_REQUEST_NS,
    OUTLOOK_RESPONSE_NS,
    RESPONSE_NS,
)
from casarray.access.http.context import parse_basic
from casarray.directory import Directory
from tests.access.http import Served, build_org, client

PATH = "/autodiscover/autodiscover.xml"
MOBILE_RESPONSE_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
)
SERVERS = "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Servers"
O = f"{{{OUTLOOK_RESPONSE_NS}}}"  # noqa: E741 - the inner namespace, for find()
R = f"{{{RESPONSE_NS}}}"

OFFERS = ["Negotiate", "NTLM", 'Basic realm="CAS01.lab.net"']


@pytest.fixture
def backend() -> str:
    """The HTTP tests run on SQLite only (the directory tests cover PostgreSQL)."""
    return "sqlite"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Directory:
    return build_org(bj, password_hash)


@pytest.fixture
def cas01(org: Directory) -> Iterator[TestClient]:
    with client(org, "CAS01") as c:
        yield c


def basic(login: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def outlook_request(
    address: str | None = "alice@lab.net",
    *,
    legacy_dn: str | None = None,
    schema: str = OUTLOOK_RESPONSE_NS,
    namespace: str = OUTLOOK_REQUEST_NS,
) -> bytes:
    """A request as Outlook 2010 sends it."""
    inner = ""
    if address is not None:
        inner += f"\n    <EMailAddress>{address}</EMailAddress>"
    if legacy_dn is not None:
        inner += f"\n    <LegacyDN>{legacy_dn}</LegacyDN>"
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{namespace}">\n  <Request>{inner}\n'
        f"    <AcceptableResponseSchema>{schema}</AcceptableResponseSchema>\n"
        f"  </Request>\n</Autodiscover>\n"
    ).encode()


def post(
    c: TestClient,
    body: bytes,
    *,
    login: str = "alice@lab.net",
    password: str,
    path: str = PATH,
) -> tuple[int, ET.Element | None, str]:
    response = c.post(
        path, content=body, headers={"Content-Type": "text/xml", **basic(login, password)}
    )
    root = None
    if response.headers.get("content-type", "").startswith("text/xml"):
        root = ET.fromstring(response.content)
    return response.status_code, root, response.text


def error_of(root: ET.Element, *, provider: bool) -> tuple[str, str, str]:
    """(ErrorCode, Message, DebugData) of an error response; checks its namespaces."""
    assert root.tag == f"{R}Autodiscover"
    ns = O if provider else R
    response = root.find(f"{ns}Response")
    assert response is not None, ET.tostring(root)
    error = response.find(f"{ns}Error")
    assert error is not None
    assert error.get("Time") and error.get("Id", "").isdigit()
    return (
        error.findtext(f"{ns}ErrorCode", ""),
        error.findtext(f"{ns}Message", ""),
        error.findtext(f"{ns}DebugData", ""),
    )


def protocols(root: ET.Element) -> dict[str, ET.Element]:
    account = root.find(f"{O}Response/{O}Account")
    assert account is not None
    found = {p.findtext(f"{O}Type", ""): p for p in account.findall(f"{O}Protocol")}
    return found


# -- the settings response -------------------------------------------------------------


def test_settings_response(org: Directory, cas01: TestClient, password: str) -> None:
    status, root, text = post(cas01, outlook_request(), password=password)
    assert status == 200, text
    assert root is not None
    assert root.tag == f"{R}Autodiscover"
    response = root.find(f"{O}Response")
    assert response is not None
    # the namespaces as written: outer default namespace, inner default namespace
    assert f'<Autodiscover xmlns="{RESPONSE_NS}">' in text
    assert f'<Response xmlns="{OUTLOOK_RESPONSE_NS}">' in text
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')

    user = response.find(f"{O}User")
    assert user is not None
    assert [child.tag.removeprefix(O) for child in user] == [
        "DisplayName",
        "LegacyDN",
        "AutoDiscoverSMTPAddress",
        "DeploymentId",
    ]
    assert user.findtext(f"{O}DisplayName") == "Alice Wang"
    assert user.findtext(f"{O}LegacyDN") == (
        "/o=Lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=alice"
    )
    assert user.findtext(f"{O}AutoDiscoverSMTPAddress") == "alice@lab.net"
    assert user.findtext(f"{O}DeploymentId") == org.organization().guid

    account = response.find(f"{O}Account")
    assert account is not None
    assert account.findtext(f"{O}AccountType") == "email"
    assert account.findtext(f"{O}Action") == "settings"
    found = protocols(root)
    assert list(found) == ["EXCH", "WEB", "IMAP", "SMTP"]

    exch = found["EXCH"]
    assert exch.findtext(f"{O}Server") == "bj-cas.lab.net"
    assert exch.findtext(f"{O}ServerDN") == f"{SERVERS}/cn=bj-cas.lab.net"
    assert exch.findtext(f"{O}MdbDN") == (f"{SERVERS}/cn=bj-cas.lab.net/cn=Microsoft Private MDB")
    assert exch.findtext(f"{O}ServerVersion") == "7383807B"  # 14.3.123
    # EWS: the internal URL of the answering server's EWS virtual directory (BJ)
    for tag in ("ASUrl", "EwsUrl", "OOFUrl"):
        assert exch.findtext(f"{O}{tag}") == "https://CAS01.lab.net/EWS/Exchange.asmx"
    assert exch.find(f"{O}OABUrl") is None  # no offline address book

    owa = found["WEB"].find(f"{O}Internal/{O}OWAUrl")
    assert owa is not None and owa.text == "https://bj-cas.lab.net/owa/"
    assert owa.get("AuthenticationMethod") == "Basic, Fba"
    imap = found["IMAP"]
    assert imap.findtext(f"{O}Server") == "bj-cas.lab.net"
    assert imap.findtext(f"{O}Port") == "993"
    assert imap.findtext(f"{O}SSL") == "on"
    assert imap.findtext(f"{O}LoginName") == "alice@lab.net"
    smtp = found["SMTP"]
    assert smtp.findtext(f"{O}Server") == "bj-cas.lab.net"
    assert smtp.findtext(f"{O}Port") == "587"
    assert smtp.findtext(f"{O}Encryption") == "TLS"


def test_content_type(cas01: TestClient, password: str) -> None:
    response = cas01.post(PATH, content=outlook_request(), headers=basic("alice", password))
    assert response.headers["content-type"] == "text/xml; charset=utf-8"


@pytest.mark.parametrize(
    "path",
    [
        "/Autodiscover/Autodiscover.xml",
        "/AUTODISCOVER/AUTODISCOVER.XML",
        "/autodiscover/AutoDiscover.xml",
    ],
)
def test_path_is_case_insensitive(cas01: TestClient, password: str, path: str) -> None:
    status, root, _ = post(cas01, outlook_request(), password=password, path=path)
    assert status == 200 and root is not None
    assert protocols(root)["EXCH"].findtext(f"{O}Server") == "bj-cas.lab.net"


def test_legacy_dn_request(org: Directory, cas01: TestClient, password: str) -> None:
    legacy_dn = org.mailboxes.one("alice").exchange_legacy_dn
    status, root, _ = post(
        cas01, outlook_request(None, legacy_dn=legacy_dn.upper()), password=password
    )
    assert status == 200 and root is not None
    user = root.find(f"{O}Response/{O}User")
    assert user is not None and user.findtext(f"{O}AutoDiscoverSMTPAddress") == "alice@lab.net"


def test_address_in_any_case(cas01: TestClient, password: str) -> None:
    status, root, _ = post(cas01, outlook_request("ALICE@Lab.NET"), password=password)
    assert status == 200 and root is not None and root.find(f"{O}Response/{O}User") is not None


def test_another_site_any_member_answers_the_same(org: Directory, password: str) -> None:
    """bob's database is in SH: every Client Access server, of either site, sends him
    to CAS03 (stateless: the answer comes from the directory alone)."""
    answers = set()
    for server in ("CAS01", "CAS02", "CAS03"):
        with client(org, server) as c:
            status, root, text = post(
                c, outlook_request("bob@lab.net"), login="bob", password=password
            )
        assert status == 200, text
        assert root is not None
        exch = protocols(root)["EXCH"]
        answers.add((exch.findtext(f"{O}Server"), exch.findtext(f"{O}ServerDN")))
    assert answers == {("CAS03.lab.net", f"{SERVERS}/cn=CAS03")}
    # the administrator creates the SH array and points DB03 at it: the next request
    org.arrays.new("sh-cas.lab.net", "SH")
    org.databases.set("DB03", rpc_client_access_server="sh-cas.lab.net")
    with client(org, "CAS02") as c:
        _, root, _ = post(c, outlook_request("bob@lab.net"), login="bob", password=password)
    assert root is not None
    assert protocols(root)["EXCH"].findtext(f"{O}Server") == "sh-cas.lab.net"


def test_ports_follow_the_context(org: Directory, password: str) -> None:
    with client(org, ports=ServicePorts.offset(10_000)) as c:
        _, root, _ = post(c, outlook_request(), password=password)
    assert root is not None
    found = protocols(root)
    assert found["IMAP"].findtext(f"{O}Port") == "10993"
    assert found["SMTP"].findtext(f"{O}Port") == "10587"
    owa = found["WEB"].find(f"{O}Internal/{O}OWAUrl")
    assert owa is not None and owa.text == "https://bj-cas.lab.net:10443/owa/"


# -- authentication --------------------------------------------------------------------


def test_no_credentials(cas01: TestClient) -> None:
    response = cas01.post(PATH, content=outlook_request())
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == OFFERS  # Windows auth, then Basic


@pytest.mark.parametrize(
    "headers",
    [
        basic("alice@lab.net", "wrong"),
        basic("nobody@lab.net", "P@ssw0rd-lab"),
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Negotiate YII="},
    ],
)
def test_bad_credentials(cas01: TestClient, headers: dict[str, str]) -> None:
    response = cas01.post(PATH, content=outlook_request(), headers=headers)
    assert response.status_code == 401
    assert response.headers.get_list("www-authenticate") == OFFERS  # Windows auth, then Basic
    assert "<Autodiscover" not in response.text


def test_login_forms(cas01: TestClient, password: str) -> None:
    for login in ("alice@lab.net", "Alice", "LAB\\alice"):
        status, root, _ = post(cas01, outlook_request(), login=login, password=password)
        assert status == 200 and root is not None, login


def test_parse_basic() -> None:
    token = base64.b64encode("LAB\\alice:pä:ss".encode()).decode()
    assert parse_basic(f"basic {token}") == ("alice", "pä:ss")
    assert parse_basic(None) is None
    assert parse_basic("Basic ") is None
    latin1 = base64.b64encode("bob:pä".encode("latin-1")).decode()
    assert parse_basic(f"Basic {latin1}") == ("bob", "pä")


def test_throttled_after_failures(cas01: TestClient, password: str) -> None:
    for _ in range(5):
        assert (
            cas01.post(PATH, content=outlook_request(), headers=basic("alice", "x")).status_code
            == 401
        )
    response = cas01.post(PATH, content=outlook_request(), headers=basic("alice", password))
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


def test_plain_http_post_is_refused(org: Directory, password: str) -> None:
    with client(org, base_url="http://autodiscover.lab.net") as c:
        response = c.post(PATH, content=outlook_request(), headers=basic("alice", password))
    assert response.status_code == 403
    assert "HTTPS" in response.text
    # unless the context says TLS ends before this server
    with client(org, base_url="http://cas01.lab.net", require_tls=False) as c:
        status, root, _ = post(c, outlook_request(), password=password)
    assert status == 200 and root is not None


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "debug"),
    [
        (b"", "empty"),
        (b"not xml at all", "well-formed"),
        (b"<Autodiscover><Request>", "well-formed"),
        (b'<Other xmlns="' + OUTLOOK_REQUEST_NS.encode() + b'"/>', "root element"),
        (b'<Autodiscover xmlns="' + OUTLOOK_REQUEST_NS.encode() + b'"/>', "no Request"),
        (outlook_request(None), "no EMailAddress"),
        (outlook_request("not-an-address"), "not an e-mail address"),
        (outlook_request(schema=""), "AcceptableResponseSchema is missing"),
        (outlook_request(namespace="urn:something-else"), "request schema"),
        (
            outlook_request()
            .replace(b"<Request>", b"<request>")
            .replace(b"</Request>", b"</request>"),
            "no Request",
        ),
    ],
)
def test_invalid_request_600(cas01: TestClient, password: str, body: bytes, debug: str) -> None:
    status, root, text = post(cas01, body, password=password)
    assert status == 200, text
    assert root is not None
    code, message, debug_data = error_of(root, provider=False)
    assert (code, message) == ("600", "Invalid Request")
    assert debug in debug_data


def test_unsupported_response_schema_601(cas01: TestClient, password: str) -> None:
    status, root, _ = post(cas01, outlook_request(schema=MOBILE_RESPONSE_NS), password=password)
    assert status == 200 and root is not None
    code, message, debug = error_of(root, provider=False)
    assert code == "601"
    assert message == "Provider is not available"
    assert MOBILE_RESPONSE_NS in debug


def test_unknown_address_500(cas01: TestClient, password: str) -> None:
    status, root, _ = post(cas01, outlook_request("nobody@lab.net"), password=password)
    assert status == 200 and root is not None
    code, message, debug = error_of(root, provider=True)
    assert (code, message) == ("500", "The e-mail address cannot be found.")
    assert "No mailbox has the address nobody@lab.net" in debug


def test_another_users_address_500(org: Directory, cas01: TestClient, password: str) -> None:
    status, root, _ = post(cas01, outlook_request("bob@lab.net"), password=password)
    assert status == 200 and root is not None
    code, message, debug = error_of(root, provider=True)
    assert (code, message) == ("500", "The e-mail address cannot be found.")
    assert "another user's" in debug and "alice@lab.net may discover only their own" in debug
    legacy_dn = org.mailboxes.one("bob").exchange_legacy_dn
    _, root, _ = post(cas01, outlook_request(None, legacy_dn=legacy_dn), password=password)
    assert root is not None
    assert error_of(root, provider=True)[0] == "500"


def test_no_endpoint_602(cas01: TestClient, password: str) -> None:
    status, root, _ = post(
        cas01, outlook_request("carol@lab.net"), login="carol", password=password
    )
    assert status == 200 and root is not None
    code, message, _ = error_of(root, provider=True)
    assert code == "602"
    assert "'DB04'" in message and "GZ" in message


def test_body_too_large_600(cas01: TestClient, password: str) -> None:
    body = outlook_request().replace(b"<Request>", b"<Request>" + b" " * (70 * 1024))
    _, root, _ = post(cas01, body, password=password)
    assert root is not None
    code, _, debug = error_of(root, provider=False)
    assert code == "600" and "larger than 64 KiB" in debug


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>&lol9;</EMailAddress>
    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request>
</Autodiscover>
"""


def xxe(path: Path) -> bytes:
    return f"""<?xml version="1.0"?>
<!DOCTYPE Autodiscover [ <!ENTITY xxe SYSTEM "file://{path}"> ]>
<Autodiscover xmlns="{OUTLOOK_REQUEST_NS}">
  <Request>
    <EMailAddress>alice@lab.net&xxe;</EMailAddress>
    <AcceptableResponseSchema>{OUTLOOK_RESPONSE_NS}</AcceptableResponseSchema>
  </Request>
</Autodiscover>
""".encode()


def test_billion_laughs_refused(cas01: TestClient, password: str) -> None:
    started = time.monotonic()
    status, root, text = post(cas01, BILLION_LAUGHS, password=password)
    assert time.monotonic() - started < 5
    assert status == 200 and root is not None
    code, _, debug = error_of(root, provider=False)
    assert code == "600" and "DTD or entities" in debug
    assert "lollol" not in text


def test_external_entity_refused(cas01: TestClient, password: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    status, root, text = post(cas01, xxe(secret), password=password)
    assert status == 200 and root is not None
    code, _, debug = error_of(root, provider=False)
    assert code == "600" and "DTD or entities" in debug
    assert "TOP-SECRET" not in text


def test_internal_dtd_without_entities_refused(cas01: TestClient, password: str) -> None:
    body = outlook_request().replace(
        b"<Autodiscover", b"<!DOCTYPE Autodiscover []>\n<Autodiscover", 1
    )
    _, root, _ = post(cas01, body, password=password)
    assert root is not None
    assert error_of(root, provider=False)[0] == "600"


# -- GET: the HTTP redirect method, and a browser over HTTPS ---------------------------


def test_http_get_redirects_to_https(org: Directory) -> None:
    with client(org, base_url="http://autodiscover.lab.net") as c:
        for path in (PATH, "/Autodiscover/Autodiscover.xml"):
            response = c.get(path)
            assert response.status_code == 302
            assert response.headers["location"] == "https://bj-cas.lab.net" + PATH
        assert c.head(PATH).status_code == 302
    with client(org, "CAS03", base_url="http://autodiscover.lab.net") as c:
        assert c.get(PATH).headers["location"] == "https://CAS03.lab.net" + PATH
    ports = ServicePorts.offset(10_000)
    with client(org, base_url="http://autodiscover.lab.net:10080", ports=ports) as c:
        assert c.get(PATH).headers["location"] == "https://bj-cas.lab.net:10443" + PATH


def test_https_get_is_600_after_authentication(cas01: TestClient, password: str) -> None:
    assert cas01.get(PATH).status_code == 401
    response = cas01.get(PATH, headers=basic("alice", password))
    assert response.status_code == 200
    code, message, _ = error_of(ET.fromstring(response.content), provider=False)
    assert (code, message) == ("600", "Invalid Request")


def test_other_methods(cas01: TestClient) -> None:
    assert cas01.put(PATH, content=b"x").status_code == 405
    assert cas01.get("/autodiscover/other.xml").status_code == 404


def test_services_list(org: Directory, password: str) -> None:
    """A service is one more entry in the list given to create_app."""
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from casarray.access.http import default_services

    def health(_context: AppContext) -> list[Route]:
        return [Route("/healthcheck.htm", lambda _r: PlainTextResponse("200 OK"))]

    app = create_app(AppContext.for_server(org, "CAS02"), [*default_services(), health])
    with TestClient(app, base_url="https://cas02.lab.net") as c:
        assert c.get("/healthcheck.htm").text == "200 OK"
        assert (
            c.post(PATH, content=outlook_request(), headers=basic("alice", password)).status_code
            == 200
        )
    assert AppContext.for_server(org, "cas02.lab.net").server_fqdn == "CAS02.lab.net"
    with pytest.raises(ValueError, match="isn't a Client Access server"):
        AppContext.for_server(org, "MBX01")


# -- a real server: uvicorn on 127.0.0.1 with TLS, asked by curl -----------------------


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_real_server_with_curl(org: Directory, password: str, tmp_path: Path) -> None:
    files, _ = tls.ensure_certificate(
        "CAS01", ["CAS01.lab.net", "127.0.0.1", "bj-cas.lab.net"], home=tmp_path
    )
    context = AppContext.for_server(org, "CAS01")
    app = create_app(context)
    request = tmp_path / "request.xml"
    request.write_bytes(outlook_request())
    with Served(app, tls.server_context(files)) as https, Served(app, None) as http:
        proc = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "20",
                "--cacert", str(files.certificate),
                "--resolve", f"bj-cas.lab.net:{https.port}:127.0.0.1",
                "--user", f"alice@lab.net:{password}",
                "--header", "Content-Type: text/xml",
                "--user-agent", "Microsoft Office/14.0 (Windows NT 6.1; Microsoft Outlook 14.0)",
                "--data-binary", f"@{request}",
                "--write-out", "\n%{http_code}",
                f"https://bj-cas.lab.net:{https.port}/Autodiscover/Autodiscover.xml",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        body, _, code = proc.stdout.rpartition("\n")
        assert code == "200", proc.stdout
        root = ET.fromstring(body)
        assert protocols(root)["EXCH"].findtext(f"{O}Server") == "bj-cas.lab.net"
        assert protocols(root)["IMAP"].findtext(f"{O}Server") == "bj-cas.lab.net"
        # wrong password: 401 with the realm
        proc = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "20", "--include",
                "--cacert", str(files.certificate),
                "--resolve", f"bj-cas.lab.net:{https.port}:127.0.0.1",
                "--user", "alice@lab.net:wrong", "--data-binary", f"@{request}",
                f"https://bj-cas.lab.net:{https.port}/autodiscover/autodiscover.xml",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.stdout.startswith("HTTP/1.1 401"), proc.stdout + proc.stderr
        assert 'www-authenticate: basic realm="cas01.lab.net"' in proc.stdout.lower()
        # MS-OXDISCO's redirect method on plain HTTP; no Server header; X-Forwarded-Proto
        # from a loopback client doesn't pass plain HTTP off as HTTPS
        proc = subprocess.run(
            [
                "curl", "--silent", "--show-error", "--max-time", "20", "--include",
                "--resolve", f"autodiscover.lab.net:{http.port}:127.0.0.1",
                f"http://autodiscover.lab.net:{http.port}/autodiscover/autodiscover.xml",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        head = proc.stdout.lower()
        assert head.startswith("http/1.1 302"), proc.stdout + proc.stderr
        assert "location: https://bj-cas.lab.net/autodiscover/autodiscover.xml" in head
        assert "\nserver:" not in head
        proc = subprocess.run(
            [
                "curl", "--silent", "--max-time", "20", "--output", "/dev/null",
                "--write-out", "%{http_code}",
                "--header", "X-Forwarded-Proto: https", "--user", f"alice:{password}",
                "--data-binary", f"@{request}",
                f"http://127.0.0.1:{http.port}/autodiscover/autodiscover.xml",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.stdout == "403"


# -- EWS's URLs: EXCH (internal) and EXPR (external) ------------------------------------


def test_expr_carries_the_external_ews_url(org: Directory, password: str) -> None:
    org.virtual_directories.set(
        "WebServices",
        "CAS01\\EWS (Default Web Site)",
        internal_url="https://bj-cas.lab.net/EWS/Exchange.asmx",
        external_url="https://mail.lab.net/EWS/Exchange.asmx",
        basic_authentication=False,
    )
    with client(org, "CAS01") as c:
        status, root, text = post(c, outlook_request(), password=password)
    assert status == 200 and root is not None, text
    found = protocols(root)
    assert list(found) == ["EXCH", "EXPR", "WEB", "IMAP", "SMTP"]
    assert found["EXCH"].findtext(f"{O}EwsUrl") == "https://bj-cas.lab.net/EWS/Exchange.asmx"
    expr = found["EXPR"]
    assert expr.findtext(f"{O}Server") == "mail.lab.net"
    assert expr.findtext(f"{O}SSL") == "On"
    assert expr.findtext(f"{O}AuthPackage") == "Ntlm"
    for tag in ("ASUrl", "EwsUrl", "OOFUrl"):
        assert expr.findtext(f"{O}{tag}") == "https://mail.lab.net/EWS/Exchange.asmx"


def test_ews_urls_of_the_mailbox_site_and_the_port(org: Directory, password: str) -> None:
    # bob's database is in SH: CAS01 (BJ) hands out CAS03's URL; an https URL without a
    # port gets the port the server advertises
    with client(org, "CAS01", ports=ServicePorts.offset(10000)) as c:
        status, root, text = post(c, outlook_request("bob@lab.net"), login="bob", password=password)
    assert status == 200 and root is not None, text
    assert protocols(root)["EXCH"].findtext(f"{O}EwsUrl") == (
        "https://CAS03.lab.net:10443/EWS/Exchange.asmx"
    )
