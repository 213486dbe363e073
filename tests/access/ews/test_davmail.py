"""DavMail (Debian's davmail-server, headless, EWS mode) against the EWS of a Client
Access server served by uvicorn on a loopback port: DavMail re-exports alice's mailbox
as IMAP and SMTP on loopback, and imaplib and smtplib drive it as a mail client would.

What DavMail does for each step is EWS: a login is GetFolder(root), ConvertId (with a
placeholder Mailbox, blah@blah.com, which the server ignores) and GetFolder of the
distinguished folders; LIST is FindFolder restricted on PR_CONTAINER_CLASS; SELECT and
FETCH are FindItem (sorted on PR_INTERNET_ARTICLE_NUMBER 0x0E23, DavMail's IMAP UID)
and GetItem with MimeContent; SEARCH HEADER is FindItem with Contains on
PR_TRANSPORT_MESSAGE_HEADERS; STORE is UpdateItem; MOVE is MoveItem; EXPUNGE is
DeleteItem; SMTP's DATA is CreateItem with MimeContent. DavMail asks for folders' and
messages' MAPI properties by tag (ExtendedFieldURI). A step whose EWS operation is not
registered skips, naming it. A request of DavMail's that casarray's EWS answers with an
EWS error (DavMail relays it as `BAD unable to handle request: <code> ...`) fails the
test naming that error.
"""

from __future__ import annotations

import contextlib
import email
import imaplib
import smtplib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from casarray.access.http import AppContext, create_app
from casarray.access.imap.directory_backend import LoginThrottle
from casarray.mailstore.provisioning import open_mailbox
from casarray.mailstore.store import close_all
from tests.access.http import Served
from tests.peers import davmail
from tests.transport.harness import PASSWORD, Org, TransportProcess, make_org

pytestmark = pytest.mark.skipif(davmail.missing() is not None, reason=davmail.missing() or "")

START = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
COUNT = 12


def operations_missing(*names: str) -> None:
    """Skip the rest of a test when an EWS operation it needs isn't registered yet."""
    from casarray.access.ews.operations import OPERATIONS

    absent = [name for name in names if name not in OPERATIONS]
    if absent:
        pytest.skip(f"EWS {', '.join(absent)} not in casarray.access.ews.operations yet")


GAP = "unable to handle request: "


@contextlib.contextmanager
def server_gaps(peer: davmail.DavMailPeer) -> Iterator[None]:
    """An EWS error that DavMail relays, or its login failing on the ConvertId of the
    root folder, fails the test naming what the server refused."""
    try:
        yield
    except imaplib.IMAP4.error as exc:
        text = str(exc)
        if GAP in text:
            error = text.split(GAP, 1)[1].split("request:", 1)[0].strip()
            pytest.fail(f"casarray's EWS refuses a request of DavMail's: {error}")
        if "LOGIN failed" in text and "Unable to resolve email from root folder" in peer.output():
            pytest.fail("DavMail's ConvertId of the root folder's EwsId failed")
        raise


def numbered(n: int) -> bytes:
    return (
        b"From: Bob Li <bob@lab.net>\r\nTo: Alice Wang <alice@lab.net>\r\n"
        b"Subject: DavMail " + str(n).encode() + b"\r\n"
        b"Date: "
        + (START + timedelta(minutes=n)).strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
        + b"\r\nMessage-ID: <dm"
        + str(n).encode()
        + b"@lab.net>\r\n\r\nBody number "
        + str(n).encode()
        + b"\r\n"
    )


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    """CAS01 and MBX01 (Mailbox, Hub Transport) in site BJ; alice and bob in DB01, with
    the NT hash a password set keeps (DavMail may answer the server's NTLM offer);
    alice's INBOX holds COUNT messages and a folder INBOX/Work."""
    org = make_org(tmp_path / "org", password_hash)
    monkeypatch.setenv("CASARRAY_HOME", str(org.home))
    for alias in ("alice", "bob"):
        org.add_user(alias)
        org.directory.mailboxes.set(alias, password=PASSWORD)
    mailbox = org.directory.mailboxes.one("alice")
    store = open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)
    store.append_many(
        "INBOX",
        [(numbered(n), [], START + timedelta(minutes=n)) for n in range(1, COUNT + 1)],
    )
    store.create_folder("INBOX/Work")
    yield org
    close_all()
    org.directory.close()


@pytest.fixture
def transport(org: Org) -> Iterator[TransportProcess]:
    process = TransportProcess(org).start()
    yield process
    process.close()


@pytest.fixture
def cas01(org: Org, transport: TransportProcess) -> Iterator[Served]:
    throttle = LoginThrottle(max_failures=50)
    ctx = AppContext.for_server(org.directory, "CAS01", throttle=throttle, require_tls=False)
    with Served(create_app(ctx), None) as served:
        yield served


@pytest.fixture
def peer(cas01: Served) -> Iterator[davmail.DavMailPeer]:
    url = f"http://127.0.0.1:{cas01.port}/EWS/Exchange.asmx"
    with davmail.DavMailPeer(url) as running:
        yield running


def login(peer: davmail.DavMailPeer, user: str = "alice@lab.net") -> imaplib.IMAP4:
    client = imaplib.IMAP4(davmail.HOST, peer.imap_port, timeout=60)
    with server_gaps(peer):
        client.login(user, PASSWORD)
    return client


