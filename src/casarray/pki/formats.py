"""Reading what Import-ExchangeCertificate is given, and writing what
Export-ExchangeCertificate returns.

A file may be PEM (certificates, a private key, plain or encrypted, a PKCS #7
bundle), DER (a certificate or PKCS #7), PKCS #12 (.pfx/.p12, with its password), or
the Base64 text of any of these without PEM armour (Exchange's -FileData string). The
format is recognised from the bytes, so the error says what was wrong: a PKCS #12 file
whose password is wrong is not mistaken for garbage.
"""

from __future__ import annotations

import base64
import binascii
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from casarray.pki import certificates as certs
from casarray.pki.errors import PkiError
from casarray.pki.keys import key_id, signing_key

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
_CERTIFICATE_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"}
_KEY_LABELS = {b"PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"}
_REQUEST_LABELS = {b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"}
_PKCS7_LABELS = {b"PKCS7", b"CERTIFICATE CHAIN"}
# id-data and id-signedData: what a PKCS #12 PFX's authSafe holds
_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")
_PKCS7_SIGNED = bytes.fromhex("06092a864886f70d010702")

NOT_A_CERTIFICATE = (
    "The file isn't a certificate: expected PEM, DER, PKCS #7 (.p7b) or PKCS #12 (.pfx) data."
)
REQUEST_NOT_CERTIFICATE = (
    "The file holds a certificate request, not a certificate: have a certification "
    "authority sign it first (Get-LabCertificate -RequestFile <file> for the lab CA)."
)


@dataclass(frozen=True)
class Bundle:
    """The certificates of a file and the private key it carried, if any."""

    certificates: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes | None
    friendly_name: str | None = None


@dataclass(frozen=True)
class Chain:
    """A leaf certificate, the certificates that issued it (leaf's issuer first; no
    self-signed root), and its key if the file had it."""

    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes | None
    friendly_name: str | None = None

    def pem(self) -> bytes:
        return b"".join(certs.pem(c) for c in (self.leaf, *self.intermediates))


def _der_length(data: bytes, at: int) -> tuple[int, int] | None:
    """(length, offset of the content) of the DER length at `at`."""
    if at >= len(data):
        return None
    first = data[at]
    if first < 0x80:
        return first, at + 1
    count = first & 0x7F
    if count == 0 or count > 4 or at + 1 + count > len(data):
        return None
    return int.from_bytes(data[at + 1 : at + 1 + count], "big"), at + 1 + count


def is_pkcs12(data: bytes) -> bool:
    """Whether `data` has the shape of a PKCS #12 PFX: SEQUENCE { INTEGER 3,
    ContentInfo { id-data or id-signedData, ... }, ... }."""
    if not data or data[0] != 0x30:
        return False
    outer = _der_length(data, 1)
    if outer is None:
        return False
    at = outer[1]
    if data[at : at + 3] != b"\x02\x01\x03" or data[at + 3 : at + 4] != b"\x30":
        return False
    inner = _der_length(data, at + 4)
    if inner is None:
        return False
    oid = data[inner[1] : inner[1] + len(_PKCS7_DATA)]
    return oid in (_PKCS7_DATA, _PKCS7_SIGNED)


def _pkcs7(load: Callable[[bytes], list[x509.Certificate]], data: bytes) -> list[x509.Certificate]:
    """PKCS #7 certificates; OpenSSL's .p7b files are BER (unsorted SETs), which
    cryptography reads with a warning that says nothing to an administrator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load(data)


def _pkcs12(data: bytes, password: bytes | None) -> Bundle:
    tries = [password] if password is not None else [None, b""]
    for attempt in tries:
        try:
            loaded = pkcs12.load_pkcs12(data, attempt)
        except ValueError:
            continue
        found = [c.certificate for c in loaded.additional_certs]
        name = None
        if loaded.cert is not None:
            found.insert(0, loaded.cert.certificate)
            if loaded.cert.friendly_name:
                name = loaded.cert.friendly_name.decode("utf-8", "replace")
        return Bundle(tuple(found), loaded.key, name)
    if password is None:
        raise PkiError("The PKCS #12 file is protected by a password: give it with -Password.")
    raise PkiError("The password is incorrect, or the PKCS #12 file is damaged.")


def _pem_key(block: bytes, password: bytes | None) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(block, password)
    except TypeError:
        if password is None:
            raise PkiError(
                "The private key is encrypted: give its password with -Password."
            ) from None
        raise PkiError("The private key isn't encrypted, but a password was given.") from None
    except ValueError:
        if password is not None:
            raise PkiError("The password is incorrect for the private key.") from None
        raise PkiError("The private key in the file is damaged or of an unknown kind.") from None


def _pem(data: bytes, password: bytes | None) -> Bundle:
    found: list[x509.Certificate] = []
    keys: list[PrivateKeyTypes] = []
    for match in _PEM_BLOCK.finditer(data):
        label, block = match.group(1), match.group(0)
        try:
            if label in _CERTIFICATE_LABELS:
                if label != b"CERTIFICATE":
                    block = block.replace(label, b"CERTIFICATE")
                found.append(x509.load_pem_x509_certificate(block))
            elif label in _PKCS7_LABELS:
                found.extend(_pkcs7(pkcs7.load_pem_pkcs7_certificates, block))
            elif label in _KEY_LABELS:
                keys.append(_pem_key(block, password))
            elif label in _REQUEST_LABELS:
                raise PkiError(REQUEST_NOT_CERTIFICATE)
        except x509.InvalidVersion as exc:  # no ValueError
            raise PkiError(f"The certificate in the file is damaged: {exc}.") from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            if isinstance(exc, PkiError):
                raise
            raise PkiError(f"The PEM block '{label.decode()}' of the file is damaged.") from None
    if len(keys) > 1:
        raise PkiError("The file holds more than one private key; give one key with its chain.")
    if not found:
        if keys:
            raise PkiError("The file holds a private key but no certificate.")
        raise PkiError(NOT_A_CERTIFICATE)
    return Bundle(tuple(found), keys[0] if keys else None)


def _der(data: bytes) -> Bundle | None:
    try:
        return Bundle((x509.load_der_x509_certificate(data),), None)
    except x509.InvalidVersion as exc:  # no ValueError
        raise PkiError(f"The certificate in the file is damaged: {exc}.") from None
    except ValueError:
        pass
    try:
        return Bundle(tuple(_pkcs7(pkcs7.load_der_pkcs7_certificates, data)), None)
    except x509.InvalidVersion as exc:  # a certificate in it
        raise PkiError(f"The certificate in the file is damaged: {exc}.") from None
    except (ValueError, UnsupportedAlgorithm):  # PKCS #7 of another kind than signed data
        pass
    try:
        x509.load_der_x509_csr(data)
    except ValueError:
        return None
    raise PkiError(REQUEST_NOT_CERTIFICATE)


def read_bundle(data: bytes, password: str | bytes | None = None) -> Bundle:
    """The certificates and key in `data` (see the module docstring); PkiError naming
    what is wrong with a file that holds none, or a certificate that can't be read."""
    bundle = _read_bundle(data, password)
    for cert in bundle.certificates:
        _check_readable(cert)
    return bundle


def _check_readable(cert: x509.Certificate) -> None:
    """cryptography reads a certificate's fields when they are first asked for: a
    damaged one raises ValueError then, wherever that is. Each is read here, so that a
    damaged certificate is refused at import with the field named."""
    for what, read in (
        ("subject", lambda: cert.subject),
        ("issuer", lambda: cert.issuer),
        ("extensions", lambda: cert.extensions),
        ("public key", cert.public_key),
        ("validity dates", lambda: (cert.not_valid_before_utc, cert.not_valid_after_utc)),
    ):
        try:
            read()
        # TypeError: an attribute of a name in a type its OID never has (a BIT STRING
        # common name, say)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise PkiError(
                f"A certificate in the file is damaged: its {what} can't be read ({exc})."
            ) from None


