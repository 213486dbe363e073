"""Mailboxes (users): alias, display name, primary SMTP address, database, password.

A password is stored as an argon2 hash, and beside it, sealed, as the NT hash that
NTLM needs (`directory.nt_hashes`: what that means for security); neither is ever
logged or shown."""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from casarray.directory import identity, quotas, validate
from casarray.directory.base import new_guid, utcnow
from casarray.directory.databases import parse_quotas, row_quotas, set_row_quotas
from casarray.directory.errors import ConflictError, InvalidOperationError, InvalidValueError
from casarray.directory.nt_hashes import NtHashes
from casarray.directory.objects import Mailbox
from casarray.directory.schema import MailboxDatabaseRow, MailboxRow, ServerRow, VerifiedLoginRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory

MAILBOX = identity.Kind(
    label="mailbox",
    row=MailboxRow,
    keys=("alias_key", "smtp_key", "display_name_key"),
    dn=lambda names, row: names.mailbox_dn(row.alias),
    legacy_dn=lambda names, row: names.mailbox_legacy_dn(row.alias),
    describe=lambda row: f"{row.display_name} <{row.primary_smtp_address}>",
)

_COLUMNS = (MailboxRow, MailboxDatabaseRow.name, ServerRow.name)


def _joined(stmt: Any) -> Any:
    return stmt.join(MailboxDatabaseRow, MailboxRow.database_id == MailboxDatabaseRow.id).join(
        ServerRow, MailboxDatabaseRow.server_id == ServerRow.id
    )


_hasher = None
# One argon2id verification at a time per process (64 MiB and about 100 ms of CPU
# each): logins arriving together take turns and finish one after another, as in
# Dovecot's auth process, instead of all sharing the cores and finishing late
# together, starving the sessions already logged in and taking 64 MiB apiece.
_verify_turn = threading.Lock()


def password_hasher() -> Any:
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def hash_password(password: str) -> str:
    if not password:
        raise InvalidValueError("Password", "", "is empty.")
    return password_hasher().hash(password)


def default_alias(display_name: str) -> str:
    """An alias from a display name, as Exchange makes one: ASCII letters and digits
    (accents dropped), dots and hyphens kept, spaces removed."""
    ascii_text = (
        unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode("ascii")
    )
    alias = "".join(ch for ch in ascii_text if ch.isalnum() or ch in "._-").strip(".")
    return alias or display_name


@dataclass(frozen=True)
class MailboxSpec:
    """One mailbox to create in bulk (`MailboxService.new_many`)."""

    alias: str
    display_name: str
    primary_smtp_address: str
    database: str


@dataclass(frozen=True)
class PasswordCheck:
    """What `MailboxService.check_password` found: the mailbox (None: wrong login or
    password) and whether the login had been verified lately (no argon2 check)."""

    mailbox: Mailbox | None
    remembered: bool = False


@dataclass(frozen=True)
class NtCredentials:
    """What NTLM checks a login against (`MailboxService.nt_credentials`): the mailbox
    and its password's NT hash, None when none is stored (a password set before NT
    hashes were kept). Password-equivalent for NTLM: never log it."""

    mailbox: Mailbox
    nt_hash: bytes | None = field(repr=False)


