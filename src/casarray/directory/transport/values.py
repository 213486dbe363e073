"""Hub Transport's names, values and defaults (Exchange 2010's), and the checks that
turn a cmdlet's parameter into one of them.

Values are written as Exchange takes them and shown as Exchange shows them: sizes
"10MB" in and "10 MB (10,485,760 bytes)" out (the quota sizes' rules,
`casarray.directory.quotas`), bindings "0.0.0.0:25", remote IP ranges as an address,
a CIDR subnet or a range "10.0.0.1-10.0.0.9", address spaces "SMTP:*.contoso.com;1"
(or just "*.contoso.com"), timespans "2.00:00:00" (d.hh:mm:ss).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from casarray.directory import validate
from casarray.directory.errors import InvalidValueError
from casarray.directory.quotas import format_size, parse_size

# -- accepted domains --------------------------------------------------------------------

AUTHORITATIVE, INTERNAL_RELAY = "Authoritative", "InternalRelay"
DOMAIN_TYPES = (AUTHORITATIVE, INTERNAL_RELAY)

# -- receive connectors ------------------------------------------------------------------

AUTH_MECHANISMS = (
    "None",
    "Tls",
    "Integrated",
    "BasicAuth",
    "BasicAuthRequireTLS",
    "ExchangeServer",
    "ExternalAuthoritative",
)
PERMISSION_GROUPS = (
    "None",
    "AnonymousUsers",
    "ExchangeUsers",
    "ExchangeServers",
    "ExchangeLegacyServers",
    "Partners",
    "Custom",
)
USAGES = ("Default", "Client", "Internet", "Internal", "Custom")
ALL_IPV4 = "0.0.0.0-255.255.255.255"
SMTP_PORT, SUBMISSION_PORT = 25, 587

# Exchange 2010's limits of a receive connector: MaxMessageSize 64 KB to 2 GB,
# MaxRecipientsPerMessage 1 to 512,000.
RECEIVE_MAX_MESSAGE_SIZE = (64 * 1024, 2 * 1024**3 - 1)
MAX_RECIPIENTS = (1, 512_000)
DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024**2  # 10 MB, receive and send connectors alike
DEFAULT_MAX_RECIPIENTS = 200


def usage_template(usage: str, server_fqdn: str) -> dict[str, Any]:
    """The settings New-ReceiveConnector -Usage starts from (Exchange 2010's
    templates); the Default and Client usages are those of the connectors setup makes
    for every Hub Transport server."""
    common: dict[str, Any] = {
        "remote_ip_ranges": (ALL_IPV4,),
        "max_message_size": DEFAULT_MAX_MESSAGE_SIZE,
        "max_recipients_per_message": DEFAULT_MAX_RECIPIENTS,
        "banner": None,
        "fqdn": server_fqdn,
        "enabled": True,
    }
    templates: dict[str, dict[str, Any]] = {
        "Default": {
            "bindings": (("0.0.0.0", SMTP_PORT),),
            "auth_mechanism": frozenset(
                {"Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"}
            ),
            "permission_groups": frozenset(
                {"AnonymousUsers", "ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"}
            ),
        },
        "Client": {
            "bindings": (("0.0.0.0", SUBMISSION_PORT),),
            "auth_mechanism": frozenset({"Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"}),
            "permission_groups": frozenset({"ExchangeUsers"}),
        },
        "Internet": {
            "bindings": (("0.0.0.0", SMTP_PORT),),
            "auth_mechanism": frozenset({"Tls"}),
            "permission_groups": frozenset({"AnonymousUsers"}),
        },
        "Internal": {
            "bindings": (("0.0.0.0", SMTP_PORT),),
            "auth_mechanism": frozenset({"Tls", "ExchangeServer"}),
            "permission_groups": frozenset({"ExchangeServers", "ExchangeLegacyServers"}),
        },
        "Custom": {
            "bindings": (),
            "auth_mechanism": frozenset({"Tls"}),
            "permission_groups": frozenset({"None"}),
        },
    }
    return {**common, **templates[usage]}


# -- send connectors ---------------------------------------------------------------------

MIN_COST, MAX_COST = 1, 100
SEND_MAX_MESSAGE_SIZE = (0, 2 * 1024**3 - 1)

# -- transport servers -------------------------------------------------------------------

# Exchange 2010's defaults and ranges (Set-TransportServer).
MESSAGE_EXPIRATION_TIMEOUT = timedelta(days=2)
MESSAGE_EXPIRATION_RANGE = (timedelta(seconds=5), timedelta(days=90))
MESSAGE_RETRY_INTERVAL = timedelta(minutes=1)
MESSAGE_RETRY_RANGE = (timedelta(seconds=1), timedelta(days=1))
MAX_OUTBOUND_CONNECTIONS = 1000
MAX_OUTBOUND_RANGE = (1, 2**31 - 1)


# -- checks --------------------------------------------------------------------------------


def choice(parameter: str, value: object, choices: tuple[str, ...]) -> str:
    """`value` as Exchange spells it, whatever its case."""
    text = str(value).strip()
    for option in choices:
        if option.lower() == text.lower():
            return option
    raise InvalidValueError(parameter, value, f"is not one of {', '.join(choices)}.")


def items(value: object) -> list[str]:
    """A multi-valued parameter's items: a list, or one string separated by commas."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Iterable):
        out: list[str] = []
        for item in value:
            out.extend(items(item))
        return out
    return [str(value).strip()]


