"""EWS operations through the ASGI app against real SQLite mailboxes: folders,
ConvertId, ResolveNames, the read path (FindItem, GetItem), sync, and what a
hostile client gets (another user's ids, forged ids, unknown operations)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from casarray.mailstore.store import close_all
from tests.access.ews import NS, call, error_of, ews_client, messages
from tests.access.http import build_org
from tests.access.http.test_api import PASSWORD, cheap_hash, seed_mailbox

ALICE = ("alice@lab.net", PASSWORD)
BOB = ("bob@lab.net", PASSWORD)


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
    return seed_mailbox(org, "alice")


@pytest.fixture
def c(org: Directory, store: MailboxStore) -> Iterator[TestClient]:
    with ews_client(org, ALICE) as client:
        yield client


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


def test_unknown_operation_is_an_error_with_200(c: TestClient) -> None:
    response = call(c, "<m:FrobnicateItem/>")
    assert response.tag == f"{{{NS['m']}}}FrobnicateItemResponse"
    code, text = error_of(messages(response)[0])
    assert code == "ErrorInvalidOperation"
    assert "FrobnicateItem" in text
