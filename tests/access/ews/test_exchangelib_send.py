"""exchangelib 5.x (PyPI) writing through EWS: the Client Access server's app served
by uvicorn, sending through a real Hub Transport process (`casarray transport run
MBX01`, tests/transport/harness) as CAS01's computer account, messages delivered into
the recipients' mailboxes and read there. send_and_save to another mailbox, Exchange
2010's attachment path (CreateItem SaveOnly, CreateAttachment, SendItem), a refused
recipient, mark read, move, copy, delete with each disposition, a stale ChangeKey,
another user's ids."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
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
    FileAttachment,
    Mailbox,
    Message,
    Version,
)
from exchangelib.errors import (  # noqa: E402
    ErrorAccessDenied,
    ErrorInvalidRecipients,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
)
from exchangelib.items import NEVER_OVERWRITE, SOFT_DELETE  # noqa: E402

from casarray.access.http import AppContext, create_app  # noqa: E402
from casarray.directory.lockout import MemoryLockout  # noqa: E402
from casarray.mailstore.provisioning import open_mailbox  # noqa: E402
from casarray.mailstore.store import close_all  # noqa: E402
from tests.access.http import Served  # noqa: E402
from tests.transport.harness import (  # noqa: E402
    PASSWORD,
    Org,
    TransportProcess,
    make_org,
    wait_for,
)

pytestmark = pytest.mark.integration  # a real Hub Transport process
DATA = bytes(range(256)) * 100 + b"\r\n.\r\n\x00end"


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(tmp_path: Path, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Org]:
    org = make_org(tmp_path / "org", password_hash)
    monkeypatch.setenv("CASARRAY_HOME", str(org.home))
    for alias in ("alice", "bob"):
        org.add_user(alias)
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
    context = AppContext.for_server(
        org.directory, "CAS01", throttle=MemoryLockout(), require_tls=False
    )
    with Served(create_app(context), None) as served:
        yield served


def account(served: Served, user: str) -> Any:
    config = Configuration(
        service_endpoint=f"http://127.0.0.1:{served.port}/EWS/Exchange.asmx",
        credentials=Credentials(user, PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(14, 3, 123, 4)),
        max_connections=2,
    )
    return Account(user, config=config, autodiscover=False, access_type=DELEGATE)


def folder(org: Org, alias: str, special_use: str | None = None) -> list[tuple[bytes, frozenset]]:
    """(message, flags) of the user's INBOX, or of the folder with `special_use`."""
    mailbox = org.directory.mailboxes.one(alias)
    store = open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)
    name = "INBOX"
    if special_use is not None:
        name = next(f.name for f in store.folders() if f.special_use == special_use)
    infos = store.messages(name)
    bodies = store.bodies(name, [i.uid for i in infos])
    return [(bodies[i.uid], i.flags) for i in infos]


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def delivered(org: Org, alias: str, count: int = 1) -> list[EmailMessage]:
    wait_for(lambda: len(folder(org, alias)) >= count)
    found = [parsed(raw) for raw, _ in folder(org, alias)]
    assert len(found) >= count, f"{alias} got {len(found)} message(s)"
    return found


def test_send_and_save_to_another_mailbox(org: Org, cas01: Served) -> None:
    alice = account(cas01, "alice@lab.net")
    Message(
        account=alice,
        folder=alice.sent,
        subject="Quarterly numbers",
        body="Hi Bob,\nthe numbers.\nAlice",
        to_recipients=[Mailbox(email_address="bob@lab.net", name="Bob")],
    ).send_and_save()
    [to_bob] = delivered(org, "bob")
    assert to_bob["Subject"] == "Quarterly numbers"
    assert to_bob["From"].addresses[0].addr_spec == "alice@lab.net"
    body = to_bob.get_body(preferencelist=("plain", "html"))
    assert body is not None and "the numbers." in body.get_content()
    [(copy, flags)] = folder(org, "alice", "\\Sent")
    assert parsed(copy)["Message-ID"] == to_bob["Message-ID"] and "\\Seen" in flags
    # bob reads it over EWS too.
    bob = account(cas01, "bob@lab.net")
    [got] = bob.inbox.all()
    assert got.subject == "Quarterly numbers" and got.sender.email_address == "alice@lab.net"


