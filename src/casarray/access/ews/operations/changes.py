"""UpdateItem, DeleteItem, MoveItem, CopyItem and MarkAsJunk.

UpdateItem: SetItemField, AppendToItemField and DeleteItemField of
- message:IsRead (\\Seen), item:Flag's FlagStatus and the MAPI PR_FLAG_STATUS (0x1090)
  (\\Flagged: Flagged is set, NotFlagged and Complete clear it), PR_MESSAGE_FLAGS
  (0x0E07: read), item:Categories and PublicStrings "Keywords" (IMAP keywords: Set
  replaces them, Append adds, Delete removes all), PR_LAST_VERB_EXECUTED (0x1081:
  102/103 \\Answered, 104 $Forwarded) and PSETID_Common 0x8570 (DavMail's \\Deleted,
  1 or 0): flags, on any message; the MAPI properties are resolved by
  `properties.extended_id`;
- the content of a draft (\\Draft): Subject, Body, Importance, Sensitivity, the
  recipients, From, ReplyTo, InReplyTo, References, IsReadReceiptRequested: the message
  is rebuilt and replaces the draft (a new ItemId). On a message that isn't a draft they
  are ErrorInvalidPropertyUpdateSentMessage, as Exchange refuses changing a sent one.
- properties Exchange has and this store doesn't keep (reminders, IsResponseRequested,
  IsDeliveryReceiptRequested, ...) are accepted and change nothing.
ConflictResolution: NeverOverwrite refuses an ItemId whose ChangeKey is older than the
message (ErrorIrresolvableConflict); AutoResolve and AlwaysOverwrite apply the change
(Exchange's AutoResolve merges changes to other properties; the only conflicts a
message here can have are of flags, which last-writer-wins settles as Exchange does for
a single property). MessageDisposition SendAndSaveCopy and SendOnly send the draft
after the changes (its copy to SavedItemFolderId or sentitems with SendAndSaveCopy)
and remove it; the answer then has no items.

DeleteItem: HardDelete expunges; SoftDelete and MoveToDeletedItems move to
deleteditems, and from deleteditems itself they delete for good, as Exchange does.
MoveItem and CopyItem answer the new ItemIds (unless ReturnNewItemIds is false).
MarkAsJunk with MoveItem moves to junkemail (IsJunk true) or back to inbox (false).
"""

from __future__ import annotations

from collections.abc import Callable
from xml.etree.ElementTree import Element

from casarray.access.ews.compose import (
    Written,
    keywords_of,
    parse_mime,
    update_fields,
)
from casarray.access.ews.context import EwsContext, FolderView, run_store
from casarray.access.ews.operations.common import batch, children
from casarray.access.ews.operations.writing import (
    FLAGGED,
    SEEN,
    Located,
    expunge,
    info_of,
    is_stale,
    items_holder,
    locate,
    message_with_id,
    raw_of,
    replace_message,
    save_sent_copy,
    send,
    store_folder,
    write_item_id,
)
from casarray.access.ews.properties import extended_id, field_path
from casarray.access.ews.soap import EwsError, local_name, m, sub, t

FLAG_FIELDS = frozenset({"message:IsRead", "item:Categories", "item:Flag"})
CONTENT_FIELDS = frozenset(
    {
        "item:Subject",
        "item:Body",
        "item:Importance",
        "item:Sensitivity",
        "item:InReplyTo",
        "message:ToRecipients",
        "message:CcRecipients",
        "message:BccRecipients",
        "message:From",
        "message:Sender",
        "message:ReplyTo",
        "message:References",
        "message:IsReadReceiptRequested",
        "message:InternetMessageId",
    }
)
IGNORED_FIELDS = frozenset(
    {
        "item:ReminderDueBy",
        "item:ReminderIsSet",
        "item:ReminderMinutesBeforeStart",
        "item:Culture",
        "message:IsResponseRequested",
        "message:IsDeliveryReceiptRequested",
        "message:ConversationIndex",
        "message:ConversationTopic",
        "item:ItemClass",
    }
)
# The empty value a DeleteItemField of a content field means.
EMPTY = {
    "item:Subject": "Subject",
    "item:Body": "Body",
    "message:ToRecipients": "ToRecipients",
    "message:CcRecipients": "CcRecipients",
    "message:BccRecipients": "BccRecipients",
    "message:ReplyTo": "ReplyTo",
    "item:InReplyTo": "InReplyTo",
    "message:References": "References",
}


