"""What the certificate services return: plain frozen records with Exchange's names
(Get-ExchangeCertificate, New-, Import-, Export-, Test-ExchangeCertificate), and the
certificates a server serves, with their keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from casarray.directory.certificates.values import PENDING, services_text


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
