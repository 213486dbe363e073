"""A stored message made fit for a browser: its headers, the body to show (HTML,
sanitized, or plain text) and its attachments.

The web mail reads a message as an IMAP client does, from what the mail store already
keeps: the cached ENVELOPE (decoded with `mime.envelope_fields`) and BODYSTRUCTURE,
then the bytes of the parts it shows with `mime.fetch_section`. So parts are numbered
as IMAP numbers them ("1", "1.2"), an attachment link names the same part as
`BODY[1.2]`, and the message is split by the one MIME parser of the mail store, with
its limits on hostile input.

HTML is sanitized with nh3 (ammonia): no script, style, form, frame or event handler
attributes, links only to http, https and mailto (opened in a new tab, without a
referrer). Images: `cid:` references become links to the message's own parts; remote
images (http, https) are dropped unless the reader asked for them, and counted so the
page can offer to load them; anything else (data:, relative URLs) is dropped.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.utils
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import nh3

from casarray.mailstore.mime import decoded_header, envelope_fields, to_wire

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


# -- reading a BODYSTRUCTURE ------------------------------------------------------------

# One IMAP token: "(", ")", a quoted string, a literal's length, or an atom.
_IMAP_TOKEN = re.compile(rb'\s*(?:([()])|"((?:[^"\\]|\\.)*)"|\{(\d+)\}\r\n|([^\s()"]+))', re.S)
_QUOTED_PAIR = re.compile(rb"\\(.)", re.S)

ImapValue = bytes | None | list["ImapValue"]


def _imap_list(text: str) -> list[ImapValue]:
    """The values of a parenthesised IMAP expression (as the store caches it): lists,
    strings (quoted or literal) and NIL (None); atoms are bytes. Iterative, so deep
    nesting costs no recursion."""
    data = to_wire(text)
    stack: list[list[ImapValue]] = [[]]
    i = 0
    while i < len(data):
        m = _IMAP_TOKEN.match(data, i)
        if m is None:
            break
        i = m.end()
        paren, quoted, literal, atom = m.groups()
        if paren == b"(":
            stack.append([])
        elif paren == b")":
            if len(stack) > 1:
                done = stack.pop()
                stack[-1].append(done)
        elif quoted is not None:
            stack[-1].append(_QUOTED_PAIR.sub(rb"\1", quoted))
        elif literal is not None:
            size = int(literal)
            stack[-1].append(data[i : i + size])
            i += size
        else:
            stack[-1].append(None if atom.upper() == b"NIL" else atom)
    return stack[0]


def _str(value: ImapValue) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value.decode("latin-1")
    return ""


def _params(value: ImapValue) -> dict[str, str]:
    """A parameter list, names lower-cased."""
    if not isinstance(value, list):
        return {}
    items = [_str(v) for v in value]
    return {items[k].lower(): items[k + 1] for k in range(0, len(items) - 1, 2)}


def _rfc2231(value: str) -> str:
    """An extended parameter value: charset'language'percent-encoded."""
    charset, _, rest = value.partition("'")
    _, _, encoded = rest.partition("'")
    raw = urllib.parse.unquote_to_bytes(encoded)
    return raw.decode(_codec(charset), "replace")


def _param(params: dict[str, str], name: str) -> str | None:
    """A parameter's value, RFC 2231 (`name*`) or RFC 2047 encoded words decoded."""
    if name + "*" in params:
        return _rfc2231(params[name + "*"])
    if name in params:
        return decoded_header(params[name])
    return None


@dataclass(frozen=True)
class Part:
    """One leaf body part, as its BODYSTRUCTURE describes it."""

    number: str  # the IMAP part number: "1", "2.1"
    content_type: str  # lower case, "text/plain"
    params: dict[str, str]
    content_id: str | None  # without the angle brackets
    encoding: str  # the Content-Transfer-Encoding, lower case
    size: int  # octets as stored (encoded)
    disposition: str | None  # "attachment", "inline" or None
    disposition_params: dict[str, str]

    @property
    def filename(self) -> str | None:
        return _param(self.disposition_params, "filename") or _param(self.params, "name")

    @property
    def charset(self) -> str | None:
        return _param(self.params, "charset")

    @property
    def is_attachment(self) -> bool:
        return self.disposition == "attachment" or self.filename is not None

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