def test_exchange_2010_attachment_path(org: Org, cas01: Served) -> None:
    alice = account(cas01, "alice@lab.net")
    m = Message(
        account=alice,
        folder=alice.drafts,
        subject="With a file",
        body="Attached.",
        to_recipients=["bob@lab.net"],
    )
    m.attach(FileAttachment(name="numbers.bin", content=DATA))
    m.send_and_save()  # 2010: CreateItem SaveOnly, CreateAttachment, SendItem
    [to_bob] = delivered(org, "bob")
    assert to_bob["Subject"] == "With a file"
    files = {
        str(part.get_filename()): part.get_payload(decode=True)
        for part in to_bob.iter_attachments()
    }
    assert files == {"numbers.bin": DATA}
    assert folder(org, "alice", "\\Drafts") == []  # the draft went out
    bob = account(cas01, "bob@lab.net")
    [got] = bob.inbox.all()
    [attachment] = got.attachments
    assert attachment.name == "numbers.bin" and attachment.content == DATA


def test_a_refused_recipient_is_named(org: Org, cas01: Served) -> None:
    alice = account(cas01, "alice@lab.net")
    with pytest.raises(ErrorInvalidRecipients) as refused:
        Message(
            account=alice,
            folder=alice.sent,
            subject="x",
            body="y",
            to_recipients=["nobody@lab.net"],
        ).send_and_save()
    assert "nobody@lab.net" in str(refused.value)
    assert folder(org, "alice", "\\Sent") == []


RECEIVED = (
    b"From: Bob <bob@lab.net>\r\nTo: Alice <alice@lab.net>\r\nSubject: Lunch {n}\r\n"
    b"Message-ID: <lunch-{n}@lab.net>\r\n\r\nNoon?\r\n"
)


def seed(org: Org, count: int) -> None:
    mailbox = org.directory.mailboxes.one("alice")
    store = open_mailbox(org.directory.databases.one(mailbox.database), mailbox.guid)
    for n in range(count):
        store.append("INBOX", RECEIVED.replace(b"{n}", str(n).encode()))


def test_mark_read_move_copy_and_delete(org: Org, cas01: Served) -> None:
    seed(org, 5)
    alice = account(cas01, "alice@lab.net")
    items = {m.subject: m for m in alice.inbox.all()}
    first = items["Lunch 0"]
    first.is_read = True
    first.save(update_fields=["is_read"])
    assert folder(org, "alice")[0][1] == frozenset({"\\Seen"})
    copy = items["Lunch 1"].copy(to_folder=alice.drafts)
    assert copy is not None
    items["Lunch 1"].move(to_folder=alice.junk)
    assert [m.subject for m in alice.junk.all()] == ["Lunch 1"]
    assert [m.subject for m in alice.drafts.all()] == ["Lunch 1"]
    gone = (items["Lunch 2"].id, items["Lunch 2"].changekey)
    items["Lunch 2"].delete()  # HardDelete
    # Item.soft_delete() wants a Recoverable Items folder, which this mailbox hasn't:
    # the same DeleteItem SoftDelete, through bulk_delete.
    [soft] = alice.bulk_delete(ids=[items["Lunch 3"]], delete_type=SOFT_DELETE)
    assert soft is True
    items["Lunch 4"].move_to_trash()
    assert sorted(m.subject for m in alice.inbox.all()) == ["Lunch 0"]
    trashed = list(alice.trash.all())
    assert sorted(m.subject for m in trashed) == ["Lunch 3", "Lunch 4"]
    for m in trashed:
        m.move_to_trash()  # from Deleted Items: gone for good
    assert list(alice.trash.all()) == []
    [missing] = alice.fetch(ids=[gone])
    assert isinstance(missing, ErrorItemNotFound)


def test_a_stale_change_key_with_never_overwrite(org: Org, cas01: Served) -> None:
    seed(org, 1)
    alice = account(cas01, "alice@lab.net")
    [one] = alice.inbox.all()
    [other] = alice.inbox.all()
    one.is_read = True
    one.save(update_fields=["is_read"])
    other.is_read = False
    with pytest.raises(ErrorIrresolvableConflict):
        other.save(update_fields=["is_read"], conflict_resolution=NEVER_OVERWRITE)
    assert folder(org, "alice")[0][1] == frozenset({"\\Seen"})
    other.save(update_fields=["is_read"])  # AutoResolve: the last writer wins
    assert folder(org, "alice")[0][1] == frozenset()


def test_another_users_ids_are_refused(org: Org, cas01: Served) -> None:
    seed(org, 1)
    alice = account(cas01, "alice@lab.net")
    [mine] = alice.inbox.all()
    bob = account(cas01, "bob@lab.net")
    stolen = Message(account=bob, folder=bob.inbox, id=mine.id, changekey=mine.changekey)
    for attempt in (
        lambda: stolen.move(to_folder=bob.inbox),
        lambda: stolen.delete(),
        lambda: stolen.copy(to_folder=bob.inbox),
    ):
        with pytest.raises((ErrorAccessDenied, ErrorItemNotFound)) as refused:
            attempt()
        assert "Lunch" not in str(refused.value)
    assert len(folder(org, "alice")) == 1 and folder(org, "bob") == []
