"""Messages as EWS items: what a `t:Message` says of a stored message, property by
property (the FieldURI paths clients ask for), and which shape includes which.

An `Item` wraps what the store already keeps of a message (its `MessageInfo`, the
cached ENVELOPE and BODYSTRUCTURE) and reads the raw message only for what needs it
(Body, MimeContent). Properties are written in the schema's order (types.xsd's
ItemType, then MessageType), whatever order the client asked for them in.
"""

from __future__ import annotations

import base64
import email.utils
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from xml.etree.ElementTree import Element

from casarray.access.ews.ids import AttachmentRef, IdCodec, ItemRef
from casarray.access.ews.soap import element, sub, t
from casarray.access.http.message_view import Part, Structure, parse_structure
from casarray.mailstore.interface import SYSTEM_FLAGS, CachedParts, MessageInfo
from casarray.mailstore.mime import Address, Envelope, part_text, read_envelope

ITEM_CLASS = "IPM.Note"


@dataclass
class Item:
    """One message, as the operations read it."""

    ref: ItemRef
    info: MessageInfo
    parts: CachedParts | None
    raw: bytes | None = None
    folder_modseq: int = 0

    @cached_property
    def envelope(self) -> Envelope:
        return read_envelope(self.parts.envelope if self.parts is not None else "")

    @cached_property
    def structure(self) -> Structure:
        return parse_structure(self.parts.bodystructure if self.parts is not None else "")

    def addresses(self, kind: str) -> tuple[Address, ...]:
        return tuple(self.envelope.addresses.get(kind, ()))

    @property
    def subject(self) -> str:
        return self.envelope.subject or ""

    @property
    def is_read(self) -> bool:
        return "\\Seen" in self.info.flags

    @property
    def has_attachments(self) -> bool:
        return any(not _is_inline(p) for p in self.structure.attachments)

    @cached_property
    def sent(self) -> datetime | None:
        if not self.envelope.date:
            return None
        try:
            value = email.utils.parsedate_to_datetime(self.envelope.date)
        except (TypeError, ValueError, IndexError):
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def received(self) -> datetime:
        d = self.info.internal_date
        return d if d.tzinfo is not None else d.replace(tzinfo=UTC)

    @property
    def categories(self) -> list[str]:
        return sorted(f for f in self.info.flags if f not in SYSTEM_FLAGS and f != "\\Recent")


def _is_inline(part: Part) -> bool:
    return part.disposition == "inline" and bool(part.content_id)


def display(addresses: tuple[Address, ...]) -> str:
    """DisplayTo/DisplayCc: the display names (else addresses), "; "-separated."""
    return "; ".join(a.name or a.address for a in addresses)


# -- the properties, in schema order ----------------------------------------------------------

Writer = Callable[["Writing", Element], None]


@dataclass
class Writing:
    item: Item
    ids: IdCodec
    body_type: str = "Best"


def _mailbox(parent: Element, a: Address) -> None:
    mb = sub(parent, t("Mailbox"))
    if a.name:
        sub(mb, t("Name"), a.name)
    else:
        sub(mb, t("Name"), a.address)
    sub(mb, t("EmailAddress"), a.address)
    sub(mb, t("RoutingType"), "SMTP")
    sub(mb, t("MailboxType"), "OneOff")


def _single(kind: str, tag: str) -> Writer:
    def write(w: Writing, e: Element) -> None:
        found = w.item.addresses(kind)
        if found:
            _mailbox(sub(e, t(tag)), found[0])

    return write


def _many(kind: str, tag: str) -> Writer:
    def write(w: Writing, e: Element) -> None:
        found = w.item.addresses(kind)
        if found:
            holder = sub(e, t(tag))
            for a in found:
                _mailbox(holder, a)

    return write


def _simple(tag: str, value: Callable[[Item], object]) -> Writer:
    def write(w: Writing, e: Element) -> None:
        v = value(w.item)
        if v is not None:
            sub(e, t(tag), v)

    return write


def _mime(w: Writing, e: Element) -> None:
    if w.item.raw is not None:
        sub(e, t("MimeContent"), base64.b64encode(w.item.raw).decode(), CharacterSet="UTF-8")


