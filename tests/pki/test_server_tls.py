"""The TLS contexts of a service (`pki.server_tls.TlsContexts`), driven through real TLS
handshakes on loopback (asyncio's server, Python's ssl client): the certificate is
chosen by SNI among those enabled (exact name, then a one-label wildcard, then the
default), clients that send no SNI get the default, a change applies to the next
handshake while an open session goes on, and keys are loaded without reaching a disk.
The certificates enabled for a service come here from a fake provider; the real ones
(the directory's) are used by tests/access/test_tls_reload.py, and tests/access/test_tls.py
and tests/transport/test_tls.py test what the access services and the transport add."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import ssl
import stat
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from casarray.pki import server_tls as tls

HOST = "127.0.0.1"
SERVER_NAMES = ["CAS01.lab.net", "127.77.1.11", "bj-cas.lab.net"]


# -- a small CA issuing the certificates "enabled" for the services -----------------


@dataclass(frozen=True)
class Enabled:
    thumbprint: str
    names: tuple[str, ...]
    certificate_pem: bytes
    key_pem: bytes
    not_after: dt.datetime


class Ca:
    def __init__(self, folder: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root CA")])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.root = folder / "root.pem"
        self.root.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, *names: str, rsa_key: bool = False) -> Enabled:
        key: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if rsa_key
            else ec.generate_private_key(ec.SECP256R1())
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name) for name in names]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        return Enabled(
            thumbprint=hashlib.sha1(der).hexdigest().upper(),
            names=tuple(name.lower() for name in names),
            certificate_pem=cert.public_bytes(serialization.Encoding.PEM)
            + self.cert.public_bytes(serialization.Encoding.PEM),
            key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            not_after=cert.not_valid_after_utc,
        )


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca(tmp_path)


@pytest.fixture
def fallback(tmp_path: Path) -> tls.CertificateFiles:
    files = tls.CertificateFiles(tmp_path / "certs" / "CAS01.pem", tmp_path / "certs" / "CAS01.key")
    assert tls.ensure_self_signed(files, SERVER_NAMES)
    assert not tls.ensure_self_signed(files, SERVER_NAMES)  # kept, not made again
    return files


def thumbprint(der: bytes | None) -> str:
    assert der is not None
    return hashlib.sha1(der).hexdigest().upper()


# -- a TLS echo server on the listener context, and a client --------------------------


@dataclass
class Echo:
    port: int

    async def connect(
        self,
        server_name: str | None,
        cafile: Path | None = None,
        version: ssl.TLSVersion | None = None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TLS connection that asks for `server_name` (None: no SNI), verifying the
        certificate against `cafile` and the name, when both are given."""
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if cafile is None or server_name is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if version is not None:
            context.minimum_version = context.maximum_version = version
        return await asyncio.open_connection(
            HOST, self.port, ssl=context, server_hostname=server_name or ""
        )

    async def served(
        self,
        server_name: str | None,
        cafile: Path | None = None,
        version: ssl.TLSVersion | None = None,
    ) -> str:
        """The thumbprint of the certificate a new handshake gets."""
        _reader, writer = await self.connect(server_name, cafile, version)
        try:
            if version is not None:
                assert writer.get_extra_info("ssl_object").version() == version.name.replace(
                    "TLSv1_", "TLSv1."
                )
            return thumbprint(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.fixture
async def contexts(fallback: tls.CertificateFiles) -> tls.TlsContexts:
    return tls.TlsContexts("IMAP", fallback, server="CAS01")


@pytest.fixture
async def echo(contexts: tls.TlsContexts) -> AsyncIterator[Echo]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(line)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, HOST, 0, ssl=contexts.context)
    yield Echo(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


def self_signed(files: tls.CertificateFiles) -> str:
    cert = x509.load_pem_x509_certificate(files.certificate.read_bytes())
    return thumbprint(cert.public_bytes(serialization.Encoding.DER))


# -- names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "covered"),
    [
        ("mail.lab.net", "mail.lab.net", True),
        ("*.lab.net", "mail.lab.net", True),
        ("*.lab.net", "lab.net", False),  # the wildcard stands for one label, not none
        ("*.lab.net", "a.mail.lab.net", False),  # nor two
        ("*.lab.net", "mail.contoso.com", False),
        ("*.net", "lab.net", False),  # not directly under a top-level domain
        ("*.lab.net", "*.lab.net", True),  # the same name
        ("mail.lab.net", "owa.lab.net", False),
        ("mail.lab.net", "", False),
    ],
)
def test_a_wildcard_covers_exactly_one_label(pattern: str, name: str, covered: bool) -> None:
    assert tls.matches(pattern, name) is covered


