"""Accepted domains (New-, Get-, Set-, Remove-AcceptedDomain): the domains the
organization takes mail for. Authoritative: its mailboxes are there and mail for an
unknown recipient is refused; InternalRelay: recipients not found here are relayed on
by a send connector. "*.contoso.com" accepts contoso.com and every subdomain of it.

One accepted domain is the default (the domain of new servers' FQDNs and of new
mailboxes' addresses); it can't be removed or be a wildcard domain, and -MakeDefault
moves the mark."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casarray.directory import identity, validate
from casarray.directory.base import new_guid
from casarray.directory.errors import ConflictError, InUseError, InvalidOperationError
from casarray.directory.objects import Names, escape_rdn
from casarray.directory.schema import AcceptedDomainRow, MailboxRow
from casarray.directory.transport.objects import AcceptedDomain, transport_settings_dn
from casarray.directory.transport.values import (
    AUTHORITATIVE,
    DOMAIN_TYPES,
    choice,
    domain_pattern,
    pattern_matches,
    specificity,
)

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def accepted_domain_dn(names: Names, name: str) -> str:
    return f"CN={escape_rdn(name)},CN=Accepted Domains,{transport_settings_dn(names.exchange_dn)}"


ACCEPTED_DOMAIN = identity.Kind(
    label="accepted domain",
    row=AcceptedDomainRow,
    keys=("name_key", "domain"),
    dn=lambda names, row: accepted_domain_dn(names, row.name),
    describe=lambda row: f"{row.name} ({row.domain})",
)


def new_row(
    domain: str, *, name: str | None = None, domain_type: str = AUTHORITATIVE, default: bool = False
) -> AcceptedDomainRow:
    """A row for an accepted domain already checked."""
    shown = name if name is not None else domain[:64]  # a name is at most 64 characters
    return AcceptedDomainRow(
        guid=new_guid(),
        name=shown,
        name_key=shown.lower(),
        domain=domain,
        domain_type=domain_type,
        is_default=default,
    )


class AcceptedDomainService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def record(self, row: AcceptedDomainRow) -> AcceptedDomain:
        return AcceptedDomain(
            name=row.name,
            domain_name=row.domain,
            domain_type=row.domain_type,
            default=bool(row.is_default),
            guid=row.guid,
            distinguished_name=accepted_domain_dn(self.dir.names, row.name),
        )

    def resolve_row(self, session: Session, domain: object) -> AcceptedDomainRow:
        return identity.resolve(session, self.dir.names, ACCEPTED_DOMAIN, domain)

    def get(self) -> list[AcceptedDomain]:
        """Every accepted domain, oldest first."""
        with self.dir.store.read() as session:
            rows = session.scalars(select(AcceptedDomainRow).order_by(AcceptedDomainRow.id))
            return [self.record(row) for row in rows]

    def one(self, domain: object) -> AcceptedDomain:
        """The accepted domain named by its name, domain name or GUID."""
        with self.dir.store.read() as session:
            return self.record(self.resolve_row(session, domain))

    def new(
        self,
        name: str,
        domain_name: str,
        domain_type: str = AUTHORITATIVE,
        make_default: bool = False,
    ) -> AcceptedDomain:
        """New-AcceptedDomain."""
        name = validate.display_name("Name", name)
        domain = domain_pattern("DomainName", domain_name)
        kind = choice("DomainType", domain_type, DOMAIN_TYPES)
        if make_default:
            _check_can_be_default(domain)
        with self.dir.store.write() as session:
            for row in session.scalars(select(AcceptedDomainRow)):
                if row.name_key == name.lower():
                    raise ConflictError(
                        f"The accepted domain '{row.name}' ({row.domain}) already has the name "
                        f"'{name}'.",
                        conflicting=row.name,
                        target=name,
                    )
                if row.domain == domain:
                    raise ConflictError(
                        f"The domain {domain} is already the accepted domain '{row.name}'.",
                        conflicting=row.name,
                        target=domain,
                    )
            if make_default:
                for row in session.scalars(select(AcceptedDomainRow)):
                    row.is_default = False
            row = new_row(domain, name=name, domain_type=kind, default=bool(make_default))
            session.add(row)
            session.flush()
            return self.record(row)

    def set(self, domain: object, **changes: Any) -> AcceptedDomain:
        """Set-AcceptedDomain: `name`, `domain_type`, `make_default` (True moves the
        default mark here; False changes nothing, as the switch left out)."""
        unknown = set(changes) - {"name", "domain_type", "make_default"}
        if unknown:
            raise TypeError(f"Set-AcceptedDomain has no setting {', '.join(sorted(unknown))}")
        name = changes.get("name")
        if name is not None:
            name = validate.display_name("Name", name)
        kind = changes.get("domain_type")
        if kind is not None:
            kind = choice("DomainType", kind, DOMAIN_TYPES)
        with self.dir.store.write() as session:
            row = self.resolve_row(session, domain)
            if name is not None and name.lower() != row.name_key:
                clash = session.scalars(
                    select(AcceptedDomainRow).where(AcceptedDomainRow.name_key == name.lower())
                ).first()
                if clash is not None:
                    raise ConflictError(
                        f"The accepted domain '{clash.name}' ({clash.domain}) already has the "
                        f"name '{name}'.",
                        conflicting=clash.name,
                        target=name,
                    )
            if changes.get("make_default") and not row.is_default:
                _check_can_be_default(row.domain)
                for other in session.scalars(select(AcceptedDomainRow)):
                    other.is_default = False
                row.is_default = True
            if name is not None:
                row.name, row.name_key = name, name.lower()
            if kind is not None:
                row.domain_type = kind
            session.flush()
            return self.record(row)

    def remove(self, domain: object) -> AcceptedDomain:
        """Remove-AcceptedDomain: refused for the default domain and while mailboxes have
        addresses in it."""
        with self.dir.store.write() as session:
            row = self.resolve_row(session, domain)
            if row.is_default:
                raise InvalidOperationError(
                    f"The accepted domain '{row.name}' ({row.domain}) is the default accepted "
                    "domain and can't be removed. Make another domain the default first "
                    "(Set-AcceptedDomain <name> -MakeDefault).",
                    target=row.name,
                )
            if not row.domain.startswith("*."):
                users = list(
                    session.scalars(
                        select(MailboxRow.primary_smtp_address)
                        .where(MailboxRow.smtp_key.like(f"%@{row.domain}"))
                        .order_by(MailboxRow.smtp_key)
                        .limit(10)
                    )
                )
                if users:
                    count = session.scalars(
                        select(func.count())
                        .select_from(MailboxRow)
                        .where(MailboxRow.smtp_key.like(f"%@{row.domain}"))
                    ).one()
                    raise InUseError(
                        f"The accepted domain '{row.name}' ({row.domain}) is the domain of "
                        f"{count} mailbox address(es) ({', '.join(users)}). Give them addresses "
                        "in another accepted domain first.",
                        dependents=users,
                        target=row.name,
                    )
            record = self.record(row)
            session.delete(row)
            return record

    def accepted(self, domain: str) -> AcceptedDomain | None:
        """The accepted domain mail for `domain` belongs to (any case): the domain
        itself, else the most specific wildcard domain covering it; None if none."""
        wanted = str(domain).strip().lower().rstrip(".")
        if not wanted:
            return None
        best: AcceptedDomainRow | None = None
        with self.dir.store.read() as session:
            for row in session.scalars(select(AcceptedDomainRow).order_by(AcceptedDomainRow.id)):
                if not pattern_matches(row.domain, wanted):
                    continue
                if best is None or specificity(row.domain) > specificity(best.domain):
                    best = row
            return self.record(best) if best is not None else None


def _check_can_be_default(domain: str) -> None:
    if domain.startswith("*."):
        raise InvalidOperationError(
            f"The wildcard domain {domain} can't be the default accepted domain: the default "
            "names new servers and addresses, so it must be one domain.",
            target=domain,
        )
