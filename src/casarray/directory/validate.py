"""Checks of parameter values, each failing with an InvalidValueError that names the
parameter and the value."""

from __future__ import annotations

import ipaddress
import re

from casarray.directory.errors import InvalidValueError

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NETBIOS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,14}$")
_ALIAS = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$")


def fqdn(parameter: str, value: str) -> str:
    """A fully qualified host name: two or more DNS labels; a trailing dot is dropped."""
    text = str(value).strip()
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise InvalidValueError(parameter, value, "is empty. Supply a fully qualified name.")
    if len(text) > 253:
        raise InvalidValueError(parameter, value, "is longer than 253 characters.")
    labels = text.split(".")
    if len(labels) < 2:
        raise InvalidValueError(
            parameter, value, "is not a fully qualified domain name (for example cas.lab.net)."
        )
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise InvalidValueError(
                parameter,
                value,
                f"is not a valid domain name: label '{label}' must be 1 to 63 letters, digits "
                "or hyphens, not starting or ending with a hyphen.",
            )
    if labels[-1].isdigit():
        raise InvalidValueError(parameter, value, "is an address, not a domain name.")
    return text


def display_name(parameter: str, value: str, max_length: int = 64) -> str:
    text = str(value).strip()
    if not text:
        raise InvalidValueError(parameter, value, "is empty.")
    if len(text) > max_length:
        raise InvalidValueError(
            parameter, value, f"is {len(text)} characters long; the maximum is {max_length}."
        )
    if any(ord(ch) < 32 or ch == "\x7f" for ch in text):
        raise InvalidValueError(parameter, value, "contains a control character.")
    return text


def server_name(parameter: str, value: str) -> str:
    text = str(value).strip()
    if not _NETBIOS.fullmatch(text) or text.isdigit():
        raise InvalidValueError(
            parameter,
            value,
            "is not a valid server name: use 1 to 15 letters, digits or hyphens, "
            "starting with a letter or digit.",
        )
    return text


def ipv4(parameter: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise InvalidValueError(parameter, value, "is not an IPv4 address.") from None


def cidr(parameter: str, value: str) -> str:
    text = str(value).strip()
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.IPv4Network(text, strict=False)
            raise InvalidValueError(
                parameter, value, f"has host bits set; the subnet is {fixed}."
            ) from None
        raise InvalidValueError(
            parameter, value, "is not a subnet in CIDR form (for example 10.1.0.0/16)."
        ) from None
    if "/" not in text:
        raise InvalidValueError(
            parameter, value, "has no prefix length; write it as a subnet, e.g. 10.1.0.0/16."
        )
    return str(network)


def alias(parameter: str, value: str) -> str:
    text = str(value).strip()
    if not text or len(text) > 64 or not _ALIAS.fullmatch(text):
        raise InvalidValueError(
            parameter,
            value,
            "is not a valid alias: use up to 64 letters, digits and the characters "
            "!#$%&'*+-/=?^_`{|}~, with dots only between them.",
        )
    return text


def smtp_address(parameter: str, value: str) -> tuple[str, str, str]:
    """(address, local part, domain) of an SMTP address."""
    text = str(value).strip()
    if text.lower().startswith("smtp:"):
        text = text[5:]
    local, at, domain = text.rpartition("@")
    if not at or not local:
        raise InvalidValueError(parameter, value, "is not an SMTP address (user@domain).")
    if not _ALIAS.fullmatch(local) or len(local) > 64:
        raise InvalidValueError(parameter, value, f"has an invalid local part '{local}'.")
    try:
        fqdn(parameter, domain)
    except InvalidValueError:
        raise InvalidValueError(parameter, value, f"has an invalid domain '{domain}'.") from None
    return f"{local}@{domain.lower()}", local, domain.lower()
