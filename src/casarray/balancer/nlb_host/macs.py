"""The cluster MAC addresses of Windows NLB's operation modes, pure functions.

- Unicast: 02-BF-w-x-y-z from cluster IP w.x.y.z; NLB puts it on every host's adapter
  in place of its own and sends every frame from 02-<HostID>-w-x-y-z (`masked_mac`),
  so the switch never learns the cluster MAC and floods frames to it.
- Multicast: 03-BF-w-x-y-z, added beside each host's own MAC; one host answers ARP
  for the cluster IP with it (`arp`), which many routers refuse, so Microsoft
  documents a static ARP entry on the router (`ip neigh replace <cluster IP> lladdr
  03:bf:... nud permanent`); hosts on the cluster's subnet learn it by ARP.
- IgmpMulticast: 01-00-5E-7F-y-z, the MAC of IGMP group 239.255.y.z the hosts join,
  so IGMP-snooping switches send cluster frames to the hosts' ports only.
"""

from __future__ import annotations

import ipaddress

from casarray.balancer.nlb_host.config import NlbConfigError, OperationMode

__all__ = ["cluster_mac", "igmp_group", "masked_mac", "multicast_mac", "unicast_mac"]


def _octets(cluster_ip: str) -> bytes:
    try:
        return ipaddress.IPv4Address(cluster_ip).packed
    except ValueError as exc:
        raise NlbConfigError(f"the cluster IP must be IPv4, not {cluster_ip!r}") from exc


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def unicast_mac(cluster_ip: str) -> str:
    return _mac(b"\x02\xbf" + _octets(cluster_ip))


def masked_mac(cluster_ip: str, host_id: int) -> str:
    """Unicast mode's source MAC on the wire: 02-<HostID>-w-x-y-z. Every host has the
    cluster MAC, but none sends a frame from it, so no switch learns its port and
    frames to the cluster MAC are flooded to every host."""
    if not 1 <= host_id <= 32:
        raise NlbConfigError(f"HostID {host_id} is not 1..32")
    return _mac(bytes((0x02, host_id)) + _octets(cluster_ip))


def multicast_mac(cluster_ip: str) -> str:
    return _mac(b"\x03\xbf" + _octets(cluster_ip))


def igmp_group(cluster_ip: str) -> str:
    """The IGMP group of IgmpMulticast mode: 239.255.y.z."""
    octets = _octets(cluster_ip)
    return f"239.255.{octets[2]}.{octets[3]}"


def cluster_mac(cluster_ip: str, mode: OperationMode) -> str:
    """The cluster MAC (lower-case, colon-separated) of `mode`."""
    if mode is OperationMode.UNICAST:
        return unicast_mac(cluster_ip)
    if mode is OperationMode.MULTICAST:
        return multicast_mac(cluster_ip)
    return _mac(b"\x01\x00\x5e\x7f" + _octets(cluster_ip)[2:])