def _item_id(w: Writing, e: Element) -> None:
    sub(
        e, t("ItemId"), Id=w.ids.item_id(w.item.ref), ChangeKey=w.ids.change_key(w.item.info.modseq)
    )


def _parent(w: Writing, e: Element) -> None:
    ref = w.item.ref.folder_ref
    sub(
        e,
        t("ParentFolderId"),
        Id=w.ids.folder_id(ref),
        ChangeKey=w.ids.change_key(w.item.folder_modseq),
    )


_TAG = re.compile(r"<[^>]*>")
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.S | re.I)
_BREAK = re.compile(r"<(br|/p|/div|/tr|/h[1-6]|/li)\b[^>]*>", re.I)


def html_to_text(markup: str) -> str:
    text = _BREAK.sub("\n", _DROP.sub("", markup))
    return html.unescape(_TAG.sub("", text)).strip() + "\n"


def text_to_html(text: str) -> str:
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
        f"</head><body><pre>{html.escape(text)}</pre></body></html>"
    )


def body_of(item: Item, body_type: str) -> tuple[str, str]:
    """(BodyType, text) of the message: HTML or Text as asked, Best the HTML part when
    there is one."""
    s = item.structure
    raw = item.raw or b""

    def text(part: Part | None) -> str | None:
        if part is None or not raw:
            return None
        try:
            return part_text(raw, part.number)
        except KeyError:
            return None

    want_html = body_type == "HTML" or (body_type == "Best" and s.html is not None)
    if want_html:
        markup = text(s.html)
        if markup is not None:
            return "HTML", markup
        return "HTML", text_to_html(text(s.plain) or "")
    plain = text(s.plain)
    if plain is not None:
        return "Text", plain
    markup = text(s.html)
    return "Text", html_to_text(markup) if markup is not None else ""


def _body(w: Writing, e: Element) -> None:
    kind, text = body_of(w.item, w.body_type)
    sub(e, t("Body"), text, BodyType=kind)


def _attachments(w: Writing, e: Element) -> None:
    parts = w.item.structure.attachments
    if not parts:
        return
    holder = sub(e, t("Attachments"))
    for part in parts:
        tag = "ItemAttachment" if part.content_type == "message/rfc822" else "FileAttachment"
        a = sub(holder, t(tag))
        sub(a, t("AttachmentId"), Id=w.ids.attachment_id(AttachmentRef(w.item.ref, part.number)))
        sub(a, t("Name"), part.download_name)
        sub(a, t("ContentType"), part.content_type)
        if part.content_id:
            sub(a, t("ContentId"), part.content_id.strip().strip("<>"))
        sub(a, t("Size"), part.decoded_size)
        if tag == "FileAttachment":
            sub(a, t("IsInline"), _is_inline(part))


def _categories(w: Writing, e: Element) -> None:
    found = w.item.categories
    if found:
        holder = sub(e, t("Categories"))
        for c in found:
            sub(holder, t("String"), c)


def _references(item: Item) -> str | None:
    return item.envelope.in_reply_to or None


