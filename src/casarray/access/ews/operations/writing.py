"""What the write operations share: finding the message an ItemId names (following a
replaced message's successor), the ChangeKey check, writing new ItemIds, replacing a
message, the flags of a message, and sending through a Hub Transport server.

Replacing: the store is IMAP's (a message's bytes never change), so adding or removing
an attachment, or editing a draft's content, appends the new message to the same
folder with the old one's flags and date and expunges the old one. The new message
has a new UID, hence a new ItemId; the ChangeKey answered with it (Exchange's
RootItemChangeKey) also names the new UID (`IdCodec.change_key(successor=...)`), so a
client that keeps the old ItemId and takes only the new ChangeKey, as exchangelib does
after CreateAttachment, still finds the message.

Sending (`send`): `access.submission` hands the message to a Hub Transport server of
this Client Access server's site over SMTP, as this server's computer account, as web
mail sends. From and Sender must be the user's own address (ErrorSendAsDenied:
delegates and Send As aren't offered); the hub's refusal of a recipient is
ErrorInvalidRecipients naming it; no hub reachable is ErrorServerBusy (try again); a
message too large is ErrorMessageSizeExceeded. Bcc goes to the envelope only; a saved
copy keeps it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from xml.etree.ElementTree import Element

from casarray.access import submission
from casarray.access.ews.compose import Written, finish, keywords_of, wire_bytes
from casarray.access.ews.context import EwsContext, FolderView, run_store
from casarray.access.ews.ids import ItemRef
from casarray.access.ews.soap import EwsError, local_name, m, sub, t
from casarray.mailstore.interface import SYSTEM_FLAGS, MessageInfo

log = logging.getLogger("casarray.ews")

SEEN, DRAFT, FLAGGED, DELETED = "\\Seen", "\\Draft", "\\Flagged", "\\Deleted"


@dataclass(frozen=True)
class Located:
    """A message an ItemId names, as it is now."""

    view: FolderView
    ref: ItemRef
    info: MessageInfo

    @property
    def is_draft(self) -> bool:
        return DRAFT in self.info.flags

    @property
    def keywords(self) -> set[str]:
        return {f for f in self.info.flags if f not in SYSTEM_FLAGS and f != "\\Recent"}


def locate(ctx: EwsContext, e: Element) -> Located:
    """The message of the `t:ItemId` `e` (the user's own: ErrorAccessDenied otherwise;
    ErrorItemNotFound once it is gone)."""
    kind = local_name(e.tag)
    if kind != "ItemId":
        raise EwsError(
            "ErrorInvalidRequest", f"'{kind}' is not an ItemId (this server keeps messages only)."
        )
    ref = ctx.item(e.get("Id"))
    view = ctx.item_folder(ref)
    if view.folder is None or view.folder.uid_validity != ref.uid_validity:
        raise EwsError("ErrorItemNotFound", "The item doesn't exist (its folder was replaced).")
    found = run_store(ctx.store.infos, view.name, [ref.uid])
    if ref.uid not in found:
        key = e.get("ChangeKey")
        successor = ctx.ids.successor_of(key) if key else None
        if successor is not None:
            found = run_store(ctx.store.infos, view.name, [successor])
            ref = replace(ref, uid=successor)
        if ref.uid not in found:
            raise EwsError("ErrorItemNotFound", "The item doesn't exist (it was moved or deleted).")
    return Located(view, replace(ref, folder=view.name), found[ref.uid])


def is_stale(ctx: EwsContext, e: Element, item: Located) -> bool:
    """Whether the ChangeKey of the ItemId `e` is older than the message."""
    key = e.get("ChangeKey")
    if not key:
        return False
    return ctx.ids.decode_change_key(key) != item.info.modseq


def info_of(ctx: EwsContext, folder: str, uid: int) -> MessageInfo:
    found = run_store(ctx.store.infos, folder, [uid])
    if uid not in found:
        raise EwsError("ErrorItemNotFound", "The item was removed meanwhile.")
    return found[uid]


def write_item_id(
    ctx: EwsContext,
    parent: Element,
    view: FolderView,
    uid: int,
    *,
    successor_of_old: bool = False,
    tag: str = "",
) -> Element:
    """A `t:ItemId` (or `m:{tag}`/`t:{tag}` given as a qualified tag) of the message
    `uid` of `view`, with its ChangeKey now."""
    info = info_of(ctx, view.name, uid)
    assert view.folder is not None
    ref = ItemRef(ctx.mailbox_guid, view.name, view.folder.uid_validity, uid)
    key = ctx.ids.change_key(info.modseq, uid if successor_of_old else None)
    return sub(parent, tag or t("ItemId"), Id=ctx.ids.item_id(ref), ChangeKey=key)


def message_with_id(ctx: EwsContext, parent: Element, view: FolderView, uid: int) -> None:
    """`t:Message` holding the ItemId, in `parent` (an `m:Items`)."""
    write_item_id(ctx, sub(parent, t("Message")), view, uid)


def store_folder(ctx: EwsContext, holder: Element | None, default: str) -> FolderView:
    """The folder a SavedItemFolderId/ToFolderId names (the distinguished `default`
    when `holder` is None): a store folder (virtual ones hold no messages)."""
    if holder is not None and len(holder):
        view = ctx.folder_of(holder[0])
    elif holder is not None:
        raise EwsError("ErrorInvalidRequest", f"{local_name(holder.tag)} names no folder.")
    else:
        view = ctx.distinguished(default)
    if view.folder is None:
        raise EwsError(
            "ErrorCannotCreateItemInNonMailFolder"
            if default in ("drafts", "sentitems")
            else "ErrorMoveCopyFailed",
            f"The {view.display_name} folder holds no messages on this server.",
        )
    return view


def flags_for(written: Written, *, read: bool, draft: bool) -> list[str]:
    """The flags a new message gets: what the client asked for, else the defaults."""
    flags = []
    if written.is_read if written.is_read is not None else read:
        flags.append(SEEN)
    if written.draft if written.draft is not None else draft:
        flags.append(DRAFT)
    if written.flagged:
        flags.append(FLAGGED)
    flags.extend(keywords_of(written.categories or ()))
    return flags


def append(ctx: EwsContext, view: FolderView, data: bytes, flags: list[str]) -> int:
    """Appends the message to `view`; its UID."""
    appended = run_store(ctx.store.append, view.name, data, flags=flags)
    return appended.uid


def expunge(ctx: EwsContext, folder: str, uids: list[int]) -> None:
    run_store(ctx.store.store_flags, folder, uids, "add", [DELETED])
    run_store(ctx.store.expunge, folder, uids)


def replace_message(ctx: EwsContext, item: Located, data: bytes) -> int:
    """Puts `data` in place of the message (same folder, flags and date); the new UID."""
    flags = [f for f in item.info.flags if f not in (DELETED, "\\Recent")]
    appended = run_store(
        ctx.store.append, item.view.name, data, flags=flags, internal_date=item.info.internal_date
    )
    expunge(ctx, item.view.name, [item.ref.uid])
    return appended.uid


def raw_of(ctx: EwsContext, item: Located) -> bytes:
    found = run_store(ctx.store.bodies, item.view.name, [item.ref.uid])
    if item.ref.uid not in found:
        raise EwsError("ErrorItemNotFound", "The item was removed meanwhile.")
    return found[item.ref.uid]


def send(ctx: EwsContext, written: Written) -> None:
    """Submits the message (see the module docstring); raises EwsError when it wasn't
    sent. The message gets From, Message-ID and the like first (`compose.finish`)."""
    me = ctx.mailbox.primary_smtp_address
    for address in written.senders():
        if address.lower() != me.lower():
            raise EwsError(
                "ErrorSendAsDenied",
                f"The message can't be sent as {address}: you may send only as {me}.",
            )
    finish(written, ctx.mailbox.display_name, me)
    recipients = written.recipients
    if not recipients:
        raise EwsError("ErrorInvalidRecipients", "The message has no recipients (To, Cc or Bcc).")
    try:
        submitted = submission.submit(
            ctx.directory,
            ctx.server,
            me,
            recipients,
            wire_bytes(written.message),
            port_offset=ctx.port_offset,
        )
    except submission.RecipientsRefused as exc:
        raise EwsError("ErrorInvalidRecipients", exc.message) from None
    except submission.SubmissionError as exc:
        if exc.temporary:
            raise EwsError("ErrorServerBusy", exc.message) from None
        if " 552" in exc.message or ": 552" in exc.message:
            raise EwsError("ErrorMessageSizeExceeded", exc.message) from None
        if "refused the sender" in exc.message:
            raise EwsError("ErrorSendAsDenied", exc.message) from None
        raise EwsError("ErrorMessageSubmissionBlocked", exc.message) from None
    log.info(
        "%s: %s sent %s by EWS to %d recipient(s) through %s (queue id %s)",
        ctx.server.name,
        me,
        written.message["Message-ID"],
        len(recipients),
        submitted.server,
        submitted.queue_id,
    )


def save_sent_copy(ctx: EwsContext, view: FolderView, written: Written) -> int | None:
    """The sent message's copy in `view`, read (\\Seen) and no draft; None (logged)
    when it can't be kept: the message is sent all the same."""
    flags = [SEEN, *keywords_of(written.categories or ())]
    if written.flagged:
        flags.append(FLAGGED)
    try:
        return append(ctx, view, written.message.as_bytes(), flags)
    except EwsError as exc:
        log.error(
            "%s: %s's message %s was sent but its copy can't be kept in %s: %s",
            ctx.server.name,
            ctx.mailbox.primary_smtp_address,
            written.message["Message-ID"],
            view.name,
            exc.message,
        )
        return None


def items_holder(out: Element) -> Element:
    return sub(out, m("Items"))
