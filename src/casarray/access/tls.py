"""TLS for the access services: which certificates a Client Access server serves,
on the servers' TLS of `pki.server_tls` (SNI, live reload, the self-signed fallback).

What a service serves. The certificates enabled for it on this server
(`Enable-ExchangeCertificate -Services IMAP` or `IIS`; `directory.certificates`),
chosen by SNI, with as default the one covering the server's DNS names: its FQDN and
its array's FQDN. The runner, in each worker process, reads them again at each change
of the directory's topology version (Enable-ExchangeCertificate makes one, `refresh`):
new handshakes get them within a second, with no restart.

The self-signed fallback. A server makes its own certificate at first start, whose
subject alternative names are the server's FQDN, its IP address and the FQDN of its
site's client access array. It is kept in `$CASARRAY_HOME/certs/<server>.pem` (the
certificate, which clients may trust) and `<server>.key` (the private key, mode
0600), and made again when the names it must cover change (an array created later,
say) or it is about to expire.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from casarray.config import casarray_home
from casarray.pki.server_tls import (
    CertificateFiles,
    Selection,
    Servable,
    TlsContexts,
    choose_default,
    client_context,
    context_from_pem,
    ensure_self_signed,
    host_name,
    matches,
    server_context,
)

if TYPE_CHECKING:
    from casarray.directory import Directory

__all__ = [
    "IIS",
    "IMAP",
    "SERVICES",
    "CertificateFiles",
    "Selection",
    "Servable",
    "TlsContexts",
    "certificate_files",
    "choose_default",
    "client_context",
    "context_from_pem",
    "enabled_certificates",
    "ensure_certificate",
    "host_name",
    "matches",
    "refresh",
    "server_context",
]

# The services whose certificates the access servers serve (Enable-ExchangeCertificate
# -Services): IMAP on 143 (STARTTLS) and 993, IIS (HTTPS) on 443.
IMAP = "IMAP"
IIS = "IIS"
SERVICES = (IMAP, IIS)


def certificate_files(server: str, home: Path | None = None) -> CertificateFiles:
    """Where the self-signed certificate of `server` is kept."""
    folder = (home or casarray_home()) / "certs"
    return CertificateFiles(folder / f"{server}.pem", folder / f"{server}.key")


def ensure_certificate(
    server: str, names: Iterable[str], home: Path | None = None
) -> tuple[CertificateFiles, bool]:
    """The self-signed certificate of `server` covering exactly `names` (DNS names and
    IP addresses; the first DNS name is the subject), made if missing or stale.
    Returns the files and whether a new certificate was made."""
    files = certificate_files(server, home)
    return files, ensure_self_signed(files, names)


def enabled_certificates(directory: Directory, server: str, service: str) -> list[Servable]:
    """The certificates enabled for `service` on `server`, newest first. Blocking."""
    return list(directory.certificates.serving(server, service))


def refresh(
    directory: Directory, server: str, names: Sequence[str], services: Iterable[TlsContexts]
) -> bool:
    """Make each service of `server` serve what the directory enables for it now;
    `names` are the server's (FQDN, address, array FQDN). Returns whether any changed.
    Blocking."""
    changed = False
    for contexts in services:
        certificates = enabled_certificates(directory, server, contexts.service)
        changed = contexts.update(certificates, names) or changed
    return changed
