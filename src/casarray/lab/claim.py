"""One lab at a time on a machine's lab addresses.

Every lab listens on the same loopback addresses (127.77.x.x, `lab.topology`), so two
labs in two folders can't run at once: the second's processes would all fail with
"Address already in use" after a minute of retries. The supervisor that runs a lab
claims the addresses in a machine-wide file (`claim_path()`: the lab's folder and the
supervisor's pid), and `lab up` and `lab walkthrough` check it first, refusing within
a second with the folder of the running lab and the command that stops it. A claim
whose supervisor is dead counts for nothing. A lab of another user, whose claim file
can't be read, is still found: something answers on the lab's DNS address.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path

from casarray.errors import CasarrayError
from casarray.lab.topology import DNS_ADDRESS
from casarray.process.status import StatusFile

CLAIMS = "casarray-labs"


class AddressesTaken(CasarrayError):
    """Another lab (or another process) holds the lab's addresses; the message says
    which and how to stop it."""


def claim_path() -> Path:
    """The machine-wide claim of the lab addresses (one file: one address block)."""
    return Path(tempfile.gettempdir()) / CLAIMS / f"{DNS_ADDRESS.rsplit('.', 2)[0]}.json"


def claim(home: Path) -> StatusFile:
    """Claim the lab addresses for the lab in `home` (its supervisor: this process)."""
    path = claim_path()
    path.parent.mkdir(mode=0o1777, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o1777)  # any user's lab may claim the addresses
    file = StatusFile(path)
    file.write({"pid": os.getpid(), "home": str(Path(home).resolve())})
    return file


def check_free(home: Path, dns_ports: tuple[int, ...] = (53, 10_053)) -> None:
    """AddressesTaken when a lab other than the one in `home` runs on this machine."""
    here = str(Path(home).resolve())
    held = StatusFile(claim_path()).read()
    if held is not None:
        if held.get("home") == here:
            return  # this lab's own supervisor: `lab up` says it's running
        raise AddressesTaken(
            f"Another lab is running on this machine's lab addresses (127.77.x.x), in "
            f"{held.get('home')} (supervisor pid {held['pid']}); stop it first with "
            f"`casarray lab down --home {held.get('home')}`."
        )
    for port in dns_ports:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((DNS_ADDRESS, port)) == 0:
                raise AddressesTaken(
                    f"Something already listens on the lab's DNS address {DNS_ADDRESS} "
                    f"port {port} (another user's lab?); stop it first (`casarray lab down "
                    "--home FOLDER` as its user)."
                )