class MailboxService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory
        self.nt_hashes = NtHashes(directory)

    def _record(self, row: MailboxRow, database: str, server: str) -> Mailbox:
        names = self.dir.names
        return Mailbox(
            guid=row.guid,
            alias=row.alias,
            display_name=row.display_name,
            primary_smtp_address=row.primary_smtp_address,
            database=database,
            server=server,
            exchange_legacy_dn=names.mailbox_legacy_dn(row.alias),
            distinguished_name=names.mailbox_dn(row.alias),
            when_created=row.when_created,
            use_database_quota_defaults=row.use_database_quota_defaults,
            quotas=row_quotas(row),
        )

    def resolve_row(self, session: Session, mailbox: object) -> MailboxRow:
        return identity.resolve(session, self.dir.names, MAILBOX, mailbox)

    def _check_unique(self, session: Session, alias: str, smtp: str, exclude: int | None) -> None:
        stmt = select(MailboxRow).where(
            or_(MailboxRow.alias_key == alias.lower(), MailboxRow.smtp_key == smtp.lower())
        )
        if exclude is not None:
            stmt = stmt.where(MailboxRow.id != exclude)
        clash = session.scalars(stmt).first()
        if clash is not None:
            what = "alias" if clash.alias_key == alias.lower() else "e-mail address"
            raise ConflictError(
                f"The {what} is already used by mailbox '{clash.alias}' "
                f"({clash.primary_smtp_address}).",
                conflicting=clash.primary_smtp_address,
                target=smtp,
            )

    def _pick_database(self, session: Session) -> MailboxDatabaseRow:
        """Automatic mailbox distribution: the mounted database with fewest mailboxes."""
        counts = (
            select(MailboxRow.database_id, func.count().label("n"))
            .group_by(MailboxRow.database_id)
            .subquery()
        )
        row = session.scalars(
            select(MailboxDatabaseRow)
            .outerjoin(counts, counts.c.database_id == MailboxDatabaseRow.id)
            .where(MailboxDatabaseRow.mounted.is_(True))
            .order_by(func.coalesce(counts.c.n, 0), MailboxDatabaseRow.name_key)
        ).first()
        if row is None:
            raise InvalidOperationError(
                "No mounted mailbox database is available for automatic mailbox distribution. "
                "Pass -Database or mount a database (Mount-Database)."
            )
        return row

    def new(
        self,
        *,
        name: str,
        primary_smtp_address: str | None = None,
        alias: str | None = None,
        database: object | None = None,
        password: str | None = None,
        password_hash: str | None = None,
    ) -> Mailbox:
        """New-Mailbox. `name` is the display name; alias defaults to the address's
        local part, the address to alias@default-domain. `password_hash` (an argon2
        hash made beforehand) without `password` makes a mailbox with no NT hash: it
        can't log in with NTLM until its password is set."""

        display = validate.display_name("Name", name, 256)
        if alias is None:
            if primary_smtp_address:
                alias = validate.smtp_address("PrimarySmtpAddress", primary_smtp_address)[1]
            else:
                alias = default_alias(display)
        alias = validate.alias("Alias", alias)
        if primary_smtp_address is None:
            primary_smtp_address = f"{alias}@{self.dir.organization().default_domain}"
        smtp, _, domain = validate.smtp_address("PrimarySmtpAddress", primary_smtp_address)
        self.dir.accepted_domain(domain, "PrimarySmtpAddress")
        if password_hash is None:
            if password is None:
                raise InvalidValueError("Password", "", "is required for a new mailbox.")
            with self.dir.store.read() as session:  # refuse a clash before the costly hash
                self._check_unique(session, alias, smtp, None)
            password_hash = hash_password(password)
        with self.dir.store.write() as session:
            if database is None:
                db_row = self._pick_database(session)
            else:
                db_row = self.dir.databases.resolve_row(session, database)
            self._check_unique(session, alias, smtp, None)
            guid = new_guid()
            row = MailboxRow(
                guid=guid,
                alias=alias,
                alias_key=alias.lower(),
                display_name=display,
                display_name_key=display.lower(),
                primary_smtp_address=smtp,
                smtp_key=smtp.lower(),
                database_id=db_row.id,
                password_hash=password_hash,
                nt_hash=self.nt_hashes.seal(session, guid, password) if password else None,
                when_created=utcnow(),
            )
            session.add(row)
            session.flush()
            return self._record(row, db_row.name, db_row.server.name)

    def new_many(self, specs: Iterable[MailboxSpec], password_hash: str) -> int:
        """Create many mailboxes in one transaction (an import). Every spec is checked as
        `new` checks it; the first bad one aborts the whole import."""

        org = self.dir.organization()
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        now = utcnow()
        with self.dir.store.write() as session:
            db_ids = {
                key: db_id
                for key, db_id in session.execute(
                    select(MailboxDatabaseRow.name_key, MailboxDatabaseRow.id)
                )
            }
            for spec in specs:
                alias = validate.alias("Alias", spec.alias)
                smtp, _, domain = validate.smtp_address(
                    "PrimarySmtpAddress", spec.primary_smtp_address
                )
                if domain not in org.accepted_domains:
                    self.dir.accepted_domain(domain, "PrimarySmtpAddress")
                display = validate.display_name("Name", spec.display_name, 256)
                db_id = db_ids.get(spec.database.lower())
                if db_id is None:
                    db_id = self.dir.databases.resolve_row(session, spec.database).id
                for key in (alias.lower(), "@" + smtp.lower()):
                    if key in seen:
                        raise ConflictError(
                            f"'{spec.alias}' / '{smtp}' appears twice in the import.",
                            conflicting=smtp,
                            target=smtp,
                        )
                    seen.add(key)
                rows.append(
                    {
                        "guid": new_guid(),
                        "alias": alias,
                        "alias_key": alias.lower(),
                        "display_name": display,
                        "display_name_key": display.lower(),
                        "primary_smtp_address": smtp,
                        "smtp_key": smtp.lower(),
                        "database_id": db_id,
                        "password_hash": password_hash,
                        "when_created": now,
                    }
                )
            keys = [r["alias_key"] for r in rows]
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                smtps = [r["smtp_key"] for r in rows[start : start + 500]]
                clash = session.scalars(
                    select(MailboxRow).where(
                        or_(MailboxRow.alias_key.in_(chunk), MailboxRow.smtp_key.in_(smtps))
                    )
                ).first()
                if clash is not None:
                    raise ConflictError(
                        f"The mailbox '{clash.alias}' ({clash.primary_smtp_address}) already "
                        "exists.",
                        conflicting=clash.primary_smtp_address,
                        target=clash.alias,
                    )
            if rows:
                session.execute(insert(MailboxRow), rows)
        return len(rows)

    def get(
        self,
        mailbox: object | None = None,
        *,
        database: object | None = None,
        server: object | None = None,
        limit: int | None = None,
    ) -> list[Mailbox]:
        with self.dir.store.read() as session:
            stmt = _joined(select(*_COLUMNS)).order_by(MailboxRow.alias_key)
            if mailbox is not None and database is None and server is None:
                hit = identity.resolve(session, self.dir.names, MAILBOX, mailbox, stmt)
                return [self._record(*hit)]
            if mailbox is not None:
                stmt = stmt.where(MailboxRow.id == self.resolve_row(session, mailbox).id)
            if database is not None:
                db_id = self.dir.databases.resolve_row(session, database).id
                stmt = stmt.where(MailboxRow.database_id == db_id)
            if server is not None:
                server_id = self.dir.servers.resolve_row(session, server).id
                stmt = stmt.where(MailboxDatabaseRow.server_id == server_id)
            if limit is not None:
                stmt = stmt.limit(limit)
            return [self._record(*r) for r in session.execute(stmt)]

    def one(self, mailbox: object) -> Mailbox:
        return self.get(mailbox)[0]

    def count(self) -> int:
        with self.dir.store.read() as session:
            return session.scalar(select(func.count()).select_from(MailboxRow)) or 0

    def set(
        self,
        mailbox: object,
        *,
        display_name: str | None = None,
        primary_smtp_address: str | None = None,
        alias: str | None = None,
        password: str | None = None,
        quota_values: Mapping[str, object] | None = None,
        use_database_quota_defaults: bool | None = None,
    ) -> Mailbox:
        """Set-Mailbox (and Set-Mailbox -Password, as a reset). `quota_values`: the
        mailbox's own IssueWarningQuota, ProhibitSendQuota and ProhibitSendReceiveQuota as
        written ("2GB", "Unlimited"); they apply once `use_database_quota_defaults` is
        False."""
        changes = parse_quotas(quota_values)
        new_display = (
            validate.display_name("DisplayName", display_name, 256)
            if display_name is not None
            else None
        )
        new_alias = validate.alias("Alias", alias) if alias is not None else None
        new_smtp = None
        if primary_smtp_address is not None:
            new_smtp, _, domain = validate.smtp_address("PrimarySmtpAddress", primary_smtp_address)
            self.dir.accepted_domain(domain, "PrimarySmtpAddress")
        new_hash = hash_password(password) if password is not None else None
        with self.dir.store.write() as session:
            row = self.resolve_row(session, mailbox)
            self._check_unique(
                session, new_alias or row.alias, new_smtp or row.primary_smtp_address, row.id
            )
            if new_display is not None:
                row.display_name, row.display_name_key = new_display, new_display.lower()
            if new_alias is not None:
                row.alias, row.alias_key = new_alias, new_alias.lower()
            if new_smtp is not None:
                row.primary_smtp_address, row.smtp_key = new_smtp, new_smtp.lower()
            if new_hash is not None and password is not None:
                row.password_hash = new_hash
                row.nt_hash = self.nt_hashes.seal(session, row.guid, password)
                self.dir.verified_logins.forget_mailbox(session, row.guid)
            if changes:
                new_quotas = row_quotas(row).with_parameters(changes)
                quotas.check_order(new_quotas)
                set_row_quotas(row, new_quotas)
            if use_database_quota_defaults is not None:
                row.use_database_quota_defaults = use_database_quota_defaults
            guid = row.guid
        return self.one(guid)

    def remove(self, mailbox: object) -> Mailbox:
        record = self.one(mailbox)
        with self.dir.store.write() as session:
            session.delete(self.resolve_row(session, record.guid))
        return record

    def quota_limits(self, mailbox: object) -> quotas.Quotas:
        """The storage limits that apply to a mailbox (its own or its database's), in
        one query."""
        with self.dir.store.read() as session:
            row = self.resolve_row(session, mailbox)
            database = session.get(MailboxDatabaseRow, row.database_id)
            assert database is not None  # a foreign key
            return quotas.effective(
                row.use_database_quota_defaults, row_quotas(row), row_quotas(database)
            )

    def nt_credentials(self, login: str) -> NtCredentials | None:
        """The mailbox whose address or alias is `login`, with its NT hash opened (for
        NTLM); None if no mailbox has that login."""
        key = login.strip().lower()
        with self.dir.store.read() as session:
            stmt = _joined(select(*_COLUMNS)).where(
                or_(MailboxRow.smtp_key == key, MailboxRow.alias_key == key)
            )
            hit = session.execute(stmt).first()
            if hit is None:
                return None
            row, database, server = hit
            record = self._record(row, database, server)
            sealed = row.nt_hash
        if sealed is None:
            return NtCredentials(record, None)
        return NtCredentials(record, self.nt_hashes.open(record.guid, sealed))

    def authenticate(self, login: str, password: str) -> Mailbox | None:
        """The mailbox whose address, alias or UPN is `login` and whose password is
        `password`; None otherwise (never says which part was wrong)."""
        return self.check_password(login, password).mailbox

    def check_password(self, login: str, password: str) -> PasswordCheck:
        """`authenticate`, also saying whether the login was verified lately: then it is
        found in `verified_logins` (one indexed read, joined with the mailbox, instead of
        argon2's ~100 ms of CPU); a miss checks the hash and remembers a success."""
        from argon2.exceptions import InvalidHashError, VerificationError

        remembered = self.dir.verified_logins
        key = login.strip().lower()
        by_login = or_(MailboxRow.smtp_key == key, MailboxRow.alias_key == key)
        with self.dir.store.read() as session:
            if remembered.ttl > 0:
                stmt = _joined(
                    select(*_COLUMNS, VerifiedLoginRow.password_check, VerifiedLoginRow.expires)
                ).join(VerifiedLoginRow, VerifiedLoginRow.mailbox_guid == MailboxRow.guid)
                stmt = stmt.where(VerifiedLoginRow.key == remembered.digest(login, password))
                hit = session.execute(stmt.where(by_login)).first()
                if hit is not None:
                    row, database, server, check, expires = hit
                    if remembered.valid(check, row.password_hash, expires):
                        return PasswordCheck(self._record(row, database, server), remembered=True)
            row = session.scalars(select(MailboxRow).where(by_login)).first()
            if row is None:
                return PasswordCheck(None)
            stored = row.password_hash
            guid = row.guid
        try:
            with _verify_turn:
                password_hasher().verify(stored, password)
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            return PasswordCheck(None)  # (a lone surrogate can't be any password)
        remembered.remember(login, password, guid, stored)
        return PasswordCheck(self.one(guid))