def names(client: imaplib.IMAP4) -> list[str]:
    typ, lines = client.list()
    assert typ == "OK", lines
    out = []
    for line in lines:
        assert isinstance(line, bytes)
        name = line.rsplit(b" ", 1)[-1].strip(b'"').decode()
        out.append(name)
    return out


def subjects(client: imaplib.IMAP4, folder: str) -> list[str]:
    typ, data = client.select(f'"{folder}"')
    assert typ == "OK", data
    typ, data = client.uid("SEARCH", "ALL")
    assert typ == "OK", data
    uids = data[0].split() if data and data[0] else []
    if not uids:
        return []
    typ, data = client.uid(
        "FETCH", b",".join(uids).decode(), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
    )
    assert typ == "OK", data
    out = []
    for part in data:
        if isinstance(part, tuple):
            header = email.message_from_bytes(part[1], policy=default_policy)
            out.append(str(header["Subject"]))
    return sorted(out)


def test_list_select_and_fetch(peer: davmail.DavMailPeer) -> None:
    imap = login(peer)
    with server_gaps(peer):
        list_select_and_fetch(imap)


def list_select_and_fetch(imap: imaplib.IMAP4) -> None:
    folders = names(imap)
    assert "INBOX" in folders
    assert "INBOX/Work" in folders, " ".join(folders)
    assert {"Sent", "Trash", "Drafts"} <= set(folders), folders

    typ, data = imap.select("INBOX")
    assert typ == "OK", data
    assert int(data[0]) == COUNT
    typ, data = imap.search(None, "UNSEEN")
    assert typ == "OK"
    assert len(data[0].split()) == COUNT

    typ, data = imap.fetch("1:*", "(FLAGS ENVELOPE)")
    assert typ == "OK", data
    envelopes = b" ".join(p if isinstance(p, bytes) else p[0] for p in data)
    for n in range(1, COUNT + 1):
        assert b'"DavMail ' + str(n).encode() + b'"' in envelopes

    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    assert typ == "OK", data
    raw = next(p[1] for p in data if isinstance(p, tuple))
    message = email.message_from_bytes(raw, policy=default_policy)
    assert str(message["Subject"]).startswith("DavMail ")
    assert message["From"] == "Bob Li <bob@lab.net>"
    body = message.get_body(("plain",))
    assert body is not None and body.get_content().startswith("Body number ")
    assert subjects(imap, "INBOX/Work") == []


def test_flag_move_and_delete(peer: davmail.DavMailPeer) -> None:
    operations_missing("UpdateItem")
    imap = login(peer)
    with server_gaps(peer):
        flag_move_and_delete(imap)


def flag_move_and_delete(imap: imaplib.IMAP4) -> None:
    typ, data = imap.select("INBOX")
    assert typ == "OK", data
    typ, data = imap.uid("SEARCH", "HEADER", "Subject", '"DavMail 3"')
    [uid3] = data[0].split()
    typ, data = imap.uid("STORE", uid3.decode(), "+FLAGS", "(\\Seen)")
    assert typ == "OK", data
    imap.close()
    imap.select("INBOX")
    typ, data = imap.uid("FETCH", uid3.decode(), "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = imap.search(None, "UNSEEN")
    assert len(data[0].split()) == COUNT - 1

    operations_missing("MoveItem")
    typ, data = imap.uid("SEARCH", "HEADER", "Subject", '"DavMail 4"')
    [uid4] = data[0].split()
    typ, data = imap.uid("MOVE", uid4.decode(), '"INBOX/Work"')
    assert typ == "OK", data
    assert subjects(imap, "INBOX/Work") == ["DavMail 4"]
    assert "DavMail 4" not in subjects(imap, "INBOX")

    operations_missing("DeleteItem")
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "HEADER", "Subject", '"DavMail 5"')
    [uid5] = data[0].split()
    typ, data = imap.uid("STORE", uid5.decode(), "+FLAGS", "(\\Deleted)")
    assert typ == "OK", data
    typ, data = imap.expunge()
    assert typ == "OK", data
    left = subjects(imap, "INBOX")
    assert "DavMail 5" not in left
    assert len(left) == COUNT - 2


def test_send_to_another_mailbox(peer: davmail.DavMailPeer) -> None:
    operations_missing("CreateItem")
    message = EmailMessage()
    message["From"] = "Alice Wang <alice@lab.net>"
    message["To"] = "Bob Li <bob@lab.net>"
    message["Subject"] = "Through DavMail"
    message["Message-ID"] = "<davmail-send-1@lab.net>"
    message.set_content("Sent with smtplib through DavMail's SMTP, over EWS.\n")
    with smtplib.SMTP(davmail.HOST, peer.smtp_port, timeout=60) as smtp:
        try:
            smtp.login("alice@lab.net", PASSWORD)
        except smtplib.SMTPAuthenticationError:
            with server_gaps(peer):
                raise imaplib.IMAP4.error("LOGIN failed") from None
        refused = smtp.send_message(message)
    assert refused == {}

    # bob reads it with his own client: DavMail again, as bob
    client = login(peer, "bob@lab.net")
    with server_gaps(peer):
        deadline = time.monotonic() + 20
        while "Through DavMail" not in subjects(client, "INBOX"):
            assert time.monotonic() < deadline, "the message never reached bob's INBOX"
            time.sleep(0.5)
    client.logout()
