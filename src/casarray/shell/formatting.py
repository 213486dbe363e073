"""How output looks: Out-Default and the layouts of Format-Table and Format-List.

Out-Default (`out_default`) is what PowerShell runs at the end of every top-level
pipeline. It reads the stream lazily and writes as it goes:

- a `FormattedOutput` (what Format-Table, Format-List and Get-Help produce) prints
  its lines as they are;
- strings, numbers, booleans, dates print one per line;
- a PSObject prints with the default view of its type (`views.view_for`) as a table,
  else with all its properties: a table when it has at most 4, a list otherwise;
  consecutive objects of the same type share one table header, a change of type
  starts a new block.

A table prints its header once it has seen the first objects (up to
`STREAM_BUFFER` objects or `STREAM_DELAY` seconds, whichever comes first), sizes its
columns from them, then prints each further row as it arrives, cut to those widths
with "...", as PowerShell does. Collections show as `{a, b, c}` (at most
`$FormatEnumerationLimit` items, 4 by default, then "..."), $null as nothing.

Everything is plain text; on a terminal only the table headers are coloured.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import TYPE_CHECKING, Any

from casarray.shell.properties import (
    GROUP_KEYS,
    HASHTABLE_ENTRY,
    LIST_KEYS,
    TABLE_KEYS,
    PropertySpec,
    default_properties,
    expand_properties,
    pascal_case,
    property_arguments,
)
from casarray.shell.psobject import PSObject
from casarray.shell.value_format import apply_format, cell_text, enumeration_limit, is_number
from casarray.shell.values import to_string, type_name
from casarray.shell.views import view_for

if TYPE_CHECKING:
    from casarray.shell.runtime import Session

STREAM_BUFFER = 50
STREAM_DELAY = 0.3
MIN_COLUMN = 5  # a column cut narrower than this is dropped instead

# Types shown in groups: a change of the property's value starts a new table with a
# "   Property: value" line (Get-Member's "TypeName: System.String").
GROUP_BY: dict[str, str] = {}


def register_group(type_name: str, property_name: str) -> None:
    """Show objects of `type_name` grouped by `property_name`, as Get-Member's are."""
    GROUP_BY[type_name] = property_name


@dataclass(frozen=True)
class FormattedOutput:
    """Text that is already laid out (the output of Format-Table, Format-List,
    Get-Help): Out-Default prints its lines as they are."""

    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join(self.lines)


class _Heading(str):
    """A table header or dash line: coloured when written to a terminal."""

    __slots__ = ()


# -- tables ----------------------------------------------------------------------------


@dataclass
class _Row:
    cells: list[str]
    numeric: list[bool | None]  # None: the value was $null


def _row(item: Any, specs: Sequence[PropertySpec], session: Session | None, limit: int) -> _Row:
    cells: list[str] = []
    numeric: list[bool | None] = []
    for spec in specs:
        value = spec.value(item, session)
        cells.append(apply_format(value, spec.format_string, limit))
        numeric.append(None if value is None else is_number(value) or isinstance(value, bool))
    return _Row(cells, numeric)


def _alignments(specs: Sequence[PropertySpec], rows: Sequence[_Row]) -> list[str]:
    """Each column's alignment: as asked, else right for numbers and booleans (judged
    by the first value that is not $null), else left."""
    out: list[str] = []
    for i, spec in enumerate(specs):
        if spec.alignment:
            out.append(spec.alignment)
            continue
        first = next((row.numeric[i] for row in rows if row.numeric[i] is not None), False)
        out.append("Right" if first else "Left")
    return out


def _cap(widths: Sequence[int], budget: int) -> int:
    """The largest C such that sum(min(w, C)) <= budget."""
    ordered = sorted(widths)
    used = 0
    for i, width in enumerate(ordered):
        remaining = len(ordered) - i
        if used + width * remaining <= budget:
            used += width
            continue
        return (budget - used) // remaining
    return ordered[-1] if ordered else 0


