"""The JSON API (`/api/v1`), in process: every route, every error code, the redirect to
the user's preferred endpoint, and hostile input (huge or broken JSON, bad flags, odd
folder names and paths).

Also the shared pieces of the schemathesis test: a cheap password hash (argon2 with
the smallest cost, so that the many authenticated requests don't spend seconds
hashing), the app with the API mounted, and alice's seeded mailbox."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from casarray.access.http import AppContext, ServicePorts, api, create_app, default_services
from casarray.access.http.api_openapi import ERRORS, MAX_BODY, MAX_FLAGS, document
from casarray.access.imap.directory_backend import LoginThrottle
from casarray.directory import Directory
from casarray.directory.errors import DirectoryError
from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.store import close_all, store_for
from tests.access.http import build_org

PASSWORD = "API-p@ss 1"
ALICE = ("alice@lab.net", PASSWORD)
OFFERS = ["Negotiate", "NTLM", 'Basic realm="CAS01.lab.net"']  # a 401's WWW-Authenticate

# -- shared with test_api_schemathesis ---------------------------------------------------


def cheap_hash(password: str) -> str:
    """An argon2 hash that verifies in microseconds (tests only)."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(password)


def api_app(d: Directory, server: str = "CAS01", *, max_failures: int = 5, **context: Any) -> Any:
    """The HTTP app of `server` with the JSON API mounted."""
    throttle = LoginThrottle(max_failures=max_failures)
    ctx = AppContext.for_server(d, server, throttle=throttle, **context)
    return create_app(ctx, [*default_services(), api.routes])


MIXED = (
    b"From: =?utf-8?b?546L5bCP5piO?= <bob@lab.net>\r\n"
    b"To: Alice Wang <alice@lab.net>, team: carol@lab.net, dave@lab.net;\r\n"
    b"Cc: eve@lab.net\r\n"
    b"Subject: Quarterly\r\n report\r\n"
    b"Date: Tue, 2 Jan 2024 09:30:00 +0000\r\n"
    b"Message-ID: <q1@lab.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Numbers attached, caf=C3=A9.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b'<p onclick="steal()">Numbers <b>attached</b><script>steal()</script>'
    b'<a href="javascript:steal()">x</a></p>\r\n'
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="report.pdf"\r\n'
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes(b"%PDF-1.4 fake pdf\n").replace(b"\n", b"\r\n") + b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Disposition: attachment; filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt\r\n"
    b"\r\n"
    b"\xe6\x8a\xa5\xe5\x91\x8a\r\n"
    b"--outer--\r\n"
)
PDF = b"%PDF-1.4 fake pdf\n"


def plain(n: int, subject: str | bytes = "") -> bytes:
    subject = subject or f"Message {n}"
    if isinstance(subject, str):
        subject = subject.encode()
    return (
        b"From: Bob Li <bob@lab.net>\r\nTo: alice@lab.net\r\nSubject: " + subject + b"\r\n"
        b"Date: Wed, 3 Jan 2024 10:00:00 +0800\r\n\r\nBody " + str(n).encode() + b"\r\n"
    )


def mailbox_store(d: Directory, user: str) -> MailboxStore:
    mailbox = d.mailboxes.one(user)
    return store_for(d.databases.one(mailbox.database)).mailbox(mailbox.guid)


def seed_mailbox(d: Directory, user: str) -> MailboxStore:
    """INBOX: UID 1 the multipart MIXED (parts 1.1 text, 1.2 html, 2 pdf, 3 txt), UIDs
    2-6 plain messages (UID 6 with raw UTF-8, an unknown charset and invalid UTF-8 in
    encoded words in its subject); folders INBOX/Work (empty) and Projects/2024."""
    store = mailbox_store(d, user)
    store.append("INBOX", MIXED)
    for n in range(2, 6):
        store.append("INBOX", plain(n), flags=["\\Seen"] if n % 2 else [])
    store.append("INBOX", plain(6, "café =?x-unknown?q?zz?= =?utf-8?q?=FF?=".encode()))
    store.create_folder("INBOX/Work")
    store.create_folder("Projects/2024")
    return store


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def backend() -> str:
    """The HTTP tests run on SQLite only (the directory tests cover PostgreSQL)."""
    return "sqlite"


@pytest.fixture
def org(bj: Directory) -> Iterator[Directory]:
    d = build_org(bj, cheap_hash(PASSWORD))
    yield d
    close_all()


@pytest.fixture
def store(org: Directory) -> MailboxStore:
    return seed_mailbox(org, "alice")


def make_client(d: Directory, server: str = "CAS01", **kw: Any) -> TestClient:
    base_url = kw.pop("base_url", "https://bj-cas.lab.net")
    c = TestClient(api_app(d, server, **kw), base_url=base_url, follow_redirects=False)
    c.auth = ALICE
    return c


@pytest.fixture
def c(org: Directory, store: MailboxStore) -> Iterator[TestClient]:
    with make_client(org) as client:
        yield client


