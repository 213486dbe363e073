"""MIME header values as sent (RFC 2045, 2231, 5322): comments, quoted strings,
tokens, and `;`-separated parameters with RFC 2231 continuations merged.

The lexical layer under the rest of the package: the splitter (`structure`) reads
Content-Type with it, the IMAP writer (`serialisation`) Content-Disposition and
Content-Language, the reader view (`reader`) the same parameters for people. Nothing
here decodes: values stay the bytes that were sent.
"""

from __future__ import annotations

_NL = 10
_CR = 13

_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?= \t\r\n')
_LWSP = frozenset(b" \t\r\n")


def _skip_cfws(v: bytes, i: int) -> int:
    n = len(v)
    while i < n:
        c = v[i]
        if c in _LWSP:
            i += 1
        elif c == 0x28:  # (
            i = _skip_comment(v, i)[0]
        else:
            break
    return i


def _skip_comment(v: bytes, i: int) -> tuple[int, bytes]:
    """Skips the comment at v[i] == "("; returns the position after it and its text
    (backslash escapes removed)."""
    n = len(v)
    depth = 0
    out = bytearray()
    while i < n:
        c = v[i]
        if c == 0x5C and i + 1 < n:  # backslash
            out.append(v[i + 1])
            i += 2
            continue
        if c == 0x28:
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1, bytes(out)
            out.append(c)
        else:
            out.append(c)
        i += 1
    return n, bytes(out)


def _quoted(v: bytes, i: int) -> tuple[int, bytes]:
    """The quoted string at v[i] == '"': position after it and its unescaped text."""
    n = len(v)
    i += 1
    out = bytearray()
    while i < n:
        c = v[i]
        if c == 0x5C and i + 1 < n:
            out.append(v[i + 1])
            i += 2
            continue
        if c == 0x22:
            return i + 1, bytes(out)
        if c != _CR and c != _NL:
            out.append(c)
        i += 1
    return n, bytes(out)


def _closed(v: bytes, end: int, closer: int) -> bool:
    """Whether the comment or quoted string that `_skip_comment` / `_quoted` ended at
    `end` was terminated (by an unescaped `closer`)."""
    if end < len(v):
        return True
    if not v or v[-1] != closer:
        return False
    backslashes = len(v) - 1 - len(v[:-1].rstrip(b"\\"))
    return backslashes % 2 == 0


def _token(v: bytes, i: int) -> tuple[int, bytes]:
    n = len(v)
    j = i
    while j < n and v[j] not in _TSPECIALS and v[j] >= 0x20 and v[j] != 0x7F:
        j += 1
    return j, v[i:j]


def _token_value(v: bytes) -> bytes:
    """The value's one token (surrounded by CFWS only), else b""."""
    i, token = _token(v, _skip_cfws(v, 0))
    return token if _skip_cfws(v, i) >= len(v) else b""


def _parse_params(v: bytes, i: int) -> list[tuple[bytes, bytes]]:
    """`;`-separated parameters from v[i:], RFC 2231 continuations merged."""
    plain: list[tuple[bytes, bytes]] = []
    sections: list[tuple[bytes, int, bool, bytes]] = []
    n = len(v)
    while i < n:
        # One `; key = value`; on broken input skip one character and try again
        # (so the parameter after a broken one is lost, as in Dovecot).
        if v[i] != 0x3B:  # ;
            i += 1
            continue
        j = _skip_cfws(v, i + 1)
        j, key = _token(v, j)
        j = _skip_cfws(v, j)
        if j >= n or v[j] != 0x3D:  # =
            i = j + 1
            continue
        j = _skip_cfws(v, j + 1)
        if j < n and v[j] == 0x22:
            j, value = _quoted(v, j)
        elif j < n and v[j] == 0x3D:
            # name==?utf-8?b?...?= from broken mailers: take up to blank or ";"
            k = j
            while k < n and v[k] not in b"; \t\r\n":
                k += 1
            j, value = k, v[j:k]
        else:
            j, value = _token(v, j)
        i = _skip_cfws(v, j)
        star = key.find(b"*")
        if star < 0:
            plain.append((key, value))
            continue
        rest = key[star + 1 :]
        extended = not rest or rest.endswith(b"*")  # "name*" is one extended section
        digits = rest[:-1] if rest.endswith(b"*") else rest
        if digits and not digits.isdigit():
            plain.append((key, value))
            continue
        index = int(digits[:9]) if digits else 0
        sections.append((key[:star], index, extended, value))
    if not sections:
        return plain
    sections.sort(key=lambda s: (s[0].lower(), s[1]))
    out = plain
    i = 0
    while i < len(sections):
        name = sections[i][0].lower()
        j = i
        while j < len(sections) and sections[j][0].lower() == name:
            j += 1
        group = sections[i:j]
        if any(s[1] != k for k, s in enumerate(group)):
            # missing sections: these are not RFC 2231 continuations after all
            for key, index, extended, value in group:
                suffix = b"*%d*" % index if extended else b"*%d" % index
                out.append((key + suffix, value))
        else:
            have_extended = any(s[2] for s in group)
            joined = bytearray()
            if have_extended and not group[0][2]:
                joined += b"''"
            for _, _, extended, piece in group:
                joined += piece.replace(b"%", b"%25") if have_extended and not extended else piece
            out.append((group[0][0] + (b"*" if have_extended else b""), bytes(joined)))
        i = j
    return out


def _param(params: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in params:
        if key.lower() == name:
            return value
    return None
