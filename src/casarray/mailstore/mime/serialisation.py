"""A parsed message in IMAP syntax: BODY, BODYSTRUCTURE and ENVELOPE (RFC 3501).

One module for the three because they nest: the BODYSTRUCTURE of a message/rfc822
part holds that message's ENVELOPE and BODYSTRUCTURE. The ENVELOPE's address lists
are parsed here too, with Dovecot's answers where RFC 5322 leaves room (group syntax,
routes, the MISSING_MAILBOX / MISSING_DOMAIN stand-ins, recovery after a syntax error):
`email.headerregistry` would drop or repair what ENVELOPE has to report as sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from casarray.mailstore.mime.header_values import (
    _LWSP,
    _TSPECIALS,
    _closed,
    _parse_params,
    _quoted,
    _skip_cfws,
    _skip_comment,
    _token,
    _token_value,
)
from casarray.mailstore.mime.structure import _MESSAGE, _MULTIPART, _TEXT, _US_ASCII_PARAM, _Entity

_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'

_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")
_PLAIN_QUOTABLE = re.compile(rb'[^\x00\r\n\x80-\xff"\\]*')
_NEWLINE = re.compile(rb"[\r\n]")
_NEWLINE_NOT_BEFORE_BLANK = re.compile(rb"[\r\n](?![ \t\r\n]|\Z)")
_BLANKS = re.compile(rb"[ \t\r\n]+")
_NIL = b"NIL"


def _string(b: bytes) -> bytes:
    if _PLAIN_QUOTABLE.fullmatch(b):
        return b'"' + b + b'"'
    if b"\0" in b:
        b = b.replace(b"\0", "\ufffd".encode())  # no NUL in IMAP strings
    if _NEEDS_LITERAL.search(b):
        return b"{%d}\r\n%b" % (len(b), b)
    if b'"' in b or b"\\" in b:
        b = b.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + b + b'"'


def _one_line(b: bytes) -> bytes:
    """`b` with stray CR/LF removed (a space instead, unless blanks follow)."""
    if b"\r" in b or b"\n" in b:
        b = _NEWLINE.sub(b"", _NEWLINE_NOT_BEFORE_BLANK.sub(b" ", b))
    return b


def _nstring(b: bytes | None) -> bytes:
    """A string with stray CR/LF removed, or NIL."""
    return _NIL if b is None else _string(_one_line(b))


def _for_humans(b: bytes) -> bytes:
    """Subject and display names: runs of blanks as one space, none at the ends."""
    return _string(b" ".join(part for part in _BLANKS.split(b) if part))


def _write_params(params: list[tuple[bytes, bytes]], text: bool, out: list[bytes]) -> None:
    if text and not any(k.lower() == b"charset" for k, _ in params):
        params = [*params, _US_ASCII_PARAM]
    if not params:
        out.append(_NIL)
        return
    out.append(b"(")
    out.append(b" ".join(_string(k) + b" " + _string(v) for k, v in params))
    out.append(b")")


def _write_extension(e: _Entity, out: list[bytes]) -> None:
    """body-fld-dsp SP body-fld-lang SP body-fld-loc, each preceded by SP."""
    dsp = e.first(b"content-disposition")
    out.append(b" ")
    if dsp is None:
        out.append(_NIL)
    else:
        i, kind = _token(dsp, _skip_cfws(dsp, 0))
        out.append(b"(" + _string(kind) + b" ")
        _write_params(_parse_params(dsp, _skip_cfws(dsp, i)), False, out)
        out.append(b")")
    lang = e.first(b"content-language")
    langs: list[bytes] = []
    if lang is not None:
        i = _skip_cfws(lang, 0)
        while True:
            j = i
            while j < len(lang) and lang[j] not in _TSPECIALS and lang[j] > 0x20:
                j += 1
            if j == i:
                break
            langs.append(lang[i:j])
            i = _skip_cfws(lang, j)
            if i >= len(lang) or lang[i] != 0x2C:  # ,
                break
            i = _skip_cfws(lang, i + 1)
    out.append(b" ")
    out.append(b"(" + b" ".join(_string(x) for x in langs) + b")" if langs else _NIL)
    out.append(b" ")
    out.append(_nstring(e.first(b"content-location")))


def _write_body(
    raw: bytes,
    e: _Entity,
    extended: bool,
    out: list[bytes],
    sizes: Callable[[_Entity], tuple[int, int]] | None = None,
) -> None:
    """`sizes` gives a part's (octets, lines) in place of the stored ones (BINARY's
    decoded sizes for URLFETCH's BODYPARTSTRUCTURE, RFC 5524)."""
    out.append(b"(")
    if e.kind == _MULTIPART:
        if e.children:
            for child in e.children:
                _write_body(raw, child, extended, out, sizes)
        else:
            out.append(_EMPTY_BODYSTRUCTURE if extended else _EMPTY_BODY)
        out.append(b" ")
        out.append(_string(e.subtype))
        if extended:
            out.append(b" ")
            _write_params(e.params, False, out)
            _write_extension(e, out)
        out.append(b")")
        return
    text = e.ctype.lower() == _TEXT
    out.append(_string(e.ctype) + b" " + _string(e.subtype) + b" ")
    _write_params(e.params, text, out)
    encoding = e.first(b"content-transfer-encoding")
    encoding = _token_value(encoding) if encoding is not None else b""
    octets, lines = (
        sizes(e)
        if sizes is not None
        else (e.end - e.body_start, raw.count(b"\n", e.body_start, e.end))
    )
    out.append(
        b" %b %b %b %d"
        % (
            _nstring(e.first(b"content-id")),
            _nstring(e.first(b"content-description")),
            _string(encoding or b"7bit"),
            octets,
        )
    )
    if text:
        out.append(b" %d" % lines)
    elif e.kind == _MESSAGE and e.inner is not None:
        out.append(b" ")
        _write_envelope(e.inner, out)
        out.append(b" ")
        _write_body(raw, e.inner, extended, out, sizes)
        out.append(b" %d" % lines)
    if extended:
        out.append(b" ")
        out.append(_nstring(e.first(b"content-md5")))
        _write_extension(e, out)
    out.append(b")")


