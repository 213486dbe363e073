"""exchangelib 5.x (PyPI) against the EWS of a Client Access server served by
uvicorn on a loopback port, with an explicit endpoint and Basic authentication:
folders, listing, filtering and paging an inbox of more than 100 messages, bodies and
attachments' metadata, ResolveNames, ids that any server of the array decodes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

exchangelib = pytest.importorskip("exchangelib")

from exchangelib import (  # noqa: E402
    BASIC,
    DELEGATE,
    Account,
    Build,
    Configuration,
    Credentials,
    EWSDateTime,
    Message,
    Version,
)
from exchangelib.errors import ErrorAccessDenied, ErrorItemNotFound  # noqa: E402

from casarray.access.http import AppContext, create_app  # noqa: E402
from casarray.access.imap.directory_backend import LoginThrottle  # noqa: E402
from casarray.directory import Directory  # noqa: E402
from casarray.mailstore.interface import MailboxStore  # noqa: E402
from casarray.mailstore.store import close_all  # noqa: E402
from tests.access.http import Served, build_org  # noqa: E402
from tests.access.http.test_api import MIXED, PASSWORD, cheap_hash, mailbox_store  # noqa: E402

COUNT = 130
START = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def numbered(n: int) -> bytes:
    sender = b"Bob Li <bob@lab.net>" if n % 3 else b"Carol Zhou <carol@lab.net>"
    return (
        b"From: " + sender + b"\r\nTo: Alice Wang <alice@lab.net>\r\n"
        b"Subject: Report " + str(n).encode() + (b" urgent" if n % 10 == 0 else b"") + b"\r\n"
        b"Date: "
        + (START + timedelta(minutes=n)).strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
        + b"\r\nMessage-ID: <n"
        + str(n).encode()
        + b"@lab.net>\r\n\r\nBody of "
        + str(n).encode()
        + b"\r\n"
    )


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(bj: Directory) -> Iterator[Directory]:
    d = build_org(bj, cheap_hash(PASSWORD))
    yield d
    close_all()


@pytest.fixture
def inbox(org: Directory) -> MailboxStore:
    store = mailbox_store(org, "alice")
    store.append_many(
        "INBOX",
        [
            (numbered(n), ["\\Seen"] if n % 2 else [], START + timedelta(minutes=n))
            for n in range(1, COUNT + 1)
        ],
    )
    store.append("INBOX", MIXED, internal_date=START + timedelta(days=1))
    store.create_folder("INBOX/Work")
    return store


def serve(d: Directory, server: str) -> Served:
    throttle = LoginThrottle(max_failures=50)
    ctx = AppContext.for_server(d, server, throttle=throttle, require_tls=False)
    return Served(create_app(ctx), None)


@pytest.fixture
def cas01(org: Directory, inbox: MailboxStore) -> Iterator[Served]:
    with serve(org, "CAS01") as served:
        yield served


def account(served: Served, user: str = "alice@lab.net") -> Any:
    config = Configuration(
        service_endpoint=f"http://127.0.0.1:{served.port}/EWS/Exchange.asmx",
        credentials=Credentials(user, PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(14, 3, 123, 4)),
        max_connections=2,
    )
    return Account(user, config=config, autodiscover=False, access_type=DELEGATE)


def test_folders(cas01: Served) -> None:
    a = account(cas01)
    assert a.inbox.name == "Inbox"
    assert a.inbox.total_count == COUNT + 1
    assert a.inbox.unread_count == COUNT // 2 + 1
    assert a.sent.name == "Sent"
    assert a.trash.name == "Trash"
    children = [f.name for f in a.inbox.children]
    assert children == ["Work"]
    top = {f.name for f in a.msg_folder_root.children}
    assert {"Inbox", "Sent", "Drafts", "Trash", "Junk", "Archive", "Calendar"} <= top


def test_list_filter_and_page_the_inbox(cas01: Served) -> None:
    a = account(cas01)
    everything = list(a.inbox.all().only("subject", "is_read", "datetime_received"))
    assert len(everything) == COUNT + 1
    assert everything[0].subject == "Quarterly report"  # newest first
    assert everything[1].subject == f"Report {COUNT} urgent"
    assert len({m.id for m in everything}) == COUNT + 1
    urgent = a.inbox.filter(subject__contains="urgent")
    assert sorted(m.subject for m in urgent) == sorted(
        f"Report {n} urgent" for n in range(10, COUNT + 1, 10)
    )
    assert a.inbox.filter(is_read=False).count() == COUNT // 2 + 1
    since = EWSDateTime.from_datetime(START + timedelta(minutes=COUNT - 5))
    recent = a.inbox.filter(datetime_received__gt=since).order_by("datetime_received")
    assert [m.subject for m in recent][:5] == [
        f"Report {n}" + (" urgent" if n % 10 == 0 else "") for n in range(COUNT - 4, COUNT + 1)
    ]
    page = list(a.inbox.all().order_by("subject")[100:110])
    assert len(page) == 10
    assert a.inbox.all().count() == COUNT + 1


def test_bodies_and_attachments(cas01: Served) -> None:
    a = account(cas01)
    [m] = a.inbox.filter(subject="Quarterly report")
    assert isinstance(m, Message)
    assert "Numbers" in m.body and "<b>attached</b>" in m.body
    assert m.text_body is None  # item:TextBody is Exchange 2013's
    assert m.has_attachments
    names = sorted(att.name for att in m.attachments)
    assert names == ["report.pdf", "\u62a5\u544a.txt"]
    pdf = next(att for att in m.attachments if att.name == "report.pdf")
    assert pdf.content_type == "application/pdf"
    assert m.sender.email_address == "bob@lab.net"
    assert [r.email_address for r in m.to_recipients] == [
        "alice@lab.net",
        "carol@lab.net",
        "dave@lab.net",
    ]
    [n] = a.inbox.filter(subject="Report 7")
    assert n.body.strip() == "Body of 7"
    assert n.is_read


def test_ids_are_the_same_from_every_array_member(org: Directory, cas01: Served) -> None:
    a = account(cas01)
    first = list(a.inbox.all().only("subject")[:3])
    ids = [(m.id, m.changekey) for m in first]
    with serve(org, "CAS02") as cas02:
        b = account(cas02)
        again = list(b.fetch(ids=ids, only_fields=["subject"]))
        assert [m.subject for m in again] == [m.subject for m in first]


def test_another_users_ids_are_refused(org: Directory, cas01: Served) -> None:
    alice = account(cas01)
    [m] = alice.inbox.all().only("subject")[:1]
    mailbox_store(org, "bob").append("INBOX", numbered(1))
    with serve(org, "CAS03") as cas03:
        bob = account(cas03, "bob@lab.net")
        with pytest.raises((ErrorAccessDenied, ErrorItemNotFound)) as refused:
            list(bob.fetch(ids=[(m.id, m.changekey)]))
        assert "Quarterly" not in str(refused.value) and "Report" not in str(refused.value)


def test_resolve_names(cas01: Served) -> None:
    a = account(cas01)
    [found] = a.protocol.resolve_names(["bob"])
    assert found.email_address == "bob@lab.net"
    assert found.name == "Bob Li"
