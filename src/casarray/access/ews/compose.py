"""Messages the client writes, sans-IO: a `t:Message` of CreateItem (from its
MimeContent, base64 MIME as Thunderbird and DavMail send it, or from its properties as
exchangelib sends them) to an RFC 5322 message built with the standard library's
`email` package; the property edits of UpdateItem on a draft; attachments added to
and removed from a message (CreateAttachment, DeleteAttachment).

What a property becomes: Subject, Body (BodyType Text: text/plain; HTML: text/html,
with a text/plain alternative made from it), ToRecipients/CcRecipients/BccRecipients
(To, Cc, Bcc), From and Sender, ReplyTo, Importance (Importance and X-Priority),
Sensitivity, InReplyTo and References, InternetMessageId, IsReadReceiptRequested
(Disposition-Notification-To), Attachments (FileAttachment with Content; an
ItemAttachment's Message as message/rfc822). IsRead and Categories are the stored
message's flags and keywords (`Written.flags`), not headers. The other properties of
an Exchange 2010 message (reminders, IsDeliveryReceiptRequested, ...) are accepted and
have no effect here; an element that is no property of a message is refused
(ErrorSchemaValidation), so a typo doesn't pass silently.

Every function raises `EwsError` naming what is wrong and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from xml.etree.ElementTree import Element

from casarray.access.ews.properties import html_to_text
from casarray.access.ews.soap import EwsError, local_name, t

MAX_ATTACHMENT = 16 * 1024 * 1024  # a request is at most this size anyway
IMPORTANCE = {"Low": ("low", "5"), "Normal": ("normal", "3"), "High": ("high", "1")}
SENSITIVITY = {
    "Normal": None,
    "Personal": "Personal",
    "Private": "Private",
    "Confidential": "Company-Confidential",
}
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")

# Every element of types.xsd's ItemType and MessageType (Exchange 2010 SP2), and the
# Flag of later schemas: accepted in a t:Message. Those `_apply` doesn't read are
# ignored.
_ELEMENT_NAMES = """MimeContent ItemId ParentFolderId ItemClass Subject Sensitivity Body Attachments
    DateTimeReceived Size Categories Importance InReplyTo IsSubmitted IsDraft IsFromMe
    IsResend IsUnmodified InternetMessageHeaders DateTimeSent DateTimeCreated
    ResponseObjects ReminderDueBy ReminderIsSet ReminderMinutesBeforeStart DisplayCc
    DisplayTo HasAttachments ExtendedProperty Culture EffectiveRights LastModifiedName
    LastModifiedTime IsAssociated WebClientReadFormQueryString WebClientEditFormQueryString
    ConversationId UniqueBody Flag StoreEntryId InstanceKey NormalizedBody EntityExtractionResult
    PolicyTag ArchiveTag RetentionDate Preview RightsManagementLicenseData
    PredictedActionReasons IsClutter BlockStatus HasBlockedImages TextBody IconIndex
    SearchKey SortKey Hashtags Mentions MentionedMe MentionsPreview MentionsEx
    AppliedHashtags AppliedHashtagsPreview Likes LikesPreview PendingSocialActivityTagIds
    AtAllMention CanDelete InferenceClassification Sender ToRecipients CcRecipients
    BccRecipients IsReadReceiptRequested IsDeliveryReceiptRequested ConversationIndex
    ConversationTopic From InternetMessageId IsRead IsResponseRequested References ReplyTo
    ReceivedBy ReceivedRepresenting ApprovalRequestData VotingInformation ReminderMessageData
    """
MESSAGE_ELEMENTS = frozenset(_ELEMENT_NAMES.split())
# MAPI properties a client may set as an ExtendedProperty that map onto flags:
# PR_MESSAGE_FLAGS (0x0E07: 1 read, 8 unsent) and PR_FLAG_STATUS (0x1090: 2 flagged).
PR_MESSAGE_FLAGS = 0x0E07
PR_FLAG_STATUS = 0x1090


@dataclass
class Written:
    """A message the client wrote: the MIME message and the flags it asked for."""

    message: EmailMessage
    is_read: bool | None = None
    flagged: bool | None = None
    draft: bool | None = None  # PR_MESSAGE_FLAGS' unsent bit, when given
    categories: list[str] | None = None
    receipt: bool | None = None  # IsReadReceiptRequested
    changed_mime: bool = False  # whether a property changed the message's bytes

    @property
    def recipients(self) -> list[str]:
        """The envelope's recipients: To, Cc and Bcc, each address once."""
        seen: dict[str, str] = {}
        for name in ("To", "Cc", "Bcc"):
            for _, addr in getaddresses([str(v) for v in self.message.get_all(name, [])]):
                if addr:
                    seen.setdefault(addr.lower(), addr)
        return list(seen.values())

    def senders(self) -> list[str]:
        """The addresses of From and Sender."""
        found = []
        for name in ("From", "Sender"):
            for _, addr in getaddresses([str(v) for v in self.message.get_all(name, [])]):
                if addr:
                    found.append(addr)
        return found


