"""The EWS write operations through the ASGI app against real SQLite mailboxes, as a
client sees them: CreateItem SaveOnly (properties and MimeContent), attachments added,
read and removed (the old ItemId with the RootItemChangeKey still finds the message),
UpdateItem (IsRead, flags, categories, a draft's subject; a stale ChangeKey with
NeverOverwrite), DeleteItem (each DeleteType), MoveItem, CopyItem, MarkAsJunk, and
what is refused (another user's ids, Send As, bad input) without changing anything.
Sending is in test_exchangelib_send (a real Hub Transport process)."""

from __future__ import annotations

import base64
import email
import email.policy
from collections.abc import Iterator
from xml.etree.ElementTree import Element

import pytest
from starlette.testclient import TestClient

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.store import close_all
from tests.access.ews import NS, b64, call, error_of, ews_client, messages, ok
from tests.access.http import build_org
from tests.access.http.test_api import PASSWORD, cheap_hash, mailbox_store

ALICE = ("alice@lab.net", PASSWORD)
BOB = ("bob@lab.net", PASSWORD)
RECEIVED = (
    b"From: Bob Li <bob@lab.net>\r\nTo: Alice Wang <alice@lab.net>\r\n"
    b"Subject: Lunch\r\nDate: Mon, 02 Jun 2025 09:30:00 +0800\r\n"
    b"Message-ID: <lunch@lab.net>\r\n\r\nNoon?\r\n"
)
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def org(bj: Directory) -> Iterator[Directory]:
    d = build_org(bj, cheap_hash(PASSWORD))
    yield d
    close_all()


@pytest.fixture
def store(org: Directory) -> MailboxStore:
    store = mailbox_store(org, "alice")
    store.append("INBOX", RECEIVED)
    return store


@pytest.fixture
def c(org: Directory, store: MailboxStore) -> Iterator[TestClient]:
    with ews_client(org, ALICE) as client:
        yield client


def folder_uids(store: MailboxStore, name: str) -> list[int]:
    return [i.uid for i in store.messages(name)]


def flags(store: MailboxStore, name: str) -> list[frozenset[str]]:
    return [i.flags for i in store.messages(name)]


def find_ids(c: TestClient, folder: str) -> list[tuple[str, str]]:
    [msg] = ok(
        call(
            c,
            "<m:FindItem Traversal='Shallow'><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>"
            f"</m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id='{folder}'/>"
            "</m:ParentFolderIds></m:FindItem>",
        )
    )
    return [(i.get("Id", ""), i.get("ChangeKey", "")) for i in msg.iterfind(".//t:ItemId", NS)]


def item_id(found: tuple[str, str]) -> str:
    return f'<t:ItemId Id="{found[0]}" ChangeKey="{found[1]}"/>'


def ids_of(msg: Element) -> tuple[str, str]:
    e = msg.find(".//t:ItemId", NS)
    assert e is not None
    return e.get("Id", ""), e.get("ChangeKey", "")


def get_item(c: TestClient, found: tuple[str, str], extra: str = "") -> Element:
    [msg] = ok(
        call(
            c,
            "<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape>"
            f"<t:IncludeMimeContent>true</t:IncludeMimeContent>{extra}</m:ItemShape>"
            f"<m:ItemIds>{item_id(found)}</m:ItemIds></m:GetItem>",
        )
    )
    return msg


DRAFT = (
    "<m:CreateItem MessageDisposition='SaveOnly'><m:Items><t:Message>"
    "<t:Subject>Plans</t:Subject><t:Body BodyType='HTML'>&lt;p&gt;See &lt;b&gt;you&lt;/b&gt;"
    "&lt;/p&gt;</t:Body><t:Categories><t:String>Work</t:String></t:Categories>"
    "<t:Importance>High</t:Importance>"
    "<t:ToRecipients><t:Mailbox><t:Name>Bob Li</t:Name><t:EmailAddress>bob@lab.net"
    "</t:EmailAddress></t:Mailbox></t:ToRecipients>"
    "<t:BccRecipients><t:Mailbox><t:EmailAddress>carol@lab.net</t:EmailAddress></t:Mailbox>"
    "</t:BccRecipients><t:IsRead>false</t:IsRead></t:Message></m:Items></m:CreateItem>"
)


def test_save_a_draft_from_properties(c: TestClient, store: MailboxStore) -> None:
    [msg] = ok(call(c, DRAFT))
    found = ids_of(msg)
    got = get_item(c, found)
    assert got.findtext(".//t:Subject", namespaces=NS) == "Plans"
    assert got.findtext(".//t:IsDraft", namespaces=NS) == "true"
    assert got.findtext(".//t:IsRead", namespaces=NS) == "false"
    assert [s.text for s in got.iterfind(".//t:Categories/t:String", NS)] == ["Work"]
    raw = base64.b64decode(got.findtext(".//t:MimeContent", namespaces=NS) or "")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["From"].addresses[0].addr_spec == "alice@lab.net"
    assert message["To"] == "Bob Li <bob@lab.net>" and message["Bcc"] == "carol@lab.net"
    assert message["Importance"] == "high" and message["Message-ID"]
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "<b>you</b>" in html.get_content()
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None and "See you" in plain.get_content()
    assert flags(store, "Drafts") == [frozenset({"\\Draft", "Work"})]


