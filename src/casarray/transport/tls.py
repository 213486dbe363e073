"""STARTTLS for the receive connectors, on the servers' TLS of `pki.server_tls`: the
certificates enabled for SMTP on this server (`Enable-ExchangeCertificate -Services
SMTP`, read through `directory.certificates.serving(server, "SMTP")`), chosen by the
name the client asks for (SNI: an exact name, else a wildcard, else the default), the
default being the newest that covers the server's FQDN, else the newest. With none
enabled, the server's own self-signed certificate (made at first start under
`$CASARRAY_HOME/transport/<server>/`, for the server's FQDN), as the access services
fall back to theirs.

The listeners keep one context for their life (`SmtpTls.context`); its `sni_callback`
hands each handshake the context of the chosen certificate, so `update` (after a
directory change) applies from the next STARTTLS on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from casarray.pki.server_tls import CertificateFiles, Servable, TlsContexts, ensure_self_signed

SERVICE = "SMTP"


def fallback_files(server: str, home: Path | None = None) -> CertificateFiles:
    """Where the self-signed SMTP certificate of `server` is kept."""
    from casarray.config import casarray_home

    folder = (home or casarray_home()) / "transport" / server.lower()
    return CertificateFiles(folder / "smtp.pem", folder / "smtp.key")


def ensure_fallback(server: str, names: Sequence[str]) -> CertificateFiles:
    """The server's self-signed SMTP certificate for `names` (FQDN first), made or
    renewed when missing, about to expire, or not covering them. Blocking."""
    files = fallback_files(server)
    ensure_self_signed(files, names)
    return files


class SmtpTls(TlsContexts):
    """The TLS of one server's receive connectors; `context` goes to every listener."""

    def __init__(self, server: str, fqdn: str, fallback: CertificateFiles) -> None:
        super().__init__(SERVICE, fallback, server=server)
        self.fqdn = fqdn

    def update(self, certificates: Sequence[Servable], names: Sequence[str] = ()) -> bool:
        """Serve `certificates` (enabled for SMTP, newest first) from the next handshake
        on, the default chosen by `names` (the server's FQDN when none are given);
        whether what a client gets changed. Blocking."""
        return super().update(certificates, names or (self.fqdn,))
