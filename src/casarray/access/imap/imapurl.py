"""IMAP URLs (RFC 5092) naming a message or a part of one, as CATENATE (RFC 4469) and
URLAUTH (RFC 4467) use them, without I/O.

    imap://alice@lab.net/INBOX;UIDVALIDITY=1700000000/;UID=3/;SECTION=1.2/;PARTIAL=0.512
        ;EXPIRE=2030-01-01T00:00:00Z;URLAUTH=user+bob@lab.net:INTERNAL:<hex>
    /INBOX/;UID=3/;SECTION=HEADER          (server-relative: the logged-in user's)

`parse` reads one into an `ImapUrl` (keys in any case, percent-encoding decoded, the
mailbox name in UTF-8); `resolve` fetches the data it names from the user's own
mailbox store. Either raises `BadUrl` with a reason the client can read: the session
answers `NO [BADURL url]`.

Who owns the mailbox of `imap://user@host/`: the user named, read as an address when it
holds "@" and otherwise as `user@host` (what a client builds from an address split at
its "@", as imaptest does).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime

from casarray.errors import CasarrayError
from casarray.mailstore.interface import MailboxStore, MailstoreError

_PARAM = re.compile(r"(/?);([A-Za-z]+)=([^;/]*)")
_HEX = re.compile(r"[0-9A-Fa-f]{32,}")
_NUMBER = re.compile(r"[1-9][0-9]{0,9}")
_PARTIAL = re.compile(r"([0-9]{1,10})(?:\.([1-9][0-9]{0,9}))?")
MAX_URL = 8192


class BadUrl(CasarrayError):
    """The URL is malformed or names nothing this user may read."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ImapUrl:
    url: str
    user: str | None  # the owner as named in imap://user@host/; None in a relative URL
    host: str | None
    mailbox: str
    uid_validity: int | None
    uid: int
    section: str  # "" for the whole message
    partial: tuple[int, int | None] | None
    expire: datetime | None
    access: str | None  # "user+alice@lab.net", "submit+...", "authuser", "anonymous"
    mechanism: str | None  # INTERNAL
    token: str | None  # the verifier, hex
    rump: str  # the URL up to and including ";URLAUTH=<access>"

    @property
    def owner(self) -> str | None:
        """The mailbox owner's address (see the module docstring)."""
        if self.user is None:
            return None
        if "@" in self.user or not self.host:
            return self.user
        return f"{self.user}@{self.host}"

    def owned_by(self, login: str) -> bool:
        """Whether `login` (an address) is this URL's owner (always for a relative URL)."""
        if self.user is None:
            return True
        names = {self.user.lower(), (self.owner or "").lower()}
        return login.lower() in names


def url_code(url: str) -> str:
    """The URL as it may stand in a BADURL response code (printable ASCII, no "]")."""
    clean = "".join(ch if " " < ch < "\x7f" and ch != "]" else "?" for ch in url)
    return clean[:512] or "?"


