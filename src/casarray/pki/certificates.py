"""Certificates and requests: PKCS#10 requests with every name as a subject
alternative name, self-signed server certificates, the extensions of a TLS server
certificate (shared with the lab CA), and what Exchange shows of a certificate
(thumbprint, domains, subject, self-signed or not).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID

from casarray.pki import names as pki_names
from casarray.pki.errors import PkiError

SELF_SIGNED_VALIDITY = dt.timedelta(days=5 * 365)  # Exchange's self-signed: 5 years
CLOCK_SKEW = dt.timedelta(minutes=5)  # not_before is back-dated by this much


def thumbprint(cert: x509.Certificate) -> str:
    """Exchange's Thumbprint: SHA-1 of the certificate (DER), upper-case hex."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def request_thumbprint(csr: x509.CertificateSigningRequest) -> str:
    """The Thumbprint of a pending request: SHA-1 of the request (DER)."""
    der = csr.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der).hexdigest().upper()


def san_names(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    """The DNS names of the subject alternative name extension, lower-cased."""
    try:
        san = obj.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return pki_names.unique(san.get_values_for_type(x509.DNSName))


def domains(obj: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    """Exchange's CertificateDomains: the subject alternative names, with the common
    name first when it is a host name the SANs lack."""
    result = san_names(obj)
    cn = pki_names.common_name(obj.subject)
    if cn is not None:
        try:
            name = pki_names.dns_name(cn)
        except ValueError:
            return result
        if name not in result:
            result.insert(0, name)
    return result


def is_self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer`'s key signed `cert` (names and signature)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _alt_names(names: Sequence[str], addresses: Sequence[str] = ()) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = [x509.DNSName(name) for name in names]
    general += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    return x509.SubjectAlternativeName(general)


def request_names(subject: x509.Name, names: Sequence[str]) -> list[str]:
    """The subject alternative names of a request or certificate: the common name
    first (when it is a host name and not among `names`), then `names`."""
    result = pki_names.unique(names)
    cn = pki_names.common_name(subject)
    if cn is not None:
        try:
            name = pki_names.dns_name(cn)
        except ValueError:
            name = None
        if name is not None and name not in result:
            result.insert(0, name)
    if not result:
        raise PkiError("A certificate needs at least one domain name.")
    return result


def build_request(
    key: CertificateIssuerPrivateKeyTypes, subject: x509.Name, names: Sequence[str]
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request for `subject` with `request_names` as its SANs."""
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(_alt_names(request_names(subject, names)), critical=False)
        .sign(key, hashes.SHA256())
    )


def load_request(data: bytes) -> x509.CertificateSigningRequest:
    """A PKCS#10 request from PEM or DER, with its signature checked."""
    text = data.lstrip()
    try:
        if text.startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(text)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError:
        raise PkiError(
            "The request is not a PKCS #10 certificate request (PEM or DER); make one with "
            "New-ExchangeCertificate -GenerateRequest."
        ) from None
    if not csr.is_signature_valid:
        raise PkiError("The request's signature is not valid: it was altered or damaged.")
    return csr


def server_builder(
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    names: Sequence[str],
    not_before: dt.datetime,
    not_after: dt.datetime,
    addresses: Sequence[str] = (),
) -> x509.CertificateBuilder:
    """A TLS server certificate's builder, without issuer and authority key id: SANs
    (the DNS `names`, then the IP `addresses`), not a CA, the key usages of its key
    type, serverAuth, subject key id."""
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(_alt_names(names, addresses), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=not is_rsa,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def self_signed(
    key: CertificateIssuerPrivateKeyTypes,
    subject: x509.Name,
    names: Sequence[str],
    now: dt.datetime | None = None,
    validity: dt.timedelta = SELF_SIGNED_VALIDITY,
) -> x509.Certificate:
    """A self-signed server certificate for `subject` and `request_names`."""
    now = now or dt.datetime.now(dt.UTC)
    public = key.public_key()
    return (
        server_builder(
            subject, public, request_names(subject, names), now - CLOCK_SKEW, now + validity
        )
        .issuer_name(subject)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def request_pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def load_pem_chain(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def serial_text(cert: x509.Certificate) -> str:
    """The serial number as Windows shows it: upper-case hex, even length."""
    text = f"{cert.serial_number:X}"
    return text if len(text) % 2 == 0 else "0" + text
