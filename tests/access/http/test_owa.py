"""Outlook Web App in-process (Starlette's TestClient): signing in and out, the
stateless session cookie (forged, expired, refreshed, accepted by another array
member), CSRF on every form, throttling, the redirect to the preferred endpoint,
folders and paging, reading plain and HTML messages (sanitized; remote images blocked),
attachments, flag, move and delete, and every error page."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from casarray.access.http import AppContext, ServicePorts, create_app, owa
from casarray.access.http.message_view import (
    decode_part,
    headers_of,
    parse_structure,
    sanitize_html,
)
from casarray.access.http.web_session import COOKIE, LOGIN_COOKIE, SessionCodec, WebSession
from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.mime import cached_parts
from casarray.mailstore.store import close_all, store_for
from tests.access.http import build_org

HTTPS = "https://bj-cas.lab.net"
TOKEN = re.compile(r'name="csrf" value="([^"]+)"')

PLAIN = (
    b"From: Bob Li <bob@lab.net>\r\n"
    b"To: Alice Wang <alice@lab.net>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_Shanghai?=\r\n"
    b"Date: Mon, 02 Jun 2025 09:30:00 +0800\r\n"
    b"Message-ID: <plain@lab.net>\r\n"
    b"\r\n"
    b"Hello Alice,\r\n<b>not bold</b> & friends\r\n"
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n% a test attachment\n"
HTML_BODY = (
    '<p onclick="steal()">Quarterly <b>report</b></p>'
    "<script>alert(1)</script><style>p { color: red }</style>"
    '<a href="javascript:alert(2)">bad link</a> '
    '<a href="https://example.org/doc">good link</a> '
    '<a href="/owa/logout">relative link</a>'
    '<img src="https://tracker.example/pixel.gif" alt="tracker">'
    '<img src="cid:logo@lab.net" alt="logo">'
    '<img src="data:image/png;base64,AAAA" alt="data">'
    '<iframe src="https://evil.example/frame"></iframe>'
    '<form action="https://evil.example/steal"><input name="x"></form>'
)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


RICH = (
    b"From: =?utf-8?b?SsO2cmc=?= <joerg@example.org>\r\n"
    b"To: alice@lab.net\r\n"
    b"Cc: bob@lab.net\r\n"
    b"Subject: Report with pictures\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="mixed"\r\n'
    b"\r\n"
    b"--mixed\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n'
    b"\r\n"
    b"--alt\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Plain version of the report\r\n"
    b"--alt\r\n"
    b'Content-Type: multipart/related; boundary="rel"\r\n'
    b"\r\n"
    b"--rel\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + _b64(HTML_BODY.encode()) + b"--rel\r\n"
    b"Content-Type: image/png\r\n"
    b"Content-ID: <logo@lab.net>\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + _b64(PNG) + b"--rel--\r\n"
    b"--alt--\r\n"
    b"--mixed\r\n"
    b"Content-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename*=utf-8''R%C3%A9sum%C3%A9.pdf\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + _b64(PDF) + b"--mixed\r\n"
    b'Content-Type: text/html; name="page.html"\r\n'
    b"\r\n"
    b"<script>alert('attached')</script>\r\n"
    b"--mixed--\r\n"
)


def simple(subject: str, body: str = "Hi") -> bytes:
    return (
        f"From: bob@lab.net\r\nTo: alice@lab.net\r\nSubject: {subject}\r\n\r\n{body}\r\n"
    ).encode()


# -- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def backend() -> str:
    """The HTTP tests run on SQLite only (the directory tests cover PostgreSQL)."""
    return "sqlite"


@pytest.fixture
def org(bj: Directory, password_hash: str) -> Iterator[Directory]:
    yield build_org(bj, password_hash)
    close_all()  # the mail stores this test opened


def mailbox_store(d: Directory, who: str) -> MailboxStore:
    mailbox = d.mailboxes.one(who)
    return store_for(d.databases.one(mailbox.database)).mailbox(mailbox.guid)


@pytest.fixture
def alice(org: Directory) -> MailboxStore:
    return mailbox_store(org, "alice")


def owa_client(
    d: Directory, server: str = "CAS01", *, base_url: str = HTTPS, **context: object
) -> TestClient:
    """An in-process client of the web mail of `server` (no redirects followed)."""
    app = create_app(AppContext.for_server(d, server, **context), [owa.routes])  # type: ignore[arg-type]
    return TestClient(app, base_url=base_url, follow_redirects=False)


def token(html: str) -> str:
    found = TOKEN.search(html)
    assert found is not None, html
    return found.group(1)


def sign_in(c: TestClient, login: str = "alice@lab.net", password: str = "P@ssw0rd-lab"):  # type: ignore[no-untyped-def]
    form = c.get("/owa/login")
    assert form.status_code == 200, form.text
    return c.post(
        "/owa/login", data={"csrf": token(form.text), "username": login, "password": password}
    )


def cookies_set(response: httpx.Response) -> dict[str, str]:
    """name -> the whole Set-Cookie header, for each cookie the response sets."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


