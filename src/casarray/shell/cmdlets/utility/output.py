"""The cmdlets that format and write output: Format-Table and Format-List (layouts in
`shell.formatting`), Out-String, Out-Null, Out-Host and Out-Default, Write-Output,
Write-Host, Write-Warning and Write-Error, and Export-Csv, which writes objects to a
file. The Format- cmdlets read all their input first; the others stream."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.cmdlets.utility.common import (
    NO_INPUT,
    Collecting,
    input_object,
    input_parameter,
)
from casarray.shell.formatting import (
    FormattedOutput,
    format_list,
    format_table,
    out_string,
    write_lines,
)
from casarray.shell.formatting import Formatter as _Formatter
from casarray.shell.properties import property_names
from casarray.shell.values import ShellRuntimeError, get_member, is_collection, to_string, type_name

# -- Format-Table, Format-List ---------------------------------------------------------------


@register
class FormatTable(Collecting):
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
        input_parameter(),
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
class FormatList(Collecting):
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
        input_parameter(),
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
        input_parameter(),
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
        item = input_object(params)
        if item is NO_INPUT:
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
    parameters = (input_parameter("The objects to discard."),)
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
    aliases: ClassVar[tuple[str, ...]] = ("oh",)
    parameters: ClassVar[tuple[Parameter, ...]] = (
        Parameter("Paging", kind="switch", help="Accepted and ignored."),
        input_parameter(),
    )
    synopsis = "Sends output to the command line."
    description = "Displays its input as the shell displays the output of a command (Out-Default)."
    examples = (Example("Get-ExchangeServer | Out-Host", "Displays the servers."),)

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.formatter = _Formatter(width=self.session.host.width, session=self.session)
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = input_object(params)
        if item is not NO_INPUT:
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
    parameters = (input_parameter(),)
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
        item = input_object(params)
        if item is not NO_INPUT and item is not None:
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
            text = separator.join(to_string(v) for v in value or ())
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
        input_parameter("The objects to export, one row each."),
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
        item = input_object(params)
        if not self.allowed or item is NO_INPUT or self.writer is None:
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
