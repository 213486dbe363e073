"""Sending from web mail, end to end: the Client Access server's web mail (in process)
submits to a real Hub Transport process (`casarray transport run MBX01`, harness of
tests/transport) over SMTP, authenticated as CAS01's computer account; the message is
delivered to the recipients' INBOXes and its copy is in the sender's Sent Items.
Compose with Cc, Bcc and an attachment (byte for byte), reply and forward (quoted, with
In-Reply-To and References, the forward with the original's attachment), a refused
recipient (named; nothing sent, no copy), and the CSRF check.

Also what the JSON API's tests share (`test_api_send`): the organization, the
transport process and the mail store readers."""

from __future__ import annotations

import email
import email.policy
import html
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from casarray.access.http import AppContext, create_app
from casarray.directory.lockout import MemoryLockout
from casarray.mailstore.provisioning import open_mailbox
from casarray.mailstore.store import close_all
from tests.access.http.test_owa import sign_in, token
from tests.transport.harness import Org, TransportProcess, make_org, wait_for

pytestmark = pytest.mark.integration  # a real Hub Transport process
ATTACHMENT = bytes(range(256)) * 300 + b"\r\n.\r\n\x00end"  # binary, with a lone dot line
FIELD = re.compile(
    r'<input type="(?:hidden|text)"(?: id="[a-z]+")? name="([a-z_]+)" value="([^"]*)"'
)
TEXTAREA = re.compile(r'<textarea id="body" name="body" rows="18">(.*?)</textarea>', re.S)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    """MBX01 (Mailbox, HubTransport) and CAS01 in site BJ; alice, bob and carol in DB01.
    $CASARRAY_HOME is the organization's folder, where the transport writes its status
    file (the Client Access server reads its ports there)."""
    org = make_org(tmp_path / "org", password_hash)
    monkeypatch.setenv("CASARRAY_HOME", str(org.home))
    for alias in ("alice", "bob", "carol"):
        org.add_user(alias)
    yield org
    close_all()
    org.directory.close()


@pytest.fixture
def transport(org: Org) -> Iterator[TransportProcess]:
    process = TransportProcess(org).start()
    yield process
    process.close()


def cas_app(org: Org) -> object:
    context = AppContext.for_server(org.directory, "CAS01", throttle=MemoryLockout())
    return create_app(context)


def folder_messages(org: Org, alias: str, special_use: str | None = None) -> list[bytes]:
    """The messages of the user's INBOX (or of the folder with `special_use`)."""
    mailbox = org.directory.mailboxes.one(alias)
    store = open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)
    name = "INBOX"
    if special_use is not None:
        found = [f.name for f in store.folders() if f.special_use == special_use]
        if not found:
            return []
        name = found[0]
    uids = [m.uid for m in store.messages(name)]
    bodies = store.bodies(name, uids)
    return [bodies[uid] for uid in uids]


def sent_flags(org: Org, alias: str) -> list[frozenset[str]]:
    mailbox = org.directory.mailboxes.one(alias)
    store = open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)
    [sent] = [f.name for f in store.folders() if f.special_use == "\\Sent"]
    return list(store.uid_flags(sent).flags)


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def attachments_of(message: EmailMessage) -> dict[str, bytes]:
    found = {}
    for part in message.iter_attachments():
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        found[str(part.get_filename())] = data
    return found


def delivered(org: Org, alias: str, count: int = 1) -> list[EmailMessage]:
    messages = wait_for(lambda: len(folder_messages(org, alias)) >= count and True)
    assert messages, f"{alias} got no mail"
    return [parsed(raw) for raw in folder_messages(org, alias)]


@pytest.fixture
def owa(org: Org, transport: TransportProcess) -> Iterator[TestClient]:
    """alice signed in to web mail at CAS01."""
    with TestClient(
        cas_app(org), base_url="https://cas01.lab.net", follow_redirects=False
    ) as client:
        response = sign_in(client)
        assert response.status_code == 303, response.text
        yield client


def send_form(client: TestClient, page: str, **fields: object) -> object:
    """The compose form at `page` sent as a browser would, with `fields` changed."""
    form = client.get(page)
    assert form.status_code == 200, form.text
    data = {name: html.unescape(value) for name, value in FIELD.findall(form.text)}
    found = TEXTAREA.search(form.text)
    assert found is not None
    data["body"] = html.unescape(found.group(1))
    files = fields.pop("files", None)
    data.update({k: str(v) for k, v in fields.items()})
    return client.post("/owa/send", data=data, files=files)  # type: ignore[arg-type]


def test_compose_with_cc_bcc_and_attachment(org: Org, owa: TestClient) -> None:
    response = send_form(
        owa,
        "/owa/compose",
        to="Bob <bob@lab.net>",
        bcc="carol@lab.net",
        subject="Quarterly numbers",
        body="Hi Bob,\nthe numbers.\n.\nAlice",
        files=[("attachments", ("numbers.bin", ATTACHMENT, "application/octet-stream"))],
    )
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]
    assert response.headers["location"] == "/owa?sent=1"  # type: ignore[attr-defined]
    assert "Your message was sent." in owa.get("/owa?sent=1").text

    [to_bob] = delivered(org, "bob")
    assert to_bob["Subject"] == "Quarterly numbers"
    assert to_bob["From"].addresses[0].addr_spec == "alice@lab.net"
    assert to_bob["From"].addresses[0].display_name == "Alice"
    assert to_bob["Bcc"] is None and to_bob["Message-ID"] and to_bob["Date"]
    body = to_bob.get_body(preferencelist=("plain",))
    assert body is not None and "the numbers.\r\n.\r\nAlice" in body.get_content()
    assert attachments_of(to_bob) == {"numbers.bin": ATTACHMENT}
    [to_carol] = delivered(org, "carol")  # Bcc: the envelope only
    assert to_carol["Bcc"] is None and to_carol["Message-ID"] == to_bob["Message-ID"]

    [copy] = [parsed(raw) for raw in folder_messages(org, "alice", "\\Sent")]
    assert copy["Message-ID"] == to_bob["Message-ID"]
    assert copy["Bcc"] == "carol@lab.net"  # the sender's copy keeps it
    assert attachments_of(copy) == {"numbers.bin": ATTACHMENT}
    assert sent_flags(org, "alice") == [frozenset({"\\Seen"})]
    assert folder_messages(org, "alice") == []  # nothing came back to alice


