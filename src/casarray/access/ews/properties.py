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
import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode
from xml.etree.ElementTree import Element

from casarray.access.ews.ids import AttachmentRef, IdCodec, ItemRef
from casarray.access.ews.soap import (
    EwsError,
    element,
    local_name,
    raw_xml,
    serialize_fragment,
    sub,
    t,
    xml_text,
)
from casarray.access.ews.summaries import Summary, is_inline
from casarray.access.http.message_view import Structure
from casarray.mailstore.interface import SYSTEM_FLAGS, CachedParts, MessageInfo
from casarray.mailstore.mime import Address, Envelope

ITEM_CLASS = "IPM.Note"


@dataclass
class Item:
    """One message, as the operations read it: what changes (its `MessageInfo`:
    flags, modseq) from the store on every request, what never does from its
    `Summary` (shared through `summaries.SUMMARIES` when `load_items` reads it)."""

    ref: ItemRef
    info: MessageInfo
    summary: Summary
    raw: bytes | None = None
    folder_modseq: int = 0

    @classmethod
    def of(
        cls, ref: ItemRef, info: MessageInfo, parts: CachedParts | None, raw: bytes | None = None
    ) -> Item:
        """An item with a summary of its own (not shared)."""
        return cls(ref, info, Summary(info.size, parts), raw)

    @property
    def parts(self) -> CachedParts | None:
        return self.summary.parts

    @property
    def envelope(self) -> Envelope:
        return self.summary.envelope

    @property
    def structure(self) -> Structure:
        return self.summary.structure

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
        return self.summary.has_attachments

    @property
    def sent(self) -> datetime | None:
        return self.summary.sent

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
#
# Each writer returns the property's XML (the types namespace is "t:", as `soap.serialize`
# declares it); "" leaves the property out. A message is written as one string
# (`message_element`), not as an element per property: GetItem writes a hundred of them.

Writer = Callable[["Writing"], str]


@dataclass
class Writing:
    item: Item
    ids: IdCodec
    body_type: str = "Best"
    extended: tuple[str, ...] = ()


def _element(tag: str, value: object) -> str:
    text = xml_text(value)
    return f"<t:{tag}>{text}</t:{tag}>"


def _mailbox(a: Address) -> str:
    return (
        f"<t:Mailbox><t:Name>{xml_text(a.name or a.address)}</t:Name>"
        f"<t:EmailAddress>{xml_text(a.address)}</t:EmailAddress>"
        "<t:RoutingType>SMTP</t:RoutingType><t:MailboxType>OneOff</t:MailboxType></t:Mailbox>"
    )


def _single(kind: str, tag: str) -> Writer:
    def write(w: Writing) -> str:
        found = w.item.addresses(kind)
        return f"<t:{tag}>{_mailbox(found[0])}</t:{tag}>" if found else ""

    return write


def _many(kind: str, tag: str) -> Writer:
    def write(w: Writing) -> str:
        found = w.item.addresses(kind)
        return f"<t:{tag}>{''.join(_mailbox(a) for a in found)}</t:{tag}>" if found else ""

    return write


def _simple(tag: str, value: Callable[[Item], object]) -> Writer:
    def write(w: Writing) -> str:
        v = value(w.item)
        return "" if v is None else _element(tag, v)

    return write


def _constant(tag: str, value: object) -> Writer:
    text = _element(tag, value)
    return lambda w: text


def _mime(w: Writing) -> str:
    if w.item.raw is None:
        return ""
    data = base64.b64encode(w.item.raw).decode("ascii")
    return f'<t:MimeContent CharacterSet="UTF-8">{data}</t:MimeContent>'


def _item_id(w: Writing) -> str:
    item = w.item
    item_id = w.ids.item_id(item.ref)
    return f'<t:ItemId Id="{item_id}" ChangeKey="{w.ids.change_key(item.info.modseq)}"/>'


