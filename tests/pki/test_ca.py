"""The lab CA: made on first use in $CASARRAY_HOME/pki/ca with its key private, its
root exported for clients, and the certificates it issues verified by OpenSSL against
that root (SANs, serverAuth, key identifiers, one year). Also `casarray pki`."""

from __future__ import annotations

import datetime as dt
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from casarray.pki import ca as lab
from casarray.pki import certificates as certs
from casarray.pki.errors import PkiError
from casarray.pki.keys import generate_rsa
from casarray.pki.names import parse_subject
from tests.pki import openssl


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def key():  # type: ignore[no-untyped-def]
    return generate_rsa(2048)


def seed_request(key):  # type: ignore[no-untyped-def]
    return certs.build_request(
        key,
        parse_subject("C=CN, O=Lab, CN=mail.lab.net"),
        ["bj-cas.lab.net", "mail.lab.net", "autodiscover.lab.net"],
    )


def test_made_on_first_use_with_private_files(casarray_home: Path) -> None:
    assert lab.existing_root() is None
    ca = lab.LabCA.open()
    pki = casarray_home / "pki"
    assert ca.root_path == pki / "lab-root.pem"
    assert mode(pki) == 0o700
    assert mode(pki / "ca") == 0o700
    assert mode(pki / "ca" / "root.key") == 0o600
    assert mode(ca.root_path) == 0o644
    root = x509.load_pem_x509_certificate(ca.root_path.read_bytes())
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    # opening again keeps the same CA, and puts back a deleted export
    ca.root_path.unlink()
    again = lab.LabCA.open()
    assert again.certificate == ca.certificate
    assert again.root_path.read_bytes() == ca.root_pem
    assert lab.existing_root() == ca.certificate


def test_issued_certificate_verifies_against_the_root(key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca = lab.LabCA.open()
    cert = ca.sign(seed_request(key))
    path = tmp_path / "cert.cer"
    path.write_bytes(certs.pem(cert))
    assert f"{path}: OK" in openssl(
        "verify", "-CAfile", str(ca.root_path), "-purpose", "sslserver", str(path)
    )
    out = openssl("x509", "-in", str(path), "-noout", "-text")
    assert "DNS:bj-cas.lab.net, DNS:mail.lab.net, DNS:autodiscover.lab.net" in out
    assert "TLS Web Server Authentication" in out
    assert "X509v3 Subject Key Identifier" in out
    assert "X509v3 Authority Key Identifier" in out
    assert "Subject: C = CN, O = Lab, CN = mail.lab.net" in out
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert days == 365
    assert cert.not_valid_before_utc <= dt.datetime.now(dt.UTC)
    # each issued certificate is kept
    assert (ca.files.issued / f"{certs.serial_text(cert)}.pem").read_bytes() == certs.pem(cert)


def test_another_root_does_not_verify_it(key, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert = lab.LabCA.open().sign(seed_request(key))
    other_home = tmp_path / "other"
    other = lab.LabCA.open(other_home)
    path = tmp_path / "cert.cer"
    path.write_bytes(certs.pem(cert))
    out = openssl("verify", "-CAfile", str(other.root_path), str(path), check=False)
    assert "unable to get local issuer certificate" in out


def test_request_without_a_host_name_refused(key) -> None:  # type: ignore[no-untyped-def]
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_subject("O=x, CN=not a host"))
    from cryptography.hazmat.primitives import hashes

    with pytest.raises(PkiError, match="names no host"):
        lab.LabCA.open().sign(csr.sign(key, hashes.SHA256()))


def test_request_with_only_a_cn_gets_it_as_san(key) -> None:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import hashes

    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(parse_subject("CN=mail.lab.net"))
        .sign(key, hashes.SHA256())
    )
    assert certs.san_names(lab.LabCA.open().sign(csr)) == ["mail.lab.net"]


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "CASARRAY_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "casarray", "pki", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_casarray_pki_sign_and_root(key, casarray_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    request = tmp_path / "req.csr"
    request.write_bytes(certs.request_pem(seed_request(key)))
    root = cli("root", home=casarray_home)
    assert root.returncode == 0, root.stderr
    assert root.stdout.strip() == str(casarray_home / "pki" / "lab-root.pem")
    out = tmp_path / "cert.cer"
    done = cli("sign", str(request), "--out", str(out), home=casarray_home)
    assert done.returncode == 0, done.stderr
    assert "lab-root.pem" in done.stdout
    assert f"{out}: OK" in openssl("verify", "-CAfile", root.stdout.strip(), str(out))
    printed = cli("sign", str(request), home=casarray_home)
    assert printed.stdout.startswith("-----BEGIN CERTIFICATE-----")
    bad = tmp_path / "bad.csr"
    bad.write_text("not a request")
    failed = cli("sign", str(bad), home=casarray_home)
    assert failed.returncode == 1
    assert "not a PKCS #10 certificate request" in failed.stderr
    missing = cli("sign", str(tmp_path / "none.csr"), home=casarray_home)
    assert missing.returncode == 1 and "can't read the request" in missing.stderr
