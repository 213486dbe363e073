"""How the client reaches a server: the name looked up in DNS (`resolver`), a TCP
connection to each address in turn, TLS verified against the trusted roots with the
name checked (and sent as SNI). Nothing bypasses DNS or the certificate check.

Where the settings come from, first found wins: the command's options (`--dns`,
`--ca`, `--port-offset`), what the profile was made with, the lab the client runs in
(`$CASARRAY_HOME/lab.json`, written by `casarray lab`: its DNS server, its port offset,
its CA's root), else the system's resolver and CAs and offset 0. The offset is added
to the standard ports a client finds by itself (Autodiscover's 443, an SRV record's
port): a lab whose servers may not bind ports below 1024 listens on each plus 10000.
Ports the servers name (Autodiscover's IMAP port) are already the real ones.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from casarray.client.errors import CertificateRejected, ClientError, ConnectFailed
from casarray.client.resolver import NameResolver, parse_server
from casarray.config import LabNetwork, casarray_home, lab_network

CONNECT_TIMEOUT = 3.0


def lab_config(home: Path | None = None) -> LabNetwork | None:
    """The network settings of the lab the client runs in (`casarray.config`), or None
    outside a lab; ClientError when its file is damaged."""
    try:
        return lab_network(home)
    except ValueError as exc:
        raise ClientError(f"the lab's settings can't be read: {exc}") from None


@dataclass(frozen=True)
class Connection:
    """A TLS connection made to `name`, and what making it took (seconds)."""

    sock: ssl.SSLSocket
    name: str
    address: str  # "IP:PORT" connected to
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Network:
    """The client's view of the network: who resolves names, the port offset, the
    trusted roots (None: the system's CAs)."""

    resolver: NameResolver = field(default_factory=NameResolver)
    port_offset: int = 0
    cafile: Path | None = None
    connect_timeout: float = CONNECT_TIMEOUT

    @classmethod
    def configure(
        cls,
        dns: str | None = None,
        cafile: str | Path | None = None,
        port_offset: int | None = None,
        *,
        home: Path | None = None,
    ) -> Network:
        """The network from the options given, the lab, or the system (module doc);
        `home` is the CASARRAY_HOME to look in (default: the environment's). ValueError
        for a bad `dns`, ClientError for a damaged lab.json."""
        lab = lab_config(home)
        if dns is not None:
            resolver = NameResolver(*parse_server(dns))
        elif lab is not None:
            resolver = NameResolver(lab.dns_address, int(lab.dns_port))
        else:
            resolver = NameResolver()
        if port_offset is None:
            port_offset = int(lab.port_offset) if lab is not None else 0
        if cafile is None:
            base = Path(lab.home) if lab is not None else (home or casarray_home())
            root = lab.root_ca if lab is not None else base / "pki" / "lab-root.pem"
            cafile = root if root.is_file() else None
        return cls(
            resolver=resolver, port_offset=port_offset, cafile=Path(cafile) if cafile else None
        )

    def tls_context(self) -> ssl.SSLContext:
        """A client context: the trusted roots, the host name checked, TLS 1.2 or newer."""
        if self.cafile is not None and not self.cafile.is_file():
            raise CertificateRejected(f"the CA file {self.cafile} does not exist")
        context = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def trust(self) -> str:
        return f"the CA in {self.cafile}" if self.cafile else "the system's CAs"

    def connect(self, name: str, port: int, *, timeout: float = 10.0) -> Connection:
        """A verified TLS connection to `name`:`port`, trying each address of the name
        in turn. LookupFailed, ConnectFailed or CertificateRejected."""
        started = time.perf_counter()
        addresses = self.resolver.addresses(name)
        resolved = time.perf_counter()
        context = self.tls_context()
        failures: list[str] = []
        for address in addresses:
            t0 = time.perf_counter()
            try:
                raw = socket.create_connection((address, port), self.connect_timeout)
            except OSError as exc:
                failures.append(f"{_hostport(address, port)}: {_reason(exc)}")
                continue
            t1 = time.perf_counter()
            try:
                raw.settimeout(timeout)
                sock = context.wrap_socket(raw, server_hostname=name)
            except ssl.SSLCertVerificationError as exc:
                raw.close()
                raise CertificateRejected(
                    f"the certificate of {name} ({_hostport(address, port)}) is not "
                    f"trusted: {exc.verify_message or exc.reason} (trusting {self.trust()})"
                ) from None
            except (OSError, ssl.SSLError) as exc:
                with contextlib.suppress(OSError):
                    raw.close()
                failures.append(f"{_hostport(address, port)}: TLS failed: {_reason(exc)}")
                continue
            t2 = time.perf_counter()
            timings = {"resolve": resolved - started, "connect": t1 - t0, "tls": t2 - t1}
            return Connection(sock, name, _hostport(address, port), timings)
        raise ConnectFailed(f"can't connect to {name} port {port}: " + "; ".join(failures))


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
