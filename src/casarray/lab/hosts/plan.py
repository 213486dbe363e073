"""The lab on several hosts, as a plan: which network namespaces, bridges, links and
addresses `casarray lab up --hosts` makes (pure: no namespace is touched here, so it is
tested without root; `network` carries it out).

One namespace per server of the directory, plus DC01 (the directory's PostgreSQL
server and DNS), a router between the site networks, and two clients: one in site BJ
and one outside (DNS's split views). Every host has one link (`eth0`) to its network's
bridge; the router has one per network. The bridges live in a namespace of their own
(the switch), so nothing of the lab is in the machine's own namespace, where its
firewall (and `br_netfilter`) would see the lab's frames. Addresses come from the
benchmarking range 198.18.0.0/15 (RFC 2544), which routes nowhere:

| host | namespace | network | address |
|---|---|---|---|
| ROUTER | cas-router | BJ, SH, outside | 198.18.1.1, 198.18.2.1, 198.18.3.1 |
| DC01 | cas-dc01 | BJ | 198.18.1.5 (PostgreSQL 5432, DNS 53) |
| (bj-cas.lab.net) | | BJ | 198.18.1.10: the BJ array's NLB cluster IP |
| CAS01, CAS02 | cas-cas01, cas-cas02 | BJ | 198.18.1.11, 198.18.1.12 |
| MBX01 | cas-mbx01 | BJ | 198.18.1.21 |
| CLIENT-BJ | cas-client-bj | BJ | 198.18.1.100 |
| CAS03 | cas-cas03 | SH | 198.18.2.11 |
| MBX02 | cas-mbx02 | SH | 198.18.2.21 |
| CLIENT-OUT | cas-client-out | outside | 198.18.3.100 |
| LB-BJ1, LB-BJ2 | cas-lb-bj1, cas-lb-bj2 | BJ | 198.18.1.241, .242 (HAProxy plane only) |
| (the switch) | cas-switch | | bridges br-bj, br-sh, br-out: no address |

A cluster of the HAProxy data plane runs on the separate load balancer of its network:
two balancer hosts, `LB-<network>1` and `LB-<network>2` at .241 and .242, sharing the
cluster IP with keepalived (`balancer_hosts`, made when such a cluster first needs
them, `with_balancers`).

A server installed later (`lab add-server`) gets its site's next free address from .11
up (`topology.next_address` over `SITES`) and a host of its own (`with_server`). Every
host's default route is the router's address on its network; the router forwards
between the three networks and has no default route, so nothing leaves the lab.

Names: namespaces are the prefix (`cas-`; tests use their own) and the host's name in
lower case; interfaces are named inside their namespace, so they need no prefix: `eth0`
in a host (the router's `eth-bj`, `eth-sh`, `eth-out`), and `p-<host>` for its peer on
the bridge (the switch's port), at most 15 characters (IFNAMSIZ).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from casarray.errors import CasarrayError

PREFIX = "cas-"
# a test's own prefix for the namespaces of a lab it makes with `casarray lab up --hosts`
# (the real one, `cas-`, would collide with a user's lab); read by `default_prefix` only
PREFIX_VARIABLE = "CASARRAY_LAB_HOSTS_PREFIX"
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
IFNAMSIZ = 15  # the longest interface name Linux takes

BJ, SH, OUTSIDE = "BJ", "SH", "outside"
# network: (subnet, bridge); the router is .1 of each
NETWORKS = {
    BJ: ("198.18.1.0/24", "br-bj"),
    SH: ("198.18.2.0/24", "br-sh"),
    OUTSIDE: ("198.18.3.0/24", "br-out"),
}
ROUTER, DC, CLIENT_BJ, CLIENT_OUT = "ROUTER", "DC01", "CLIENT-BJ", "CLIENT-OUT"
SERVER, DOMAIN_CONTROLLER, ROUTER_KIND, CLIENT = "server", "dc", "router", "client"
BALANCER = "balancer"  # one host of a network's HAProxy + keepalived pair
BALANCER_HOSTS = (241, 242)  # their addresses' last octet, ranks 0 and 1
DC_ADDRESS = "198.18.1.5"
DNS_ADDRESS = DC_ADDRESS  # the DNS server runs on DC01
CLUSTER_IP = "198.18.1.10"  # bj-cas.lab.net
CLIENT_ADDRESSES = {CLIENT_BJ: (BJ, "198.18.1.100"), CLIENT_OUT: (OUTSIDE, "198.18.3.100")}
# topology.SERVERS with these addresses: the directory of a hosts lab says them
SITES = {BJ: (NETWORKS[BJ][0],), SH: (NETWORKS[SH][0],)}
SERVER_ADDRESSES = {  # the servers of `topology.SERVERS`: (site, address)
    "CAS01": (BJ, "198.18.1.11"),
    "CAS02": (BJ, "198.18.1.12"),
    "MBX01": (BJ, "198.18.1.21"),
    "CAS03": (SH, "198.18.2.11"),
    "MBX02": (SH, "198.18.2.21"),
}
SWITCH = "switch"  # the bridges' namespace: no host may be named so
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


class HostsError(CasarrayError):
    """The hosts lab can't do what was asked (the message says why)."""