def fit_widths(natural: Sequence[int], limit: int, *, autosize: bool = False) -> list[int]:
    """Column widths that fit in `limit` characters (one space between columns).
    Without autosize the widest columns are cut evenly; with it the columns keep their
    width and those that do not fit are dropped (the last kept one may be cut). Fewer
    widths than columns means the rest are dropped."""
    widths = list(natural)
    while widths:
        count = len(widths)
        if sum(widths) + count - 1 <= limit:
            return widths
        if count == 1:
            return [max(1, limit)]
        if autosize:
            used = 0
            for i, width in enumerate(widths):
                start = used + (1 if i else 0)
                if start + width > limit:
                    room = limit - start
                    if room >= min(width, MIN_COLUMN):
                        return [*widths[:i], room]
                    return widths[:i] or [max(1, limit)]
                used = start + width
            return widths
        cap = _cap(widths, limit - (count - 1))
        if cap >= MIN_COLUMN:
            return [min(width, cap) for width in widths]
        widths.pop()
    return widths


def _clip(text: str, width: int) -> str:
    if "\n" in text or "\r" in text:
        text = text.splitlines()[0] + "..." if text.strip() else ""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    return text[: width - 3] + "..."


def _pad(text: str, width: int, alignment: str) -> str:
    if alignment == "Right":
        return text.rjust(width)
    if alignment == "Center":
        return text.center(width)
    return text.ljust(width)


def _wrap_cell(text: str, width: int) -> list[str]:
    pieces: list[str] = []
    for line in text.splitlines() or [""]:
        if not line:
            pieces.append("")
            continue
        while len(line) > width:
            cut = line.rfind(" ", 0, width + 1)
            if cut <= 0:
                cut = width
            pieces.append(line[:cut].rstrip())
            line = line[cut:].lstrip()
        pieces.append(line)
    return pieces


@dataclass
class _TableLayout:
    labels: list[str]
    widths: list[int]
    alignments: list[str]
    limit: int

    @property
    def count(self) -> int:
        return len(self.widths)

    def _last_width(self) -> int:
        """A last left-aligned column may use the rest of the line."""
        width = self.widths[-1]
        if self.alignments[self.count - 1] != "Left":
            return width
        start = sum(self.widths[:-1]) + self.count - 1
        return max(width, self.limit - start)

    def header(self) -> list[str]:
        labels, dashes = [], []
        for i in range(self.count):
            width = self.widths[i]
            label = _clip(self.labels[i], width)
            labels.append(_pad(label, width, self.alignments[i]))
            dashes.append(_pad("-" * len(label), width, self.alignments[i]))
        return [_Heading(" ".join(labels).rstrip()), _Heading(" ".join(dashes).rstrip())]

    def row(self, row: _Row, *, wrap: bool = False) -> list[str]:
        widths = [*self.widths[:-1], self._last_width()]
        if not wrap:
            parts = [
                _pad(_clip(row.cells[i], widths[i]), widths[i], self.alignments[i])
                for i in range(self.count)
            ]
            return [" ".join(parts).rstrip()]
        columns = [_wrap_cell(row.cells[i], widths[i]) for i in range(self.count)]
        lines = []
        for pieces in itertools.zip_longest(*columns, fillvalue=""):
            parts = [_pad(pieces[i], widths[i], self.alignments[i]) for i in range(self.count)]
            lines.append(" ".join(parts).rstrip())
        return lines


def _layout(
    specs: Sequence[PropertySpec], rows: Sequence[_Row], limit: int, *, autosize: bool = False
) -> _TableLayout:
    natural = []
    for i, spec in enumerate(specs):
        if spec.width is not None:
            natural.append(spec.width)
            continue
        longest = max((len(_clip(row.cells[i], 10**6)) for row in rows), default=0)
        natural.append(max(len(spec.label), longest, 1))
    widths = fit_widths(natural, limit, autosize=autosize)
    if not widths:  # not even one column fits: show the first, cut
        widths = [max(1, limit)]
    return _TableLayout(
        [spec.label for spec in specs[: len(widths)]],
        widths,
        _alignments(specs, rows)[: len(widths)],
        limit,
    )


def _group_heading(label: str, value: str) -> list[str]:
    return ["", f"   {label}: {value}"]


