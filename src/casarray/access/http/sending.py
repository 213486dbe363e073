"""Sending mail from web mail and the JSON API: the message built from what the user
wrote (MIME with the standard library's `email` package), reply, reply all and forward
prepared from a stored message, the submission to a Hub Transport server
(`access.submission`), and the copy in Sent Items.

The message: `From` the user's display name and primary address, `To`, `Cc`, `Subject`,
`Date`, `Message-ID` (on the sender's domain), `In-Reply-To` and `References` for a
reply or forward, the body as text/plain UTF-8 and each attachment as a base64 part
with its file name (RFC 2231 for non-ASCII names). `Bcc` goes to the envelope only:
the copy in Sent Items keeps it (as Outlook's does), the message the hub gets doesn't.

Sent Items: the folder with special use \\Sent (provisioning makes "Sent"), else one
named "Sent Items" or "Sent", else a new "Sent Items" marked \\Sent. The copy is made
only after the hub answered 250, flagged \\Seen; if it then can't be stored, the
message is still sent (`Sent.uid` None) and the failure is logged.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import html
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import TYPE_CHECKING

from casarray.access import submission
from casarray.errors import CasarrayError
from casarray.mailstore.interface import FolderExists, MailstoreError

if TYPE_CHECKING:
    from casarray.access.http.context import AppContext
    from casarray.directory import Mailbox
    from casarray.mailstore.interface import MailboxStore

log = logging.getLogger("casarray.http.sending")

SEEN, SENT = "\\Seen", "\\Sent"
SENT_ITEMS = "Sent Items"  # Exchange's name for the folder
MAX_RECIPIENTS = 500
MAX_ATTACHMENTS = 50
MAX_SUBJECT = 998  # characters (RFC 5322's line limit)
STANDARD_SUBMISSION_PORT = 587
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
# local@domain: atext and dots (ASCII: no SMTPUTF8 needed), a host name's labels.
_ADDR_SPEC = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class InvalidMessage(CasarrayError):
    """What the user wrote can't be sent: `field` names the part that is wrong."""

    category = "InvalidArgument"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Attachment:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Outgoing:
    """A message the user is sending."""

    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str = ""
    body: str = ""
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()

    @property
    def recipients(self) -> list[str]:
        """The envelope's recipients: To, Cc and Bcc, each address once."""
        seen: dict[str, str] = {}
        for address in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(address.addr_spec.lower(), address.addr_spec)
        return list(seen.values())


@dataclass(frozen=True)
class Sent:
    """A message submitted, and its copy in Sent Items."""

    queue_id: str
    hub: str
    message_id: str
    folder: str | None
    uid: int | None
    uid_validity: int | None
    copy_error: MailstoreError | None = None  # why no copy was kept (folder is None)


# -- what the user wrote ------------------------------------------------------------------


def addresses(value: str | Sequence[object], field: str) -> tuple[Address, ...]:
    """The addresses of a To/Cc/Bcc field: a text ("Bob Li <bob@lab.net>, carol@lab.net";
    commas or semicolons between them) or a list of such texts. InvalidMessage names
    the first one that isn't an address."""
    if isinstance(value, str):
        items = [value]
    else:
        items = []
        for item in value:
            if not isinstance(item, str):
                raise InvalidMessage(field, f"'{field}' must be a list of e-mail addresses.")
            items.append(item)
    found: list[Address] = []
    for item in items:
        if any(c in item for c in "\r\n\x00"):
            raise InvalidMessage(field, f"'{field}' has a line break in an address.")
        text = item.replace(";", ",")
        before = len(found)
        for name, addr in getaddresses([text]):
            if not name and not addr:
                continue
            if not _ADDR_SPEC.fullmatch(addr):
                shown = f"{name} <{addr}>" if name else addr
                raise InvalidMessage(
                    field, f"'{shown.strip()}' in {field} isn't an e-mail address."
                )
            local, _, domain = addr.rpartition("@")
            try:
                found.append(Address(display_name=name, username=local, domain=domain))
            except (ValueError, IndexError) as exc:
                raise InvalidMessage(field, f"'{addr}' in {field} isn't usable: {exc}") from None
        if len(found) == before and text.strip(", \t"):
            raise InvalidMessage(field, f"'{item.strip()}' in {field} isn't an e-mail address.")
    if len(found) > MAX_RECIPIENTS:
        raise InvalidMessage(field, f"'{field}' has more than {MAX_RECIPIENTS} addresses.")
    return tuple(found)


