"""The TLS of the servers: the certificates a server serves for one of its services
(`Enable-ExchangeCertificate -Services IMAP`, `IIS` or `SMTP`), chosen by the name the
client asks for, followed live, and the self-signed certificate a server serves until
one is enabled. Both tiers use it: the Client Access services (`access.tls`: IMAP on
143 and 993, IIS on 443) and the Hub Transport's receive connectors (`transport.tls`:
STARTTLS on 25 and 587).

What a service serves. The certificates enabled for it on the server are all served,
chosen by the name the client asks for (SNI): an exact name of a certificate, else a
wildcard one (`*.lab.net` covers one label, RFC 6125), else the default. The default
is the first certificate (newest first) that covers every DNS name of the server (the
names its caller gives: the FQDN, and for a Client Access server its array's FQDN),
else the first that covers one of them, else the newest. A server with no certificate
enabled for the service serves its self-signed one, so nothing breaks before the PKI
is used. The server reads them again at each change of the directory
(Enable-ExchangeCertificate makes one): new handshakes get them with no restart.

The self-signed fallback (`ensure_self_signed`): ECDSA P-256, for the DNS names and
addresses the caller gives (the first DNS name is the subject), kept as a PEM
certificate (which clients may trust) and its private key (mode 0600) where the
caller says, and made again when the names it must cover change or it is about to
expire.

Live reload (`TlsContexts`). asyncio and uvicorn keep the context they were given for
the life of a listener, so each service has one listener context that is never
replaced; it holds no certificate of its own, and its `sni_callback` hands every
handshake the context of the chosen certificate (`ssl_object.context = chosen`).
OpenSSL calls that callback for every ClientHello, with the name None when the client
sends no SNI (measured with `openssl s_client -noservername`, TLS 1.2 and 1.3), so
those clients get the default too; a STARTTLS upgrade goes through it the same way. A
change (a certificate enabled, the fallback renewed) builds the new per-certificate
contexts aside and swaps one immutable table in: the next handshake uses it, and
sessions already open keep the keys they agreed on, so nothing is dropped. (Loading a
new chain into the listener context instead would keep a certificate of the other key
type next to it: OpenSSL has one slot per key type, and an ECDSA client would still
be served the old ECDSA certificate.)

Key material. `ssl` loads keys from files only; the decrypted PEM of an enabled
certificate is written to an anonymous memory file (`memfd_create`, opened through
`/proc/self/fd`) that never reaches a disk and is closed right after loading. Where
there is none, to a file of mode 0600 in a new folder of mode 0700, removed right
after loading. The key is never logged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from casarray.pki.files import PRIVATE_FILE, PUBLIC_FILE, locked, write_file

log = logging.getLogger("casarray.server")

VALIDITY = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate (PEM) and its private key (PEM, mode 0600)."""

    certificate: Path
    key: Path