def test_save_mime_content_into_a_folder(c: TestClient, store: MailboxStore) -> None:
    mime = b64(RECEIVED.replace(b"Lunch", b"Imported"))
    [msg] = ok(
        call(
            c,
            "<m:CreateItem MessageDisposition='SaveOnly'><m:SavedItemFolderId>"
            "<t:DistinguishedFolderId Id='inbox'/></m:SavedItemFolderId><m:Items><t:Message>"
            f"<t:MimeContent CharacterSet='UTF-8'>{mime}</t:MimeContent>"
            "</t:Message></m:Items></m:CreateItem>",
        )
    )
    got = get_item(c, ids_of(msg))
    assert got.findtext(".//t:Subject", namespaces=NS) == "Imported"
    assert got.findtext(".//t:IsDraft", namespaces=NS) == "false"
    assert len(folder_uids(store, "INBOX")) == 2


def test_attachments_added_read_and_removed(c: TestClient, store: MailboxStore) -> None:
    [msg] = ok(call(c, DRAFT))
    draft = ids_of(msg)
    [added] = ok(
        call(
            c,
            f"<m:CreateAttachment><m:ParentItemId Id='{draft[0]}' ChangeKey='{draft[1]}'/>"
            "<m:Attachments><t:FileAttachment><t:Name>report.pdf</t:Name>"
            f"<t:ContentType>application/pdf</t:ContentType><t:Content>{b64(PDF)}</t:Content>"
            "</t:FileAttachment></m:Attachments></m:CreateAttachment>",
        )
    )
    aid = added.find(".//t:AttachmentId", NS)
    assert aid is not None
    root = (aid.get("RootItemId", ""), aid.get("RootItemChangeKey", ""))
    # The old ItemId with the new ChangeKey (what exchangelib keeps) finds it.
    again = get_item(c, (draft[0], root[1]))
    assert again.findtext(".//t:HasAttachments", namespaces=NS) == "true"
    assert [a.text for a in again.iterfind(".//t:Attachments//t:Name", NS)] == ["report.pdf"]
    assert ids_of(again)[0] == root[0]
    [fetched] = ok(
        call(
            c,
            f"<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id='{aid.get('Id')}'/>"
            "</m:AttachmentIds></m:GetAttachment>",
        )
    )
    assert fetched.findtext(".//t:Name", namespaces=NS) == "report.pdf"
    assert base64.b64decode(fetched.findtext(".//t:Content", namespaces=NS) or "") == PDF
    assert flags(store, "Drafts") == [frozenset({"\\Draft", "Work"})]  # flags kept

    [removed] = ok(
        call(
            c,
            f"<m:DeleteAttachment><m:AttachmentIds><t:AttachmentId Id='{aid.get('Id')}'/>"
            "</m:AttachmentIds></m:DeleteAttachment>",
        )
    )
    new_root = removed.find("m:RootItemId", NS)
    assert new_root is not None
    after = get_item(c, (new_root.get("RootItemId", ""), new_root.get("RootItemChangeKey", "")))
    assert after.findtext(".//t:HasAttachments", namespaces=NS) == "false"
    assert after.findtext(".//t:Subject", namespaces=NS) == "Plans"
    assert len(folder_uids(store, "Drafts")) == 1
    # The attachment is gone: its id is refused, by name.
    [gone] = messages(
        call(
            c,
            f"<m:GetAttachment><m:AttachmentIds><t:AttachmentId Id='{aid.get('Id')}'/>"
            "</m:AttachmentIds></m:GetAttachment>",
        )
    )
    assert error_of(gone)[0] == "ErrorAttachmentNotFound"


def update(found: tuple[str, str], body: str, resolution: str = "AutoResolve") -> str:
    return (
        f"<m:UpdateItem MessageDisposition='SaveOnly' ConflictResolution='{resolution}'>"
        f"<m:ItemChanges><t:ItemChange>{item_id(found)}<t:Updates>{body}</t:Updates>"
        "</t:ItemChange></m:ItemChanges></m:UpdateItem>"
    )


