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
