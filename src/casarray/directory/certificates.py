"""Exchange certificates: each server's certificates and pending requests, the
services each is enabled for, and what the servers serve.

The rules, as Exchange 2010's certificate cmdlets keep them:

- A certificate belongs to one server (`-Server`; by default the organization's only
  Client Access server, else it must be named). A thumbprint is unique per server.
- `new_request` makes a key and a PKCS#10 request whose subject alternative names are
  every -DomainName (and the -Include... names) with the subject's CN added; the
  request waits in the server's store with Status PendingRequest until
  `import_certificate` brings the certificate issued for it (matched by its public
  key), which completes it in place: same key, new thumbprint.
- `new_self_signed` makes a self-signed certificate (subject CN=<server name>, domains
  the server's name and FQDN unless given) enabled for IMAP, POP and SMTP by default.
  Exchange's own self-signed certificates are Valid; see `casarray.pki.trust`.
- `import_certificate` takes PEM, DER, PKCS #7 or PKCS #12 data: a certificate with
  its key, or a certificate that completes a pending request. A certificate with no
  key and no pending request is refused (a server can't use it).
- `enable` adds services (IMAP, POP, IIS, SMTP) to those a certificate has. IIS is
  bound to one certificate per server, as IIS's Default Web Site is: enabling IIS on
  one takes it from the one that had it. Pending requests, certificates without a
  key, expired or not yet valid ones, and untrusted ones can't be enabled.
- Status: PendingRequest, Valid, Untrusted (checked when the certificate arrives,
  `casarray.pki.trust`), and DateInvalid (checked on every read: expired or not yet
  valid). Exchange's Revoked, Invalid and RevocationCheckFailure are not computed (no
  CRLs here).
- Private keys are sealed at rest with the organization's key-encryption key, kept
  outside the database (`casarray.pki.vault`); they leave the directory only for a
  server (`serving`) or as a password-protected PKCS #12 file, and only when the key
  was made exportable (-PrivateKeyExportable $true).

`serving(server, service)` is what a Client Access server's TLS layer reads: the
usable certificates enabled for a service there, with their decrypted keys. Every
change here is a directory write, so it bumps the topology version servers follow.

`test` (Test-ExchangeCertificate) reports the names clients use for each Client
Access server that its enabled certificates do not cover: the site's array FQDN (else
the server's FQDN), the server's FQDN when a database of its site still names it,
autodiscover.<accepted domain> for IIS, and any names the administrator adds (the
public OWA name).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from casarray.directory import validate
from casarray.directory.base import utcnow
from casarray.directory.errors import (
    ConflictError,
    DirectoryError,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.schema import (
    ClientAccessArrayRow,
    ExchangeCertificateRow,
    MailboxDatabaseRow,
    ServerRow,
)
from casarray.pki import certificates as certs
from casarray.pki import formats, keys, trust
from casarray.pki import names as pki_names
from casarray.pki.vault import KeyVault

if TYPE_CHECKING:
    from casarray.directory.service import Directory

# Exchange's AllowedServices, in its order (the order Services is shown in)
SERVICES = ("IMAP", "POP", "IIS", "SMTP")
NONE = "None"
SELF_SIGNED_SERVICES = ("IMAP", "POP", "SMTP")
DEFAULT_FRIENDLY_NAME = "Microsoft Exchange"
TESTED_SERVICES = ("IIS", "IMAP")  # tested even when no certificate is enabled for them

VALID, UNTRUSTED, PENDING, DATE_INVALID = (
    trust.VALID,
    trust.UNTRUSTED,
    trust.PENDING,
    trust.DATE_INVALID,
)
SUCCESS, FAILURE = "Success", "Failure"
NOT_EXPORTABLE = (
    "The private key couldn't be exported as PKCS-12. It either couldn't be accessed or "
    "isn't exportable."
)


class ServerRequiredError(DirectoryError):
    """No -Server was given and there is no one Client Access server to default to."""

    category = "InvalidArgument"


# -- records ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeCertificate:
    """Get-ExchangeCertificate's view of one certificate or pending request."""

    server: str
    server_fqdn: str
    thumbprint: str
    friendly_name: str
    subject: str
    issuer: str
    certificate_domains: tuple[str, ...]
    serial_number: str
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    status: str
    root_ca_type: str
    services: tuple[str, ...]
    is_self_signed: bool
    has_private_key: bool
    private_key_exportable: bool
    public_key_size: int
    when_created: dt.datetime
    when_changed: dt.datetime

    @property
    def identity(self) -> str:
        """Exchange's identity of a certificate: SERVER\\THUMBPRINT."""
        return f"{self.server}\\{self.thumbprint}"

    @property
    def services_text(self) -> str:
        return services_text(self.services)

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING


