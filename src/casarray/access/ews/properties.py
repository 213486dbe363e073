"""Messages as EWS items: what a `t:Message` says of a stored message, property by
property (the FieldURI paths clients ask for), and which shape includes which.

`field_path` is where a property path element becomes the string the operations use:
a FieldURI's own name ("item:Subject"), an IndexedFieldURI's "uri:index", and an
ExtendedFieldURI's "ext:" form, which keeps the attributes as the client wrote them
(they are echoed in `t:ExtendedProperty`) and from which `extended_id` reads the MAPI
property it names ("tag:0x0e23", "PublicStrings:name:keywords", "Common:id:34160").
`ITEM_EXTENDED` answers the MAPI properties a message has here (DavMail asks for them
by tag: PR_INTERNET_ARTICLE_NUMBER 0x0E23 is the IMAP UID, PR_MESSAGE_FLAGS 0x0E07 the
read bit, PR_RECORD_KEY 0x0FF9 its key, PublicStrings "Keywords" the IMAP keywords);
one not answered here is left out of the item, as Exchange leaves out a property an
item doesn't have.

An `Item` wraps what the store already keeps of a message (its `MessageInfo`, the
cached ENVELOPE and BODYSTRUCTURE) and reads the raw message only for what needs it
(Body, MimeContent). Properties are written in the schema's order (types.xsd's
ItemType, then MessageType), whatever order the client asked for them in.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from urllib.parse import parse_qsl, urlencode
from xml.etree.ElementTree import Element

from casarray.access.ews.ids import AttachmentRef, IdCodec, ItemRef
from casarray.access.ews.soap import EwsError, element, local_name, sub, t
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
    def headers(self) -> str | None:
        """The message's header block (PR_TRANSPORT_MESSAGE_HEADERS); None when the
        raw message wasn't read."""
        if self.raw is None:
            return None
        end = self.raw.find(b"\r\n\r\n")
        block = self.raw if end < 0 else self.raw[: end + 2]
        return block.decode("utf-8", "replace")

    @property
    def categories(self) -> list[str]:
        return sorted(f for f in self.info.flags if f not in SYSTEM_FLAGS and f != "\\Recent")


def _is_inline(part: Part) -> bool:
    return part.disposition == "inline" and bool(part.content_id)


def display(addresses: tuple[Address, ...]) -> str:
    """DisplayTo/DisplayCc: the display names (else addresses), "; "-separated."""
    return "; ".join(a.name or a.address for a in addresses)


# -- property paths and extended (MAPI) properties --------------------------------------------

EXTENDED = "ext:"
_EXTENDED_ATTRS = (
    "DistinguishedPropertySetId",
    "PropertySetId",
    "PropertyTag",
    "PropertyName",
    "PropertyId",
    "PropertyType",
)


def field_path(e: Element) -> str:
    """The property path `e` (a FieldURI, IndexedFieldURI or ExtendedFieldURI) names;
    "" for another element."""
    kind = local_name(e.tag)
    if kind == "FieldURI":
        return e.get("FieldURI") or ""
    if kind == "IndexedFieldURI":
        return f"{e.get('FieldURI')}:{e.get('FieldIndex')}"
    if kind == "ExtendedFieldURI":
        attrs = [(k, e.get(k) or "") for k in _EXTENDED_ATTRS if e.get(k) is not None]
        path = EXTENDED + urlencode(attrs)
        extended_id(path)  # refuses a malformed one
        return path
    return ""


def extended_attrs(path: str) -> dict[str, str]:
    return dict(parse_qsl(path[len(EXTENDED) :], keep_blank_values=True))


def extended_id(path: str) -> str:
    """The MAPI property an "ext:" path names, whatever its PropertyType and however
    its tag is written: "tag:0x0e23", "<set>:name:<lowercase name>", "<set>:id:<n>"."""
    attrs = extended_attrs(path)
    tag = attrs.get("PropertyTag")
    try:
        if tag is not None:
            return f"tag:0x{int(tag, 0):04x}"
        where = attrs.get("DistinguishedPropertySetId") or attrs.get("PropertySetId", "").lower()
        if not where:
            raise ValueError("no property set")
        if "PropertyName" in attrs:
            return f"{where}:name:{attrs['PropertyName'].lower()}"
        return f"{where}:id:{int(attrs.get('PropertyId', ''), 0)}"
    except ValueError:
        raise EwsError(
            "ErrorInvalidExtendedProperty", "The ExtendedFieldURI names no property."
        ) from None


ExtendedValue = str | int | bool | datetime | bytes | list[str] | None


def extended_property(parent: Element, path: str, value: ExtendedValue) -> None:
    """A `t:ExtendedProperty` of `value` under `parent` (nothing for None or an empty
    list), its ExtendedFieldURI as the client wrote it."""
    if value is None or value == []:
        return
    holder = sub(parent, t("ExtendedProperty"))
    sub(holder, t("ExtendedFieldURI"), **extended_attrs(path))
    if isinstance(value, list):
        values = sub(holder, t("Values"))
        for v in value:
            sub(values, t("Value"), v)
    elif isinstance(value, bytes):
        sub(holder, t("Value"), base64.b64encode(value).decode())
    else:
        sub(holder, t("Value"), value)


