"""TLS for the access services: each Client Access server's certificate and the
`ssl.SSLContext`s built on it.

Until the PKI (`casarray.pki`) issues certificates, a server makes its own at first
start: a self-signed ECDSA P-256 certificate whose subject alternative names are the
server's FQDN, its IP address and the FQDN of its site's client access array (the seed's
advice: put every name clients use in one certificate). It is kept in
`$CASARRAY_HOME/certs/<server>.pem` (the certificate, which clients may trust) and
`<server>.key` (the private key, mode 0600), and made again when the names it must
cover change (an array created later, say) or it is about to expire.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import ssl
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from casarray.config import casarray_home

VALIDITY = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate (PEM) and its private key (PEM, mode 0600)."""

    certificate: Path
    key: Path


def certificate_files(server: str, home: Path | None = None) -> CertificateFiles:
    """Where the certificate of `server` is kept."""
    folder = (home or casarray_home()) / "certs"
    return CertificateFiles(folder / f"{server}.pem", folder / f"{server}.key")


def _split_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses), each once, in order, DNS names lower-cased."""
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        text = name.strip().rstrip(".")
        if not text:
            continue
        try:
            address = str(ipaddress.ip_address(text))
        except ValueError:
            if text.lower() not in dns:
                dns.append(text.lower())
        else:
            if address not in ips:
                ips.append(address)
    return dns, ips


def _covers(pem: bytes, dns: Sequence[str], ips: Sequence[str], now: dt.datetime) -> bool:
    """Whether the certificate `pem` names exactly `dns` and `ips` and is valid for
    longer than RENEW_BEFORE."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have_dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    have_ips = {str(address) for address in san.get_values_for_type(x509.IPAddress)}
    if have_dns != set(dns) or have_ips != set(ips):
        return False
    return cert.not_valid_after_utc - now > RENEW_BEFORE and cert.not_valid_before_utc <= now


def _make_certificate(
    dns: Sequence[str], ips: Sequence[str], now: dt.datetime
) -> tuple[bytes, bytes]:
    """A new (certificate PEM, key PEM): self-signed, for a TLS server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if dns else ips[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "casarray"),
        ]
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
    alt_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ips]
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` atomically (a temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the certificate folder (two processes starting at once)."""
    with open(folder / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_certificate(
    server: str, names: Iterable[str], home: Path | None = None
) -> tuple[CertificateFiles, bool]:
    """The certificate of `server` covering exactly `names` (DNS names and IP
    addresses; the first DNS name is the subject), made if missing or stale.
    Returns the files and whether a new certificate was made."""
    dns, ips = _split_names(names)
    if not dns and not ips:
        raise ValueError("a certificate needs at least one name")
    files = certificate_files(server, home)
    folder = files.certificate.parent
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        folder.chmod(0o755)
    now = dt.datetime.now(dt.UTC)
    with _locked(folder):
        with contextlib.suppress(OSError):
            if files.key.exists() and _covers(files.certificate.read_bytes(), dns, ips, now):
                return files, False
        cert_pem, key_pem = _make_certificate(dns, ips, now)
        _write(files.key, key_pem, 0o600)
        _write(files.certificate, cert_pem, 0o644)
    return files, True


def server_context(files: CertificateFiles) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) with the certificate of `files`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(files.certificate), str(files.key))
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def client_context(cafile: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A TLS client context that trusts `cafile` (a server's PEM) or the system's CAs."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