def _parent(w: Writing) -> str:
    folder_id = w.ids.folder_id(w.item.ref.folder_ref)
    key = w.ids.change_key(w.item.folder_modseq)
    return f'<t:ParentFolderId Id="{folder_id}" ChangeKey="{key}"/>'


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
    there is one. Reads the bodies from `item.raw` unless its summary has them."""
    s = item.structure
    plain, markup = item.summary.read_texts(item.raw)
    want_html = body_type == "HTML" or (body_type == "Best" and s.html is not None)
    if want_html:
        if markup is not None:
            return "HTML", markup
        return "HTML", text_to_html(plain or "")
    if plain is not None:
        return "Text", plain
    return "Text", html_to_text(markup) if markup is not None else ""


def _body(w: Writing) -> str:
    kind, text = body_of(w.item, w.body_type)
    return f'<t:Body BodyType="{kind}">{xml_text(text)}</t:Body>'


def _attachments(w: Writing) -> str:
    parts = w.item.structure.attachments
    if not parts:
        return ""
    out = ["<t:Attachments>"]
    for part in parts:
        tag = "ItemAttachment" if part.content_type == "message/rfc822" else "FileAttachment"
        attachment_id = w.ids.attachment_id(AttachmentRef(w.item.ref, part.number))
        out.append(f'<t:{tag}><t:AttachmentId Id="{attachment_id}"/>')
        out.append(_element("Name", part.download_name))
        out.append(_element("ContentType", part.content_type))
        if part.content_id:
            out.append(_element("ContentId", part.content_id.strip().strip("<>")))
        out.append(_element("Size", part.decoded_size))
        if tag == "FileAttachment":
            out.append(_element("IsInline", is_inline(part)))
        out.append(f"</t:{tag}>")
    out.append("</t:Attachments>")
    return "".join(out)


def _categories(w: Writing) -> str:
    found = w.item.categories
    if not found:
        return ""
    return f"<t:Categories>{''.join(_element('String', c) for c in found)}</t:Categories>"


def _extended(w: Writing) -> str:
    holder = element("holder")
    for path in w.extended:
        found = item_extended(path)
        if found is not None:
            extended_property(holder, path, found[1](w.item))
    return "".join(serialize_fragment(e) for e in holder)


def _references(item: Item) -> str | None:
    return item.envelope.in_reply_to or None


# (FieldURI, writer, whether its XML depends only on the message's unchanging content
# and the body type, so a summary keeps it), in the order of types.xsd.
PROPERTIES: tuple[tuple[str, Writer, bool], ...] = (
    ("item:MimeContent", _mime, False),
    ("item:ItemId", _item_id, False),
    ("item:ParentFolderId", _parent, False),
    ("item:ItemClass", _constant("ItemClass", ITEM_CLASS), False),
    ("item:Subject", _simple("Subject", lambda i: i.subject), True),
    ("item:Sensitivity", _constant("Sensitivity", "Normal"), False),
    ("item:Body", _body, True),
    ("item:Attachments", _attachments, False),
    ("item:DateTimeReceived", _simple("DateTimeReceived", lambda i: i.received), True),
    ("item:Size", _simple("Size", lambda i: i.info.size), True),
    ("item:Categories", _categories, False),
    ("item:Importance", _constant("Importance", "Normal"), False),
    ("item:InReplyTo", _simple("InReplyTo", _references), True),
    ("item:IsSubmitted", _constant("IsSubmitted", False), False),
    ("item:IsDraft", _simple("IsDraft", lambda i: "\\Draft" in i.info.flags), False),
    ("item:IsFromMe", _constant("IsFromMe", False), False),
    ("item:IsResend", _constant("IsResend", False), False),
    ("item:IsUnmodified", _constant("IsUnmodified", True), False),
    ("item:DateTimeSent", _simple("DateTimeSent", lambda i: i.sent or i.received), True),
    ("item:DateTimeCreated", _simple("DateTimeCreated", lambda i: i.received), True),
    ("item:DisplayCc", _simple("DisplayCc", lambda i: display(i.addresses("cc"))), True),
    ("item:DisplayTo", _simple("DisplayTo", lambda i: display(i.addresses("to"))), True),
    ("item:HasAttachments", _simple("HasAttachments", lambda i: i.has_attachments), True),
    (EXTENDED, _extended, False),
    ("item:Culture", _constant("Culture", "en-US"), False),
    ("item:LastModifiedTime", _simple("LastModifiedTime", lambda i: i.received), True),
    ("message:Sender", _single("sender", "Sender"), True),
    ("message:ToRecipients", _many("to", "ToRecipients"), True),
    ("message:CcRecipients", _many("cc", "CcRecipients"), True),
    ("message:BccRecipients", _many("bcc", "BccRecipients"), True),
    ("message:IsReadReceiptRequested", _constant("IsReadReceiptRequested", False), False),
    ("message:IsDeliveryReceiptRequested", _constant("IsDeliveryReceiptRequested", False), False),
    ("message:From", _single("from", "From"), True),
    (
        "message:InternetMessageId",
        _simple("InternetMessageId", lambda i: i.envelope.message_id),
        True,
    ),
    ("message:IsRead", _simple("IsRead", lambda i: i.is_read), False),
    ("message:IsResponseRequested", _constant("IsResponseRequested", False), False),
    ("message:References", _simple("References", _references), True),
    ("message:ReplyTo", _many("reply-to", "ReplyTo"), True),
)
KNOWN = frozenset(uri for uri, _, _ in PROPERTIES) - {EXTENDED}
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


# (the key its XML is kept under, or "" when it changes; its writer)
# (the key its XML is kept under, or "" when it changes; its writer) per property, and
# the extended properties asked for, sorted
_Plan = tuple[tuple[tuple[str, Writer], ...], tuple[str, ...]]
_plans: dict[tuple[frozenset[str], str], _Plan] = {}


def _plan(props: frozenset[str], body_type: str) -> _Plan:
    """The properties of `PROPERTIES` that `props` asks for, in order, each with the
    key a summary keeps its XML under when it never changes ("" when it does), and the
    extended properties of `props`; worked out once per shape."""
    found = _plans.get((props, body_type))
    if found is None:
        extended = tuple(sorted(p for p in props if p.startswith(EXTENDED)))
        writers = tuple(
            ((f"{uri}:{body_type}" if uri == "item:Body" else uri) if fixed else "", write)
            for uri, write, fixed in PROPERTIES
            if uri in props or (uri == EXTENDED and extended)
        )
        found = (writers, extended)
        if len(_plans) > 256:
            _plans.clear()
        _plans[(props, body_type)] = found
    return found


def message_element(item: Item, ids: IdCodec, props: frozenset[str], body_type: str) -> Element:
    """The `t:Message` of `item` with the properties `props`, written (an element
    `soap.serialize` copies as it is); the XML of its unchanging properties is kept in
    its summary, as UTF-8."""
    writers, extended = _plan(props, body_type)
    w = Writing(item, ids, body_type, extended)
    kept = item.summary.fragments if item.parts is not None else None
    out = [b"<t:Message>"]
    for key, write in writers:
        if key and kept is not None:
            data = kept.get(key)
            if data is None:
                data = write(w).encode("utf-8")
                if not key.startswith("item:Body") or item.summary.texts is not None:
                    kept[key] = data
            out.append(data)
        else:
            out.append(write(w).encode("utf-8"))
    out.append(b"</t:Message>")
    return raw_xml(b"".join(out))
