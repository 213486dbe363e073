"""SyncFolderHierarchy and SyncFolderItems: a client's copy of the folders and of a
folder's items brought up to date by a SyncState it keeps and sends back, opaque to it
and self-describing to us (`ids.IdCodec.sync_state`: HMAC'd and bound to the mailbox),
so any member of the array continues a sync another member began.

SyncFolderHierarchy. The state is the folder list the client was last given, as
(UIDVALIDITY, name) pairs, zlib-compressed. Each call diffs the store's folders under
the sync folder against it: a pair that is new is a Create, a pair that is gone a
Delete. A folder's id carries its name (`ids`), so a rename (the same UIDVALIDITY, a
new name) is a Delete of the old id and a Create of the new one: a client that keys
its folders by id would not find the old one under an Update. The virtual folders
(msgfolderroot, calendar, contacts, tasks, outbox) never change: they come with the
first sync only. The whole diff is one response (IncludesLastFolderInRange true).

SyncFolderItems. The state carries numbers, not lists (`ItemState`):

- the first phase lists the folder's messages in UID order, MaxChangesReturned
  (at most 512) a page, each a Create; the cursor is the last UID given. The folder's
  HIGHESTMODSEQ when the listing began is where the change phase starts.
- then rounds of changes: a round takes the changes after its base modseq M up to
  the folder's HIGHESTMODSEQ T when the round began (`Changes` of the store). First
  the expunged messages of (M, T] the client may know (UID below the `known` mark),
  each a Delete, by UID; then the messages whose modseq is in (M, T], by (modseq,
  UID): a Create when the UID is at or above the mark (the client never saw it), an
  Update otherwise. The cursor is the last UID deleted, then the last (modseq, UID)
  given, so a page may stop inside a group of messages sharing one modseq and the
  next page resumes right after. A message changed again during the round moves past
  T and comes in the next round; an expunge after T too. When a round ends, M = T and
  the mark moves past every UID created in it. IncludesLastItemInRange is false while
  a page stopped early or something changed after T.

The expunges of (M, T] are those since M less those since T (a UID is expunged once
per UIDVALIDITY), as the store's `Changes` carry UIDs without their modseq. A move
is an expunge here and an append in the destination. Items named in Ignore are
skipped (the cursor moves past them). A state of another mailbox, of another folder
(its UIDVALIDITY), of the other operation, forged or altered is refused with
ErrorInvalidSyncStateData and changes nothing; a folder recreated under the same name
has a new UIDVALIDITY, so its old state is refused too and the client syncs again.

Items are written as FindItem writes them (no Body, no attachments: Exchange's
SyncFolderItems returns neither); Exchange's ReadFlagChange is reported as an Update.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

from casarray.access.ews.context import EwsContext, FolderView, run_store
from casarray.access.ews.ids import VIRTUAL_FOLDERS, FolderRef, ItemRef
from casarray.access.ews.operations.common import Shape, folder_element, read_shape
from casarray.access.ews.operations.items import load_items
from casarray.access.ews.properties import message_element, wanted
from casarray.access.ews.soap import (
    EwsError,
    element,
    fill_status,
    local_name,
    m,
    operation_response,
    sub,
    t,
)
from casarray.mailstore.interface import MessageInfo

MAX_CHANGES = 512
_HIERARCHY = 1
_ITEMS = 2
# Item sync phases.
_LISTING = 0
_DELETES = 1
_CHANGES = 2


def _sync_folder(ctx: EwsContext, op: Element, default: str | None) -> FolderView:
    holder = op.find(m("SyncFolderId"))
    if holder is None or not len(holder):
        if default is None:
            raise EwsError("ErrorInvalidRequest", "The request names no SyncFolderId.")
        return ctx.distinguished(default)
    return ctx.folder_of(holder[0])


def _state_text(op: Element) -> str | None:
    text = (op.findtext(m("SyncState")) or "").strip()
    return text or None


def _changes_message(operation: str) -> tuple[Element, Element]:
    msg = element(m(f"{operation}ResponseMessage"))
    fill_status(msg)
    return msg, element(m("Changes"))


# -- SyncFolderHierarchy ---------------------------------------------------------------------


def _encode_folders(pairs: list[tuple[int, str]]) -> bytes:
    return zlib.compress("\n".join(f"{v}\t{n}" for v, n in pairs).encode(), 9)


def _decode_folders(blob: bytes) -> list[tuple[int, str]]:
    try:
        text = zlib.decompress(blob).decode()
        out = []
        for line in text.split("\n") if text else ():
            validity, _, name = line.partition("\t")
            out.append((int(validity), name))
        return out
    except (zlib.error, UnicodeDecodeError, ValueError):
        raise EwsError("ErrorInvalidSyncStateData", "The sync state is malformed.") from None


def _root_code(view: FolderView) -> int:
    """What binds a hierarchy state to its sync folder: its UIDVALIDITY, or for a
    virtual folder its code above 2**32."""
    if view.virtual is not None:
        return (1 << 32) + VIRTUAL_FOLDERS[view.virtual]
    return view.ref.uid_validity


def sync_folder_hierarchy(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(op, "FolderShape")
    root = _sync_folder(ctx, op, "root")
    code = _root_code(root)
    text = _state_text(op)
    known: list[tuple[int, str]] | None = None
    if text is not None:
        numbers, blob = ctx.ids.decode_sync_state(text, ctx.mailbox_guid)
        if len(numbers) != 2 or numbers[0] != _HIERARCHY:
            raise EwsError(
                "ErrorInvalidSyncStateData", "The sync state is not of SyncFolderHierarchy."
            )
        if numbers[1] != code:
            raise EwsError("ErrorInvalidSyncStateData", "The sync state is of another folder.")
        known = _decode_folders(blob)
    below = ctx.children_of(root, deep=True)
    stored = [v for v in below if v.folder is not None]
    now = [(v.ref.uid_validity, v.name) for v in stored]
    msg, changes = _changes_message("SyncFolderHierarchy")
    if known is None:
        for view in below:
            sub(changes, t("Create")).append(folder_element(ctx, view, shape))
    else:
        current = set(now)
        before = set(known)
        for validity, name in known:
            if (validity, name) not in current:
                gone = FolderRef(ctx.mailbox_guid, name, validity)
                sub(sub(changes, t("Delete")), t("FolderId"), Id=ctx.ids.folder_id(gone))
        for view in stored:
            if (view.ref.uid_validity, view.name) not in before:
                sub(changes, t("Create")).append(folder_element(ctx, view, shape))
    state = ctx.ids.sync_state(ctx.mailbox_guid, (_HIERARCHY, code), _encode_folders(now))
    sub(msg, m("SyncState"), state)
    sub(msg, m("IncludesLastFolderInRange"), "true")
    msg.append(changes)
    return operation_response("SyncFolderHierarchy", [msg])


# -- SyncFolderItems -------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemState:
    """Where an item sync stands (see the module docstring)."""

    uid_validity: int
    phase: int = _LISTING
    base: int = 0  # M: every change up to this modseq was given
    target: int = 0  # T: the round's end (0: no round under way); the listing's start
    deleted_uid: int = 0  # the last UID deleted in this round
    modseq: int = 0  # the last (modseq, UID) given in this round, or the listing's UID
    uid: int = 0
    known: int = 0  # UIDs below this were given to the client before this round
    next_known: int = 0  # the mark once this round ends

    def numbers(self) -> tuple[int, ...]:
        return (
            _ITEMS,
            self.uid_validity,
            self.phase,
            self.base,
            self.target,
            self.deleted_uid,
            self.modseq,
            self.uid,
            self.known,
            self.next_known,
        )

    @classmethod
    def of(cls, numbers: tuple[int, ...]) -> ItemState:
        if len(numbers) != 10 or numbers[0] != _ITEMS:
            raise EwsError("ErrorInvalidSyncStateData", "The sync state is not of SyncFolderItems.")
        state = cls(*numbers[1:])
        if state.phase not in (_LISTING, _DELETES, _CHANGES):
            raise EwsError("ErrorInvalidSyncStateData", "The sync state is malformed.")
        return state


def _max_changes(op: Element) -> int:
    text = (op.findtext(m("MaxChangesReturned")) or "").strip()
    if not text:
        raise EwsError("ErrorInvalidRequest", "The request has no MaxChangesReturned.")
    try:
        n = int(text)
    except ValueError:
        raise EwsError(
            "ErrorInvalidRequest", f"MaxChangesReturned is '{text}', not a number."
        ) from None
    if not 1 <= n <= MAX_CHANGES:
        raise EwsError(
            "ErrorInvalidRequest", f"MaxChangesReturned is {n}; it must be 1 to {MAX_CHANGES}."
        )
    return n


def _ignored(ctx: EwsContext, op: Element, view: FolderView) -> set[int]:
    holder = op.find(m("Ignore"))
    out: set[int] = set()
    for e in holder if holder is not None else ():
        if local_name(e.tag) != "ItemId":
            raise EwsError(
                "ErrorInvalidRequest", f"Ignore holds '{local_name(e.tag)}', not ItemId."
            )
        ref = ctx.item(e.get("Id"))
        if ref.uid_validity == view.ref.uid_validity:
            out.add(ref.uid)
    return out


@dataclass
class _Page:
    """The changes of one response, in order: ("delete", uid) or ("create"|"update",
    uid)."""

    limit: int
    entries: list[tuple[str, int]]

    @property
    def full(self) -> bool:
        return len(self.entries) >= self.limit


def _listing(
    ctx: EwsContext, view: FolderView, state: ItemState, page: _Page, skip: set[int]
) -> tuple[ItemState, bool]:
    infos = run_store(ctx.store.messages, view.name)
    cursor = state.uid
    rest = [i.uid for i in infos if i.uid > cursor]
    for uid in rest:
        if page.full:
            return replace(state, uid=cursor), False
        cursor = uid
        if uid not in skip:
            page.entries.append(("create", uid))
    mark = max(state.known, cursor + 1)
    done = ItemState(view.ref.uid_validity, _DELETES, state.target, 0, 0, 0, 0, mark, mark)
    return done, True


def _round(
    ctx: EwsContext, view: FolderView, state: ItemState, page: _Page, skip: set[int]
) -> tuple[ItemState, bool]:
    name = view.name
    since = run_store(ctx.store.changes_since, name, state.base)
    target = state.target or since.highest_modseq
    if target <= state.base:
        return replace(state, target=0), True
    state = replace(state, target=target)
    expunged = set(since.expunged)
    if since.highest_modseq > target:
        expunged -= set(run_store(ctx.store.changes_since, name, target).expunged)
    if state.phase == _DELETES:
        for uid in sorted(u for u in expunged if state.deleted_uid < u < state.known):
            if page.full:
                return state, False
            state = replace(state, deleted_uid=uid)
            if uid not in skip:
                page.entries.append(("delete", uid))
        state = replace(state, phase=_CHANGES)
    changed: list[MessageInfo] = sorted(
        (
            i
            for i in since.changed
            if i.modseq <= target and (i.modseq, i.uid) > (state.modseq, state.uid)
        ),
        key=lambda i: (i.modseq, i.uid),
    )
    for info in changed:
        if page.full:
            return state, False
        state = replace(state, modseq=info.modseq, uid=info.uid)
        if info.uid in skip:
            continue
        if info.uid >= state.known:
            page.entries.append(("create", info.uid))
            state = replace(state, next_known=max(state.next_known, info.uid + 1))
        else:
            page.entries.append(("update", info.uid))
    mark = max(state.known, state.next_known)
    after = ItemState(state.uid_validity, _DELETES, target, 0, 0, 0, 0, mark, mark)
    return after, since.highest_modseq <= target


def sync_folder_items(ctx: EwsContext, op: Element) -> Element:
    shape = read_shape(op, "ItemShape")
    limit = _max_changes(op)
    scope = (op.findtext(m("SyncScope")) or "NormalItems").strip()
    if scope not in ("NormalItems", "NormalAndAssociatedItems"):
        raise EwsError(
            "ErrorInvalidRequest",
            f"SyncScope is '{scope}'; NormalItems or NormalAndAssociatedItems.",
        )
    view = _sync_folder(ctx, op, None)
    validity = view.ref.uid_validity if view.folder is not None else 0
    text = _state_text(op)
    if text is None:
        first = view.folder.highest_modseq if view.folder is not None else 0
        state = ItemState(validity, target=first)
    else:
        numbers, _ = ctx.ids.decode_sync_state(text, ctx.mailbox_guid)
        state = ItemState.of(numbers)
        if state.uid_validity != validity:
            raise EwsError(
                "ErrorInvalidSyncStateData",
                "The sync state is of another folder (or of this one before it was "
                "recreated); sync again without a SyncState.",
            )
    skip = _ignored(ctx, op, view)
    page = _Page(limit, [])
    last = True
    if view.folder is not None:
        if state.phase == _LISTING:
            state, last = _listing(ctx, view, state, page, skip)
        else:
            state, last = _round(ctx, view, state, page, skip)
    msg, changes = _changes_message("SyncFolderItems")
    _write_items(ctx, view, shape, page.entries, changes)
    sub(msg, m("SyncState"), ctx.ids.sync_state(ctx.mailbox_guid, state.numbers()))
    sub(msg, m("IncludesLastItemInRange"), "true" if last else "false")
    msg.append(changes)
    return operation_response("SyncFolderItems", [msg])


def _write_items(
    ctx: EwsContext,
    view: FolderView,
    shape: Shape,
    entries: list[tuple[str, int]],
    changes: Element,
) -> None:
    props = wanted(shape.base, shape.additional, find=True, mime=False)
    shown = [uid for kind, uid in entries if kind != "delete"]
    items = {}
    if shown:
        loaded = load_items(ctx, view, shown, parts=bool(props - {"item:ItemId"}), raw=False)
        items = {i.info.uid: i for i in loaded}
    for kind, uid in entries:
        if kind == "delete":
            ref = ItemRef(ctx.mailbox_guid, view.name, view.ref.uid_validity, uid)
            sub(sub(changes, t("Delete")), t("ItemId"), Id=ctx.ids.item_id(ref))
            continue
        item = items.get(uid)
        if item is None:
            continue  # expunged since: its Delete comes with a later round
        tag = "Create" if kind == "create" else "Update"
        sub(changes, t(tag)).append(message_element(item, ctx.ids, props, shape.body_type))


HANDLERS: dict[str, Callable[[EwsContext, Element], Element]] = {
    "SyncFolderHierarchy": sync_folder_hierarchy,
    "SyncFolderItems": sync_folder_items,
}
