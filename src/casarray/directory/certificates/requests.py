"""Making certificates (New-ExchangeCertificate): a key and a PKCS#10 request waiting
in the server's store (-GenerateRequest), or a self-signed certificate. The request's
subject alternative names are every -DomainName (and the -Include... names) with the
subject's CN added; a self-signed certificate is CN=<server name> for the server's name
and FQDN unless told otherwise, enabled for IMAP, POP and SMTP by default."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from casarray.directory import validate
from casarray.directory.base import utcnow
from casarray.directory.certificates.objects import CertificateChange, CertificateRequest
from casarray.directory.certificates.reading import certificate_record, resolve_server, server_by_id
from casarray.directory.certificates.sealing import PrivateKeys
from casarray.directory.certificates.services import add_services
from casarray.directory.certificates.values import (
    DEFAULT_FRIENDLY_NAME,
    NONE,
    PENDING,
    SELF_SIGNED_SERVICES,
    VALID,
    parse_domain_names,
    parse_services,
)
from casarray.directory.errors import ConflictError, InvalidValueError
from casarray.directory.schema import ExchangeCertificateRow, ServerRow
from casarray.pki import certificates as certs
from casarray.pki import formats, keys, trust
from casarray.pki import names as pki_names

if TYPE_CHECKING:
    from casarray.directory.service import Directory


def _subject(value: str) -> x509.Name:
    try:
        return pki_names.parse_subject(value)
    except ValueError as exc:
        raise InvalidValueError("SubjectName", value, str(exc)) from None


def _key_size(value: int) -> int:
    if value not in keys.KEY_SIZES:
        raise InvalidValueError(
            "KeySize",
            value,
            f"is not a supported RSA key size: use {', '.join(map(str, keys.KEY_SIZES))}.",
        )
    return value


def certificate_row(
    row: ExchangeCertificateRow,
    chain: formats.Chain,
    verdict: trust.Verdict,
    friendly_name: str,
    now: dt.datetime,
) -> ExchangeCertificateRow:
    """`row` filled in from the certificate `chain` brings (a new one, or the pending
    request it completes: same key, new thumbprint)."""
    leaf = chain.leaf
    row.thumbprint = certs.thumbprint(leaf)
    row.friendly_name = friendly_name
    row.subject = pki_names.subject_text(leaf.subject)
    row.issuer = pki_names.subject_text(leaf.issuer)
    row.domains = "\n".join(certs.domains(leaf))
    row.serial_number = certs.serial_text(leaf)
    row.not_before = leaf.not_valid_before_utc
    row.not_after = leaf.not_valid_after_utc
    row.status = verdict.status
    row.root_ca_type = verdict.root_ca_type
    row.is_self_signed = certs.is_self_signed(leaf)
    row.public_key_size = keys.key_size(leaf.public_key())
    row.certificate_pem = chain.pem().decode()
    row.request_pem = None
    row.when_changed = now
    return row


def check_new_thumbprint(session: Session, server: ServerRow, thumb: str) -> None:
    """Refuse a thumbprint the server's store already has."""
    clash = session.scalar(
        select(ExchangeCertificateRow.id).where(
            ExchangeCertificateRow.server_id == server.id,
            ExchangeCertificateRow.thumbprint == thumb,
        )
    )
    if clash is not None:
        raise ConflictError(
            f"The certificate with thumbprint {thumb} is already in the store of "
            f"server '{server.name}'.",
            conflicting=f"{server.name}\\{thumb}",
            target=thumb,
        )


