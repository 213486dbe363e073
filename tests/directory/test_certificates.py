"""Directory.certificates on both back ends: requests completed by the lab CA's
certificate, imports (PEM, PKCS #12 from OpenSSL) and their refusals that change
nothing, services added (IIS moving between certificates), what servers serve, keys
sealed at rest, exports, and Test-ExchangeCertificate's names."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from casarray.directory import (
    Directory,
    InvalidOperationError,
    InvalidValueError,
    NotFoundError,
)
from casarray.directory.certificates.objects import CertificateRequest
from casarray.directory.certificates.values import NOT_EXPORTABLE, ServerRequiredError
from casarray.directory.errors import ConflictError
from casarray.directory.schema import ExchangeCertificateRow
from casarray.pki import certificates as certs
from casarray.pki.ca import LabCA
from casarray.pki.errors import PkiError
from casarray.pki.keys import generate_rsa, key_id, private_pem
from casarray.pki.names import parse_subject
from casarray.pki.vault import KeyVault
from tests.pki import openssl

SEED_SUBJECT = "C=CN, O=Lab, CN=mail.lab.net"
SEED_NAMES = ["bj-cas.lab.net", "mail.lab.net", "autodiscover.lab.net"]


def seed_request(d: Directory, server: str = "CAS01", **options: object) -> CertificateRequest:
    return d.certificates.new_request(
        server, subject_name=SEED_SUBJECT, domain_names=SEED_NAMES, **options
    )


def lab_sign(request_pem: str, now: dt.datetime | None = None) -> bytes:
    """The lab CA's certificate (PEM) for a request."""
    return certs.pem(LabCA.open().sign(certs.load_request(request_pem.encode()), now=now))


def rows(d: Directory) -> list[tuple[str, str, str]]:
    """(server id, thumbprint, services) of every row: what a refused change must keep."""
    with d.store.read() as session:
        return [
            (str(r.server_id), r.thumbprint, r.services)
            for r in session.scalars(
                select(ExchangeCertificateRow).order_by(ExchangeCertificateRow.id)
            )
        ]


def pfx_with_key(tmp_path: Path, cert_pem: bytes, key_pem: bytes, password: str) -> bytes:
    """A PKCS #12 file made by `openssl pkcs12 -export`."""
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    out = tmp_path / "c.pfx"
    openssl(
        "pkcs12",
        "-export",
        "-in",
        str(tmp_path / "c.pem"),
        "-inkey",
        str(tmp_path / "k.pem"),
        "-out",
        str(out),
        "-passout",
        f"pass:{password}",
    )
    return out.read_bytes()