@dataclass(frozen=True)
class CertificateRequest:
    """What New-ExchangeCertificate -GenerateRequest made: the pending request in the
    server's store and the PKCS#10 request (PEM) to send to a CA."""

    certificate: ExchangeCertificate
    request_pem: str


@dataclass(frozen=True)
class CertificateChange:
    """A certificate after a change, and the certificates IIS was taken from."""

    certificate: ExchangeCertificate
    iis_taken_from: tuple[str, ...] = ()
    completed_request: bool = False


@dataclass(frozen=True)
class ExportedCertificate:
    """Export-ExchangeCertificate's data: PKCS #12 (the key, the certificate and its
    issuers) or, for a pending request, the PKCS#10 request (PEM)."""

    certificate: ExchangeCertificate
    data: bytes
    is_request: bool


@dataclass(frozen=True)
class ServingCertificate:
    """A certificate a server serves for a service, with its key (never log it)."""

    thumbprint: str
    names: tuple[str, ...]  # DNS names (CN + SANs), lower-case, may include "*.lab.net"
    certificate_pem: bytes  # the leaf, then any chain (without the lab CA's root)
    key_pem: bytes  # decrypted, PEM PKCS#8
    not_after: dt.datetime

    def __repr__(self) -> str:
        return f"ServingCertificate({self.thumbprint}, names={self.names!r})"


@dataclass(frozen=True)
class CertificateTest:
    """Test-ExchangeCertificate's word on one service of one server."""

    server: str
    service: str
    result: str  # Success or Failure
    thumbprints: tuple[str, ...]  # the certificates serving the service
    required_names: tuple[str, ...]
    missing_names: tuple[str, ...]
    message: str


# -- values ---------------------------------------------------------------------------


def services_text(services: Sequence[str]) -> str:
    return ", ".join(services) if services else NONE


def _stored_services(text: str) -> tuple[str, ...]:
    return tuple(s for s in (p.strip() for p in text.split(",")) if s and s != NONE)


def parse_services(
    value: str | Iterable[str], parameter: str = "Services", *, allow_none: bool = True
) -> tuple[str, ...]:
    """Services from "IMAP,IIS" or a list (any case), in Exchange's order; "None"
    alone is no service."""
    items = [value] if isinstance(value, str) else list(value)
    wanted: set[str] = set()
    saw_none = False
    for item in items:
        for part in str(item).split(","):
            text = part.strip()
            if not text:
                continue
            if text.lower() == "none":
                saw_none = True
                continue
            match = next((s for s in SERVICES if s.lower() == text.lower()), None)
            if match is None:
                raise InvalidValueError(
                    parameter, text, f"is not a service casarray runs: use {', '.join(SERVICES)}."
                )
            wanted.add(match)
    if saw_none and wanted:
        raise InvalidValueError(parameter, value, "names None together with services.")
    if not wanted and not allow_none:
        raise InvalidValueError(
            parameter, value, f"names no service: use one or more of {', '.join(SERVICES)}."
        )
    return tuple(s for s in SERVICES if s in wanted)


def service_name(value: str) -> str:
    """One service's canonical name (IMAP, POP, IIS, SMTP; any case)."""
    found = parse_services(value, "Service", allow_none=False)
    if len(found) != 1:
        raise InvalidValueError("Service", value, "is not one service.")
    return found[0]


def thumbprint(value: object, parameter: str = "Thumbprint") -> str:
    """A thumbprint as Exchange shows it: 40 upper-case hex digits (spaces and colons
    as certificate viewers show them are dropped)."""
    text = str(value).strip().replace(" ", "").replace(":", "").upper()
    if len(text) != 40 or any(ch not in "0123456789ABCDEF" for ch in text):
        raise InvalidValueError(
            parameter, value, "is not a certificate thumbprint (40 hexadecimal digits)."
        )
    return text


def parse_identity(value: object) -> tuple[str | None, str]:
    """(server or None, thumbprint) from an identity "CAS01\\<thumbprint>" or a bare
    thumbprint."""
    text = str(value).strip()
    server, sep, rest = text.rpartition("\\")
    if sep:
        return (server or None), thumbprint(rest, "Identity")
    return None, thumbprint(text, "Identity")


def _domain_names(parameter: str, values: Iterable[str]) -> list[str]:
    result = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip():
                continue
            try:
                result.append(pki_names.dns_name(part))
            except ValueError as exc:
                raise InvalidValueError(parameter, part.strip(), str(exc)) from None
    return pki_names.unique(result)


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


