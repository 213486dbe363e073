"""Storage quotas as Exchange keeps them: the rules, apart from where they are stored.

Exchange 2010 sets three limits per mailbox database (Set-MailboxDatabase) and, when a
mailbox doesn't use its database's (`-UseDatabaseQuotaDefaults $false`), per mailbox
(Set-Mailbox): IssueWarningQuota (the owner is warned), ProhibitSendQuota (the owner
can't send) and ProhibitSendReceiveQuota (nothing more is stored in the mailbox: no
delivery, no APPEND or COPY over IMAP). Each is a size or Unlimited; a new database
gets 1.899 GB / 2 GB / 2.3 GB, a new mailbox uses its database's.

Sizes are written as Exchange accepts them ("2GB", "500 MB", "1.5GB", "1073741824",
"Unlimited", or as Get-* shows them, "2 GB (2,147,483,648 bytes)") and shown as
Exchange's ByteQuantifiedSize does: the largest unit the value reaches, up to three
decimals, then the exact byte count. As Exchange validates, IssueWarningQuota <=
ProhibitSendQuota <= ProhibitSendReceiveQuota (Unlimited above every size).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from casarray.directory.errors import InvalidValueError

UNLIMITED_TEXT = "Unlimited"
# Exchange's largest quota: just under 2 TB (2,199,023,254,528 bytes).
MAX_QUOTA = 2 * 1024**4 - 1024
_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(
    r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGT]?B)?"
    r"(?:\s*\(\s*(?P<exact>[\d,]+)\s*bytes\s*\))?\s*$",
    re.IGNORECASE,
)
# The parameters, in their order: each at most the next.
ORDER = ("IssueWarningQuota", "ProhibitSendQuota", "ProhibitSendReceiveQuota")


@dataclass(frozen=True)
class Quotas:
    """The three limits in bytes; None is Unlimited."""

    issue_warning: int | None = None
    prohibit_send: int | None = None
    prohibit_send_receive: int | None = None

    def by_parameter(self) -> dict[str, int | None]:
        return dict(zip(ORDER, self.values(), strict=True))

    def values(self) -> tuple[int | None, int | None, int | None]:
        return (self.issue_warning, self.prohibit_send, self.prohibit_send_receive)

    def with_parameters(self, changes: dict[str, int | None]) -> Quotas:
        """These quotas with some changed, by parameter name."""
        names = ("issue_warning", "prohibit_send", "prohibit_send_receive")
        fields = dict(zip(ORDER, names, strict=True))
        return replace(self, **{fields[name]: value for name, value in changes.items()})


# Exchange 2010's defaults for a new mailbox database.
DATABASE_DEFAULTS = Quotas(
    issue_warning=2_039_480_320,  # 1.899 GB
    prohibit_send=2_147_483_648,  # 2 GB
    prohibit_send_receive=2_469_396_480,  # 2.3 GB
)
UNLIMITED = Quotas()
MAILBOX_DEFAULTS = UNLIMITED


def parse_size(parameter: str, value: object) -> int | None:
    """The bytes `value` stands for (None for Unlimited), or InvalidValueError."""
    if value is None:
        raise InvalidValueError(
            parameter, "", "is not a size; use a size such as 2GB, or Unlimited."
        )
    if isinstance(value, bool):
        raise InvalidValueError(parameter, value, "is not a size.")
    if isinstance(value, int):
        size: int | None = value
    else:
        text = str(value).strip()
        if text.lower() == UNLIMITED_TEXT.lower():
            return None
        match = _SIZE.match(text)
        if match is None:
            raise InvalidValueError(
                parameter,
                value,
                "is not a size: write a number with a unit (B, KB, MB, GB or TB), "
                "for example 2GB or 500MB, or Unlimited.",
            )
        if match["exact"]:
            size = int(match["exact"].replace(",", ""))
        else:
            unit = _UNITS[(match["unit"] or "B").upper()]
            try:
                exact = Decimal(match["number"]) * unit
            except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
                raise InvalidValueError(parameter, value, "is not a size.") from None
            if exact != exact.to_integral_value():
                raise InvalidValueError(parameter, value, "is not a whole number of bytes.")
            size = int(exact)
    assert size is not None
    if size < 0 or size > MAX_QUOTA:
        raise InvalidValueError(
            parameter,
            value,
            f"is out of range: a quota is 0 B to {format_size(MAX_QUOTA)}, or Unlimited.",
        )
    return size


def format_size(size: int | None) -> str:
    """As Exchange shows a quota: "2 GB (2,147,483,648 bytes)", or "Unlimited"."""
    if size is None:
        return UNLIMITED_TEXT
    unit_name, unit = "B", 1
    for name, factor in _UNITS.items():
        if size >= factor:
            unit_name, unit = name, factor
    if unit == 1:
        return f"{size} B ({size:,} bytes)"
    amount = (Decimal(size) / unit).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)
    number = format(amount.normalize(), "f")
    return f"{number} {unit_name} ({size:,} bytes)"


def check_order(quotas: Quotas) -> None:
    """Exchange's rule: IssueWarningQuota <= ProhibitSendQuota <= ProhibitSendReceiveQuota
    (Unlimited is above every size). InvalidValueError names the first pair out of order."""
    values = quotas.by_parameter()
    for lower, higher in itertools.pairwise(ORDER):
        low, high = values[lower], values[higher]
        if high is not None and (low is None or low > high):
            raise InvalidValueError(
                lower,
                format_size(low),
                f"must be less than or equal to the value of {higher} ({format_size(high)}).",
            )


def effective(use_database_defaults: bool, own: Quotas, database: Quotas) -> Quotas:
    """The limits that apply to a mailbox: its database's unless it has its own."""
    return database if use_database_defaults else own
