"""PowerShell's operators on runtime values: comparison (case-insensitive unless the
`c` form), wildcard and regular-expression matching, containment, arithmetic and
string operators. A comparison with a collection on the left filters it."""

from __future__ import annotations

import fnmatch
import re
from functools import lru_cache
from typing import Any

from casarray.shell.values import (
    ShellRuntimeError,
    is_collection,
    to_string,
    truthy,
    type_name,
)

_COMPARISON = {"eq", "ne", "gt", "ge", "lt", "le", "like", "notlike", "match", "notmatch"}
_CONTAINMENT = {"contains", "notcontains", "in", "notin"}


def split_operator(op: str) -> tuple[str, bool]:
    """'-ceq' -> ('eq', True); '-ieq' / '-eq' -> ('eq', False)."""
    name = op.lstrip("-").lower()
    if (
        len(name) > 2
        and name[0] in "ci"
        and name[1:]
        in _COMPARISON
        | _CONTAINMENT
        | {
            "replace",
            "split",
        }
    ):
        return name[1:], name[0] == "c"
    return name, False


@lru_cache(maxsize=256)
def wildcard_regex(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "`" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                out.append(fnmatch.translate(pattern[i : end + 1])[4:-3])
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    flags = re.DOTALL | (0 if case_sensitive else re.IGNORECASE)
    return re.compile("^" + "".join(out) + "$", flags)


@lru_cache(maxsize=256)
def regex(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # .NET spells named groups (?<name>...) and back-references \k<name>.
    translated = re.sub(r"\(\?<(?![=!])([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern)
    translated = re.sub(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P=\1)", translated)
    try:
        return re.compile(translated, 0 if case_sensitive else re.IGNORECASE)
    except re.error as exc:
        raise ShellRuntimeError(
            f"The regular expression pattern {pattern} is not valid: {exc}.",
            category="InvalidArgument",
        ) from None


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 0) if text.lower().startswith("0x") else int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return None
    return None


def _coerce_pair(left: Any, right: Any, case_sensitive: bool) -> tuple[Any, Any]:
    """Convert `right` to the type of `left`, as PowerShell does."""
    if isinstance(left, bool):
        return left, truthy(right)
    if isinstance(left, (int, float)):
        number = _number(right)
        if number is None:
            return to_string(left).lower(), to_string(right).lower()
        return left, number
    if left is None or right is None:
        return left, right
    a, b = to_string(left), to_string(right)
    if not case_sensitive:
        a, b = a.lower(), b.lower()
    return a, b


def compare_scalar(name: str, left: Any, right: Any, case_sensitive: bool, state: Any) -> bool:
    if name in ("like", "notlike"):
        result = bool(wildcard_regex(to_string(right), case_sensitive).match(to_string(left)))
        return result if name == "like" else not result
    if name in ("match", "notmatch"):
        found = regex(to_string(right), case_sensitive).search(to_string(left))
        if found is not None and state is not None:
            groups: dict[Any, Any] = {0: found.group(0)}
            for i, g in enumerate(found.groups(), start=1):
                if g is not None:
                    groups[i] = g
            groups.update({k: v for k, v in found.groupdict().items() if v is not None})
            state.set_variable("matches", groups)
        return (found is not None) if name == "match" else (found is None)
    a, b = _coerce_pair(left, right, case_sensitive)
    if name == "eq":
        return a == b
    if name == "ne":
        return a != b
    if a is None or b is None:
        if name in ("gt", "ge"):
            return a is not None or (name == "ge" and b is None)
        return b is not None or (name == "le" and a is None)
    try:
        if name == "gt":
            return a > b
        if name == "ge":
            return a >= b
        if name == "lt":
            return a < b
        if name == "le":
            return a <= b
    except TypeError:
        raise ShellRuntimeError(
            f'Cannot compare "{to_string(left)}" to "{to_string(right)}".',
            category="InvalidOperation",
        ) from None
    raise AssertionError(name)


def binary(op: str, left: Any, right: Any, state: Any = None) -> Any:
    if op in ("+", "-", "*", "/", "%"):
        return arithmetic(op, left, right)
    name, cs = split_operator(op)
    if name in _COMPARISON:
        if is_collection(left):
            return [x for x in left if compare_scalar(name, x, right, cs, None)]
        return compare_scalar(name, left, right, cs, state)
    if name in ("contains", "notcontains"):
        items = list(left) if is_collection(left) else [left]
        found = any(compare_scalar("eq", x, right, cs, None) for x in items)
        return found if name == "contains" else not found
    if name in ("in", "notin"):
        items = list(right) if is_collection(right) else [right]
        found = any(compare_scalar("eq", x, left, cs, None) for x in items)
        return found if name == "in" else not found
    if name == "replace":
        pattern, replacement = (
            (right[0], right[1] if len(right) > 1 else "") if is_collection(right) else (right, "")
        )
        compiled = regex(to_string(pattern), cs)
        repl = re.sub(r"\$(\d+)", r"\\g<\1>", to_string(replacement))
        if is_collection(left):
            return [compiled.sub(repl, to_string(x)) for x in left]
        return compiled.sub(repl, to_string(left))
    if name == "split":
        compiled = regex(to_string(right), cs)
        items = left if is_collection(left) else [left]
        return [part for x in items for part in compiled.split(to_string(x))]
    if name == "join":
        items = left if is_collection(left) else [left]
        return to_string(right).join(to_string(x) for x in items)
    if name == "and":
        return truthy(left) and truthy(right)
    if name == "or":
        return truthy(left) or truthy(right)
    if name == "xor":
        return truthy(left) != truthy(right)
    if name in ("+", "-", "*", "/", "%"):
        return arithmetic(name, left, right)
    if name == "..":
        a, b = _number(left), _number(right)
        if a is None or b is None:
            raise ShellRuntimeError("The range operator takes numbers.")
        a, b = int(a), int(b)
        if abs(b - a) > 10_000_000:
            raise ShellRuntimeError("The range is too large.")
        step = 1 if b >= a else -1
        return list(range(a, b + step, step))
    raise ShellRuntimeError(f"The operator '{op}' is not supported.")


_OP_NAMES = {"+": "Addition", "-": "Subtraction", "*": "Multiply", "/": "Division", "%": "Modulus"}


def arithmetic(name: str, left: Any, right: Any) -> Any:
    if name == "+":
        if is_collection(left):
            return list(left) + (list(right) if is_collection(right) else [right])
        if isinstance(left, dict) and isinstance(right, dict):
            merged = dict(left)
            for key in right:
                if any(str(k).lower() == str(key).lower() for k in merged):
                    raise ShellRuntimeError(
                        f"Item has already been added. Key in dictionary: '{key}'."
                    )
                merged[key] = right[key]
            return merged
        if isinstance(left, str):
            return left + to_string(right)
        if left is None:
            return right
    if isinstance(left, str) and name == "*":
        count = _number(right)
        if count is None:
            raise ShellRuntimeError(f'Cannot convert value "{right}" to type "System.Int32".')
        return left * int(count)
    a, b = _number(left if left is not None else 0), _number(right if right is not None else 0)
    if a is None or b is None:
        if a is None:
            raise ShellRuntimeError(
                f"Method invocation failed because [{type_name(left)}] does not contain a "
                f"method named 'op_{_OP_NAMES[name]}'."
            )
        raise ShellRuntimeError(
            f'Cannot convert value "{to_string(right)}" to type "System.Int32".'
        )
    if name == "+":
        return a + b
    if name == "-":
        return a - b
    if name == "*":
        return a * b
    if b == 0:
        raise ShellRuntimeError("Attempted to divide by zero.", category="NotSpecified")
    if name == "/":
        result = a / b
        return int(result) if result == int(result) else result
    return a % b


def unary(op: str, operand: Any) -> Any:
    if op in ("-not", "!"):
        return not truthy(operand)
    number = _number(operand)
    if number is None:
        raise ShellRuntimeError(f'Cannot convert value "{to_string(operand)}" to a number.')
    return -number if op == "-" else number
