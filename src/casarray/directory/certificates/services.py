"""The services a certificate is enabled for (Enable-ExchangeCertificate), and what
the servers serve. IIS is bound to one certificate per server, as IIS's Default Web
Site is: enabling IIS on one takes it from the one that had it. Pending requests,
certificates without a key, expired or not yet valid ones, and untrusted ones can't be
enabled.

`serving(server, service)` is what a Client Access server's TLS layer reads: the
usable certificates enabled for a service there, with their decrypted keys. Every
change here is a directory write, so it bumps the topology version servers follow."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory.base import utcnow
from casarray.directory.certificates.objects import CertificateChange, ServingCertificate
from casarray.directory.certificates.reading import certificate_record, find
from casarray.directory.certificates.sealing import PrivateKeys
from casarray.directory.certificates.values import (
    DATE_INVALID,
    PENDING,
    SERVICES,
    UNTRUSTED,
    VALID,
    current_status,
    parse_services,
    service_name,
    services_text,
    stored_services,
)
from casarray.directory.errors import InvalidOperationError
from casarray.directory.schema import ExchangeCertificateRow, ServerRow

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def _usable(row: ExchangeCertificateRow, server: ServerRow, now: dt.datetime) -> None:
    """Raise unless `row` may be enabled for services."""
    thumb = row.thumbprint
    status = current_status(row, now)
    if status == PENDING:
        raise InvalidOperationError(
            f"The certificate {thumb} on '{server.name}' is a pending request: complete "
            "it first (Import-ExchangeCertificate with the certificate the CA issued).",
            target=thumb,
        )
    if row.private_key is None:
        raise InvalidOperationError(
            f"The certificate {thumb} on '{server.name}' has no private key, so no "
            "service can use it.",
            target=thumb,
        )
    if status == DATE_INVALID:
        assert row.not_before is not None and row.not_after is not None
        when = (
            f"expired on {row.not_after:%Y-%m-%d %H:%M} UTC"
            if now > row.not_after
            else f"isn't valid before {row.not_before:%Y-%m-%d %H:%M} UTC"
        )
        raise InvalidOperationError(
            f"The certificate {thumb} on '{server.name}' {when}.", target=thumb
        )
    if status == UNTRUSTED:
        raise InvalidOperationError(
            f"The certificate {thumb} on '{server.name}' isn't trusted: its issuer "
            f"({row.issuer}) doesn't chain to the lab CA or a system root. Import it "
            "with its issuing certificates, or have the lab CA issue one "
            "(Get-LabCertificate).",
            target=thumb,
        )


def add_services(
    session: Session,
    row: ExchangeCertificateRow,
    wanted: Sequence[str],
    now: dt.datetime,
) -> tuple[str, ...]:
    """Add `wanted` to the services of `row`; IIS moves here from the server's
    other certificates, whose thumbprints are returned."""
    taken: list[str] = []
    if "IIS" in wanted:
        others = session.scalars(
            select(ExchangeCertificateRow).where(
                ExchangeCertificateRow.server_id == row.server_id,
                ExchangeCertificateRow.id != row.id,
            )
        )
        for other in others:
            had = stored_services(other.services)
            if "IIS" in had:
                other.services = services_text(tuple(s for s in had if s != "IIS"))
                other.when_changed = now
                taken.append(other.thumbprint)
    have = set(stored_services(row.services)) | set(wanted)
    row.services = services_text(tuple(s for s in SERVICES if s in have))
    row.when_changed = now
    return tuple(taken)


def serving_rows(
    session: Session, server: ServerRow, service: str | None, now: dt.datetime
) -> list[ExchangeCertificateRow]:
    """The server's usable certificates (Valid today, with a key), enabled for `service`
    (any when None), newest first."""
    rows = session.scalars(
        select(ExchangeCertificateRow).where(
            ExchangeCertificateRow.server_id == server.id,
            ExchangeCertificateRow.status == VALID,
            ExchangeCertificateRow.private_key.is_not(None),
            ExchangeCertificateRow.certificate_pem.is_not(None),
        )
    )
    usable = [
        row
        for row in rows
        if current_status(row, now) == VALID
        and (service is None or service in stored_services(row.services))
    ]
    usable.sort(key=lambda r: (r.not_before, r.when_created, r.id), reverse=True)
    return usable


class EnableService:
    def __init__(self, directory: Directory, private_keys: PrivateKeys) -> None:
        self.dir = directory
        self.private_keys = private_keys

    def enable(
        self, identity: object, services: str | Iterable[str], server: object | None = None
    ) -> CertificateChange:
        """Enable-ExchangeCertificate: add `services` to the certificate's (see the
        module docstring for IIS and what can't be enabled)."""
        wanted = parse_services(services, allow_none=False)
        now = utcnow()
        with self.dir.store.write() as session:
            row, server_row = find(self.dir, session, identity, server)
            _usable(row, server_row, now)
            taken = add_services(session, row, wanted, now)
            session.flush()
            record = certificate_record(row, server_row, now)
        return CertificateChange(record, taken)

    def serving(self, server: object, service: str) -> list[ServingCertificate]:
        """The valid certificates with a private key enabled for `service` ("IMAP",
        "IIS", "POP", "SMTP") on `server` (name or FQDN), newest first, with their
        decrypted keys."""
        wanted = service_name(service)
        now = utcnow()
        with self.dir.store.read() as session:
            server_row = self.dir.servers.resolve_row(session, server)
            rows = serving_rows(session, server_row, wanted, now)
            found = [
                (r.thumbprint, r.domains, r.certificate_pem, r.private_key, r.key_id, r.not_after)
                for r in rows
            ]
        result = []
        for thumb, domains, pem, sealed, kid, not_after in found:
            assert pem is not None and sealed is not None and not_after is not None
            result.append(
                ServingCertificate(
                    thumbprint=thumb,
                    names=tuple(n for n in domains.split("\n") if n),
                    certificate_pem=pem.encode(),
                    key_pem=self.private_keys.vault.open(sealed, kid),
                    not_after=not_after,
                )
            )
        return result
