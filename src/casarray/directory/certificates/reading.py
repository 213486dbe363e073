"""What every certificate service reads: a certificate's record, the server a cmdlet
works on (by default the organization's only Client Access server), and the
certificate an identity (a thumbprint or SERVER\\THUMBPRINT) names; and
Get-ExchangeCertificate itself."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.base import utcnow
from casarray.directory.certificates.objects import ExchangeCertificate
from casarray.directory.certificates.values import (
    ServerRequiredError,
    current_status,
    parse_domain_names,
    parse_identity,
    stored_services,
)
from casarray.directory.errors import InvalidOperationError, InvalidValueError, NotFoundError
from casarray.directory.schema import ExchangeCertificateRow, ServerRow
from casarray.pki import names as pki_names

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def certificate_record(
    row: ExchangeCertificateRow, server: ServerRow, now: dt.datetime | None = None
) -> ExchangeCertificate:
    return ExchangeCertificate(
        server=server.name,
        server_fqdn=server.fqdn,
        thumbprint=row.thumbprint,
        friendly_name=row.friendly_name,
        subject=row.subject,
        issuer=row.issuer,
        certificate_domains=tuple(n for n in row.domains.split("\n") if n),
        serial_number=row.serial_number,
        not_before=row.not_before,
        not_after=row.not_after,
        status=current_status(row, now or utcnow()),
        root_ca_type=row.root_ca_type,
        services=stored_services(row.services),
        is_self_signed=row.is_self_signed,
        has_private_key=row.private_key is not None,
        private_key_exportable=row.private_key_exportable,
        public_key_size=row.public_key_size,
        when_created=row.when_created,
        when_changed=row.when_changed,
    )


def default_server(session: Session) -> ServerRow:
    """The server a certificate cmdlet works on without -Server: the
    organization's only Client Access server."""
    rows = list(
        session.scalars(
            select(ServerRow)
            .where(ServerRow.client_access.is_(True))
            .order_by(ServerRow.install_order)
        )
    )
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise ServerRequiredError(
            "The organization has no Client Access server: name the server with -Server."
        )
    listed = ", ".join(r.name for r in rows)
    raise ServerRequiredError(
        f"Name the server with -Server: the organization has {len(rows)} Client Access "
        f"servers ({listed}), so there is no default one."
    )


def resolve_server(directory: Directory, session: Session, server: object | None) -> ServerRow:
    if server is None:
        return default_server(session)
    return directory.servers.resolve_row(session, server)


def server_by_id(session: Session, server_id: int) -> ServerRow:
    row = session.get(ServerRow, server_id)
    if row is None:  # removed meanwhile
        raise NotFoundError("server", str(server_id))
    return row


def find(
    directory: Directory, session: Session, identity: object, server: object | None
) -> tuple[ExchangeCertificateRow, ServerRow]:
    """The certificate `identity` (a thumbprint or SERVER\\THUMBPRINT) names, on
    `server` or, when no server is named, on the one server that has it."""
    named, thumb = parse_identity(identity)
    if named is not None:
        if server is not None:
            given = directory.servers.resolve_row(session, server)
            if directory.servers.resolve_row(session, named).id != given.id:
                raise InvalidValueError(
                    "Server", server, f"is not the server of the identity '{identity}'."
                )
        server = named
    stmt = (
        select(ExchangeCertificateRow, ServerRow)
        .join(ServerRow, ExchangeCertificateRow.server_id == ServerRow.id)
        .where(ExchangeCertificateRow.thumbprint == thumb)
        .order_by(ServerRow.install_order)
    )
    if server is not None:
        row = directory.servers.resolve_row(session, server)
        stmt = stmt.where(ExchangeCertificateRow.server_id == row.id)
        where = f" on server '{row.name}'"
    else:
        where = ""
    hits = [(row, holder) for row, holder in session.execute(stmt)]
    if not hits:
        raise NotFoundError("certificate", f"{thumb}{where}")
    if len(hits) > 1:
        listed = ", ".join(s.name for _, s in hits)
        raise InvalidOperationError(
            f"The certificate {thumb} is on several servers ({listed}): name one with -Server.",
            target=thumb,
        )
    return hits[0]


class QueryService:
    def __init__(self, directory: Directory) -> None:
        self.dir = directory

    def get(
        self,
        server: object | None = None,
        thumbprint: object | None = None,
        domain_name: str | None = None,
    ) -> list[ExchangeCertificate]:
        """Certificates and pending requests: of `server`, or of every server; by
        thumbprint or SERVER\\THUMBPRINT identity; covering `domain_name`."""
        now = utcnow()
        with self.dir.store.read() as session:
            if thumbprint is not None:
                hits = [find(self.dir, session, thumbprint, server)]
            else:
                stmt = (
                    select(ExchangeCertificateRow, ServerRow)
                    .join(ServerRow, ExchangeCertificateRow.server_id == ServerRow.id)
                    .order_by(ServerRow.install_order, ExchangeCertificateRow.id)
                )
                if server is not None:
                    row = self.dir.servers.resolve_row(session, server)
                    stmt = stmt.where(ExchangeCertificateRow.server_id == row.id)
                hits = [(row, holder) for row, holder in session.execute(stmt)]
            records = [certificate_record(row, server_row, now) for row, server_row in hits]
        if domain_name is not None:
            wanted = parse_domain_names("DomainName", [domain_name])
            records = [
                r
                for r in records
                if all(pki_names.covers(r.certificate_domains, n) for n in wanted)
            ]
        return records

    def one(self, identity: object, server: object | None = None) -> ExchangeCertificate:
        return self.get(server, identity)[0]
