"""What a host does to its own network stack to be an NLB cluster member, in its own
network namespace (root): the cluster IP on the cluster interface, the cluster MAC of
the operation mode, and the sysctls the filter relies on.

- `net.netfilter.nf_conntrack_tcp_loose=0`: otherwise conntrack takes a mid-stream
  packet of a connection another host accepted as a new connection here (ESTABLISHED
  after one ACK) and this host answers it with a reset.
- `net.ipv4.conf.{all,<if>}.arp_announce=2`: ARP requests the host sends carry its own
  address, never the cluster IP, so nobody learns the cluster IP at a host's MAC.
- Multicast: the 03-BF MAC is added to the interface's multicast filter (`ip maddr
  add`); IgmpMulticast: the 01-00-5E-7F MAC likewise, and the driver joins group
  239.255.y.z on its heartbeat socket so IGMP snooping forwards the group here.
- Unicast: the interface's own MAC is replaced by the 02-BF cluster MAC (every host
  the same), and the filter's egress chain masks the source of every frame as
  02-<HostID> (`nft_rules`), so switches never learn the cluster MAC and flood frames
  to it to every host. One host's driver answers ARP for the cluster IP with the
  cluster MAC (`arp`), so the router needs no static entry. `undo` puts the
  interface's own MAC back (known only to the process that replaced it: after a
  crash, the next `prepare` keeps the cluster MAC and `undo` leaves it).

The sysctl for conntrack exists once nf_conntrack is loaded in the namespace, so
`prepare_conntrack` runs after the filter table (whose `ct` rules load it).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from casarray.balancer.nlb_host.config import NlbHostConfig, OperationMode
from casarray.balancer.nlb_host.macs import cluster_mac
from casarray.errors import CasarrayError

__all__ = ["HostSetupError", "mac_of", "prepare", "prepare_conntrack", "undo"]

log = logging.getLogger("casarray.balancer.nlb_host")

SYSCTL = Path("/proc/sys")
SYSFS_NET = Path("/sys/class/net")


class HostSetupError(CasarrayError, RuntimeError):
    """The host's network stack could not be set up for NLB (not root, no `ip`, ...)."""


def _ip(args: Sequence[str], *, check: bool = True) -> bool:
    binary = shutil.which("ip")
    if binary is None:
        raise HostSetupError("ip not found: install the Debian package iproute2")
    result = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0 and check:
        raise HostSetupError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.returncode == 0


def _sysctl(name: str, value: str) -> None:
    path = SYSCTL / name.replace(".", "/")
    try:
        path.write_text(value)
    except OSError as exc:
        raise HostSetupError(f"can't set {name}={value}: {exc}") from exc


_own_macs: dict[str, str] = {}  # interface -> its MAC before Unicast replaced it


def mac_of(interface: str) -> str:
    """The interface's MAC as the kernel has it now (lower-case, colons)."""
    try:
        return (SYSFS_NET / interface / "address").read_text().strip()
    except OSError as exc:
        raise HostSetupError(f"can't read the MAC of {interface}: {exc}") from exc


def prepare(config: NlbHostConfig) -> None:
    """Cluster IP, cluster MAC and ARP settings on the cluster interface."""
    if config.mode is OperationMode.UNICAST:
        mac = cluster_mac(config.cluster_ip, config.mode)
        current = mac_of(config.interface)
        if current != mac:
            _own_macs.setdefault(config.interface, current)
            _ip(["link", "set", "dev", config.interface, "address", mac])
    for scope in ("all", config.interface):
        _sysctl(f"net.ipv4.conf.{scope}.arp_announce", "2")
    # already there after a crash: `ip addr add` then fails with "File exists"
    _ip(["addr", "replace", f"{config.cluster_ip}/32", "dev", config.interface])
    if config.mode is not OperationMode.UNICAST:
        mac = cluster_mac(config.cluster_ip, config.mode)
        _ip(["maddr", "add", mac, "dev", config.interface], check=False)


def prepare_conntrack() -> None:
    """nf_conntrack_tcp_loose=0 (after the filter table has loaded conntrack)."""
    _sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")


def undo(config: NlbHostConfig) -> None:
    """Take the cluster IP and MAC off the interface (what is already gone is fine)."""
    _ip(["addr", "del", f"{config.cluster_ip}/32", "dev", config.interface], check=False)
    if config.mode is not OperationMode.UNICAST:
        mac = cluster_mac(config.cluster_ip, config.mode)
        _ip(["maddr", "del", mac, "dev", config.interface], check=False)
    elif config.interface in _own_macs:
        own = _own_macs.pop(config.interface)
        _ip(["link", "set", "dev", config.interface, "address", own], check=False)
