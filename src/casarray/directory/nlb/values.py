"""NLB's names, values and defaults (the NetworkLoadBalancingClusters module's), and
the checks that turn a cmdlet's parameter into one of them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from casarray.directory import validate
from casarray.directory.errors import InvalidValueError

NLB = "NLB"
RSAT_NLB = "RSAT-NLB"
FEATURES = {NLB: "Network Load Balancing", RSAT_NLB: "Network Load Balancing Tools"}

OPERATION_MODES = ("Unicast", "Multicast", "IgmpMulticast")
# Where a cluster's traffic is filtered: Kernel, Proxy, HAProxy (a central balancer:
# the seed's separate load balancer; on several hosts HAProxy runs on a pair of
# balancer hosts sharing the cluster IP with keepalived) or Hosts (NLB as Windows runs
# it: every member host receives every packet to the cluster IP and keeps its own
# share); Auto lets the runtime choose (Hosts where the members have network stacks of
# their own).
DATA_PLANES = ("Kernel", "Proxy", "HAProxy", "Hosts", "Auto")
HOSTS_PLANE = "Hosts"
# NLB's heartbeats (the registry's AliveMsgPeriod, in ms, and AliveMsgTolerance): a host
# that misses TOLERANCE heartbeats in a row has left, and the others converge.
HEARTBEAT_PERIOD, HEARTBEAT_PERIOD_RANGE = 1000, (100, 10000)
HEARTBEAT_TOLERANCE, HEARTBEAT_TOLERANCE_RANGE = 5, (5, 100)
HOST_STATES = ("Started", "Stopped", "Suspended")  # InitialHostState
STARTED, STOPPED, SUSPENDED, DRAINING = "Started", "Stopped", "Suspended", "Draining"
ADMIN_STATES = (STARTED, STOPPED, SUSPENDED, DRAINING)
PROTOCOLS = ("Tcp", "Udp", "Both")
MODES = ("Multiple", "Single", "Disabled")
AFFINITIES = ("None", "Single", "Network")

MAX_NODES = 32
MIN_PORT, MAX_PORT = 0, 65535
MAX_TIMEOUT = 2**31 - 1
DEFAULT_INTERFACE = "Ethernet"
DEFAULT_RULE = (0, 65535)
EQUAL = None  # a LoadWeight of "Equal"


def choice(parameter: str, value: str, choices: tuple[str, ...]) -> str:
    """`value` as NLB spells it, whatever its case."""
    text = str(value).strip()
    for option in choices:
        if option.lower() == text.lower():
            return option
    raise InvalidValueError(parameter, value, f"is not one of {', '.join(choices)}.")


def default_subnet_mask(ip: str) -> str:
    """NLB's default mask for a cluster IP: its address class's (A: 255.0.0.0, B:
    255.255.0.0, C and above: 255.255.255.0)."""
    first = int(ip.split(".")[0])
    if first < 128:
        return "255.0.0.0"
    if first < 192:
        return "255.255.0.0"
    return "255.255.255.0"


def subnet_mask(parameter: str, value: str) -> str:
    text = str(value).strip()
    try:
        network = ipaddress.IPv4Network(f"0.0.0.0/{text}")
        ipaddress.IPv4Address(text)
    except ValueError:
        raise InvalidValueError(
            parameter, value, "is not a subnet mask (for example 255.255.255.0)."
        ) from None
    if network.prefixlen == 0:
        raise InvalidValueError(parameter, value, "is not a subnet mask (it masks nothing).")
    return str(network.netmask)


def subnet_mask_or_none(value: str | None) -> str | None:
    return subnet_mask("SubnetMask", value) if value is not None else None


def port(parameter: str, value: object) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidValueError(parameter, value, "is not a port number.") from None
    if not MIN_PORT <= number <= MAX_PORT:
        raise InvalidValueError(parameter, value, f"is not a port from {MIN_PORT} to {MAX_PORT}.")
    return number


def in_range(parameter: str, value: object, low: int, high: int) -> int:
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InvalidValueError(
            parameter, value, f"is not a number from {low} to {high}."
        ) from None
    if not low <= number <= high:
        raise InvalidValueError(parameter, value, f"is not from {low} to {high}.")
    return number


def lowest_free(taken: Iterable[int]) -> int | None:
    """The lowest HostID or HostPriority (1..32) not in `taken`; None when all are."""
    used = set(taken)
    return next((n for n in range(1, MAX_NODES + 1) if n not in used), None)


def rule_ip(value: str | None) -> str | None:
    """None for every cluster IP ("All", NLB's 255.255.255.255 too), else the IPv4."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() in ("all", "", "255.255.255.255"):
        return None
    return validate.ipv4("IP", text)


def ip_text(ip: str | None) -> str:
    return ip if ip is not None else "All"