class UnknownHost(HostsError):
    category = "ObjectNotFound"


@dataclass(frozen=True)
class Network:
    name: str  # BJ, SH, outside
    subnet: str  # 198.18.1.0/24
    bridge: str  # its bridge, in the switch namespace

    @property
    def router(self) -> str:
        return str(ipaddress.ip_network(self.subnet)[1])

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen


@dataclass(frozen=True)
class Link:
    """One veth pair: `name` in the host, `port` on the network's bridge."""

    name: str
    network: str
    address: str
    port: str


@dataclass(frozen=True)
class Host:
    name: str  # CAS01, DC01, ROUTER, CLIENT-BJ
    kind: str  # server, dc, router, client
    namespace: str
    links: tuple[Link, ...]

    @property
    def address(self) -> str:
        """The host's (first) address."""
        return self.links[0].address


def port_name(host: str, network: str | None = None) -> str:
    """The switch's port for `host` (on `network`, for the router): `p-cas01`,
    `p-router-bj`; a long name is cut and made unique with a hash."""
    base = host.lower() if network is None else f"{host.lower()}-{_short(network)}"
    name = f"p-{base}"
    if len(name) <= IFNAMSIZ:
        return name
    digest = hashlib.sha1(base.encode()).hexdigest()[:4]
    return f"p-{base[:8]}-{digest}"


def _short(network: str) -> str:
    return NETWORKS[network][1].removeprefix("br-") if network in NETWORKS else network.lower()


def default_prefix() -> str:
    """The namespaces' prefix of a hosts lab made now: `cas-`, or a test's own
    ($CASARRAY_LAB_HOSTS_PREFIX)."""
    return os.environ.get(PREFIX_VARIABLE) or PREFIX


def namespace_name(prefix: str, host: str) -> str:
    return f"{prefix}{host.lower()}"