def test_reply_reply_all_and_forward(org: Org, owa: TestClient) -> None:
    original = (
        b"From: Bob <bob@lab.net>\r\n"
        b"To: Alice <alice@lab.net>, carol@lab.net\r\n"
        b"Subject: Plans\r\n"
        b"Date: Mon, 02 Jun 2025 09:30:00 +0800\r\n"
        b"Message-ID: <plans-2@lab.net>\r\n"
        b"References: <plans-1@lab.net>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n'
        b"\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Shall we meet on Friday?\r\n"
        b"--b\r\nContent-Type: application/pdf\r\n"
        b'Content-Disposition: attachment; filename="agenda.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKYWdlbmRh\r\n--b--\r\n"
    )
    mailbox = org.directory.mailboxes.one("alice")
    store = open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)
    uid = store.append("INBOX", original).uid

    page = f"/owa/compose?action=reply&folder=INBOX&uid={uid}"
    form = owa.get(page).text
    assert 'value="Bob &lt;bob@lab.net&gt;"' in form and 'value="RE: Plans"' in form
    response = send_form(owa, page, to="Bob <bob@lab.net>", subject="RE: Plans")
    assert response.status_code == 303  # type: ignore[attr-defined]
    [reply] = delivered(org, "bob")
    assert reply["Subject"] == "RE: Plans"
    assert reply["In-Reply-To"] == "<plans-2@lab.net>"
    assert reply["References"] == "<plans-1@lab.net> <plans-2@lab.net>"
    text = reply.get_body(preferencelist=("plain",))
    assert text is not None and "Shall we meet on Friday?" in text.get_content()
    assert "From: Bob <bob@lab.net>" in text.get_content()

    replyall = owa.get(f"/owa/compose?action=replyall&folder=INBOX&uid={uid}").text
    assert 'name="cc" value="carol@lab.net"' in replyall  # not alice herself

    page = f"/owa/compose?action=forward&folder=INBOX&uid={uid}"
    form = owa.get(page).text
    assert "agenda.pdf" in form and 'value="FW: Plans"' in form
    response = send_form(owa, page, to="carol@lab.net", subject="FW: Plans")
    assert response.status_code == 303  # type: ignore[attr-defined]
    [forward] = delivered(org, "carol")
    assert forward["Subject"] == "FW: Plans"
    assert forward["References"] == "<plans-1@lab.net> <plans-2@lab.net>"
    assert attachments_of(forward) == {"agenda.pdf": b"%PDF-1.4\nagenda"}
    text = forward.get_body(preferencelist=("plain",))
    assert text is not None and "Shall we meet on Friday?" in text.get_content()
    assert len(folder_messages(org, "alice", "\\Sent")) == 2


def test_refused_recipient_is_named_and_nothing_is_sent(org: Org, owa: TestClient) -> None:
    response = send_form(
        owa, "/owa/compose", to="bob@lab.net, nobody@lab.net", subject="x", body="y"
    )
    assert response.status_code == 400  # type: ignore[attr-defined]
    text = response.text  # type: ignore[attr-defined]
    assert "nobody@lab.net" in text and "550 5.1.1" in text
    assert 'value="bob@lab.net, nobody@lab.net"' in text  # the form is kept
    assert folder_messages(org, "alice", "\\Sent") == []
    assert folder_messages(org, "bob") == []

    bad = send_form(owa, "/owa/compose", to="not an address", subject="x")
    assert bad.status_code == 400 and "isn&#39;t an e-mail address" in bad.text  # type: ignore[attr-defined]
    none = send_form(owa, "/owa/compose", subject="x")
    assert none.status_code == 400 and "Add at least one recipient" in none.text  # type: ignore[attr-defined]


def test_send_needs_the_csrf_token(org: Org, owa: TestClient) -> None:
    form = owa.get("/owa/compose")
    response = owa.post("/owa/send", data={"csrf": "forged", "to": "bob@lab.net"})
    assert response.status_code == 403
    assert token(form.text)
    assert folder_messages(org, "bob") == []


def test_no_transport_running_is_a_clear_error(org: Org) -> None:
    with TestClient(
        cas_app(org), base_url="https://cas01.lab.net", follow_redirects=False
    ) as client:
        assert sign_in(client).status_code == 303
        response = send_form(client, "/owa/compose", to="bob@lab.net", subject="x")
    assert response.status_code == 503  # type: ignore[attr-defined]
    assert "No Hub Transport server could be reached" in response.text  # type: ignore[attr-defined]
    assert folder_messages(org, "alice", "\\Sent") == []
