"""STARTTLS for the receive connectors: the certificates enabled for SMTP on this
server (`Enable-ExchangeCertificate -Services SMTP`, read through
`directory.certificates.serving(server, "SMTP")`), chosen by the name the client asks
for (SNI: an exact name, else the default), the default being the newest that covers
the server's FQDN, else the newest. With none enabled, the server's own self-signed
certificate (made at first start under `$CASARRAY_HOME/transport/<server>/`, ECDSA
P-256, for the server's FQDN and address), as the IMAP server falls back to its own.

The listeners keep one context for their life; its `sni_callback` hands each handshake
the context of the chosen certificate, so `update` (after a directory change) applies
from the next STARTTLS on.

(The access services do the same in `access.tls`, which this package may not import:
both sit on the services layer. Moving that module down to `pki` would let both share
it.)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("casarray.transport")

SERVICE = "SMTP"
RENEW_BEFORE = dt.timedelta(days=30)


class Servable(Protocol):
    @property
    def thumbprint(self) -> str: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def certificate_pem(self) -> bytes: ...

    @property
    def key_pem(self) -> bytes: ...


def _bare_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def context_from_pem(certificate_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server context for a certificate and its (decrypted) key. The key goes to a
    file of mode 0600 in a new folder of mode 0700 for as long as `ssl` reads it.
    ssl.SSLError or ValueError when they can't be loaded."""
    if b"PRIVATE KEY-----" not in key_pem or b"ENCRYPTED" in key_pem:
        raise ValueError("the private key is not an unencrypted PEM key")
    context = _bare_context()
    folder = tempfile.mkdtemp(prefix="casarray-smtp-tls-")
    try:
        path = os.path.join(folder, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(certificate_pem.rstrip() + b"\n" + key_pem)
        context.load_cert_chain(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return context


@dataclass(frozen=True)
class FallbackFiles:
    certificate: Path
    key: Path


def fallback_files(server: str, home: Path | None = None) -> FallbackFiles:
    from casarray.config import casarray_home

    folder = (home or casarray_home()) / "transport" / server.lower()
    return FallbackFiles(folder / "smtp.pem", folder / "smtp.key")


def _still_good(pem: bytes, names: Sequence[str], now: dt.datetime) -> bool:
    from cryptography import x509

    from casarray.pki.certificates import san_names

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    have = {name.lower() for name in san_names(cert)}
    return have >= {name.lower() for name in names} and (
        cert.not_valid_after_utc - now > RENEW_BEFORE
    )


def ensure_fallback(server: str, names: Sequence[str]) -> FallbackFiles:
    """The server's self-signed SMTP certificate for `names` (FQDN first), made or
    renewed when missing, about to expire, or not covering them. Blocking."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from casarray.pki.certificates import pem, self_signed
    from casarray.pki.keys import private_pem

    files = fallback_files(server)
    now = dt.datetime.now(dt.UTC)
    try:
        if files.key.exists() and _still_good(files.certificate.read_bytes(), names, now):
            return files
    except OSError:
        pass
    files.certificate.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "casarray"),
        ]
    )
    cert = self_signed(key, subject, list(names), now)
    for path, data, mode in (
        (files.key, private_pem(key), 0o600),
        (files.certificate, pem(cert), 0o644),
    ):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    log.info("%s: made a self-signed SMTP certificate for %s", server, ", ".join(names))
    return files


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class SmtpTls:
    """The TLS of one server's receive connectors; `context` goes to every listener."""

    def __init__(self, server: str, fqdn: str, fallback: FallbackFiles) -> None:
        self.server = server
        self.fqdn = _host(fqdn)
        self._fallback = _bare_context()
        self._fallback.load_cert_chain(str(fallback.certificate), str(fallback.key))
        self._default = self._fallback
        self._by_name: dict[str, ssl.SSLContext] = {}
        self._seen: tuple[str, ...] | None = None
        self.default_thumbprint: str | None = None
        self.context = _bare_context()
        self.context.sni_callback = self._on_hello

    def _on_hello(
        self,
        ssl_object: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        _listener: ssl.SSLContext,
    ) -> None:
        chosen = self._by_name.get(_host(server_name)) if server_name else None
        ssl_object.context = chosen or self._default

    def update(self, certificates: Sequence[Servable]) -> bool:
        """Serve `certificates` (enabled for SMTP, newest first) from the next handshake
        on; whether anything changed. A certificate that can't be loaded is logged and
        left out. Blocking."""
        seen = tuple(c.thumbprint for c in certificates)
        if seen == self._seen:
            return False
        self._seen = seen
        by_name: dict[str, ssl.SSLContext] = {}
        default: tuple[str, ssl.SSLContext] | None = None
        first: tuple[str, ssl.SSLContext] | None = None
        for certificate in certificates:
            try:
                context = context_from_pem(certificate.certificate_pem, certificate.key_pem)
            except (ssl.SSLError, ValueError, OSError) as exc:
                log.error(
                    "%s: can't serve certificate %s for SMTP: %s",
                    self.server,
                    certificate.thumbprint,
                    exc,
                )
                continue
            names = [_host(n) for n in certificate.names if not _is_address(n)]
            for name in names:
                by_name.setdefault(name, context)
            first = first or (certificate.thumbprint, context)
            if default is None and self.fqdn in names:
                default = (certificate.thumbprint, context)
        chosen = default or first
        self._by_name = by_name
        self._default = chosen[1] if chosen else self._fallback
        self.default_thumbprint = chosen[0] if chosen else None
        log.info(
            "%s: SMTP serves %s",
            self.server,
            f"certificate {self.default_thumbprint}"
            if self.default_thumbprint
            else "the self-signed certificate",
        )
        return True