def _unquote(url: str, text: str, what: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise BadUrl(url, f"The {what} in the URL is not UTF-8") from None


def _number(url: str, value: str, what: str) -> int:
    if not _NUMBER.fullmatch(value):
        raise BadUrl(url, f"Invalid {what} {value!r} in the URL")
    return int(value)


def _expire(url: str, value: str) -> datetime:
    text = _unquote(url, value, "EXPIRE")
    try:
        when = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise BadUrl(url, f"Invalid EXPIRE {text!r} in the URL") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse(url: str) -> ImapUrl:
    """The URL's parts; BadUrl when it isn't an IMAP URL of a message (or part)."""
    if len(url) > MAX_URL:
        raise BadUrl(url[:100], "The URL is too long")
    user = host = None
    if url[:7].lower() == "imap://":
        authority, slash, path = url[7:].partition("/")
        if not slash:
            raise BadUrl(url, "The URL names no mailbox")
        userinfo, at, host = authority.rpartition("@")
        if not at or not userinfo:
            raise BadUrl(url, "The URL names no user (imap://user@host/...)")
        user = _unquote(url, userinfo.split(";", 1)[0], "user")
        host = host.lower().split(":", 1)[0]
        prefix = len(url) - len(path)
    elif url.startswith("/"):
        path = url[1:]
        prefix = 1
    else:
        raise BadUrl(url, "Not an IMAP URL (imap://... or /mailbox/;UID=...)")
    semi = path.find(";")
    if semi < 0:
        raise BadUrl(url, "The URL names no message (/;UID=...)")
    mailbox = _unquote(url, path[:semi].removesuffix("/"), "mailbox name")
    if not mailbox:
        raise BadUrl(url, "The URL names no mailbox")
    values: dict[str, str] = {}
    rump_end = len(url)
    pos = semi
    for m in _PARAM.finditer(path, semi):
        if m.start() != pos:
            break
        key = m.group(2).upper()
        if key in values:
            raise BadUrl(url, f"{key} appears twice in the URL")
        value = m.group(3)
        pos = m.end()
        if key == "URLAUTH":  # access[:mechanism:verifier]
            colon = value.find(":")
            if colon >= 0:
                pos = m.start(3) + colon
                value = value[:colon]
            rump_end = prefix + pos
        values[key] = value
    rest = path[pos:]
    mechanism = token = None
    if "URLAUTH" in values and rest.startswith(":"):
        mechanism, _, token = rest[1:].partition(":")
        if not mechanism or not _HEX.fullmatch(token):
            raise BadUrl(url, "Invalid URLAUTH verifier (:MECHANISM:hex)")
        rest = ""
    if rest:
        raise BadUrl(url, f"Unexpected {rest[:40]!r} in the URL")
    unknown = set(values) - {"UIDVALIDITY", "UID", "SECTION", "PARTIAL", "EXPIRE", "URLAUTH"}
    if unknown:
        raise BadUrl(url, f"Unknown URL parameter {sorted(unknown)[0]}")
    if "UID" not in values:
        raise BadUrl(url, "The URL names no message (/;UID=...)")
    partial = None
    if "PARTIAL" in values:
        found = _PARTIAL.fullmatch(values["PARTIAL"])
        if found is None:
            raise BadUrl(url, f"Invalid PARTIAL {values['PARTIAL']!r} in the URL")
        partial = (int(found.group(1)), int(found.group(2)) if found.group(2) else None)
    access = values.get("URLAUTH")
    return ImapUrl(
        url=url,
        user=user,
        host=host,
        mailbox=mailbox,
        uid_validity=(
            _number(url, values["UIDVALIDITY"], "UIDVALIDITY") if "UIDVALIDITY" in values else None
        ),
        uid=_number(url, values["UID"], "UID"),
        section=_unquote(url, values.get("SECTION", ""), "section"),
        partial=partial,
        expire=_expire(url, values["EXPIRE"]) if "EXPIRE" in values else None,
        access=_unquote(url, access, "access identifier") if access is not None else None,
        mechanism=mechanism,
        token=token,
        rump=url[:rump_end],
    )


def fetch_data(store: MailboxStore, parsed: ImapUrl) -> bytes:
    """The bytes the URL names, read from `store` (the owner's mailbox)."""
    from casarray.mailstore import mime

    url = parsed.url
    try:
        folder = store.folder(parsed.mailbox)
        if parsed.uid_validity is not None and parsed.uid_validity != folder.uid_validity:
            raise BadUrl(url, f"The UIDVALIDITY of {parsed.mailbox} is not {parsed.uid_validity}")
        raw = store.body(folder.name, parsed.uid)
    except MailstoreError:
        raise BadUrl(url, f"No message with UID {parsed.uid} in {parsed.mailbox}") from None
    data = raw
    if parsed.section:
        try:
            data = mime.fetch_section(raw, parsed.section)
        except ValueError:
            raise BadUrl(url, f"Invalid section {parsed.section!r} in the URL") from None
    if parsed.partial is not None:
        origin, length = parsed.partial
        data = data[origin:] if length is None else data[origin : origin + length]
    return data


def resolve(store: MailboxStore, user: str, url: str) -> bytes:
    """The data of a URL into the logged-in user's own mailboxes (CATENATE)."""
    parsed = parse(url)
    if not parsed.owned_by(user):
        raise BadUrl(url, "The URL names another user's mailbox")
    return fetch_data(store, parsed)