# (FieldURI, writer), in the order of types.xsd.
PROPERTIES: tuple[tuple[str, Writer], ...] = (
    ("item:MimeContent", _mime),
    ("item:ItemId", _item_id),
    ("item:ParentFolderId", _parent),
    ("item:ItemClass", _simple("ItemClass", lambda i: ITEM_CLASS)),
    ("item:Subject", _simple("Subject", lambda i: i.subject)),
    ("item:Sensitivity", _simple("Sensitivity", lambda i: "Normal")),
    ("item:Body", _body),
    ("item:Attachments", _attachments),
    ("item:DateTimeReceived", _simple("DateTimeReceived", lambda i: i.received)),
    ("item:Size", _simple("Size", lambda i: i.info.size)),
    ("item:Categories", _categories),
    ("item:Importance", _simple("Importance", lambda i: "Normal")),
    ("item:InReplyTo", _simple("InReplyTo", _references)),
    ("item:IsSubmitted", _simple("IsSubmitted", lambda i: False)),
    ("item:IsDraft", _simple("IsDraft", lambda i: "\\Draft" in i.info.flags)),
    ("item:IsFromMe", _simple("IsFromMe", lambda i: False)),
    ("item:IsResend", _simple("IsResend", lambda i: False)),
    ("item:IsUnmodified", _simple("IsUnmodified", lambda i: True)),
    ("item:DateTimeSent", _simple("DateTimeSent", lambda i: i.sent or i.received)),
    ("item:DateTimeCreated", _simple("DateTimeCreated", lambda i: i.received)),
    ("item:DisplayCc", _simple("DisplayCc", lambda i: display(i.addresses("cc")))),
    ("item:DisplayTo", _simple("DisplayTo", lambda i: display(i.addresses("to")))),
    ("item:HasAttachments", _simple("HasAttachments", lambda i: i.has_attachments)),
    ("item:Culture", _simple("Culture", lambda i: "en-US")),
    ("item:LastModifiedTime", _simple("LastModifiedTime", lambda i: i.received)),
    ("message:Sender", _single("sender", "Sender")),
    ("message:ToRecipients", _many("to", "ToRecipients")),
    ("message:CcRecipients", _many("cc", "CcRecipients")),
    ("message:BccRecipients", _many("bcc", "BccRecipients")),
    ("message:IsReadReceiptRequested", _simple("IsReadReceiptRequested", lambda i: False)),
    ("message:IsDeliveryReceiptRequested", _simple("IsDeliveryReceiptRequested", lambda i: False)),
    ("message:From", _single("from", "From")),
    ("message:InternetMessageId", _simple("InternetMessageId", lambda i: i.envelope.message_id)),
    ("message:IsRead", _simple("IsRead", lambda i: i.is_read)),
    ("message:IsResponseRequested", _simple("IsResponseRequested", lambda i: False)),
    ("message:References", _simple("References", _references)),
    ("message:ReplyTo", _many("reply-to", "ReplyTo")),
)
KNOWN = frozenset(uri for uri, _ in PROPERTIES)
NEEDS_RAW = frozenset({"item:MimeContent", "item:Body"})

DEFAULT_FIND = frozenset(
    {
        "item:ItemId",
        "item:ParentFolderId",
        "item:ItemClass",
        "item:Subject",
        "item:Sensitivity",
        "item:DateTimeReceived",
        "item:Size",
        "item:Importance",
        "item:IsSubmitted",
        "item:IsDraft",
        "item:IsFromMe",
        "item:IsResend",
        "item:IsUnmodified",
        "item:DateTimeSent",
        "item:DateTimeCreated",
        "item:DisplayCc",
        "item:DisplayTo",
        "item:HasAttachments",
        "item:Culture",
        "message:Sender",
        "message:IsRead",
        "message:From",
        "message:InternetMessageId",
    }
)
DEFAULT_GET = DEFAULT_FIND | {
    "item:Body",
    "item:Attachments",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:BccRecipients",
    "message:ReplyTo",
    "item:Categories",
    "item:InReplyTo",
    "message:References",
}
ALL = KNOWN - {"item:MimeContent"}


def wanted(base: str, additional: frozenset[str], *, find: bool, mime: bool) -> frozenset[str]:
    """The FieldURIs a shape asks for. FindItem never returns the body or the MIME
    content (Exchange refuses them there)."""
    if base == "IdOnly":
        chosen = {"item:ItemId"} | (additional & KNOWN)
    elif base == "Default":
        chosen = set(DEFAULT_FIND if find else DEFAULT_GET) | (additional & KNOWN)
    else:
        chosen = set(ALL) | (additional & KNOWN)
    if mime:
        chosen.add("item:MimeContent")
    if find:
        chosen -= NEEDS_RAW | {"item:Attachments"}
    chosen.add("item:ItemId")
    return frozenset(chosen)


def message_element(item: Item, ids: IdCodec, props: frozenset[str], body_type: str) -> Element:
    """The `t:Message` of `item` with the properties `props`."""
    e = element(t("Message"))
    w = Writing(item, ids, body_type)
    for uri, write in PROPERTIES:
        if uri in props:
            write(w, e)
    return e