@dataclass(frozen=True)
class HostPlan:
    """The namespaces, bridges and links of a hosts lab (see the module docstring)."""

    prefix: str
    networks: tuple[Network, ...]
    hosts: tuple[Host, ...]

    @property
    def switch(self) -> str:
        """The namespace holding the bridges."""
        return namespace_name(self.prefix, SWITCH)

    @classmethod
    def build(
        cls,
        servers: Iterable[tuple[str, str, str]] | None = None,
        prefix: str = PREFIX,
        pairs: Iterable[str] = (),
    ) -> HostPlan:
        """The plan for `servers` (name, site, address), by default the lab's
        (`SERVER_ADDRESSES` in `topology.SERVERS`' sites), with the balancer hosts of
        the networks of the cluster IPs in `pairs` (clusters of the HAProxy plane)."""
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,9}", prefix):
            raise HostsError(f"Bad namespace prefix '{prefix}': up to 10 of a-z, 0-9 and '-'.")
        networks = tuple(
            Network(name, subnet, bridge) for name, (subnet, bridge) in NETWORKS.items()
        )
        router = Host(
            ROUTER,
            ROUTER_KIND,
            namespace_name(prefix, ROUTER),
            tuple(
                Link(f"eth-{_short(n.name)}", n.name, n.router, port_name(ROUTER, n.name))
                for n in networks
            ),
        )
        hosts = [router, _single(prefix, DC, DOMAIN_CONTROLLER, BJ, DC_ADDRESS)]
        hosts += [
            _single(prefix, name, CLIENT, network, address)
            for name, (network, address) in CLIENT_ADDRESSES.items()
        ]
        plan = cls(prefix, networks, tuple(hosts))
        if servers is None:
            servers = default_servers()
        for name, site, address in servers:
            plan = plan.with_server(name, site, address)
        for cluster_ip in pairs:
            plan = plan.with_balancers(plan.network_of(cluster_ip).name)
        return plan

    def with_server(self, name: str, site: str, address: str) -> HostPlan:
        """This plan and a host for server `name` (in site `site`'s network, at
        `address`); the same plan when it has that host already, as planned."""
        network = self.network_of(address)
        if network.name != site and site in {n.name for n in self.networks}:
            raise HostsError(
                f"{name}'s address {address} is not in site {site}'s network "
                f"{self.network(site).subnet}."
            )
        host = _single(self.prefix, name, SERVER, network.name, address)
        existing = self.find(name)
        if existing is not None:
            if existing == host:
                return self
            raise HostsError(f"The hosts lab has a host named {existing.name} already.")
        for other in self.hosts:
            if any(link.address == address for link in other.links):
                raise HostsError(f"{name}'s address {address} is {other.name}'s already.")
        if address in (CLUSTER_IP,):
            raise HostsError(f"{address} is the NLB cluster IP of bj-cas.lab.net.")
        return replace(self, hosts=(*self.hosts, host))

    def with_balancers(self, network: str) -> HostPlan:
        """This plan and the two balancer hosts of `network` (`balancer_hosts`)."""
        plan = self
        for name, address in balancer_hosts(self.network(network)):
            host = _single(self.prefix, name, BALANCER, network, address)
            existing = plan.find(name)
            if existing is None:
                plan = replace(plan, hosts=(*plan.hosts, host))
            elif existing != host:
                raise HostsError(f"The hosts lab has a host named {existing.name} already.")
        return plan

    def network(self, name: str) -> Network:
        for network in self.networks:
            if network.name.lower() == name.lower():
                return network
        raise HostsError(f"The hosts lab has no network '{name}'.")

    def network_of(self, address: str) -> Network:
        """The network whose subnet holds `address`."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise HostsError(f"'{address}' is not an IP address.") from None
        for network in self.networks:
            if ip in ipaddress.ip_network(network.subnet):
                return network
        subnets = ", ".join(n.subnet for n in self.networks)
        raise HostsError(f"{address} is in none of the hosts lab's networks ({subnets}).")

    def find(self, name: str) -> Host | None:
        wanted = name.strip().lower()
        return next((h for h in self.hosts if h.name.lower() == wanted), None)

    def host(self, name: str) -> Host:
        """The host named `name` (any case); UnknownHost naming the hosts otherwise."""
        host = self.find(name)
        if host is None:
            known = ", ".join(h.name for h in self.hosts)
            raise UnknownHost(f"The hosts lab has no host named '{name}' (it has {known}).")
        return host

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the plan, the switch first."""
        return (self.switch, *(h.namespace for h in self.hosts))

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(host, namespace, network, address) per link: the table above."""
        return [
            (h.name, h.namespace, link.network, link.address)
            for h in self.hosts
            for link in h.links
        ]


def balancer_hosts(network: Network) -> list[tuple[str, str]]:
    """The (name, address) of the two balancer hosts of `network`, rank 0 first:
    LB-BJ1 at 198.18.1.241, LB-BJ2 at 198.18.1.242."""
    subnet = ipaddress.ip_network(network.subnet)
    short = _short(network.name).upper()
    return [(f"LB-{short}{i + 1}", str(subnet[octet])) for i, octet in enumerate(BALANCER_HOSTS)]


def balancer_hosts_of(cluster_ip: str) -> list[tuple[str, str]]:
    """The balancer hosts of the lab network `cluster_ip` is in (no plan needed: the
    networks are fixed)."""
    ip = ipaddress.ip_address(cluster_ip)
    for name, (subnet, bridge) in NETWORKS.items():
        if ip in ipaddress.ip_network(subnet):
            return balancer_hosts(Network(name, subnet, bridge))
    raise HostsError(f"{cluster_ip} is in none of the hosts lab's networks.")


def _single(prefix: str, name: str, kind: str, network: str, address: str) -> Host:
    if not HOST_NAME.match(name) or name.lower() == SWITCH:
        raise HostsError(f"'{name}' can't name a host: letters, digits and '-' only.")
    return Host(
        name, kind, namespace_name(prefix, name), (Link("eth0", network, address, port_name(name)),)
    )


def default_servers() -> list[tuple[str, str, str]]:
    """The lab's servers (`topology.SERVERS`) at their hosts addresses."""
    return [(name, site, address) for name, (site, address) in SERVER_ADDRESSES.items()]
