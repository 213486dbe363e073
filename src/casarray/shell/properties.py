"""The properties of output objects: the names an object shows, -Property arguments
(names, wildcards, calculated properties: hashtables with Name/Label and Expression,
and the keys each cmdlet allows), and the columns Out-Default shows for an object
(its type's view, else all its properties)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any

from casarray.shell.operators import wildcard_regex
from casarray.shell.psobject import PSObject
from casarray.shell.value_format import is_number
from casarray.shell.values import ScriptBlockValue, ShellRuntimeError, get_member, to_string
from casarray.shell.views import view_for

if TYPE_CHECKING:
    from casarray.shell.runtime import Session

HASHTABLE_ENTRY = "System.Collections.DictionaryEntry"


_WILDCARD = re.compile(r"[*?\[]")


def has_wildcard(text: str) -> bool:
    return bool(_WILDCARD.search(text))


def wildcard_match(pattern: str, text: str, case_sensitive: bool = False) -> bool:
    return bool(wildcard_regex(pattern, case_sensitive).match(text))


def pascal_case(name: str) -> str:
    """A Python field name as a property name: `rpc_client_access_server` ->
    `RpcClientAccessServer`."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def property_names(value: Any) -> list[str]:
    """The properties an object shows: a PSObject's, a hashtable's keys, a string's
    Length, a dataclass record's fields."""
    if isinstance(value, PSObject):
        return value.property_names()
    if isinstance(value, Mapping):
        return [to_string(key) for key in value]
    if isinstance(value, str):
        return ["Length"]
    if is_dataclass(value) and not isinstance(value, type):
        return [pascal_case(f.name) for f in fields(value) if not f.name.startswith("_")]
    return []


def property_value(value: Any, name: str) -> Any:
    return get_member(value, name)


@dataclass(frozen=True)
class PropertySpec:
    """One property to show or select: a name, or a calculated property (a hashtable
    with Name/Label and Expression, as `@{n='Members';e={$_.Members.Count}}`)."""

    label: str
    expression: str | ScriptBlockValue
    width: int | None = None
    alignment: str | None = None  # "Left", "Right", "Center"; None: numbers go right
    format_string: str | None = None
    descending: bool | None = None  # Sort-Object's Ascending/Descending keys

    def value(self, item: Any, session: Session | None) -> Any:
        if isinstance(self.expression, ScriptBlockValue):
            if session is None:
                raise ShellRuntimeError("A script block needs a session to run.")
            return session.scriptblock_value(self.expression, item)
        return property_value(item, self.expression)


SELECT_KEYS = ("Name", "Label", "Expression")
TABLE_KEYS = ("Name", "Label", "Expression", "Width", "Alignment", "FormatString")
LIST_KEYS = ("Name", "Label", "Expression", "FormatString")
SORT_KEYS = ("Expression", "Ascending", "Descending")
GROUP_KEYS = ("Name", "Label", "Expression", "FormatString")


def calculated_property(table: Mapping[Any, Any], allowed: Sequence[str]) -> PropertySpec:
    """A calculated property from its hashtable. Keys may be abbreviated (n, e, l)."""
    found: dict[str, Any] = {}
    for key, value in table.items():
        written = to_string(key)
        lower = written.lower()
        matches = [a for a in allowed if a.lower() == lower] or [
            a for a in allowed if a.lower().startswith(lower) and lower
        ]
        if len(matches) != 1:
            raise ShellRuntimeError(f"The {written} key is not valid.", category="InvalidArgument")
        canonical = "Name" if matches[0] == "Label" else matches[0]
        if canonical in found:
            raise ShellRuntimeError(
                f"The {written} key has already been specified.", category="InvalidArgument"
            )
        found[canonical] = value
    if "Expression" not in found:
        raise ShellRuntimeError(
            "The Expression key is missing: a calculated property needs an Expression "
            "(a script block or a property name).",
            category="InvalidArgument",
        )
    expression = found["Expression"]
    if not isinstance(expression, ScriptBlockValue):
        expression = to_string(expression)
    if "Name" in found:
        label = to_string(found["Name"])
    elif isinstance(expression, ScriptBlockValue):
        label = str(expression).strip()
    else:
        label = expression
    width = found.get("Width")
    if width is not None:
        if not is_number(width) or int(width) < 1:
            raise ShellRuntimeError(
                f'The Width key value "{to_string(width)}" is not valid: use a number above 0.',
                category="InvalidArgument",
            )
        width = int(width)
    alignment = found.get("Alignment")
    if alignment is not None:
        text = to_string(alignment).strip().lower()
        if text not in ("left", "right", "center"):
            raise ShellRuntimeError(
                f'The Alignment key value "{to_string(alignment)}" is not valid: use Left, '
                "Right or Center.",
                category="InvalidArgument",
            )
        alignment = text.capitalize()
    descending: bool | None = None
    if "Descending" in found:
        descending = bool(found["Descending"])
    elif "Ascending" in found:
        descending = not bool(found["Ascending"])
    format_string = found.get("FormatString")
    return PropertySpec(
        label=label,
        expression=expression,
        width=width,
        alignment=alignment,
        format_string=to_string(format_string) if format_string is not None else None,
        descending=descending,
    )


def property_arguments(values: Iterable[Any], allowed: Sequence[str]) -> list[str | PropertySpec]:
    """-Property arguments as given: names (maybe wildcards), calculated properties,
    and script blocks (a calculated property labelled with the script's text)."""
    out: list[str | PropertySpec] = []
    for value in values:
        if isinstance(value, Mapping):
            out.append(calculated_property(value, allowed))
        elif isinstance(value, ScriptBlockValue):
            out.append(PropertySpec(str(value).strip(), value))
        elif isinstance(value, PropertySpec):
            out.append(value)
        else:
            out.append(to_string(value))
    return out


def expand_properties(
    specs: Sequence[str | PropertySpec], sample: Any, exclude: Sequence[str] = ()
) -> list[PropertySpec]:
    """Names and wildcards resolved against `sample`'s properties (a name the object
    has takes its spelling from the object)."""
    available = property_names(sample)
    by_lower = {name.lower(): name for name in available}
    out: list[PropertySpec] = []
    seen: set[str] = set()

    def add(spec: PropertySpec) -> None:
        key = spec.label.lower()
        if key in seen or any(wildcard_match(x, spec.label) for x in exclude):
            return
        seen.add(key)
        out.append(spec)

    for spec in specs:
        if isinstance(spec, PropertySpec):
            add(spec)
        elif has_wildcard(spec):
            for name in available:
                if wildcard_match(spec, name):
                    add(PropertySpec(name, name))
        else:
            name = by_lower.get(spec.lower(), spec)
            add(PropertySpec(name, name))
    return out


def default_properties(item: Any) -> tuple[list[PropertySpec], str]:
    """The columns Out-Default shows for `item` and how: ("table" or "list")."""
    if isinstance(item, PSObject):
        view = view_for(item.type_name)
        if view is not None:
            return [PropertySpec(name, name) for name in view.table], "table"
    if isinstance(item, PSObject) and item.type_name == HASHTABLE_ENTRY:
        return [PropertySpec("Name", "Name"), PropertySpec("Value", "Value", alignment="Left")], (
            "table"
        )
    names = property_names(item)
    specs = [PropertySpec(name, name) for name in names]
    return specs, "table" if len(names) <= 4 else "list"