def _limit(width: int) -> int:
    """Lines stay one character short of the width, so a terminal never wraps them."""
    return max(width - 1, 20)


def format_table(
    objects: Iterable[Any],
    properties: Sequence[Any] | None = None,
    *,
    autosize: bool = False,
    width: int = 120,
    wrap: bool = False,
    hide_headers: bool = False,
    group_by: Any = None,
    session: Session | None = None,
) -> list[str]:
    """Format-Table's text for `objects`: one table for the given properties (names,
    wildcards, calculated properties), else a table per run of objects of one type
    with their default columns. Strings and numbers without properties print as
    lines."""
    limit = _limit(width)
    enum_limit = enumeration_limit(session)
    specs = property_arguments(properties, TABLE_KEYS) if properties else None
    items = list(objects) if specs is not None else list(_entries(objects))
    group = _group_spec(group_by)
    lines: list[str] = []
    for group_value, members in _groups(items, group, session):
        if group is not None:
            lines.extend(_group_heading(group.label, group_value))
        for kind, run in _runs(members, explicit=specs is not None):
            if kind == "scalar":
                lines.extend(_scalar_lines(run))
                continue
            columns = (
                expand_properties(specs, run[0])
                if specs is not None
                else default_properties(run[0])[0]
            )
            if not columns:
                continue
            rows = [_row(item, columns, session, enum_limit) for item in run]
            layout = _layout(columns, rows, limit, autosize=autosize)
            lines.append("")
            if not hide_headers:
                lines.extend(layout.header())
            for row in rows:
                lines.extend(layout.row(row, wrap=wrap))
            lines.append("")
    return lines


def _entries(objects: Iterable[Any]) -> Iterable[Any]:
    """Hashtables shown as PowerShell shows them: a Name/Value row per entry."""
    for item in objects:
        if isinstance(item, Mapping):
            for key, value in item.items():
                yield PSObject({"Name": key, "Value": value}, type_name=HASHTABLE_ENTRY)
        else:
            yield item


def _group_spec(group_by: Any) -> PropertySpec | None:
    if group_by is None:
        return None
    specs = property_arguments([group_by], GROUP_KEYS)
    spec = specs[0]
    return spec if isinstance(spec, PropertySpec) else PropertySpec(spec, spec)


def _groups(
    items: list[Any], group: PropertySpec | None, session: Session | None
) -> Iterable[tuple[str, list[Any]]]:
    """Consecutive runs of equal group values (Format-Table -GroupBy does not sort)."""
    if group is None:
        yield "", items
        return
    current: list[Any] = []
    current_value: str | None = None
    for item in items:
        value = apply_format(group.value(item, session), group.format_string)
        if current and value != current_value:
            yield current_value or "", current
            current = []
        current_value = value
        current.append(item)
    if current:
        yield current_value or "", current


def _is_scalar(item: Any) -> bool:
    return not isinstance(item, (PSObject, Mapping)) and not (
        is_dataclass(item) and not isinstance(item, type)
    )


def _runs(items: list[Any], *, explicit: bool) -> Iterable[tuple[str, list[Any]]]:
    """Runs of items that share a table: with explicit properties every object shares
    one; otherwise a run per type name. Scalars (without properties) print alone."""
    run: list[Any] = []
    run_key: Any = None
    for item in items:
        if not explicit and _is_scalar(item):
            key: Any = "scalar"
        elif explicit:
            key = "all"
        else:
            key = _shape_key(_as_object(item))
        if run and key != run_key:
            yield ("scalar" if run_key == "scalar" else "table"), run
            run = []
        run_key = key
        run.append(item if key == "scalar" or explicit else _as_object(item))
    if run:
        yield ("scalar" if run_key == "scalar" else "table"), run


def _scalar_lines(items: Iterable[Any]) -> list[str]:
    lines: list[str] = []
    for item in items:
        text = to_string(item)
        if text.endswith("\n"):
            text = text[:-1]
        lines.extend(text.split("\n"))
    return lines


