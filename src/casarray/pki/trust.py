"""Whether a certificate chains to a root the servers trust, as Exchange's Status and
RootCAType say it.

The roots: the lab CA's (RootCAType Enterprise, as a Windows lab's Enterprise CA) and
the system's CA bundle (ThirdParty). A certificate that New-ExchangeCertificate made
self-signed is Valid with RootCAType Registry, as Exchange shows its own; any other
self-signed certificate, or one whose chain ends at an unknown issuer, is Untrusted
(RootCAType None). Checked once, when the certificate enters the directory, so every
host shows the same Status; validity dates are checked whenever it is read.
"""

from __future__ import annotations

import functools
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from casarray.pki import ca
from casarray.pki import certificates as certs

VALID = "Valid"
UNTRUSTED = "Untrusted"
PENDING = "PendingRequest"
DATE_INVALID = "DateInvalid"

ENTERPRISE = "Enterprise"
THIRD_PARTY = "ThirdParty"
REGISTRY = "Registry"
NONE = "None"
UNKNOWN = "Unknown"
MAX_DEPTH = 8


@dataclass(frozen=True)
class Verdict:
    status: str  # Valid or Untrusted
    root_ca_type: str


@functools.lru_cache(maxsize=1)
def system_roots() -> tuple[x509.Certificate, ...]:
    """The system's trusted roots (its CA bundle), or none when there is no bundle."""
    paths = ssl.get_default_verify_paths()
    for name in (paths.cafile, paths.openssl_cafile):
        if name and Path(name).is_file():
            try:
                with warnings.catch_warnings():  # a few old roots have odd serial numbers
                    warnings.simplefilter("ignore")
                    return tuple(x509.load_pem_x509_certificates(Path(name).read_bytes()))
            except ValueError:
                continue
    return ()


def verdict(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate] = (),
    *,
    made_here: bool = False,
    home: Path | None = None,
) -> Verdict:
    """The Status (Valid or Untrusted) and RootCAType of `leaf` with its chain."""
    if certs.is_self_signed(leaf) and made_here:
        return Verdict(VALID, REGISTRY)
    lab = ca.existing_root(home)
    anchors: list[tuple[x509.Certificate, str]] = []
    if lab is not None:
        anchors.append((lab, ENTERPRISE))
    anchors.extend((root, THIRD_PARTY) for root in system_roots())
    current = leaf
    pool = list(intermediates)
    for _ in range(MAX_DEPTH):
        for anchor, kind in anchors:
            if current == anchor or (
                current.issuer == anchor.subject and certs.issued_by(current, anchor)
            ):
                return Verdict(VALID, kind)
        issuer = next((c for c in pool if certs.issued_by(current, c)), None)
        if issuer is None or issuer == current:
            break
        pool.remove(issuer)
        current = issuer
    return Verdict(UNTRUSTED, NONE)