def error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """Assert the response is the JSON error `code` with `status`; return its error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert ERRORS[code][0] == status
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field
    return dict(body["error"])


INBOX = "/api/v1/folders/INBOX"
MSG = INBOX + "/messages"


# -- the document ------------------------------------------------------------------------


def test_openapi_document_is_served_without_authentication(c: TestClient) -> None:
    r = c.get("/api/v1/openapi.json", auth=None)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc == document()
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["basic"] == {"type": "http", "scheme": "basic"}
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []
    enum = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert set(enum["enum"]) == set(ERRORS)


def test_every_route_is_in_the_document_and_the_other_way_round() -> None:
    doc = document()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routed = {(r.method, r.template) for r in api._ROUTES}
    assert documented == routed
    for path, ops in doc["paths"].items():
        for op in ops.values():
            if path != "/openapi.json":
                assert {"400", "401", "403", "404", "429", "503", "307"} <= set(op["responses"])
            if "requestBody" in op:
                assert {"413", "415"} <= set(op["responses"])


# -- folders --------------------------------------------------------------------------------


def test_list_folders(c: TestClient) -> None:
    r = c.get("/api/v1/folders")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"
    folders = r.json()["folders"]
    names = [f["name"] for f in folders]
    assert names[:2] == ["INBOX", "INBOX/Work"]
    assert {"Sent", "Drafts", "Trash", "Junk", "Archive", "Projects", "Projects/2024"} <= set(names)
    inbox, work = folders[0], folders[1]
    assert inbox["messages"] == 6 and inbox["unseen"] == 4 and inbox["has_children"]
    assert work == {
        "name": "INBOX/Work",
        "parent": "INBOX",
        "display_name": "Work",
        "special_use": None,
        "messages": 0,
        "unseen": 0,
        "uid_validity": work["uid_validity"],
        "uid_next": 1,
        "subscribed": False,
        "has_children": False,
    }
    trash = next(f for f in folders if f["name"] == "Trash")
    assert trash["special_use"] == "\\Trash" and trash["parent"] is None


def test_get_folder_by_encoded_name(c: TestClient) -> None:
    assert c.get("/api/v1/folders/INBOX%2FWork").json()["name"] == "INBOX/Work"
    assert c.get("/api/v1/folders/inbox").json()["name"] == "INBOX"  # any case, as IMAP
    assert c.get("/api/v1/folders/Projects%2f2024").json()["display_name"] == "2024"
    # Unencoded, "/" separates path segments: no such resource.
    error(c.get("/api/v1/folders/Projects/2024"), 404, "not_found")
    error(c.get("/api/v1/folders/Nope"), 404, "folder_not_found")
    error(c.get("/api/v1/folders/a%2F%2Fb"), 400, "invalid_folder_name", "folder")
    error(c.get("/api/v1/folders/a%2A"), 400, "invalid_folder_name", "folder")
    error(c.get("/api/v1/folders/a%00b"), 400, "invalid_folder_name", "folder")


def test_create_folder(c: TestClient) -> None:
    r = c.post("/api/v1/folders", json={"name": "Clients/Acme Corp"})
    assert r.status_code == 201
    assert r.headers["location"] == "/api/v1/folders/Clients%2FAcme%20Corp"
    assert r.json()["name"] == "Clients/Acme Corp" and r.json()["parent"] == "Clients"
    assert c.get(r.headers["location"]).json()["name"] == "Clients/Acme Corp"
    assert c.get("/api/v1/folders/Clients").status_code == 200  # the parent was made
    error(c.post("/api/v1/folders", json={"name": "Clients/Acme Corp"}), 409, "folder_exists")
    error(c.post("/api/v1/folders", json={"name": "inbox"}), 409, "folder_exists")
    error(c.post("/api/v1/folders", json={"name": "a//b"}), 400, "invalid_folder_name", "name")
    error(c.post("/api/v1/folders", json={"name": "new/"}), 400, "invalid_folder_name", "name")
    error(c.post("/api/v1/folders", json={"name": "*"}), 400, "invalid_folder_name", "name")
    error(c.post("/api/v1/folders", json={"name": ""}), 400, "invalid_folder_name", "name")
    error(c.post("/api/v1/folders", json={"name": 7}), 400, "invalid_field", "name")
    error(c.post("/api/v1/folders", json={}), 400, "invalid_field", "name")
    error(c.post("/api/v1/folders", json={"name": "x", "y": 1}), 400, "invalid_field", "y")


def test_rename_folder(c: TestClient) -> None:
    r = c.patch("/api/v1/folders/Projects", json={"name": "Old/Projects"})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Old/Projects"
    assert r.headers["location"] == "/api/v1/folders/Old%2FProjects"
    assert c.get("/api/v1/folders/Old%2FProjects%2F2024").status_code == 200  # with children
    error(c.get("/api/v1/folders/Projects"), 404, "folder_not_found")
    error(c.patch("/api/v1/folders/INBOX", json={"name": "Mail"}), 409, "special_folder")
    error(c.patch("/api/v1/folders/Trash", json={"name": "Bin"}), 409, "special_folder")
    error(c.patch("/api/v1/folders/Old", json={"name": "INBOX/Work"}), 409, "folder_exists")
    error(c.patch("/api/v1/folders/Old", json={"name": "Old/x"}), 409, "folder_in_use")
    error(c.patch("/api/v1/folders/Nope", json={"name": "Yes"}), 404, "folder_not_found")
    error(c.patch("/api/v1/folders/Old", json={"name": "a%"}), 400, "invalid_folder_name", "name")
    error(c.patch("/api/v1/folders/Old", json={}), 400, "invalid_field", "name")


def test_delete_folder(c: TestClient) -> None:
    error(c.delete("/api/v1/folders/Projects"), 409, "folder_has_children")
    r = c.delete("/api/v1/folders/Projects%2F2024")
    assert r.status_code == 204 and r.content == b""
    assert c.delete("/api/v1/folders/Projects").status_code == 204
    error(c.delete("/api/v1/folders/Projects"), 404, "folder_not_found")
    for special in ("INBOX", "Trash", "Sent", "Archive"):
        error(c.delete(f"/api/v1/folders/{special}"), 409, "special_folder")


# -- messages ------------------------------------------------------------------------------


def test_list_messages_newest_first(c: TestClient) -> None:
    r = c.get(MSG)
    assert r.status_code == 200
    page = r.json()
    assert page["folder"] == "INBOX" and page["total"] == 6 and page["next_before"] is None
    assert [m["uid"] for m in page["messages"]] == [6, 5, 4, 3, 2, 1]
    first = page["messages"][-1]
    assert first["subject"] == "Quarterly report"
    assert first["from"] == [{"name": "王小明", "address": "bob@lab.net"}]
    assert first["to"] == [
        {"name": "Alice Wang", "address": "alice@lab.net"},
        {"name": None, "address": "carol@lab.net"},
        {"name": None, "address": "dave@lab.net"},
    ]
    assert first["cc"] == [{"name": None, "address": "eve@lab.net"}]
    assert first["date"] == "2024-01-02T09:30:00+00:00"
    assert first["has_attachments"] is True
    assert first["flags"] == [] and first["size"] == len(MIXED)
    second = page["messages"][-2]
    assert second["has_attachments"] is False
    assert second["date"] == "2024-01-03T10:00:00+08:00"
    assert page["messages"][-3]["flags"] == ["\\Seen"]


def test_list_messages_pages_by_uid(c: TestClient) -> None:
    seen: list[int] = []
    url = MSG + "?limit=4"
    pages = 0
    while True:
        page = c.get(url).json()
        seen += [m["uid"] for m in page["messages"]]
        pages += 1
        if page["next_before"] is None:
            break
        url = f"{MSG}?limit=4&before={page['next_before']}"
    assert seen == [6, 5, 4, 3, 2, 1] and pages == 2
    page = c.get(MSG + "?limit=2&before=4").json()
    assert [m["uid"] for m in page["messages"]] == [3, 2] and page["next_before"] == 2
    assert c.get(MSG + "?before=1").json()["messages"] == []
    assert c.get(MSG + "?before=4294967295&limit=1").json()["next_before"] == 6
    empty = c.get("/api/v1/folders/INBOX%2FWork/messages").json()
    assert empty["messages"] == [] and empty["total"] == 0 and empty["next_before"] is None


# (Loops rather than parametrize: each case is one request, the mailbox is set up once.)
BAD_QUERIES = [
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=abc", "limit"),
    ("limit=-1", "limit"),
    ("limit=%EF%BC%93", "limit"),  # a full-width digit: not an ASCII integer
    ("limit=", "limit"),
    ("before=0", "before"),
    ("before=4294967296", "before"),
    ("before=1e3", "before"),
]


def test_list_messages_bad_query(c: TestClient) -> None:
    for query, field in BAD_QUERIES:
        error(c.get(f"{MSG}?{query}"), 400, "invalid_field", field)


def test_list_messages_unknown_folder(c: TestClient) -> None:
    error(c.get("/api/v1/folders/Nope/messages"), 404, "folder_not_found")


def test_get_message(c: TestClient) -> None:
    r = c.get(MSG + "/1")
    assert r.status_code == 200
    m = r.json()
    assert m["uid"] == 1 and m["folder"] == "INBOX"
    assert m["subject"] == "Quarterly report"
    assert m["message_id"] == "<q1@lab.net>" and m["in_reply_to"] is None
    assert m["sender"] == m["from"] == m["reply_to"]
    assert m["bcc"] == []
    assert m["text"] == "Numbers attached, café."  # the CRLF before "--" is the delimiter's
    assert "attached" in m["html"]
    for bad in ("script", "steal", "onclick", "javascript"):
        assert bad not in m["html"]
    assert m["attachments"] == [
        {
            "part": "2",
            "content_type": "application/pdf",
            "filename": "report.pdf",
            "size": len(base64.encodebytes(PDF).replace(b"\n", b"\r\n")) - 2,
            "disposition": "attachment",
            "content_id": None,
        },
        {
            "part": "3",
            "content_type": "text/plain",
            "filename": "报告.txt",
            "size": 6,
            "disposition": "attachment",
            "content_id": None,
        },
    ]
    headers = {h["name"]: h["value"] for h in m["headers"]}
    assert headers["From"] == "王小明 <bob@lab.net>"
    assert headers["Subject"] == "Quarterly report"
    assert headers["MIME-Version"] == "1.0"
    assert m["has_attachments"] is True


def test_get_plain_message_with_odd_header_encodings(c: TestClient) -> None:
    m = c.get(MSG + "/6").json()
    assert m["text"] == "Body 6\r\n" and m["html"] is None and m["attachments"] == []
    assert m["subject"] == "café zz\ufffd"  # blanks between encoded words go
    headers = {h["name"]: h["value"] for h in m["headers"]}
    assert headers["Subject"] == "café zz\ufffd"
    m2 = c.get(MSG + "/2").json()
    assert m2["subject"] == "Message 2" and m2["from"][0]["name"] == "Bob Li"


def test_bad_uid(c: TestClient) -> None:
    for uid in ("0", "abc", "4294967296", "-1", "1.0", "%EF%BC%91", "99999999999"):
        error(c.get(f"{MSG}/{uid}"), 400, "invalid_field", "uid")
        error(c.get(f"{MSG}/{uid}/flags"), 400, "invalid_field", "uid")
        error(c.delete(f"{MSG}/{uid}"), 400, "invalid_field", "uid")


def test_missing_message(c: TestClient) -> None:
    for path in ("", "/raw", "/flags", "/parts/1"):
        error(c.get(f"{MSG}/99{path}"), 404, "message_not_found")
    error(c.get("/api/v1/folders/Nope/messages/1"), 404, "folder_not_found")


def test_raw_message(c: TestClient) -> None:
    r = c.get(MSG + "/1/raw")
    assert r.status_code == 200
    assert r.headers["content-type"] == "message/rfc822"
    assert r.headers["content-disposition"].startswith('attachment; filename="1.eml"')
    assert r.content == MIXED


def test_message_parts(c: TestClient) -> None:
    r = c.get(MSG + "/1/parts/2")
    assert r.status_code == 200
    assert r.content == PDF
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith('attachment; filename="report.pdf"')
    assert r.headers["content-security-policy"].startswith("sandbox")
    assert r.headers["x-content-type-options"] == "nosniff"
    r = c.get(MSG + "/1/parts/3")
    assert r.content == "报告".encode()
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "filename*=UTF-8''%E6%8A%A5%E5%91%8A.txt" in r.headers["content-disposition"]
    r = c.get(MSG + "/1/parts/1.2")  # the HTML body, as sent (not sanitized: a download)
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert c.get(MSG + "/2/parts/1").content == b"Body 2\r\n"  # a single-part message
    error(c.get(MSG + "/1/parts/1"), 404, "part_not_found")  # multipart/alternative
    error(c.get(MSG + "/1/parts/9"), 404, "part_not_found")
    error(c.get(MSG + "/1/parts/1.9"), 404, "part_not_found")
    for bad in ("0", "x", "1.", "1..2", "01"):
        error(c.get(f"{MSG}/1/parts/{bad}"), 400, "invalid_field", "part")


# -- flags ---------------------------------------------------------------------------------


def test_flags(c: TestClient) -> None:
    assert c.get(MSG + "/3/flags").json() == {"uid": 3, "flags": ["\\Seen"]}
    r = c.put(MSG + "/3/flags", json={"flags": ["\\Flagged", "$Label1"]})
    assert r.status_code == 200
    assert r.json() == {"uid": 3, "flags": ["$Label1", "\\Flagged"]}
    r = c.patch(MSG + "/3/flags", json={"add": ["\\Seen", "$label1"], "remove": ["\\Flagged"]})
    assert r.json() == {"uid": 3, "flags": ["$Label1", "\\Seen"]}
    # additions first, then removals: a flag in both ends up removed
    r = c.patch(MSG + "/3/flags", json={"add": ["\\Answered"], "remove": ["\\Answered"]})
    assert r.json()["flags"] == ["$Label1", "\\Seen"]
    assert c.patch(MSG + "/3/flags", json={}).json()["flags"] == ["$Label1", "\\Seen"]
    assert c.put(MSG + "/3/flags", json={"flags": []}).json()["flags"] == []
    assert c.get(MSG).json()["messages"][3]["flags"] == []  # the list sees it
    error(c.put(MSG + "/99/flags", json={"flags": []}), 404, "message_not_found")
    error(c.patch(MSG + "/99/flags", json={"add": ["\\Seen"]}), 404, "message_not_found")


BAD_FLAGS: list[object] = [
    "\\Recent",  # session state
    "\\Bogus",
    "\\seen",  # system flags are written as IMAP writes them
    "two words",
    "(x",
    "a]b",
    'q"',
    "%",
    "*",
    "",
    "é",
    "tab\t",
    5,
    None,
    ["\\Seen"],
]


def test_invalid_flags(c: TestClient) -> None:
    for flag in BAD_FLAGS:
        error(c.put(MSG + "/3/flags", json={"flags": [flag]}), 400, "invalid_flag", "flags")
        error(c.patch(MSG + "/3/flags", json={"remove": [flag]}), 400, "invalid_flag", "remove")
    assert c.get(MSG + "/3/flags").json()["flags"] == ["\\Seen"]


def test_invalid_flag_requests(c: TestClient) -> None:
    error(c.put(MSG + "/3/flags", json={"flags": "\\Seen"}), 400, "invalid_field", "flags")
    error(c.put(MSG + "/3/flags", json={}), 400, "invalid_field", "flags")
    error(c.put(MSG + "/3/flags", json={"add": []}), 400, "invalid_field", "add")
    many = [f"k{i}" for i in range(MAX_FLAGS + 1)]
    error(c.patch(MSG + "/3/flags", json={"add": many}), 400, "invalid_field", "add")
    error(c.patch(MSG + "/3/flags", json={"add": ["x" * 257]}), 400, "invalid_flag", "add")
    assert c.get(MSG + "/3/flags").json()["flags"] == ["\\Seen"]  # nothing changed


# -- move and delete --------------------------------------------------------------------------


def test_move(c: TestClient) -> None:
    r = c.post(MSG + "/2/move", json={"to": "inbox/Work"})
    assert r.status_code == 200
    moved = r.json()
    assert moved["folder"] == "INBOX/Work" and moved["uid"] == 1
    assert r.headers["location"] == "/api/v1/folders/INBOX%2FWork/messages/1"
    assert c.get(r.headers["location"]).json()["subject"] == "Message 2"
    error(c.get(MSG + "/2"), 404, "message_not_found")
    error(c.post(MSG + "/2/move", json={"to": "Archive"}), 404, "message_not_found")
    error(c.post(MSG + "/3/move", json={"to": "Nope"}), 409, "destination_not_found", "to")
    error(c.post(MSG + "/3/move", json={"to": "INBOX"}), 409, "folder_in_use", "to")
    error(c.post(MSG + "/3/move", json={"to": "a%"}), 400, "invalid_folder_name", "to")
    error(c.post(MSG + "/3/move", json={"to": ["Archive"]}), 400, "invalid_field", "to")
    error(c.post(MSG + "/3/move", json={}), 400, "invalid_field", "to")
    error(
        c.post("/api/v1/folders/Nope/messages/3/move", json={"to": "Archive"}),
        404,
        "folder_not_found",
    )


def test_delete_moves_to_trash_then_removes(c: TestClient) -> None:
    r = c.delete(MSG + "/4")
    assert r.status_code == 200
    assert r.json() == {"permanent": False, "folder": "Trash", "uid": 1}
    error(c.get(MSG + "/4"), 404, "message_not_found")
    assert c.get("/api/v1/folders/Trash/messages/1").json()["subject"] == "Message 4"
    # From the trash it goes for good.
    assert c.delete("/api/v1/folders/Trash/messages/1").json() == {
        "permanent": True,
        "folder": None,
        "uid": None,
    }
    assert c.get("/api/v1/folders/Trash").json()["messages"] == 0
    error(c.delete("/api/v1/folders/Trash/messages/1"), 404, "message_not_found")
    error(c.delete(MSG + "/99"), 404, "message_not_found")
    error(c.delete("/api/v1/folders/Nope/messages/1"), 404, "folder_not_found")


def test_delete_permanently(c: TestClient) -> None:
    r = c.delete(MSG + "/5?permanent=true")
    assert r.json()["permanent"] is True
    assert c.get("/api/v1/folders/Trash").json()["messages"] == 0
    assert c.delete(MSG + "/3?permanent=false").json()["folder"] == "Trash"
    error(c.delete(MSG + "/2?permanent=yes"), 400, "invalid_field", "permanent")
    error(c.delete(MSG + "/99?permanent=true"), 404, "message_not_found")


def test_delete_in_a_trash_subfolder_is_permanent(c: TestClient) -> None:
    assert c.post("/api/v1/folders", json={"name": "Trash/Old"}).status_code == 201
    uid = c.post(MSG + "/2/move", json={"to": "Trash/Old"}).json()["uid"]
    assert c.delete(f"/api/v1/folders/Trash%2FOld/messages/{uid}").json()["permanent"] is True


def test_delete_recreates_a_missing_trash(c: TestClient, store: MailboxStore) -> None:
    store.delete_folder("Trash")  # as an IMAP client may
    assert c.delete(MSG + "/2").json() == {"permanent": False, "folder": "Trash", "uid": 1}
    assert c.get("/api/v1/folders/Trash").json()["special_use"] == "\\Trash"


def test_delete_uses_the_special_use_trash(c: TestClient, store: MailboxStore) -> None:
    store.rename_folder("Trash", "Deleted Items")  # RENAME keeps the special use
    r = c.delete(MSG + "/2")
    assert r.json()["folder"] == "Deleted Items"


# -- authentication and the generic errors -----------------------------------------------------


def test_authentication_required(c: TestClient) -> None:
    r = c.get("/api/v1/folders", auth=None)
    error(r, 401, "unauthorized")
    assert r.headers.get_list("www-authenticate") == OFFERS  # Windows auth, then Basic
    error(c.get("/api/v1/folders", auth=("alice@lab.net", "wrong")), 401, "unauthorized")
    error(
        c.get("/api/v1/folders", headers={"Authorization": "Basic !!!"}, auth=None),
        401,
        "unauthorized",
    )
    assert c.get("/api/v1/folders", auth=("LAB\\alice", PASSWORD)).status_code == 200
    assert c.get("/api/v1/folders", auth=("alice", PASSWORD)).status_code == 200


def test_https_required(org: Directory, store: MailboxStore) -> None:
    with make_client(org, base_url="http://bj-cas.lab.net") as plain_client:
        error(plain_client.get("/api/v1/folders"), 403, "forbidden")
        assert plain_client.get("/api/v1/openapi.json").status_code == 200
    with make_client(org, base_url="http://bj-cas.lab.net", require_tls=False) as proxied:
        assert proxied.get("/api/v1/folders").status_code == 200


def test_throttled(org: Directory, store: MailboxStore) -> None:
    with make_client(org, max_failures=2) as client:
        for _ in range(2):
            error(client.get("/api/v1/folders", auth=("alice", "bad")), 401, "unauthorized")
        r = client.get("/api/v1/folders")
        error(r, 429, "throttled")
        assert int(r.headers["retry-after"]) > 0


def test_unknown_resources_are_json_404(c: TestClient) -> None:
    for path in (
        "/api/v1",
        "/api/v1/",
        "/api/v1/nope",
        "/api/v1/folders/",
        "/api/v1/folders//messages",
        "/api/v1/folders/INBOX/messages/1/nope",
        "/api/v1/Folders",
    ):
        error(c.get(path), 404, "not_found")
    error(c.get("/api/v1/nope", auth=None), 404, "not_found")  # no credentials needed


def test_method_not_allowed(c: TestClient, org: Directory) -> None:
    r = c.put("/api/v1/folders")
    error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, HEAD, POST"
    r = c.post(MSG + "/1")
    error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, HEAD, DELETE"
    error(c.delete("/api/v1/openapi.json"), 405, "method_not_allowed")
    with TestClient(api_app(org), base_url="https://bj-cas.lab.net") as anonymous:
        r = anonymous.options(MSG + "/1/flags")  # no credentials needed
    assert r.status_code == 204 and r.headers["allow"] == "GET, HEAD, PUT, PATCH"
    r = c.head(MSG + "/1")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"


def test_body_must_be_json(c: TestClient) -> None:
    url = "/api/v1/folders"
    for headers in (
        {},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json; charset=latin-1"},
    ):
        r = c.post(url, content=b'{"name": "x"}', headers=headers)
        error(r, 415, "unsupported_media_type")
    ok = {"Content-Type": "application/json; charset=UTF-8"}
    assert c.post(url, content=b'{"name": "x"}', headers=ok).status_code == 201
    vendor = {"Content-Type": "application/merge-patch+json"}
    assert c.post(url, content=b'{"name": "y"}', headers=vendor).status_code == 201


INVALID_JSON = [
    b"",
    b"{",
    b"[]",
    b'"name"',
    b"null",
    b'{"name": NaN}',
    b'{"name": Infinity}',
    b"\xef\xbb\xbf{}",  # a BOM
    b'{"name": "\xff"}',  # not UTF-8
    b"[" * 30_000 + b"]" * 30_000,  # deeper than the parser goes
    b'{"name": ' + b"9" * 20_000 + b"}",  # an integer too long to convert
]


def test_invalid_json(c: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    for body in INVALID_JSON:
        r = c.post("/api/v1/folders", content=body, headers=headers)
        error(r, 400, "invalid_json")
        r = c.patch(MSG + "/3/flags", content=body, headers=headers)
        error(r, 400, "invalid_json")


def test_body_too_large(c: TestClient) -> None:
    big = json.dumps({"name": "x" * MAX_BODY}).encode()
    r = c.post("/api/v1/folders", content=big, headers={"Content-Type": "application/json"})
    error(r, 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"name": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"x" * 1000
        yield b'"}'

    r = c.post("/api/v1/folders", content=chunks(), headers={"Content-Type": "application/json"})
    error(r, 413, "too_large")


def test_bad_content_length(org: Directory, store: MailboxStore) -> None:
    """(httpx always sends a correct length: a hand-made request.)"""
    status, body, _ = asgi_request(
        org,
        "POST",
        b"/api/v1/folders",
        headers=[(b"content-type", b"application/json"), (b"content-length", b"12x")],
        body=b'{"name":"x"}',
    )
    assert status == 400 and body["error"]["code"] == "invalid_json"


# -- hostile paths --------------------------------------------------------------------------------


def asgi_request(
    d: Directory,
    method: str,
    raw_path: bytes,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    path: str | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Drive the app with a hand-made ASGI scope (a raw path no HTTP client would send)."""
    import asyncio
    import urllib.parse

    app = api_app(d)
    token = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path if path is not None else urllib.parse.unquote(raw_path.decode("latin-1")),
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bj-cas.lab.net"), (b"authorization", b"Basic " + token)]
        + (headers or []),
        "client": ("127.0.0.1", 50000),
        "server": ("bj-cas.lab.net", 443),
    }
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], json.loads(content) if content else {}, headers_out