# -- ENVELOPE and addresses --------------------------------------------------------

_ENVELOPE_STRINGS = (b"date", b"subject", b"in-reply-to", b"message-id")
_ENVELOPE_ADDRESSES = (b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc")
_MISSING_MAILBOX = b"MISSING_MAILBOX"
_MISSING_DOMAIN = b"MISSING_DOMAIN"
_SYNTAX_ERROR = b"SYNTAX_ERROR"

_Address = tuple[bytes | None, bytes | None, bytes | None, bytes | None]

# token kinds (_BROKEN: an unterminated comment or quoted string)
_ATOM, _QUOTED, _LITERAL, _SPECIAL, _COMMENT, _BROKEN = range(6)
_ADDRESS_SPECIALS = frozenset(b"<>@,;:")
_ATOM_STOP = frozenset(b'<>@,;:()"[ \t\r\n')


def _address_tokens(v: bytes) -> list[tuple[int, bytes]]:
    tokens: list[tuple[int, bytes]] = []
    n = len(v)
    i = 0
    while i < n:
        c = v[i]
        if c in _LWSP:
            i += 1
        elif c == 0x28:
            i, text = _skip_comment(v, i)
            tokens.append((_COMMENT, text))
            if not _closed(v, i, 0x29):
                tokens.append((_BROKEN, b""))
        elif c == 0x22:
            i, text = _quoted(v, i)
            tokens.append((_QUOTED, text))
            if not _closed(v, i, 0x22):
                tokens.append((_BROKEN, b""))
        elif c == 0x5B:  # [
            j = v.find(b"]", i)
            j = n if j < 0 else j + 1
            tokens.append((_LITERAL, v[i:j]))
            i = j
        elif c in _ADDRESS_SPECIALS:
            tokens.append((_SPECIAL, v[i : i + 1]))
            i += 1
        else:
            j = i + 1
            while j < n and v[j] not in _ATOM_STOP:
                j += 1
            tokens.append((_ATOM, v[i:j]))
            i = j
    return tokens


def _phrase(tokens: list[tuple[int, bytes]]) -> bytes:
    return b" ".join(t for kind, t in tokens if kind in (_ATOM, _QUOTED, _LITERAL))


def _joined(tokens: list[tuple[int, bytes]]) -> bytes:
    return b"".join(t for kind, t in tokens if kind != _COMMENT)


def _domain(token: bytes) -> bytes:
    """A dot-atom domain with an empty label ("lab.") is no domain (as in Dovecot)."""
    if token.startswith(b"[") or b"" not in token.split(b"."):
        return token
    return _MISSING_DOMAIN


def _addr_spec(tokens: list[tuple[int, bytes]]) -> tuple[_Address, bool]:
    """local-part "@" domain (a lone comment is the display name) and whether the list
    may go on after it. As in Dovecot: several words before the "@" are a display name
    without an address, a domain of more than one token or an unterminated comment
    ends the list, and a part that cannot be read is MISSING_MAILBOX / MISSING_DOMAIN."""
    comments = [t for kind, t in tokens if kind == _COMMENT and t.strip()]
    name = comments[-1] if comments else None
    at = next((k for k, t in enumerate(tokens) if t == (_SPECIAL, b"@")), len(tokens))
    local = [t for t in tokens[:at] if t[0] != _COMMENT]
    domain = [t for t in tokens[at + 1 :] if t[0] != _COMMENT]
    if any(kind == _BROKEN for kind, _ in local):
        return (name, None, _MISSING_MAILBOX, _MISSING_DOMAIN), False
    if len(local) > 1:
        return (_phrase(local), None, _MISSING_MAILBOX, _MISSING_DOMAIN), False
    if at == len(tokens) and local and local[0][0] == _QUOTED:
        return (local[0][1], None, _MISSING_MAILBOX, _MISSING_DOMAIN), True
    mailbox = _joined(local) or _MISSING_MAILBOX
    if any(kind == _BROKEN for kind, _ in domain):
        return (name, None, mailbox, _MISSING_DOMAIN), False
    host = _domain(domain[0][1]) if domain else _MISSING_DOMAIN
    return (name, None, mailbox, host), len(domain) <= 1


def _mailbox(tokens: list[tuple[int, bytes]]) -> tuple[_Address, bool]:
    """One mailbox (name-addr or addr-spec) and whether the list may go on after it.

    As in Dovecot: the words at the start are a display name if "<" follows them;
    otherwise the element is an addr-spec (a lone comment is its display name), and
    several words without "@" are a display name without an address."""
    words = [(kind, t) for kind, t in tokens if kind != _COMMENT]
    if not words:
        return (None, None, _MISSING_MAILBOX, _MISSING_DOMAIN), True
    first_special = next((k for k, (kind, _) in enumerate(tokens) if kind == _SPECIAL), -1)
    broken = any(kind == _BROKEN for kind, _ in tokens)
    if first_special < 0 or tokens[first_special][1] != b"<":
        if first_special < 0 and len(words) > 1 and not broken:
            return (_phrase(words), None, _MISSING_MAILBOX, _MISSING_DOMAIN), True
        return _addr_spec(tokens)
    lt = first_special
    name = _phrase(tokens[:lt]) or None
    gt = next((k for k in range(lt + 1, len(tokens)) if tokens[k] == (_SPECIAL, b">")), None)
    inside = tokens[lt + 1 : gt]
    after = [] if gt is None else [t for t in tokens[gt + 1 :] if t[0] != _COMMENT]
    route = None
    if inside and inside[0] == (_SPECIAL, b"@"):
        colon = next((k for k, t in enumerate(inside) if t == (_SPECIAL, b":")), -1)
        if colon >= 0:
            route = _joined(inside[:colon]) or None
            inside = inside[colon + 1 :]
    (_, _, mailbox, host), valid = _addr_spec(inside)
    if gt is None or broken:
        return (name, route, mailbox, _SYNTAX_ERROR), False
    return (name, route, mailbox, host), valid and not after


def _address_list(v: bytes) -> list[_Address]:
    """An address list in ENVELOPE form; group syntax gives (NIL NIL name NIL) ...
    (NIL NIL NIL NIL). An empty element is an address with both parts missing; after a
    syntax error the rest of the list is dropped (Dovecot's recovery)."""
    tokens = _address_tokens(v)
    out: list[_Address] = []
    n = len(tokens)
    comma = (_SPECIAL, b",")
    semicolon = (_SPECIAL, b";")

    def element(i: int, stops: bytes) -> tuple[list[tuple[int, bytes]], int]:
        j = i
        angle = False
        while j < n:
            kind, t = tokens[j]
            if kind == _SPECIAL:
                if t == b"<":
                    angle = True
                elif t == b">":
                    angle = False
                elif not angle and t in stops:
                    break
            j += 1
        return tokens[i:j], j

    i = 0
    while i < n:
        if tokens[i] == semicolon:
            i += 1
            continue
        # group: a phrase followed by ":" (before any of < @ , ;)
        j = i
        while j < n and not (tokens[j][0] == _SPECIAL and tokens[j][1] in b":<@,;"):
            j += 1
        if j < n and tokens[j][1] == b":" and _phrase(tokens[i:j]):
            out.append((None, None, _phrase(tokens[i:j]), None))
            i = j + 1
            while i < n and tokens[i] != semicolon:
                part, i = element(i, b",;")
                if all(kind == _COMMENT for kind, _ in part):
                    # nothing but comments ("group: (foo) ;"): no member, as in Dovecot
                    if i < n and tokens[i] == comma:
                        i += 1
                    continue
                address, valid = _mailbox(part)
                out.append(address)
                if not valid:
                    out.append((None, None, None, None))
                    return out
                if i < n and tokens[i] == comma:
                    i += 1
            i += 1
            out.append((None, None, None, None))
        else:
            part, i = element(i, b",")
            address, valid = _mailbox(part)
            out.append(address)
            if not valid:
                return out
        if i < n:
            if tokens[i] != comma:
                return out  # no comma between two addresses: the rest is dropped
            i += 1
    return out


def _envelope_values(
    e: _Entity,
) -> tuple[dict[bytes, bytes], dict[bytes, list[_Address]]]:
    strings: dict[bytes, bytes] = {}
    addresses: dict[bytes, list[_Address]] = {}
    for name, value, _, _ in e.fields:
        if name in _ENVELOPE_STRINGS:
            strings[name] = value  # the last one wins, as in Dovecot
        elif name in _ENVELOPE_ADDRESSES:
            addresses.setdefault(name, []).extend(_address_list(value))
    return strings, addresses


def _write_addresses(addresses: list[_Address] | None, out: list[bytes]) -> None:
    if not addresses:
        out.append(_NIL)
        return
    out.append(b"(")
    for name, route, mailbox, host in addresses:
        out.append(
            b"(%b %b %b %b)"
            % (
                _NIL if name is None else _for_humans(name),
                _nstring(route),
                _nstring(mailbox),
                _nstring(host),
            )
        )
    out.append(b")")


def _write_envelope(e: _Entity, out: list[bytes]) -> None:
    strings, addresses = _envelope_values(e)
    subject = strings.get(b"subject")
    out.append(b"(")
    out.append(_nstring(strings.get(b"date")))
    out.append(b" ")
    out.append(_NIL if subject is None else _for_humans(subject))
    sender = addresses.get(b"from")
    for name in _ENVELOPE_ADDRESSES:
        out.append(b" ")
        # RFC 3501: an absent or empty Sender / Reply-To is the From
        value = addresses.get(name) or (sender if name in (b"sender", b"reply-to") else None)
        _write_addresses(value, out)
    out.append(b" ")
    out.append(_nstring(strings.get(b"in-reply-to")))
    out.append(b" ")
    out.append(_nstring(strings.get(b"message-id")))
    out.append(b")")
