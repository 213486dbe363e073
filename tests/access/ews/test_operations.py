"""EWS operations through the ASGI app against real SQLite mailboxes: folders,
ConvertId, ResolveNames, the read path (FindItem, GetItem), sync, and what a
hostile client gets (another user's ids, forged ids, unknown operations)."""

from __future__ import annotations

import defusedxml.ElementTree as SafeET
import pytest
from starlette.testclient import TestClient

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from tests.access.ews import BOB, NS, call, error_of, ews_client, messages, ok
from tests.access.ews import EWS as EWS_PATH
from tests.access.http.test_api import seed_mailbox


@pytest.fixture
def backend() -> str:
    return "sqlite"


def get_folder(c: TestClient, *ids: str, shape: str = "AllProperties") -> list:
    folder_ids = "".join(
        f'<t:DistinguishedFolderId Id="{i}"/>' if len(i) < 20 else f'<t:FolderId Id="{i}"/>'
        for i in ids
    )
    return messages(
        call(
            c,
            f"<m:GetFolder><m:FolderShape><t:BaseShape>{shape}</t:BaseShape></m:FolderShape>"
            f"<m:FolderIds>{folder_ids}</m:FolderIds></m:GetFolder>",
        )
    )


def test_get_folder_of_distinguished_folders(c: TestClient) -> None:
    found = get_folder(c, "root", "msgfolderroot", "inbox", "sentitems", "calendar")
    assert [m.get("ResponseClass") for m in found] == ["Success"] * 5
    names = [m.findtext("m:Folders/*/t:DisplayName", namespaces=NS) for m in found]
    assert names[2:] == ["Inbox", "Sent", "Calendar"]
    inbox = found[2].find("m:Folders/t:Folder", NS)
    assert inbox.findtext("t:TotalCount", namespaces=NS) == "6"
    assert inbox.findtext("t:UnreadCount", namespaces=NS) == "4"
    assert inbox.findtext("t:FolderClass", namespaces=NS) == "IPF.Note"
    assert found[4].find("m:Folders/t:CalendarFolder", NS) is not None


def test_a_later_versions_distinguished_folder_is_not_found_alone(c: TestClient) -> None:
    """Thunderbird asks for "archive" (Exchange 2013's) beside the others in one
    GetFolder: that one is not found, the others are answered (the whole request failing
    left Thunderbird's account without folders)."""
    found = get_folder(c, "inbox", "archive", "junkemail")
    assert [m.get("ResponseClass") for m in found] == ["Success", "Error", "Success"]
    assert found[1].findtext("m:ResponseCode", namespaces=NS) == "ErrorFolderNotFound"


def test_unknown_operation_is_an_error_with_200(c: TestClient) -> None:
    response = call(c, "<m:FrobnicateItem/>")
    assert response.tag == f"{{{NS['m']}}}FrobnicateItemResponse"
    code, text = error_of(messages(response)[0])
    assert code == "ErrorInvalidOperation"
    assert "FrobnicateItem" in text


def find_inbox(c: TestClient, extra: str = "", shape: str = "IdOnly") -> list:
    r = call(
        c,
        f'<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>{shape}</t:BaseShape>'
        f"</m:ItemShape>{extra}<m:ParentFolderIds>"
        '<t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds></m:FindItem>',
    )
    [msg] = ok(r)
    return list(msg.find("m:RootFolder/t:Items", NS))


def get_items(c: TestClient, ids: list[str], body_type: str = "Best") -> list:
    item_ids = "".join(f'<t:ItemId Id="{i}"/>' for i in ids)
    return messages(
        call(
            c,
            f"<m:GetItem><m:ItemShape><t:BaseShape>Default</t:BaseShape>"
            f"<t:BodyType>{body_type}</t:BodyType></m:ItemShape>"
            f"<m:ItemIds>{item_ids}</m:ItemIds></m:GetItem>",
        )
    )


def test_get_item_bodies_by_body_type(c: TestClient) -> None:
    restriction = (
        '<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="item:Subject"/>'
        '<t:FieldURIOrConstant><t:Constant Value="quarterly REPORT"/></t:FieldURIOrConstant>'
        "</t:IsEqualTo></m:Restriction>"
    )
    [found] = find_inbox(c, restriction)
    item_id = found.find("t:ItemId", NS).get("Id")
    [html] = get_items(c, [item_id], "HTML")
    body = html.find("m:Items/t:Message/t:Body", NS)
    assert body.get("BodyType") == "HTML" and "<b>attached</b>" in body.text
    [text] = get_items(c, [item_id], "Text")
    body = text.find("m:Items/t:Message/t:Body", NS)
    assert body.get("BodyType") == "Text" and "caf\u00e9" in body.text
    names = [a.findtext("t:Name", namespaces=NS) for a in text.iter(f"{{{NS['t']}}}FileAttachment")]
    assert names == ["report.pdf", "\u62a5\u544a.txt"]


