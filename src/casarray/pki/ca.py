"""The lab certificate authority: what the Enterprise CA of a Windows lab does for
Exchange certificate requests (`certreq -submit`), on one machine.

It is made on first use in `$CASARRAY_HOME/pki/ca/`: an ECDSA P-256 root, valid ten
years, allowed to sign end-entity certificates only (path length 0), whose key is
`ca/root.key` (PEM PKCS#8, mode 0600; it stays outside the directory, as a CA's key
stays on the CA). Its certificate is exported to `$CASARRAY_HOME/pki/lab-root.pem`
for clients to trust (`curl --cacert`, `openssl s_client -CAfile`, Python's
`ssl.create_default_context(cafile=...)`).

`LabCA.sign` issues a certificate for a PKCS#10 request: the request's subject and
subject alternative names (its common name alone when it has none), serverAuth,
subject and authority key identifiers, one year of validity. Each issued certificate
is also kept in `ca/issued/<serial>.pem`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from casarray.pki import certificates as certs
from casarray.pki import names as pki_names
from casarray.pki.errors import PkiError
from casarray.pki.files import (
    PRIVATE_FILE,
    PUBLIC_FILE,
    ensure_folder,
    locked,
    pki_folder,
    write_file,
)
from casarray.pki.keys import private_pem

ROOT_NAME = x509.Name(
    [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "casarray"),
        x509.NameAttribute(NameOID.COMMON_NAME, "casarray Lab Root CA"),
    ]
)
ROOT_VALIDITY = dt.timedelta(days=3650)
ISSUED_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class CaFiles:
    folder: Path  # $CASARRAY_HOME/pki/ca
    key: Path
    certificate: Path
    exported_root: Path  # $CASARRAY_HOME/pki/lab-root.pem
    issued: Path


def ca_files(home: Path | None = None) -> CaFiles:
    pki = pki_folder(home)
    folder = pki / "ca"
    return CaFiles(
        folder=folder,
        key=folder / "root.key",
        certificate=folder / "root.pem",
        exported_root=pki / "lab-root.pem",
        issued=folder / "issued",
    )


def root_path(home: Path | None = None) -> Path:
    """Where the lab CA's root certificate is exported for clients."""
    return ca_files(home).exported_root


def existing_root(home: Path | None = None) -> x509.Certificate | None:
    """The lab CA's root certificate, or None when no lab CA was made here yet."""
    try:
        return x509.load_pem_x509_certificate(ca_files(home).certificate.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _make_root(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(ROOT_NAME)
        .issuer_name(ROOT_NAME)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - certs.CLOCK_SKEW)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


class LabCA:
    """The lab's certificate authority (see the module docstring)."""

    def __init__(
        self, files: CaFiles, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> None:
        self.files = files
        self._key = key
        self.certificate = certificate

    @classmethod
    def open(cls, home: Path | None = None) -> LabCA:
        """The lab CA of `home` (default `$CASARRAY_HOME`), made on first use."""
        files = ca_files(home)
        ensure_folder(files.folder.parent)
        ensure_folder(files.folder)
        with locked(files.folder):
            if not files.key.exists():
                key, cert = _make_root(dt.datetime.now(dt.UTC))
                write_file(files.certificate, certs.pem(cert), PUBLIC_FILE)
                write_file(files.key, private_pem(key), PRIVATE_FILE)
            try:
                loaded = serialization.load_pem_private_key(files.key.read_bytes(), None)
                cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
            except (OSError, ValueError) as exc:
                raise PkiError(
                    f"The lab CA in {files.folder} can't be read ({exc}); move the folder "
                    "away to make a new CA (certificates it issued will no longer be trusted)."
                ) from None
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise PkiError(f"The lab CA key {files.key} is not an EC key.")
            root = certs.pem(cert)
            exported = files.exported_root
            if not exported.exists() or exported.read_bytes() != root:
                write_file(exported, root, PUBLIC_FILE)
        return cls(files, loaded, cert)

    @property
    def root_path(self) -> Path:
        return self.files.exported_root

    @property
    def root_pem(self) -> bytes:
        return certs.pem(self.certificate)

    def sign(
        self, csr: x509.CertificateSigningRequest, now: dt.datetime | None = None
    ) -> x509.Certificate:
        """Issue a server certificate for `csr` (its signature must be valid)."""
        if not csr.is_signature_valid:
            raise PkiError("The request's signature is not valid: it was altered or damaged.")
        names = certs.san_names(csr)
        if not names:
            cn = pki_names.common_name(csr.subject)
            try:
                names = [pki_names.dns_name(cn)] if cn else []
            except ValueError:
                names = []
        if not names:
            raise PkiError(
                "The request names no host: it has no subject alternative names and its "
                "common name is not a DNS name."
            )
        now = now or dt.datetime.now(dt.UTC)
        not_after = min(now + ISSUED_VALIDITY, self.certificate.not_valid_after_utc)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        cert = (
            certs.server_builder(
                csr.subject, csr.public_key(), names, now - certs.CLOCK_SKEW, not_after
            )
            .issuer_name(self.certificate.subject)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        ensure_folder(self.files.issued)
        write_file(
            self.files.issued / f"{certs.serial_text(cert)}.pem", certs.pem(cert), PUBLIC_FILE
        )
        return cert
