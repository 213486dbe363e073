"""The *-Object cmdlets, which filter and shape the pipeline: Where-Object,
ForEach-Object, Select-Object, Sort-Object and Measure-Object, with PowerShell's
semantics and aliases.

Where-Object and ForEach-Object pass each object on as it arrives, and Select-Object
-First stops the commands before it once it has its objects. Sort-Object and
Measure-Object read all their input first, as they must, and order values as
PowerShell does (`compare_values`)."""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, StopUpstream, register
from casarray.shell.cmdlets.utility.common import (
    NO_INPUT,
    PARAMETER_SET,
    input_object,
    input_parameter,
    not_negative,
)
from casarray.shell.operators import binary
from casarray.shell.properties import (
    SELECT_KEYS,
    SORT_KEYS,
    PropertySpec,
    expand_properties,
    property_arguments,
    property_names,
)
from casarray.shell.psobject import PSObject
from casarray.shell.values import (
    ScriptBlockValue,
    ShellRuntimeError,
    call_method,
    get_member,
    is_collection,
    to_string,
    truthy,
    type_name,
)
from casarray.shell.views import register_view

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
        input_parameter(),
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
                raise ShellRuntimeError(PARAMETER_SET, category="InvalidArgument")
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
            raise ShellRuntimeError(PARAMETER_SET, category="InvalidArgument")
        self.property = prop
        if switches:
            self.operator = switches[0]
        elif has_value:
            self.operator = "EQ"
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = input_object(params)
        if item is NO_INPUT:
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
        input_parameter(),
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
            raise ShellRuntimeError(PARAMETER_SET, category="InvalidArgument")
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
        item = input_object(params)
        if self.block is not None:
            yield from self.session.invoke_scriptblock(
                self.block, None if item is NO_INPUT else item
            )
        elif self.member is not None and item is not NO_INPUT:
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
        input_parameter(),
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
            not_negative(name, params.get(name))
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
        item = input_object(params)
        if item is NO_INPUT:
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
        input_parameter(),
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
        item = input_object(params)
        if item is not NO_INPUT:
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
        input_parameter(),
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
        item = input_object(params)
        if item is NO_INPUT or item is None:
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