def check(outgoing: Outgoing) -> Outgoing:
    """`outgoing` when it can be sent; InvalidMessage naming what is wrong."""
    if not outgoing.recipients:
        raise InvalidMessage("to", "Add at least one recipient (To, Cc or Bcc).")
    if len(outgoing.recipients) > MAX_RECIPIENTS:
        raise InvalidMessage("to", f"A message may have at most {MAX_RECIPIENTS} recipients.")
    if len(outgoing.subject) > MAX_SUBJECT:
        raise InvalidMessage("subject", f"The subject is over {MAX_SUBJECT} characters.")
    if len(outgoing.attachments) > MAX_ATTACHMENTS:
        raise InvalidMessage(
            "attachments", f"A message may have at most {MAX_ATTACHMENTS} attachments."
        )
    for attachment in outgoing.attachments:
        if not attachment.name or any(c in attachment.name for c in "\r\n\x00/\\"):
            raise InvalidMessage("attachments", f"'{attachment.name}' is not a file name.")
    return outgoing


def media_type(value: str | None) -> str:
    """A usable media type for an attachment ("application/octet-stream" when `value`
    isn't one, or is a message or multipart type that would need parsing)."""
    text = (value or "").split(";")[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(text) or text.split("/")[0] in ("message", "multipart"):
        return "application/octet-stream"
    return text


def build(outgoing: Outgoing, mailbox: Mailbox) -> EmailMessage:
    """The message (with Bcc: `wire_bytes` leaves it out)."""
    sender = mailbox.primary_smtp_address
    local, _, domain = sender.rpartition("@")
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = Address(display_name=mailbox.display_name, username=local, domain=domain)
    for name, value in (("To", outgoing.to), ("Cc", outgoing.cc), ("Bcc", outgoing.bcc)):
        if value:
            message[name] = value
    message["Subject"] = " ".join(_CONTROL.sub(" ", outgoing.subject).split())
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=domain or None)
    if outgoing.in_reply_to:
        message["In-Reply-To"] = outgoing.in_reply_to
    if outgoing.references:
        message["References"] = " ".join(outgoing.references)
    message.set_content(outgoing.body.replace("\r\n", "\n"), charset="utf-8")
    for attachment in outgoing.attachments:
        maintype, _, subtype = media_type(attachment.content_type).partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.name
        )
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as the hub gets it: without Bcc."""
    copy = email.message_from_bytes(message.as_bytes(), policy=email.policy.SMTP)
    del copy["Bcc"]
    return copy.as_bytes()


# -- reply and forward ------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """The compose form's fields for a reply or forward of a stored message."""

    to: str = ""
    cc: str = ""
    subject: str = ""
    body: str = ""
    in_reply_to: str = ""
    references: str = ""
    attachments: list[Attachment] = field(default_factory=list)


def _prefixed(prefix: str, subject: str) -> str:
    bare = subject.strip()
    if re.match(rf"(?i){prefix}\s*:", bare):
        return bare
    return f"{prefix}: {bare}".strip()


def _text_body(original: EmailMessage) -> str:
    part = original.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        content = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", "", content)
        content = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>", "\n", content)
        content = html.unescape(re.sub(r"<[^>]*>", "", content))
    return content.replace("\r\n", "\n")


def _header(original: EmailMessage, name: str) -> str:
    value = original.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _attachments_of(original: EmailMessage) -> list[Attachment]:
    found = []
    for part in original.iter_attachments():
        if not isinstance(part, EmailMessage):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = part.as_bytes()
        name = part.get_filename() or "attachment"
        found.append(Attachment(name, part.get_content_type(), data))
    return found


def prepared_attachments(raw: bytes) -> list[Attachment]:
    """The attachments of the message `raw`, decoded, as a forward carries them."""
    original = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(original, EmailMessage)
    return _attachments_of(original)


