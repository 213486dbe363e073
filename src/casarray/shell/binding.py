"""Parameter binding, as PowerShell does it: named parameters (any unambiguous prefix,
or an alias), then positional ones, then per pipeline object by value and by property
name; every argument converted to its parameter's kind (`convert`) or a binding error.
The common parameters (-WhatIf, -Confirm, -ErrorAction, ...) are bound here for every
cmdlet, into `Invocation.common`; the runtime, not the cmdlet, acts on them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casarray.shell import ast
from casarray.shell.cmdlet import Cmdlet, Parameter
from casarray.shell.errors import ErrorRecord, TerminatingError
from casarray.shell.psobject import PSObject
from casarray.shell.values import (
    ScriptBlockValue,
    SecureString,
    ShellRuntimeError,
    is_collection,
    to_string,
    truthy,
    type_name,
)
from casarray.shell.variables import MISSING

ERROR_ACTIONS = ("Continue", "SilentlyContinue", "Stop", "Inquire", "Ignore")

COMMON_PARAMETERS = (
    Parameter("Verbose", kind="switch", aliases=("vb",)),
    Parameter("Debug", kind="switch", aliases=("db",)),
    Parameter("ErrorAction", kind="enum", choices=ERROR_ACTIONS, aliases=("ea",)),
    Parameter("WarningAction", kind="enum", choices=ERROR_ACTIONS, aliases=("wa",)),
    Parameter("ErrorVariable", aliases=("ev",)),
    Parameter("WarningVariable", aliases=("wv",)),
    Parameter("OutVariable", aliases=("ov",)),
    Parameter("OutBuffer", kind="int", aliases=("ob",)),
    Parameter("DomainController", help="Accepted for compatibility and ignored."),
)
SHOULD_PROCESS_PARAMETERS = (
    Parameter("WhatIf", kind="switch", aliases=("wi",)),
    Parameter("Confirm", kind="switch", aliases=("cf",)),
)
COMMON_NAMES = {p.name for p in COMMON_PARAMETERS + SHOULD_PROCESS_PARAMETERS}


def all_parameters(cls: type[Cmdlet]) -> tuple[Parameter, ...]:
    extra = SHOULD_PROCESS_PARAMETERS if cls.supports_should_process else ()
    return cls.parameters + COMMON_PARAMETERS + extra


@dataclass
class Invocation:
    """One command in a pipeline, as bound."""

    cls: type[Cmdlet]
    node: ast.Command
    static: dict[str, Any] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)
    confirm_state: str | None = None  # "all" or "none" after Yes/No to All
    began: bool = False  # begin() ran, so stopped() or end() is owed

    @property
    def name(self) -> str:
        return self.cls.name


def match_parameter(cls: type[Cmdlet], written: str, pos: int) -> Parameter:
    params = all_parameters(cls)
    key = written.lower()
    for p in params:
        if p.name.lower() == key or key in (a.lower() for a in p.aliases):
            return p
    candidates = [
        p
        for p in params
        if p.name.lower().startswith(key) or any(a.lower().startswith(key) for a in p.aliases)
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ShellRuntimeError(
            f"A parameter cannot be found that matches parameter name '{written}'.",
            pos,
            "InvalidArgument",
        )
    names = " ".join(f"-{p.name}" for p in candidates)
    raise ShellRuntimeError(
        f"Parameter cannot be processed because the parameter name '{written}' is ambiguous. "
        f"Possible matches include: {names}.",
        pos,
        "InvalidArgument",
    )


# -- binding a command's arguments and its input ---------------------------------------


def bind_static(
    cls: type[Cmdlet],
    node: ast.Command,
    evaluate: Callable[[Any], Any],
    source: str,
) -> Invocation:
    """Bind what is written on the command line: named parameters (any unambiguous
    prefix, or an alias), then positional arguments in the order of their positions.
    Pipeline input is bound per object later (`bind_input`)."""
    invocation = Invocation(cls, node)
    positional: list[ast.Expression] = []
    elements = list(node.elements)
    i = 0
    try:
        while i < len(elements):
            element = elements[i]
            if isinstance(element, ast.CommandParameter):
                param = match_parameter(cls, element.name, element.pos)
                if element.argument is not None:
                    value = evaluate(element.argument)
                elif param.kind == "switch":
                    value = True
                elif i + 1 < len(elements) and not isinstance(
                    elements[i + 1], ast.CommandParameter
                ):
                    i += 1
                    value = evaluate(elements[i])
                else:
                    raise ShellRuntimeError(
                        f"Missing an argument for parameter '{param.name}'. Specify a "
                        f"parameter of type '{_dotnet_type(param)}' and try again.",
                        element.pos,
                        "InvalidArgument",
                    )
                target = invocation.common if param.name in COMMON_NAMES else invocation.static
                if param.name in target:
                    raise ShellRuntimeError(
                        f"Cannot bind parameter because parameter '{param.name}' is "
                        "specified more than once.",
                        element.pos,
                        "InvalidArgument",
                    )
                target[param.name] = convert(param, value, element.pos)
            else:
                positional.append(element)
            i += 1
        slots = sorted(
            (
                p
                for p in cls.parameters
                if p.position is not None and p.name not in invocation.static
            ),
            key=lambda p: p.position or 0,
        )
        remaining = next((p for p in cls.parameters if p.remaining), None)
        for expr in positional:
            value = evaluate(expr)
            if not slots and remaining is not None and remaining.name in invocation.static:
                extra = convert(remaining, value, expr.pos)
                current = invocation.static[remaining.name]
                current = current if isinstance(current, list) else [current]
                invocation.static[remaining.name] = current + (
                    extra if isinstance(extra, list) else [extra]
                )
                continue
            if not slots:
                raise ShellRuntimeError(
                    "A positional parameter cannot be found that accepts argument "
                    f"'{to_string(value)}'.",
                    expr.pos,
                    "InvalidArgument",
                )
            param = slots.pop(0)
            invocation.static[param.name] = convert(param, value, expr.pos)
    except ShellRuntimeError as exc:
        raise TerminatingError(
            ErrorRecord(
                exc.message,
                category=exc.category,
                command=cls.name,
                exception="ParameterBindingException",
                pos=exc.pos if exc.pos is not None else node.pos,
                source=source,
            )
        ) from None
    return invocation


def check_mandatory(invocation: Invocation, bound: dict[str, Any], *, piped: bool) -> None:
    """Raise when a mandatory parameter is not bound; with `piped`, the static binding
    may still lack those that pipeline input can fill."""
    missing = [
        p.name
        for p in invocation.cls.parameters
        if p.mandatory
        and p.name not in bound
        and not (
            piped and (p.from_pipeline or p.from_pipeline_by_name) and bound is invocation.static
        )
    ]
    if missing:
        raise ShellRuntimeError(
            "Cannot process command because of one or more missing mandatory parameters: "
            f"{' '.join(missing)}.",
            invocation.node.pos,
            "InvalidArgument",
        )


def bind_input(invocation: Invocation, item: Any) -> dict[str, Any]:
    """The parameters for one pipeline object: the static ones plus the object, bound
    by value (the first parameter that takes it) or else by property name."""
    bound = dict(invocation.static)
    params = invocation.cls.parameters
    for p in params:
        if p.from_pipeline and p.name not in bound:
            try:
                bound[p.name] = convert(p, item, invocation.node.pos)
                return bound
            except ShellRuntimeError:
                continue
    matched = False
    for p in params:
        if p.from_pipeline_by_name and p.name not in bound:
            for name in (p.name, *p.aliases):
                value = _property(item, name)
                if value is not MISSING:
                    bound[p.name] = convert(p, value, invocation.node.pos)
                    matched = True
                    break
    if not matched and not any(p.from_pipeline for p in params if p.name in bound):
        raise ShellRuntimeError(
            "The input object cannot be bound to any parameters for the command either "
            "because the command does not take pipeline input or the input and its "
            "properties do not match any of the parameters that take pipeline input.",
            invocation.node.pos,
            "InvalidArgument",
        )
    return bound


def _property(item: Any, name: str) -> Any:
    if isinstance(item, PSObject):
        return item.get(name) if item.has(name) else MISSING
    if isinstance(item, dict):
        for key, value in item.items():
            if str(key).lower() == name.lower():
                return value
    return MISSING


# -- parameter conversion ------------------------------------------------------------

_DOTNET = {
    "string": "System.String",
    "int": "System.Int32",
    "bool": "System.Boolean",
    "switch": "System.Management.Automation.SwitchParameter",
    "strings": "System.String[]",
    "enum": "System.String",
    "enums": "System.String[]",
    "identity": "Identity",
    "identities": "Identity[]",
    "securestring": "System.Security.SecureString",
    "scriptblock": "System.Management.Automation.ScriptBlock",
    "object": "System.Object",
    "objects": "System.Object[]",
    "hashtable": "System.Collections.Hashtable",
    "datetime": "System.DateTime",
    "ipaddress": "System.Net.IPAddress",
    "bytes": "ByteQuantifiedSize",
}


def _dotnet_type(param: Parameter) -> str:
    return _DOTNET.get(param.kind, "System.Object")


def _bind_error(
    param: Parameter, value: Any, pos: int | None, reason: str = ""
) -> ShellRuntimeError:
    text = to_string(value)
    message = (
        f"Cannot bind parameter '{param.name}'. Cannot convert value \"{text}\" to type "
        f'"{_dotnet_type(param)}".'
    )
    if reason:
        message += f" {reason}"
    return ShellRuntimeError(message, pos, "InvalidArgument")


def _one(param: Parameter, value: Any, pos: int | None) -> Any:
    if is_collection(value):
        if len(value) == 1:
            return value[0]
        raise ShellRuntimeError(
            f"Cannot convert 'System.Object[]' to the type '{_dotnet_type(param)}' required by "
            f"parameter '{param.name}'. Specified method is not supported.",
            pos,
            "InvalidArgument",
        )
    return value


def _enum_value(param: Parameter, value: Any, pos: int | None) -> str:
    text = to_string(value).strip()
    for choice in param.choices:
        if choice.lower() == text.lower():
            return choice
    raise ShellRuntimeError(
        f"Cannot validate argument on parameter '{param.name}'. The argument \"{text}\" does "
        f'not belong to the set "{",".join(param.choices)}" specified by the ValidateSet '
        "attribute. Supply an argument that is in the set and then try the command again.",
        pos,
        "InvalidData",
    )


def convert(param: Parameter, value: Any, pos: int | None = None) -> Any:
    """Convert an argument to what the parameter takes, or raise a binding error."""
    kind = param.kind
    if kind == "switch":
        return truthy(value)
    if kind in ("object",):
        return value
    if kind == "objects":
        return list(value) if is_collection(value) else [value]
    if kind in ("strings", "enums", "identities"):
        items = list(value) if is_collection(value) else [value]
        if kind == "enums":
            flat: list[str] = []
            for item in items:
                flat.extend(s for s in to_string(item).split(",") if s.strip())
            return [_enum_value(param, s, pos) for s in flat]
        if kind == "identities":
            return [v if isinstance(v, PSObject) else to_string(v) for v in items]
        return [to_string(v) for v in items]
    value = _one(param, value, pos)
    if kind == "string":
        if isinstance(value, (ScriptBlockValue, SecureString)):
            raise _bind_error(param, value, pos)
        return to_string(value)
    if kind == "enum":
        return _enum_value(param, value, pos)
    if kind == "identity":
        if isinstance(value, PSObject):
            return value
        if value is None or isinstance(value, (ScriptBlockValue, SecureString, dict, bool)):
            raise _bind_error(param, value, pos)
        return to_string(value)
    if kind == "int":
        if isinstance(value, bool):
            raise _bind_error(param, value, pos)
        try:
            number = int(value) if not isinstance(value, float) else round(value)
        except (TypeError, ValueError):
            raise _bind_error(param, value, pos) from None
        return number
    if kind == "bytes":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
        from casarray.shell.scanner import number_from_word

        size = number_from_word(to_string(value).strip())
        if size is None:
            raise _bind_error(param, value, pos)
        return int(size)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        raise _bind_error(
            param,
            value,
            pos,
            "Boolean parameters accept only Boolean values and numbers, "
            "such as $True, $False, 1 or 0.",
        )
    if kind == "securestring":
        if isinstance(value, SecureString):
            return value
        raise ShellRuntimeError(
            f"Cannot process argument transformation on parameter '{param.name}'. Cannot "
            f'convert the "{to_string(value)}" value of type "{type_name(value)}" to type '
            '"System.Security.SecureString". Use (ConvertTo-SecureString "..." -AsPlainText '
            "-Force).",
            pos,
            "InvalidData",
        )
    if kind == "scriptblock":
        if isinstance(value, ScriptBlockValue):
            return value
        raise _bind_error(param, value, pos)
    if kind == "hashtable":
        if isinstance(value, dict):
            return value
        raise _bind_error(param, value, pos)
    if kind == "datetime":
        if isinstance(value, datetime):
            return value
        try:
            return datetime.fromisoformat(to_string(value))
        except ValueError:
            raise _bind_error(param, value, pos) from None
    if kind == "ipaddress":
        import ipaddress

        try:
            return str(ipaddress.ip_address(to_string(value).strip()))
        except ValueError:
            raise _bind_error(param, value, pos) from None
    raise AssertionError(kind)
