"""The PROXY protocol header (HAProxy's, versions 1 and 2), as a Client Access server
receives it from the balancer in front of it: the first bytes of a connection say who
the real client is, so logs and login throttling see the client, not the balancer.

Sans-IO: `parse(data)` takes the bytes received so far and returns `NEED_MORE`, or the
header and how many bytes it took; a malformed header raises `ProxyHeaderError`. Only
connections from an address the server trusts (the balancer's) are parsed at all;
anyone else could claim any address.

Version 2 is binary: a 12-byte signature, version/command, family/protocol, a length,
then the addresses (TCP over IPv4 or IPv6; LOCAL means "no client": a health check).
Version 1 is a text line: `PROXY TCP4 <src> <dst> <sport> <dport>\\r\\n` (or `UNKNOWN`).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Final

from casarray.errors import CasarrayError

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX: Final = b"PROXY "
V1_MAX = 107  # the longest version 1 line, CRLF included
V2_MAX_BODY = 536  # addresses plus TLVs a sender may add; more is refused


class ProxyHeaderError(CasarrayError, ValueError):
    """The bytes are not a valid PROXY protocol header."""


@dataclass(frozen=True)
class ProxyHeader:
    source: tuple[str, int] | None  # the real client; None for LOCAL / UNKNOWN
    destination: tuple[str, int] | None
    version: int


NEED_MORE: Final = None


def parse(data: bytes) -> tuple[ProxyHeader, int] | None:
    """(header, bytes it took) once `data` holds a whole header; None (NEED_MORE)
    while it may still become one; ProxyHeaderError when it can't."""
    if data[:1] == V2_SIGNATURE[:1]:
        return _parse_v2(data)
    if data[:1] == b"P":
        return _parse_v1(data)
    if data:
        raise ProxyHeaderError("the connection didn't start with a PROXY protocol header")
    return NEED_MORE


def _parse_v2(data: bytes) -> tuple[ProxyHeader, int] | None:
    head = data[:16]
    if not V2_SIGNATURE.startswith(head[:12]):
        raise ProxyHeaderError("bad PROXY v2 signature")
    if len(data) < 16:
        return NEED_MORE
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"PROXY protocol version {version_command >> 4} is unknown")
    if length > V2_MAX_BODY:
        raise ProxyHeaderError(f"PROXY v2 header too long ({length} bytes)")
    if len(data) < 16 + length:
        return NEED_MORE
    body = data[16 : 16 + length]
    command = version_command & 0x0F
    if command == 0x0:  # LOCAL: the sender's own connection (a health check)
        return ProxyHeader(None, None, 2), 16 + length
    if command != 0x1:
        raise ProxyHeaderError(f"PROXY v2 command {command} is unknown")
    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    if family == 0x11 and length >= 12:  # TCP over IPv4
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
    elif family == 0x21 and length >= 36:  # TCP over IPv6
        src6, dst6 = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36])
        src = src6.ipv4_mapped or src6
        dst = dst6.ipv4_mapped or dst6
    elif family == 0x00:  # UNSPEC
        return ProxyHeader(None, None, 2), 16 + length
    else:
        raise ProxyHeaderError(f"PROXY v2 family/protocol {family:#04x} is not TCP")
    return ProxyHeader((str(src), sport), (str(dst), dport), 2), 16 + length


def _parse_v1(data: bytes) -> tuple[ProxyHeader, int] | None:
    if not V1_PREFIX.startswith(data[:6]) and not data.startswith(V1_PREFIX):
        raise ProxyHeaderError("the connection didn't start with a PROXY protocol header")
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError("PROXY v1 line too long")
        return NEED_MORE
    try:
        words = data[:end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 line is not ASCII") from None
    if len(words) >= 2 and words[1] == "UNKNOWN":
        return ProxyHeader(None, None, 1), end + 2
    if len(words) != 6 or words[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 line")
    try:
        src, dst = ipaddress.ip_address(words[2]), ipaddress.ip_address(words[3])
        sport, dport = int(words[4]), int(words[5])
    except ValueError:
        raise ProxyHeaderError("malformed PROXY v1 addresses") from None
    if not (0 <= sport <= 65535 and 0 <= dport <= 65535):
        raise ProxyHeaderError("PROXY v1 port out of range")
    if (src.version == 4) != (words[1] == "TCP4"):
        raise ProxyHeaderError("PROXY v1 address family mismatch")
    return ProxyHeader((str(src), sport), (str(dst), dport), 1), end + 2
