"""Connection limits of a listening service: how many connections one client address
may hold and how many the service holds in all, counted as the kernel sees them (every
accepted TCP connection, from its accept to its close: before TLS, before a PROXY
header, before login), and the deadline rule the servers' timeouts share.

    counter = ConnectionCounter(ConnectionLimits(per_address=20, total=5000))
    key = counter.admit("198.51.100.7")   # a Refusal, or the key it is counted under
    ...
    counter.release(key)                  # at the connection's close

A client is its IPv4 address, or its IPv6 /64 (one site's hosts share a /64; a client
that may pick any address of its /64 would otherwise have 2**64 of them); an IPv4 address
mapped into IPv6 is the IPv4 address. The addresses in `exempt` (a balancer that opens
connections for many clients, the server's own probes) count in the total only. A
connection whose PROXY protocol header names its client is counted again under that
client (`move`).

Each worker process of a multi-process server counts its own connections; the kernel
spreads new connections over the workers by a hash of both ends, so a server of N
workers is given each limit divided by N (`per_worker`).

The defaults are the field's: Exchange 2010's receive connectors (MaxInboundConnection
5000, MaxInboundConnectionPerSource 20) and IMAP4 service (MaxConnections and
MaxConnectionFromSingleIP 2000), Postfix's smtpd_client_connection_count_limit (50),
nginx's limit_conn (off unless set).
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import math
import resource
from dataclasses import dataclass, field, replace

# File descriptors kept out of the connection limit (listeners, the databases, logs).
FD_RESERVE = 200


class Refusal(enum.Enum):
    """Why a connection was refused."""

    ADDRESS = "too many connections from the client's address"
    TOTAL = "too many connections"


@dataclass(frozen=True)
class ConnectionLimits:
    """`per_address`: connections one client may hold; `total`: the service's in all
    (None: no limit). `exempt`: addresses counted in the total only."""

    per_address: int | None = None
    total: int | None = None
    exempt: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("per_address", "total"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"connection limit {name} must be at least 1, not {value!r}")

    def per_worker(self, workers: int) -> ConnectionLimits:
        """Each of `workers` processes' share (rounded up)."""
        if workers <= 1:
            return self

        def share(value: int | None) -> int | None:
            return None if value is None else max(1, math.ceil(value / workers))

        return replace(self, per_address=share(self.per_address), total=share(self.total))

    def within_fd_limit(self, soft_limit: int | None = None) -> ConnectionLimits:
        """The limits with `total` lowered to what the process may open (its
        RLIMIT_NOFILE less FD_RESERVE), so that accept() never fails for want of a
        descriptor (a refusal is answered; EMFILE is not)."""
        if soft_limit is None:
            soft_limit = fd_limit()
        room = max(1, soft_limit - FD_RESERVE)
        if self.total is not None and self.total <= room:
            return self
        return replace(self, total=room)


def client_key(address: str) -> str:
    """What one client is: its IPv4 address, or its IPv6 /64."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return str(mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


class ConnectionCounter:
    """The open connections of one service, per client and in all. `limits` may be
    replaced at any time (the directory changed); connections already open stay."""

    __slots__ = ("_by_client", "limits", "total")

    def __init__(self, limits: ConnectionLimits | None = None) -> None:
        self.limits = limits or ConnectionLimits()
        self._by_client: dict[str, int] = {}
        self.total = 0

    def admit(self, address: str, *, exempt: bool = False) -> str | Refusal:
        """Count a new connection from `address` (with `exempt`, in the total only: a
        balancer whose PROXY header will name the client): the key to `release` it
        with; or, over a limit, why not (then nothing is counted)."""
        limits = self.limits
        if limits.total is not None and self.total >= limits.total:
            return Refusal.TOTAL
        if exempt or limits.per_address is None or address in limits.exempt:
            self.total += 1
            return ""
        key = client_key(address)
        held = self._by_client.get(key, 0)
        if held >= limits.per_address:
            return Refusal.ADDRESS
        self._by_client[key] = held + 1
        self.total += 1
        return key

    def release(self, key: str) -> None:
        """A connection `admit` counted under `key` closed."""
        self.total = max(0, self.total - 1)
        if not key:
            return
        held = self._by_client.get(key, 0)
        if held <= 1:
            self._by_client.pop(key, None)
        else:
            self._by_client[key] = held - 1

    def move(self, key: str, client: str) -> str | Refusal:
        """A connection counted under `key` (a balancer's) is `client`'s (its PROXY
        header said so): counted under `client` (the new key), or refused (then it is
        no longer counted at all, and the caller closes it)."""
        self.release(key)
        return self.admit(client)

    def held(self, address: str) -> int:
        """The connections counted under `address`'s client."""
        return self._by_client.get(client_key(address), 0)


def fd_limit() -> int:
    """The process's soft RLIMIT_NOFILE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (as nginx's worker_rlimit_nofile or
    systemd's LimitNOFILE do for a server); the soft limit now in effect."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return fd_limit()
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return fd_limit()


def deadline(start: float, timeout: float, received: int = 0, min_rate: float = 0.0) -> float:
    """When a client that began something at `start` (a command line, a request's
    headers, a message's data) must have finished it: `timeout` seconds, plus the time
    the bytes it has sent since would take at `min_rate` bytes a second. A total, not
    a time per read: a slowloris that sends a byte every few seconds is cut at the
    deadline, while a large upload that keeps above `min_rate` never is."""
    if min_rate > 0 and received > 0:
        return start + timeout + received / min_rate
    return start + timeout