def test_forged_and_foreign_ids_through_http(org: Directory, c: TestClient) -> None:
    [first, *_] = find_inbox(c)
    good = first.find("t:ItemId", NS).get("Id")
    forged = good[:-6] + ("AAAAAA" if not good.endswith("AAAAAA") else "BBBBBB")
    results = get_items(c, [good, forged, "garbage"])
    assert results[0].get("ResponseClass") == "Success"
    assert error_of(results[1])[0] == "ErrorInvalidIdMalformed"
    assert error_of(results[2])[0] == "ErrorInvalidIdMalformed"
    seed_mailbox(org, "bob")
    with ews_client(org, BOB, "CAS03") as bob:
        [refused] = get_items(bob, [good])
        code, text = error_of(refused)
        assert code == "ErrorAccessDenied"
        assert "Quarterly" not in text
        [folder] = get_folder(bob, first.find("t:ItemId", NS).get("Id"))
        assert error_of(folder)[0] == "ErrorInvalidIdMalformed"  # an item id is no folder id


def test_http_edges(c: TestClient) -> None:
    r = c.post(EWS_PATH, content=b"<", headers={"Content-Type": "text/xml"})
    assert r.status_code == 500 and b"ErrorSchemaValidation" in r.content
    r = c.post(EWS_PATH, content=b"x", headers={"Content-Length": str(20 * 1024 * 1024)})
    assert r.status_code == 413
    assert c.get(EWS_PATH).status_code == 200
    assert b"ExchangeServices" in c.get("/EWS/Services.wsdl").content
    assert c.post(EWS_PATH, content=b"<x/>", auth=("alice@lab.net", "wrong")).status_code == 401


def _inbox_ids(c: TestClient, view: str = "") -> list[str]:
    return [i.find("t:ItemId", NS).get("Id") for i in find_inbox(c, view)]


def test_find_item_pages_are_the_folder_newest_first(c: TestClient) -> None:
    """exchangelib's IndexedPageItemView from the beginning is read a page at a time by
    the store (`MailboxStore.newest`); every other view pages the whole listing. Both
    give Exchange's order, newest received first, and the same paging attributes."""
    everything = _inbox_ids(c)
    assert len(everything) == 6
    pages, offset = [], 0
    while True:
        r = call(
            c,
            '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            f'</m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="4" Offset="{offset}"'
            ' BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
            "</m:ParentFolderIds></m:FindItem>",
        )
        root = ok(r)[0].find("m:RootFolder", NS)
        pages.append([i.find("t:ItemId", NS).get("Id") for i in root.find("t:Items", NS)])
        assert root.get("TotalItemsInView") == "6"
        offset = int(root.get("IndexedPagingOffset"))
        if root.get("IncludesLastItemInRange") == "true":
            break
    assert pages == [everything[:4], everything[4:]] and offset == 6
    from_end = _inbox_ids(
        c, '<m:IndexedPageItemView MaxEntriesReturned="2" Offset="0" BasePoint="End"/>'
    )
    assert from_end == everything[-2:]


def test_get_item_again_writes_what_it_kept_and_what_changed(
    c: TestClient, store: MailboxStore
) -> None:
    """The second GetItem of a message writes the XML its summary kept for what never
    changes (`access.ews.summaries`); what does change (IsRead, the ChangeKey) is read
    anew each time, and a cold process answers the same."""
    from casarray.access.ews.summaries import SUMMARIES

    ids = _inbox_ids(c)
    SUMMARIES.clear()
    first = [SafeET.tostring(m) for m in get_items(c, ids, "Text")]
    assert len(SUMMARIES) >= len(ids)
    again = [SafeET.tostring(m) for m in get_items(c, ids, "Text")]
    assert again == first
    html = get_items(c, ids[:1], "HTML")[0].find("m:Items/t:Message/t:Body", NS)
    assert html.get("BodyType") == "HTML"  # a body kept per body type
    before = get_items(c, ids[:1])[0].find("m:Items/t:Message", NS)
    was_read = before.findtext("t:IsRead", namespaces=NS)
    uids = [m.uid for m in store.messages("INBOX")]
    store.store_flags("INBOX", uids, "add" if was_read == "false" else "remove", ["\\Seen"])
    after = get_items(c, ids[:1])[0].find("m:Items/t:Message", NS)
    assert after.findtext("t:IsRead", namespaces=NS) != was_read
    assert after.find("t:ItemId", NS).get("ChangeKey") != before.find("t:ItemId", NS).get(
        "ChangeKey"
    )
    assert after.findtext("t:Subject", namespaces=NS) == before.findtext("t:Subject", namespaces=NS)
    SUMMARIES.clear()
    cold = get_items(c, ids[:1])[0].find("m:Items/t:Message", NS)
    assert SafeET.tostring(cold) == SafeET.tostring(after)