def _as_object(item: Any) -> Any:
    """A record that is not a PSObject, shown by its fields."""
    if is_dataclass(item) and not isinstance(item, type) and not isinstance(item, PSObject):
        return PSObject(
            [(pascal_case(f.name), getattr(item, f.name)) for f in fields(item)],
            type_name=type(item).__name__,
            base=item,
        )
    return item


def _shape_key(item: Any) -> Any:
    if isinstance(item, PSObject):
        view = view_for(item.type_name)
        if view is not None:
            return ("view", view.table)
        return ("type", item.type_name)
    return ("type", type_name(item))


# -- lists -----------------------------------------------------------------------------


def _list_entry(pairs: Sequence[tuple[str, str]], limit: int) -> list[str]:
    if not pairs:
        return []
    name_width = max(len(name) for name, _ in pairs)
    lines: list[str] = []
    for name, text in pairs:
        prefix = f"{name.ljust(name_width)} : "
        indent = " " * len(prefix)
        room = limit - len(prefix)
        pieces: list[str] = []
        for part in text.splitlines() or [""]:
            if room >= 10:
                while len(part) > room:
                    pieces.append(part[:room])
                    part = part[room:]
            pieces.append(part)
        lines.append((prefix + pieces[0]).rstrip())
        lines.extend((indent + piece).rstrip() for piece in pieces[1:])
    return lines


def _list_pairs(
    item: Any, specs: Sequence[PropertySpec], session: Session | None, enum_limit: int
) -> list[tuple[str, str]]:
    return [
        (spec.label, apply_format(spec.value(item, session), spec.format_string, enum_limit))
        for spec in specs
    ]


def format_list(
    objects: Iterable[Any],
    properties: Sequence[Any] | None = None,
    *,
    width: int = 120,
    session: Session | None = None,
) -> list[str]:
    """Format-List's text: each object as `Name : value` lines (names padded to the
    longest), a blank line between objects. Without properties every property is
    shown; strings and numbers print as they are."""
    limit = _limit(width)
    enum_limit = enumeration_limit(session)
    specs = property_arguments(properties, LIST_KEYS) if properties else None
    lines: list[str] = []
    listed = False
    for raw in objects:
        if specs is None and _is_scalar(raw):
            if listed:
                lines.append("")
                listed = False
            lines.extend(_scalar_lines([raw]))
            continue
        item = _as_object(raw)
        if isinstance(item, Mapping) and specs is None:
            for key, value in item.items():
                pairs = [("Name", to_string(key)), ("Value", cell_text(value, enum_limit))]
                lines.append("")
                lines.extend(_list_entry(pairs, limit))
                listed = True
            continue
        columns = expand_properties(specs if specs is not None else ["*"], item)
        lines.append("")
        lines.extend(_list_entry(_list_pairs(item, columns, session, enum_limit), limit))
        listed = True
    if listed:
        lines.append("")
    return lines


# -- Out-Default: a streaming formatter ---------------------------------------------------


class _Block:
    """Consecutive objects shown together (one table, or one run of list entries)."""

    def __init__(
        self,
        formatter: Formatter,
        key: Any,
        specs: list[PropertySpec],
        kind: str,
        heading: list[str],
    ) -> None:
        self.formatter = formatter
        self.key = key
        self.specs = specs
        self.kind = kind
        self.heading = heading
        self.rows: list[_Row] = []
        self.layout: _TableLayout | None = None
        self.started = formatter.clock()

    def add(self, item: Any) -> list[str]:
        f = self.formatter
        if not self.specs:
            return []
        if self.kind == "list":
            lines = [*self.heading, ""] if self.heading else [""]
            self.heading = []
            pairs = _list_pairs(item, self.specs, f.session, f.enum_limit)
            return lines + _list_entry(pairs, f.limit)
        row = _row(item, self.specs, f.session, f.enum_limit)
        if self.layout is not None:
            return self.layout.row(row)
        self.rows.append(row)
        full = f.buffer_size is not None and len(self.rows) >= f.buffer_size
        late = f.delay is not None and f.clock() - self.started >= f.delay
        return self._flush() if full or late else []

    def _flush(self) -> list[str]:
        if not self.rows and self.layout is None:
            return []
        self.layout = _layout(self.specs, self.rows, self.formatter.limit)
        lines = [*self.heading, "", *self.layout.header()]
        for row in self.rows:
            lines.extend(self.layout.row(row))
        self.rows = []
        return lines

    def close(self) -> list[str]:
        if not self.specs:
            return []
        if self.kind == "list":
            return [""]
        lines = self._flush() if self.layout is None else []
        return [*lines, ""] if self.layout is not None else lines


