"""`$CASARRAY_HOME/lab.json`: what was decided once when the lab was made, and what a
client needs to reach it.

The ports are decided at creation and kept: as root, the standard ports (53, 80, 143,
443, 993) and the Kernel data plane for the balancers; otherwise each port plus 10000
and the Proxy data plane. A lab made as root is not started by another user later (its
ports would move under the clients); `casarray lab reset` makes it anew.

Clients (the Outlook-like client, the Test- cmdlets) read what they need of it with
`casarray.config.lab_network()`: the DNS server's address and port (to resolve the
lab's names), the port offset (to reach every service), and the lab CA's root
certificate (`root_ca`, there once the lab CA has been used: `casarray pki root`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casarray.config import LAB_FILE, LabNetwork, casarray_home, read_lab_file
from casarray.errors import CasarrayError
from casarray.process.ports import UNPRIVILEGED_OFFSET

DNS_PORT = 53
KERNEL, PROXY = "Kernel", "Proxy"


class LabConfigError(CasarrayError):
    """lab.json can't be read, or doesn't fit this process."""


def privileged() -> bool:
    """Whether this process may use the standard ports and the Kernel data plane."""
    from casarray.config import may_admin_network, may_bind_low_ports

    return may_bind_low_ports() and may_admin_network()


@dataclass(frozen=True)
class LabConfig:
    home: Path
    port_offset: int  # 0 (standard ports) or 10000
    dns_address: str
    dns_port: int
    root_ca: Path  # the lab CA's root certificate (PEM); exists once the CA was used
    directory: str  # the directory's URL
    data_plane: str  # the balancers' data plane: Kernel (root) or Proxy
    created: str = ""
    hosts: str = ""  # the namespaces' prefix of a lab on several hosts (`--hosts`), else ""
    # a hosts lab's directory as its processes reach it, inside their hosts (PostgreSQL
    # on DC01's address), when that differs from `directory` (the same server as this
    # machine's own namespace reaches it: its Unix socket); "" otherwise
    hosts_directory: str = ""

    @staticmethod
    def path(home: Path | None = None) -> Path:
        return (home or casarray_home()) / LAB_FILE

    @classmethod
    def load(cls, home: Path | None = None) -> LabConfig | None:
        """The lab's settings, or None when `home` (default $CASARRAY_HOME) holds no lab.
        LabConfigError when the file is there but unreadable."""
        home = Path(home) if home is not None else casarray_home()
        try:
            found = read_lab_file(home)
            if found is None:
                return None
            path, data = found
            network = LabNetwork.parse(home, path, data)
        except ValueError as exc:
            raise LabConfigError(str(exc)) from exc
        try:
            return cls(
                home=home,
                port_offset=network.port_offset,
                dns_address=network.dns_address,
                dns_port=network.dns_port,
                root_ca=network.root_ca,
                directory=str(data["directory"]),
                data_plane=str(data["data_plane"]),
                created=str(data.get("created", "")),
                hosts=str(data.get("hosts", "")),
                hosts_directory=str(data.get("hosts_directory", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabConfigError(f"{path} lacks or has a bad value for {exc}") from exc

    @classmethod
    def decide(
        cls,
        home: Path,
        directory: str,
        dns_address: str,
        hosts: str = "",
        hosts_directory: str = "",
    ) -> LabConfig:
        """The settings of a lab made now by this process (on several hosts, in
        namespaces named from `hosts`, when it isn't "", its processes reaching the
        directory at `hosts_directory` when that is given)."""
        from casarray.pki.ca import root_path

        standard = privileged()
        offset = 0 if standard else UNPRIVILEGED_OFFSET
        return cls(
            home=home,
            port_offset=offset,
            dns_address=dns_address,
            dns_port=DNS_PORT + offset,
            root_ca=root_path(home),
            directory=directory,
            data_plane=KERNEL if standard and shutil.which("nft") else PROXY,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            hosts=hosts,
            hosts_directory=hosts_directory,
        )

    @property
    def process_directory(self) -> str:
        """The directory's URL for the lab's processes (`--directory`)."""
        return self.hosts_directory or self.directory

    @property
    def postgres(self) -> bool:
        """Whether the lab runs its own PostgreSQL server (a hosts lab, in DC01)."""
        return bool(self.hosts and self.hosts_directory)

    def port(self, standard: int) -> int:
        """Where the lab serves what is normally on port `standard`."""
        return standard + self.port_offset

    def with_dns(self, address: str, port: int) -> LabConfig:
        return replace(self, dns_address=address, dns_port=port)

    def check_runnable(self) -> None:
        """LabConfigError when this process can't run the lab as it was made."""
        if self.port_offset == 0 and not privileged():
            raise LabConfigError(
                f"The lab in {self.home} was made as root, on the standard ports; run it "
                "as root, or make it anew for this user with `casarray lab reset`."
            )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["home"] = str(self.home)
        data["root_ca"] = str(self.root_ca)
        return data

    def save(self) -> None:
        path = self.path(self.home)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)