def _path(update: Element) -> tuple[str, Element, Element | None]:
    """(field, path element, value element) of one Set/Append/DeleteItemField."""
    path = next(
        (
            c
            for c in update
            if local_name(c.tag) in ("FieldURI", "IndexedFieldURI", "ExtendedFieldURI")
        ),
        None,
    )
    if path is None:
        raise EwsError("ErrorInvalidRequest", f"{local_name(update.tag)} names no property.")
    value = next((c for c in update if c is not path), None)
    kind = local_name(path.tag)
    if kind == "ExtendedFieldURI":
        return "extended:" + extended_id(field_path(path)).lower(), path, value
    if kind == "IndexedFieldURI":
        return f"{path.get('FieldURI')}:{path.get('FieldIndex')}", path, value
    return path.get("FieldURI") or "", path, value


KEYWORDS = "extended:publicstrings:name:keywords"
DELETED = "\\Deleted"
ANSWERED = "\\Answered"
FORWARDED = "$Forwarded"


def _extended_value(value: Element | None) -> str:
    """The Value of the t:ExtendedProperty in an update's t:Item or t:Message."""
    if value is None:
        return ""
    return value.findtext(f"{t('ExtendedProperty')}/{t('Value')}") or ""


def _extended_values(value: Element | None) -> list[str]:
    if value is None:
        return []
    prop = value.find(t("ExtendedProperty"))
    if prop is None:
        return []
    many = prop.find(t("Values"))
    if many is not None:
        return [v.text or "" for v in many]
    one = prop.findtext(t("Value"))
    return [one] if one else []


def _bool(value: Element | None, tag: str, field: str) -> bool:
    found = value.find(t(tag)) if value is not None else None
    text = (found.text or "").strip().lower() if found is not None else ""
    if text not in ("true", "false", "1", "0"):
        raise EwsError("ErrorInvalidValueForProperty", f"{field} needs true or false.")
    return text in ("true", "1")