def test_names_are_compared_as_certificates_spell_them() -> None:
    assert tls.host_name("Mail.Lab.NET.") == "mail.lab.net"
    assert tls.host_name("bücher.lab.net") == "xn--bcher-kva.lab.net"
    assert tls.host_name("a..lab.net") == ""


def test_the_default_covers_the_servers_names(ca: Ca) -> None:
    array = ca.issue("bj-cas.lab.net", "mail.lab.net")
    both = ca.issue("bj-cas.lab.net", "cas01.lab.net")
    wildcard = ca.issue("*.lab.net")
    other = ca.issue("owa.contoso.com")
    # newest first: the first that covers every name of the server wins
    assert tls.choose_default([other, array, both], SERVER_NAMES) == both
    assert tls.choose_default([other, wildcard, array], SERVER_NAMES) == wildcard
    # else the first that covers one of them
    assert tls.choose_default([other, array], SERVER_NAMES) == array
    # else the newest
    assert tls.choose_default([other, ca.issue("a.contoso.com")], SERVER_NAMES) == other
    assert tls.choose_default([], SERVER_NAMES) is None


# -- handshakes -----------------------------------------------------------------------


async def test_without_enabled_certificates_the_self_signed_one_is_served(
    contexts: tls.TlsContexts, echo: Echo, fallback: tls.CertificateFiles
) -> None:
    expected = self_signed(fallback)
    assert contexts.default is None
    assert await echo.served("bj-cas.lab.net", fallback.certificate) == expected
    assert await echo.served(None) == expected


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_the_certificate_is_chosen_by_the_name_the_client_asks_for(
    ca: Ca, contexts: tls.TlsContexts, echo: Echo, version: ssl.TLSVersion
) -> None:
    main = ca.issue("bj-cas.lab.net", "mail.lab.net", "autodiscover.lab.net")
    wildcard = ca.issue("*.users.lab.net")
    imap = ca.issue("imap.lab.net", rsa_key=True)
    assert contexts.update([imap, wildcard, main], SERVER_NAMES)
    assert contexts.default == main.thumbprint  # the only one naming the array
    for name, expected in [
        ("bj-cas.lab.net", main),
        ("Autodiscover.Lab.Net", main),
        ("imap.lab.net", imap),  # exact names first
        ("alice.users.lab.net", wildcard),  # then a wildcard
    ]:
        assert await echo.served(name, ca.root, version) == expected.thumbprint, name
    # a name no certificate covers, and no name at all: the default
    assert await echo.served("a.b.users.lab.net", None, version) == main.thumbprint
    assert await echo.served("example.com", None, version) == main.thumbprint
    assert await echo.served(None, None, version) == main.thumbprint
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        await echo.served("a.b.users.lab.net", ca.root, version)


async def test_a_change_applies_to_new_handshakes_and_open_sessions_go_on(
    ca: Ca, contexts: tls.TlsContexts, echo: Echo, fallback: tls.CertificateFiles
) -> None:
    old = ca.issue("bj-cas.lab.net", "mail.lab.net")
    new = ca.issue("bj-cas.lab.net", "mail.lab.net", "autodiscover.lab.net", rsa_key=True)
    contexts.update([old], SERVER_NAMES)
    reader, writer = await echo.connect("bj-cas.lab.net", ca.root)
    ssl_object = writer.get_extra_info("ssl_object")
    assert thumbprint(ssl_object.getpeercert(binary_form=True)) == old.thumbprint
    # the new one (RSA, after ECDSA: a client that prefers ECDSA still gets it)
    assert contexts.update([new, old], SERVER_NAMES)
    assert await echo.served("bj-cas.lab.net", ca.root) == new.thumbprint
    assert await echo.served(None) == new.thumbprint
    assert await echo.served("mail.lab.net", ca.root) == new.thumbprint
    writer.write(b"still there\n")
    assert await reader.readline() == b"still there\n"
    # disabled again: back to the self-signed certificate; the session goes on
    assert contexts.update([], SERVER_NAMES)
    assert await echo.served("bj-cas.lab.net") == self_signed(fallback)
    writer.write(b"and now\n")
    assert await reader.readline() == b"and now\n"
    assert thumbprint(ssl_object.getpeercert(binary_form=True)) == old.thumbprint
    writer.close()
    await writer.wait_closed()


