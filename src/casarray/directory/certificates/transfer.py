"""What enters and leaves a server's store: Import-ExchangeCertificate (PEM, DER,
PKCS #7 or PKCS #12 data: a certificate with its key, or one that completes a pending
request, matched by its public key: same key, new thumbprint; a certificate with no
key and no pending request is refused, a server can't use it), Export-ExchangeCertificate
(a password-protected PKCS #12 file, only for a key made exportable; a pending request's
PKCS#10 request) and Remove-ExchangeCertificate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from casarray.directory import validate
from casarray.directory.base import utcnow
from casarray.directory.certificates.objects import (
    CertificateChange,
    ExchangeCertificate,
    ExportedCertificate,
)
from casarray.directory.certificates.reading import (
    certificate_record,
    find,
    resolve_server,
    server_by_id,
)
from casarray.directory.certificates.requests import certificate_row, check_new_thumbprint
from casarray.directory.certificates.sealing import PrivateKeys
from casarray.directory.certificates.values import (
    DEFAULT_FRIENDLY_NAME,
    NONE,
    NOT_EXPORTABLE,
    PENDING,
)
from casarray.directory.errors import InvalidOperationError, InvalidValueError
from casarray.directory.schema import ExchangeCertificateRow
from casarray.pki import certificates as certs
from casarray.pki import formats, keys, trust
from casarray.pki import names as pki_names

if TYPE_CHECKING:
    from casarray.directory.service import Directory


class TransferService:
    def __init__(self, directory: Directory, private_keys: PrivateKeys) -> None:
        self.dir = directory
        self.private_keys = private_keys

    def import_certificate(
        self,
        data: bytes,
        server: object | None = None,
        *,
        password: str | None = None,
        private_key_exportable: bool | None = None,
        friendly_name: str | None = None,
    ) -> CertificateChange:
        """Import-ExchangeCertificate: a certificate with its key, or one that
        completes a pending request (of `server`, or of the one server that has a
        request for its key)."""
        if friendly_name is not None:
            friendly_name = validate.display_name("FriendlyName", friendly_name)
        chain = formats.chain_of(formats.read_bundle(data, password))
        leaf = chain.leaf
        kid = keys.key_id(leaf.public_key())
        thumb = certs.thumbprint(leaf)
        verdict = trust.verdict(leaf, chain.intermediates, home=self.private_keys.home)
        key_pem = keys.private_pem(chain.key) if chain.key is not None else None
        now = utcnow()
        with self.dir.store.write() as session:
            server_row = (
                self.dir.servers.resolve_row(session, server) if server is not None else None
            )
            stmt = select(ExchangeCertificateRow).where(
                ExchangeCertificateRow.key_id == kid, ExchangeCertificateRow.status == PENDING
            )
            if server_row is not None:
                stmt = stmt.where(ExchangeCertificateRow.server_id == server_row.id)
            pending = list(session.scalars(stmt.order_by(ExchangeCertificateRow.id)))
            if server_row is None:
                pending_servers = {p.server_id for p in pending}
                if len(pending_servers) > 1:
                    raise InvalidOperationError(
                        f"The certificate {thumb} completes pending requests on several "
                        "servers: name one with -Server.",
                        target=thumb,
                    )
                if pending:
                    server_row = server_by_id(session, pending[0].server_id)
                elif key_pem is not None:
                    server_row = resolve_server(self.dir, session, None)
            if not pending and key_pem is None:
                where = f" of server '{server_row.name}'" if server_row is not None else ""
                raise InvalidOperationError(
                    f"The certificate {thumb} ({pki_names.subject_text(leaf.subject)}) has no "
                    f"private key and completes no pending request{where}. Import it with its "
                    "key (a PKCS #12 file and -Password), or on the server whose "
                    "New-ExchangeCertificate -GenerateRequest made its request.",
                    target=thumb,
                )
            assert server_row is not None
            check_new_thumbprint(session, server_row, thumb)
            row = pending[0] if pending else None
            if row is None:
                assert key_pem is not None
                row = ExchangeCertificateRow(
                    server_id=server_row.id,
                    key_id=kid,
                    private_key=self.private_keys.seal(session, key_pem, kid),
                    private_key_exportable=bool(private_key_exportable),
                    services=NONE,
                    when_created=now,
                )
                session.add(row)
                name = friendly_name or chain.friendly_name or DEFAULT_FRIENDLY_NAME
            else:
                if private_key_exportable is not None:
                    row.private_key_exportable = bool(private_key_exportable)
                name = friendly_name or row.friendly_name
            certificate_row(row, chain, verdict, name[:64], now)
            session.flush()
            record = certificate_record(row, server_row, now)
        return CertificateChange(record, completed_request=bool(pending))

    def export(
        self, identity: object, server: object | None = None, password: str | None = None
    ) -> ExportedCertificate:
        """Export-ExchangeCertificate: PKCS #12 protected by `password` (only for an
        exportable key), or a pending request's PKCS#10 request."""
        with self.dir.store.read() as session:
            row, server_row = find(self.dir, session, identity, server)
            record = certificate_record(row, server_row)
            if row.status == PENDING:
                return ExportedCertificate(record, (row.request_pem or "").encode(), True)
            if row.private_key is None or not row.private_key_exportable:
                raise InvalidOperationError(NOT_EXPORTABLE, target=row.thumbprint)
            if not password:
                raise InvalidValueError(
                    "Password",
                    "",
                    "is missing: the PKCS #12 file holds the private key and must be "
                    "protected by a password.",
                )
            key = keys.load_private_pem(self.private_keys.vault.open(row.private_key, row.key_id))
            chain = certs.load_pem_chain((row.certificate_pem or "").encode())
        data = formats.to_pkcs12(record.friendly_name, key, chain[0], tuple(chain[1:]), password)
        return ExportedCertificate(record, data, False)

    def remove(self, identity: object, server: object | None = None) -> ExchangeCertificate:
        """Remove-ExchangeCertificate: the certificate (or pending request) and its key
        leave the server's store; returns what was removed."""
        now = utcnow()
        with self.dir.store.write() as session:
            row, server_row = find(self.dir, session, identity, server)
            record = certificate_record(row, server_row, now)
            session.delete(row)
        return record
