"""Get-Member: the type and the members (properties, the few methods) of the objects
that come down the pipeline, once per type."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.utility.common import NO_INPUT, input_object, input_parameter
from casarray.shell.formatting import register_group
from casarray.shell.properties import wildcard_match
from casarray.shell.psobject import PSObject
from casarray.shell.values import ShellRuntimeError, to_string, type_name
from casarray.shell.views import register_view

# -- Get-Member ----------------------------------------------------------------------------------

MEMBER_TYPE = "Microsoft.PowerShell.Commands.MemberDefinition"
register_view(MEMBER_TYPE, ("Name", "MemberType", "Definition"))
register_group(MEMBER_TYPE, "TypeName")

_SHORT_TYPES = {
    "System.String": "string",
    "System.Int32": "int",
    "System.Int64": "long",
    "System.Double": "double",
    "System.Boolean": "bool",
    "System.Object[]": "Object[]",
    "System.DateTime": "datetime",
    "System.Collections.Hashtable": "hashtable",
}
_STRING_METHODS = (
    ("Contains", "bool Contains(string value)"),
    ("EndsWith", "bool EndsWith(string value)"),
    ("IndexOf", "int IndexOf(string value)"),
    ("Replace", "string Replace(string oldValue, string newValue)"),
    ("Split", "string[] Split(string separator)"),
    ("StartsWith", "bool StartsWith(string value)"),
    ("Substring", "string Substring(int startIndex, int length)"),
    ("ToLower", "string ToLower()"),
    ("ToString", "string ToString()"),
    ("ToUpper", "string ToUpper()"),
    ("Trim", "string Trim()"),
    ("TrimEnd", "string TrimEnd()"),
    ("TrimStart", "string TrimStart()"),
)


def _value_type(value: Any) -> str:
    if value is None:
        return "object"
    if isinstance(value, PSObject):
        return value.type_name
    name = type_name(value)
    return _SHORT_TYPES.get(name, name)


def _members(item: Any) -> list[tuple[str, str, str]]:
    """(Name, MemberType, Definition) of an object's members."""
    members: list[tuple[str, str, str]] = [("ToString", "Method", "string ToString()")]
    if isinstance(item, PSObject):
        note = item.base is None
        for name, value in item.items():
            kind = _value_type(value)
            if note:
                members.append((name, "NoteProperty", f"{kind} {name}={to_string(value)}"))
            else:
                members.append((name, "Property", f"{kind} {name} {{get;set;}}"))
    elif isinstance(item, str):
        members = list((name, "Method", definition) for name, definition in _STRING_METHODS)
        members.append(("Length", "Property", "int Length {get;}"))
    elif isinstance(item, Mapping):
        members += [
            ("Add", "Method", "void Add(System.Object key, System.Object value)"),
            ("ContainsKey", "Method", "bool ContainsKey(System.Object key)"),
            ("Count", "Property", "int Count {get;}"),
            ("Keys", "Property", "System.Collections.ICollection Keys {get;}"),
            ("Values", "Property", "System.Collections.ICollection Values {get;}"),
        ]
    elif isinstance(item, datetime):
        for name in ("Year", "Month", "Day", "Hour", "Minute", "Second"):
            members.append((name, "Property", f"int {name} {{get;}}"))
    elif is_dataclass(item) and not isinstance(item, type):
        for f in fields(item):
            if not f.name.startswith("_"):
                name = "".join(p[:1].upper() + p[1:] for p in f.name.split("_"))
                value = getattr(item, f.name)
                members.append((name, "Property", f"{_value_type(value)} {name} {{get;}}"))
    return members


@register
class GetMember(Cmdlet):
    name = "Get-Member"
    aliases = ("gm",)
    parameters = (
        Parameter(
            "Name", kind="strings", position=0, help="Only members with these names (wildcards)."
        ),
        Parameter(
            "MemberType",
            kind="enums",
            choices=("Property", "NoteProperty", "Method", "Properties", "All"),
            help="Only members of these kinds (Properties: both kinds of property).",
        ),
        input_parameter("The objects whose members are shown."),
    )
    synopsis = "Gets the properties and methods of objects."
    description = (
        "Shows the type name and the properties (and the few methods) of its input "
        "objects, once per type."
    )
    examples = (
        Example("Get-ClientAccessArray | Get-Member", "The properties of an array object."),
        Example("Get-Mailbox | gm -MemberType Properties", "Only the mailbox's properties."),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.names = list(params.get("Name") or [])
        kinds = set(params.get("MemberType") or ["All"])
        if "Properties" in kinds:
            kinds |= {"Property", "NoteProperty"}
        self.kinds = kinds
        self.types: set[str] = set()
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = input_object(params)
        if item is NO_INPUT or item is None:
            return
        tname = type_name(item)
        if tname in self.types:
            return
        self.types.add(tname)
        members = sorted(_members(item), key=lambda m: (m[1], m[0].lower()))
        for name, kind, definition in members:
            if "All" not in self.kinds and kind not in self.kinds:
                continue
            if self.names and not any(wildcard_match(n, name) for n in self.names):
                continue
            yield PSObject(
                {"TypeName": tname, "Name": name, "MemberType": kind, "Definition": definition},
                type_name=MEMBER_TYPE,
                display=name,
            )

    def end(self) -> Iterable[Any]:
        if not self.types:
            raise ShellRuntimeError(
                "You must specify an object for the Get-Member cmdlet.",
                category="CloseError",
            )
        return ()
