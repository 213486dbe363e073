"""Where a mailbox database keeps its store (`MailboxDatabase.store_location`): a SQLite
file, or a schema of a PostgreSQL database chosen with the libpq option
`options=-csearch_path=NAME`, URL-encoded as
`postgresql+psycopg://user@host/db?options=-csearch_path%3Ddb01`.

The rule for writing and reading a PostgreSQL location lives here, below both the
directory (New-MailboxDatabase's default location) and the mailbox store
(`mailstore.store`, which opens locations and re-exports these functions), so the two
can't drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import quote, unquote_plus

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# What `-csearch_path=NAME` may name unquoted: PostgreSQL folds it to lower case.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([A-Za-z_][A-Za-z0-9_$]*)")
MAX_SCHEMA_LENGTH = 63  # PostgreSQL's NAMEDATALEN - 1
# Schemas a mailbox database must never take: the default one (where the directory's
# own tables are when it is on PostgreSQL) and the system's (`pg_*` are refused).
_RESERVED = frozenset({"public", "information_schema"})


def postgres_location(url: str, schema: str) -> str:
    """A PostgreSQL store location keeping its tables in `schema` of the database at
    `url`: `postgresql+psycopg://host/db` -> `...?options=-csearch_path%3Ddb01`. A
    search_path `url` already sets is replaced; its other options are kept."""
    if not _PLAIN.fullmatch(schema):
        raise ValueError(f"'{schema}' is not a plain PostgreSQL schema name")
    setting = f"-csearch_path={schema}"
    base, _, query = url.partition("?")
    params = query.split("&") if query else []
    for i, param in enumerate(params):
        key, _, value = param.partition("=")
        if key == "options":
            others = _SEARCH_PATH.sub("", unquote_plus(value)).split()
            params[i] = f"options={quote(' '.join([*others, setting]), safe='')}"
            break
    else:
        params.append(f"options={quote(setting, safe='')}")
    return f"{base}?{'&'.join(params)}"


def postgres_schema(url: str) -> str | None:
    """The schema a PostgreSQL location names with `options=-csearch_path=NAME`, as
    PostgreSQL resolves it (an unquoted name is folded to lower case)."""
    try:
        options = make_url(url).query.get("options")
    except ArgumentError:  # not a URL SQLAlchemy reads: no schema named
        return None
    if isinstance(options, tuple):
        options = " ".join(options)
    match = _SEARCH_PATH.search(options or "")
    return match.group(1).lower() if match else None


def schema_for(name: str, taken: Collection[str] = ()) -> str:
    """A plain PostgreSQL schema name for the mailbox database `name`, none of `taken`
    (lower case): lower-cased, every run of characters other than a-z, 0-9 and _
    made one _, "db_" before a name that starts with a digit or would be a reserved
    schema, and _2, _3... after one already taken; at most 63 characters."""
    base = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or "db"
    if base[0].isdigit() or base in _RESERVED or base.startswith("pg_"):
        base = f"db_{base}"
    base = base[:MAX_SCHEMA_LENGTH]
    used = {t.lower() for t in taken} | _RESERVED
    schema, n = base, 1
    while schema in used:
        n += 1
        suffix = f"_{n}"
        schema = f"{base[: MAX_SCHEMA_LENGTH - len(suffix)]}{suffix}"
    return schema


def default_postgres_location(
    directory_url: str, name: str, taken_locations: Collection[str]
) -> str:
    """New-MailboxDatabase's location for database `name` when the directory is on
    PostgreSQL at `directory_url`: a schema of its own in the same database, one that
    no location of `taken_locations` names and that isn't the directory's own."""
    taken = {s for loc in taken_locations if "://" in loc and (s := postgres_schema(loc))}
    if own := postgres_schema(directory_url):
        taken.add(own)
    return postgres_location(directory_url, schema_for(name, taken))
