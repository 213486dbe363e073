"""CreateAttachment, GetAttachment and DeleteAttachment.

An attachment is a MIME part of the stored message; its AttachmentId names the item
and the part's IMAP number (`ids.AttachmentRef`). Adding or removing one replaces the
message (`writing.replace_message`): the answer carries the new ItemId as RootItemId
and a RootItemChangeKey that also leads from the old ItemId to the new message, so
exchangelib's save, attach, send sequence of Exchange 2010 works. A FileAttachment
carries its Content (base64); an ItemAttachment a t:Message, attached as
message/rfc822 (from its MimeContent or its properties).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from casarray.access.ews.compose import add_attachment, attachment_part, parse_mime, remove_part
from casarray.access.ews.context import EwsContext, run_store
from casarray.access.ews.ids import AttachmentRef, ItemRef
from casarray.access.ews.operations.common import batch, children
from casarray.access.ews.operations.writing import Located, locate, raw_of, replace_message
from casarray.access.ews.properties import DEFAULT_GET, Item, message_element
from casarray.access.ews.soap import EwsError, element, local_name, m, sub, t
from casarray.mailstore.interface import MessageInfo
from casarray.mailstore.mime import cached_parts, decoded_part, message_part


def _root_ids(ctx: EwsContext, item: Located, uid: int) -> tuple[str, str, ItemRef]:
    """(RootItemId, RootItemChangeKey, the new ref) of the message that replaced
    `item`."""
    info = run_store(ctx.store.infos, item.view.name, [uid]).get(uid)
    if info is None:
        raise EwsError("ErrorItemNotFound", "The item was removed meanwhile.")
    ref = ItemRef(ctx.mailbox_guid, item.view.name, item.ref.uid_validity, uid)
    return ctx.ids.item_id(ref), ctx.ids.change_key(info.modseq, uid), ref


def create_attachment(ctx: EwsContext, op: Element) -> Element:
    parent = op.find(m("ParentItemId"))
    if parent is None:
        raise EwsError("ErrorInvalidRequest", "CreateAttachment names no ParentItemId.")
    parent = Element(t("ItemId"), dict(parent.attrib))
    entries = children(op, "Attachments", "attachment")
    item = locate(ctx, parent)
    message = parse_mime(raw_of(ctx, item))
    added: list[tuple[Element, str] | EwsError] = []
    for e in entries:
        try:
            added.append((e, add_attachment(message, attachment_part(e))))
        except EwsError as exc:
            added.append(exc)
    new_ref: ItemRef | None = None
    root = ("", "")
    if any(not isinstance(a, EwsError) for a in added):
        uid = replace_message(ctx, item, message.as_bytes())
        root_id, root_key, new_ref = _root_ids(ctx, item, uid)
        root = (root_id, root_key)

    def each(entry: tuple[Element, str] | EwsError, out: Element) -> None:
        if isinstance(entry, EwsError):
            raise entry
        e, number = entry
        assert new_ref is not None
        holder = sub(out, m("Attachments"))
        a = sub(holder, t(local_name(e.tag)))
        sub(
            a,
            t("AttachmentId"),
            Id=ctx.ids.attachment_id(AttachmentRef(new_ref, number)),
            RootItemId=root[0],
            RootItemChangeKey=root[1],
        )

    return batch("CreateAttachment", added, each)


def _attachment_ids(op: Element) -> list[Element]:
    return children(op, "AttachmentIds", "attachment")


def _owner(ctx: EwsContext, e: Element) -> tuple[AttachmentRef, Located]:
    if local_name(e.tag) != "AttachmentId":
        raise EwsError("ErrorInvalidRequest", f"'{local_name(e.tag)}' is not an AttachmentId.")
    ref = ctx.ids.attachment(e.get("Id"), ctx.mailbox_guid)
    item_id = element(t("ItemId"), Id=ctx.ids.item_id(ref.item))
    try:
        return ref, locate(ctx, item_id)
    except EwsError as exc:
        if exc.code == "ErrorItemNotFound":
            raise EwsError(
                "ErrorAttachmentNotFound", "The attachment's item doesn't exist."
            ) from None
        raise


def get_attachment(ctx: EwsContext, op: Element) -> Element:
    shape = op.find(m("AttachmentShape"))
    include_mime = shape is not None and (
        (shape.findtext(t("IncludeMimeContent")) or "").strip().lower() == "true"
    )

    def each(e: Element, out: Element) -> None:
        ref, item = _owner(ctx, e)
        raw = raw_of(ctx, item)
        try:
            part = message_part(raw, ref.part)
            data = decoded_part(raw, ref.part)
        except (KeyError, ValueError):
            raise EwsError("ErrorAttachmentNotFound", "The attachment doesn't exist.") from None
        holder = sub(out, m("Attachments"))
        attachment_id = ctx.ids.attachment_id(ref)
        name = part.filename or (
            f"message-{ref.part}.eml" if part.content_type == "message/rfc822" else "attachment"
        )
        if part.content_type == "message/rfc822":
            a = sub(holder, t("ItemAttachment"))
            sub(a, t("AttachmentId"), Id=attachment_id)
            sub(a, t("Name"), name)
            sub(a, t("ContentType"), part.content_type)
            sub(a, t("Size"), len(data))
            sub(a, t("IsInline"), False)
            a.append(_inner_message(ctx, item, data, include_mime))
            return
        a = sub(holder, t("FileAttachment"))
        sub(a, t("AttachmentId"), Id=attachment_id)
        sub(a, t("Name"), name)
        sub(a, t("ContentType"), part.content_type)
        if part.content_id:
            sub(a, t("ContentId"), part.content_id.strip().strip("<>"))
        sub(a, t("Size"), len(data))
        sub(a, t("IsInline"), part.disposition == "inline" and bool(part.content_id))
        sub(a, t("IsContactPhoto"), False)
        sub(a, t("Content"), base64.b64encode(data).decode("ascii"))

    return batch("GetAttachment", _attachment_ids(op), each)


def _inner_message(ctx: EwsContext, item: Located, data: bytes, mime: bool) -> Element:
    """The `t:Message` of an attached message: its properties (no ItemId: it is no
    item of the mailbox) and, when asked, its MimeContent."""
    info = MessageInfo(0, frozenset({"\\Seen"}), datetime.now(UTC), len(data), 0)
    inner = Item.of(item.ref, info, cached_parts(data), data)
    props = DEFAULT_GET - {"item:ItemId", "item:ParentFolderId", "item:Attachments"}
    if mime:
        props |= {"item:MimeContent"}
    return message_element(inner, ctx.ids, frozenset(props), "Best")


def delete_attachment(ctx: EwsContext, op: Element) -> Element:
    """The attachments of one message are removed together (highest part first, so the
    numbers of the others hold), in one replacement; each answer names its new root."""
    entries: list[tuple[AttachmentRef, Located] | EwsError] = []
    for e in _attachment_ids(op):
        try:
            entries.append(_owner(ctx, e))
        except EwsError as exc:
            entries.append(exc)
    groups: dict[tuple[str, int], list[tuple[AttachmentRef, Located]]] = {}
    for entry in entries:
        if not isinstance(entry, EwsError):
            groups.setdefault((entry[1].view.name, entry[1].ref.uid), []).append(entry)
    outcome: dict[tuple[str, int], tuple[str, str] | EwsError] = {}
    for key, group in groups.items():
        item = group[0][1]
        try:
            message = parse_mime(raw_of(ctx, item))
            numbers = sorted(
                {ref.part for ref, _ in group},
                key=lambda n: [int(x) if x.isdigit() else 0 for x in n.split(".")],
                reverse=True,
            )
            for number in numbers:
                remove_part(message, number)
            uid = replace_message(ctx, item, message.as_bytes())
            root_id, root_key, _ = _root_ids(ctx, item, uid)
            outcome[key] = (root_id, root_key)
        except EwsError as exc:
            outcome[key] = exc

    def each(entry: tuple[AttachmentRef, Located] | EwsError, out: Element) -> None:
        if isinstance(entry, EwsError):
            raise entry
        result = outcome[(entry[1].view.name, entry[1].ref.uid)]
        if isinstance(result, EwsError):
            raise result
        sub(out, m("RootItemId"), RootItemId=result[0], RootItemChangeKey=result[1])

    return batch("DeleteAttachment", entries, each)


HANDLERS = {
    "CreateAttachment": create_attachment,
    "GetAttachment": get_attachment,
    "DeleteAttachment": delete_attachment,
}
