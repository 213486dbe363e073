"""SyncFolderHierarchy and SyncFolderItems through the ASGI app against a real SQLite
mailbox (transcripts of what a client sends and sees), and exchangelib 5.x's
`sync_items()` / `sync_hierarchy()` against uvicorn."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from starlette.testclient import TestClient

from casarray.directory import Directory
from casarray.mailstore.interface import MailboxStore
from tests.access.ews import BOB, NS, call, error_of, ews_client, messages, ok
from tests.access.http.test_api import plain, seed_mailbox


@pytest.fixture
def backend() -> str:
    return "sqlite"


def sync_items(
    c: TestClient,
    state: str | None = None,
    *,
    folder: str = '<t:DistinguishedFolderId Id="inbox"/>',
    limit: int = 100,
    ignore: list[str] = (),  # type: ignore[assignment]
    shape: str = "IdOnly",
) -> Element:
    body = (
        f"<m:SyncFolderItems><m:ItemShape><t:BaseShape>{shape}</t:BaseShape>"
        "<t:AdditionalProperties><t:FieldURI FieldURI='item:Subject'/>"
        "<t:FieldURI FieldURI='message:IsRead'/></t:AdditionalProperties></m:ItemShape>"
        f"<m:SyncFolderId>{folder}</m:SyncFolderId>"
        + (f"<m:SyncState>{state}</m:SyncState>" if state is not None else "")
        + (
            "<m:Ignore>" + "".join(f'<t:ItemId Id="{i}"/>' for i in ignore) + "</m:Ignore>"
            if ignore
            else ""
        )
        + f"<m:MaxChangesReturned>{limit}</m:MaxChangesReturned></m:SyncFolderItems>"
    )
    return messages(call(c, body))[0]


def changes(msg: Element) -> list[tuple[str, str, str | None]]:
    """(kind, item id, subject) of each change."""
    out = []
    for change in msg.find("m:Changes", NS):  # type: ignore[union-attr]
        kind = change.tag.rpartition("}")[2]
        if kind == "Delete":
            out.append((kind, change.find("t:ItemId", NS).get("Id"), None))  # type: ignore[union-attr]
        else:
            item = change[0]
            out.append(
                (kind, item.find("t:ItemId", NS).get("Id"), item.findtext("t:Subject", None, NS))  # type: ignore[union-attr]
            )
    return out


def state_of(msg: Element) -> str:
    assert msg.get("ResponseClass") == "Success", msg
    return msg.findtext("m:SyncState", "", NS)


def last(msg: Element) -> bool:
    return msg.findtext("m:IncludesLastItemInRange", "", NS) == "true"


def subjects(found: list[tuple[str, str, str | None]]) -> list[tuple[str, str | None]]:
    return [(kind, subject) for kind, _, subject in found]


def test_sync_items_from_nothing_then_changes(c: TestClient, store: MailboxStore) -> None:
    first = sync_items(c)
    got = changes(first)
    assert [k for k, _, _ in got] == ["Create"] * 6
    assert got[1][2] == "Message 2" and got[0][2] == "Quarterly report"
    assert last(first)
    ids = {subject: item_id for _, item_id, subject in got}
    state = state_of(first)

    # Nothing changed: no changes, the state may stay as it is.
    again = sync_items(c, state)
    assert changes(again) == [] and last(again)
    state = state_of(again)

    # A new message, a flag change, an expunge and a move out of the inbox.
    store.append("INBOX", plain(7))
    store.store_flags("INBOX", [2], "add", ["\\Seen"])
    store.store_flags("INBOX", [3], "add", ["\\Deleted"])
    store.expunge("INBOX", [3])
    store.move("INBOX", [4], "INBOX/Work")
    after = sync_items(c, state)
    got = changes(after)
    assert sorted(subjects(got), key=str) == sorted(
        [("Delete", None), ("Delete", None), ("Update", "Message 2"), ("Create", "Message 7")],
        key=str,
    )
    deleted = {item_id for kind, item_id, _ in got if kind == "Delete"}
    assert deleted == {ids["Message 3"], ids["Message 4"]}
    updated = next(i for k, i, _ in got if k == "Update")
    assert updated == ids["Message 2"]  # the same id, a new ChangeKey
    assert last(after)
    assert changes(sync_items(c, state_of(after))) == []

    # The moved message is a Create in its new folder's sync.
    work_id = ok(
        call(
            c,
            "<m:FindFolder Traversal='Shallow'><m:FolderShape><t:BaseShape>IdOnly"
            "</t:BaseShape></m:FolderShape><m:ParentFolderIds>"
            "<t:DistinguishedFolderId Id='inbox'/></m:ParentFolderIds></m:FindFolder>",
        )
    )[0].find("m:RootFolder/t:Folders/t:Folder/t:FolderId", NS)
    assert work_id is not None
    moved = changes(sync_items(c, folder=f'<t:FolderId Id="{work_id.get("Id")}"/>'))
    assert subjects(moved) == [("Create", "Message 4")]


def test_paging_with_a_small_max_changes(c: TestClient, store: MailboxStore) -> None:
    seen: list[str | None] = []
    state = None
    pages = 0
    while True:
        msg = sync_items(c, state, limit=4)
        got = changes(msg)
        assert len(got) <= 4
        seen += [s for _, _, s in got]
        state = state_of(msg)
        pages += 1
        if last(msg):
            break
    assert pages == 2 and len(seen) == 6 and len(set(seen)) == 6

    # Ten messages changed by one STORE share one modseq: the pages stop inside it.
    for n in range(10):
        store.append("INBOX", plain(10 + n))
    every = [i.uid for i in store.messages("INBOX")]
    store.store_flags("INBOX", every, "add", ["$Label1"])
    kinds: list[tuple[str, str | None]] = []
    pages = 0
    while True:
        msg = sync_items(c, state, limit=3)
        got = changes(msg)
        assert len(got) <= 3
        kinds += subjects(got)
        state = state_of(msg)
        pages += 1
        if last(msg):
            break
    assert pages == 6  # 16 changes, 3 a page
    assert len(kinds) == 16 and len(set(kinds)) == 16
    assert sorted(k for k, _ in kinds).count("Create") == 10
    assert changes(sync_items(c, state)) == []


def test_a_change_during_paging_is_not_lost(c: TestClient, store: MailboxStore) -> None:
    first = sync_items(c)
    state = state_of(first)
    for n in range(5):
        store.append("INBOX", plain(20 + n))
    msg = sync_items(c, state, limit=2)
    got = subjects(changes(msg))
    assert not last(msg)
    # Meanwhile: one of those not yet given changes again, another is expunged.
    uids = [i.uid for i in store.messages("INBOX")]
    store.store_flags("INBOX", [uids[-1]], "add", ["\\Seen"])
    store.store_flags("INBOX", [uids[-2]], "add", ["\\Deleted"])
    store.expunge("INBOX", [uids[-2]])
    state = state_of(msg)
    while True:
        msg = sync_items(c, state, limit=2)
        got += subjects(changes(msg))
        state = state_of(msg)
        if last(msg):
            break
    created = [s for k, s in got if k == "Create"]
    assert sorted(created) == sorted(f"Message {20 + n}" for n in range(5) if n != 3)


def test_ignore_skips_items(c: TestClient) -> None:
    first = sync_items(c, limit=2)
    skip = [item_id for _, item_id, _ in changes(first)]
    everything = changes(sync_items(c, ignore=skip))
    assert len(everything) == 4
    assert not set(skip) & {i for _, i, _ in everything}


def test_forged_and_foreign_states_are_refused(org: Directory, c: TestClient) -> None:
    state = state_of(sync_items(c))
    forged = state[:-4] + ("AAAA" if state[-4:] != "AAAA" else "BBBB")
    for bad in (forged, "not base64!", "AAAA"):
        code, text = error_of(sync_items(c, bad))
        assert code == "ErrorInvalidSyncStateData", text
    # Another folder's state.
    code, text = error_of(sync_items(c, state, folder='<t:DistinguishedFolderId Id="sentitems"/>'))
    assert code == "ErrorInvalidSyncStateData" and "another folder" in text
    # A hierarchy state for items.
    hierarchy = sync_hierarchy(c)
    code, _ = error_of(sync_items(c, hierarchy.findtext("m:SyncState", "", NS)))
    assert code == "ErrorInvalidSyncStateData"
    # Another user's state, MAC and all.
    seed_mailbox(org, "bob")
    with ews_client(org, BOB, server="CAS03") as bob:
        code, text = error_of(sync_items(bob, state))
        assert code == "ErrorInvalidSyncStateData" and "another mailbox" in text
        assert "Quarterly" not in text


def test_bad_max_changes(c: TestClient) -> None:
    for bad in ("0", "513", "x"):
        code, text = error_of(sync_items(c, limit=bad))  # type: ignore[arg-type]
        assert code == "ErrorInvalidRequest" and "MaxChangesReturned" in text


def test_exchangelib_sync_items_and_hierarchy(org: Directory, store: MailboxStore) -> None:
    pytest.importorskip("exchangelib")
    from tests.access.ews.test_exchangelib import account, serve

    with serve(org, "CAS01") as cas01:
        a = account(cas01)
        got = list(a.inbox.sync_items(max_changes_returned=4))
        assert [kind for kind, _ in got] == ["create"] * 6
        assert {m.subject for _, m in got} >= {"Message 2", "Message 5"}
        state = a.inbox.item_sync_state
        assert state
        first_ids = {m.subject: m.id for _, m in got}
        store.append("INBOX", plain(8))
        store.store_flags("INBOX", [2], "add", ["\\Seen"])
        store.store_flags("INBOX", [5], "add", ["\\Deleted"])
        store.expunge("INBOX", [5])
        # Another member of the array continues the sync.
        with serve(org, "CAS02") as cas02:
            b = account(cas02)
            b.inbox.item_sync_state = state
            later = list(b.inbox.sync_items())
        kinds = sorted((kind, getattr(x, "subject", None) or x.id) for kind, x in later)
        assert kinds == sorted(
            [("create", "Message 8"), ("delete", first_ids["Message 5"]), ("update", "Message 2")]
        )
        [(_, updated)] = [x for x in later if x[0] == "update"]
        assert updated.is_read
        folders = list(a.root.sync_hierarchy())
        names = {f.name for kind, f in folders if kind == "create"}
        assert {"Inbox", "Work", "Projects", "2024"} <= names
        store.create_folder("Clients")
        again = [(kind, f.name) for kind, f in a.root.sync_hierarchy()]
        assert again == [("create", "Clients")]


def sync_hierarchy(c: TestClient, state: str | None = None) -> Element:
    body = (
        "<m:SyncFolderHierarchy><m:FolderShape><t:BaseShape>AllProperties</t:BaseShape>"
        "</m:FolderShape>"
        + (f"<m:SyncState>{state}</m:SyncState>" if state is not None else "")
        + "</m:SyncFolderHierarchy>"
    )
    return messages(call(c, body))[0]


def folder_changes(msg: Element) -> list[tuple[str, str | None]]:
    out = []
    for change in msg.find("m:Changes", NS):  # type: ignore[union-attr]
        kind = change.tag.rpartition("}")[2]
        if kind == "Delete":
            out.append((kind, change.find("t:FolderId", NS).get("Id")))  # type: ignore[union-attr]
        else:
            out.append((kind, change[0].findtext("t:DisplayName", None, NS)))
    return out


def test_sync_hierarchy(c: TestClient, store: MailboxStore) -> None:
    first = sync_hierarchy(c)
    assert first.findtext("m:IncludesLastFolderInRange", "", NS) == "true"
    got = folder_changes(first)
    names = [n for _, n in got]
    assert {k for k, _ in got} == {"Create"}
    assert {"Top of Information Store", "Inbox", "Work", "Projects", "2024", "Calendar"} <= set(
        names
    )
    assert names.index("Inbox") < names.index("Work")  # parents first
    state = state_of(first)
    assert folder_changes(sync_hierarchy(c, state)) == []

    ids = {
        change[0].findtext("t:DisplayName", None, NS): change[0].find("t:FolderId", NS).get("Id")  # type: ignore[union-attr]
        for change in first.find("m:Changes", NS)  # type: ignore[union-attr]
    }
    store.create_folder("Clients")
    store.delete_folder("Projects/2024")
    store.rename_folder("INBOX/Work", "INBOX/Jobs")
    after = sync_hierarchy(c, state)
    got = folder_changes(after)
    assert sorted(got, key=str) == sorted(
        [
            ("Create", "Clients"),
            ("Create", "Jobs"),
            ("Delete", ids["2024"]),
            ("Delete", ids["Work"]),
        ],
        key=str,
    )
    assert folder_changes(sync_hierarchy(c, state_of(after))) == []
    middle = len(state) // 2  # one character changed inside the sealed bytes
    altered = state[:middle] + ("A" if state[middle] != "A" else "B") + state[middle + 1 :]
    code, _ = error_of(sync_hierarchy(c, altered))
    assert code == "ErrorInvalidSyncStateData"
