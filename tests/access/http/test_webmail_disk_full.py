"""Web mail when a disk fills up (small tmpfs, really filled; root): the Client Access
server's web mail in this process, a real Hub Transport process with its queue on one
small disk, the mailbox database DB01 on another.

- The queue's disk full: the send is refused (the hub's `452 4.3.1 Insufficient system
  storage`) and the compose page says so, with the draft kept; nothing is sent, no copy
  is kept; once there is room the same send works.
- The mailbox database's disk full: the message is sent (the queue has room) but the
  mailbox page says no copy was kept in Sent Items; a change (flag) gets a page saying
  nothing was changed, while reading the mailbox goes on."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.provisioning import open_mailbox
from casarray.mailstore.store import close_all
from tests.access.http.test_owa import sign_in, token
from tests.access.http.test_webmail_send import cas_app, folder_messages, send_form
from tests.small_disk import SmallDisk, small_disk
from tests.transport.harness import Org, TransportProcess, make_org

pytestmark = [pytest.mark.integration, pytest.mark.root]  # a real Hub Transport process


def store_of(org: Org, alias: str) -> MailboxStore:
    mailbox = org.directory.mailboxes.one(alias)
    return open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[tuple[SmallDisk, SmallDisk]]:
    """(the queue's disk, DB01's disk)."""
    with (
        small_disk(tmp_path / "queue", "8m") as queue,
        small_disk(tmp_path / "org" / "databases", "4m") as databases,
    ):
        yield queue, databases


@pytest.fixture
def org(
    tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch, disks: object
) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)  # DB01.db under org/databases
    monkeypatch.setenv("CASARRAY_HOME", str(org.home))
    for alias in ("alice", "bob"):
        org.add_user(alias)
    yield org
    close_all()
    org.directory.close()


@pytest.fixture
def owa(org: Org, disks: tuple[SmallDisk, SmallDisk]) -> Iterator[TestClient]:
    transport = TransportProcess(org, queue=f"sqlite:///{disks[0].path / 'queue.db'}").start()
    try:
        with TestClient(
            cas_app(org), base_url="https://cas01.lab.net", follow_redirects=False
        ) as client:
            assert sign_in(client).status_code == 303
            yield client
    finally:
        transport.close()


def test_sending_when_a_disk_is_full(
    org: Org, owa: TestClient, disks: tuple[SmallDisk, SmallDisk]
) -> None:
    queue_disk, database_disk = disks
    received = b"From: bob@lab.net\r\nTo: alice@lab.net\r\nSubject: Hello\r\n\r\nHi.\r\n"
    uid = store_of(org, "alice").append("INBOX", received).uid

    queue_disk.fill()
    refused = send_form(owa, "/owa/compose", to="bob@lab.net", subject="Plans", body="Friday?")
    assert refused.status_code == 503  # type: ignore[attr-defined]
    page = html.unescape(refused.text)  # type: ignore[attr-defined]
    assert "no disk space left for its queue" in page and "452 4.3.1" in page, page
    assert 'name="subject" value="Plans"' in page  # the draft is kept
    assert folder_messages(org, "alice", "\\Sent") == []
    queue_disk.free_up()

    database_disk.fill()
    sent = send_form(owa, "/owa/compose", to="bob@lab.net", subject="Plans", body="Friday?")
    assert sent.status_code == 303, sent.text  # type: ignore[attr-defined]
    assert sent.headers["location"] == "/owa?sent=2"  # type: ignore[attr-defined]
    mailbox = owa.get("/owa?sent=2")  # reading goes on
    assert mailbox.status_code == 200
    assert "no copy was kept in Sent Items" in html.unescape(mailbox.text)
    message = owa.get("/owa/message", params={"folder": "INBOX", "uid": uid})
    assert message.status_code == 200 and "Hi." in message.text  # shown, left unread
    form = {"csrf": token(message.text), "folder": "INBOX", "uid": str(uid), "flagged": "1"}
    flagged = owa.post("/owa/flag", data=form)
    assert flagged.status_code == 503, flagged.text
    assert "has no disk space left, so nothing was changed" in html.unescape(flagged.text)
    assert store_of(org, "alice").messages("INBOX")[0].flags == frozenset()

    database_disk.free_up()
    assert owa.post("/owa/flag", data=form).status_code == 303
    assert store_of(org, "alice").messages("INBOX")[0].flags == frozenset({"\\Flagged"})
