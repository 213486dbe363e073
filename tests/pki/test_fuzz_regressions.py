"""Inputs the fuzzers found (bench/fuzz.py, tests/fuzz_targets.py) in what
Import-ExchangeCertificate reads, each the smallest that broke it, kept as tests of
what an administrator sees."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from casarray.pki.errors import PkiError
from casarray.pki.formats import read_bundle


def certificate_der() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bj-cas.lab.net")])
    now = datetime(2024, 1, 1, tzinfo=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("bj-cas.lab.net"), x509.DNSName("autodiscover.lab.net")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_certificate_whose_names_are_damaged_is_refused_with_a_clear_error() -> None:
    # The second DNS name claims 55 bytes where 20 follow. The certificate loads (its
    # extensions are read on first use), and the import failed later with cryptography's
    # ValueError ("error parsing asn1 value: ParseError { kind: ShortData ... }").
    der = certificate_der()
    name = b"\x82\x14autodiscover.lab.net"
    assert der.count(name) == 1
    damaged = der.replace(name, b"\x82\x37" + name[2:])
    with pytest.raises(PkiError, match=r"damaged: its extensions can't be read"):
        read_bundle(damaged)
    with pytest.raises(PkiError, match=r"damaged: its extensions can't be read"):
        read_bundle(base64.b64encode(damaged))  # Exchange's -FileData: Base64 text


# A PKCS #7 ContentInfo of another type than signed data (id-data, "hi"): cryptography
# refuses it with UnsupportedAlgorithm, which is no ValueError, and the import failed with it.
PKCS7_DATA = bytes.fromhex("3011" + "06092a864886f70d010701" + "a004" + "04026869")


def test_a_pkcs7_file_of_another_kind_than_signed_data_is_not_a_certificate() -> None:
    with pytest.raises(PkiError, match=r"The file isn't a certificate"):
        read_bundle(PKCS7_DATA)
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(PKCS7_DATA) + b"-----END PKCS7-----\n"
    with pytest.raises(PkiError, match=r"The PEM block 'PKCS7' of the file is damaged"):
        read_bundle(pem)


def test_a_certificate_of_an_unknown_version_is_refused_with_a_clear_error() -> None:
    # X.509 knows versions 1 to 3 (0 to 2 in the file): cryptography's InvalidVersion for
    # another is no ValueError, and the import failed with it
    der = certificate_der()
    version = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2: version 3
    assert der.count(version) == 1
    damaged = der.replace(version, bytes.fromhex("a003020106"))
    message = r"The certificate in the file is damaged: 6 is not a valid X509 version\."
    with pytest.raises(PkiError, match=message):
        read_bundle(damaged)
    pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(damaged)
    with pytest.raises(PkiError, match=message):
        read_bundle(pem + b"-----END CERTIFICATE-----\n")


def test_a_pkcs7_file_with_a_certificate_of_an_unknown_version_is_refused() -> None:
    from cryptography.hazmat.primitives.serialization import pkcs7

    cert = x509.load_der_x509_certificate(certificate_der())
    p7 = pkcs7.serialize_certificates([cert], serialization.Encoding.DER)
    version = bytes.fromhex("a003020102")
    assert p7.count(version) == 1
    with pytest.raises(PkiError, match=r"damaged: 10 is not a valid X509 version\."):
        read_bundle(p7.replace(version, bytes.fromhex("a00302010a")))


def test_a_certificate_whose_name_has_an_attribute_of_the_wrong_type_is_refused() -> None:
    # a common name as a BIT STRING: cryptography raises TypeError (no ValueError) when
    # the subject is first read
    der = certificate_der()
    name = b"\x06\x03\x55\x04\x03\x0c\x0ebj-cas.lab.net"
    assert der.count(name) == 2  # subject and issuer
    damaged = der.replace(name, b"\x06\x03\x55\x04\x03\x03\x0e\x00j-cas.lab.net")
    with pytest.raises(PkiError, match=r"damaged: its subject can't be read \(oid must be"):
        read_bundle(damaged)
