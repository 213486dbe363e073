"""What Import-ExchangeCertificate reads: PEM, DER, PKCS #7 and PKCS #12 files made by
OpenSSL, with a clear word for a wrong password, a request, or garbage; and the
PKCS #12 Export-ExchangeCertificate writes, read back by OpenSSL."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from casarray.pki import ca as lab
from casarray.pki import certificates as certs
from casarray.pki.errors import PkiError
from casarray.pki.formats import chain_of, is_pkcs12, read_bundle, to_pkcs12
from casarray.pki.keys import generate_rsa, key_id, private_pem
from casarray.pki.names import parse_subject
from tests.pki import openssl


@pytest.fixture(scope="module")
def key():  # type: ignore[no-untyped-def]
    return generate_rsa(2048)


@pytest.fixture
def issued(key, tmp_path: Path) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    """A lab-CA certificate for `key`, as PEM, DER, the key's PEM, and the root."""
    ca = lab.LabCA.open()
    csr = certs.build_request(key, parse_subject("CN=mail.lab.net"), ["bj-cas.lab.net"])
    cert = ca.sign(csr)
    files = {
        "pem": tmp_path / "cert.pem",
        "der": tmp_path / "cert.cer",
        "key": tmp_path / "key.pem",
        "root": ca.root_path,
    }
    files["pem"].write_bytes(certs.pem(cert))
    files["der"].write_bytes(cert.public_bytes(serialization.Encoding.DER))
    files["key"].write_bytes(private_pem(key))
    return files


def test_pem_and_der_certificates(issued: dict[str, Path]) -> None:
    from_pem = read_bundle(issued["pem"].read_bytes())
    from_der = read_bundle(issued["der"].read_bytes())
    assert from_pem.certificates == from_der.certificates
    assert from_pem.key is None
    # Exchange's -FileData as Base64 text without PEM armour
    text = base64.b64encode(issued["der"].read_bytes())
    assert read_bundle(text).certificates == from_der.certificates


def test_pem_with_key_and_chain(key, issued: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    data = issued["root"].read_bytes() + issued["key"].read_bytes() + issued["pem"].read_bytes()
    chain = chain_of(read_bundle(data))
    assert chain.leaf == x509.load_pem_x509_certificate(issued["pem"].read_bytes())
    assert chain.intermediates == ()  # the self-signed root is left out
    assert chain.key is not None and key_id(chain.key.public_key()) == key_id(key.public_key())


def test_pkcs12_from_openssl(key, issued: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pfx = tmp_path / "mail.pfx"
    openssl(
        "pkcs12",
        "-export",
        "-in",
        str(issued["pem"]),
        "-inkey",
        str(issued["key"]),
        "-certfile",
        str(issued["root"]),
        "-name",
        "Lab mail",
        "-out",
        str(pfx),
        "-passout",
        "pass:P@ssw0rd",
    )
    data = pfx.read_bytes()
    assert is_pkcs12(data)
    bundle = read_bundle(data, "P@ssw0rd")
    assert bundle.friendly_name == "Lab mail"
    chain = chain_of(bundle)
    assert certs.thumbprint(chain.leaf) == certs.thumbprint(
        x509.load_pem_x509_certificate(issued["pem"].read_bytes())
    )
    assert chain.key is not None
    with pytest.raises(PkiError, match="password is incorrect"):
        read_bundle(data, "wrong")
    with pytest.raises(PkiError, match="protected by a password: give it with -Password"):
        read_bundle(data)


def test_pkcs12_with_an_empty_password(issued: dict[str, Path], tmp_path: Path) -> None:
    pfx = tmp_path / "open.pfx"
    openssl(
        "pkcs12",
        "-export",
        "-in",
        str(issued["pem"]),
        "-inkey",
        str(issued["key"]),
        "-out",
        str(pfx),
        "-passout",
        "pass:",
    )
    assert read_bundle(pfx.read_bytes()).key is not None


def test_encrypted_pem_key(issued: dict[str, Path], tmp_path: Path) -> None:
    encrypted = tmp_path / "enc.pem"
    openssl(
        "pkey",
        "-in",
        str(issued["key"]),
        "-aes256",
        "-passout",
        "pass:secret",
        "-out",
        str(encrypted),
    )
    data = issued["pem"].read_bytes() + encrypted.read_bytes()
    assert read_bundle(data, "secret").key is not None
    with pytest.raises(PkiError, match="encrypted: give its password"):
        read_bundle(data)
    with pytest.raises(PkiError, match="password is incorrect for the private key"):
        read_bundle(data, "nope")


def test_garbage_request_and_mismatched_key(issued: dict[str, Path], key) -> None:  # type: ignore[no-untyped-def]
    for garbage in (b"hello world", bytes(range(256)), b"\x30\x03\x02\x01\x03"):
        with pytest.raises(PkiError, match="isn't a certificate"):
            read_bundle(garbage)
    with pytest.raises(PkiError, match="empty"):
        read_bundle(b"  \n")
    csr = certs.build_request(key, parse_subject("CN=x.lab.net"), [])
    with pytest.raises(PkiError, match="holds a certificate request, not a certificate"):
        read_bundle(certs.request_pem(csr))
    with pytest.raises(PkiError, match="private key but no certificate"):
        read_bundle(issued["key"].read_bytes())
    other = private_pem(generate_rsa(2048))
    with pytest.raises(PkiError, match="doesn't belong to any certificate"):
        chain_of(read_bundle(issued["pem"].read_bytes() + other))


def test_pkcs7_bundle(issued: dict[str, Path], tmp_path: Path) -> None:
    p7b = tmp_path / "chain.p7b"
    openssl(
        "crl2pkcs7",
        "-nocrl",
        "-certfile",
        str(issued["pem"]),
        "-certfile",
        str(issued["root"]),
        "-out",
        str(p7b),
    )
    chain = chain_of(read_bundle(p7b.read_bytes()))
    assert chain.leaf == x509.load_pem_x509_certificate(issued["pem"].read_bytes())


def test_exported_pkcs12_read_by_openssl(key, issued: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    leaf = x509.load_pem_x509_certificate(issued["pem"].read_bytes())
    pfx = tmp_path / "out.pfx"
    pfx.write_bytes(to_pkcs12("mail", key, leaf, (), "s3cret"))
    out = openssl("pkcs12", "-in", str(pfx), "-passin", "pass:s3cret", "-nodes")
    assert "subject=CN = mail.lab.net" in out
    assert "BEGIN PRIVATE KEY" in out
    failed = openssl("pkcs12", "-in", str(pfx), "-passin", "pass:wrong", "-nodes", check=False)
    assert "BEGIN PRIVATE KEY" not in failed
    with pytest.raises(PkiError, match="needs a password"):
        to_pkcs12("mail", key, leaf, (), "")