def test_dot_segments_are_refused(org: Directory, store: MailboxStore) -> None:
    for raw in (b"/api/v1/folders/../messages", b"/api/v1/folders/./messages"):
        status, body, _ = asgi_request(org, "GET", raw)
        assert status == 400 and body["error"]["code"] == "invalid_path"


def test_odd_folder_names_stay_folder_names(org: Directory, store: MailboxStore) -> None:
    # Encoded, ".." is just a folder name, and there is none.
    status, body, _ = asgi_request(org, "GET", b"/api/v1/folders/%2E%2E/messages")
    assert status == 404 and body["error"]["code"] == "folder_not_found"
    status, body, _ = asgi_request(org, "GET", b"/api/v1/folders/..%2F..%2Fetc%2Fpasswd")
    assert status == 404 and body["error"]["code"] == "folder_not_found"
    status, body, _ = asgi_request(org, "GET", b"/api/v1/folders/%FF%FE")
    assert status == 400 and body["error"]["code"] == "invalid_path"
    # A folder really named ".." works when encoded.
    store.create_folder("..")
    status, body, _ = asgi_request(org, "GET", b"/api/v1/folders/%2e%2e")
    assert status == 200 and body["name"] == ".."


def test_path_without_raw_path(org: Directory, store: MailboxStore) -> None:
    """A server that gives no raw_path: the decoded path is used (no %2F then)."""
    status, body, _ = asgi_request(org, "GET", b"", path="/api/v1/folders/INBOX")
    assert status == 200 and body["name"] == "INBOX"