def _split_names(names: Iterable[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses), each once, in order, DNS names lower-cased."""
    dns: list[str] = []
    ips: list[str] = []
    for name in names:
        text = name.strip().rstrip(".")
        if not text:
            continue
        try:
            address = str(ipaddress.ip_address(text))
        except ValueError:
            if text.lower() not in dns:
                dns.append(text.lower())
        else:
            if address not in ips:
                ips.append(address)
    return dns, ips


def _covers(pem: bytes, dns: Sequence[str], ips: Sequence[str], now: dt.datetime) -> bool:
    """Whether the certificate `pem` names exactly `dns` and `ips` and is valid for
    longer than RENEW_BEFORE."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have_dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    have_ips = {str(address) for address in san.get_values_for_type(x509.IPAddress)}
    if have_dns != set(dns) or have_ips != set(ips):
        return False
    return cert.not_valid_after_utc - now > RENEW_BEFORE and cert.not_valid_before_utc <= now


def _make_certificate(
    dns: Sequence[str], ips: Sequence[str], now: dt.datetime
) -> tuple[bytes, bytes]:
    """A new (certificate PEM, key PEM): self-signed, ECDSA P-256, for a TLS server."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from casarray.pki.certificates import CLOCK_SKEW, pem, server_builder
    from casarray.pki.keys import private_pem

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, dns[0] if dns else ips[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "casarray"),
        ]
    )
    public = key.public_key()
    cert = (
        server_builder(subject, public, dns, now - CLOCK_SKEW, now + VALIDITY, addresses=ips)
        .issuer_name(subject)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return pem(cert), private_pem(key)


def ensure_self_signed(files: CertificateFiles, names: Iterable[str]) -> bool:
    """Make `files` hold a self-signed certificate covering exactly `names` (DNS names
    and IP addresses; the first DNS name is the subject) unless they already do and it
    is not about to expire. Returns whether a new certificate was made. Two processes
    at once make it once (a lock in its folder). Blocking."""
    dns, ips = _split_names(names)
    if not dns and not ips:
        raise ValueError("a certificate needs at least one name")
    folder = files.certificate.parent
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        folder.chmod(0o755)
    now = dt.datetime.now(dt.UTC)
    with locked(folder):
        with contextlib.suppress(OSError):
            if files.key.exists() and _covers(files.certificate.read_bytes(), dns, ips, now):
                return False
        cert_pem, key_pem = _make_certificate(dns, ips, now)
        write_file(files.key, key_pem, PRIVATE_FILE)
        write_file(files.certificate, cert_pem, PUBLIC_FILE)
    return True


def _bare_server_context() -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) without a certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def server_context(files: CertificateFiles) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) with the certificate of `files`."""
    context = _bare_server_context()
    context.load_cert_chain(str(files.certificate), str(files.key))
    return context


def client_context(cafile: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """A TLS client context that trusts `cafile` (a server's PEM) or the system's CAs."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


# -- the certificates enabled for a service, chosen by SNI, reloaded live ---------------


class Servable(Protocol):
    """What a server needs of a certificate enabled for one of its services
    (`directory.certificates.serving` returns these)."""

    @property
    def thumbprint(self) -> str: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def certificate_pem(self) -> bytes: ...

    @property
    def key_pem(self) -> bytes: ...


def host_name(name: str) -> str:
    """`name` as certificates spell it: lower-case ASCII (IDNA A-labels), without a
    final dot; "" when it can't be a host name."""
    text = name.strip().rstrip(".")
    try:
        return text.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return ""


def matches(pattern: str, name: str) -> bool:
    """Whether the certificate name `pattern` covers the host name `name` (both as
    `host_name` gives them): the same name, or a wildcard `*.lab.net` for one label
    more (`mail.lab.net`; not `lab.net`, not `a.mail.lab.net`: RFC 6125, 6.4.3). A
    wildcard directly under a top-level domain (`*.net`) covers nothing."""
    if not name:
        return False
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "." not in pattern[2:]:
        return False
    first, dot, parent = name.partition(".")
    return bool(first and dot) and first != "*" and parent == pattern[2:]


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip())
    except ValueError:
        return False
    return True


def choose_default(certificates: Sequence[Servable], names: Iterable[str]) -> Servable | None:
    """The certificate a service serves by default: of `certificates` (newest first),
    the first that covers every DNS name of `names` (the server's FQDN and its array's
    FQDN; addresses are left out), else the first that covers one, else the first.
    None when there is none."""
    own = [name for name in dict.fromkeys(map(host_name, names)) if name and not _is_address(name)]
    best: Servable | None = None
    best_score = 0
    for certificate in certificates:
        patterns = [host_name(pattern) for pattern in certificate.names]
        score = sum(any(matches(pattern, name) for pattern in patterns) for name in own)
        if score > best_score:
            best, best_score = certificate, score
    if best is None and certificates:
        best = certificates[0]
    return best


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _memory_file(data: bytes) -> int | None:
    """An anonymous memory file holding `data`, readable by path through /proc/self/fd
    (Linux), or None where there is no such thing."""
    create = getattr(os, "memfd_create", None)
    if create is None:
        return None
    try:
        fd = create("casarray-tls", getattr(os, "MFD_CLOEXEC", 0))
    except OSError:
        return None
    try:
        _write_all(fd, data)
        if os.path.exists(f"/proc/self/fd/{fd}"):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


@contextlib.contextmanager
def _key_file(data: bytes) -> Iterator[str]:
    """A path from which `data` (PEM holding a private key) can be read while the
    block runs: a memory file, else a file of mode 0600 in a new folder of mode 0700,
    removed when the block ends."""
    fd = _memory_file(data)
    if fd is not None:
        try:
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    folder = tempfile.mkdtemp(prefix="casarray-tls-")  # mode 0700
    try:
        path = os.path.join(folder, "certificate.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    raise _EncryptedKey


_LOAD_ERRORS = {
    "KEY_VALUES_MISMATCH": "the private key does not belong to the certificate",
    "NO_START_LINE": "no PEM certificate or private key was found",
}


def context_from_pem(certificate_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or newer) serving `certificate_pem` (PEM: the
    certificate, then the chain) with `key_pem` (PEM, not encrypted). The key goes
    through memory only where the system allows (see the module's docstring).
    ValueError says what is wrong with them."""
    if b"-----BEGIN" not in certificate_pem:
        raise ValueError("the certificate is not in PEM format")
    if b"PRIVATE KEY-----" not in key_pem:
        raise ValueError("the private key is not in PEM format")
    if b"ENCRYPTED" in key_pem:
        raise ValueError("the private key is encrypted (it must be given decrypted)")
    context = _bare_server_context()
    with _key_file(certificate_pem.rstrip() + b"\n" + key_pem) as path:
        try:
            context.load_cert_chain(path, password=_no_password)
        except _EncryptedKey:
            raise ValueError("the private key is encrypted (it must be given decrypted)") from None
        except ssl.SSLError as exc:
            reason = _LOAD_ERRORS.get(exc.reason or "", exc.reason or str(exc))
            raise ValueError(f"the certificate and private key can't be loaded: {reason}") from None
    return context


@dataclass(frozen=True)
class Selection:
    """What a service serves at one moment; immutable, replaced whole on a change.
    Thumbprint None is the self-signed fallback."""

    default: str | None
    contexts: Mapping[str | None, ssl.SSLContext]
    exact: Mapping[str, str]  # host name -> thumbprint
    wildcard: Mapping[str, str]  # parent domain ("lab.net" for "*.lab.net") -> thumbprint

    def thumbprint_for(self, server_name: str | None) -> str | None:
        """The certificate for a client that asked for `server_name` (SNI; None: it
        didn't): an exact name, else a wildcard, else the default."""
        if server_name:
            name = host_name(server_name)
            chosen = self.exact.get(name)
            if chosen is not None:
                return chosen
            first, dot, parent = name.partition(".")
            if first and dot and first != "*":
                chosen = self.wildcard.get(parent)
                if chosen is not None:
                    return chosen
        return self.default

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        return self.contexts[self.thumbprint_for(server_name)]

    def routes(self) -> tuple[object, ...]:
        """What decides the certificate of every handshake (to tell a real change)."""
        return (self.default, dict(self.exact), dict(self.wildcard))


class TlsContexts:
    """The TLS of one service (IMAP, IIS or SMTP) of one server.

    `context` is the listeners' context, the same object for the life of the server;
    its `sni_callback` gives each handshake the context of the certificate chosen by
    the current `Selection`. `update` (the certificates enabled for the service) and
    `reload_fallback` (the self-signed files renewed) swap in a new selection, used
    from the next handshake on; open sessions are not touched."""

    def __init__(self, service: str, fallback: CertificateFiles, *, server: str = "") -> None:
        self.service = service
        self.server = server
        self._fallback_files = fallback
        self._fallback = server_context(fallback)
        self._lock = threading.Lock()
        self._certificates: tuple[Servable, ...] = ()
        self._names: tuple[str, ...] = ()
        self._loaded: dict[str, ssl.SSLContext] = {}
        self._seen: tuple[object, ...] | None = None
        self._selection = self._select()
        self.context = _bare_server_context()
        self.context.sni_callback = self._on_client_hello

    def _on_client_hello(
        self,
        ssl_object: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        _listener: ssl.SSLContext,
    ) -> None:
        ssl_object.context = self._selection.context_for(server_name)

    @property
    def selection(self) -> Selection:
        return self._selection

    @property
    def default(self) -> str | None:
        """The thumbprint of the certificate served by default (None: self-signed)."""
        return self._selection.default

    def thumbprint_for(self, server_name: str | None) -> str | None:
        """The thumbprint served to a client asking for `server_name` (None: self-signed)."""
        return self._selection.thumbprint_for(server_name)

    def update(self, certificates: Sequence[Servable], names: Sequence[str] = ()) -> bool:
        """Serve `certificates` (those enabled for the service, newest first) from the
        next handshake on; `names` are the server's (FQDN, array FQDN), which choose the
        default. A certificate that can't be loaded is left out and logged. Returns
        whether what a client gets changed. Blocking (it loads keys); any thread."""
        seen = (tuple((c.thumbprint, tuple(c.names)) for c in certificates), tuple(names))
        with self._lock:
            if seen == self._seen:
                return False
            self._seen = seen
            loaded: dict[str, ssl.SSLContext] = {}
            usable: list[Servable] = []
            for certificate in certificates:
                thumbprint = certificate.thumbprint
                if thumbprint in loaded:
                    continue
                context = self._loaded.get(thumbprint)
                if context is None:
                    try:
                        context = context_from_pem(certificate.certificate_pem, certificate.key_pem)
                    except ValueError as exc:
                        log.error(
                            "%s: can't serve certificate %s for %s: %s",
                            self.server,
                            thumbprint,
                            self.service,
                            exc,
                        )
                        continue
                loaded[thumbprint] = context
                usable.append(certificate)
            self._loaded = loaded
            self._certificates = tuple(usable)
            self._names = tuple(names)
            return self._install()

    def reload_fallback(self) -> None:
        """Load the self-signed certificate's files again (they were renewed).
        OSError or ssl.SSLError if they can't be read; then nothing changes."""
        context = server_context(self._fallback_files)
        with self._lock:
            self._fallback = context
            self._install(force=True)

    def _install(self, *, force: bool = False) -> bool:
        previous = self._selection
        self._selection = self._select()
        changed = self._selection.routes() != previous.routes()
        if changed or force:
            self._describe()
        return changed

    def _select(self) -> Selection:
        contexts: dict[str | None, ssl.SSLContext] = {None: self._fallback}
        exact: dict[str, str] = {}
        wildcard: dict[str, str] = {}
        for certificate in self._certificates:  # newest first: the first keeps a name
            contexts[certificate.thumbprint] = self._loaded[certificate.thumbprint]
            for raw in certificate.names:
                name = host_name(raw)
                if name.startswith("*."):
                    if "." in name[2:]:
                        wildcard.setdefault(name[2:], certificate.thumbprint)
                elif name:
                    exact.setdefault(name, certificate.thumbprint)
        default = choose_default(self._certificates, self._names)
        return Selection(
            default=default.thumbprint if default is not None else None,
            contexts=contexts,
            exact=exact,
            wildcard=wildcard,
        )

    def _describe(self) -> None:
        selection = self._selection
        if selection.default is None:
            log.info("%s: %s serves the self-signed certificate", self.server, self.service)
            return
        default = next(c for c in self._certificates if c.thumbprint == selection.default)
        log.info(
            "%s: %s serves certificate %s (%s) by default%s",
            self.server,
            self.service,
            default.thumbprint,
            ", ".join(default.names),
            f", {len(self._certificates)} chosen by name (SNI)"
            if len(self._certificates) > 1
            else "",
        )