async def test_a_renewed_self_signed_certificate_is_served_after_reload(
    contexts: tls.TlsContexts, echo: Echo, fallback: tls.CertificateFiles, tmp_path: Path
) -> None:
    before = await echo.served(None)
    files = fallback
    assert tls.ensure_self_signed(files, ["CAS01.lab.net", "mail.lab.net"])
    assert await echo.served(None) == before  # not until told
    contexts.reload_fallback()
    after = await echo.served("mail.lab.net", files.certificate)
    assert after == self_signed(files) != before


def test_update_says_whether_what_clients_get_changed(ca: Ca, contexts: tls.TlsContexts) -> None:
    main = ca.issue("bj-cas.lab.net")
    other = ca.issue("owa.contoso.com")
    assert contexts.update([main], SERVER_NAMES)
    assert not contexts.update([main], SERVER_NAMES)
    assert contexts.update([other, main], SERVER_NAMES)  # a new name to serve
    assert contexts.default == main.thumbprint
    assert contexts.thumbprint_for("owa.contoso.com") == other.thumbprint
    assert not contexts.update([other, main], ["bj-cas.lab.net"])  # same choices
    assert contexts.update([], SERVER_NAMES)
    assert contexts.default is None


async def test_a_certificate_that_cannot_be_loaded_is_left_out(
    ca: Ca, contexts: tls.TlsContexts, echo: Echo, caplog: pytest.LogCaptureFixture
) -> None:
    good = ca.issue("bj-cas.lab.net")
    wrong = ca.issue("mail.lab.net")
    broken = Enabled(
        wrong.thumbprint, wrong.names, wrong.certificate_pem, good.key_pem, wrong.not_after
    )
    with caplog.at_level(logging.INFO, logger="casarray.server"):
        contexts.update([broken, good], SERVER_NAMES)
    assert (
        f"CAS01: can't serve certificate {wrong.thumbprint} for IMAP: the certificate and "
        "private key can't be loaded: the private key does not belong to the certificate"
    ) in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    assert contexts.thumbprint_for("mail.lab.net") == good.thumbprint
    assert await echo.served("mail.lab.net") == good.thumbprint


def test_bad_key_material_is_refused_with_the_reason(ca: Ca) -> None:
    enabled = ca.issue("bj-cas.lab.net")
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="the private key is encrypted"):
        tls.context_from_pem(enabled.certificate_pem, encrypted)
    with pytest.raises(ValueError, match="the certificate is not in PEM format"):
        tls.context_from_pem(b"not a certificate", enabled.key_pem)
    with pytest.raises(ValueError, match="the private key is not in PEM format"):
        tls.context_from_pem(enabled.certificate_pem, b"")
    with pytest.raises(ValueError, match="does not belong to the certificate"):
        tls.context_from_pem(enabled.certificate_pem, ca.issue("x.lab.net").key_pem)


def _watch_loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int | None, int | None]]:
    """Record, for each load_cert_chain, its path and the modes of the file and folder."""
    seen: list[tuple[str, int | None, int | None]] = []
    original = ssl.SSLContext.load_cert_chain

    def load(self: ssl.SSLContext, certfile: str, *args: Any, **kwargs: Any) -> None:
        path = Path(certfile)
        file_mode = folder_mode = None
        if not certfile.startswith("/proc/"):
            file_mode = stat.S_IMODE(path.stat().st_mode)
            folder_mode = stat.S_IMODE(path.parent.stat().st_mode)
        seen.append((certfile, file_mode, folder_mode))
        original(self, certfile, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", load)
    return seen


def test_keys_are_loaded_from_memory(ca: Ca, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "memfd_create"):
        pytest.skip("this system has no memfd_create (the temporary file is tested below)")
    seen = _watch_loads(monkeypatch)
    enabled = ca.issue("bj-cas.lab.net")
    tls.context_from_pem(enabled.certificate_pem, enabled.key_pem)
    assert len(seen) == 1 and seen[0][0].startswith("/proc/self/fd/")


def test_without_memory_files_the_key_file_is_private_and_removed(
    ca: Ca, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delattr(os, "memfd_create", raising=False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen = _watch_loads(monkeypatch)
    enabled = ca.issue("bj-cas.lab.net")
    tls.context_from_pem(enabled.certificate_pem, enabled.key_pem)
    [(path, file_mode, folder_mode)] = seen
    assert Path(path).parent.parent == scratch
    assert (file_mode, folder_mode) == (0o600, 0o700)
    assert list(scratch.iterdir()) == []