SET_READ = (
    "<t:SetItemField><t:FieldURI FieldURI='message:IsRead'/><t:Message><t:IsRead>true"
    "</t:IsRead></t:Message></t:SetItemField>"
)
FLAG = (
    "<t:SetItemField><t:FieldURI FieldURI='item:Flag'/><t:Message><t:Flag><t:FlagStatus>"
    "Flagged</t:FlagStatus></t:Flag></t:Message></t:SetItemField>"
)
CATEGORIES = (
    "<t:SetItemField><t:FieldURI FieldURI='item:Categories'/><t:Message><t:Categories>"
    "<t:String>Blue</t:String><t:String>Home</t:String></t:Categories></t:Message>"
    "</t:SetItemField>"
)


def test_update_flags_and_the_change_key(c: TestClient, store: MailboxStore) -> None:
    [found] = find_ids(c, "inbox")
    [msg] = ok(call(c, update(found, SET_READ + FLAG + CATEGORIES)))
    newer = ids_of(msg)
    assert newer[0] == found[0] and newer[1] != found[1]
    assert flags(store, "INBOX") == [frozenset({"\\Seen", "\\Flagged", "Blue", "Home"})]
    # A stale ChangeKey: NeverOverwrite refuses and changes nothing.
    unread = SET_READ.replace(">true<", ">false<")
    [refused] = messages(call(c, update(found, unread, "NeverOverwrite")))
    assert error_of(refused)[0] == "ErrorIrresolvableConflict"
    assert "\\Seen" in flags(store, "INBOX")[0]
    # AutoResolve applies it; NeverOverwrite with the current key too.
    ok(call(c, update(found, unread)))
    assert "\\Seen" not in flags(store, "INBOX")[0]
    [current] = find_ids(c, "inbox")
    delete_categories = (
        "<t:DeleteItemField><t:FieldURI FieldURI='item:Categories'/></t:DeleteItemField>"
    )
    ok(call(c, update(current, delete_categories, "NeverOverwrite")))
    assert flags(store, "INBOX") == [frozenset({"\\Flagged"})]


def test_content_changes_only_on_drafts(c: TestClient, store: MailboxStore) -> None:
    subject = (
        "<t:SetItemField><t:FieldURI FieldURI='item:Subject'/><t:Message><t:Subject>New"
        "</t:Subject></t:Message></t:SetItemField>"
    )
    [received] = find_ids(c, "inbox")
    [refused] = messages(call(c, update(received, subject)))
    assert error_of(refused)[0] == "ErrorInvalidPropertyUpdateSentMessage"
    [msg] = ok(call(c, DRAFT))
    [changed] = ok(call(c, update(ids_of(msg), subject)))
    got = get_item(c, ids_of(changed))
    assert got.findtext(".//t:Subject", namespaces=NS) == "New"
    assert got.findtext(".//t:IsDraft", namespaces=NS) == "true"
    assert len(folder_uids(store, "Drafts")) == 1


def delete(found: tuple[str, str], kind: str) -> str:
    return (
        f"<m:DeleteItem DeleteType='{kind}'><m:ItemIds>{item_id(found)}</m:ItemIds></m:DeleteItem>"
    )


def test_delete_each_type(c: TestClient, store: MailboxStore) -> None:
    store.append("INBOX", RECEIVED.replace(b"Lunch", b"Second"))
    first, second = find_ids(c, "inbox")
    ok(call(c, delete(first, "MoveToDeletedItems")))
    ok(call(c, delete(second, "SoftDelete")))
    assert folder_uids(store, "INBOX") == []
    trashed = find_ids(c, "deleteditems")
    assert len(trashed) == 2
    ok(call(c, delete(trashed[0], "MoveToDeletedItems")))  # from Deleted Items: gone
    ok(call(c, delete(trashed[1], "HardDelete")))
    assert folder_uids(store, "Trash") == []
    [gone] = messages(call(c, delete(first, "HardDelete")))
    assert error_of(gone)[0] == "ErrorItemNotFound"


def transfer(op: str, found: tuple[str, str], folder: str, extra: str = "") -> str:
    return (
        f"<m:{op}{extra}><m:ToFolderId><t:DistinguishedFolderId Id='{folder}'/></m:ToFolderId>"
        f"<m:ItemIds>{item_id(found)}</m:ItemIds></m:{op}>"
    )


