"""What the access services add to the servers' TLS (`pki.server_tls`, tested in
tests/pki/test_server_tls.py): where a Client Access server keeps its self-signed
certificate, and `refresh`, which gives each of its services (IMAP, IIS) the
certificates the directory enables for it."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography import x509

from casarray.access import tls
from tests.pki.test_server_tls import SERVER_NAMES, Ca, Enabled


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca(tmp_path)


@pytest.fixture
def fallback(tmp_path: Path) -> tls.CertificateFiles:
    files, _ = tls.ensure_certificate("CAS01", SERVER_NAMES, home=tmp_path)
    return files


def test_the_self_signed_certificate_is_kept_per_server(tmp_path: Path) -> None:
    files, made = tls.ensure_certificate("CAS01", SERVER_NAMES, home=tmp_path)
    assert made
    assert files == tls.certificate_files("CAS01", tmp_path)
    assert files.certificate == tmp_path / "certs" / "CAS01.pem"
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["bj-cas.lab.net", "cas01.lab.net"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.77.1.11"]
    assert tls.ensure_certificate("CAS01", SERVER_NAMES, home=tmp_path) == (files, False)
    # the array's name gone (say): made again
    assert tls.ensure_certificate("CAS01", SERVER_NAMES[:2], home=tmp_path) == (files, True)


def test_refresh_reads_each_services_certificates(ca: Ca, fallback: tls.CertificateFiles) -> None:
    imap = ca.issue("bj-cas.lab.net", "imap.lab.net")
    web = ca.issue("bj-cas.lab.net", "owa.lab.net")
    enabled: dict[tuple[str, str], Sequence[Enabled]] = {("CAS01", "IMAP"): [imap]}
    asked: list[tuple[str, str]] = []

    def serving(server: str, service: str) -> list[Enabled]:
        asked.append((server, service))
        return list(enabled.get((server, service), []))

    directory: Any = SimpleNamespace(certificates=SimpleNamespace(serving=serving))
    services = [tls.TlsContexts(service, fallback, server="CAS01") for service in tls.SERVICES]
    assert tls.refresh(directory, "CAS01", SERVER_NAMES, services)
    assert asked == [("CAS01", "IMAP"), ("CAS01", "IIS")]
    assert [each.default for each in services] == [imap.thumbprint, None]
    enabled[("CAS01", "IIS")] = [web]
    assert tls.refresh(directory, "CAS01", SERVER_NAMES, services)
    assert [each.default for each in services] == [imap.thumbprint, web.thumbprint]
    assert not tls.refresh(directory, "CAS01", SERVER_NAMES, services)
