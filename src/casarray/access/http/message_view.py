"""A stored message made fit for a browser: its headers, the body to show (HTML,
sanitized, or plain text) and its attachments.

The web mail reads a message as an IMAP client does, from what the mail store already
keeps: the cached ENVELOPE (decoded with `mime.envelope_fields`) and BODYSTRUCTURE
(read back with `mime.bodystructure_parts`), then the bytes of the parts it shows
with `mime.fetch_section`. So parts are numbered as IMAP numbers them ("1", "1.2"), an
attachment link names the same part as `BODY[1.2]`, and the message is split by the
one MIME parser of the mail store, with its limits on hostile input.

HTML is sanitized with nh3 (ammonia): no script, style, form, frame or event handler
attributes, links only to http, https and mailto (opened in a new tab, without a
referrer). Images: `cid:` references become links to the message's own parts; remote
images (http, https) are dropped unless the reader asked for them, and counted so the
page can offer to load them; anything else (data:, relative URLs) is dropped.
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import nh3

from casarray.mailstore.mime import (
    MessagePart,
    bodystructure_parts,
    charset_decode,
    envelope_fields,
    transfer_decode,
)

__all__ = [
    "Headers",
    "Part",
    "Sanitized",
    "Structure",
    "decode_part",
    "headers_of",
    "parse_structure",
    "sanitize_html",
    "text_of",
]

# Raster image types a browser may show inline from our origin (never SVG: it can
# carry script).
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/gif", "image/jpeg", "image/webp", "image/bmp"})
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
REMOTE_SCHEMES = frozenset({"http", "https"})


# -- headers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Headers:
    """What the message list and the reading pane show of a message."""

    subject: str
    sender: str  # the From addresses, "Name <mailbox@host>"
    to: str
    cc: str
    date: str  # the Date header, as written

    def sent(self) -> datetime | None:
        """The Date header as a datetime, or None when it is missing or unreadable."""
        if not self.date:
            return None
        try:
            return email.utils.parsedate_to_datetime(self.date)
        except (TypeError, ValueError, IndexError):
            return None


def headers_of(envelope: str) -> Headers:
    """The displayable headers of a cached ENVELOPE (RFC 2047 words decoded)."""
    fields = envelope_fields(envelope)
    return Headers(
        subject=fields.get("subject", ""),
        sender=fields.get("from", ""),
        to=fields.get("to", ""),
        cc=fields.get("cc", ""),
        date=fields.get("date", ""),
    )


# -- the parts of a message -------------------------------------------------------------


@dataclass(frozen=True)
class Part(MessagePart):
    """One leaf body part, as its BODYSTRUCTURE describes it, with what the web mail
    shows of it."""

    @classmethod
    def of(cls, part: MessagePart) -> Part:
        return cls(**{f.name: getattr(part, f.name) for f in dataclasses.fields(part)})

    @property
    def download_name(self) -> str:
        """A file name for the download: the part's own, else one made from its type."""
        name = self.filename
        if name:
            # No folders, no control characters.
            name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name).strip(" .")
        if name:
            return name
        if self.content_type == "message/rfc822":
            return f"message-{self.number}.eml"
        subtype = re.sub(r"[^a-z0-9]", "", self.content_type.partition("/")[2])[:10]
        return f"part-{self.number}.{subtype or 'bin'}"

    @property
    def decoded_size(self) -> int:
        """About how many octets the part has once decoded (base64 takes 4 for 3)."""
        return self.size * 3 // 4 if self.encoding == "base64" else self.size

    @property
    def can_show_inline(self) -> bool:
        return self.content_type in INLINE_IMAGE_TYPES


@dataclass
class Structure:
    """What a message shows: its HTML and plain text bodies (either may be missing),
    the parts a `cid:` URL may name, and every other leaf part, an attachment."""

    html: Part | None = None
    plain: Part | None = None
    attachments: list[Part] = field(default_factory=list)
    by_content_id: dict[str, Part] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)  # every leaf, by number


def _is_body(part: Part) -> bool:
    return part.content_type in ("text/plain", "text/html") and not part.is_attachment


def _outside_related_roots(number: str, related: set[str]) -> bool:
    """Whether part `number` lies in a part other than the first (the root) of one of
    the multipart/related parts numbered in `related`."""
    while number:
        number, _, index = number.rpartition(".")
        if index != "1" and number in related:
            return True
    return False


def parse_structure(bodystructure: str) -> Structure:
    """The bodies and attachments of a message from its cached BODYSTRUCTURE: the first
    text parts not marked as attachments are the bodies (every alternative may be one;
    of a related set only the root), every other leaf part is an attachment."""
    out = Structure()
    related: set[str] = set()
    for each in bodystructure_parts(bodystructure):
        if each.is_multipart:
            if each.content_type == "multipart/related":
                related.add(each.number)
            continue
        part = Part.of(each)
        out.parts[part.number] = part
        content_id = (part.content_id or "").strip().strip("<>")
        if content_id:
            out.by_content_id.setdefault(content_id, part)
        if _is_body(part) and not _outside_related_roots(part.number, related):
            if part.content_type == "text/html" and out.html is None:
                out.html = part
                continue
            if part.content_type == "text/plain" and out.plain is None:
                out.plain = part
                continue
        out.attachments.append(part)
    return out


# -- decoding a part --------------------------------------------------------------------


def decode_part(data: bytes, encoding: str) -> bytes:
    """The octets of a part whose body is `data` in Content-Transfer-Encoding
    `encoding` (base64 and quoted-printable decoded; garbage tolerated)."""
    return transfer_decode(data, encoding)


def text_of(data: bytes, part: Part) -> str:
    """The text of a text part whose body (still transfer-encoded) is `data`."""
    return charset_decode(transfer_decode(data, part.encoding), part.charset)


# -- sanitizing HTML --------------------------------------------------------------------


@dataclass(frozen=True)
class Sanitized:
    html: str
    blocked_images: int  # remote images left out
    used_parts: frozenset[str]  # numbers of the parts shown as cid: images


def _scheme(url: str) -> str:
    head, sep, _ = url.strip().partition(":")
    return head.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", head) else ""


def sanitize_html(
    html: str,
    *,
    part_url: Callable[[Part], str],
    structure: Structure | None = None,
    load_remote: bool = False,
) -> Sanitized:
    """`html` made safe to place in our page. `part_url(part)` is the URL of one of the
    message's parts, for `cid:` images; remote images are kept only with `load_remote`."""
    blocked = 0
    used: set[str] = set()
    by_cid = structure.by_content_id if structure is not None else {}

    def image(value: str) -> str | None:
        nonlocal blocked
        scheme = _scheme(value)
        if scheme == "cid":
            part = by_cid.get(urllib.parse.unquote(value.strip()[4:]).strip("<>"))
            if part is None or not part.can_show_inline:
                return None
            used.add(part.number)
            return part_url(part)
        if scheme in REMOTE_SCHEMES:
            if load_remote:
                return value
            blocked += 1
        return None

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "src":
            return image(value) if tag == "img" else None
        if attribute == "href":
            return value if _scheme(value) in LINK_SCHEMES else None
        if attribute in ("cite", "longdesc", "usemap", "background", "action"):
            return None
        return value

    cleaned = nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "cid"},
        attribute_filter=keep,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
    )
    return Sanitized(cleaned, blocked, frozenset(used))