class _Change:
    """What one ItemChange does to a message: flags to add and remove, keywords, and
    a rebuilt draft."""

    def __init__(self, ctx: EwsContext, item: Located) -> None:
        self.ctx = ctx
        self.item = item
        self.add: set[str] = set()
        self.remove: set[str] = set()
        self.written: Written | None = None

    def _set_flag(self, flag: str, on: bool) -> None:
        (self.add if on else self.remove).add(flag)
        (self.remove if on else self.add).discard(flag)

    def _draft(self, field: str) -> Written:
        if not self.item.is_draft:
            raise EwsError(
                "ErrorInvalidPropertyUpdateSentMessage",
                f"{field} can be changed only on a draft; this message was sent or received.",
            )
        if self.written is None:
            self.written = Written(parse_mime(raw_of(self.ctx, self.item)))
        return self.written

    def apply(self, update: Element) -> None:
        kind = local_name(update.tag)
        if kind not in ("SetItemField", "AppendToItemField", "DeleteItemField"):
            raise EwsError("ErrorInvalidRequest", f"'{kind}' is not an item update.")
        field, path, value = _path(update)
        deleting = kind == "DeleteItemField"
        if kind != "DeleteItemField" and value is None:
            raise EwsError("ErrorInvalidRequest", f"{kind} of {field} has no value.")
        if value is not None and local_name(value.tag) not in ("Message", "Item"):
            raise EwsError(
                "ErrorInvalidRequest", f"The value of {field} must be in a t:Message or t:Item."
            )
        if field == "message:IsRead":
            if deleting:
                raise EwsError("ErrorInvalidPropertyDelete", "IsRead can't be deleted.")
            self._set_flag(SEEN, _bool(value, "IsRead", field))
        elif field == "item:Flag":
            status = "NotFlagged"
            if not deleting:
                status = (value.findtext(f"{t('Flag')}/{t('FlagStatus')}") or "").strip()  # type: ignore[union-attr]
            if status not in ("NotFlagged", "Flagged", "Complete"):
                raise EwsError("ErrorInvalidValueForProperty", f"FlagStatus '{status}' isn't one.")
            self._set_flag(FLAGGED, status == "Flagged")
        elif field == KEYWORDS:
            self._keywords(kind, _extended_values(value))
        elif field == "extended:common:id:34160":  # PidLidImapDeleted: DavMail's \Deleted
            self._set_flag(DELETED, not deleting and _extended_value(value).strip() == "1")
        elif field == "extended:tag:0x1081":  # PR_LAST_VERB_EXECUTED
            verb = "" if deleting else _extended_value(value).strip()
            if verb in ("102", "103"):
                self._set_flag(ANSWERED, True)
            elif verb == "104":
                self._set_flag(FORWARDED, True)
            elif deleting:
                self._set_flag(ANSWERED, False)
                self._set_flag(FORWARDED, False)
        elif field == "extended:tag:0x1090":  # PR_FLAG_STATUS
            on = False
            if not deleting:
                on = (value.findtext(f"{t('ExtendedProperty')}/{t('Value')}") or "").strip() == "2"  # type: ignore[union-attr]
            self._set_flag(FLAGGED, on)
        elif field == "extended:tag:0x0e07":  # PR_MESSAGE_FLAGS
            if not deleting:
                text = value.findtext(f"{t('ExtendedProperty')}/{t('Value')}") or ""  # type: ignore[union-attr]
                try:
                    self._set_flag(SEEN, bool(int(text.strip()) & 1))
                except ValueError:
                    raise EwsError(
                        "ErrorInvalidValueForProperty", "PR_MESSAGE_FLAGS needs an integer."
                    ) from None
        elif field == "item:Categories":
            holder = value.find(t("Categories")) if value is not None else None
            self._keywords(kind, [s.text or "" for s in (holder if holder is not None else ())])
        elif field in CONTENT_FIELDS:
            written = self._draft(field)
            if deleting:
                if field not in EMPTY:
                    raise EwsError("ErrorInvalidPropertyDelete", f"{field} can't be deleted.")
                holder = Element(t("Message"))
                sub(
                    holder,
                    t(EMPTY[field]),
                    "",
                    **({"BodyType": "Text"} if field == "item:Body" else {}),
                )
                update_fields(written, holder)
            elif kind == "AppendToItemField":
                self._append(written, field, value)  # type: ignore[arg-type]
            else:
                update_fields(written, value)  # type: ignore[arg-type]
        elif field in IGNORED_FIELDS or field.startswith("extended:"):
            return
        else:
            raise EwsError(
                "ErrorInvalidPropertySet", f"{field or path.tag} can't be changed on this server."
            )

    def _keywords(self, kind: str, values: list[str]) -> None:
        current = self.item.keywords
        wanted = keywords_of(values) if kind != "DeleteItemField" else []
        if kind == "SetItemField":
            self.remove |= current - set(wanted)
            self.add |= set(wanted)
        elif kind == "AppendToItemField":
            self.add |= set(wanted)
        else:
            self.remove |= current

    def _append(self, written: Written, field: str, value: Element) -> None:
        """AppendToItemField: recipients added to those there, text to the body."""
        message = written.message
        if field in ("message:ToRecipients", "message:CcRecipients", "message:BccRecipients"):
            header = {"message:ToRecipients": "To", "message:CcRecipients": "Cc"}.get(field, "Bcc")
            before = [str(v) for v in message.get_all(header, [])]
            update_fields(written, value)
            added = message[header]
            del message[header]
            joined = ", ".join([*before, str(added)] if added is not None else before)
            if joined:
                message[header] = joined
            return
        if field == "item:Body":
            from casarray.access.ews.compose import set_body

            body = message.get_body(preferencelist=("plain", "html"))
            current = body.get_content() if body is not None else ""
            extra = value.find(t("Body"))
            text = extra.text or "" if extra is not None else ""
            set_body(message, "Text", f"{current}{text}")
            return
        raise EwsError("ErrorInvalidPropertyAppend", f"{field} can't be appended to.")


def update_item(ctx: EwsContext, op: Element) -> Element:
    resolution = op.get("ConflictResolution") or "AutoResolve"
    if resolution not in ("NeverOverwrite", "AutoResolve", "AlwaysOverwrite"):
        raise EwsError(
            "ErrorInvalidRequest",
            f"ConflictResolution is '{resolution}'; NeverOverwrite, AutoResolve or "
            "AlwaysOverwrite.",
        )
    disposition = op.get("MessageDisposition") or "SaveOnly"
    if disposition not in ("SaveOnly", "SendOnly", "SendAndSaveCopy"):
        raise EwsError("ErrorInvalidRequest", f"MessageDisposition is '{disposition}'.")
    sent_copies = (
        store_folder(ctx, op.find(m("SavedItemFolderId")), "sentitems")
        if disposition == "SendAndSaveCopy"
        else None
    )

    def each(change: Element, out: Element) -> None:
        target = next((c for c in change if local_name(c.tag) != "Updates"), None)
        if target is None:
            raise EwsError("ErrorInvalidRequest", "An ItemChange names no item.")
        item = locate(ctx, target)
        if resolution == "NeverOverwrite" and is_stale(ctx, target, item):
            raise EwsError(
                "ErrorIrresolvableConflict",
                "The item changed since its ChangeKey was issued; read it again and retry.",
            )
        pending = _Change(ctx, item)
        updates = change.find(t("Updates"))
        for update in updates if updates is not None else ():
            pending.apply(update)
        uid = item.ref.uid
        folder = item.view.name
        if pending.written is not None:
            uid = replace_message(ctx, item, pending.written.message.as_bytes())
        if pending.remove - pending.add:
            run_store(
                ctx.store.store_flags, folder, [uid], "remove", sorted(pending.remove - pending.add)
            )
        if pending.add:
            run_store(ctx.store.store_flags, folder, [uid], "add", sorted(pending.add))
        items = items_holder(out)
        if disposition == "SaveOnly":
            message_with_id(ctx, items, item.view, uid)
        else:
            written = pending.written or Written(parse_mime(raw_of(ctx, item)))
            info = info_of(ctx, folder, uid)
            written.categories = sorted(f for f in info.flags if not f.startswith("\\"))
            written.flagged = FLAGGED in info.flags
            send(ctx, written)
            if sent_copies is not None:
                save_sent_copy(ctx, sent_copies, written)
            expunge(ctx, folder, [uid])
        conflicts = sub(out, m("ConflictResults"))
        sub(conflicts, t("Count"), 0)

    holder = op.find(m("ItemChanges"))
    if holder is None or not len(holder):
        raise EwsError("ErrorInvalidRequest", "UpdateItem names no ItemChange.")
    return batch("UpdateItem", list(holder), each)


