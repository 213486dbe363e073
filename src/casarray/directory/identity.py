"""Identity parameters, as Exchange takes them: a name, an FQDN (or address), a GUID,
a distinguished name or a legacyExchangeDN, compared case-insensitively.

Lookups go through lower-case key columns with unique indexes; a DN or legacy DN is
matched by its leaf value first and then compared whole, so no derived name is stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from casarray.directory.errors import AmbiguousIdentityError, NotFoundError
from casarray.directory.objects import Names


@dataclass(frozen=True)
class Kind:
    """How one object class is looked up."""

    label: str
    row: Any
    keys: Sequence[str]  # lower-case key columns an identity string may equal
    dn: Callable[[Names, Any], str]
    describe: Callable[[Any], str]
    legacy_dn: Callable[[Names, Any], str] | None = None


def parse_guid(text: str) -> str | None:
    stripped = text.strip()
    if len(stripped) not in (32, 36, 38):
        return None
    try:
        return str(uuid.UUID(stripped))
    except ValueError:
        return None


def first_rdn_value(dn: str) -> str:
    """The value of a DN's first RDN, with escapes undone: 'CN=a\\,b,CN=x' -> 'a,b'."""
    _, _, rest = dn.partition("=")
    out: list[str] = []
    i = 0
    while i < len(rest):
        ch = rest[i]
        if ch == "\\" and i + 1 < len(rest):
            out.append(rest[i + 1])
            i += 2
            continue
        if ch in ",+":
            break
        out.append(ch)
        i += 1
    return "".join(out).strip()


def normalize_dn(dn: str) -> str:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(dn):
        ch = dn[i]
        if ch == "\\" and i + 1 < len(dn):
            current.append(dn[i : i + 2])
            i += 2
            continue
        if ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    normalized = []
    for part in parts:
        attr, _, value = part.partition("=")
        normalized.append(f"{attr.strip().lower()}={value.strip().lower()}")
    return ",".join(normalized)


def looks_like_dn(text: str) -> bool:
    head = text.lstrip()[:3].lower()
    return head in ("cn=", "ou=", "dc=") and "," in text


def _entity(hit: Any) -> Any:
    """The ORM row of a hit (a hit is the row, or a result tuple whose first item is)."""
    return hit if hasattr(hit, "id") and not isinstance(hit, tuple) else hit[0]


def _execute(session: Session, stmt: Any, tuples: bool) -> list[Any]:
    return list(session.execute(stmt)) if tuples else list(session.scalars(stmt))


def _candidates(session: Session, kind: Kind, value: str, stmt: Any, tuples: bool) -> list[Any]:
    key = value.strip().lower()
    conditions = [getattr(kind.row, column) == key for column in kind.keys]
    return _execute(
        session, stmt.where(or_(*conditions) if len(conditions) > 1 else conditions[0]), tuples
    )


def find(
    session: Session, names: Names, kind: Kind, identity: object, stmt: Any = None
) -> list[Any]:
    """Every row the identity matches (zero, one, or several when it is ambiguous).

    With `stmt` (a select whose first column is the kind's row, e.g. joined with the
    names a record needs) the matching result tuples are returned instead, so a lookup
    and the data for its record take one query."""
    tuples = stmt is not None
    if stmt is None:
        stmt = select(kind.row)
    guid = getattr(identity, "guid", None)
    text = str(guid) if guid is not None else str(identity).strip()
    if not text:
        return []
    as_guid = parse_guid(text)
    if as_guid is not None:
        hits = _execute(session, stmt.where(kind.row.guid == as_guid), tuples)
        if hits or guid is not None:
            return hits
    if text.lower().startswith("/o=") and kind.legacy_dn is not None:
        cut = text.lower().rfind("/cn=")
        leaf = text[cut + 4 :] if cut >= 0 else ""
        wanted = text.lower()
        return [
            hit
            for hit in _candidates(session, kind, leaf, stmt, tuples)
            if kind.legacy_dn(names, _entity(hit)).lower() == wanted
        ]
    if looks_like_dn(text):
        wanted = normalize_dn(text)
        return [
            hit
            for hit in _candidates(session, kind, first_rdn_value(text), stmt, tuples)
            if normalize_dn(kind.dn(names, _entity(hit))) == wanted
        ]
    return _candidates(session, kind, text, stmt, tuples)


def resolve(session: Session, names: Names, kind: Kind, identity: object, stmt: Any = None) -> Any:
    """The one row (or result tuple, with `stmt`) the identity names; NotFoundError or
    AmbiguousIdentityError otherwise."""
    hits = find(session, names, kind, identity, stmt)
    if not hits:
        shown = getattr(identity, "name", None) or str(identity)
        raise NotFoundError(kind.label, str(shown))
    unique = {_entity(hit).id: hit for hit in hits}
    if len(unique) > 1:
        raise AmbiguousIdentityError(
            kind.label,
            str(identity),
            (kind.describe(_entity(hit)) for hit in unique.values()),
        )
    return hits[0]
