"""Certificate requests and self-signed certificates, read back by OpenSSL: every name
is a subject alternative name (the CN added), the signature verifies, and a damaged
request is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from casarray.pki import certificates as certs
from casarray.pki.errors import PkiError
from casarray.pki.keys import generate_rsa, key_id
from casarray.pki.names import parse_subject
from tests.pki import openssl

SEED_NAMES = ["bj-cas.lab.net", "mail.lab.net", "autodiscover.lab.net"]


@pytest.fixture(scope="module")
def key():  # type: ignore[no-untyped-def]
    return generate_rsa(2048)


def san_line(text: str) -> str:
    """The line after 'X509v3 Subject Alternative Name:' in `openssl -text`."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if "Subject Alternative Name" in line)
    return lines[at + 1].strip()


def test_request_has_every_name_and_verifies(key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csr = certs.build_request(key, parse_subject("C=CN, O=Lab, CN=owa.lab.net"), SEED_NAMES)
    path = tmp_path / "req.csr"
    path.write_bytes(certs.request_pem(csr))
    out = openssl("req", "-in", str(path), "-noout", "-verify", "-text")
    assert "verify OK" in out
    assert "Subject: C = CN, O = Lab, CN = owa.lab.net" in out
    # the CN is added as the first subject alternative name
    assert san_line(out) == (
        "DNS:owa.lab.net, DNS:bj-cas.lab.net, DNS:mail.lab.net, DNS:autodiscover.lab.net"
    )
    assert "Public-Key: (2048 bit)" in out


def test_cn_already_among_the_names_is_not_repeated(key) -> None:  # type: ignore[no-untyped-def]
    csr = certs.build_request(key, parse_subject("CN=MAIL.lab.net"), SEED_NAMES)
    assert certs.san_names(csr) == SEED_NAMES
    assert certs.domains(csr) == SEED_NAMES


def test_load_request_pem_and_der_and_errors(key) -> None:  # type: ignore[no-untyped-def]
    csr = certs.build_request(key, parse_subject("CN=mail.lab.net"), [])
    pem = certs.request_pem(csr)
    assert certs.load_request(pem).subject == csr.subject
    from cryptography.hazmat.primitives.serialization import Encoding

    assert certs.load_request(csr.public_bytes(Encoding.DER)).subject == csr.subject
    with pytest.raises(PkiError, match="not a PKCS #10 certificate request"):
        certs.load_request(b"hello")
    # one byte of the signed data changed: the signature no longer verifies
    der = bytearray(csr.public_bytes(Encoding.DER))
    at = der.find(b"mail.lab.net")
    der[at] ^= 0x01
    with pytest.raises(PkiError, match="signature is not valid"):
        certs.load_request(bytes(der))


def test_self_signed_certificate(key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert = certs.self_signed(key, parse_subject("CN=CAS01"), ["cas01", "cas01.lab.net"])
    path = tmp_path / "cert.pem"
    path.write_bytes(certs.pem(cert))
    out = openssl("x509", "-in", str(path), "-noout", "-text")
    assert san_line(out) == "DNS:cas01, DNS:cas01.lab.net"
    assert "TLS Web Server Authentication" in out
    assert "CA:FALSE" in out
    openssl("verify", "-CAfile", str(path), str(path))  # it verifies as its own root
    assert certs.is_self_signed(cert)
    assert key_id(cert.public_key()) == key_id(key.public_key())
    assert len(certs.thumbprint(cert)) == 40 and certs.thumbprint(cert).isupper()
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 5 * 365 <= days <= 5 * 365 + 1  # Exchange's five years