def parse_mime(data: bytes) -> EmailMessage:
    """The message in `data` (bytes a client sent, or a stored message)."""
    message = email.message_from_bytes(data, policy=email.policy.SMTP)
    assert isinstance(message, EmailMessage)
    return message


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise EwsError("ErrorInvalidRequest", f"The {what} is not base64.") from None


def _flag_text(text: str | None, what: str) -> bool:
    value = (text or "").strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise EwsError("ErrorInvalidValueForProperty", f"{what} is '{text}', not true or false.")


def mailbox_address(e: Element, what: str) -> Address:
    """The address of a `t:Mailbox` (EmailAddress and Name)."""
    addr = (e.findtext(t("EmailAddress")) or "").strip()
    name = " ".join(_CONTROL.sub(" ", e.findtext(t("Name")) or "").split())
    routing = (e.findtext(t("RoutingType")) or "SMTP").strip()
    if not addr:
        raise EwsError("ErrorInvalidRecipients", f"A mailbox of {what} has no EmailAddress.")
    if routing.upper() != "SMTP" or not _ADDR_SPEC.fullmatch(addr):
        raise EwsError(
            "ErrorInvalidRecipients", f"'{addr}' in {what} is not an SMTP e-mail address."
        )
    local, _, domain = addr.rpartition("@")
    try:
        return Address(display_name=name if name != addr else "", username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise EwsError(
            "ErrorInvalidRecipients", f"'{addr}' in {what} isn't usable: {exc}"
        ) from None


def _mailboxes(e: Element, what: str) -> list[Address]:
    return [mailbox_address(mb, what) for mb in e if local_name(mb.tag) == "Mailbox"]


def _single(e: Element, what: str) -> Address:
    mb = e.find(t("Mailbox"))
    if mb is None:
        raise EwsError("ErrorInvalidRequest", f"{what} holds no Mailbox.")
    return mailbox_address(mb, what)


def _set_header(message: EmailMessage, name: str, value: object) -> None:
    del message[name]
    if value is not None and value != "" and value != []:
        message[name] = value


def _body_parts(message: EmailMessage) -> list[EmailMessage]:
    """The parts that are not the message's body (its attachments), kept on a new body."""
    if not message.is_multipart():
        return []
    return [p for p in message.iter_attachments() if isinstance(p, EmailMessage)]


def set_body(message: EmailMessage, kind: str, text: str) -> None:
    """The message's body: text/plain, or text/html with a text/plain alternative;
    attachments it had are kept."""
    kept = _body_parts(message)
    for name in ("Content-Type", "Content-Transfer-Encoding", "MIME-Version"):
        del message[name]
    message.set_payload([])
    text = text.replace("\r\n", "\n")
    if kind == "HTML":
        message.set_content(html_to_text(text), charset="utf-8")
        message.add_alternative(text, subtype="html", charset="utf-8")
    else:
        message.set_content(text, charset="utf-8")
    for part in kept:
        if not message.is_multipart() or message.get_content_subtype() != "mixed":
            message.make_mixed()
        message.attach(part)


def _strings(e: Element) -> list[str]:
    return [" ".join((s.text or "").split()) for s in e if (s.text or "").strip()]


def _extended(e: Element, written: Written) -> None:
    uri = e.find(t("ExtendedFieldURI"))
    tag = uri.get("PropertyTag") if uri is not None else None
    if tag is None:
        return  # a named property: nothing of ours
    try:
        number = int(tag, 16) if tag.lower().startswith("0x") else int(tag)
        value = int((e.findtext(t("Value")) or "0").strip())
    except ValueError:
        raise EwsError(
            "ErrorInvalidValueForProperty", f"The extended property {tag} has no integer value."
        ) from None
    if number == PR_MESSAGE_FLAGS:
        written.is_read = bool(value & 1)
        written.draft = bool(value & 8)
    elif number == PR_FLAG_STATUS:
        written.flagged = value == 2


def attachment_part(e: Element) -> EmailMessage:
    """The MIME part of a `t:FileAttachment` (with Content) or `t:ItemAttachment`."""
    kind = local_name(e.tag)
    name = " ".join(_CONTROL.sub(" ", e.findtext(t("Name")) or "").split())
    if kind == "FileAttachment":
        if e.find(t("Content")) is None:
            raise EwsError("ErrorInvalidRequest", f"The file attachment '{name}' has no Content.")
        data = _b64(e.findtext(t("Content")), f"Content of the attachment '{name}'")
        if len(data) > MAX_ATTACHMENT:
            raise EwsError("ErrorMessageSizeExceeded", f"The attachment '{name}' is too large.")
        content_type = (e.findtext(t("ContentType")) or "").split(";")[0].strip().lower()
        maintype, _, subtype = content_type.partition("/")
        if (
            not re.fullmatch(r"[a-z0-9][a-z0-9!#$&^_.+-]*", maintype or "-")
            or not subtype
            or (maintype in ("multipart", "message"))
        ):
            maintype, subtype = "application", "octet-stream"
        part = EmailMessage(policy=email.policy.SMTP)
        inline = (e.findtext(t("IsInline")) or "false").strip().lower() == "true"
        part.set_content(
            data,
            maintype=maintype,
            subtype=subtype,
            disposition="inline" if inline else "attachment",
            filename=name or "attachment",
        )
        content_id = (e.findtext(t("ContentId")) or "").strip().strip("<>")
        if content_id:
            part["Content-ID"] = f"<{content_id}>"
        return part
    if kind == "ItemAttachment":
        inner = next((c for c in e if local_name(c.tag) == "Message"), None)
        if inner is None:
            raise EwsError(
                "ErrorInvalidRequest",
                f"The item attachment '{name}' holds no Message (only messages can be attached).",
            )
        attached = from_item(inner, fill=False).message
        part = EmailMessage(policy=email.policy.SMTP)
        part.set_content(attached, disposition="attachment", filename=name or None)
        return part
    raise EwsError(
        "ErrorInvalidRequest", f"'{kind}' is not an attachment (FileAttachment or ItemAttachment)."
    )


def add_attachment(message: EmailMessage, part: EmailMessage) -> str:
    """Adds `part` to the message (made multipart/mixed as needed); its IMAP part
    number."""
    if not message.is_multipart() or message.get_content_subtype() != "mixed":
        message.make_mixed()
    message.attach(part)
    payload = message.get_payload()
    assert isinstance(payload, list)
    return str(len(payload))


def remove_part(message: EmailMessage, number: str) -> None:
    """Removes the part numbered `number` (IMAP numbering) from its multipart;
    ErrorAttachmentNotFound when there is none or it is the body itself."""
    steps = number.split(".")
    if not all(s.isdigit() and int(s) > 0 for s in steps):
        raise EwsError("ErrorInvalidIdMalformed", f"The attachment id names part '{number}'.")
    parent = message
    for depth, step in enumerate(steps):
        if parent.get_content_type() == "message/rfc822" and depth:
            inner = parent.get_payload(0)
            assert isinstance(inner, EmailMessage)
            parent = inner
        payload = parent.get_payload() if parent.is_multipart() else None
        if not isinstance(payload, list) or int(step) > len(payload):
            raise EwsError("ErrorAttachmentNotFound", "The attachment doesn't exist.")
        if depth == len(steps) - 1:
            del payload[int(step) - 1]
            if not payload:
                raise EwsError("ErrorAttachmentNotFound", "The attachment is the message's body.")
            return
        child = payload[int(step) - 1]
        assert isinstance(child, EmailMessage)
        parent = child


def _apply(written: Written, e: Element, *, creating: bool) -> None:
    """Applies the properties of the `t:Message` (or, for UpdateItem, of one field's
    element) to `written`."""
    message = written.message
    for child in e:
        kind = local_name(child.tag)
        if kind not in MESSAGE_ELEMENTS:
            raise EwsError("ErrorSchemaValidation", f"'{kind}' is not a property of a message.")
        text = child.text or ""
        if kind == "ItemClass":
            if not text.strip().startswith("IPM.Note"):
                raise EwsError(
                    "ErrorObjectTypeChanged",
                    f"ItemClass '{text.strip()}': only messages (IPM.Note) are kept here.",
                )
        elif kind == "Subject":
            _set_header(message, "Subject", " ".join(_CONTROL.sub(" ", text).split()))
        elif kind == "Body":
            body_type = child.get("BodyType") or "Text"
            if body_type not in ("Text", "HTML"):
                raise EwsError("ErrorInvalidRequest", f"BodyType is '{body_type}'; Text or HTML.")
            set_body(message, body_type, text)
        elif kind == "Attachments":
            for a in child:
                add_attachment(message, attachment_part(a))
        elif kind == "Categories":
            written.categories = _strings(child)
        elif kind == "Importance":
            if text.strip() not in IMPORTANCE:
                raise EwsError("ErrorInvalidValueForProperty", f"Importance '{text}' isn't one.")
            importance, priority = IMPORTANCE[text.strip()]
            _set_header(message, "Importance", None if importance == "normal" else importance)
            _set_header(message, "X-Priority", None if priority == "3" else priority)
        elif kind == "Sensitivity":
            if text.strip() not in SENSITIVITY:
                raise EwsError("ErrorInvalidValueForProperty", f"Sensitivity '{text}' isn't one.")
            _set_header(message, "Sensitivity", SENSITIVITY[text.strip()])
        elif kind == "InReplyTo":
            found = _MESSAGE_ID.findall(text)
            _set_header(message, "In-Reply-To", found[0] if found else None)
        elif kind == "References":
            _set_header(message, "References", " ".join(_MESSAGE_ID.findall(text)) or None)
        elif kind == "InternetMessageId" and creating:
            found = _MESSAGE_ID.findall(text)
            if found:
                _set_header(message, "Message-ID", found[0])
        elif kind in ("ToRecipients", "CcRecipients", "BccRecipients", "ReplyTo"):
            header = {"ToRecipients": "To", "CcRecipients": "Cc", "BccRecipients": "Bcc"}.get(
                kind, "Reply-To"
            )
            _set_header(message, header, _mailboxes(child, kind))
        elif kind in ("From", "Sender"):
            _set_header(message, kind, _single(child, kind))
        elif kind == "IsRead":
            written.is_read = _flag_text(text, "IsRead")
        elif kind == "IsReadReceiptRequested":
            written.receipt = _flag_text(text, kind)
        elif kind == "Flag":
            status = (child.findtext(t("FlagStatus")) or "NotFlagged").strip()
            if status not in ("NotFlagged", "Flagged", "Complete"):
                raise EwsError("ErrorInvalidValueForProperty", f"FlagStatus '{status}' isn't one.")
            written.flagged = status == "Flagged"
        elif kind == "ExtendedProperty":
            _extended(child, written)
        if kind not in ("IsRead", "Categories", "Flag", "ExtendedProperty", "ItemClass"):
            written.changed_mime = True


def from_item(e: Element, *, fill: bool = True) -> Written:
    """The message a `t:Message` of CreateItem describes: its MimeContent with the
    other properties applied, or a new message of its properties. With `fill`, a
    message without them gets Date, Message-ID and MIME-Version, as a sent one has."""
    kind = local_name(e.tag)
    if kind != "Message":
        raise EwsError(
            "ErrorInvalidRequest",
            f"This server keeps mail only: '{kind}' items can't be created (use t:Message).",
        )
    mime = e.find(t("MimeContent"))
    if mime is not None:
        data = _b64(mime.text, "MimeContent")
        if not data.strip():
            raise EwsError("ErrorInvalidRequest", "The MimeContent is empty.")
        message = parse_mime(data)
        if message.defects and not message.keys():
            raise EwsError("ErrorInvalidRequest", "The MimeContent is not a MIME message.")
    else:
        message = EmailMessage(policy=email.policy.SMTP)
        message.set_content("", charset="utf-8")
    written = Written(message)
    _apply(written, e, creating=True)
    if fill:
        if message["Date"] is None:
            message["Date"] = formatdate(localtime=True)
        if message["MIME-Version"] is None:
            message["MIME-Version"] = "1.0"
    return written


def finish(written: Written, display_name: str, address: str) -> None:
    """From the user when the message has no From, a Message-ID on the user's domain,
    and the read receipt's header when one was asked for."""
    message = written.message
    local, _, domain = address.rpartition("@")
    if message["From"] is None:
        message["From"] = Address(display_name=display_name, username=local, domain=domain)
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain=domain or None)
    if written.receipt is not None:
        _set_header(
            message,
            "Disposition-Notification-To",
            str(message["From"]) if written.receipt else None,
        )