def test_unicode_folder_names(c: TestClient) -> None:
    r = c.post("/api/v1/folders", json={"name": "客户/北京"})
    assert r.status_code == 201
    assert r.headers["location"] == "/api/v1/folders/%E5%AE%A2%E6%88%B7%2F%E5%8C%97%E4%BA%AC"
    assert c.get(r.headers["location"]).json()["display_name"] == "北京"


# -- the preferred endpoint -------------------------------------------------------------------


def test_redirect_to_the_users_server(org: Directory, store: MailboxStore) -> None:
    """bob's DB03 (SH) names CAS03: CAS01 (BJ) sends him there, path and query kept."""
    with make_client(org) as client:
        path = "/api/v1/folders/INBOX%2FWork/messages?limit=3"
        r = client.get(path, auth=("bob@lab.net", PASSWORD))
        err = error(r, 307, "wrong_endpoint")
        assert err["endpoint"] == "CAS03.lab.net"
        assert r.headers["location"] == "https://CAS03.lab.net" + path
    with make_client(org, "CAS03") as client:
        assert client.get("/api/v1/folders", auth=("bob@lab.net", PASSWORD)).status_code == 200


def test_redirect_to_the_array_of_the_users_site(org: Directory, store: MailboxStore) -> None:
    with make_client(org, "CAS03") as client:  # SH; alice's DB01 names the BJ array
        r = client.delete(MSG + "/1")
        assert error(r, 307, "wrong_endpoint")["endpoint"] == "bj-cas.lab.net"
        assert r.headers["location"] == "https://bj-cas.lab.net" + MSG + "/1"
    assert c_get_ok(org, "CAS02")  # any member of the BJ array serves her


