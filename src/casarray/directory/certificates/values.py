"""Exchange's names and values for certificates (AllowedServices, Status, the
thumbprint and identity forms), and the checks that turn a cmdlet's parameter into one
of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from casarray.directory.errors import DirectoryError, InvalidValueError
from casarray.directory.schema import ExchangeCertificateRow
from casarray.pki import names as pki_names
from casarray.pki import trust

# Exchange's AllowedServices, in its order (the order Services is shown in)
SERVICES = ("IMAP", "POP", "IIS", "SMTP")
NONE = "None"
SELF_SIGNED_SERVICES = ("IMAP", "POP", "SMTP")
DEFAULT_FRIENDLY_NAME = "Microsoft Exchange"
TESTED_SERVICES = ("IIS", "IMAP")  # tested even when no certificate is enabled for them

VALID, UNTRUSTED, PENDING, DATE_INVALID = (
    trust.VALID,
    trust.UNTRUSTED,
    trust.PENDING,
    trust.DATE_INVALID,
)
SUCCESS, FAILURE = "Success", "Failure"
NOT_EXPORTABLE = (
    "The private key couldn't be exported as PKCS-12. It either couldn't be accessed or "
    "isn't exportable."
)


class ServerRequiredError(DirectoryError):
    """No -Server was given and there is no one Client Access server to default to."""

    category = "InvalidArgument"


def services_text(services: Sequence[str]) -> str:
    return ", ".join(services) if services else NONE


def stored_services(text: str) -> tuple[str, ...]:
    return tuple(s for s in (p.strip() for p in text.split(",")) if s and s != NONE)


def parse_services(
    value: str | Iterable[str], parameter: str = "Services", *, allow_none: bool = True
) -> tuple[str, ...]:
    """Services from "IMAP,IIS" or a list (any case), in Exchange's order; "None"
    alone is no service."""
    items = [value] if isinstance(value, str) else list(value)
    wanted: set[str] = set()
    saw_none = False
    for item in items:
        for part in str(item).split(","):
            text = part.strip()
            if not text:
                continue
            if text.lower() == "none":
                saw_none = True
                continue
            match = next((s for s in SERVICES if s.lower() == text.lower()), None)
            if match is None:
                raise InvalidValueError(
                    parameter, text, f"is not a service casarray runs: use {', '.join(SERVICES)}."
                )
            wanted.add(match)
    if saw_none and wanted:
        raise InvalidValueError(parameter, value, "names None together with services.")
    if not wanted and not allow_none:
        raise InvalidValueError(
            parameter, value, f"names no service: use one or more of {', '.join(SERVICES)}."
        )
    return tuple(s for s in SERVICES if s in wanted)


def service_name(value: str) -> str:
    """One service's canonical name (IMAP, POP, IIS, SMTP; any case)."""
    found = parse_services(value, "Service", allow_none=False)
    if len(found) != 1:
        raise InvalidValueError("Service", value, "is not one service.")
    return found[0]


def thumbprint(value: object, parameter: str = "Thumbprint") -> str:
    """A thumbprint as Exchange shows it: 40 upper-case hex digits (spaces and colons
    as certificate viewers show them are dropped)."""
    text = str(value).strip().replace(" ", "").replace(":", "").upper()
    if len(text) != 40 or any(ch not in "0123456789ABCDEF" for ch in text):
        raise InvalidValueError(
            parameter, value, "is not a certificate thumbprint (40 hexadecimal digits)."
        )
    return text


def parse_identity(value: object) -> tuple[str | None, str]:
    """(server or None, thumbprint) from an identity "CAS01\\<thumbprint>" or a bare
    thumbprint."""
    text = str(value).strip()
    server, sep, rest = text.rpartition("\\")
    if sep:
        return (server or None), thumbprint(rest, "Identity")
    return None, thumbprint(text, "Identity")


def parse_domain_names(parameter: str, values: Iterable[str]) -> list[str]:
    result = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip():
                continue
            try:
                result.append(pki_names.dns_name(part))
            except ValueError as exc:
                raise InvalidValueError(parameter, part.strip(), str(exc)) from None
    return pki_names.unique(result)


def current_status(row: ExchangeCertificateRow, now: dt.datetime) -> str:
    dated = row.status in (VALID, UNTRUSTED) and row.not_before and row.not_after
    if dated and not row.not_before <= now <= row.not_after:  # type: ignore[operator]
        return DATE_INVALID
    return row.status
