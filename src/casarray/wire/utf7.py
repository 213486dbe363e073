"""Modified UTF-7 (RFC 3501 section 5.1.3), the encoding of mailbox names on the wire:
printable ASCII stands for itself except "&", which is "&-"; other characters are
UTF-16 in modified base64 ("," for "/") between "&" and "-"."""

from __future__ import annotations

import base64
import binascii

from casarray.errors import CasarrayError


class Utf7Error(CasarrayError, ValueError):
    """Not valid modified UTF-7."""


def _b64_encode(text: str) -> str:
    raw = text.encode("utf-16-be")
    return base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")


def encode(name: str) -> str:
    """A mailbox name (any Unicode) as modified UTF-7."""
    if name.isascii() and "&" not in name and name.isprintable():
        return name
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if pending:
                out.append("&" + _b64_encode("".join(pending)) + "-")
                pending.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append("&" + _b64_encode("".join(pending)) + "-")
    return "".join(out)


def decode(name: str) -> str:
    """Modified UTF-7 to Unicode; raises Utf7Error for text that is not valid."""
    if "&" not in name:
        if not name.isascii():
            raise Utf7Error("8-bit characters must be encoded as modified UTF-7")
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        ch = name[i]
        if ch != "&":
            if not (0x20 <= ord(ch) <= 0x7E):
                raise Utf7Error("8-bit or control characters must be encoded")
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i + 1)
        if end < 0:
            raise Utf7Error("'&' without a closing '-'")
        chunk = name[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        b64 = chunk.replace(",", "/")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
            text = raw.decode("utf-16-be")
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise Utf7Error(f"bad base64 section '&{chunk}-'") from exc
        out.append(text)
    return "".join(out)