MSGFLAG_READ = 0x1
MSGFLAG_UNSENT = 0x8
MSGFLAG_HASATTACH = 0x10
VERB_REPLYTOSENDER = 102
VERB_FORWARD = 104
FLAG_STATUS_FLAGGED = 2


def _message_flags(item: Item) -> int:
    flags = MSGFLAG_READ if item.is_read else 0
    if "\\Draft" in item.info.flags:
        flags |= MSGFLAG_UNSENT
    if item.parts is not None and item.has_attachments:
        flags |= MSGFLAG_HASATTACH
    return flags


def _last_verb(item: Item) -> int | None:
    if "$Forwarded" in item.info.flags:
        return VERB_FORWARD
    if "\\Answered" in item.info.flags:
        return VERB_REPLYTOSENDER
    return None


def _record_key(item: Item) -> bytes:
    ref = item.ref
    key = f"{ref.folder}\0{ref.uid_validity}\0{ref.uid}".encode()
    return hashlib.sha256(key).digest()[:16]


# The MAPI properties of a message, by `extended_id`: (kind for restrictions and
# sorting, value). Each is read from the MessageInfo alone, but PR_MESSAGE_FLAGS'
# attachment bit (from the cached structure, when the item has it) and
# PR_TRANSPORT_MESSAGE_HEADERS (from the message's bytes: a FindItem restricting on it
# reads them; answered only when they were read).
ITEM_EXTENDED: dict[str, tuple[str, Callable[[Item], ExtendedValue]]] = {
    "tag:0x0e23": ("int", lambda i: i.info.uid),  # PR_INTERNET_ARTICLE_NUMBER: the IMAP UID
    "tag:0x0e08": ("int", lambda i: i.info.size),  # PR_MESSAGE_SIZE
    "tag:0x0e07": ("int", _message_flags),  # PR_MESSAGE_FLAGS
    "tag:0x0e06": ("date", lambda i: i.received),  # PR_MESSAGE_DELIVERY_TIME
    "tag:0x3008": ("date", lambda i: i.received),  # PR_LAST_MODIFICATION_TIME
    "tag:0x1081": ("int", _last_verb),  # PR_LAST_VERB_EXECUTED
    "tag:0x1090": (  # PR_FLAG_STATUS
        "int",
        lambda i: FLAG_STATUS_FLAGGED if "\\Flagged" in i.info.flags else None,
    ),
    "tag:0x0ff9": ("binary", _record_key),  # PR_RECORD_KEY
    "tag:0x10f3": ("string", lambda i: f"{i.info.uid}.EML"),  # PR_URL_COMP_NAME
    "tag:0x007d": ("string", lambda i: i.headers),  # PR_TRANSPORT_MESSAGE_HEADERS
    "publicstrings:name:keywords": ("string", lambda i: i.categories),  # the IMAP keywords
    # PidLidImapDeleted (PSETID_Common 0x8570): DavMail's \Deleted
    "common:id:34160": ("int", lambda i: 1 if "\\Deleted" in i.info.flags else None),
}


def item_extended(path: str) -> tuple[str, Callable[[Item], ExtendedValue]] | None:
    return ITEM_EXTENDED.get(extended_id(path).lower())


# -- the properties, in schema order ----------------------------------------------------------

Writer = Callable[["Writing", Element], None]


@dataclass
class Writing:
    item: Item
    ids: IdCodec
    body_type: str = "Best"
    extended: tuple[str, ...] = ()


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


def _extended(w: Writing, e: Element) -> None:
    for path in w.extended:
        found = item_extended(path)
        if found is not None:
            extended_property(e, path, found[1](w.item))


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
    (EXTENDED, _extended),
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
KNOWN = frozenset(uri for uri, _ in PROPERTIES) - {EXTENDED}
NEEDS_RAW = frozenset({"item:MimeContent", "item:Body"})
# the restriction keys (items' `_field`) that need the message's bytes
RAW_KEYS = frozenset({"tag:0x007d"})

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
    """The FieldURIs a shape asks for, with the extended properties answered here.
    FindItem never returns the body or the MIME content (Exchange refuses them
    there)."""
    extended = {p for p in additional if p.startswith(EXTENDED) and item_extended(p)}
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
    return frozenset(chosen | extended)


def message_element(item: Item, ids: IdCodec, props: frozenset[str], body_type: str) -> Element:
    """The `t:Message` of `item` with the properties `props`."""
    e = element(t("Message"))
    extended = tuple(sorted(p for p in props if p.startswith(EXTENDED)))
    w = Writing(item, ids, body_type, extended)
    for uri, write in PROPERTIES:
        if uri in props or (uri == EXTENDED and extended):
            write(w, e)
    return e
