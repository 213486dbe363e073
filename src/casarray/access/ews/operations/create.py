"""CreateItem and SendItem: messages saved, sent, or both.

CreateItem's MessageDisposition:

- SaveOnly: the message is stored in SavedItemFolderId (drafts when none is named)
  and its ItemId answered. It is a draft (\\Draft) when saved into Drafts, or when the
  client says so (PR_MESSAGE_FLAGS' unsent bit, as DavMail sets it), and read unless
  IsRead (or PR_MESSAGE_FLAGS) says otherwise, as Exchange makes a new item read.
- SendOnly: sent (`writing.send`), nothing kept; the answer has no items.
- SendAndSaveCopy: sent, then its copy kept in SavedItemFolderId (sentitems when none
  is named), read; the answer has no items, as Exchange's.

SendItem sends saved messages by ItemId (a draft, usually): with SaveItemToFolder
(true unless false) a copy goes to SavedItemFolderId or sentitems, and the item itself
is removed from where it was, as Exchange moves a sent draft.
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from casarray.access.ews.compose import Written, finish, from_item, parse_mime
from casarray.access.ews.context import EwsContext, run_store
from casarray.access.ews.operations.common import batch, children
from casarray.access.ews.operations.writing import (
    DRAFT,
    append,
    expunge,
    flags_for,
    is_stale,
    items_holder,
    locate,
    message_with_id,
    raw_of,
    save_sent_copy,
    send,
    store_folder,
)
from casarray.access.ews.soap import EwsError, m

DISPOSITIONS = ("SaveOnly", "SendOnly", "SendAndSaveCopy")


def _flag(op: Element, name: str, default: bool) -> bool:
    value = (op.get(name) or "").strip().lower()
    if not value:
        return default
    if value not in ("true", "false", "1", "0"):
        raise EwsError("ErrorInvalidRequest", f"{name} is '{op.get(name)}', not true or false.")
    return value in ("true", "1")


def create_item(ctx: EwsContext, op: Element) -> Element:
    disposition = op.get("MessageDisposition")
    if disposition is None:
        raise EwsError(
            "ErrorMessageDispositionRequired",
            "CreateItem of a message needs MessageDisposition (SaveOnly, SendOnly or "
            "SendAndSaveCopy).",
        )
    if disposition not in DISPOSITIONS:
        raise EwsError(
            "ErrorInvalidRequest",
            f"MessageDisposition is '{disposition}'; SaveOnly, SendOnly or SendAndSaveCopy.",
        )
    holder = op.find(m("SavedItemFolderId"))
    target = None
    if disposition == "SaveOnly":
        target = store_folder(ctx, holder, "drafts")
    elif disposition == "SendAndSaveCopy":
        target = store_folder(ctx, holder, "sentitems")
    drafts = None
    if target is not None and disposition == "SaveOnly":
        try:
            drafts = ctx.distinguished("drafts").name
        except EwsError:
            drafts = None

    def each(e: Element, out: Element) -> None:
        written = from_item(e)
        items = items_holder(out)
        if disposition == "SaveOnly":
            assert target is not None
            me = ctx.mailbox
            finish(written, me.display_name, me.primary_smtp_address)
            flags = flags_for(written, read=True, draft=target.name == drafts)
            uid = append(ctx, target, written.message.as_bytes(), flags)
            message_with_id(ctx, items, target, uid)
            return
        send(ctx, written)
        if target is not None:
            save_sent_copy(ctx, target, written)

    entries = children(op, "Items", "item to create")
    return batch("CreateItem", entries, each)


def send_item(ctx: EwsContext, op: Element) -> Element:
    save = _flag(op, "SaveItemToFolder", True)
    target = store_folder(ctx, op.find(m("SavedItemFolderId")), "sentitems") if save else None

    def each(e: Element, out: Element) -> None:
        item = locate(ctx, e)
        if is_stale(ctx, e, item):
            raise EwsError(
                "ErrorStaleObject",
                "The item changed since its ChangeKey was issued; read it again and resend.",
            )
        written = Written(parse_mime(raw_of(ctx, item)))
        written.categories = sorted(item.keywords)
        written.flagged = "\\Flagged" in item.info.flags
        send(ctx, written)
        if target is not None:
            if target.name == item.view.name:
                run_store(ctx.store.store_flags, item.view.name, [item.ref.uid], "remove", [DRAFT])
                run_store(ctx.store.store_flags, item.view.name, [item.ref.uid], "add", ["\\Seen"])
                return
            save_sent_copy(ctx, target, written)
        expunge(ctx, item.view.name, [item.ref.uid])

    return batch("SendItem", children(op, "ItemIds", "item to send"), each)


HANDLERS = {"CreateItem": create_item, "SendItem": send_item}