def prepare(raw: bytes, mode: str, mailbox: Mailbox) -> Prepared:
    """The fields of a reply ("reply"), reply to all ("replyall") or forward ("forward")
    of the message `raw`: the recipients, the subject with RE:/FW:, the original quoted
    below a header block, In-Reply-To and References (RFC 5322 3.6.4) and, for a
    forward, the original's attachments."""
    original = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(original, EmailMessage)
    message_id = _header(original, "Message-ID")
    message_id = m.group(0) if (m := _MESSAGE_ID.search(message_id)) else ""
    references = _MESSAGE_ID.findall(_header(original, "References"))
    if not references:
        references = _MESSAGE_ID.findall(_header(original, "In-Reply-To"))[:1]
    if message_id:
        references.append(message_id)
    sender = _header(original, "From")
    quoted = "\n".join(
        [
            "",
            "",
            "-----Original Message-----",
            f"From: {sender}",
            f"Sent: {_header(original, 'Date')}",
            f"To: {_header(original, 'To')}",
            *([f"Cc: {_header(original, 'Cc')}"] if original.get("Cc") else []),
            f"Subject: {_header(original, 'Subject')}",
            "",
            _text_body(original),
        ]
    )
    subject = _header(original, "Subject")
    if mode == "forward":
        return Prepared(
            subject=_prefixed("FW", subject),
            body=quoted,
            in_reply_to=message_id,
            references=" ".join(references),
            attachments=_attachments_of(original),
        )
    reply_to = _header(original, "Reply-To") or sender
    to = reply_to
    cc = ""
    if mode == "replyall":
        me = mailbox.primary_smtp_address.lower()
        answered = {a.lower() for _, a in getaddresses([reply_to])}
        others = [
            (name, addr)
            for name, addr in getaddresses([_header(original, "To"), _header(original, "Cc")])
            if addr and addr.lower() != me and addr.lower() not in answered
        ]
        cc = ", ".join(str(Address(display_name=n, addr_spec=a)) for n, a in others)
    return Prepared(
        to=to,
        cc=cc,
        subject=_prefixed("RE", subject),
        body=quoted,
        in_reply_to=message_id,
        references=" ".join(references),
    )


def message_ids(text: str) -> tuple[str, ...]:
    """The message IDs in `text` ("<a@b> <c@d>"), for In-Reply-To and References."""
    return tuple(_MESSAGE_ID.findall(text or ""))


# -- sending ------------------------------------------------------------------------------


def sent_folder(store: MailboxStore) -> str:
    """Sent Items (see the module docstring), made when missing."""
    folders = store.folders()
    for folder in folders:
        if folder.special_use == SENT:
            return folder.name
    for name in (SENT_ITEMS, "Sent"):
        for folder in folders:
            if folder.name.lower() == name.lower():
                return folder.name
    with contextlib.suppress(FolderExists):  # another client made it meanwhile
        store.create_folder(SENT_ITEMS, SENT)
    return SENT_ITEMS


def send(context: AppContext, mailbox: Mailbox, store: MailboxStore, outgoing: Outgoing) -> Sent:
    """Submit `outgoing` from `mailbox` through a Hub Transport server, then keep its
    copy in Sent Items. Blocking. InvalidMessage, or submission's SubmissionError
    (RecipientsRefused naming the recipients) when it wasn't sent."""
    check(outgoing)
    message = build(outgoing, mailbox)
    copy = message.as_bytes()
    submitted = submission.submit(
        context.directory,
        context.server,
        mailbox.primary_smtp_address,
        outgoing.recipients,
        wire_bytes(message),
        port_offset=context.ports.submission - STANDARD_SUBMISSION_PORT,
    )
    message_id = str(message["Message-ID"])
    try:
        folder = sent_folder(store)
        appended = store.append(folder, copy, flags=[SEEN])
    except MailstoreError as exc:
        log.error(
            "%s: %s sent %s (queue id %s) but its copy can't be kept in Sent Items: %s",
            context.server_name,
            mailbox.primary_smtp_address,
            message_id,
            submitted.queue_id,
            exc,
        )
        return Sent(submitted.queue_id, submitted.server, message_id, None, None, None, exc)
    log.info(
        "%s: %s sent %s to %d recipient(s) through %s (queue id %s)",
        context.server_name,
        mailbox.primary_smtp_address,
        message_id,
        len(outgoing.recipients),
        submitted.server,
        submitted.queue_id,
    )
    return Sent(
        submitted.queue_id,
        submitted.server,
        message_id,
        folder,
        appended.uid,
        appended.uid_validity,
    )


def outgoing_of(
    *,
    to: str | Sequence[object] = "",
    cc: str | Sequence[object] = "",
    bcc: str | Sequence[object] = "",
    subject: str = "",
    body: str = "",
    attachments: Iterable[Attachment] = (),
    in_reply_to: str = "",
    references: str = "",
) -> Outgoing:
    """An `Outgoing` from form or JSON fields, checked (InvalidMessage)."""
    replied = message_ids(in_reply_to)
    return check(
        Outgoing(
            to=addresses(to, "to"),
            cc=addresses(cc, "cc"),
            bcc=addresses(bcc, "bcc"),
            subject=subject,
            body=body,
            attachments=tuple(attachments),
            in_reply_to=replied[0] if replied else None,
            references=message_ids(references),
        )
    )
