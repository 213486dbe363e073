"""How one value reads as text in output: as a table cell or list entry (`cell_text`:
collections as `{a, b, c}`, at most $FormatEnumerationLimit items), and through the
.NET format strings of a calculated property's FormatString and of Get-Date -Format
(`apply_format`, `format_datetime`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from casarray.shell.values import is_collection, to_string

if TYPE_CHECKING:
    from casarray.shell.runtime import Session

ENUMERATION_LIMIT = 4


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def cell_text(value: Any, limit: int = ENUMERATION_LIMIT) -> str:
    """A value as a table cell or list entry shows it: collections as `{a, b, c}`."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if is_collection(value):
        items = list(value)
        shown = items if limit < 0 else items[:limit]
        text = ", ".join(to_string(item) for item in shown)
        if 0 <= limit < len(items):
            text += "..."
        return "{" + text + "}"
    return to_string(value)


def enumeration_limit(session: Session | None) -> int:
    """$FormatEnumerationLimit of the session (4 unless set; -1: no limit)."""
    if session is None:
        return ENUMERATION_LIMIT
    try:
        value = session.get_variable("FormatEnumerationLimit")
    except Exception:
        return ENUMERATION_LIMIT
    if is_number(value):
        return int(value)
    return ENUMERATION_LIMIT


_DOTNET_NUMBER = re.compile(r"([NnFfDdPpXxEeCc])(\d{0,2})")


def apply_format(value: Any, format_string: str | None, limit: int = ENUMERATION_LIMIT) -> str:
    """A value through a .NET format string ("N2", "F1", "D5", "P0", "X", "yyyy-MM-dd")
    as a calculated property's FormatString gives it; other values as `cell_text`."""
    if not format_string or value is None:
        return cell_text(value, limit)
    if isinstance(value, datetime):
        return format_datetime(value, format_string)
    match = _DOTNET_NUMBER.fullmatch(format_string)
    if match and is_number(value):
        code, digits = match.group(1), match.group(2)
        upper = code.upper()
        places = int(digits) if digits else (0 if upper in "DX" else 2)
        if upper == "N":
            return f"{value:,.{places}f}"
        if upper == "F":
            return f"{value:.{places}f}"
        if upper == "C":
            return f"${value:,.{places}f}"
        if upper == "P":
            return f"{value * 100:,.{places}f} %"
        if upper == "E":
            text = f"{value:.{places if digits else 6}e}"
            return text.upper() if code == "E" else text
        if upper == "D" and isinstance(value, int):
            return f"{value:0{places}d}"
        if upper == "X" and isinstance(value, int):
            return f"{value:0{places}{'X' if code == 'X' else 'x'}}"
    return cell_text(value, limit)


# -- .NET date format strings (Get-Date -Format, FormatString) ------------------------

_STANDARD_DATE = {
    "d": "M/d/yyyy",
    "D": "dddd, MMMM d, yyyy",
    "t": "h:mm tt",
    "T": "h:mm:ss tt",
    "f": "dddd, MMMM d, yyyy h:mm tt",
    "F": "dddd, MMMM d, yyyy h:mm:ss tt",
    "g": "M/d/yyyy h:mm tt",
    "G": "M/d/yyyy h:mm:ss tt",
    "s": "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
    "u": "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
    "o": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "O": "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
    "r": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "R": "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
    "m": "MMMM d",
    "M": "MMMM d",
    "y": "MMMM yyyy",
    "Y": "MMMM yyyy",
}
_DATE_TOKEN = re.compile(
    r"'[^']*'|\"[^\"]*\"|\\.|%|y{1,5}|M{1,4}|d{1,4}|H{1,2}|h{1,2}|m{1,2}|s{1,2}"
    r"|f{1,7}|F{1,7}|t{1,2}|z{1,3}|K|g{1,2}|.",
    re.DOTALL,
)


def _offset(value: datetime, token: str) -> str:
    delta = value.utcoffset()
    if delta is None:
        return ""
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    if token == "z":
        return f"{sign}{hours}"
    if token == "zz":
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}:{rest:02d}"


def format_datetime(value: datetime, fmt: str) -> str:
    """`value` through a .NET date format: a standard one ("d", "G", "s", "o", ...) or
    a custom pattern ("yyyy-MM-dd HH:mm:ss", "dddd", "MMM d", with 'quoted' text)."""
    if fmt in ("u", "r", "R") and value.tzinfo is not None:
        value = value.astimezone(UTC)
    pattern = _STANDARD_DATE.get(fmt, fmt)
    out: list[str] = []
    for token in _DATE_TOKEN.findall(pattern):
        first = token[0]
        if first in "'\"" and len(token) >= 2:
            out.append(token[1:-1])
        elif first == "\\" and len(token) == 2:
            out.append(token[1])
        elif token == "%":
            continue
        elif first == "y":
            if len(token) == 1:
                out.append(str(value.year % 100))
            elif len(token) == 2:
                out.append(f"{value.year % 100:02d}")
            else:
                out.append(f"{value.year:0{len(token)}d}")
        elif first == "M":
            names = (str(value.month), f"{value.month:02d}", f"{value:%b}", f"{value:%B}")
            out.append(names[len(token) - 1])
        elif first == "d":
            names = (str(value.day), f"{value.day:02d}", f"{value:%a}", f"{value:%A}")
            out.append(names[len(token) - 1])
        elif first == "H":
            out.append(f"{value.hour:0{len(token)}d}")
        elif first == "h":
            hour = value.hour % 12 or 12
            out.append(f"{hour:0{len(token)}d}")
        elif first == "m":
            out.append(f"{value.minute:0{len(token)}d}")
        elif first == "s":
            out.append(f"{value.second:0{len(token)}d}")
        elif first in "fF":
            digits = f"{value.microsecond:06d}0"[: len(token)]
            out.append(digits.rstrip("0") if first == "F" else digits)
        elif first == "t":
            marker = "AM" if value.hour < 12 else "PM"
            out.append(marker[: len(token)])
        elif first == "z":
            out.append(_offset(value, token))
        elif token == "K":
            out.append(_offset(value, "zzz"))
        elif first == "g":
            out.append("A.D.")
        else:
            out.append(token)
    return "".join(out)