class RequestService:
    def __init__(self, directory: Directory, private_keys: PrivateKeys) -> None:
        self.dir = directory
        self.private_keys = private_keys

    def _names(
        self,
        server: ServerRow,
        domain_names: Iterable[str],
        *,
        include_accepted_domains: bool = False,
        include_autodiscover: bool = False,
        include_server_fqdn: bool = False,
        include_server_netbios_name: bool = False,
    ) -> list[str]:
        names = parse_domain_names("DomainName", domain_names)
        org = self.dir.organization()
        extra: list[str] = []
        if include_server_fqdn:
            extra.append(server.fqdn.lower())
        if include_server_netbios_name:
            extra.append(server.name.lower())
        if include_accepted_domains:
            extra.extend(org.accepted_domains)
        if include_autodiscover:
            extra.extend(f"autodiscover.{d}" for d in org.accepted_domains)
        return pki_names.unique(names + extra)

    def _plan(
        self,
        server: object | None,
        subject_name: str | None,
        domain_names: Iterable[str],
        key_size: int,
        friendly_name: str | None,
        includes: dict[str, bool],
    ) -> tuple[int, x509.Name, list[str], str]:
        """(server id, subject, names, friendly name) checked before a key is made."""
        _key_size(key_size)
        name = validate.display_name("FriendlyName", friendly_name or DEFAULT_FRIENDLY_NAME)
        with self.dir.store.read() as session:
            row = resolve_server(self.dir, session, server)
            names = self._names(row, domain_names, **includes)
            subject = (
                _subject(subject_name)
                if subject_name
                else x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, row.name)])
            )
            return row.id, subject, names, name

    def new_request(
        self,
        server: object | None = None,
        *,
        subject_name: str | None = None,
        domain_names: Iterable[str] = (),
        key_size: int = keys.DEFAULT_KEY_SIZE,
        private_key_exportable: bool = False,
        friendly_name: str | None = None,
        **includes: bool,
    ) -> CertificateRequest:
        """New-ExchangeCertificate -GenerateRequest: a key and a PKCS#10 request
        waiting in the server's store (Status PendingRequest)."""
        server_id, subject, names, name = self._plan(
            server, subject_name, domain_names, key_size, friendly_name, includes
        )
        key = keys.generate_rsa(key_size)
        csr = certs.build_request(key, subject, names)
        request_pem = certs.request_pem(csr)
        now = utcnow()
        with self.dir.store.write() as session:
            server_row = server_by_id(session, server_id)
            kid = keys.key_id(key.public_key())
            row = ExchangeCertificateRow(
                server_id=server_row.id,
                thumbprint=certs.request_thumbprint(csr),
                key_id=kid,
                friendly_name=name,
                subject=pki_names.subject_text(subject),
                issuer=pki_names.subject_text(subject),
                domains="\n".join(certs.domains(csr)),
                serial_number="",
                not_before=None,
                not_after=None,
                status=PENDING,
                root_ca_type=trust.UNKNOWN,
                services=NONE,
                is_self_signed=False,
                public_key_size=key_size,
                certificate_pem=None,
                request_pem=request_pem.decode(),
                private_key=self.private_keys.seal(session, keys.private_pem(key), kid),
                private_key_exportable=bool(private_key_exportable),
                when_created=now,
                when_changed=now,
            )
            session.add(row)
            session.flush()
            record = certificate_record(row, server_row, now)
        return CertificateRequest(record, request_pem.decode())

    def new_self_signed(
        self,
        server: object | None = None,
        *,
        subject_name: str | None = None,
        domain_names: Iterable[str] = (),
        key_size: int = keys.DEFAULT_KEY_SIZE,
        private_key_exportable: bool = False,
        friendly_name: str | None = None,
        services: str | Iterable[str] = SELF_SIGNED_SERVICES,
        **includes: bool,
    ) -> CertificateChange:
        """New-ExchangeCertificate: a self-signed certificate (CN=<server name>,
        domains the server's name and FQDN unless given), enabled for `services`."""
        wanted = parse_services(services)
        server_id, subject, names, name = self._plan(
            server, subject_name, domain_names, key_size, friendly_name, includes
        )
        with self.dir.store.read() as session:
            holder = server_by_id(session, server_id)
            if not names and not subject_name:
                names = [holder.name.lower(), holder.fqdn.lower()]
        key = keys.generate_rsa(key_size)
        cert = certs.self_signed(key, subject, names)
        now = utcnow()
        with self.dir.store.write() as session:
            server_row = server_by_id(session, server_id)
            kid = keys.key_id(key.public_key())
            row = certificate_row(
                ExchangeCertificateRow(
                    server_id=server_row.id,
                    key_id=kid,
                    private_key=self.private_keys.seal(session, keys.private_pem(key), kid),
                    private_key_exportable=bool(private_key_exportable),
                    services=NONE,
                    when_created=now,
                ),
                formats.Chain(cert, (), key),
                trust.Verdict(VALID, trust.REGISTRY),
                name,
                now,
            )
            check_new_thumbprint(session, server_row, row.thumbprint)
            session.add(row)
            session.flush()
            taken = add_services(session, row, wanted, now)
            record = certificate_record(row, server_row, now)
        return CertificateChange(record, taken)
