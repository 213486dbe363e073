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


def claim_path(block: str = "") -> Path:
    """The machine-wide claim of the lab addresses (one file: one address block; a lab
    on several hosts claims its namespaces' prefix instead, `block`)."""
    block = block or DNS_ADDRESS.rsplit(".", 2)[0]
    return Path(tempfile.gettempdir()) / CLAIMS / f"{block}.json"


def claim(home: Path, block: str = "") -> StatusFile:
    """Claim the lab addresses (or `block`) for the lab in `home` (its supervisor: this
    process)."""
    path = claim_path(block)
    path.parent.mkdir(mode=0o1777, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(path.parent, 0o1777)  # any user's lab may claim the addresses
    file = StatusFile(path)
    file.write({"pid": os.getpid(), "home": str(Path(home).resolve())})
    return file


def check_free(home: Path, dns_ports: tuple[int, ...] = (53, 10_053), block: str = "") -> None:
    """AddressesTaken when a lab other than the one in `home` runs on this machine (on
    the lab addresses, or on the namespaces `block` of a lab on several hosts)."""
    here = str(Path(home).resolve())
    held = StatusFile(claim_path(block)).read()
    if held is not None:
        if held.get("home") == here:
            return  # this lab's own supervisor: `lab up` says it's running
        where = f"namespaces {block}*" if block else "lab addresses (127.77.x.x)"
        raise AddressesTaken(
            f"Another lab is running on this machine's {where}, in "
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