def _leaf(items: list[ImapValue], number: str) -> Part:
    ctype = f"{_str(items[0]).lower()}/{_str(items[1]).lower()}"
    # Extension data follows the basic fields (more of them for text and message/rfc822).
    if ctype.startswith("text/"):
        ext = 8
    elif ctype == "message/rfc822":
        ext = 10
    else:
        ext = 7
    disposition = items[ext + 1] if len(items) > ext + 1 else None
    kind, dparams = None, {}
    if isinstance(disposition, list) and disposition:
        kind = _str(disposition[0]).lower() or None
        dparams = _params(disposition[1] if len(disposition) > 1 else None)
    content_id = (_str(items[3]).strip().strip("<>") or None) if len(items) > 3 else None
    size = _str(items[6]) if len(items) > 6 else ""
    return Part(
        number=number,
        content_type=ctype,
        params=_params(items[2] if len(items) > 2 else None),
        content_id=content_id,
        encoding=_str(items[5]).lower() if len(items) > 5 else "7bit",
        size=int(size) if size.isdigit() else 0,
        disposition=kind,
        disposition_params=dparams,
    )


def _is_body(part: Part) -> bool:
    return part.content_type in ("text/plain", "text/html") and not part.is_attachment


def _walk(node: list[ImapValue], number: str, out: Structure, bodies: bool) -> None:
    """Collect the leaves under `node` into `out`; while `bodies`, the first text parts
    not marked as attachments become the bodies."""
    stack: list[tuple[list[ImapValue], str, bool]] = [(node, number, bodies)]
    while stack:
        items, num, want_body = stack.pop()
        if items and isinstance(items[0], list):  # a multipart
            # (child child ... subtype params disposition language location)
            split = next((k for k, v in enumerate(items) if not isinstance(v, list)), len(items))
            children = [c for c in items[:split] if isinstance(c, list) and c]
            subtype = _str(items[split]).lower() if split < len(items) else "mixed"
            prefix = f"{num}." if num else ""
            todo: list[tuple[list[ImapValue], str, bool]] = []
            for k, child in enumerate(children, 1):
                # Every alternative may be a body; of a related set only the root.
                body_here = want_body and (subtype != "related" or k == 1)
                todo.append((child, f"{prefix}{k}", body_here))
            stack.extend(reversed(todo))  # depth first, in order
            continue
        part = _leaf(items, num or "1")
        out.parts[part.number] = part
        if part.content_id:
            out.by_content_id.setdefault(part.content_id, part)
        if want_body and _is_body(part):
            if part.content_type == "text/html" and out.html is None:
                out.html = part
                continue
            if part.content_type == "text/plain" and out.plain is None:
                out.plain = part
                continue
        out.attachments.append(part)


def parse_structure(bodystructure: str) -> Structure:
    """The bodies and attachments of a message from its cached BODYSTRUCTURE."""
    values = _imap_list(bodystructure)
    out = Structure()
    if values and isinstance(values[0], list) and values[0]:
        _walk(values[0], "", out, True)
    return out


# -- decoding a part --------------------------------------------------------------------


def _codec(charset: str | None) -> str:
    """A Python text codec for a MIME charset (UTF-8 for us-ascii and unknown ones)."""
    name = (charset or "").split("*", 1)[0].strip().lower()
    if name in ("", "us-ascii", "ascii"):
        return "utf-8"
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return "utf-8"
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def decode_part(data: bytes, encoding: str) -> bytes:
    """The octets of a part whose body is `data` in Content-Transfer-Encoding
    `encoding` (base64 and quoted-printable decoded; garbage tolerated)."""
    encoding = encoding.lower()
    if encoding == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]  # a lone sextet carries no octet
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def text_of(data: bytes, part: Part) -> str:
    """The text of a text part whose body (still transfer-encoded) is `data`."""
    return decode_part(data, part.encoding).decode(_codec(part.charset), "replace")


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