@pytest.fixture
def signed(org: Directory, alice: MailboxStore) -> Iterator[TestClient]:
    """A client signed in as alice at CAS01."""
    with owa_client(org) as c:
        response = sign_in(c)
        assert response.status_code == 303, response.text
        yield c


def session_cookie(c: TestClient) -> str:
    value = c.cookies.get(COOKIE)
    assert value
    return value


def with_cookie(d: Directory, value: str, server: str = "CAS01") -> TestClient:
    """A fresh client that sends the session cookie `value`."""
    c = owa_client(d, server)
    c.cookies.set(COOKIE, value, domain="bj-cas.lab.net", path="/owa")
    return c


def subjects(html: str) -> list[str]:
    return re.findall(r'<a href="/owa/message\?[^"]*">([^<]*)</a>', html)


# -- signing in -----------------------------------------------------------------------


def test_login_page_and_cookie_flags(org: Directory) -> None:
    with owa_client(org) as c:
        assert c.get("/owa").headers["location"] == "/owa/login"
        page = c.get("/owa/login")
        assert page.status_code == 200
        assert '<label for="username">' in page.text and 'type="password"' in page.text
        assert "<script" not in page.text
        login_cookie = cookies_set(page)[LOGIN_COOKIE].lower()
        for flag in ("httponly", "secure", "samesite=lax", "path=/owa"):
            assert flag in login_cookie
        response = sign_in(c)
        assert response.status_code == 303 and response.headers["location"] == "/owa"
        cookie = cookies_set(response)[COOKIE].lower()
        for flag in ("httponly", "secure", "samesite=lax", "path=/owa", "max-age=3600"):
            assert flag in cookie
        assert "max-age=0" in cookies_set(response)[LOGIN_COOKIE].lower()  # used up
        mailbox = c.get("/owa")
        assert mailbox.status_code == 200
        assert "Alice Wang" in mailbox.text and "Served by CAS01.lab.net" in mailbox.text
        headers = mailbox.headers
        assert "script-src" not in headers["content-security-policy"]
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        # signed in: the sign-in page sends you to the mailbox
        assert c.get("/owa/login").headers["location"] == "/owa"


def test_login_by_alias_and_domain_user(org: Directory) -> None:
    for login in ("alice", "LAB\\alice", "Alice@Lab.Net"):
        with owa_client(org) as c:
            assert sign_in(c, login).status_code == 303, login


def test_wrong_password_then_throttled(org: Directory) -> None:
    with owa_client(org) as c:  # the context's own throttle: a few failures block
        failures = 0
        while (response := sign_in(c, password="wrong")).status_code == 200:
            assert "user name or password you entered" in response.text
            assert 'value="alice@lab.net"' in response.text  # the name is kept
            assert COOKIE not in cookies_set(response)
            failures += 1
            assert failures < 10
        assert response.status_code == 429 and failures > 1
        throttled = sign_in(c)  # even the right password now
        assert throttled.status_code == 429
        assert "Too many failed sign-in attempts" in throttled.text
        assert int(throttled.headers["retry-after"]) > 0
        assert COOKIE not in cookies_set(throttled)


def test_empty_fields(org: Directory) -> None:
    with owa_client(org) as c:
        response = sign_in(c, password="")
        assert response.status_code == 200 and "Enter your user name and password" in response.text


def test_login_csrf(org: Directory) -> None:
    with owa_client(org) as c:
        form = c.get("/owa/login")
        good = token(form.text)
        data = {"username": "alice@lab.net", "password": "P@ssw0rd-lab"}
        for bad in ({}, {"csrf": "forged"}, {"csrf": good + "x"}):
            response = c.post("/owa/login", data={**data, **bad})
            assert response.status_code == 403, bad
            assert "expired" in response.text
            assert COOKIE not in cookies_set(response)
    with owa_client(org) as other:  # a token without its cookie (another browser's)
        response = other.post("/owa/login", data={**data, "csrf": good})
        assert response.status_code == 403


