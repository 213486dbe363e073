"""URLAUTH (RFC 4467) and URLAUTH=BINARY (RFC 5524): RESETKEY, GENURLAUTH and
URLFETCH, without I/O.

GENURLAUTH signs a URL rump (an IMAP URL into one of the user's own mailboxes that ends
with `;URLAUTH=<access>`) with the INTERNAL mechanism: the verifier is the HMAC-SHA256
of the rump under the mailbox's key, in hex, as RFC 4467 section 7 describes. The key
is kept per user and mailbox in the mailbox database (`MailboxStore.urlauth_key`), so
any Client Access process verifies a URL another one made, and after a restart;
RESETKEY replaces keys, which revokes every URL made with them.

URLFETCH hands out the data of authorized URLs to whoever the access identifier
allows: `user+<address>` that user, `authuser` any logged-in user, `anonymous` anyone;
`submit+<address>` only a submission server, which this is not. A URL that is
malformed, expired, not verified, or names nothing answers NIL (the command still
answers OK, RFC 4467 section 6.3). With URLAUTH=BINARY's parameters a URL answers one
parenthesised item per parameter, `(BODYPARTSTRUCTURE (...)) (BINARY ~{n}...)` or
`(BODY {n}...)`: the part's structure, its decoded content, its content as stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from casarray.access.imap import responses as r
from casarray.access.imap.binary import literal8
from casarray.access.imap.commands import Command, ParseError
from casarray.access.imap.imapurl import BadUrl, ImapUrl, fetch_data, parse, url_code
from casarray.mailstore.interface import FolderNotFound, MailboxStore, MailstoreError

if TYPE_CHECKING:
    from casarray.access.imap.parser import CommandParser

MECHANISM = "INTERNAL"
FETCH_PARAMS = ("BODY", "BINARY", "BODYPARTSTRUCTURE")
MAX_URLS = 100


@dataclass(frozen=True, slots=True)
class GenUrlauth(Command):
    urls: tuple[tuple[str, str], ...]  # (url rump, mechanism)


@dataclass(frozen=True, slots=True)
class UrlFetch(Command):
    urls: tuple[tuple[str, tuple[str, ...]], ...]  # (url, RFC 5524 parameters)


@dataclass(frozen=True, slots=True)
class ResetKey(Command):
    mailbox: str | None
    mechanisms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str
    text: str
    code: str | None = None


# -- grammar --------------------------------------------------------------------------


def parse_genurlauth(p: CommandParser, tag: str, name: str) -> GenUrlauth:
    urls: list[tuple[str, str]] = []
    while not p.at_end() or not urls:
        p.sp(name if not urls else "a mechanism")
        url = p.astring_bytes("a URL rump").decode("utf-8", "replace")
        p.sp("the URL rump")
        urls.append((url, p.atom("a URLAUTH mechanism").upper()))
        _check_count(len(urls))
    return GenUrlauth(tag, name, tuple(urls))


def parse_urlfetch(p: CommandParser, tag: str, name: str) -> UrlFetch:
    urls: list[tuple[str, tuple[str, ...]]] = []
    while not p.at_end() or not urls:
        p.sp(name if not urls else "a URL")
        params: list[str] = []
        if p.try_char("("):
            url = p.astring_bytes("a URL").decode("utf-8", "replace")
            while not p.try_char(")"):
                p.sp("the URL")
                param = p.atom("a URLFETCH parameter").upper()
                if param not in FETCH_PARAMS:
                    raise ParseError(f"Unknown URLFETCH parameter {param}")
                params.append(param)
        else:
            url = p.astring_bytes("a URL").decode("utf-8", "replace")
        if "BODY" in params and "BINARY" in params:
            raise ParseError("BODY and BINARY can't both be asked for one URL")
        urls.append((url, tuple(dict.fromkeys(params))))
        _check_count(len(urls))
    return UrlFetch(tag, name, tuple(urls))


def parse_resetkey(p: CommandParser, tag: str, name: str) -> ResetKey:
    if p.at_end():
        return ResetKey(tag, name, None, ())
    p.sp(name)
    mailbox = p.mailbox()
    mechanisms: list[str] = []
    while not p.at_end():
        p.sp("the mailbox name" if not mechanisms else "a mechanism")
        mechanisms.append(p.atom("a URLAUTH mechanism").upper())
    return ResetKey(tag, name, mailbox, tuple(mechanisms))


def _check_count(count: int) -> None:
    if count > MAX_URLS:
        raise ParseError(f"Too many URLs in one command (at most {MAX_URLS})")


# -- the verifier ---------------------------------------------------------------------


def verifier(key: bytes, rump: str) -> str:
    """RFC 4467 INTERNAL: HMAC-SHA256 of the rump under the mailbox key, in hex."""
    return hmac.new(key, rump.encode("utf-8"), hashlib.sha256).hexdigest()


# -- the commands ---------------------------------------------------------------------


def genurlauth(store: MailboxStore, user: str, cmd: GenUrlauth) -> tuple[bytes, Outcome]:
    """The `* GENURLAUTH` line and the tagged answer (nothing unless every URL is good)."""
    made: list[bytes] = []
    for rump, mechanism in cmd.urls:
        if mechanism != MECHANISM:
            return b"", Outcome("NO", f"Unsupported URLAUTH mechanism {mechanism}")
        try:
            parsed = parse(rump)
        except BadUrl as exc:
            return b"", Outcome("NO", exc.reason, f"BADURL {url_code(rump)}")
        problem = _rump_problem(parsed, user)
        if problem is not None:
            return b"", Outcome("NO", problem, f"BADURL {url_code(rump)}")
        try:
            key = store.urlauth_key(parsed.mailbox, create=True)
        except FolderNotFound:
            return b"", Outcome(
                "NO", f"Mailbox doesn't exist: {parsed.mailbox}", f"BADURL {url_code(rump)}"
            )
        assert key is not None
        full = f"{parsed.rump}:{MECHANISM.lower()}:{verifier(key, parsed.rump)}"
        made.append(r.string(full))
    return b"* GENURLAUTH " + b" ".join(made) + b"\r\n", Outcome("OK", "GENURLAUTH completed")


def _rump_problem(parsed: ImapUrl, user: str) -> str | None:
    if parsed.user is None:
        return "GENURLAUTH needs an absolute URL (imap://user@host/...)"
    if parsed.access is None or parsed.rump != parsed.url:
        return "The URL must end with ;URLAUTH=<access> and carry no verifier"
    if not parsed.owned_by(user):
        return "Only URLs to your own mailboxes can be authorized"
    access = parsed.access.lower()
    if not (
        access in ("authuser", "anonymous")
        or (access.startswith(("user+", "submit+")) and len(access) > access.index("+") + 1)
    ):
        return f"Invalid access identifier {parsed.access!r}"
    return None


def resetkey(store: MailboxStore, cmd: ResetKey) -> Outcome:
    unknown = [m for m in cmd.mechanisms if m != MECHANISM]
    if unknown:
        return Outcome("NO", f"Unsupported URLAUTH mechanism {unknown[0]}")
    try:
        store.reset_urlauth_keys(cmd.mailbox)
    except FolderNotFound:
        return Outcome("NO", f"Mailbox doesn't exist: {cmd.mailbox}", "NONEXISTENT")
    return Outcome("OK", "RESETKEY completed")


MailboxOf = Callable[[str], "MailboxStore | None"]


def urlfetch(
    store: MailboxStore, user: str, mailbox_of: MailboxOf, cmd: UrlFetch
) -> tuple[bytes, Outcome]:
    """The `* URLFETCH` line (NIL for each URL that can't be fetched) and OK."""
    pieces: list[bytes] = []
    for url, params in cmd.urls:
        pieces.append(r.string(url) + b" " + _fetch_one(store, user, mailbox_of, url, params))
    return b"* URLFETCH " + b" ".join(pieces) + b"\r\n", Outcome("OK", "URLFETCH completed")


def _authorized(parsed: ImapUrl, user: str, key: bytes | None) -> bool:
    if parsed.access is None or parsed.token is None or key is None:
        return False
    if (parsed.mechanism or "").upper() != MECHANISM:
        return False
    if parsed.expire is not None and parsed.expire <= datetime.now(UTC):
        return False
    access = parsed.access.lower()
    allowed = access in ("authuser", "anonymous") or (
        access.startswith("user+") and access[5:] == user.lower()
    )  # submit+: for a submission server only
    return allowed and hmac.compare_digest(verifier(key, parsed.rump), parsed.token.lower())


def _fetch_one(
    store: MailboxStore, user: str, mailbox_of: MailboxOf, url: str, params: tuple[str, ...]
) -> bytes:
    from casarray.mailstore.mime.binary import (
        UnknownEncoding,
        binary_section,
        bodypart_structure,
    )

    try:
        parsed = parse(url)
        owner = parsed.owner
        if owner is None:
            return b"NIL"
        source = store if parsed.owned_by(user) else mailbox_of(owner)
        if source is None:
            return b"NIL"
        if not _authorized(parsed, user, source.urlauth_key(parsed.mailbox)):
            return b"NIL"
        if not params:
            return r.literal(fetch_data(source, parsed))
        raw = fetch_data(source, dataclasses.replace(parsed, section="", partial=None))
    except (BadUrl, MailstoreError):
        return b"NIL"
    part = _part_numbers(parsed.section)
    out: list[bytes] = []
    if "BODYPARTSTRUCTURE" in params:
        try:
            binary = "BINARY" in params
            structure = bodypart_structure(raw, part, binary) if part is not None else None
        except UnknownEncoding:
            structure = None
        out.append(b"BODYPARTSTRUCTURE " + (structure or b"NIL"))
    if "BINARY" in params:
        try:
            data = binary_section(raw, part) if part is not None else None
        except UnknownEncoding:
            data = None
        if data is not None and parsed.partial is not None:
            origin, length = parsed.partial
            data = data[origin:] if length is None else data[origin : origin + length]
        out.append(b"BINARY " + (literal8(data) if data is not None else b"NIL"))
    if "BODY" in params:
        try:
            out.append(b"BODY " + r.literal(fetch_data(source, parsed)))
        except (BadUrl, MailstoreError):
            out.append(b"BODY NIL")
    return b" ".join(b"(" + item + b")" for item in out)  # RFC 5524 url-metadata


def _part_numbers(section: str) -> tuple[int, ...] | None:
    """The part numbers of a section that is only part numbers ("" is the message)."""
    if not section:
        return ()
    pieces = section.split(".")
    if not all(p.isdigit() and p[0] != "0" and len(p) <= 9 for p in pieces):
        return None
    return tuple(int(p) for p in pieces)
