"""Runtime values that are not plain Python ones, and PowerShell's conversions:
truthiness, to-string, member access, enumeration."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from casarray.errors import CasarrayError
from casarray.shell.psobject import PSObject

if TYPE_CHECKING:
    from casarray.shell import ast
    from casarray.shell.variables import Scope


class ShellRuntimeError(CasarrayError):
    """An error raised while evaluating (a PowerShell RuntimeException)."""

    category = "InvalidOperation"

    def __init__(self, message: str, pos: int | None = None, category: str | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos
        if category:
            self.category = category


@dataclasses.dataclass(frozen=True)
class ScriptBlockValue:
    """A script block as a value: its tree and the scope it was written in."""

    node: ast.ScriptBlock
    scope: Scope | None = None

    def __str__(self) -> str:
        return self.node.text


class SecureString:
    """System.Security.SecureString: a password that never prints."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "System.Security.SecureString"

    __repr__ = __str__


def is_collection(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def enumerate_value(value: Any) -> Iterator[Any]:
    """What a pipeline sees of a value: collections are unrolled one level."""
    if is_collection(value):
        yield from value
    elif value is not None:
        yield value


def truthy(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if is_collection(value):
        if len(value) == 0:
            return False
        if len(value) == 1:
            return truthy(value[0])
        return True
    if isinstance(value, SecureString):
        return True
    return True


def to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, str):
        return value
    if is_collection(value):
        return " ".join(to_string(v) for v in value)
    if isinstance(value, enum.Flag):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, datetime):
        return value.astimezone().strftime("%m/%d/%Y %H:%M:%S").lstrip("0")
    if isinstance(value, dict):
        return "System.Collections.Hashtable"
    return str(value)


def pascal_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def get_member(value: Any, name: str) -> Any:
    """`value.Name`: PSObject properties, hashtable keys, collection members (with
    member enumeration: `(Get-MailboxDatabase).Name` lists every name), string and
    Python attributes. A missing member is $null, as in PowerShell."""
    lower = name.lower()
    if isinstance(value, PSObject):
        if value.has(name):
            return value.get(name)
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower() == lower:
                return item
        if lower in ("count", "keys", "values"):
            return {"count": len(value), "keys": list(value), "values": list(value.values())}[lower]
        return None
    if is_collection(value):
        if lower in ("count", "length"):
            return len(value)
        results = []
        for item in value:
            member = get_member(item, name)
            if is_collection(member):
                results.extend(member)
            elif member is not None:
                results.append(member)
        return results
    if isinstance(value, str):
        if lower == "length":
            return len(value)
        return 1 if lower == "count" else None
    if lower in ("count", "length"):
        return 0 if value is None else 1  # PowerShell 3: $null.Count is 0, a scalar's 1
    if value is None:
        return None
    for attr in (name, pascal_to_snake(name), lower):
        if hasattr(value, attr) and not attr.startswith("_"):
            member = getattr(value, attr)
            return list(member) if isinstance(member, tuple) else member
    return None


def set_member(target: Any, name: str, value: Any) -> None:
    if isinstance(target, PSObject):
        target.set(name, value)
        return
    if isinstance(target, dict):
        for key in list(target):
            if str(key).lower() == name.lower():
                target[key] = value
                return
        target[name] = value
        return
    raise ShellRuntimeError(f"The property '{name}' cannot be found on this object.")


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "toupper": lambda s: s.upper(),
    "tolower": lambda s: s.lower(),
    "trim": lambda s, chars=None: s.strip(chars),
    "trimstart": lambda s, chars=None: s.lstrip(chars),
    "trimend": lambda s, chars=None: s.rstrip(chars),
    "replace": lambda s, old, new: s.replace(str(old), str(new)),
    "split": lambda s, sep=None: s.split(str(sep)) if sep is not None else s.split(),
    "startswith": lambda s, p: s.lower().startswith(str(p).lower()),
    "endswith": lambda s, p: s.lower().endswith(str(p).lower()),
    "contains": lambda s, p: str(p) in s,
    "substring": lambda s, start, length=None: (
        s[int(start) :] if length is None else s[int(start) : int(start) + int(length)]
    ),
    "indexof": lambda s, p: s.find(str(p)),
    "tostring": lambda s: s,
}


def call_method(value: Any, name: str, args: list[Any]) -> Any:
    lower = name.lower()
    if lower == "tostring":
        return to_string(value)
    if isinstance(value, str) and lower in _STRING_METHODS:
        try:
            return _STRING_METHODS[lower](value, *args)
        except TypeError:
            raise ShellRuntimeError(
                f'Cannot find an overload for "{name}" and the argument count: "{len(args)}".'
            ) from None
    if isinstance(value, dict):
        if lower == "containskey" and len(args) == 1:
            return any(str(k).lower() == str(args[0]).lower() for k in value)
        if lower == "add" and len(args) == 2:
            value[args[0]] = args[1]
            return None
    if isinstance(value, list) and lower == "contains" and len(args) == 1:
        return args[0] in value
    if isinstance(value, SecureString) and lower == "dispose":
        return None
    raise ShellRuntimeError(
        f"Method invocation failed because [{type_name(value)}] does not contain a method "
        f"named '{name}'.",
        category="InvalidOperation",
    )


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, PSObject):
        return value.type_name
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32" if -(2**31) <= value < 2**31 else "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, str):
        return "System.String"
    if is_collection(value):
        return "System.Object[]"
    if isinstance(value, dict):
        return "System.Collections.Hashtable"
    if isinstance(value, ScriptBlockValue):
        return "System.Management.Automation.ScriptBlock"
    if isinstance(value, SecureString):
        return "System.Security.SecureString"
    if isinstance(value, datetime):
        return "System.DateTime"
    return type(value).__name__