def _read_bundle(data: bytes, password: str | bytes | None) -> Bundle:
    secret = password.encode() if isinstance(password, str) else password
    if not data or not data.strip():
        raise PkiError("The file is empty.")
    if b"-----BEGIN" in data:
        return _pem(data, secret)
    if is_pkcs12(data):
        return _pkcs12(data, secret)
    bundle = _der(data)
    if bundle is not None and bundle.certificates:
        return bundle
    try:
        decoded = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded and decoded != data:
        if is_pkcs12(decoded):
            return _pkcs12(decoded, secret)
        bundle = _der(decoded)
        if bundle is not None and bundle.certificates:
            return bundle
    raise PkiError(NOT_A_CERTIFICATE)


def chain_of(bundle: Bundle) -> Chain:
    """The leaf (the certificate of the key, else the one that issued no other in the
    file) and its issuers in order; self-signed roots are left out unless the leaf is
    one."""
    found = list(bundle.certificates)
    if bundle.key is not None:
        signing_key(bundle.key)
        wanted = key_id(bundle.key.public_key())
        leaves = [c for c in found if key_id(c.public_key()) == wanted]
        if not leaves:
            raise PkiError("The private key in the file doesn't belong to any certificate in it.")
        leaf = leaves[0]
    else:
        issuers = {
            id(issuer)
            for issuer in found
            for cert in found
            if cert is not issuer and certs.issued_by(cert, issuer)
        }
        candidates = [c for c in found if id(c) not in issuers]
        leaf = candidates[0] if candidates else found[0]
    chain: list[x509.Certificate] = []
    current = leaf
    rest = [c for c in found if c is not leaf]
    while not certs.is_self_signed(current):
        issuer = next((c for c in rest if certs.issued_by(current, c)), None)
        if issuer is None or certs.is_self_signed(issuer):
            break
        chain.append(issuer)
        rest.remove(issuer)
        current = issuer
    return Chain(leaf, tuple(chain), bundle.key, bundle.friendly_name)


def to_pkcs12(
    friendly_name: str,
    key: PrivateKeyTypes,
    leaf: x509.Certificate,
    intermediates: tuple[x509.Certificate, ...],
    password: str,
) -> bytes:
    """A PKCS #12 file with the key, the leaf and its issuers, protected by `password`
    (AES-256 and PBKDF2, as `openssl pkcs12 -export` does by default)."""
    if not password:
        raise PkiError("A PKCS #12 file with a private key needs a password.")
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode() if friendly_name else None,
        signing_key(key),
        leaf,
        list(intermediates) or None,
        serialization.BestAvailableEncryption(password.encode()),
    )