class Formatter:
    """Turns a stream of objects into lines as Out-Default shows them; `feed` each
    object, then `finish`. Each call returns the lines ready to be written."""

    def __init__(
        self,
        *,
        width: int = 120,
        session: Session | None = None,
        buffer_size: int | None = STREAM_BUFFER,
        delay: float | None = STREAM_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = _limit(width)
        self.session = session
        self.enum_limit = enumeration_limit(session)
        self.buffer_size = buffer_size
        self.delay = delay
        self.clock = clock
        self.block: _Block | None = None

    def feed(self, item: Any) -> list[str]:
        if item is None:
            return []
        if isinstance(item, FormattedOutput):
            return self._close() + list(item.lines)
        if type(item).__name__ == "ErrorRecord" and hasattr(item, "format"):
            return self._close() + item.format().split("\n")
        if isinstance(item, Mapping):
            lines: list[str] = []
            for entry in _entries([item]):
                lines.extend(self._feed_object(entry))
            return lines
        item = _as_object(item)
        if isinstance(item, PSObject):
            return self._feed_object(item)
        return self._close() + _scalar_lines([item])

    def finish(self) -> list[str]:
        return self._close()

    def _close(self) -> list[str]:
        if self.block is None:
            return []
        block, self.block = self.block, None
        return block.close()

    def _feed_object(self, item: PSObject) -> list[str]:
        key: Any = _shape_key(item)
        heading: list[str] = []
        group = GROUP_BY.get(item.type_name)
        if group is not None:
            value = cell_text(item.get(group), self.enum_limit)
            key = (key, value)
            heading = _group_heading(group, value)
        lines: list[str] = []
        if self.block is None or self.block.key != key:
            lines = self._close()
            specs, kind = default_properties(item)
            self.block = _Block(self, key, specs, kind, heading)
        return lines + self.block.add(item)


def _terminal_console(host: Any) -> Any:
    """A rich console on the host's terminal (made once per host)."""
    console = getattr(host, "_rich_console", None)
    if console is None:
        from rich.console import Console

        console = Console(
            file=host.out,
            width=getattr(host, "width", None),
            highlight=False,
            soft_wrap=True,
            force_terminal=True,  # the host said it is one
        )
        host._rich_console = console
    return console


def write_lines(host: Any, lines: Iterable[str]) -> None:
    """Write formatted lines. The layout is PowerShell's, so output reads and pastes as
    in the Exchange Management Shell; on a terminal it goes through rich, with table
    headings styled."""
    if not getattr(host, "is_terminal", False) or not hasattr(host, "out"):
        for line in lines:
            host.write(str(line))
        return
    from rich.text import Text

    console = _terminal_console(host)
    for line in lines:
        style = "bold green" if isinstance(line, _Heading) and line else ""
        console.print(Text(str(line), style=style))


def out_default(session: Session, stream: Iterable[Any]) -> None:
    """PowerShell's Out-Default: write `stream` to the session's host as it comes."""
    host = session.host
    formatter = Formatter(width=getattr(host, "width", 120) or 120, session=session)
    try:
        for item in stream:
            write_lines(host, formatter.feed(item))
    finally:
        write_lines(host, formatter.finish())


def out_string(
    objects: Iterable[Any], *, width: int = 120, session: Session | None = None
) -> list[str]:
    """The lines Out-String makes of `objects` (all of them read first, so every row
    counts for the column widths)."""
    formatter = Formatter(width=width, session=session, buffer_size=None, delay=None)
    lines: list[str] = []
    for item in objects:
        lines.extend(formatter.feed(item))
    lines.extend(formatter.finish())
    return [str(line) for line in lines]