def lab_certificate_with_key(names: list[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) issued by the lab CA outside the directory."""
    key = generate_rsa(2048)
    csr = certs.build_request(key, parse_subject(f"CN={names[0]}"), names)
    return certs.pem(LabCA.open().sign(csr)), private_pem(key)


# -- requests ---------------------------------------------------------------------------


def test_request_waits_then_the_lab_certificate_completes_it(bj: Directory) -> None:
    before = bj.topology_version()
    made = seed_request(bj, private_key_exportable=True)
    assert bj.topology_version() > before
    pending = bj.certificates.get("CAS01")
    assert [c.status for c in pending] == ["PendingRequest"]
    request = pending[0]
    assert request.thumbprint == made.certificate.thumbprint
    assert request.subject == "CN=mail.lab.net, O=Lab, C=CN"
    assert request.certificate_domains == tuple(SEED_NAMES)
    assert request.has_private_key and request.services == ()
    assert request.not_after is None
    assert made.request_pem.startswith("-----BEGIN CERTIFICATE REQUEST-----")

    # the certificate alone (DER, no key, no -Server): it completes CAS01's request
    der = x509.load_pem_x509_certificate(lab_sign(made.request_pem)).public_bytes(
        serialization.Encoding.DER
    )
    change = bj.certificates.import_certificate(der)
    assert change.completed_request
    done = change.certificate
    assert (done.server, done.status, done.root_ca_type) == ("CAS01", "Valid", "Enterprise")
    assert done.has_private_key and done.private_key_exportable
    assert done.issuer == "CN=casarray Lab Root CA, O=casarray"
    assert done.certificate_domains == tuple(SEED_NAMES)
    assert done.thumbprint != request.thumbprint
    assert [c.thumbprint for c in bj.certificates.get("CAS01")] == [done.thumbprint]
    assert done.not_after is not None and done.not_before is not None
    assert (done.not_after - done.not_before).days == 365


def test_request_parameters_checked_before_anything_is_made(bj: Directory) -> None:
    version = bj.topology_version()
    bad = [
        ({"subject_name": "C=China, CN=x"}, "SubjectName", "a country is two letters"),
        ({"domain_names": ["bj-cas.lab.net", "10.0.0.1"]}, "DomainName", "is an IP address"),
        ({"key_size": 1024}, "KeySize", "use 2048, 3072, 4096"),
        ({"friendly_name": "x" * 65}, "FriendlyName", "the maximum is 64"),
    ]
    for options, parameter, reason in bad:
        with pytest.raises(InvalidValueError) as err:
            bj.certificates.new_request("CAS01", **options)  # type: ignore[arg-type]
        assert err.value.parameter == parameter
        assert reason in err.value.message
    with pytest.raises(NotFoundError):
        bj.certificates.new_request("CAS99", domain_names=SEED_NAMES)
    assert bj.topology_version() == version
    assert rows(bj) == []


def test_includes_and_default_subject(bj: Directory) -> None:
    made = bj.certificates.new_request(
        "CAS02",
        domain_names=["bj-cas.lab.net"],
        include_autodiscover=True,
        include_server_fqdn=True,
        include_server_netbios_name=True,
        include_accepted_domains=True,
    )
    assert made.certificate.subject == "CN=CAS02"  # Exchange's default subject
    assert made.certificate.certificate_domains == (
        "bj-cas.lab.net",
        "cas02.lab.net",
        "cas02",
        "lab.net",
        "autodiscover.lab.net",
    )


# -- the default server -----------------------------------------------------------------


def test_default_server_is_the_only_client_access_server(directory: Directory) -> None:
    with pytest.raises(ServerRequiredError, match="no Client Access server"):
        directory.certificates.new_self_signed()
    directory.sites.new("BJ", ["127.77.1.0/24"])
    directory.servers.new("MBX01", "Mailbox", "127.77.1.21")
    directory.servers.new("CAS01", "ClientAccess", "127.77.1.11")
    made = directory.certificates.new_self_signed().certificate
    assert made.server == "CAS01"
    assert made.subject == "CN=CAS01"
    assert made.certificate_domains == ("cas01", "cas01.lab.net")
    assert made.services == ("IMAP", "POP", "SMTP")  # Exchange's default
    assert (made.status, made.root_ca_type, made.is_self_signed) == ("Valid", "Registry", True)
    directory.servers.new("CAS02", "ClientAccess", "127.77.1.12")
    with pytest.raises(ServerRequiredError) as err:
        directory.certificates.new_request(domain_names=SEED_NAMES)
    assert "2 Client Access servers (CAS01, CAS02)" in err.value.message
    # a thumbprint on one server needs no -Server
    assert directory.certificates.one(made.thumbprint).server == "CAS01"


# -- keys at rest -------------------------------------------------------------------------


def test_keys_sealed_outside_the_kek(bj: Directory, casarray_home: Path, tmp_path: Path) -> None:
    seed_request(bj)
    bj.certificates.new_self_signed("CAS02")
    with bj.store.read() as session:
        stored = [
            (bytes(r.private_key), r.key_id)
            for r in session.scalars(select(ExchangeCertificateRow))
            if r.private_key is not None
        ]
    assert len(stored) == 2
    for blob, _ in stored:
        assert not blob.startswith(b"-----BEGIN")
        assert b"PRIVATE KEY" not in blob and b"MII" not in blob
    if bj.store.dialect == "sqlite":
        database = Path(bj.store.engine.url.database or "")
        for path in database.parent.glob(database.name + "*"):
            assert b"PRIVATE KEY" not in path.read_bytes()
    kek = casarray_home / "pki" / f"{bj.organization().guid}.kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    assert stat.S_IMODE(kek.parent.stat().st_mode) == 0o700
    # with the KEK it opens; a host with another KEK can't open it
    blob, kid = stored[0]
    assert b"PRIVATE KEY" in bj.certificates.vault.open(blob, kid)
    elsewhere = KeyVault(bj.organization().guid, tmp_path / "elsewhere")
    elsewhere.seal(b"x", "y", may_create=True)
    with pytest.raises(PkiError, match="another key-encryption key"):
        elsewhere.open(blob, kid)


# -- imports -------------------------------------------------------------------------------


def test_import_pkcs12_with_key(bj: Directory, tmp_path: Path) -> None:
    cert_pem, key_pem = lab_certificate_with_key(["imap.lab.net", "bj-cas.lab.net"])
    data = pfx_with_key(tmp_path, cert_pem, key_pem, "P@ssw0rd")
    change = bj.certificates.import_certificate(data, "CAS02", password="P@ssw0rd")
    assert not change.completed_request
    cert = change.certificate
    assert (cert.server, cert.status, cert.has_private_key) == ("CAS02", "Valid", True)
    assert not cert.private_key_exportable  # Import's default
    assert cert.services == ()
    assert cert.certificate_domains == ("imap.lab.net", "bj-cas.lab.net")
    # the same certificate again: refused, nothing changes
    before = rows(bj)
    with pytest.raises(ConflictError, match="already in the store of server 'CAS02'"):
        bj.certificates.import_certificate(data, "CAS02", password="P@ssw0rd")
    assert rows(bj) == before


def test_refused_imports_change_nothing(bj: Directory, tmp_path: Path) -> None:
    cert_pem, key_pem = lab_certificate_with_key(["imap.lab.net"])
    data = pfx_with_key(tmp_path, cert_pem, key_pem, "right")
    seed_request(bj)
    before, version = rows(bj), bj.topology_version()
    refusals: list[tuple[bytes, dict[str, object], type[Exception], str]] = [
        (data, {"password": "wrong"}, PkiError, "password is incorrect"),
        (data, {}, PkiError, "protected by a password"),
        (b"garbage, not a certificate", {}, PkiError, "isn't a certificate"),
        (cert_pem, {"server": "CAS01"}, InvalidOperationError, "completes no pending request"),
        (cert_pem, {}, InvalidOperationError, "has no private key"),
    ]
    for payload, options, error, reason in refusals:
        with pytest.raises(error, match=reason):
            bj.certificates.import_certificate(payload, **options)  # type: ignore[arg-type]
    assert rows(bj) == before
    assert bj.topology_version() == version
    # a certificate issued for CAS01's request, imported on CAS02: no request there
    made = bj.certificates.get("CAS01")[0]
    issued = lab_sign(seed_request(bj, "CAS03").request_pem)
    with pytest.raises(InvalidOperationError, match="of server 'CAS02'"):
        bj.certificates.import_certificate(issued, "CAS02")
    assert made.status == "PendingRequest"


def test_untrusted_and_expired_certificates(bj: Directory, tmp_path: Path) -> None:
    # self-signed elsewhere: imported, but Untrusted and not enabled
    key = generate_rsa(2048)
    foreign = certs.self_signed(key, parse_subject("CN=foreign.lab.net"), [])
    cert = bj.certificates.import_certificate(
        certs.pem(foreign) + private_pem(key), "CAS01"
    ).certificate
    assert (cert.status, cert.root_ca_type) == ("Untrusted", "None")
    with pytest.raises(InvalidOperationError, match="isn't trusted"):
        bj.certificates.enable(cert.thumbprint, "IMAP", "CAS01")
    # issued for a request more than a year ago: DateInvalid, not enabled
    made = seed_request(bj, "CAS02")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    expired = bj.certificates.import_certificate(lab_sign(made.request_pem, now=old)).certificate
    assert expired.status == "DateInvalid"
    with pytest.raises(InvalidOperationError, match="expired on"):
        bj.certificates.enable(expired.thumbprint, "IIS", "CAS02")
    assert bj.certificates.serving("CAS02", "IIS") == []


# -- services ----------------------------------------------------------------------------


def test_enable_adds_services_and_iis_moves(bj: Directory) -> None:
    first = bj.certificates.new_self_signed("CAS01", services="None").certificate
    assert first.services == ()
    version = bj.topology_version()
    assert bj.certificates.enable(first.thumbprint, "imap", "CAS01").certificate.services == (
        "IMAP",
    )
    assert bj.topology_version() > version
    change = bj.certificates.enable(first.thumbprint, ["IIS"])
    assert change.certificate.services_text == "IMAP, IIS"
    assert change.iis_taken_from == ()
    second = bj.certificates.new_self_signed("CAS01", services=["IIS", "SMTP"])
    assert second.iis_taken_from == (first.thumbprint,)
    assert bj.certificates.one(first.thumbprint).services == ("IMAP",)
    assert bj.certificates.one(second.certificate.thumbprint).services_text == "IIS, SMTP"
    with pytest.raises(InvalidValueError, match="is not a service casarray runs"):
        bj.certificates.enable(first.thumbprint, "UM")
    with pytest.raises(InvalidValueError, match="names no service"):
        bj.certificates.enable(first.thumbprint, "None")
    pending = seed_request(bj).certificate
    with pytest.raises(InvalidOperationError, match="is a pending request"):
        bj.certificates.enable(pending.thumbprint, "IMAP")


def test_serving_certificates(bj: Directory) -> None:
    made = seed_request(bj)
    version = bj.topology_version()
    done = bj.certificates.import_certificate(lab_sign(made.request_pem)).certificate
    assert bj.topology_version() > version  # servers following the directory look again
    assert bj.certificates.serving("CAS01", "IMAP") == []  # not enabled yet
    bj.certificates.enable(done.thumbprint, "IMAP,IIS")
    own = bj.certificates.new_self_signed("CAS01", services="IMAP").certificate
    serving = bj.certificates.serving("cas01.LAB.net", "imap")
    assert [s.thumbprint for s in serving] == [own.thumbprint, done.thumbprint]  # newest first
    lab = serving[1]
    assert lab.names == tuple(SEED_NAMES)
    leaf = x509.load_pem_x509_certificates(lab.certificate_pem)[0]
    key = serialization.load_pem_private_key(lab.key_pem, None)
    assert key_id(key.public_key()) == key_id(leaf.public_key())
    assert lab.not_after == leaf.not_valid_after_utc
    assert "PRIVATE" not in repr(lab)
    assert [s.thumbprint for s in bj.certificates.serving("CAS01", "IIS")] == [done.thumbprint]
    assert bj.certificates.serving("CAS02", "IMAP") == []
    with pytest.raises(InvalidValueError, match="is not a service"):
        bj.certificates.serving("CAS01", "HTTP")
    version = bj.topology_version()
    bj.certificates.remove(done.thumbprint)
    assert bj.topology_version() > version
    assert bj.certificates.serving("CAS01", "IIS") == []


def test_another_process_sees_enable_within_a_second(
    bj: Directory, second_directory: Directory
) -> None:
    thumb = bj.certificates.new_self_signed("CAS01", services="None").certificate.thumbprint
    since = second_directory.topology_version()
    assert second_directory.certificates.serving("CAS01", "IMAP") == []
    bj.certificates.enable(thumb, "IMAP")
    assert second_directory.wait_for_change(since, timeout=1.0) != since
    assert [s.thumbprint for s in second_directory.certificates.serving("CAS01", "IMAP")] == [thumb]


# -- identities, removal, export -------------------------------------------------------------


def test_identity_on_several_servers(bj: Directory, tmp_path: Path) -> None:
    cert_pem, key_pem = lab_certificate_with_key(["bj-cas.lab.net"])
    data = cert_pem + key_pem
    thumb = bj.certificates.import_certificate(data, "CAS01").certificate.thumbprint
    bj.certificates.import_certificate(data, "CAS02")
    with pytest.raises(InvalidOperationError, match=r"on several servers \(CAS01, CAS02\)"):
        bj.certificates.remove(thumb)
    assert bj.certificates.one(f"CAS02\\{thumb.lower()}").server == "CAS02"
    assert bj.certificates.one(thumb, "CAS01.lab.net").server == "CAS01"
    removed = bj.certificates.remove(f"cas01\\{thumb}")
    assert removed.server == "CAS01"
    assert [c.server for c in bj.certificates.get(thumbprint=thumb)] == ["CAS02"]
    with pytest.raises(NotFoundError):
        bj.certificates.remove(thumb, "CAS01")
    with pytest.raises(InvalidValueError, match="40 hexadecimal digits"):
        bj.certificates.one("ABC")


def test_export(bj: Directory, tmp_path: Path) -> None:
    locked = bj.certificates.new_self_signed("CAS01").certificate
    with pytest.raises(InvalidOperationError) as err:
        bj.certificates.export(locked.thumbprint, password="x")
    assert err.value.message == NOT_EXPORTABLE
    open_one = bj.certificates.new_self_signed("CAS01", private_key_exportable=True).certificate
    with pytest.raises(InvalidValueError, match="Password"):
        bj.certificates.export(open_one.thumbprint)
    exported = bj.certificates.export(open_one.thumbprint, password="s3cret")
    pfx = tmp_path / "out.pfx"
    pfx.write_bytes(exported.data)
    out = openssl("pkcs12", "-in", str(pfx), "-passin", "pass:s3cret", "-nodes")
    assert "subject=CN = CAS01" in out and "BEGIN PRIVATE KEY" in out
    # and it imports on another server, key and all
    moved = bj.certificates.import_certificate(exported.data, "CAS02", password="s3cret")
    assert moved.certificate.thumbprint == open_one.thumbprint
    assert moved.certificate.has_private_key
    pending = seed_request(bj, "CAS03").certificate
    request = bj.certificates.export(pending.thumbprint)
    assert request.is_request and request.data.startswith(b"-----BEGIN CERTIFICATE REQUEST")


# -- Test-ExchangeCertificate ------------------------------------------------------------------


def by_service(results: list) -> dict[tuple[str, str], tuple[str, tuple[str, ...]]]:  # type: ignore[type-arg]
    return {(t.server, t.service): (t.result, t.missing_names) for t in results}


def test_names_clients_use_before_and_after_the_seed_certificate(bj: Directory) -> None:
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    before = by_service(bj.certificates.test())
    assert before == {
        ("CAS01", "IIS"): ("Failure", ("bj-cas.lab.net", "autodiscover.lab.net")),
        ("CAS01", "IMAP"): ("Failure", ("bj-cas.lab.net",)),
        ("CAS02", "IIS"): ("Failure", ("bj-cas.lab.net", "autodiscover.lab.net")),
        ("CAS02", "IMAP"): ("Failure", ("bj-cas.lab.net",)),
        # SH has no array: its clients use the server's own name
        ("CAS03", "IIS"): ("Failure", ("cas03.lab.net", "autodiscover.lab.net")),
        ("CAS03", "IMAP"): ("Failure", ("cas03.lab.net",)),
    }
    made = seed_request(bj)
    done = bj.certificates.import_certificate(lab_sign(made.request_pem)).certificate
    bj.certificates.enable(done.thumbprint, "IMAP,IIS")
    after = bj.certificates.test("CAS01", domain_names=["mail.lab.net"])
    assert [(t.service, t.result, t.missing_names) for t in after] == [
        ("IMAP", "Success", ()),
        ("IIS", "Success", ()),
    ]
    assert after[1].required_names == ("bj-cas.lab.net", "autodiscover.lab.net", "mail.lab.net")
    assert after[1].thumbprints == (done.thumbprint,)
    missing = bj.certificates.test("CAS01", "IIS", ["owa.contoso.com"])
    assert [(t.result, t.missing_names) for t in missing] == [("Failure", ("owa.contoso.com",))]


def test_an_old_database_keeps_the_server_name_in_use(bj: Directory) -> None:
    """A database created before the array still names CAS01.lab.net, so its users
    still connect to that name: CAS01's certificate must cover it too."""
    bj.databases.new("DB01", "MBX01")  # RpcClientAccessServer CAS01.lab.net
    bj.arrays.new("bj-cas.lab.net", site="BJ", name="BJ CAS Array")
    made = seed_request(bj)
    done = bj.certificates.import_certificate(lab_sign(made.request_pem)).certificate
    bj.certificates.enable(done.thumbprint, "IMAP")
    imap = bj.certificates.test("CAS01", "IMAP")[0]
    assert (imap.result, imap.missing_names) == ("Failure", ("cas01.lab.net",))
    bj.databases.set_rpc_client_access_server(None, "bj-cas.lab.net")
    assert bj.certificates.test("CAS01", "IMAP")[0].result == "Success"
