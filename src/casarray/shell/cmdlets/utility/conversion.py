"""The cmdlets that make values of another kind: ConvertTo-Json (objects to JSON
text), ConvertTo-SecureString (a password parameter's value from plain text) and
Get-Date (a date, or its text in a .NET or Unix format)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.utility.common import PARAMETER_SET, Collecting
from casarray.shell.psobject import PSObject
from casarray.shell.value_format import format_datetime
from casarray.shell.values import (
    ScriptBlockValue,
    SecureString,
    ShellRuntimeError,
    is_collection,
    to_string,
)

# -- Get-Date, ConvertTo-SecureString -------------------------------------------------------------


@register
class GetDate(Cmdlet):
    name = "Get-Date"
    parameters = (
        Parameter(
            "Date",
            kind="datetime",
            position=0,
            from_pipeline=True,
            help="The date to use (now by default).",
        ),
        Parameter(
            "Format",
            help="Outputs the date as text in this .NET format (yyyy-MM-dd HH:mm, or a "
            "standard format such as d, G, s, o).",
        ),
        Parameter("UFormat", help="Outputs the date as text in this Unix format (%Y-%m-%d)."),
        Parameter("Year", kind="int", help="Replaces the year."),
        Parameter("Month", kind="int", help="Replaces the month."),
        Parameter("Day", kind="int", help="Replaces the day."),
        Parameter("Hour", kind="int", help="Replaces the hour."),
        Parameter("Minute", kind="int", help="Replaces the minute."),
        Parameter("Second", kind="int", help="Replaces the second."),
    )
    synopsis = "Gets the current date and time."
    description = (
        "Outputs the current date and time (or the given one, with some parts replaced), "
        "or its text in a format."
    )
    examples = (
        Example("Get-Date", "The date and time now."),
        Example('Get-Date -Format "yyyy-MM-dd HH:mm"', "Now as text: 2010-11-24 20:29."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        value: datetime = params.get("Date") or datetime.now().astimezone()
        changes = {
            name.lower(): params[name]
            for name in ("Year", "Month", "Day", "Hour", "Minute", "Second")
            if name in params
        }
        if changes:
            try:
                value = value.replace(**changes)
            except ValueError as exc:
                raise ShellRuntimeError(
                    f"Cannot make a date of those values: {exc}.", category="InvalidArgument"
                ) from None
        if params.get("Format") and params.get("UFormat"):
            raise ShellRuntimeError(PARAMETER_SET, category="InvalidArgument")
        if params.get("Format"):
            yield format_datetime(value, params["Format"])
        elif params.get("UFormat"):
            yield value.strftime(params["UFormat"])
        else:
            yield value


@register
class ConvertToSecureString(Cmdlet):
    name = "ConvertTo-SecureString"
    parameters = (
        Parameter(
            "String",
            position=0,
            mandatory=True,
            from_pipeline=True,
            help="The text to convert.",
        ),
        Parameter(
            "AsPlainText",
            kind="switch",
            help="The string is plain text (not an encrypted standard string).",
        ),
        Parameter(
            "Force", kind="switch", help="Confirms that you understand the risk of -AsPlainText."
        ),
    )
    synopsis = "Converts plain text or encrypted strings to secure strings."
    description = (
        "Makes a SecureString, what password parameters take, from plain text "
        "(-AsPlainText -Force). A SecureString never prints its value."
    )
    examples = (
        Example(
            '$password = ConvertTo-SecureString "P@ssw0rd" -AsPlainText -Force',
            "A password for New-Mailbox -Password.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        text = params.get("String", "")
        if not params.get("AsPlainText"):
            raise ShellRuntimeError(
                "Input string was not in a correct format. Without -AsPlainText, "
                "ConvertTo-SecureString expects an encrypted standard string (the output of "
                "ConvertFrom-SecureString), which casarray does not support: use "
                'ConvertTo-SecureString "text" -AsPlainText -Force.',
                category="InvalidArgument",
            )
        if not params.get("Force"):
            raise ShellRuntimeError(
                "The system cannot protect plain text input. To suppress this warning and "
                "convert the plain text to a SecureString, reissue the command specifying "
                "the Force parameter. For more information ,type: get-help "
                "ConvertTo-SecureString.",
                category="InvalidArgument",
            )
        yield SecureString(text)


# -- ConvertTo-Json -------------------------------------------------------------------------------


def _json_value(value: Any, depth: int) -> Any:
    """`value` as JSON data; objects deeper than `depth` levels become their text."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else to_string(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_string(value)
    if isinstance(value, (SecureString, ScriptBlockValue)):
        return str(value)
    if is_collection(value):
        return [_json_value(v, depth) for v in value]
    if isinstance(value, (set, frozenset)):
        return [_json_value(v, depth) for v in sorted(value, key=to_string)]
    if isinstance(value, (PSObject, Mapping)) or (
        is_dataclass(value) and not isinstance(value, type)
    ):
        if depth < 0:
            return to_string(value)
        if isinstance(value, PSObject):
            pairs: Iterable[tuple[str, Any]] = value.items()
        elif isinstance(value, Mapping):
            pairs = ((to_string(k), v) for k, v in value.items())
        else:
            pairs = (
                ("".join(p[:1].upper() + p[1:] for p in f.name.split("_")), getattr(value, f.name))
                for f in fields(value)
                if not f.name.startswith("_")
            )
        return {name: _json_value(v, depth - 1) for name, v in pairs}
    return to_string(value)


def to_json(value: Any, depth: int = 2, compress: bool = False) -> str:
    """ConvertTo-Json's text for one value."""
    data = _json_value(value, depth)
    if compress:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(data, ensure_ascii=False, indent=2)


@register
class ConvertToJson(Collecting):
    name = "ConvertTo-Json"
    parameters = (
        Parameter(
            "InputObject",
            kind="object",
            position=0,
            from_pipeline=True,
            help="The objects to convert.",
        ),
        Parameter(
            "Depth",
            kind="int",
            help="How many levels of contained objects are included (2 by default); deeper "
            "objects become their text.",
        ),
        Parameter("Compress", kind="switch", help="Omits white space and indentation."),
        Parameter("AsArray", kind="switch", help="Outputs an array even for one object."),
        Parameter("EnumsAsStrings", kind="switch", help="Accepted: enums are always strings."),
    )
    synopsis = "Converts an object to a JSON-formatted string."
    description = (
        "Converts its input to one JSON text: an object for one input object, an array "
        "for several. Properties become members; dates are ISO 8601 strings; enums and "
        "secure strings are their names."
    )
    examples = (
        Example(
            "Get-ClientAccessArray | Select-Object Name, Fqdn, Members | ConvertTo-Json",
            "The arrays as JSON.",
        ),
        Example("Get-Mailbox alice | ConvertTo-Json -Depth 1 -Compress", "One line of JSON."),
    )

    def end(self) -> Iterable[Any]:
        depth = self.params.get("Depth", 2)
        if depth < 0 or depth > 100:
            raise ShellRuntimeError(
                f"Cannot validate argument on parameter 'Depth'. The {depth} argument is not "
                "in the allowed range of 0 to 100.",
                category="InvalidData",
            )
        if not self.items:
            return
        value: Any = self.items
        if len(self.items) == 1 and not self.params.get("AsArray"):
            value = self.items[0]
        yield to_json(value, depth, bool(self.params.get("Compress")))
