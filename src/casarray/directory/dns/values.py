"""DNS's names, values and defaults (the DnsServer module's and Windows DNS's), and
the checks that turn a cmdlet's parameter into one of them: TTLs and TimeSpans, zone
and record names, record data in master-file form, subnets, policy criteria."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from casarray.directory import validate
from casarray.directory.errors import InvalidValueError

DEFAULT_LISTENING_ADDRESS = "127.77.0.53"
NAME_SERVER = "ns1"  # the zone's name server: ns1.<zone>
HOSTMASTER = "hostmaster"  # the SOA's responsible person: hostmaster.<zone>
DEFAULT_TTL = 3600  # Windows' default for a record added by cmdlet
AUTOMATIC_TTL = 1200  # Windows' for a dynamically registered host
MAX_TTL = 2**31 - 1  # RFC 2181
SOA_TIMERS = (900, 600, 86400, 3600)  # refresh, retry, expire, minimum (Windows')
MX_PREFERENCE = 10
SERIAL_MODULUS = 2**32
MAIL, AUTODISCOVER, AUTOCONFIG, SMTP = "mail", "autodiscover", "autoconfig", "smtp"
SUBMISSION = "_submission._tcp"
SRV_SERVICES = (  # RFC 6186, and Exchange's Autodiscover SRV
    ("_autodiscover._tcp", 443, AUTODISCOVER),
    ("_imap._tcp", 143, MAIL),
    ("_imaps._tcp", 993, MAIL),
    (SUBMISSION, 587, MAIL),  # or smtp.<zone>, where Hub Transport servers take the mail
)
LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# the record types a cmdlet may add, as Get-DnsServerResourceRecord names them
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "SRV", "TXT")
SHOWN_TYPES = ("SOA", "NS", *RECORD_TYPES)
TYPE_CODES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "SRV": 33}
POLICY_ACTIONS = ("DENY",)

LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})$")
TYPE_ORDER = {t: i for i, t in enumerate(SHOWN_TYPES)}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ttl(parameter: str, value: object) -> int:
    """A TTL in seconds from seconds or a TimeSpan ("01:00:00", "1.00:00:00")."""
    if isinstance(value, bool):
        raise InvalidValueError(parameter, value, "is not a time span.")
    if isinstance(value, int):
        seconds = value
    else:
        text = str(value).strip()
        match = _TIMESPAN.fullmatch(text)
        if match:
            days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
            if hours > 23 or minutes > 59 or secs > 59:
                raise InvalidValueError(parameter, value, "is not a valid time span.")
            seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
        elif text.isdigit():
            seconds = int(text)
        else:
            raise InvalidValueError(
                parameter, value, "is not a time span (for example 01:00:00) or seconds."
            )
    if not 0 <= seconds <= MAX_TTL:
        raise InvalidValueError(
            parameter, value, f"is out of range: a TTL is 0 to {MAX_TTL} seconds."
        )
    return seconds


def timespan(seconds: int) -> str:
    """A TTL as Windows shows a TimeSpan: 01:00:00, 1.00:00:00."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}.{text}" if days else text


def zone_name(parameter: str, value: str) -> str:
    """A zone's name: a domain name, lower-case, no trailing dot."""
    return validate.fqdn(parameter, value).lower()


def _host(parameter: str, value: str) -> str:
    """A host name record data points at, absolute (trailing dot)."""
    return validate.fqdn(parameter, value) + "."


def network(parameter: str, value: str, version: int) -> str:
    text = str(value).strip()
    example = "10.1.0.0/16" if version == 4 else "2001:db8::/32"
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise InvalidValueError(
                parameter, value, f"has host bits set; the subnet is {fixed}."
            ) from None
        network = None
    if network is None or network.version != version or "/" not in text:
        raise InvalidValueError(
            parameter, value, f"is not an IPv{version} subnet in CIDR form (for example {example})."
        )
    return str(network)


def split_list(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for v in values for part in str(v).split(",") if part.strip()]


def csv_items(text: str) -> list[str]:
    return [p for p in text.split(",") if p]


def article(rtype: str) -> str:
    """The article of a record type read as letters: "an A", "an MX", "a CNAME"."""
    return f"an {rtype}" if rtype[0] in "AEFHILMNORSX" else f"a {rtype}"


def record_type(parameter: str, value: str, allowed: tuple[str, ...]) -> str:
    text = str(value).strip().upper()
    if text not in allowed:
        raise InvalidValueError(parameter, value, f"is not one of {', '.join(allowed)}.")
    return text


def record_data(rtype: str, data: str | None) -> str:
    """The record data in canonical master-file form (names absolute), or an error
    saying what is wrong."""
    text = str(data if data is not None else "").strip()
    if rtype == "A":
        return validate.ipv4("IPv4Address", text)
    if rtype == "AAAA":
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            raise InvalidValueError("IPv6Address", data, "is not an IPv6 address.") from None
    if rtype == "CNAME":
        return _host("HostNameAlias", text)
    if rtype == "MX":
        parts = text.split()
        if len(parts) != 2:
            raise InvalidValueError("MailExchange", data, "is not 'preference host'.")
        return f"{_number('Preference', parts[0])} {_host('MailExchange', parts[1])}"
    if rtype == "SRV":
        parts = text.split()
        if len(parts) != 4:
            raise InvalidValueError("DomainName", data, "is not 'priority weight port host'.")
        numbers = [
            _number(p, v) for p, v in zip(("Priority", "Weight", "Port"), parts, strict=False)
        ]
        return " ".join(str(n) for n in numbers) + " " + _host("DomainName", parts[3])
    if rtype == "TXT":
        import dns.exception
        import dns.rdata
        import dns.rdataclass
        import dns.rdatatype

        if not text:
            raise InvalidValueError("DescriptiveText", data, "is empty.")
        try:
            chunks = [text[i : i + 255] for i in range(0, len(text), 255)]
            quoted = " ".join(
                '"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks
            )
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, quoted)
        except (dns.exception.DNSException, UnicodeError):
            raise InvalidValueError("DescriptiveText", data, "is not valid TXT data.") from None
        return rdata.to_text()
    raise AssertionError(rtype)


def _number(parameter: str, value: str, high: int = 65535) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidValueError(parameter, value, f"is not a number from 0 to {high}.") from None
    if not 0 <= number <= high:
        raise InvalidValueError(parameter, value, f"is not a number from 0 to {high}.")
    return number


def fqdn_criterion(value: str) -> list[str]:
    """The names of a policy's -Fqdn criterion "EQ,name[,name...]"."""
    parts = [p.strip() for p in str(value or "").split(",")]
    if len(parts) < 2 or parts[0].upper() != "EQ" or not all(parts[1:]):
        raise InvalidValueError(
            "Fqdn",
            value,
            'is not an FQDN criterion of the form "EQ,name[,name...]" (a name may start '
            'with "*." for every name below it, e.g. "EQ,bj-cas.lab.net,*.int.lab.net").',
        )
    names = []
    for part in parts[1:]:
        wildcard = part.startswith("*.")
        name = validate.fqdn("Fqdn", part[2:] if wildcard else part).lower()
        names.append(f"*.{name}" if wildcard else name)
    return list(dict.fromkeys(names))