def update_fields(written: Written, field_element: Element) -> None:
    """Applies the value element of one SetItemField/AppendToItemField to a message."""
    _apply(written, field_element, creating=False)


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as the hub gets it: without Bcc."""
    copy = parse_mime(message.as_bytes())
    del copy["Bcc"]
    return copy.as_bytes()


def keywords_of(categories: Iterable[str]) -> list[str]:
    """The IMAP keywords of categories, each once (see `keyword_of`)."""
    out: list[str] = []
    for c in categories:
        keyword = keyword_of(c)
        if keyword not in out:
            out.append(keyword)
    return out


def keyword_of(category: str) -> str:
    """The IMAP keyword of a category: an atom (RFC 3501), so spaces and specials
    can't be in it; ErrorInvalidValueForProperty names one that can't be kept."""
    text = category.strip()
    if not text or any(c in text for c in ' (){%*"\\]') or _CONTROL.search(text):
        raise EwsError(
            "ErrorInvalidValueForProperty",
            f"The category '{category}' can't be kept: categories are IMAP keywords here, "
            "without spaces, quotes, parentheses or \\, { } % * ].",
        )
    if text.startswith("\\") or not text.isascii():
        raise EwsError(
            "ErrorInvalidValueForProperty",
            f"The category '{category}' can't be kept: IMAP keywords are ASCII atoms.",
        )
    return text