def choices(parameter: str, value: object, options: tuple[str, ...]) -> frozenset[str]:
    """A set of flags ("Tls, BasicAuth"). "None" stands alone."""
    chosen = frozenset(choice(parameter, item, options) for item in items(value))
    if not chosen:
        return frozenset({"None"})
    if "None" in chosen and len(chosen) > 1:
        raise InvalidValueError(
            parameter, value, "combines None with other values; None stands alone."
        )
    return chosen


def in_range(parameter: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise InvalidValueError(parameter, value, "is not a number.")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise InvalidValueError(parameter, value, "is not a whole number.") from None
    if not low <= number <= high:
        raise InvalidValueError(
            parameter, value, f"is out of range: it must be from {low:,} to {high:,}."
        )
    return number


def port(parameter: str, value: object) -> int:
    return in_range(parameter, value, 1, 65535)


def size(parameter: str, value: object, low: int, high: int) -> int:
    """A message size, as Exchange takes it ("10MB", "10 MB (10,485,760 bytes)", bytes)."""
    parsed = parse_size(parameter, value) if not isinstance(value, int) else value
    if parsed is None:
        raise InvalidValueError(
            parameter, value, f"is not allowed here: give a size up to {format_size(high)}."
        )
    if isinstance(parsed, bool) or not low <= parsed <= high:
        raise InvalidValueError(
            parameter,
            value,
            f"is out of range: it must be from {format_size(low)} to {format_size(high)}.",
        )
    return parsed


def binding(parameter: str, value: object) -> tuple[str, int]:
    """ "0.0.0.0:25" -> ("0.0.0.0", 25)."""
    text = str(value).strip()
    host, colon, number = text.rpartition(":")
    if not colon:
        raise InvalidValueError(
            parameter, value, "is not a binding: write an IP address and a port, e.g. 0.0.0.0:25."
        )
    try:
        address = str(ipaddress.IPv4Address(host.strip()))
    except ValueError:
        raise InvalidValueError(
            parameter, value, f"has '{host}', which is not an IPv4 address (0.0.0.0 for all)."
        ) from None
    try:
        return address, port(parameter, number)
    except InvalidValueError:
        raise InvalidValueError(
            parameter, value, f"has the port '{number}'; a port is 1 to 65535."
        ) from None


def bindings(parameter: str, value: object) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for item in items(value):
        bound = binding(parameter, item)
        if bound not in out:
            out.append(bound)
    if not out:
        raise InvalidValueError(parameter, "", "is empty: a receive connector needs a binding.")
    return tuple(out)


def binding_text(bound: tuple[str, int]) -> str:
    return f"{bound[0]}:{bound[1]}"


def ip_range(parameter: str, value: object) -> str:
    """One RemoteIPRanges entry, checked and kept as written (normalised): an address,
    a CIDR subnet, or a range low-high."""
    text = str(value).strip()
    try:
        if "-" in text:
            low, _, high = text.partition("-")
            first = ipaddress.IPv4Address(low.strip())
            last = ipaddress.IPv4Address(high.strip())
            if first > last:
                raise InvalidValueError(
                    parameter, value, f"is a range whose start {first} is above its end {last}."
                )
            return f"{first}-{last}"
        if "/" in text:
            return str(ipaddress.IPv4Network(text, strict=False))
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise InvalidValueError(
            parameter,
            value,
            "is not an IP address, a subnet (10.0.0.0/8) or a range (10.0.0.1-10.0.0.9).",
        ) from None


def ip_ranges(parameter: str, value: object) -> tuple[str, ...]:
    out: list[str] = []
    for item in items(value):
        entry = ip_range(parameter, item)
        if entry not in out:
            out.append(entry)
    if not out:
        raise InvalidValueError(
            parameter, "", "is empty: a receive connector needs at least one remote IP range."
        )
    return tuple(out)


def range_bounds(entry: str) -> tuple[int, int]:
    """The first and last address of a RemoteIPRanges entry, as numbers."""
    if "-" in entry:
        low, _, high = entry.partition("-")
        return int(ipaddress.IPv4Address(low)), int(ipaddress.IPv4Address(high))
    network = ipaddress.IPv4Network(entry, strict=False)
    return int(network.network_address), int(network.broadcast_address)


def ranges_overlap(a: Iterable[str], b: Iterable[str]) -> tuple[str, str] | None:
    """The first pair of entries of `a` and `b` that share an address, if any."""
    for left in a:
        low_a, high_a = range_bounds(left)
        for right in b:
            low_b, high_b = range_bounds(right)
            if low_a <= high_b and low_b <= high_a:
                return left, right
    return None


def in_ranges(address: str, entries: Iterable[str]) -> bool:
    """Whether the IPv4 `address` is in any of the entries (False for anything else)."""
    try:
        number = int(ipaddress.IPv4Address(str(address).strip()))
    except ValueError:
        return False
    return any(low <= number <= high for low, high in map(range_bounds, entries))


def domain_pattern(parameter: str, value: object, *, allow_star: bool = False) -> str:
    """A domain, "*.domain" (the domain and its subdomains) or, with `allow_star`, "*"
    (every domain); lower case."""
    text = str(value).strip().lower().rstrip(".")
    if allow_star and text == "*":
        return text
    wildcard = text.startswith("*.")
    name = text[2:] if wildcard else text
    try:
        validate.fqdn(parameter, name)
    except InvalidValueError:
        raise InvalidValueError(
            parameter,
            value,
            "is not a domain: write contoso.com, or *.contoso.com for it and its subdomains"
            + (", or * for every domain." if allow_star else "."),
        ) from None
    return f"*.{name}" if wildcard else name


def pattern_matches(pattern: str, domain: str) -> bool:
    """Whether `domain` falls under a domain pattern (see `domain_pattern`)."""
    domain = domain.strip().lower().rstrip(".")
    if pattern == "*":
        return bool(domain)
    if pattern.startswith("*."):
        parent = pattern[2:]
        return domain == parent or domain.endswith("." + parent)
    return domain == pattern


def specificity(pattern: str) -> tuple[int, int]:
    """How specific a pattern is: more labels first, then an exact domain before a
    wildcard of the same domain; "*" least of all."""
    if pattern == "*":
        return (0, 0)
    if pattern.startswith("*."):
        return (pattern.count("."), 0)
    return (pattern.count(".") + 1, 1)


_ADDRESS_SPACE = re.compile(r"^(?:(?P<type>[A-Za-z0-9]+):)?(?P<domain>[^;]+)(?:;(?P<cost>.*))?$")


def address_space(parameter: str, value: object) -> tuple[str, int]:
    """ "SMTP:*.contoso.com;1", "contoso.com;5" or "*" -> (pattern, cost); cost 1 by
    default, 1 to 100."""
    text = str(value).strip()
    match = _ADDRESS_SPACE.fullmatch(text)
    if match is None:
        raise InvalidValueError(
            parameter, value, "is not an address space (for example SMTP:*.contoso.com;1)."
        )
    if match["type"] and match["type"].upper() != "SMTP":
        raise InvalidValueError(
            parameter, value, f"is of type '{match['type']}'; only SMTP address spaces route."
        )
    pattern = domain_pattern(parameter, match["domain"], allow_star=True)
    cost = 1
    if match["cost"] is not None:
        try:
            cost = in_range(parameter, match["cost"], MIN_COST, MAX_COST)
        except InvalidValueError:
            raise InvalidValueError(
                parameter, value, f"has the cost '{match['cost']}'; a cost is 1 to 100."
            ) from None
    return pattern, cost


def address_spaces(parameter: str, value: object) -> tuple[tuple[str, int], ...]:
    out: dict[str, int] = {}
    for item in items(value):
        pattern, cost = address_space(parameter, item)
        if pattern in out:
            raise InvalidValueError(
                parameter, item, f"repeats the address space {pattern}; give each once."
            )
        out[pattern] = cost
    if not out:
        raise InvalidValueError(
            parameter, "", "is empty: a send connector needs at least one address space."
        )
    return tuple(out.items())


def address_space_text(space: tuple[str, int]) -> str:
    return f"SMTP:{space[0]};{space[1]}"


def smart_host(parameter: str, value: object) -> str:
    """A smart host: a host name or an IPv4 address ("[10.0.0.1]" also)."""
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    if "." not in text:
        # a single-label host (a lab's "relay") is allowed as Exchange allows it
        try:
            validate.fqdn(parameter, text + ".local")
        except InvalidValueError:
            raise InvalidValueError(parameter, value, "is not a host name or address.") from None
        return text.lower()
    return validate.fqdn(parameter, text).lower()


def smart_hosts(parameter: str, value: object) -> tuple[str, ...]:
    out: list[str] = []
    for item in items(value):
        host = smart_host(parameter, item)
        if host not in out:
            out.append(host)
    return tuple(out)


_TIMESPAN = re.compile(
    r"^\s*(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})(?::(?P<seconds>\d{1,2}))?\s*$"
)


def timespan(parameter: str, value: object, low: timedelta, high: timedelta) -> timedelta:
    """A timespan as Exchange takes it: "d.hh:mm:ss", "hh:mm:ss" or "hh:mm"."""
    if isinstance(value, timedelta):
        span = value
    else:
        match = _TIMESPAN.fullmatch(str(value))
        if match is None:
            raise InvalidValueError(
                parameter, value, "is not a timespan: write d.hh:mm:ss, for example 2.00:00:00."
            )
        hours, minutes, seconds = (int(match[k] or 0) for k in ("hours", "minutes", "seconds"))
        if hours > 23 or minutes > 59 or seconds > 59:
            raise InvalidValueError(
                parameter, value, "is not a timespan: hours are 0-23, minutes and seconds 0-59."
            )
        span = timedelta(
            days=int(match["days"] or 0), hours=hours, minutes=minutes, seconds=seconds
        )
    if not low <= span <= high:
        raise InvalidValueError(
            parameter,
            value,
            f"is out of range: it must be from {timespan_text(low)} to {timespan_text(high)}.",
        )
    return span


def timespan_text(span: timedelta) -> str:
    """As Exchange shows an EnhancedTimeSpan: "2.00:00:00", "00:01:00"."""
    total = int(span.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{clock}" if days else clock


def flags_text(flags: Iterable[str], order: tuple[str, ...]) -> str:
    """A set of flags in Exchange's order, "Tls, Integrated" (or "None")."""
    chosen = [option for option in order if option in set(flags)]
    return ", ".join(chosen) if chosen else "None"


def join_lines(values: Iterable[str]) -> str:
    return "\n".join(values)


def split_lines(text: str | None) -> tuple[str, ...]:
    return tuple(line for line in (text or "").split("\n") if line)
