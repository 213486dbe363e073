"""PowerShell's utility cmdlets, with PowerShell's semantics and aliases: filtering and
shaping the pipeline (Where-Object, ForEach-Object, Select-Object, Sort-Object,
Measure-Object, Get-Member), formatting and output (Format-Table, Format-List,
Out-String, Out-Null, Out-Host, Write-Output, Write-Host, Write-Warning, Write-Error),
conversion and export (ConvertTo-Json, Export-Csv, ConvertTo-SecureString) and
Get-Date.

Everything streams where PowerShell streams: Where-Object and ForEach-Object pass each
object on as it arrives, and Select-Object -First stops the commands before it once it
has its objects. Sort-Object, Measure-Object and the Format- cmdlets read all their
input first, as they must.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, StopUpstream, register
from casarray.shell.formatting import (
    SELECT_KEYS,
    SORT_KEYS,
    FormattedOutput,
    PropertySpec,
    expand_properties,
    format_datetime,
    format_list,
    format_table,
    out_string,
    property_arguments,
    property_names,
    register_group,
    wildcard_match,
    write_lines,
)
from casarray.shell.formatting import Formatter as _Formatter
from casarray.shell.operators import binary
from casarray.shell.psobject import PSObject
from casarray.shell.values import (
    ScriptBlockValue,
    SecureString,
    ShellRuntimeError,
    call_method,
    get_member,
    is_collection,
    to_string,
    truthy,
    type_name,
)
from casarray.shell.views import register_view

INPUT_HELP = "The objects to process; usually they come from the pipeline."
_NO_INPUT = object()


def _input(params: Mapping[str, Any]) -> Any:
    """The pipeline object being processed, or _NO_INPUT when the command runs
    without input (first in a pipeline, no -InputObject)."""
    return params.get("InputObject", _NO_INPUT)


def _input_parameter(help_text: str = INPUT_HELP, position: int | None = None) -> Parameter:
    return Parameter(
        "InputObject", kind="object", from_pipeline=True, position=position, help=help_text
    )


def _not_negative(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ShellRuntimeError(
            f"Cannot validate argument on parameter '{name}'. The {value} argument is less "
            "than the minimum allowed range of 0. Supply an argument that is greater than or "
            "equal to 0 and then try the command again.",
            category="InvalidData",
        )


# -- comparing values (Sort-Object, Measure-Object) ---------------------------------------


def _as_number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return None if math.isnan(number) else number
    return None


def compare_values(a: Any, b: Any, case_sensitive: bool = False) -> int:
    """PowerShell's ordering of two values: $null first, numbers by value, dates by
    time, anything else by its text (case-insensitive unless asked; with case, lower
    case before upper case, as the culture-aware comparison does)."""
    if a is None or b is None:
        return (a is not None) - (b is not None)
    if isinstance(a, bool) and isinstance(b, bool):
        return int(a) - int(b)
    if not isinstance(a, bool) and isinstance(a, (int, float)):
        other = _as_number(b)
        if other is not None:
            return (a > other) - (a < other)
    if isinstance(a, datetime) and isinstance(b, datetime):
        try:
            return (a > b) - (a < b)
        except TypeError:
            pass
    left, right = to_string(a), to_string(b)
    fold_a, fold_b = left.casefold(), right.casefold()
    if fold_a != fold_b:
        return (fold_a > fold_b) - (fold_a < fold_b)
    if not case_sensitive:
        return 0
    swap_a, swap_b = left.swapcase(), right.swapcase()
    return (swap_a > swap_b) - (swap_a < swap_b)


# -- Where-Object ---------------------------------------------------------------------------

_WHERE_OPERATORS = (
    "EQ",
    "NE",
    "GT",
    "GE",
    "LT",
    "LE",
    "Like",
    "NotLike",
    "Match",
    "NotMatch",
    "Contains",
    "NotContains",
    "In",
    "NotIn",
)
_WHERE_SWITCHES = (
    *_WHERE_OPERATORS,
    *("C" + op for op in _WHERE_OPERATORS),
    "Not",
)
_PARAMETER_SET = "Parameter set cannot be resolved using the specified named parameters."


def _where_switch_help(name: str) -> str:
    if name == "Not":
        return "Passes the objects whose property is false, $null or empty."
    case = "case-sensitive " if name.startswith("C") and name[1:] in _WHERE_OPERATORS else ""
    operator = name[1:] if case else name
    return f"Passes the objects whose property is {case}-{operator.lower()} the value."


@register
class WhereObject(Cmdlet):
    name = "Where-Object"
    aliases = ("?", "where")
    parameters = (
        Parameter(
            "FilterScript",
            kind="object",
            position=0,
            help="A script block run for each object ($_ is the object); objects for which "
            "it returns true pass. A property name here starts the simplified syntax.",
        ),
        Parameter("Property", help="The property to test (simplified syntax: Name -eq DB01)."),
        Parameter("Value", kind="object", position=1, help="The value to compare it with."),
        *(Parameter(op, kind="switch", help=_where_switch_help(op)) for op in _WHERE_SWITCHES),
        _input_parameter(),
    )
    parameter_types: ClassVar[dict[str, str]] = {"FilterScript": "ScriptBlock"}
    syntax: ClassVar[tuple[str, ...]] = (
        "Where-Object [-FilterScript] <ScriptBlock> [-InputObject <PSObject>] [<CommonParameters>]",
        "Where-Object [-Property] <String> [[-Value] <Object>] [-EQ | -NE | -GT | -GE | -LT | "
        "-LE | -Like | -NotLike | -Match | -NotMatch | -Contains | -NotContains | -In | -NotIn "
        "| -CEQ | -CLike | ... | -Not] [-InputObject <PSObject>] [<CommonParameters>]",
    )
    synopsis = "Selects objects from a collection based on their property values."
    description = (
        "Passes on the objects for which the filter script returns true, one at a time as "
        "they arrive. The filter is a script block in which $_ is the current object, or, "
        "in the simplified syntax, a property name, a comparison operator switch (-EQ, "
        "-Like, -Match, -GT, ...; the C forms are case-sensitive) and a value. A property "
        "name alone passes the objects whose property is true."
    )
    examples = (
        Example(
            "Get-MailboxDatabase | Where-Object { $_.RpcClientAccessServer -notlike '*cas*' }",
            "Lists the databases whose clients do not connect through a CAS array name yet.",
        ),
        Example(
            "Get-ExchangeServer | ? Site -eq BJ",
            "The simplified syntax: the servers of site BJ.",
        ),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.script: ScriptBlockValue | None = None
        self.property: str | None = None
        self.operator: str | None = None
        self.value: Any = params.get("Value")
        switches = [op for op in _WHERE_SWITCHES if params.get(op)]
        first = params.get("FilterScript")
        if isinstance(first, ScriptBlockValue):
            if switches or "Property" in params or "Value" in params:
                raise ShellRuntimeError(_PARAMETER_SET, category="InvalidArgument")
            self.script = first
            return ()
        prop = params.get("Property")
        has_value = "Value" in params
        if first is not None:
            if prop is None:
                prop = to_string(first)
            elif not has_value:
                self.value, has_value = first, True
            else:
                raise ShellRuntimeError(
                    "A positional parameter cannot be found that accepts argument "
                    f"'{to_string(first)}'.",
                    category="InvalidArgument",
                )
        if not prop:
            raise ShellRuntimeError(
                "Cannot process command because of one or more missing mandatory parameters: "
                "FilterScript.",
                category="InvalidArgument",
            )
        if len(switches) > 1 or (switches == ["Not"] and has_value):
            raise ShellRuntimeError(_PARAMETER_SET, category="InvalidArgument")
        self.property = prop
        if switches:
            self.operator = switches[0]
        elif has_value:
            self.operator = "EQ"
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is _NO_INPUT:
            return
        if self.script is not None:
            keep = truthy(self.session.scriptblock_value(self.script, item))
        else:
            value = get_member(item, self.property or "")
            if self.operator is None:
                keep = truthy(value)
            elif self.operator == "Not":
                keep = not truthy(value)
            else:
                keep = truthy(binary("-" + self.operator.lower(), value, self.value))
        if keep:
            yield item


# -- ForEach-Object ---------------------------------------------------------------------------


@register
class ForEachObject(Cmdlet):
    name = "ForEach-Object"
    aliases = ("%", "foreach")
    parameters = (
        Parameter(
            "Process",
            kind="object",
            position=0,
            help="The script block run for each object ($_ is the object). A name instead "
            "of a script block outputs that property of each object (or calls that method).",
        ),
        Parameter("Begin", kind="scriptblock", help="Runs once, before the first object."),
        Parameter("End", kind="scriptblock", help="Runs once, after the last object."),
        Parameter("MemberName", help="The property to output, or the method to call."),
        Parameter("ArgumentList", kind="objects", help="Arguments of the method called."),
        _input_parameter(),
    )
    parameter_types: ClassVar[dict[str, str]] = {"Process": "ScriptBlock[]"}
    syntax: ClassVar[tuple[str, ...]] = (
        "ForEach-Object [-Process] <ScriptBlock[]> [-Begin <ScriptBlock>] [-End <ScriptBlock>] "
        "[-InputObject <PSObject>] [<CommonParameters>]",
        "ForEach-Object [-MemberName] <String> [-ArgumentList <Object[]>] "
        "[-InputObject <PSObject>] [<CommonParameters>]",
    )
    synopsis = "Performs an operation against each item in a collection of input objects."
    description = (
        "Runs the Process script block once for each object that comes down the pipeline, "
        "with $_ set to it, and outputs what the script block outputs. -Begin runs before "
        "the first object and -End after the last. Given a name instead of a script block, "
        "it outputs that property of each object (% Name)."
    )
    examples = (
        Example(
            "Get-MailboxDatabase | ForEach-Object { $_.Name + ': ' + $_.RpcClientAccessServer }",
            "Shows each database with the name its clients connect to.",
        ),
        Example("Get-ExchangeServer | % Name", "Outputs the name of every server."),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        process = params.get("Process")
        member = params.get("MemberName")
        if process is not None and member is not None:
            raise ShellRuntimeError(_PARAMETER_SET, category="InvalidArgument")
        if process is not None and not isinstance(process, ScriptBlockValue):
            member = to_string(process)
            process = None
        self.block: ScriptBlockValue | None = process
        self.member: str | None = member
        self.arguments = list(params.get("ArgumentList") or [])
        self.end_block: ScriptBlockValue | None = params.get("End")
        begin = params.get("Begin")
        if begin is not None:
            return self.session.invoke_scriptblock(begin)
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if self.block is not None:
            yield from self.session.invoke_scriptblock(
                self.block, None if item is _NO_INPUT else item
            )
        elif self.member is not None and item is not _NO_INPUT:
            yield from self._member(item, self.member)

    def _member(self, item: Any, name: str) -> Iterator[Any]:
        has_property = (isinstance(item, PSObject) and item.has(name)) or (
            isinstance(item, Mapping) and any(str(k).lower() == name.lower() for k in item)
        )
        if not self.arguments:
            value = get_member(item, name)
            if has_property or value is not None:
                yield value
                return
        try:
            yield call_method(item, name, self.arguments)
        except ShellRuntimeError:
            return

    def end(self) -> Iterable[Any]:
        if self.end_block is not None:
            return self.session.invoke_scriptblock(self.end_block)
        return ()


# -- Select-Object ---------------------------------------------------------------------------


def _unique_key(value: Any) -> Any:
    if isinstance(value, PSObject):
        return (
            "object",
            value.type_name,
            tuple((k.lower(), to_string(v)) for k, v in value.items()),
        )
    return ("value", to_string(value))


@register
class SelectObject(Cmdlet):
    name = "Select-Object"
    aliases = ("select",)
    parameters = (
        Parameter(
            "Property",
            kind="objects",
            position=0,
            help="The properties to select: names, wildcards (*) and calculated properties, "
            "hashtables with Name (or Label) and Expression (a script block or a property "
            "name) keys: @{Name='Count'; Expression={$_.Members.Count}}.",
        ),
        Parameter("ExcludeProperty", kind="strings", help="Properties to leave out."),
        Parameter(
            "ExpandProperty",
            help="Outputs the value of this property (each item of it when it is a "
            "collection) instead of an object.",
        ),
        Parameter("First", kind="int", help="Outputs only the first N objects."),
        Parameter("Last", kind="int", help="Outputs only the last N objects."),
        Parameter(
            "Skip",
            kind="int",
            help="Skips the first N objects (the last N with -Last).",
        ),
        Parameter(
            "Index", kind="objects", help="Outputs the objects at these positions (0-based)."
        ),
        Parameter("Unique", kind="switch", help="Outputs each distinct object once."),
        _input_parameter(),
    )
    synopsis = "Selects objects or object properties."
    description = (
        "Selects properties of objects (giving new objects of type Selected.<type>, which "
        "show all their selected properties), or some of the objects (-First, -Last, "
        "-Skip, -Index, -Unique), or the value of one property (-ExpandProperty). With "
        "-First it stops the commands before it as soon as it has its objects."
    )
    examples = (
        Example(
            "Get-MailboxDatabase | Select-Object Name, Server, RpcClientAccessServer",
            "Shows three properties of each database.",
        ),
        Example(
            "Get-ClientAccessArray | select Name, @{n='MemberCount';e={$_.Members.Count}}",
            "A calculated property: the number of members of each array.",
        ),
        Example(
            "Get-ClientAccessArray BJ* | Select-Object -ExpandProperty Members",
            "Outputs the names of the members themselves.",
        ),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        for name in ("First", "Last", "Skip"):
            _not_negative(name, params.get(name))
        self.specs = property_arguments(params.get("Property") or [], SELECT_KEYS)
        self.exclude = list(params.get("ExcludeProperty") or [])
        self.expand: str | None = params.get("ExpandProperty")
        self.first: int | None = params.get("First")
        self.last: int | None = params.get("Last")
        self.skip: int = params.get("Skip") or 0
        indexes = params.get("Index")
        self.indexes: set[int] | None = None
        if indexes is not None:
            try:
                self.indexes = {int(i) for i in indexes}
            except (TypeError, ValueError):
                raise ShellRuntimeError(
                    "Cannot bind parameter 'Index': the positions must be numbers.",
                    category="InvalidArgument",
                ) from None
        self.unique = bool(params.get("Unique"))
        self.seen: set[Any] = set()
        self.count = 0  # input objects seen
        self.taken = 0  # input objects passed by -First
        self.buffer: deque[Any] | None = None
        if self.last is not None:
            self.buffer = deque(maxlen=self.last + self.skip)
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is _NO_INPUT:
            return
        index = self.count
        self.count += 1
        if self.indexes is not None:
            if index in self.indexes:
                yield from self._emit(item)
            if self.last is None and index >= max(self.indexes, default=-1):
                raise StopUpstream
            return
        if self.buffer is not None:
            self.buffer.append(item)
            if self.first is not None and self.taken < self.first:
                self.taken += 1
                yield from self._emit(item)
            return
        if index < self.skip:
            return
        if self.first is not None:
            if self.taken >= self.first:
                raise StopUpstream
            self.taken += 1
        yield from self._emit(item)
        if self.first is not None and self.taken >= self.first:
            raise StopUpstream

    def end(self) -> Iterable[Any]:
        if self.buffer is None:
            return
        items = list(self.buffer)
        if self.skip:
            items = items[: max(0, len(items) - self.skip)]
        for item in items[max(0, len(items) - (self.last or 0)) :]:
            yield from self._emit(item)

    def _emit(self, item: Any) -> Iterator[Any]:
        for out in self._select(item):
            if self.unique:
                key = _unique_key(out)
                if key in self.seen:
                    continue
                self.seen.add(key)
            yield out

    def _select(self, item: Any) -> list[Any]:
        if self.expand is not None:
            return self._expanded(item, self.expand)
        if not self.specs:
            return [item]
        selected = PSObject(type_name="Selected." + type_name(item))
        for spec in expand_properties(self.specs, item, self.exclude):
            selected.set(spec.label, spec.value(item, self.session))
        return [selected]

    def _expanded(self, item: Any, name: str) -> list[Any]:
        present = name.lower() in (n.lower() for n in property_names(item))
        value = get_member(item, name)
        if not present and value is None:
            raise ShellRuntimeError(
                f'Property "{name}" cannot be found.', category="InvalidArgument"
            )
        values = list(value) if is_collection(value) else [value]
        if not self.specs:
            return values
        out = []
        for value in values:
            if isinstance(value, PSObject):
                copy = PSObject(
                    value.items(), type_name=value.type_name, base=value.base, display=value.display
                )
                for spec in expand_properties(self.specs, item, self.exclude):
                    copy.set(spec.label, spec.value(item, self.session))
                out.append(copy)
            else:
                out.append(value)
        return out


# -- Sort-Object ------------------------------------------------------------------------------


@register
class SortObject(Cmdlet):
    name = "Sort-Object"
    aliases = ("sort",)
    parameters = (
        Parameter(
            "Property",
            kind="objects",
            position=0,
            help="The properties to sort by: names, script blocks, or hashtables with an "
            "Expression and Ascending or Descending keys. Without it objects sort by their "
            "text (numbers by value).",
        ),
        Parameter("Descending", kind="switch", help="Sorts from the largest to the smallest."),
        Parameter("Unique", kind="switch", help="Outputs each distinct value once."),
        Parameter(
            "CaseSensitive",
            kind="switch",
            help="Sorts upper and lower case apart (it is case-insensitive by default).",
        ),
        _input_parameter(),
    )
    synopsis = "Sorts objects by property values."
    description = (
        "Reads all its input, then outputs it in order of the given properties (or of "
        "the objects themselves): $null first, numbers by value, dates by time, text "
        "alphabetically without regard to case unless -CaseSensitive."
    )
    examples = (
        Example(
            "Get-MailboxDatabase | Sort-Object Server, Name",
            "The databases ordered by server, then by name.",
        ),
        Example(
            "Get-ClientAccessArray | sort { $_.Members.Count } -Descending",
            "The arrays with the most members first.",
        ),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.items: list[Any] = []
        self.specs = property_arguments(params.get("Property") or [], SORT_KEYS)
        self.descending = bool(params.get("Descending"))
        self.unique = bool(params.get("Unique"))
        self.case_sensitive = bool(params.get("CaseSensitive"))
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is not _NO_INPUT:
            self.items.append(item)
        return ()

    def end(self) -> Iterable[Any]:
        if not self.items:
            return []
        specs = expand_properties(self.specs, self.items[0]) if self.specs else []
        keyed = [(self._keys(item, specs), item) for item in self.items]
        directions = [
            (spec.descending if spec.descending is not None else self.descending) for spec in specs
        ] or [self.descending]

        def compare(a: tuple[list[Any], Any], b: tuple[list[Any], Any]) -> int:
            for x, y, descending in zip(a[0], b[0], directions, strict=True):
                result = compare_values(x, y, self.case_sensitive)
                if result:
                    return -result if descending else result
            return 0

        keyed.sort(key=functools.cmp_to_key(compare))
        out: list[Any] = []
        previous: tuple[list[Any], Any] | None = None
        for entry in keyed:
            if self.unique and previous is not None and compare(previous, entry) == 0:
                continue
            previous = entry
            out.append(entry[1])
        return out

    def _keys(self, item: Any, specs: list[PropertySpec]) -> list[Any]:
        if not specs:
            return [item]
        return [spec.value(item, self.session) for spec in specs]


# -- Measure-Object ----------------------------------------------------------------------------

MEASURE_TYPE = "Microsoft.PowerShell.Commands.GenericMeasureInfo"
TEXT_MEASURE_TYPE = "Microsoft.PowerShell.Commands.TextMeasureInfo"
# PowerShell shows a GenericMeasureInfo as a list of its six properties: no table view,
# and more than four properties make Out-Default choose a list.
register_view(TEXT_MEASURE_TYPE, ("Lines", "Words", "Characters", "Property"))


class _Stats:
    def __init__(self) -> None:
        self.count = 0
        self.found = False
        self.total: int | float = 0
        self.maximum: Any = None
        self.minimum: Any = None
        self.lines = 0
        self.words = 0
        self.characters = 0


@register
class MeasureObject(Cmdlet):
    name = "Measure-Object"
    aliases = ("measure",)
    parameters = (
        Parameter("Property", kind="strings", position=0, help="The properties to measure."),
        Parameter("Sum", kind="switch", help="Adds the values."),
        Parameter("Average", kind="switch", help="Averages the values."),
        Parameter("Maximum", kind="switch", help="Finds the largest value."),
        Parameter("Minimum", kind="switch", help="Finds the smallest value."),
        Parameter("Line", kind="switch", help="Counts the lines of text input."),
        Parameter("Word", kind="switch", help="Counts the words of text input."),
        Parameter("Character", kind="switch", help="Counts the characters of text input."),
        Parameter(
            "IgnoreWhiteSpace", kind="switch", help="Does not count white space as characters."
        ),
        _input_parameter(),
    )
    synopsis = (
        "Calculates the numeric properties of objects, and the characters, words, and lines "
        "in string objects."
    )
    description = (
        "Counts its input objects and, for the given properties (or the objects "
        "themselves), computes the sum, average, maximum and minimum; or counts the lines, "
        "words and characters of text."
    )
    examples = (
        Example("Get-Mailbox | Measure-Object", "Counts the mailboxes."),
        Example(
            "Get-ClientAccessArray | % { $_.Members.Count } | measure -Sum -Maximum",
            "The total and the largest number of members of the arrays.",
        ),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.properties: list[str] = list(params.get("Property") or [])
        self.text = any(params.get(s) for s in ("Line", "Word", "Character"))
        self.flags = {
            name: bool(params.get(name))
            for name in (
                "Sum",
                "Average",
                "Maximum",
                "Minimum",
                "Line",
                "Word",
                "Character",
                "IgnoreWhiteSpace",
            )
        }
        self.stats = {name: _Stats() for name in self.properties or [""]}
        self.seen_any = False
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is _NO_INPUT or item is None:
            return ()
        self.seen_any = True
        for name, stats in self.stats.items():
            if name:
                present = name.lower() in (n.lower() for n in property_names(item))
                value = get_member(item, name)
                if not present and value is None:
                    continue
                stats.found = True
                if value is None:
                    continue
            else:
                value = item
                stats.found = True
            stats.count += 1
            if self.text:
                self._measure_text(stats, to_string(value))
            else:
                self._measure(stats, value)
        return ()

    def _measure(self, stats: _Stats, value: Any) -> None:
        flags = self.flags
        if flags["Sum"] or flags["Average"]:
            number = _as_number(value)
            if number is None:
                raise ShellRuntimeError(
                    f'Input object "{to_string(value)}" is not numeric.',
                    category="InvalidType",
                )
            stats.total += number
        if flags["Maximum"] or flags["Minimum"]:
            number = _as_number(value)
            comparable = number if number is not None else value
            if stats.maximum is None or compare_values(comparable, stats.maximum) > 0:
                stats.maximum = comparable
            if stats.minimum is None or compare_values(comparable, stats.minimum) < 0:
                stats.minimum = comparable

    def _measure_text(self, stats: _Stats, text: str) -> None:
        stats.lines += len(text.splitlines()) if text else 0
        stats.words += len(text.split())
        if self.flags["IgnoreWhiteSpace"]:
            stats.characters += sum(1 for c in text if not c.isspace())
        else:
            stats.characters += len(text)

    def end(self) -> Iterable[Any]:
        for name, stats in self.stats.items():
            if name and self.seen_any and not stats.found:
                raise ShellRuntimeError(
                    f'The property "{name}" cannot be found in the input for any objects.',
                    category="InvalidArgument",
                )
            yield self._result(name, stats)

    def _result(self, name: str, stats: _Stats) -> PSObject:
        flags = self.flags
        if self.text:
            return PSObject(
                {
                    "Lines": stats.lines if flags["Line"] else None,
                    "Words": stats.words if flags["Word"] else None,
                    "Characters": stats.characters if flags["Character"] else None,
                    "Property": name or None,
                },
                type_name=TEXT_MEASURE_TYPE,
            )
        average = None
        if flags["Average"] and stats.count:
            average = stats.total / stats.count
            if average == int(average):
                average = int(average)
        return PSObject(
            {
                "Count": stats.count,
                "Average": average,
                "Sum": stats.total if flags["Sum"] else None,
                "Maximum": stats.maximum if flags["Maximum"] else None,
                "Minimum": stats.minimum if flags["Minimum"] else None,
                "Property": name or None,
            },
            type_name=MEASURE_TYPE,
        )


# -- Format-Table, Format-List ---------------------------------------------------------------


class _Collecting(Cmdlet):
    """A cmdlet that reads all its input before it outputs anything."""

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.params = dict(params)
        self.items: list[Any] = []
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is not _NO_INPUT:
            self.items.append(item)
        return ()


@register
class FormatTable(_Collecting):
    name = "Format-Table"
    aliases = ("ft",)
    parameters = (
        Parameter(
            "Property",
            kind="objects",
            position=0,
            help="The properties to show as columns: names, wildcards and calculated "
            "properties (hashtables with Name or Label, Expression, Width, Alignment and "
            "FormatString keys). By default the columns of the object type's view.",
        ),
        Parameter(
            "AutoSize",
            kind="switch",
            help="Sizes the columns from the data; columns that do not fit are left out.",
        ),
        Parameter("Wrap", kind="switch", help="Wraps long values instead of cutting them."),
        Parameter("HideTableHeaders", kind="switch", help="Leaves out the column headers."),
        Parameter(
            "GroupBy",
            kind="object",
            help="Starts a new table each time this property (or calculated property) "
            "changes value.",
        ),
        _input_parameter(),
    )
    synopsis = "Formats the output as a table."
    description = (
        "Reads all its input and lays it out as a table with a column for each property. "
        "Its output is formatting, meant to be displayed: use it at the end of a pipeline."
    )
    examples = (
        Example(
            "Get-MailboxDatabase | Format-Table Name, Server, RpcClientAccessServer -AutoSize",
            "The databases with the name their clients use.",
        ),
        Example(
            "Get-ClientAccessArray | ft Name, @{Label='Members'; Expression={$_.Members.Count}; "
            "Alignment='Right'}",
            "A calculated column.",
        ),
    )

    def end(self) -> Iterable[Any]:
        p = self.params
        lines = format_table(
            self.items,
            p.get("Property"),
            autosize=bool(p.get("AutoSize")),
            width=self.session.host.width,
            wrap=bool(p.get("Wrap")),
            hide_headers=bool(p.get("HideTableHeaders")),
            group_by=p.get("GroupBy"),
            session=self.session,
        )
        if lines:
            yield FormattedOutput(tuple(lines))


@register
class FormatList(_Collecting):
    name = "Format-List"
    aliases = ("fl",)
    parameters = (
        Parameter(
            "Property",
            kind="objects",
            position=0,
            help="The properties to show: names, wildcards and calculated properties. By "
            "default every property (*).",
        ),
        _input_parameter(),
    )
    synopsis = (
        "Formats the output as a list of properties in which each property appears on a new line."
    )
    description = (
        "Shows each object as a list of 'Name : value' lines, every property by default. "
        "The usual way to see all the properties of an Exchange object."
    )
    examples = (
        Example(
            "Get-ClientAccessArray | Format-List",
            "Every property of every array.",
        ),
        Example(
            "Get-MailboxDatabase DB01 | fl Name, *Server*",
            "The name and the server properties of DB01.",
        ),
    )

    def end(self) -> Iterable[Any]:
        lines = format_list(
            self.items,
            self.params.get("Property"),
            width=self.session.host.width,
            session=self.session,
        )
        if lines:
            yield FormattedOutput(tuple(lines))


# -- Out- cmdlets -------------------------------------------------------------------------------


@register
class OutString(Cmdlet):
    name = "Out-String"
    parameters = (
        Parameter("Width", kind="int", help="The number of characters in each line."),
        Parameter("Stream", kind="switch", help="Outputs each line as its own string."),
        _input_parameter(),
    )
    synopsis = "Sends objects to the host as a series of strings."
    description = (
        "Formats its input as Out-Default would display it and outputs the text: one "
        "string, or one string per line with -Stream."
    )
    examples = (
        Example(
            "$text = Get-ClientAccessArray | Format-List | Out-String",
            "The list of arrays as one string.",
        ),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        width = params.get("Width") or self.session.host.width
        if width < 2:
            raise ShellRuntimeError(
                f"Cannot validate argument on parameter 'Width'. The {width} argument is less "
                "than the minimum allowed range of 2.",
                category="InvalidData",
            )
        self.stream = bool(params.get("Stream"))
        self.items: list[Any] = []
        self.formatter = _Formatter(width=width, session=self.session)
        self.width = width
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is _NO_INPUT:
            return ()
        if self.stream:
            return [str(line) for line in self.formatter.feed(item)]
        self.items.append(item)
        return ()

    def end(self) -> Iterable[Any]:
        if self.stream:
            return [str(line) for line in self.formatter.finish()]
        if not self.items:
            return []
        lines = out_string(self.items, width=self.width, session=self.session)
        return ["\n".join(lines) + "\n"]


@register
class OutNull(Cmdlet):
    name = "Out-Null"
    parameters = (_input_parameter("The objects to discard."),)
    synopsis = "Hides the output instead of sending it down the pipeline or displaying it."
    description = "Discards its input."
    examples = (
        Example(
            "New-ClientAccessArray -Fqdn bj-cas.lab.net -Site BJ | Out-Null",
            "Creates the array without showing it.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        return ()


@register
class OutHost(Cmdlet):
    name = "Out-Host"
    aliases = ("oh",)
    parameters = (
        Parameter("Paging", kind="switch", help="Accepted and ignored."),
        _input_parameter(),
    )
    synopsis = "Sends output to the command line."
    description = "Displays its input as the shell displays the output of a command (Out-Default)."
    examples = (Example("Get-ExchangeServer | Out-Host", "Displays the servers."),)

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.formatter = _Formatter(width=self.session.host.width, session=self.session)
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is not _NO_INPUT:
            self._write(self.formatter.feed(item))
        return ()

    def end(self) -> Iterable[Any]:
        self._write(self.formatter.finish())
        return ()

    def _write(self, lines: list[str]) -> None:
        write_lines(self.session.host, lines)


@register
class OutDefault(OutHost):
    name = "Out-Default"
    aliases = ()
    parameters = (_input_parameter(),)
    synopsis = "Sends the output to the default formatter and to the default output cmdlet."
    description = "What the shell runs at the end of every pipeline: displays its input."
    examples = (Example("Get-ExchangeServer | Out-Default", "Displays the servers."),)


# -- Write- cmdlets ------------------------------------------------------------------------------


@register
class WriteOutput(Cmdlet):
    name = "Write-Output"
    aliases = ("echo", "write")
    parameters = (
        Parameter(
            "InputObject",
            kind="object",
            position=0,
            from_pipeline=True,
            remaining=True,
            help="The objects to send down the pipeline.",
        ),
    )
    synopsis = "Sends the specified objects to the next command in the pipeline."
    description = (
        "Sends objects down the pipeline (collections one item at a time). At the end of "
        "a pipeline they are displayed."
    )
    examples = (Example('Write-Output "Done"', "Outputs the string Done."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if item is not _NO_INPUT and item is not None:
            yield item


_CONSOLE_COLORS = {
    "Black": 30,
    "DarkBlue": 34,
    "DarkGreen": 32,
    "DarkCyan": 36,
    "DarkRed": 31,
    "DarkMagenta": 35,
    "DarkYellow": 33,
    "Gray": 37,
    "DarkGray": 90,
    "Blue": 94,
    "Green": 92,
    "Cyan": 96,
    "Red": 91,
    "Magenta": 95,
    "Yellow": 93,
    "White": 97,
}


@register
class WriteHost(Cmdlet):
    name = "Write-Host"
    parameters = (
        Parameter(
            "Object",
            kind="object",
            position=0,
            from_pipeline=True,
            remaining=True,
            help="What to display (collections: their items, separated).",
        ),
        Parameter("NoNewline", kind="switch", help="Does not end the line."),
        Parameter("Separator", help="Put between the items of a collection (a space)."),
        Parameter(
            "ForegroundColor",
            kind="enum",
            choices=tuple(_CONSOLE_COLORS),
            help="The text colour (on a terminal only).",
        ),
        Parameter(
            "BackgroundColor",
            kind="enum",
            choices=tuple(_CONSOLE_COLORS),
            help="The background colour (on a terminal only).",
        ),
    )
    synopsis = "Writes customized output to a host."
    description = (
        "Writes text straight to the screen, not down the pipeline: what Write-Host "
        "writes cannot be captured, piped or formatted."
    )
    examples = (
        Example(
            'Write-Host "Arrays:" -ForegroundColor Green',
            "Writes Arrays: in green on a terminal.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        value = params.get("Object")
        separator = params.get("Separator", " ")
        if is_collection(value):
            text = separator.join(to_string(v) for v in value)
        else:
            text = to_string(value)
        host = self.session.host
        if host.is_terminal and text:
            codes = []
            if params.get("ForegroundColor"):
                codes.append(str(_CONSOLE_COLORS[params["ForegroundColor"]]))
            if params.get("BackgroundColor"):
                codes.append(str(_CONSOLE_COLORS[params["BackgroundColor"]] + 10))
            if codes:
                text = f"\x1b[{';'.join(codes)}m{text}\x1b[0m"
        if params.get("NoNewline"):
            host.out.write(text)
            host.out.flush()
        else:
            host.write(text + "\n" if text.endswith("\n") else text)
        return ()


def _preference(cmdlet: Cmdlet, common_name: str, variable: str) -> str:
    invocation = cmdlet.invocation
    common = invocation.common if invocation is not None else {}
    if common_name in common:
        return str(common[common_name])
    return to_string(cmdlet.session.get_variable(variable)) or "Continue"


@register
class WriteWarning(Cmdlet):
    name = "Write-Warning"
    parameters = (
        Parameter(
            "Message",
            position=0,
            mandatory=True,
            from_pipeline=True,
            help="The text of the warning.",
        ),
    )
    synopsis = "Writes a warning message."
    description = (
        "Writes WARNING: and the message to the screen (not down the pipeline), unless "
        "-WarningAction SilentlyContinue or $WarningPreference say otherwise."
    )
    examples = (
        Example(
            'Write-Warning "DB01 still uses CAS01.lab.net"',
            "Displays WARNING: DB01 still uses CAS01.lab.net",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        action = _preference(self, "WarningAction", "WarningPreference")
        if action.lower() not in ("silentlycontinue", "ignore"):
            self.write_warning(params.get("Message", ""))
        if action.lower() == "stop":
            raise ShellRuntimeError(
                "The running command stopped because the preference variable "
                '"WarningPreference" or common parameter is set to Stop: '
                f"{params.get('Message', '')}",
                category="OperationStopped",
            )
        return ()


_ERROR_CATEGORIES = (
    "NotSpecified",
    "OpenError",
    "CloseError",
    "DeviceError",
    "DeadlockDetected",
    "InvalidArgument",
    "InvalidData",
    "InvalidOperation",
    "InvalidResult",
    "InvalidType",
    "MetadataError",
    "NotImplemented",
    "NotInstalled",
    "ObjectNotFound",
    "OperationStopped",
    "OperationTimeout",
    "SyntaxError",
    "ParserError",
    "PermissionDenied",
    "ResourceBusy",
    "ResourceExists",
    "ResourceUnavailable",
    "ReadError",
    "WriteError",
    "FromStdErr",
    "SecurityError",
)


@register
class WriteError(Cmdlet):
    name = "Write-Error"
    parameters = (
        Parameter(
            "Message",
            position=0,
            mandatory=True,
            from_pipeline=True,
            help="The text of the error.",
        ),
        Parameter(
            "Category",
            kind="enum",
            choices=_ERROR_CATEGORIES,
            help="The error category (NotSpecified by default).",
        ),
        Parameter("ErrorId", help="An identifier of the error."),
        Parameter("TargetObject", kind="object", help="The object the error is about."),
    )
    synopsis = "Writes an object to the error stream."
    description = (
        "Writes a non-terminating error: it is displayed and added to $Error, and the "
        "commands go on (unless -ErrorAction Stop)."
    )
    examples = (
        Example(
            'Write-Error "DB03 has no array in its site"',
            "Writes the error and continues.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        raise ShellRuntimeError(
            params.get("Message", ""), category=params.get("Category") or "NotSpecified"
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
            raise ShellRuntimeError(_PARAMETER_SET, category="InvalidArgument")
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
        _input_parameter("The objects whose members are shown."),
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
        item = _input(params)
        if item is _NO_INPUT or item is None:
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
class ConvertToJson(_Collecting):
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


# -- Export-Csv -----------------------------------------------------------------------------------

_ENCODINGS = {
    "utf8": "utf-8",
    "utf8nobom": "utf-8",
    "utf8bom": "utf-8-sig",
    "ascii": "ascii",
    "unicode": "utf-16",
    "bigendianunicode": "utf-16-be",
    "utf32": "utf-32",
    "utf7": "utf-7",
    "default": "utf-8",
    "oem": "utf-8",
    "latin1": "latin-1",
}


def _csv_cell(value: Any) -> str:
    # PowerShell writes a collection as its type name ("System.Object[]"), which says
    # nothing; casarray writes its items joined by spaces (as "$value" would), so that
    # Members or EmailAddresses survive a round trip through the file.
    return to_string(value)


@register
class ExportCsv(Cmdlet):
    name = "Export-Csv"
    parameters = (
        Parameter("Path", position=0, mandatory=True, help="The file to write."),
        _input_parameter("The objects to export, one row each."),
        Parameter(
            "NoTypeInformation",
            kind="switch",
            aliases=("NTI",),
            help="Leaves out the #TYPE line.",
        ),
        Parameter(
            "Encoding",
            help="The file's encoding: UTF8 (default), ASCII, Unicode, UTF32, ...; unknown "
            "names are ignored.",
        ),
        Parameter("Append", kind="switch", help="Adds the rows to the end of the file."),
        Parameter("Delimiter", help="The character between values (a comma by default)."),
        Parameter("NoClobber", kind="switch", help="Does not overwrite an existing file."),
        Parameter("Force", kind="switch", help="Overwrites a read-only file."),
    )
    supports_should_process = True
    synopsis = (
        "Converts objects into a series of comma-separated value (CSV) strings and saves the "
        "strings in a CSV file."
    )
    description = (
        "Writes its input to a CSV file: a header of the first object's property names, "
        "then a row of values per object (collections as their items joined by spaces). "
        "Without -NoTypeInformation the first line is #TYPE and the type name."
    )
    examples = (
        Example(
            "Get-MailboxDatabase | Select-Object Name, RpcClientAccessServer | "
            "Export-Csv databases.csv -NoTypeInformation",
            "Saves each database's name and RpcClientAccessServer before changing them.",
        ),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        raw = params["Path"]
        self.path = os.path.abspath(os.path.expanduser(raw))
        delimiter = params.get("Delimiter", ",")
        if len(delimiter) != 1:
            raise ShellRuntimeError(
                f"Cannot bind parameter 'Delimiter'. Cannot convert value \"{delimiter}\" to "
                'type "System.Char". Error: "String must be exactly one character long."',
                category="InvalidArgument",
            )
        self.delimiter = delimiter
        self.type_line = not params.get("NoTypeInformation")
        encoding = str(params.get("Encoding") or "utf8").lower().replace("-", "")
        self.encoding = _ENCODINGS.get(encoding, "utf-8")
        self.append = bool(params.get("Append"))
        self.file: Any = None
        self.writer: Any = None
        self.header: list[str] | None = None
        self.allowed = self.should_process(self.path)
        if not self.allowed:
            return ()
        exists = os.path.exists(self.path)
        if exists and params.get("NoClobber") and not self.append:
            raise ShellRuntimeError(
                f"The file '{self.path}' already exists.", category="ResourceExists"
            )
        if self.append and exists:
            self.header = self._existing_header()
        try:
            self.file = open(  # noqa: SIM115 - closed in end()
                self.path,
                "a" if self.append else "w",
                encoding=self.encoding,
                errors="replace",
                newline="",
            )
        except FileNotFoundError:
            raise ShellRuntimeError(
                f"Could not find a part of the path '{self.path}'.", category="OpenError"
            ) from None
        except OSError as exc:
            raise ShellRuntimeError(
                f"Access to the path '{self.path}' is denied: {exc.strerror}.",
                category="OpenError",
            ) from None
        self.writer = csv.writer(
            self.file, delimiter=self.delimiter, quoting=csv.QUOTE_ALL, lineterminator="\n"
        )
        return ()

    def _existing_header(self) -> list[str] | None:
        try:
            with open(self.path, encoding=self.encoding, errors="replace", newline="") as f:
                for row in csv.reader(f, delimiter=self.delimiter):
                    if not row or (len(row) == 1 and row[0].startswith("#TYPE")):
                        continue
                    return row
        except OSError:
            return None
        return None

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = _input(params)
        if not self.allowed or item is _NO_INPUT or self.writer is None:
            return ()
        if self.header is None:
            self.header = property_names(item)
            if self.type_line:
                self.file.write(f"#TYPE {type_name(item)}\n")
            self.writer.writerow(self.header)
        self.writer.writerow([_csv_cell(get_member(item, name)) for name in self.header])
        return ()

    def end(self) -> Iterable[Any]:
        if self.file is not None:
            self.file.close()
            self.file = None
        return ()

    def __del__(self) -> None:
        file = getattr(self, "file", None)
        if file is not None:
            file.close()