def test_form_size_limits(org: Directory) -> None:
    with owa_client(org) as c:
        c.get("/owa/login")
        assert c.post("/owa/login", data={"username": "x" * 20_000}).status_code == 413
        chunked = c.post("/owa/login", content=iter([b"username=a"]))
        assert chunked.status_code == 411


# -- the session cookie ---------------------------------------------------------------


def test_forged_and_expired_cookies_go_back_to_login(org: Directory, alice: MailboxStore) -> None:
    guid = org.mailboxes.one("alice").guid
    secret = org.session_secret()
    now = time.time()
    old = SessionCodec(secret, clock=lambda: now - 2 * 3600)
    other = SessionCodec(b"another organization's secret!!")
    real = SessionCodec(secret)
    fresh = real.dump(real.new(guid))
    cookies = {
        "garbage": "not-a-cookie",
        "other secret": other.dump(other.new(guid)),
        "tampered": fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB"),
        "idle too long": old.dump(old.new(guid)),
        "past its lifetime": real.dump(WebSession(guid, "t", int(now) - 13 * 3600, int(now) - 60)),
        "from the future": real.dump(WebSession(guid, "t", int(now), int(now) + 3600)),
    }
    for why, value in cookies.items():
        with with_cookie(org, value) as c:
            for path in ("/owa", "/owa/message?folder=INBOX&uid=1", "/owa/compose"):
                c.cookies.set(COOKIE, value, domain="bj-cas.lab.net", path="/owa")
                response = c.get(path)
                assert response.status_code == 303, (why, path)
                assert response.headers["location"] == "/owa/login?expired=1", why
                assert "max-age=0" in cookies_set(response)[COOKIE].lower(), why
            c.cookies.set(COOKIE, value, domain="bj-cas.lab.net", path="/owa")
            response = c.post("/owa/flag", data={"uid": "1"})
            assert response.headers["location"] == "/owa/login?expired=1"
            page = c.get("/owa/login?expired=1")
            assert "Your session has ended" in page.text
    with with_cookie(org, fresh) as c:
        assert c.get("/owa").status_code == 200


def test_session_is_refreshed_while_used(org: Directory, alice: MailboxStore) -> None:
    guid = org.mailboxes.one("alice").guid
    now = time.time()
    ten_minutes_ago = SessionCodec(org.session_secret(), clock=lambda: now - 600)
    session = ten_minutes_ago.new(guid)
    with with_cookie(org, ten_minutes_ago.dump(session)) as c:
        response = c.get("/owa")
        assert response.status_code == 200
        renewed = SessionCodec(org.session_secret()).load(session_cookie(c))
        assert renewed is not None
        assert renewed.signed_at >= int(now) and renewed.login_time == session.login_time
        assert renewed.csrf == session.csrf
        assert COOKIE not in cookies_set(c.get("/owa"))  # fresh: not signed again


def test_any_array_member_accepts_the_session(signed: TestClient, org: Directory) -> None:
    with with_cookie(org, session_cookie(signed), server="CAS02") as c:
        page = c.get("/owa")
        assert page.status_code == 200 and "Served by CAS02.lab.net" in page.text


def test_removed_mailbox_ends_the_session(signed: TestClient, org: Directory) -> None:
    org.mailboxes.remove("alice")
    assert signed.get("/owa").headers["location"] == "/owa/login?expired=1"


