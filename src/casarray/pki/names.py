"""Names in certificates: X.500 subject names as Windows writes them, and DNS names
(with RFC 6125 wildcards) as subject alternative names.

A subject is typed as Exchange's -SubjectName takes it, "C=CN, O=Lab, CN=mail.lab.net":
the attributes in the certificate's order, most significant first. Windows shows a
certificate's subject the other way round, "CN=mail.lab.net, O=Lab, C=CN", and so does
`subject_text`. The parsers raise ValueError with a phrase that completes "The value
'...' " (the directory turns it into a parameter error).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cryptography import x509
from cryptography.x509.oid import NameOID

# The attribute names -SubjectName accepts (as Windows' X500DistinguishedName does)
ATTRIBUTES: dict[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "C": NameOID.COUNTRY_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "EMAIL": NameOID.EMAIL_ADDRESS,
    "EMAILADDRESS": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "STREET": NameOID.STREET_ADDRESS,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "T": NameOID.TITLE,
    "TITLE": NameOID.TITLE,
    "G": NameOID.GIVEN_NAME,
    "GIVENNAME": NameOID.GIVEN_NAME,
    "SN": NameOID.SURNAME,
    "POSTALCODE": NameOID.POSTAL_CODE,
}
# How Windows shows each attribute
SHORT_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "S",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.EMAIL_ADDRESS: "E",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.TITLE: "T",
    NameOID.GIVEN_NAME: "G",
    NameOID.SURNAME: "SN",
    NameOID.POSTAL_CODE: "PostalCode",
}
MAX_LENGTHS = {NameOID.COMMON_NAME: 64, NameOID.ORGANIZATION_NAME: 64}
KNOWN = "CN, O, OU, L, S, C, E, DC"

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def _split(text: str) -> list[str]:
    """The comma- (or semicolon-) separated parts of a distinguished name, with
    quoted values and backslash escapes kept whole."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch in ",;" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise ValueError("has an unterminated quotation mark.")
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('""', '"')
    return re.sub(r"\\(.)", r"\1", value)


def parse_subject(text: str) -> x509.Name:
    """The X.500 name of a -SubjectName such as "C=CN, O=Lab, CN=mail.lab.net"; it
    must have a common name (CN)."""
    if not text.strip():
        raise ValueError("is empty. Write a subject such as CN=mail.lab.net, O=Lab, C=CN.")
    attributes: list[x509.NameAttribute] = []
    for part in _split(text):
        if not part.strip():
            raise ValueError("has an empty part between two commas.")
        key, equals, raw = part.partition("=")
        if not equals:
            raise ValueError(f"has a part '{part.strip()}' that is not ATTRIBUTE=value.")
        oid = ATTRIBUTES.get(key.strip().upper())
        if oid is None:
            raise ValueError(f"has an unknown attribute '{key.strip()}' (use {KNOWN}).")
        value = _unquote(raw)
        if not value:
            raise ValueError(f"has an empty {key.strip().upper()}.")
        if oid == NameOID.COUNTRY_NAME and not re.fullmatch(r"[A-Za-z]{2}", value):
            raise ValueError(f"has C={value}: a country is two letters (ISO 3166), e.g. C=CN.")
        limit = MAX_LENGTHS.get(oid)
        if limit is not None and len(value) > limit:
            raise ValueError(
                f"has a {SHORT_NAMES[oid]} of {len(value)} characters; the most is {limit}."
            )
        if oid == NameOID.COUNTRY_NAME:
            value = value.upper()
        attributes.append(x509.NameAttribute(oid, value))
    name = x509.Name(attributes)
    if common_name(name) is None:
        raise ValueError("has no common name: add CN=<the main host name>, e.g. CN=mail.lab.net.")
    return name


def _quote(value: str) -> str:
    if any(ch in value for ch in ',;+"=<>#') or value != value.strip():
        return '"' + value.replace('"', '""') + '"'
    return value


def subject_text(name: x509.Name) -> str:
    """A name as Windows shows it: the last attribute first, "CN=..., O=..., C=..."."""
    parts = []
    for rdn in reversed(name.rdns):
        parts.append(
            "+".join(
                f"{SHORT_NAMES.get(a.oid, a.oid.dotted_string)}={_quote(str(a.value))}" for a in rdn
            )
        )
    return ", ".join(parts)


def common_name(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[-1].value) if values else None


def dns_name(text: str) -> str:
    """A DNS name for a certificate: lower case, no trailing dot; a host name, a
    single-label (NetBIOS) server name, or a wildcard "*.lab.net"."""
    name = str(text).strip().rstrip(".").lower()
    if not name:
        raise ValueError("is empty.")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError("is an IP address; a certificate's domains are DNS names.")
    if len(name) > 253:
        raise ValueError("is longer than 253 characters.")
    labels = name.split(".")
    if labels[0] == "*":
        if len(labels) < 3:
            raise ValueError("is a wildcard over a whole top-level domain; use one like *.lab.net.")
        labels = labels[1:]
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"is not a valid domain name: label '{label}' must be 1 to 63 letters, digits "
                "or hyphens (a wildcard * only as the whole first label)."
            )
    if len(labels) > 1 and labels[-1].isdigit():
        raise ValueError("is not a domain name (its last label is a number).")
    return name


def unique(names: Iterable[str]) -> list[str]:
    """`names` lower-cased, each once, in order."""
    seen: list[str] = []
    for name in names:
        key = name.lower()
        if key not in seen:
            seen.append(key)
    return seen


def matches(pattern: str, host: str) -> bool:
    """Whether the certificate name `pattern` covers `host` (RFC 6125: a wildcard
    stands for exactly one whole leftmost label)."""
    pattern = pattern.lower().rstrip(".")
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, dot, rest = host.partition(".")
        return bool(dot) and bool(head) and rest == pattern[2:]
    return pattern == host


def covers(names: Iterable[str], host: str) -> bool:
    return any(matches(name, host) for name in names)