def c_get_ok(d: Directory, server: str) -> bool:
    with make_client(d, server) as client:
        return client.get("/api/v1/folders").status_code == 200


def test_redirect_keeps_the_advertised_https_port(org: Directory, store: MailboxStore) -> None:
    with make_client(org, "CAS03", ports=ServicePorts.offset(10_000)) as client:
        r = client.get("/api/v1/folders")
        assert r.headers["location"] == "https://bj-cas.lab.net:10443/api/v1/folders"


def test_old_database_naming_one_server(org: Directory, store: MailboxStore) -> None:
    org.databases.set("DB01", rpc_client_access_server="CAS01.lab.net")
    assert c_get_ok(org, "CAS01")
    with make_client(org, "CAS02") as client:
        r = client.get("/api/v1/folders")
        assert error(r, 307, "wrong_endpoint")["endpoint"] == "CAS01.lab.net"


def test_cross_site_access_allowed(org: Directory, store: MailboxStore) -> None:
    org.servers.set_client_access("CAS03", allow_cross_site_rpc_client_access=True)
    assert c_get_ok(org, "CAS03")


def test_site_without_client_access(org: Directory, store: MailboxStore) -> None:
    with make_client(org) as client:
        r = client.get("/api/v1/folders", auth=("carol@lab.net", PASSWORD))
        err = error(r, 503, "no_endpoint")
        assert "DB04" in err["message"]