def _current_status(row: ExchangeCertificateRow, now: dt.datetime) -> str:
    dated = row.status in (VALID, UNTRUSTED) and row.not_before and row.not_after
    if dated and not row.not_before <= now <= row.not_after:  # type: ignore[operator]
        return DATE_INVALID
    return row.status


# -- the service ------------------------------------------------------------------------


class Certificates:
    """Directory.certificates: see the module docstring."""

    def __init__(self, directory: Directory) -> None:
        self.dir = directory
        self.home: Path | None = None  # $CASARRAY_HOME unless set (the KEK, the lab CA)
        self._vault: KeyVault | None = None

    @property
    def vault(self) -> KeyVault:
        if self._vault is None:
            self._vault = KeyVault(self.dir.organization().guid, self.home)
        return self._vault

    # -- reading ------------------------------------------------------------------

    def _record(
        self, row: ExchangeCertificateRow, server: ServerRow, now: dt.datetime | None = None
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
            status=_current_status(row, now or utcnow()),
            root_ca_type=row.root_ca_type,
            services=_stored_services(row.services),
            is_self_signed=row.is_self_signed,
            has_private_key=row.private_key is not None,
            private_key_exportable=row.private_key_exportable,
            public_key_size=row.public_key_size,
            when_created=row.when_created,
            when_changed=row.when_changed,
        )

    def default_server(self, session: Session) -> ServerRow:
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

    def _server(self, session: Session, server: object | None) -> ServerRow:
        if server is None:
            return self.default_server(session)
        return self.dir.servers.resolve_row(session, server)

    def _server_by_id(self, session: Session, server_id: int) -> ServerRow:
        row = session.get(ServerRow, server_id)
        if row is None:  # removed meanwhile
            raise NotFoundError("server", str(server_id))
        return row

    def _find(
        self, session: Session, identity: object, server: object | None
    ) -> tuple[ExchangeCertificateRow, ServerRow]:
        """The certificate `identity` (a thumbprint or SERVER\\THUMBPRINT) names, on
        `server` or, when no server is named, on the one server that has it."""
        named, thumb = parse_identity(identity)
        if named is not None:
            if server is not None:
                given = self.dir.servers.resolve_row(session, server)
                if self.dir.servers.resolve_row(session, named).id != given.id:
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
            row = self.dir.servers.resolve_row(session, server)
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
                hits = [self._find(session, thumbprint, server)]
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
            records = [self._record(row, server_row, now) for row, server_row in hits]
        if domain_name is not None:
            wanted = _domain_names("DomainName", [domain_name])
            records = [
                r
                for r in records
                if all(pki_names.covers(r.certificate_domains, n) for n in wanted)
            ]
        return records

    def one(self, identity: object, server: object | None = None) -> ExchangeCertificate:
        return self.get(server, identity)[0]

    # -- making ---------------------------------------------------------------------

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
        names = _domain_names("DomainName", domain_names)
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

    def _may_create_kek(self, session: Session) -> bool:
        sealed = session.scalar(
            select(func.count())
            .select_from(ExchangeCertificateRow)
            .where(ExchangeCertificateRow.private_key.is_not(None))
        )
        return not sealed

    def _seal(self, session: Session, key_pem: bytes, key_id: str) -> bytes:
        return self.vault.seal(key_pem, key_id, may_create=self._may_create_kek(session))

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
            row = self._server(session, server)
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
            server_row = self._server_by_id(session, server_id)
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
                private_key=self._seal(session, keys.private_pem(key), kid),
                private_key_exportable=bool(private_key_exportable),
                when_created=now,
                when_changed=now,
            )
            session.add(row)
            session.flush()
            record = self._record(row, server_row, now)
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
            row = self._server_by_id(session, server_id)
            if not names and not subject_name:
                names = [row.name.lower(), row.fqdn.lower()]
        key = keys.generate_rsa(key_size)
        cert = certs.self_signed(key, subject, names)
        now = utcnow()
        with self.dir.store.write() as session:
            server_row = self._server_by_id(session, server_id)
            kid = keys.key_id(key.public_key())
            row = self._certificate_row(
                ExchangeCertificateRow(
                    server_id=server_row.id,
                    key_id=kid,
                    private_key=self._seal(session, keys.private_pem(key), kid),
                    private_key_exportable=bool(private_key_exportable),
                    services=NONE,
                    when_created=now,
                ),
                formats.Chain(cert, (), key),
                trust.Verdict(VALID, trust.REGISTRY),
                name,
                now,
            )
            self._check_new_thumbprint(session, server_row, row.thumbprint)
            session.add(row)
            session.flush()
            taken = self._add_services(session, row, wanted, now)
            record = self._record(row, server_row, now)
        return CertificateChange(record, taken)

    def _certificate_row(
        self,
        row: ExchangeCertificateRow,
        chain: formats.Chain,
        verdict: trust.Verdict,
        friendly_name: str,
        now: dt.datetime,
    ) -> ExchangeCertificateRow:
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

    def _check_new_thumbprint(self, session: Session, server: ServerRow, thumb: str) -> None:
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

    # -- importing -------------------------------------------------------------------

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
        verdict = trust.verdict(leaf, chain.intermediates, home=self.home)
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
                    server_row = self._server_by_id(session, pending[0].server_id)
                elif key_pem is not None:
                    server_row = self._server(session, None)
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
            self._check_new_thumbprint(session, server_row, thumb)
            row = pending[0] if pending else None
            if row is None:
                assert key_pem is not None
                row = ExchangeCertificateRow(
                    server_id=server_row.id,
                    key_id=kid,
                    private_key=self._seal(session, key_pem, kid),
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
            self._certificate_row(row, chain, verdict, name[:64], now)
            session.flush()
            record = self._record(row, server_row, now)
        return CertificateChange(record, completed_request=bool(pending))

    # -- services -------------------------------------------------------------------------

    def _usable(self, row: ExchangeCertificateRow, server: ServerRow, now: dt.datetime) -> None:
        """Raise unless `row` may be enabled for services."""
        thumb = row.thumbprint
        status = _current_status(row, now)
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

    def _add_services(
        self,
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
                had = _stored_services(other.services)
                if "IIS" in had:
                    other.services = services_text(tuple(s for s in had if s != "IIS"))
                    other.when_changed = now
                    taken.append(other.thumbprint)
        have = set(_stored_services(row.services)) | set(wanted)
        row.services = services_text(tuple(s for s in SERVICES if s in have))
        row.when_changed = now
        return tuple(taken)

    def enable(
        self, identity: object, services: str | Iterable[str], server: object | None = None
    ) -> CertificateChange:
        """Enable-ExchangeCertificate: add `services` to the certificate's (see the
        module docstring for IIS and what can't be enabled)."""
        wanted = parse_services(services, allow_none=False)
        now = utcnow()
        with self.dir.store.write() as session:
            row, server_row = self._find(session, identity, server)
            self._usable(row, server_row, now)
            taken = self._add_services(session, row, wanted, now)
            session.flush()
            record = self._record(row, server_row, now)
        return CertificateChange(record, taken)

    def remove(self, identity: object, server: object | None = None) -> ExchangeCertificate:
        """Remove-ExchangeCertificate: the certificate (or pending request) and its key
        leave the server's store; returns what was removed."""
        now = utcnow()
        with self.dir.store.write() as session:
            row, server_row = self._find(session, identity, server)
            record = self._record(row, server_row, now)
            session.delete(row)
        return record

    def export(
        self, identity: object, server: object | None = None, password: str | None = None
    ) -> ExportedCertificate:
        """Export-ExchangeCertificate: PKCS #12 protected by `password` (only for an
        exportable key), or a pending request's PKCS#10 request."""
        with self.dir.store.read() as session:
            row, server_row = self._find(session, identity, server)
            record = self._record(row, server_row)
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
            key = keys.load_private_pem(self.vault.open(row.private_key, row.key_id))
            chain = certs.load_pem_chain((row.certificate_pem or "").encode())
        data = formats.to_pkcs12(record.friendly_name, key, chain[0], tuple(chain[1:]), password)
        return ExportedCertificate(record, data, False)

    # -- for the servers ----------------------------------------------------------------

    def _serving_rows(
        self, session: Session, server: ServerRow, service: str | None, now: dt.datetime
    ) -> list[ExchangeCertificateRow]:
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
            if _current_status(row, now) == VALID
            and (service is None or service in _stored_services(row.services))
        ]
        usable.sort(key=lambda r: (r.not_before, r.when_created, r.id), reverse=True)
        return usable

    def serving(self, server: object, service: str) -> list[ServingCertificate]:
        """The valid certificates with a private key enabled for `service` ("IMAP",
        "IIS", "POP", "SMTP") on `server` (name or FQDN), newest first, with their
        decrypted keys."""
        wanted = service_name(service)
        now = utcnow()
        with self.dir.store.read() as session:
            server_row = self.dir.servers.resolve_row(session, server)
            rows = self._serving_rows(session, server_row, wanted, now)
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
                    key_pem=self.vault.open(sealed, kid),
                    not_after=not_after,
                )
            )
        return result

    # -- Test-ExchangeCertificate ----------------------------------------------------------

    def test(
        self,
        server: object | None = None,
        services: str | Iterable[str] | None = None,
        domain_names: Iterable[str] = (),
    ) -> list[CertificateTest]:
        """For each Client Access server (or `server`) and service, the names clients
        use that its enabled certificates don't cover (see the module docstring)."""
        extra = _domain_names("DomainName", domain_names)
        asked = parse_services(services, "Service") if services is not None else None
        accepted = self.dir.organization().accepted_domains
        now = utcnow()
        results: list[CertificateTest] = []
        with self.dir.store.read() as session:
            if server is not None:
                servers = [self.dir.servers.resolve_row(session, server)]
            else:
                servers = list(
                    session.scalars(
                        select(ServerRow)
                        .where(ServerRow.client_access.is_(True))
                        .order_by(ServerRow.install_order)
                    )
                )
            for row in servers:
                results.extend(self._test_server(session, row, asked, extra, accepted, now))
        return results

    def _client_names(self, session: Session, server: ServerRow) -> list[str]:
        """The names clients reach `server` by: its site's array FQDN (else its own),
        and its own FQDN while a database of its site names it."""
        array = session.scalar(
            select(ClientAccessArrayRow.fqdn).where(ClientAccessArrayRow.site_id == server.site_id)
        )
        names = [array.lower()] if array is not None else []
        holder = aliased(ServerRow)
        named = session.scalar(
            select(func.count())
            .select_from(MailboxDatabaseRow)
            .join(holder, MailboxDatabaseRow.server_id == holder.id)
            .where(
                MailboxDatabaseRow.rpc_client_access_server_key == server.fqdn_key,
                holder.site_id == server.site_id,
            )
        )
        if array is None or named:
            names.append(server.fqdn.lower())
        return names

    def _test_server(
        self,
        session: Session,
        server: ServerRow,
        asked: tuple[str, ...] | None,
        extra: list[str],
        accepted: Sequence[str],
        now: dt.datetime,
    ) -> list[CertificateTest]:
        rows = list(
            session.scalars(
                select(ExchangeCertificateRow)
                .where(ExchangeCertificateRow.server_id == server.id)
                .order_by(ExchangeCertificateRow.id)
            )
        )
        serving = self._serving_rows(session, server, None, now)
        enabled = {s for r in rows for s in _stored_services(r.services)}
        services = asked or tuple(s for s in SERVICES if s in TESTED_SERVICES or s in enabled)
        clients = self._client_names(session, server)
        results = []
        for service in services:
            if service == "IIS":
                required = clients + [f"autodiscover.{d}" for d in accepted]
            elif service == "SMTP":
                required = [server.fqdn.lower()]
            else:
                required = list(clients)
            required = pki_names.unique(required + extra)
            served = [r for r in serving if service in _stored_services(r.services)]
            names = [[n for n in r.domains.split("\n") if n] for r in served]
            missing = [n for n in required if not any(pki_names.covers(c, n) for c in names)]
            unusable = [
                f"{r.thumbprint} is enabled but {_unusable_reason(r, now)}"
                for r in rows
                if service in _stored_services(r.services) and r not in served
            ]
            if not served:
                message = (
                    f"No usable certificate is enabled for {service} on {server.name}: "
                    f"Enable-ExchangeCertificate -Server {server.name} -Services {service}."
                )
            elif missing:
                message = (
                    f"The certificates enabled for {service} don't cover "
                    f"{', '.join(missing)}: clients using these names get a certificate "
                    "warning. Request one whose domains include them."
                )
            else:
                message = f"The certificates enabled for {service} cover every name."
            if unusable:
                message += " " + "; ".join(unusable) + "."
            results.append(
                CertificateTest(
                    server=server.name,
                    service=service,
                    result=SUCCESS if served and not missing else FAILURE,
                    thumbprints=tuple(r.thumbprint for r in served),
                    required_names=tuple(required),
                    missing_names=tuple(missing),
                    message=message,
                )
            )
        return results


def _unusable_reason(row: ExchangeCertificateRow, now: dt.datetime) -> str:
    status = _current_status(row, now)
    if status == DATE_INVALID:
        return "is outside its validity dates"
    if row.private_key is None:
        return "has no private key"
    return f"its status is {status}"