def _trash(ctx: EwsContext) -> FolderView | None:
    try:
        view = ctx.distinguished("deleteditems")
    except EwsError:
        return None
    return view if view.folder is not None else None


def delete_item(ctx: EwsContext, op: Element) -> Element:
    delete_type = op.get("DeleteType") or ""
    if delete_type not in ("HardDelete", "SoftDelete", "MoveToDeletedItems"):
        raise EwsError(
            "ErrorInvalidRequest",
            f"DeleteType is '{delete_type}'; HardDelete, SoftDelete or MoveToDeletedItems.",
        )
    trash = _trash(ctx) if delete_type != "HardDelete" else None

    def each(e: Element, out: Element) -> None:
        item = locate(ctx, e)
        if trash is not None and trash.name != item.view.name:
            run_store(ctx.store.move, item.view.name, [item.ref.uid], trash.name)
        else:
            expunge(ctx, item.view.name, [item.ref.uid])

    return batch("DeleteItem", children(op, "ItemIds", "item to delete"), each)


def _transfer(operation: str, verb: str) -> Callable[[EwsContext, Element], Element]:
    copying = operation == "CopyItem"

    def handler(ctx: EwsContext, op: Element) -> Element:
        holder = op.find(m("ToFolderId"))
        if holder is None:
            raise EwsError("ErrorInvalidRequest", f"{operation} names no ToFolderId.")
        target = store_folder(ctx, holder, "inbox")
        returned = (op.get("ReturnNewItemIds") or "true").strip().lower() != "false"

        def each(e: Element, out: Element) -> None:
            item = locate(ctx, e)
            items = items_holder(out)
            if not copying and target.name == item.view.name:
                uid = item.ref.uid
            else:
                call = ctx.store.copy if copying else ctx.store.move
                done = run_store(call, item.view.name, [item.ref.uid], target.name)
                pairs = dict(done.pairs)
                if item.ref.uid not in pairs:
                    raise EwsError("ErrorItemNotFound", f"The item was removed before the {verb}.")
                uid = pairs[item.ref.uid]
            if returned:
                message_with_id(ctx, items, ctx.resolve(target.ref), uid)

        return batch(operation, children(op, "ItemIds", f"item to {verb}"), each)

    return handler


def mark_as_junk(ctx: EwsContext, op: Element) -> Element:
    is_junk = (op.get("IsJunk") or "").strip().lower()
    move = (op.get("MoveItem") or "").strip().lower()
    if is_junk not in ("true", "false") or move not in ("true", "false"):
        raise EwsError(
            "ErrorInvalidRequest", "MarkAsJunk needs IsJunk and MoveItem, true or false."
        )
    target = (
        ctx.distinguished("junkemail" if is_junk == "true" else "inbox") if move == "true" else None
    )

    def each(e: Element, out: Element) -> None:
        item = locate(ctx, e)
        if target is None:
            return
        uid = item.ref.uid
        if target.name != item.view.name:
            done = run_store(ctx.store.move, item.view.name, [item.ref.uid], target.name)
            uid = dict(done.pairs)[item.ref.uid]
        write_item_id(ctx, out, ctx.resolve(target.ref), uid, tag=m("MovedItemId"))

    return batch("MarkAsJunk", children(op, "ItemIds", "item"), each)


HANDLERS = {
    "UpdateItem": update_item,
    "DeleteItem": delete_item,
    "MoveItem": _transfer("MoveItem", "move"),
    "CopyItem": _transfer("CopyItem", "copy"),
    "MarkAsJunk": mark_as_junk,
}
