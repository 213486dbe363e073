"""Where casarray keeps its state: `$CASARRAY_HOME` and the directory URL."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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


LAB_FILE = "lab.json"


@dataclass(frozen=True)
class LabNetwork:
    """What a client needs to reach the lab whose folder it runs in: the lab's DNS
    server, the offset of every port (10000 for a lab without root), and the lab CA's
    root certificate. `casarray.lab.config.LabConfig` writes them in `lab.json`; any
    client reads them here, as a domain-joined Windows client gets its DNS server and
    its enterprise root from the domain."""

    home: Path
    dns_address: str
    dns_port: int
    port_offset: int
    root_ca: Path

    @classmethod
    def parse(cls, home: Path, path: Path, data: dict[str, Any]) -> LabNetwork:
        """The settings in `data`, read from `path`; ValueError naming what is bad."""
        try:
            return cls(
                home=home,
                dns_address=str(data["dns_address"]),
                dns_port=int(data["dns_port"]),
                port_offset=int(data["port_offset"]),
                root_ca=Path(data["root_ca"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} lacks or has a bad value for {exc}") from exc


def read_lab_file(home: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The path and content of `lab.json` in `home` (default $CASARRAY_HOME), or None
    outside a lab; ValueError naming the file when it is there but unreadable. The one
    reader of the file: `lab_network()` here, `LabConfig.load()` for the lab."""
    home = Path(home) if home is not None else casarray_home()
    path = home / LAB_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"Can't read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"Can't read {path}: not a JSON object")
    return path, data


def lab_network(home: Path | None = None) -> LabNetwork | None:
    """The network settings of the lab in `home` (default $CASARRAY_HOME), or None
    outside a lab; ValueError naming the file when it is there but damaged."""
    home = Path(home) if home is not None else casarray_home()
    found = read_lab_file(home)
    if found is None:
        return None
    path, data = found
    return LabNetwork.parse(home, path, data)
