"""Name lookups as the client makes them: dnspython asking one DNS server (the lab's,
at an address and port of its own) with no system configuration and no cache, or the
system's resolver when no server is given.

No cache, so that every reconnection asks again: a name the administrator points
elsewhere is followed at the next connection, whatever its TTL.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from casarray.client.errors import LookupFailed

DNS_PORT = 53
TIMEOUT = 2.0


@dataclass(frozen=True, order=True)
class SrvTarget:
    """One SRV record's target, in the order a client tries them (RFC 2782: lowest
    priority first, then the heaviest weight)."""

    priority: int
    rank: int  # -weight: the heaviest first
    host: str
    port: int

    @property
    def weight(self) -> int:
        return -self.rank


def parse_server(text: str) -> tuple[str, int]:
    """The address and port in "IP", "IP:PORT" or "[IPv6]:PORT" (port 53 when none is
    given); ValueError saying what is wrong."""
    text = text.strip()
    host, port = text, DNS_PORT
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"'{text}' is not IP, IP:PORT or [IPv6]:PORT")
        if rest:
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _port(rest, text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"'{host}' in '{text}' is not an IP address") from None
    return host, port


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"the port in '{whole}' is not a number from 1 to 65535")
    return int(text)


class NameResolver:
    """A/AAAA and SRV lookups through one DNS server (or the system's resolver)."""

    def __init__(
        self, server: str | None = None, port: int = DNS_PORT, *, timeout: float = TIMEOUT
    ) -> None:
        if server is None:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                raise LookupFailed(
                    "this system has no DNS server configured; give one with --dns IP[:PORT]"
                ) from None
        else:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [server]
            self._resolver.port = port
        self._resolver.cache = None
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.server = server
        self.port = port

    def __repr__(self) -> str:
        return f"NameResolver({self.describe()})"

    def describe(self) -> str:
        """Who is asked, for messages: "the DNS server 127.77.0.53:10053"."""
        if self.server is None:
            return "the system resolver"
        host = f"[{self.server}]" if ":" in self.server else self.server
        return f"the DNS server {host}:{self.port}"

    def _ask(self, name: str, rdtype: str) -> dns.resolver.Answer | None:
        """The answer, or None for NXDOMAIN / no record of the type."""
        try:
            return self._resolver.resolve(dns.name.from_text(name), rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.resolver.NoNameservers as exc:
            raise LookupFailed(
                f"{self.describe()} failed to look up {name} {rdtype}: {exc}"
            ) from None
        except dns.exception.Timeout:
            raise LookupFailed(
                f"{self.describe()} did not answer for {name} {rdtype} "
                f"within {self._resolver.lifetime:g} s"
            ) from None
        except dns.exception.DNSException as exc:
            raise LookupFailed(f"looking up {name} {rdtype} failed: {exc}") from None

    def addresses(self, name: str) -> list[str]:
        """The IPv4 then IPv6 addresses of `name`; LookupFailed when it has none."""
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = self._ask(name, rdtype)
            if answer is not None:
                found += [rdata.address for rdata in answer]
        if not found:
            raise LookupFailed(f"{name} has no address in {self.describe()}")
        return found

    def srv(self, name: str) -> list[SrvTarget]:
        """The targets of the SRV records at `name`, in the order to try them; empty
        when there are none (or the only one is ".", "no such service")."""
        answer = self._ask(name, "SRV")
        if answer is None:
            return []
        targets = [
            SrvTarget(rdata.priority, -rdata.weight, rdata.target.to_text(omit_final_dot=True),
                      rdata.port)
            for rdata in answer
            if rdata.target != dns.name.root
        ]  # fmt: skip
        return sorted(targets)
