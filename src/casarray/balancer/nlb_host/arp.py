"""The one ARP answer for the cluster IP, sans-IO: Ethernet frames in, frames out.

The kernel of a member host never answers ARP for the cluster IP (the filter's `arp`
table drops those requests before the kernel's ARP sees them): all hosts have the
address, and N answers, or an answer with a host's own MAC, would tie the cluster IP
to one host. Instead one host, the `Membership.answers_arp` one (the live member with
the best HostPriority that still serves), answers with the **cluster MAC** of the
operation mode: 02-BF-... (Unicast), 03-BF-... (Multicast), 01-00-5E-7F-... (IGMP).
Routers that refuse an ARP answer naming a multicast MAC need the static entry
Microsoft documents; hosts on the cluster's own subnet (clients) learn it by ARP.

The answer's Ethernet source is the host's own MAC (in Unicast mode the masked
02-<HostID> one, as every frame of the host), so switches learn nothing of the
cluster MAC.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["ETH_P_ARP", "ArpRequest", "answer", "mac_bytes", "parse_request"]

ETH_P_ARP = 0x0806
_HEADER = struct.Struct("!6s6sH")  # Ethernet: destination, source, EtherType
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # Ethernet/IPv4 ARP body
_REQUEST, _REPLY = 1, 2


@dataclass(frozen=True)
class ArpRequest:
    sender_mac: bytes
    sender_ip: bytes
    target_ip: bytes


def mac_bytes(mac: str) -> bytes:
    """ "03:bf:c6:13:c8:64" -> 6 bytes; ValueError if it isn't a MAC."""
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    return bytes(int(p, 16) for p in parts)


def parse_request(frame: bytes) -> ArpRequest | None:
    """The Ethernet/IPv4 ARP request in `frame`, or None for anything else (a reply,
    another protocol, a truncated or malformed frame)."""
    if len(frame) < _HEADER.size + _ARP.size:
        return None
    _, _, ethertype = _HEADER.unpack_from(frame)
    if ethertype != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op, sha, spa, _, tpa = _ARP.unpack_from(frame, _HEADER.size)
    if (htype, ptype, hlen, plen, op) != (1, 0x0800, 6, 4, _REQUEST):
        return None
    return ArpRequest(sender_mac=sha, sender_ip=spa, target_ip=tpa)


def answer(frame: bytes, cluster_ip: str, cluster_mac: bytes, source_mac: bytes) -> bytes | None:
    """The ARP reply to send for `frame`, or None when it isn't a request for the
    cluster IP (or is a host probing with sender 0.0.0.0 for itself: RFC 5227 probes
    are answered too, so a duplicate address is noticed)."""
    request = parse_request(frame)
    cluster = ipaddress.IPv4Address(cluster_ip).packed
    if request is None or request.target_ip != cluster:
        return None
    if request.sender_ip == cluster:
        return None  # a gratuitous ARP for the cluster IP, not a question
    header = _HEADER.pack(request.sender_mac, source_mac, ETH_P_ARP)
    body = _ARP.pack(
        1, 0x0800, 6, 4, _REPLY, cluster_mac, cluster, request.sender_mac, request.sender_ip
    )
    return header + body + bytes(max(0, 60 - len(header) - len(body)))  # padded frame
