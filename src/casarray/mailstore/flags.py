"""Message flags as the store keeps them: the five system flags as bits of one integer
(so "unseen" and "deleted" are indexed-friendly integer tests in SQL) and keywords as
one space-separated text.

System flags are case-insensitive and always come back canonical ("\\seen" is stored
and returned as "\\Seen"). Keywords keep the case they were first set with and compare
case-insensitively (adding "$junk" to a message flagged "$Junk" changes nothing).
"\\Recent" is session state, never stored: it is dropped wherever flags are given.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from casarray.mailstore.interface import SYSTEM_FLAGS, InvalidFlag

SEEN, ANSWERED, FLAGGED, DELETED, DRAFT = 1, 2, 4, 8, 16
_BITS = {"\\seen": SEEN, "\\answered": ANSWERED, "\\flagged": FLAGGED, "\\deleted": DELETED}
_BITS["\\draft"] = DRAFT
_NAMES = tuple(zip((SEEN, ANSWERED, FLAGGED, DELETED, DRAFT), SYSTEM_FLAGS, strict=True))
# RFC 3501 atom-specials (and "]", which resp-specials adds): not allowed in a keyword.
_NOT_IN_ATOM = frozenset('(){ %*"\\]')


def _check_keyword(flag: str) -> None:
    if (
        not flag
        or len(flag) > 256
        or any(ch in _NOT_IN_ATOM or not (" " < ch < "\x7f") for ch in flag)
    ):
        raise InvalidFlag(f"'{flag}' is not a valid flag.")


def parse(flags: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """The system-flag bits and the keywords (deduplicated ignoring case) of `flags`.
    Raises InvalidFlag for an unknown system flag or a malformed keyword."""
    if isinstance(flags, str):
        flags = flags.split()
    bits = 0
    keywords: dict[str, str] = {}
    for flag in flags:
        flag = str(flag)
        lower = flag.lower()
        if lower.startswith("\\"):
            if lower == "\\recent":
                continue
            bit = _BITS.get(lower)
            if bit is None:
                raise InvalidFlag(f"'{flag}' is not a flag the store can set.")
            bits |= bit
            continue
        _check_keyword(flag)
        keywords.setdefault(lower, flag)
    return bits, tuple(keywords.values())


def join_keywords(keywords: Iterable[str]) -> str:
    """The stored text of keywords: space-separated, ordered ignoring case."""
    return " ".join(sorted(keywords, key=str.lower))


def split_keywords(text: str) -> tuple[str, ...]:
    return tuple(text.split()) if text else ()


@lru_cache(maxsize=4096)
@lru_cache(maxsize=4096)
def flag_set(bits: int, keywords: str) -> frozenset[str]:
    """The IMAP flags of a stored (bits, keywords) pair; cached, as most messages of a
    folder share a few combinations."""
    names = [name for bit, name in _NAMES if bits & bit]
    if keywords:
        names.extend(keywords.split())
    return frozenset(names)


def apply(
    mode: str, bits: int, keywords: str, new_bits: int, new_keywords: tuple[str, ...]
) -> tuple[int, str]:
    """A message's (bits, keywords text) after STORE `mode` ("set", "add", "remove")."""
    current = split_keywords(keywords)
    if mode == "set":
        same = {k.lower() for k in new_keywords} == {k.lower() for k in current}
        return new_bits, (keywords if same else join_keywords(new_keywords))
    if mode == "add":
        have = {k.lower() for k in current}
        extra = [k for k in new_keywords if k.lower() not in have]
        return bits | new_bits, (join_keywords((*current, *extra)) if extra else keywords)
    if mode == "remove":
        drop = {k.lower() for k in new_keywords}
        kept = [k for k in current if k.lower() not in drop]
        return bits & ~new_bits, (join_keywords(kept) if len(kept) != len(current) else keywords)
    raise ValueError(f"unknown flag mode {mode!r}: use 'set', 'add' or 'remove'")