def test_dismounted_database(org: Directory, store: MailboxStore) -> None:
    org.databases.set_mounted("DB01", False)
    with make_client(org) as client:
        err = error(client.get("/api/v1/folders"), 503, "database_unavailable")
        assert "Mount-Database" in err["message"]


def test_other_users_never_see_alices_mail(org: Directory, store: MailboxStore) -> None:
    org.mailboxes.new(
        name="Dan Zhao", alias="dan", database="DB01", password_hash=cheap_hash(PASSWORD)
    )
    with make_client(org) as client:
        r = client.get(MSG, auth=("dan@lab.net", PASSWORD))
        assert r.status_code == 200 and r.json()["messages"] == []
        error(client.get(MSG + "/1", auth=("dan@lab.net", PASSWORD)), 404, "message_not_found")


def test_other_paths_are_not_the_apis(c: TestClient) -> None:
    r = c.get("/api/v2/folders")
    assert r.status_code == 404 and not r.headers["content-type"].startswith("application/json")


# -- failures inside ------------------------------------------------------------------------------


def test_directory_failure_is_503(c: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> None:
        raise DirectoryError("The directory is being restored.")

    monkeypatch.setattr(api, "preferred_endpoint", broken)
    err = error(c.get("/api/v1/folders"), 503, "directory_unavailable")
    assert err["message"] == "The directory is being restored."


def test_a_bug_is_a_json_500(
    c: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api.api_message, "view", broken)
    error(c.get(MSG + "/1"), 500, "internal_error")
    assert "boom" in caplog.text  # logged with its traceback, not sent


def test_lone_surrogates_never_break_a_response() -> None:
    body = api.ApiJSONResponse({"name": "caf\udce9", "ok": "é"}).body
    assert json.loads(bytes(body).decode("utf-8")) == {"name": "caf\ufffd", "ok": "é"}


# -- the message view on its own ------------------------------------------------------------------

FORWARD = (
    b"From: a@lab.net\r\nSubject: Fwd\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b'--b\r\nContent-Type: text/html\r\n\r\n<p>see <img src="cid:logo"></p>\r\n'
    b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo>\r\n"
    b"Content-Disposition: inline\r\n\r\nPNG\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: z@lab.net\r\nSubject: inner\r\n\r\ninner body\r\n"
    b"--b--\r\n"
)


def view_of(raw: bytes) -> dict[str, Any]:
    import datetime

    from casarray.access.http import api_message
    from casarray.mailstore.interface import MessageInfo
    from casarray.mailstore.mime import cached_parts

    info = MessageInfo(7, frozenset(), datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), 9, 1)
    view = api_message.view(raw, info, "INBOX", cached_parts(raw))
    assert api_message.summary(info, cached_parts(raw))["uid"] == 7
    return view


def test_view_of_a_forward_with_an_inline_image() -> None:
    m = view_of(FORWARD)
    assert m["text"] is None and m["html"] == '<p>see <img src="cid:logo"></p>'
    assert [
        (a["part"], a["content_type"], a["content_id"], a["disposition"]) for a in m["attachments"]
    ] == [
        ("2", "image/png", "<logo>", "inline"),
        ("3", "message/rfc822", None, None),
    ]
    assert m["has_attachments"] is True
    assert m["internal_date"] == "2024-01-01T00:00:00+00:00" and m["date"] is None


def test_view_of_a_message_without_headers_or_body() -> None:
    m = view_of(b"")
    assert m["subject"] is None and m["from"] == [] and m["headers"] == []
    assert m["text"] == "" and m["attachments"] == []


def test_forwarded_message_part_is_the_whole_inner_message(
    c: TestClient, store: MailboxStore
) -> None:
    uid = store.append("INBOX", FORWARD).uid
    r = c.get(f"{MSG}/{uid}/parts/3")
    assert r.headers["content-type"] == "message/rfc822"
    assert r.content.startswith(b"From: z@lab.net")
    assert c.get(MSG).json()["messages"][0]["has_attachments"] is True