def test_move_copy_and_junk(c: TestClient, store: MailboxStore) -> None:
    [found] = find_ids(c, "inbox")
    [copied] = ok(call(c, transfer("CopyItem", found, "drafts")))
    assert get_item(c, ids_of(copied)).findtext(".//t:Subject", namespaces=NS) == "Lunch"
    [moved] = ok(call(c, transfer("MoveItem", found, "sentitems")))
    assert folder_uids(store, "INBOX") == [] and len(folder_uids(store, "Sent")) == 1
    [quiet] = ok(call(c, transfer("MoveItem", ids_of(moved), "inbox", " ReturnNewItemIds='false'")))
    assert quiet.find(".//t:ItemId", NS) is None
    [back] = find_ids(c, "inbox")
    [junk] = ok(
        call(
            c,
            f"<m:MarkAsJunk IsJunk='true' MoveItem='true'><m:ItemIds>{item_id(back)}"
            "</m:ItemIds></m:MarkAsJunk>",
        )
    )
    moved_id = junk.find("m:MovedItemId", NS)
    assert moved_id is not None and len(folder_uids(store, "Junk")) == 1
    not_junk = (moved_id.get("Id", ""), moved_id.get("ChangeKey", ""))
    ok(
        call(
            c,
            f"<m:MarkAsJunk IsJunk='false' MoveItem='true'><m:ItemIds>{item_id(not_junk)}"
            "</m:ItemIds></m:MarkAsJunk>",
        )
    )
    assert len(folder_uids(store, "INBOX")) == 1 and folder_uids(store, "Junk") == []
    [virtual] = messages(call(c, transfer("MoveItem", find_ids(c, "inbox")[0], "calendar")))
    assert error_of(virtual)[0] == "ErrorMoveCopyFailed"


def test_another_users_ids_are_refused(org: Directory, c: TestClient, store: MailboxStore) -> None:
    [found] = find_ids(c, "inbox")
    bob_store = mailbox_store(org, "bob")
    with ews_client(org, BOB, "CAS03") as bob:
        for body in (
            update(found, SET_READ),
            delete(found, "HardDelete"),
            transfer("MoveItem", found, "inbox"),
            transfer("CopyItem", found, "inbox"),
            f"<m:CreateAttachment><m:ParentItemId Id='{found[0]}'/><m:Attachments>"
            "<t:FileAttachment><t:Name>x</t:Name><t:Content>eA==</t:Content>"
            "</t:FileAttachment></m:Attachments></m:CreateAttachment>",
            f"<m:SendItem SaveItemToFolder='false'><m:ItemIds>{item_id(found)}</m:ItemIds>"
            "</m:SendItem>",
        ):
            [refused] = messages(call(bob, body))
            code, text = error_of(refused)
            assert code == "ErrorAccessDenied", (body, code, text)
            assert "Lunch" not in text
    assert flags(store, "INBOX") == [frozenset()]
    assert folder_uids(bob_store, "INBOX") == []


def test_bad_input_is_named_and_changes_nothing(c: TestClient, store: MailboxStore) -> None:
    [msg] = messages(call(c, DRAFT.replace("SaveOnly", "SaveLater")))
    assert error_of(msg)[0] == "ErrorInvalidRequest" and "SaveLater" in error_of(msg)[1]
    [msg] = messages(
        call(c, DRAFT.replace("<t:Subject>", "<t:Subjekt>").replace("</t:Subject>", "</t:Subjekt>"))
    )
    assert error_of(msg)[0] == "ErrorSchemaValidation" and "Subjekt" in error_of(msg)[1]
    [msg] = messages(call(c, DRAFT.replace("bob@lab.net", "not an address")))
    assert error_of(msg)[0] == "ErrorInvalidRecipients" and "not an address" in error_of(msg)[1]
    [msg] = messages(
        call(c, DRAFT.replace("<t:String>Work</t:String>", "<t:String>Two words</t:String>"))
    )
    assert error_of(msg)[0] == "ErrorInvalidValueForProperty" and "Two words" in error_of(msg)[1]
    [msg] = messages(
        call(
            c,
            "<m:CreateItem MessageDisposition='SaveOnly'><m:Items><t:CalendarItem>"
            "<t:Subject>Meet</t:Subject></t:CalendarItem></m:Items></m:CreateItem>",
        )
    )
    assert error_of(msg)[0] == "ErrorInvalidRequest" and "CalendarItem" in error_of(msg)[1]
    [msg] = messages(
        call(
            c,
            "<m:CreateItem MessageDisposition='SendOnly'><m:Items><t:Message>"
            "<t:Subject>Spoof</t:Subject><t:ToRecipients><t:Mailbox><t:EmailAddress>bob@lab.net"
            "</t:EmailAddress></t:Mailbox></t:ToRecipients><t:From><t:Mailbox><t:EmailAddress>"
            "ceo@lab.net</t:EmailAddress></t:Mailbox></t:From></t:Message></m:Items></m:CreateItem>",
        )
    )
    assert error_of(msg)[0] == "ErrorSendAsDenied" and "ceo@lab.net" in error_of(msg)[1]
    [found] = find_ids(c, "inbox")
    [msg] = messages(
        call(
            c,
            update(
                found,
                "<t:SetItemField><t:FieldURI FieldURI='message:IsRead'/><t:Message>"
                "<t:IsRead>maybe</t:IsRead></t:Message></t:SetItemField>",
            ),
        )
    )
    assert error_of(msg)[0] == "ErrorInvalidValueForProperty"
    assert folder_uids(store, "Drafts") == [] and flags(store, "INBOX") == [frozenset()]
