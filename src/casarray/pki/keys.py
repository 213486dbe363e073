"""Private keys: RSA keys of Exchange's sizes, PEM PKCS#8 serialisation, and the
fingerprint that ties a key to its certificate or request."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from casarray.pki.errors import PkiError

# -KeySize: 1024 is refused (OpenSSL's default security level rejects it in TLS)
KEY_SIZES = (2048, 3072, 4096)
DEFAULT_KEY_SIZE = 2048
PUBLIC_EXPONENT = 65537

# The keys casarray signs with. Narrower than cryptography's issuer key types (which take in
# post-quantum keys): each of these also goes into a PKCS #12 file.
SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def generate_rsa(size: int = DEFAULT_KEY_SIZE) -> rsa.RSAPrivateKey:
    if size not in KEY_SIZES:
        raise ValueError(f"unsupported RSA key size {size}")
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=size)


def private_pem(key: PrivateKeyTypes) -> bytes:
    """The key as unencrypted PEM PKCS#8 ("BEGIN PRIVATE KEY")."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_pem(pem: bytes) -> PrivateKeyTypes:
    return serialization.load_pem_private_key(pem, password=None)


def signing_key(key: PrivateKeyTypes) -> SigningKey:
    """`key` if it can sign certificates and requests (RSA, EC, Ed25519, Ed448)."""
    if isinstance(key, SigningKey):
        return key
    raise PkiError(f"A {type(key).__name__} can't sign certificates; use an RSA or EC key.")


def public_der(public_key: PublicKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo (DER) of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_id(public_key: PublicKeyTypes) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, hex: equal for a private key, its request
    and its certificate, so a certificate finds the pending request it completes."""
    return hashlib.sha256(public_der(public_key)).hexdigest()


def key_size(public_key: PublicKeyTypes) -> int:
    """Exchange's PublicKeySize: the RSA modulus or the curve's bits."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return public_key.key_size
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.curve.key_size
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(public_key, ed448.Ed448PublicKey):
        return 456
    return 0
