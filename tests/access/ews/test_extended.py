"""What DavMail needs of EWS, without DavMail: ConvertId ignoring the source id's
Mailbox attribute (but not the id's own mailbox), FindFolder restricted on the folder
class by ExtendedFieldURI, and MAPI properties by tag (ExtendedFieldURI) on folders and
messages, in shapes, restrictions and sort orders."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from starlette.testclient import TestClient

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from tests.access.ews import BOB, NS, call, error_of, ews_client, messages, ok
from tests.access.http.test_api import seed_mailbox


@pytest.fixture
def backend() -> str:
    return "sqlite"


def root_id(c: TestClient) -> str:
    [msg] = ok(
        call(
            c,
            "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
            '<m:FolderIds><t:DistinguishedFolderId Id="root"/></m:FolderIds></m:GetFolder>',
        )
    )
    return str(msg.find("m:Folders/t:Folder/t:FolderId", NS).get("Id"))


def convert(c: TestClient, folder_id: str) -> Element:
    [msg] = messages(
        call(
            c,
            '<m:ConvertId DestinationFormat="EwsId"><m:SourceIds>'
            f'<t:AlternateId Format="EwsId" Id="{folder_id}" Mailbox="blah@blah.com"/>'
            "</m:SourceIds></m:ConvertId>",
        )
    )
    return msg


def test_convert_id_ignores_the_mailbox_attribute_not_the_ids_mailbox(
    org: Directory, c: TestClient
) -> None:
    own = root_id(c)
    msg = convert(c, own)
    assert msg.get("ResponseClass") == "Success"
    alternate = msg.find("m:AlternateId", NS)
    assert alternate.get("Mailbox") == "alice@lab.net"
    assert alternate.get("Id") == own
    seed_mailbox(org, "bob")
    with ews_client(org, BOB, "CAS03") as bob:
        refused = convert(bob, own)
        code, text = error_of(refused)
        assert code == "ErrorAccessDenied"
        assert "alice" not in text


FOLDER_PROPS = (
    '<t:ExtendedFieldURI PropertyTag="0x3613" PropertyType="String"/>'
    '<t:ExtendedFieldURI PropertyTag="0x360a" PropertyType="Boolean"/>'
    '<t:ExtendedFieldURI PropertyTag="0x3602" PropertyType="Integer"/>'
    '<t:ExtendedFieldURI PropertyTag="0x3603" PropertyType="Integer"/>'
    '<t:ExtendedFieldURI PropertyTag="0x670a" PropertyType="SystemTime"/>'
    '<t:FieldURI FieldURI="folder:DisplayName"/>'
)
MAIL_ONLY = (
    "<m:Restriction><t:Or>"
    '<t:IsEqualTo><t:ExtendedFieldURI PropertyTag="0x3613" PropertyType="String"/>'
    '<t:FieldURIOrConstant><t:Constant Value="IPF.Note"/></t:FieldURIOrConstant></t:IsEqualTo>'
    '<t:Not><t:Exists><t:ExtendedFieldURI PropertyTag="0x3613" PropertyType="String"/>'
    "</t:Exists></t:Not></t:Or></m:Restriction>"
)


def extended(e: Element) -> dict[str, str]:
    """An element's extended properties: tag (or name, or id) -> value (values joined
    with ",", as DavMail reads them)."""
    out = {}
    for prop in e.findall("t:ExtendedProperty", NS):
        uri = prop.find("t:ExtendedFieldURI", NS)
        key = uri.get("PropertyTag") or uri.get("PropertyName") or uri.get("PropertyId")
        values = prop.findall("t:Values/t:Value", NS)
        out[str(key)] = (
            ",".join(v.text or "" for v in values) if values else prop.findtext("t:Value", "", NS)
        )
    return out


def test_find_folder_restricted_on_the_folder_class(c: TestClient) -> None:
    [msg] = ok(
        call(
            c,
            '<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>IdOnly'
            f"</t:BaseShape><t:AdditionalProperties>{FOLDER_PROPS}</t:AdditionalProperties>"
            f"</m:FolderShape>{MAIL_ONLY}<m:ParentFolderIds>"
            '<t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds></m:FindFolder>',
        )
    )
    folders = {
        f.findtext("t:DisplayName", namespaces=NS): f
        for f in msg.find("m:RootFolder/t:Folders", NS)
    }
    assert "Inbox" in folders and "Projects" in folders
    assert "Calendar" not in folders and "Contacts" not in folders
    inbox = extended(folders["Inbox"])
    # PR_LOCAL_COMMIT_TIME_MAX isn't kept here: left out, not an error
    assert inbox == {"0x3613": "IPF.Note", "0x360a": "true", "0x3602": "6", "0x3603": "4"}
    assert extended(folders["Sent"])["0x360a"] == "false"


ITEM_PROPS = (
    '<t:ExtendedFieldURI PropertyTag="0xe23" PropertyType="Integer"/>'
    '<t:ExtendedFieldURI PropertyTag="0xe07" PropertyType="Integer"/>'
    '<t:ExtendedFieldURI PropertyTag="0xe08" PropertyType="Integer"/>'
    '<t:ExtendedFieldURI PropertyTag="0xff9" PropertyType="Binary"/>'
    '<t:ExtendedFieldURI PropertyTag="0x670e" PropertyType="String"/>'
    '<t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="Keywords"'
    ' PropertyType="StringArray"/>'
    '<t:ExtendedFieldURI DistinguishedPropertySetId="Common" PropertyId="34160"'
    ' PropertyType="Integer"/>'
)


def find_by_uid(c: TestClient, restriction: str = "") -> list[dict[str, str]]:
    [msg] = ok(
        call(
            c,
            '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            f"<t:AdditionalProperties>{ITEM_PROPS}</t:AdditionalProperties></m:ItemShape>"
            f'{restriction}<m:SortOrder><t:FieldOrder Order="Ascending">'
            '<t:ExtendedFieldURI PropertyTag="0xe23" PropertyType="Integer"/></t:FieldOrder>'
            '</m:SortOrder><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
            "</m:ParentFolderIds></m:FindItem>",
        )
    )
    return [extended(item) for item in msg.find("m:RootFolder/t:Items", NS)]


def test_message_properties_by_tag_sorted_on_the_imap_uid(
    c: TestClient, store: MailboxStore
) -> None:
    store.store_flags("INBOX", [2], "add", ["\\Deleted", "Work"])
    found = find_by_uid(c)
    assert [p["0xe23"] for p in found] == ["1", "2", "3", "4", "5", "6"]
    # PR_MESSAGE_FLAGS: the read bit of \Seen (3 and 5), the attachment bit of UID 1
    assert [int(p["0xe07"]) & 1 for p in found] == [0, 0, 1, 0, 1, 0]
    assert int(found[0]["0xe07"]) & 0x10
    assert all(int(p["0xe08"]) > 0 for p in found)
    assert len({p["0xff9"] for p in found}) == 6
    assert found[1]["Keywords"] == "Work" and "Keywords" not in found[0]
    assert found[1]["34160"] == "1" and "34160" not in found[0]
    assert all("0x670e" not in p for p in found)  # not kept here: left out


def test_find_item_contains_on_the_transport_headers(c: TestClient) -> None:
    restriction = (
        '<m:Restriction><t:Contains ContainmentMode="Substring"'
        ' ContainmentComparison="IgnoreCase">'
        '<t:ExtendedFieldURI PropertyTag="0x7d" PropertyType="String"/>'
        '<t:Constant Value="subject: MESSAGE 3"/></t:Contains></m:Restriction>'
    )
    assert [p["0xe23"] for p in find_by_uid(c, restriction)] == ["3"]


def set_extended(c: TestClient, item_id: str, uri: str, value: str) -> None:
    ok(
        call(
            c,
            '<m:UpdateItem ConflictResolution="AlwaysOverwrite" MessageDisposition="SaveOnly">'
            f'<m:ItemChanges><t:ItemChange><t:ItemId Id="{item_id}"/><t:Updates>'
            f"<t:SetItemField>{uri}<t:Item><t:ExtendedProperty>{uri}{value}"
            "</t:ExtendedProperty></t:Item></t:SetItemField></t:Updates></t:ItemChange>"
            "</m:ItemChanges></m:UpdateItem>",
        )
    )


def test_update_item_sets_davmails_flags_by_extended_property(
    c: TestClient, store: MailboxStore
) -> None:
    """DavMail's STORE: \\Deleted as PSETID_Common 0x8570, \\Answered as
    PR_LAST_VERB_EXECUTED 102, keywords as PublicStrings Keywords."""
    [msg] = ok(
        call(
            c,
            '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
            '</m:ItemShape><m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/>'
            "</m:ParentFolderIds></m:FindItem>",
        )
    )
    ids = [i.find("t:ItemId", NS).get("Id") for i in msg.find("m:RootFolder/t:Items", NS)]
    uid2 = ids[-2]  # newest first: UID 2 is the last but one
    deleted = (
        '<t:ExtendedFieldURI DistinguishedPropertySetId="Common" PropertyId="34160"'
        ' PropertyType="Integer"/>'
    )
    verb = '<t:ExtendedFieldURI PropertyTag="0x1081" PropertyType="Integer"/>'
    keywords = (
        '<t:ExtendedFieldURI DistinguishedPropertySetId="PublicStrings" PropertyName="Keywords"'
        ' PropertyType="StringArray"/>'
    )
    set_extended(c, uid2, deleted, "<t:Value>1</t:Value>")
    set_extended(c, uid2, verb, "<t:Value>102</t:Value>")
    set_extended(c, uid2, keywords, "<t:Values><t:Value>Work</t:Value></t:Values>")
    flags = set(store.infos("INBOX", [2])[2].flags)
    assert {"\\Deleted", "\\Answered", "Work"} <= flags
    assert find_by_uid(c)[1]["Keywords"] == "Work"
    set_extended(c, uid2, deleted, "<t:Value>0</t:Value>")
    assert "\\Deleted" not in store.infos("INBOX", [2])[2].flags