def test_logout(signed: TestClient, org: Directory) -> None:
    copied = session_cookie(signed)
    csrf = token(signed.get("/owa").text)
    assert signed.post("/owa/logout", data={"csrf": "wrong"}).status_code == 403
    response = signed.post("/owa/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/owa/login?signed_out=1"
    assert "max-age=0" in cookies_set(response)[COOKIE].lower()
    assert COOKIE not in signed.cookies
    assert signed.get("/owa").headers["location"] == "/owa/login"
    assert "You have signed out" in signed.get("/owa/login?signed_out=1").text
    assert signed.post("/owa/logout").headers["location"] == "/owa/login?signed_out=1"
    # Stateless, as documented: a copy made before signing out works until it expires.
    with with_cookie(org, copied) as c:
        assert c.get("/owa").status_code == 200


# -- HTTPS, paths, static files -----------------------------------------------------------


def test_plain_http_goes_to_https(org: Directory) -> None:
    with owa_client(org, base_url="http://127.77.1.11") as c:
        response = c.get("/owa/message?folder=INBOX&uid=1")
        assert response.status_code == 302
        assert (
            response.headers["location"] == "https://bj-cas.lab.net/owa/message?folder=INBOX&uid=1"
        )
        assert c.get("/owa/login").headers["location"] == "https://bj-cas.lab.net/owa/login"
        assert c.post("/owa/login", data={"csrf": "x"}).status_code == 403
    with owa_client(org, base_url="http://127.77.1.11", require_tls=False) as c:
        response = sign_in(c)
        assert response.status_code == 303
        assert "secure" not in cookies_set(response)[COOKIE].lower()
        assert c.get("/owa").status_code == 200


def test_paths(signed: TestClient) -> None:
    assert signed.get("/OWA?folder=Sent").headers["location"] == "/owa?folder=Sent"
    css = signed.get("/owa/static/owa.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert signed.get("/owa/static/missing.css").status_code == 404
    compose = signed.get("/owa/compose")
    assert compose.status_code == 200 and 'action="/owa/send"' in compose.text
    assert signed.get("/owa/flag").status_code == 405


def test_signed_out_requests_go_to_login(org: Directory) -> None:
    with owa_client(org) as c:
        for path in ("/owa", "/owa/message?uid=1", "/owa/attachment?uid=1&part=1", "/owa/compose"):
            assert c.get(path).headers["location"] == "/owa/login", path
        for path in ("/owa/flag", "/owa/move", "/owa/delete"):
            response = c.post(path, data={"csrf": "x", "uid": "1"})
            assert (response.status_code, response.headers["location"]) == (303, "/owa/login")


# -- the preferred endpoint ---------------------------------------------------------------


def test_redirect_to_preferred_endpoint_after_login(org: Directory) -> None:
    with owa_client(org) as c:  # bob's DB03 is in SH and names CAS03
        response = sign_in(c, "bob@lab.net")
        assert response.status_code == 302
        assert response.headers["location"] == "https://CAS03.lab.net/owa"
        assert COOKIE not in cookies_set(response)
    with owa_client(org, ports=ServicePorts.offset(10_000)) as c:
        assert sign_in(c, "bob").headers["location"] == "https://CAS03.lab.net:10443/owa"
    with owa_client(org, "CAS03") as c:
        assert sign_in(c, "bob").status_code == 303
    with owa_client(org, "CAS02") as c:  # an array member serves alice
        assert sign_in(c).status_code == 303


def test_redirect_when_database_is_repointed(signed: TestClient, org: Directory) -> None:
    csrf = token(signed.get("/owa").text)
    org.databases.set("DB01", rpc_client_access_server="CAS02.lab.net")
    for response in (
        signed.get("/owa"),
        signed.get("/owa/message?folder=INBOX&uid=1"),
        signed.post("/owa/flag", data={"csrf": csrf, "uid": "1", "flagged": "1"}),
    ):
        assert response.status_code == 302
        assert response.headers["location"] == "https://CAS02.lab.net/owa"
    org.databases.set("DB01", rpc_client_access_server="bj-cas.lab.net")
    assert signed.get("/owa").status_code == 200


def test_no_endpoint_and_dismounted_database(org: Directory, alice: MailboxStore) -> None:
    with owa_client(org) as c:  # carol's DB04 is in GZ, a site with no CAS
        response = sign_in(c, "carol@lab.net")
        assert response.status_code == 503 and "DB04" in response.text
    with owa_client(org) as c:
        assert sign_in(c).status_code == 303
        org.databases.set_mounted("DB01", False)
        response = c.get("/owa")
        assert response.status_code == 503 and "dismounted" in response.text


# -- folders and the message list ------------------------------------------------------------


def test_folders_and_paging(signed: TestClient, alice: MailboxStore) -> None:
    for n in range(1, 31):
        alice.append("INBOX", simple(f"Message {n:02d}"))
    alice.create_folder("Projects/Casarray")
    page1 = signed.get("/owa")
    assert page1.status_code == 200
    for folder in ("Inbox", "Sent", "Drafts", "Trash", "Junk", "Archive", "Projects", "Casarray"):
        assert f">{folder}</a>" in page1.text
    assert "(30<span" in page1.text  # unread count
    assert subjects(page1.text) == [f"Message {n:02d}" for n in range(30, 5, -1)]
    assert "Messages 1&ndash;25 of 30" in page1.text
    assert 'rel="next" href="/owa?folder=INBOX&amp;page=2"' in page1.text
    assert 'rel="prev"' not in page1.text
    page2 = signed.get("/owa?folder=INBOX&page=2")
    assert subjects(page2.text) == [f"Message {n:02d}" for n in range(5, 0, -1)]
    assert "Messages 26&ndash;30 of 30" in page2.text and 'rel="prev"' in page2.text
    assert subjects(signed.get("/owa?page=99").text) == subjects(page2.text)
    assert subjects(signed.get("/owa?page=abc").text) == subjects(page1.text)
    assert subjects(signed.get("/owa?page=-3").text) == subjects(page1.text)
    empty = signed.get("/owa?folder=Projects/Casarray")
    assert empty.status_code == 200 and "There are no messages" in empty.text


def test_sent_folder_shows_recipients(signed: TestClient, alice: MailboxStore) -> None:
    alice.append("Sent", simple("Minutes"), flags=["\\Seen"])
    page = signed.get("/owa?folder=Sent")
    assert '<th scope="col">To</th>' in page.text
    assert '<td class="from">alice@lab.net</td>' in page.text
    assert 'class="read"' in page.text


def test_unknown_folder(signed: TestClient) -> None:
    for folder in ("Nope", "bad*name", "a//b"):
        response = signed.get("/owa", params={"folder": folder})
        assert response.status_code == 404 and "doesn&#39;t exist" in response.text


# -- reading --------------------------------------------------------------------------------


def test_read_plain_message(signed: TestClient, alice: MailboxStore) -> None:
    uid = alice.append("INBOX", PLAIN).uid
    assert 'class="unread"' in signed.get("/owa").text
    page = signed.get(f"/owa/message?folder=INBOX&uid={uid}")
    assert page.status_code == 200
    assert "<h1>Grüße aus Shanghai</h1>" in page.text
    assert "Bob Li &lt;bob@lab.net&gt;" in page.text
    assert "2025-06-02 09:30" in page.text
    assert (
        '<pre class="body plain">Hello Alice,\r\n&lt;b&gt;not bold&lt;/b&gt; &amp; friends'
        in page.text
    )
    assert "\\Seen" in alice.messages("INBOX")[0].flags
    assert 'class="read"' in signed.get("/owa").text
    assert "Attachments" not in page.text


def test_html_is_sanitized_and_remote_images_blocked(
    signed: TestClient, alice: MailboxStore
) -> None:
    uid = alice.append("INBOX", RICH).uid
    page = signed.get(f"/owa/message?folder=INBOX&uid={uid}")
    assert page.status_code == 200
    body = page.text.split('<div class="body html">', 1)[1].split("</div>", 1)[0]
    assert "Quarterly <b>report</b>" in body
    gone = ["<script", "alert(", "onclick", "steal", "javascript:", "<style", "color: red"]
    gone += ["tracker.example", "evil.example", "<iframe", "<form", "data:image", "/owa/logout"]
    for text in gone:
        assert text not in body, text
    assert '<a href="https://example.org/doc" target="_blank" rel="noopener noreferrer">' in body
    # the cid: image is the message's own part, not a remote one
    cid = f'src="/owa/attachment?folder=INBOX&amp;uid={uid}&amp;part=1.2.2&amp;inline=1"'
    assert cid in body
    assert "1 remote image was not loaded" in page.text
    assert "img-src 'self';" in page.headers["content-security-policy"]
    assert "From</dt><dd>Jörg &lt;joerg@example.org&gt;" in page.text
    assert "<dt>Cc</dt><dd>bob@lab.net</dd>" in page.text
    # attachments: the PDF and the HTML file, not the inline logo
    assert ">Résumé.pdf</a>" in page.text and ">page.html</a>" in page.text
    assert 'part=1.2.2" download' not in page.text
    # asking for the images loads them (and the CSP lets them in)
    shown = signed.get(f"/owa/message?folder=INBOX&uid={uid}&images=1")
    assert 'src="https://tracker.example/pixel.gif"' in shown.text
    assert "img-src 'self' https: http:" in shown.headers["content-security-policy"]
    assert "<script" not in shown.text.split("<main", 1)[1]
    # the plain text alternative
    plain = signed.get(f"/owa/message?folder=INBOX&uid={uid}&view=plain")
    assert '<pre class="body plain">Plain version of the report' in plain.text
    assert '<div class="body html">' not in plain.text and "Show as HTML" in plain.text


def test_unknown_message(signed: TestClient, alice: MailboxStore) -> None:
    alice.append("INBOX", PLAIN)
    for query in ("uid=999", "uid=abc", "uid=0", "", "folder=Nope&uid=1"):
        response = signed.get(f"/owa/message?{query}")
        assert response.status_code == 404, query
        assert "Alice Wang" in response.text  # still the signed-in frame


def test_attachment_download(signed: TestClient, alice: MailboxStore) -> None:
    uid = alice.append("INBOX", RICH).uid
    base = f"/owa/attachment?folder=INBOX&uid={uid}"
    pdf = signed.get(f"{base}&part=2")
    assert pdf.status_code == 200 and pdf.content == PDF
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"] == (
        "attachment; filename=\"R?sum?.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf"
    )
    assert pdf.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in pdf.headers["content-security-policy"]
    logo = signed.get(f"{base}&part=1.2.2&inline=1")
    assert logo.content == PNG and logo.headers["content-type"] == "image/png"
    assert logo.headers["content-disposition"].startswith("inline;")
    assert signed.get(f"{base}&part=1.2.2").headers["content-disposition"].startswith("attachment;")
    # an attached HTML page is never shown inline from our origin
    page = signed.get(f"{base}&part=3&inline=1")
    assert page.headers["content-disposition"].startswith('attachment; filename="page.html"')
    assert b"alert('attached')" in page.content
    for part in ("9", "1", "1.2", "0", "x", "1..2", "2.1"):
        assert signed.get(f"{base}&part={part}").status_code == 404, part
    assert signed.get("/owa/attachment?folder=INBOX&uid=999&part=1").status_code == 404
    assert signed.get(f"/owa/attachment?folder=Nope&uid={uid}&part=2").status_code == 404


# -- changing -------------------------------------------------------------------------------


def form_of(c: TestClient, uid: int, folder: str = "INBOX") -> dict[str, str]:
    page = c.get("/owa/message", params={"folder": folder, "uid": uid})
    assert page.status_code == 200, page.text
    return {"csrf": token(page.text), "folder": folder, "uid": str(uid)}


def test_flag_and_unflag(signed: TestClient, alice: MailboxStore) -> None:
    uid = alice.append("INBOX", PLAIN).uid
    response = signed.post("/owa/flag", data={**form_of(signed, uid), "flagged": "1"})
    assert response.status_code == 303
    assert response.headers["location"] == f"/owa/message?folder=INBOX&uid={uid}"
    assert "\\Flagged" in alice.messages("INBOX")[0].flags
    assert ">Clear flag</button>" in signed.get(response.headers["location"]).text
    assert "Flagged</span>" in signed.get("/owa").text
    signed.post("/owa/flag", data={**form_of(signed, uid), "flagged": "0"})
    assert "\\Flagged" not in alice.messages("INBOX")[0].flags


def test_move(signed: TestClient, alice: MailboxStore) -> None:
    uid = alice.append("INBOX", PLAIN).uid
    form = form_of(signed, uid)
    assert signed.post("/owa/move", data={**form, "destination": "Nope"}).status_code == 404
    assert signed.post("/owa/move", data={**form, "destination": "INBOX"}).status_code == 400
    response = signed.post("/owa/move", data={**form, "destination": "Archive"})
    assert (response.status_code, response.headers["location"]) == (303, "/owa?folder=INBOX")
    assert alice.messages("INBOX") == [] and len(alice.messages("Archive")) == 1
    again = signed.post("/owa/move", data={**form, "destination": "Archive"})
    assert again.status_code == 404  # it isn't in INBOX any more


def test_delete_moves_to_trash_then_removes(signed: TestClient, alice: MailboxStore) -> None:
    uid = alice.append("INBOX", PLAIN).uid
    response = signed.post("/owa/delete", data=form_of(signed, uid))
    assert (response.status_code, response.headers["location"]) == (303, "/owa?folder=INBOX")
    assert alice.messages("INBOX") == []
    (trashed,) = alice.messages("Trash")
    page = signed.get(f"/owa/message?folder=Trash&uid={trashed.uid}")
    assert ">Delete permanently</button>" in page.text
    response = signed.post("/owa/delete", data=form_of(signed, trashed.uid, "Trash"))
    assert response.headers["location"] == "/owa?folder=Trash"
    assert alice.messages("Trash") == []


def test_delete_makes_a_missing_trash(signed: TestClient, alice: MailboxStore) -> None:
    alice.delete_folder("Trash")
    uid = alice.append("INBOX", PLAIN).uid
    assert signed.post("/owa/delete", data=form_of(signed, uid)).status_code == 303
    assert alice.folder("Trash").special_use == "\\Trash"
    assert len(alice.messages("Trash")) == 1


def test_actions_check_csrf(signed: TestClient, alice: MailboxStore, org: Directory) -> None:
    uid = alice.append("INBOX", PLAIN).uid
    form = form_of(signed, uid)
    with owa_client(org) as other:  # another session's token is no good here either
        sign_in(other)
        foreign = token(other.get("/owa").text)
    for path, extra in (
        ("/owa/flag", {"flagged": "1"}),
        ("/owa/move", {"destination": "Archive"}),
        ("/owa/delete", {}),
        ("/owa/logout", {}),
    ):
        for csrf in (None, "", "forged", foreign):
            data = {**form, **extra}
            if csrf is None:
                del data["csrf"]
            else:
                data["csrf"] = csrf
            response = signed.post(path, data=data)
            assert response.status_code == 403, (path, csrf)
    (message,) = alice.messages("INBOX")
    assert "\\Flagged" not in message.flags  # nothing changed
    assert signed.get("/owa").status_code == 200  # still signed in


def test_actions_on_unknown_messages(signed: TestClient, alice: MailboxStore) -> None:
    alice.append("INBOX", PLAIN)
    csrf = token(signed.get("/owa").text)
    for path in ("/owa/flag", "/owa/move", "/owa/delete"):
        for uid in ("999", "0", "x"):
            data = {"csrf": csrf, "folder": "INBOX", "uid": uid, "destination": "Archive"}
            assert signed.post(path, data=data).status_code == 404, (path, uid)
        data = {"csrf": csrf, "folder": "Nope", "uid": "1", "destination": "Archive"}
        assert signed.post(path, data=data).status_code == 404


# -- message_view on its own ------------------------------------------------------------------


def test_structure_of_a_rich_message() -> None:
    parts = cached_parts(RICH)
    structure = parse_structure(parts.bodystructure)
    assert structure.plain is not None and structure.plain.number == "1.1"
    assert structure.html is not None and structure.html.number == "1.2.1"
    assert structure.html.charset == "utf-8" and structure.html.encoding == "base64"
    assert [p.number for p in structure.attachments] == ["1.2.2", "2", "3"]
    assert structure.by_content_id["logo@lab.net"].number == "1.2.2"
    pdf = structure.parts["2"]
    assert pdf.filename == "Résumé.pdf" and pdf.is_attachment
    assert structure.parts["3"].download_name == "page.html"
    assert structure.parts["1.2.2"].download_name == "part-1.2.2.png"
    headers = headers_of(parts.envelope)
    assert headers.sender == "Jörg <joerg@example.org>" and headers.subject.startswith("Report")
    single = parse_structure(cached_parts(PLAIN).bodystructure)
    assert single.plain is not None and single.plain.number == "1" and not single.attachments
    assert decode_part(b"SGVs\r\nbG8=", "base64") == b"Hello"
    assert decode_part(b"caf=C3=A9=\r\n!", "quoted-printable") == "café!".encode()


def test_sanitize_html_policy() -> None:
    structure = parse_structure(cached_parts(RICH).bodystructure)
    result = sanitize_html(
        '<img src="cid:logo@lab.net"><img src="cid:unknown"><img src="http://x.example/a.png">'
        '<a href="mailto:bob@lab.net" onmouseover="x()">mail</a><p style="color:red">s</p>',
        part_url=lambda part: f"/part/{part.number}",
        structure=structure,
    )
    assert result.html == (
        '<img src="/part/1.2.2"><img><img>'
        '<a href="mailto:bob@lab.net" target="_blank" rel="noopener noreferrer">mail</a><p>s</p>'
    )
    assert result.blocked_images == 1 and result.used_parts == {"1.2.2"}
