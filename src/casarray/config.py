"""Where casarray keeps its state: `$CASARRAY_HOME` and the directory URL."""

from __future__ import annotations

import os
from pathlib import Path


def casarray_home() -> Path:
    """The state folder: `$CASARRAY_HOME`, or `~/.casarray`."""
    home = os.environ.get("CASARRAY_HOME")
    return Path(home).expanduser() if home else Path.home() / ".casarray"


def directory_url(explicit: str | None = None) -> str:
    """The directory's database URL: the argument, `$CASARRAY_DIRECTORY`, or the SQLite default.

    A bare file path is taken as a SQLite file.
    """
    url = explicit or os.environ.get("CASARRAY_DIRECTORY")
    if not url:
        return f"sqlite:///{casarray_home() / 'directory.db'}"
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


CAP_NET_BIND_SERVICE = 10  # bind ports below 1024
CAP_NET_ADMIN = 12  # nftables, conntrack


def has_capability(number: int) -> bool:
    """Whether this process holds Linux capability `number` (effective set), e.g. root,
    or root with some capabilities dropped (`setpriv --bounding-set -net_admin`), or a
    user granted one. Elsewhere (no /proc): whether it runs as root."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> number & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def may_bind_low_ports() -> bool:
    return has_capability(CAP_NET_BIND_SERVICE)


def may_admin_network() -> bool:
    """Whether this process may change nftables and conntrack (the Kernel data plane)."""
    return has_capability(CAP_NET_ADMIN)
