"""The evaluator: runs a parsed script in a session. Pipelines stream: each command is
a generator over its input, so `Get-MailboxDatabase | Set-MailboxDatabase ...` starts
writing before the whole list is read. Parameter binding follows PowerShell: named
(any unambiguous prefix, or an alias), positional, then per pipeline object by value
and by property name; common parameters (-WhatIf, -Confirm, -ErrorAction, ...) are
handled here, not by cmdlets."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from casarray.errors import CasarrayError
from casarray.shell import ast
from casarray.shell.cmdlet import COMMANDS, Cmdlet, Parameter, StopUpstream
from casarray.shell.operators import binary, unary
from casarray.shell.psobject import PSObject
from casarray.shell.values import (
    ScriptBlockValue,
    SecureString,
    ShellRuntimeError,
    call_method,
    enumerate_value,
    get_member,
    is_collection,
    set_member,
    to_string,
    truthy,
    type_name,
)

if TYPE_CHECKING:
    from casarray.directory import Directory

ERROR_ACTIONS = ("Continue", "SilentlyContinue", "Stop", "Inquire", "Ignore")
_MISSING = object()


# -- errors ----------------------------------------------------------------------


@dataclass
class ErrorRecord:
    """An error as PowerShell shows it: message, where, category, target."""

    message: str
    category: str = "NotSpecified"
    command: str | None = None
    target: str | None = None
    exception: str = "RuntimeException"
    pos: int | None = None
    source: str | None = None
    error_id: str | None = None

    def location(self) -> tuple[int, int, str] | None:
        if self.pos is None or self.source is None:
            return None
        before = self.source[: self.pos]
        line = before.count("\n") + 1
        start = before.rfind("\n") + 1
        end = self.source.find("\n", self.pos)
        text = self.source[start : end if end != -1 else len(self.source)]
        return line, self.pos - start + 1, text

    def format(self) -> str:
        head = f"{self.command} : {self.message}" if self.command else self.message
        lines = [head]
        where = self.location()
        if where is not None:
            line, column, text = where
            lines.append(f"At line:{line} char:{column}")
            lines.append(f"+ {text}")
            lines.append("+ " + " " * (column - 1) + "~" * max(1, len(text) - column + 1))
        target = self.target if self.target is not None else ""
        kind = "String" if self.target is not None else ""
        info = f"{self.category}: ({target}:{kind}) [{self.command or ''}], {self.exception}"
        lines.append(f"    + CategoryInfo          : {info}")
        error_id = self.error_id or (
            f"{self.exception},{self.command}" if self.command else self.exception
        )
        lines.append(f"    + FullyQualifiedErrorId : {error_id}")
        return "\n".join(lines)


class TerminatingError(Exception):
    """Stops the current statement; carries the record to show."""

    def __init__(self, record: ErrorRecord) -> None:
        super().__init__(record.message)
        self.record = record


def record_from_exception(
    exc: BaseException, command: str | None, pos: int | None, source: str | None
) -> ErrorRecord:
    if isinstance(exc, TerminatingError):
        return exc.record
    if isinstance(exc, CasarrayError):
        return ErrorRecord(
            exc.message,
            category=exc.category,
            command=command,
            target=exc.target,
            exception=type(exc).__name__,
            pos=pos,
            source=source,
        )
    if isinstance(exc, ShellRuntimeError):
        return ErrorRecord(
            exc.message,
            category=exc.category,
            command=command,
            exception="RuntimeException",
            pos=exc.pos if exc.pos is not None else pos,
            source=source,
        )
    return ErrorRecord(
        f"{type(exc).__name__}: {exc}",
        command=command,
        exception=type(exc).__name__,
        pos=pos,
        source=source,
    )


# -- host ------------------------------------------------------------------------


class Host:
    """Where the shell writes and from where it reads confirmations."""

    def __init__(
        self,
        out: IO[str] | None = None,
        err: IO[str] | None = None,
        stdin: IO[str] | None = None,
        *,
        terminal: bool | None = None,
        width: int | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stdin = stdin if stdin is not None else sys.stdin
        if terminal is None:
            terminal = bool(getattr(self.out, "isatty", lambda: False)())
        self.is_terminal = terminal
        if width is None:
            try:
                width = os.get_terminal_size(self.out.fileno()).columns if terminal else 120
            except (OSError, ValueError, AttributeError):
                width = 120
        self.width = width

    def write(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def write_error(self, text: str) -> None:
        if self.is_terminal:
            text = f"\x1b[91m{text}\x1b[0m"
        self.err.write(text + "\n")
        self.err.flush()

    def write_warning(self, text: str) -> None:
        line = f"WARNING: {text}"
        if self.is_terminal:
            line = f"\x1b[93m{line}\x1b[0m"
        self.out.write(line + "\n")
        self.out.flush()

    def prompt(self, text: str) -> str | None:
        """Show `text` and read one line; None at end of input."""
        self.out.write(text)
        self.out.flush()
        line = self.stdin.readline() if self.stdin is not None else ""
        if not line:
            self.out.write("\n")
            return None
        return line.rstrip("\r\n")


# -- scopes ----------------------------------------------------------------------


class Scope:
    def __init__(self, parent: Scope | None = None) -> None:
        self.parent = parent
        self.variables: dict[str, Any] = {}

    def lookup(self, name: str) -> Any:
        key = name.lower()
        scope: Scope | None = self
        while scope is not None:
            if key in scope.variables:
                return scope.variables[key]
            scope = scope.parent
        return _MISSING

    def set(self, name: str, value: Any) -> None:
        self.variables[name.lower()] = value


# -- invocation of one command ---------------------------------------------------


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


# -- the session -----------------------------------------------------------------


class Session:
    """A shell session: variables, the directory it manages, the host it talks to."""

    def __init__(
        self,
        directory_url: str | None = None,
        host: Host | None = None,
        *,
        directory: Directory | None = None,
    ) -> None:
        self.directory_url = directory_url
        self.host = host or Host()
        self._directory = directory
        self.global_scope = Scope()
        self.scope = self.global_scope
        self.errors: list[ErrorRecord] = []
        self.source = ""
        self.global_scope.set("Error", [])
        self.global_scope.set("ConfirmPreference", "High")
        self.global_scope.set("WhatIfPreference", False)
        self.global_scope.set("ErrorActionPreference", "Continue")

    # -- services for cmdlets -----------------------------------------------

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            from casarray.directory import Directory

            self._directory = Directory.open(self.directory_url)
        return self._directory

    def close(self) -> None:
        if self._directory is not None:
            self._directory.close()
            self._directory = None

    def write_warning(self, message: str) -> None:
        self.host.write_warning(message)

    def write_verbose(self, message: str) -> None:
        if truthy(self.global_scope.lookup("VerbosePreference") == "Continue"):
            self.host.write(f"VERBOSE: {message}")

    def should_process(self, cmdlet: Cmdlet, target: str, operation: str) -> bool:
        invocation: Invocation | None = cmdlet.invocation
        common = invocation.common if invocation else {}
        what_if = common.get("WhatIf", truthy(self.global_scope.lookup("WhatIfPreference")))
        if what_if:
            self.host.write(
                f'What if: Performing the operation "{operation}" on target "{target}".'
            )
            return False
        if "Confirm" in common:
            ask = bool(common["Confirm"])
        else:
            preference = str(self.global_scope.lookup("ConfirmPreference") or "High").lower()
            levels = {"none": 99, "low": 1, "medium": 2, "high": 3}
            ask = levels.get(cmdlet.confirm_impact.lower(), 2) >= levels.get(preference, 3)
        if not ask:
            return True
        if invocation is not None and invocation.confirm_state == "all":
            return True
        if invocation is not None and invocation.confirm_state == "none":
            return False
        question = (
            "\nConfirm\nAre you sure you want to perform this action?\n"
            f'Performing the operation "{operation}" on target "{target}".\n'
            '[Y] Yes [A] Yes to All [N] No [L] No to All [?] Help (default is "Y"): '
        )
        while True:
            answer = self.host.prompt(question)
            if answer is None:
                self.host.write_warning(
                    "No answer to the confirmation prompt (end of input): not performed. "
                    "Use -Confirm:$false to run without asking."
                )
                if invocation is not None:
                    invocation.confirm_state = "none"
                return False
            choice = answer.strip().lower() or "y"
            if choice == "y":
                return True
            if choice == "a":
                if invocation is not None:
                    invocation.confirm_state = "all"
                return True
            if choice == "n":
                return False
            if choice == "l":
                if invocation is not None:
                    invocation.confirm_state = "none"
                return False
            self.host.write(
                "Y - Continue with only the next step of the operation.\n"
                "A - Continue with all the steps of the operation.\n"
                "N - Skip this operation and proceed to the next operation.\n"
                "L - Skip this operation and all subsequent operations."
            )

    # -- running -----------------------------------------------------------

    def run(self, source: str) -> bool:
        """Parse and run `source`, writing output to the host. False when any error
        (parse, terminating or not) was written."""
        from casarray.shell.parser import ParseError, parse

        errors_before = len(self.errors)
        try:
            script = parse(source)
        except ParseError as exc:
            self._report(
                ErrorRecord(
                    exc.message,
                    category="ParserError",
                    exception="ParseException",
                    pos=exc.pos,
                    source=source,
                    error_id=type(exc).__name__,
                )
            )
            return False
        previous, self.source = self.source, source
        try:
            for statement in script.statements:
                self.run_statement(statement, top_level=True)
        finally:
            self.source = previous
        return len(self.errors) == errors_before

    def _report(self, record: ErrorRecord, *, silent: bool = False) -> None:
        self.errors.append(record)
        error_list = self.global_scope.lookup("Error")
        if isinstance(error_list, list):
            error_list.insert(0, record)
        if not silent:
            self.host.write_error(record.format())

    def run_statement(self, statement: ast.Statement, *, top_level: bool = False) -> list[Any]:
        """Run one statement; at top level its output goes to Out-Default, otherwise it
        is returned."""
        try:
            if isinstance(statement, ast.Assignment):
                self.assign(statement)
                return []
            stream = self.pipeline(statement)
            if top_level:
                from casarray.shell.formatting import out_default

                out_default(self, stream)
                return []
            return list(stream)
        except TerminatingError as exc:
            self._report(exc.record, silent=exc.record.category == "_silent")
        except RecursionError:
            self._report(
                ErrorRecord(
                    "The script failed due to call depth overflow.",
                    category="InvalidOperation",
                    pos=statement.pos,
                    source=self.source,
                )
            )
        except Exception as exc:  # an evaluation error stops the statement
            self._report(record_from_exception(exc, None, statement.pos, self.source))
        return []

    def run_script(self, script: ast.Script) -> list[Any]:
        out: list[Any] = []
        for statement in script.statements:
            out.extend(self.run_inner(statement))
        return out

    def run_inner(self, statement: ast.Statement) -> list[Any]:
        """A statement inside an expression: errors propagate to the caller."""
        if isinstance(statement, ast.Assignment):
            self.assign(statement)
            return []
        return list(self.pipeline(statement))

    # -- pipelines ----------------------------------------------------------

    def pipeline(
        self, node: ast.Pipeline, input_stream: Iterable[Any] | None = None
    ) -> Iterator[Any]:
        stream: Iterator[Any] | None = iter(input_stream) if input_stream is not None else None
        for element in node.elements:
            if isinstance(element, ast.CommandExpression):
                value = self.evaluate(element.expression)
                stream = enumerate_value(value)
            else:
                stream = self.command_stream(element, stream)
        return stream if stream is not None else iter(())

    def lookup_command(self, node: ast.Command) -> tuple[type[Cmdlet], ast.Command]:
        """The cmdlet a command names. Text pasted from the web sometimes glues the
        first parameter to the name (`New-clientaccessarray-name "X"`, as in the seed);
        a name that is no cmdlet but starts with one followed by a dash is read as that
        cmdlet and a parameter."""
        from casarray.shell.commands import load_commands

        load_commands()
        cls = COMMANDS.get(node.name.lower())
        if cls is None:
            lower = node.name.lower()
            glued = [name for name in COMMANDS if lower.startswith(name + "-") and "-" in name]
            if glued:
                name = max(glued, key=len)
                rest = node.name[len(name) + 1 :]
                parameter = ast.CommandParameter(node.pos + len(name), rest)
                node = ast.Command(node.pos, node.name[: len(name)], (parameter, *node.elements))
                cls = COMMANDS[name]
        if cls is None:
            raise TerminatingError(
                ErrorRecord(
                    f"The term '{node.name}' is not recognized as the name of a cmdlet, "
                    "function, script file, or operable program. Check the spelling of the "
                    "name, or if a path was included, verify that the path is correct and try "
                    "again.",
                    category="ObjectNotFound",
                    target=node.name,
                    exception="CommandNotFoundException",
                    pos=node.pos,
                    source=self.source,
                    error_id="CommandNotFoundException",
                )
            )
        return cls, node

    def bind_static(self, node: ast.Command) -> Invocation:
        cls, node = self.lookup_command(node)
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
                        value = self.evaluate(element.argument)
                    elif param.kind == "switch":
                        value = True
                    elif i + 1 < len(elements) and not isinstance(
                        elements[i + 1], ast.CommandParameter
                    ):
                        i += 1
                        value = self.evaluate(elements[i])
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
                value = self.evaluate(expr)
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
                    source=self.source,
                )
            ) from None
        return invocation

    def _check_mandatory(
        self, invocation: Invocation, bound: dict[str, Any], *, piped: bool
    ) -> None:
        missing = [
            p.name
            for p in invocation.cls.parameters
            if p.mandatory
            and p.name not in bound
            and not (
                piped
                and (p.from_pipeline or p.from_pipeline_by_name)
                and bound is invocation.static
            )
        ]
        if missing:
            raise ShellRuntimeError(
                "Cannot process command because of one or more missing mandatory parameters: "
                f"{' '.join(missing)}.",
                invocation.node.pos,
                "InvalidArgument",
            )

    def bind_input(self, invocation: Invocation, item: Any) -> dict[str, Any]:
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
                    if value is not _MISSING:
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

    def command_stream(self, node: ast.Command, upstream: Iterator[Any] | None) -> Iterator[Any]:
        invocation = self.bind_static(node)
        return self._run_command(invocation, upstream)

    def _run_command(self, invocation: Invocation, upstream: Iterator[Any] | None) -> Iterator[Any]:
        cmdlet = invocation.cls(self, invocation)

        def fail(exc: BaseException, terminating: bool) -> None:
            self.cmdlet_error(cmdlet, exc, terminating=terminating)

        ended = False
        try:
            yield from self._run_blocks(cmdlet, invocation, upstream, fail)
            ended = True
        finally:
            if not ended and invocation.began:
                cmdlet.stopped()

    def _run_blocks(
        self,
        cmdlet: Cmdlet,
        invocation: Invocation,
        upstream: Iterator[Any] | None,
        fail: Callable[[BaseException, bool], None],
    ) -> Iterator[Any]:
        try:
            if upstream is None:
                self._check_mandatory(invocation, invocation.static, piped=False)
            else:
                self._check_mandatory(invocation, invocation.static, piped=True)
            invocation.began = True
            yield from self._outputs(invocation, cmdlet.begin(invocation.static))
        except TerminatingError:
            raise
        except Exception as exc:
            fail(exc, True)
            return
        if upstream is None:
            try:
                yield from self._outputs(invocation, cmdlet.process(invocation.static))
            except TerminatingError:
                raise
            except StopUpstream:
                pass
            except Exception as exc:
                fail(exc, False)
        else:
            for item in upstream:
                try:
                    bound = self.bind_input(invocation, item)
                    self._check_mandatory(invocation, bound, piped=False)
                    yield from self._outputs(invocation, cmdlet.process(bound))
                except TerminatingError:
                    raise
                except StopUpstream:
                    close = getattr(upstream, "close", None)
                    if close is not None:
                        close()
                    break
                except Exception as exc:
                    fail(exc, False)
        try:
            yield from self._outputs(invocation, cmdlet.end())
        except TerminatingError:
            raise
        except Exception as exc:
            fail(exc, True)

    def _error_record(self, cmdlet: Cmdlet, exc: BaseException) -> ErrorRecord:
        node = getattr(cmdlet.invocation, "node", None)
        record = record_from_exception(exc, cmdlet.name, getattr(node, "pos", None), self.source)
        if record.command is None:
            record.command = cmdlet.name
        return record

    def terminating_error(self, cmdlet: Cmdlet, exc: BaseException) -> TerminatingError:
        return TerminatingError(self._error_record(cmdlet, exc))

    def cmdlet_error(self, cmdlet: Cmdlet, exc: BaseException, *, terminating: bool) -> None:
        """Write a cmdlet's error, honouring -ErrorAction and -ErrorVariable; raise
        TerminatingError when it is terminating or under -ErrorAction Stop."""
        invocation: Invocation | None = cmdlet.invocation
        common = invocation.common if invocation is not None else {}
        error_action = common.get(
            "ErrorAction", str(self.global_scope.lookup("ErrorActionPreference") or "Continue")
        )
        record = self._error_record(cmdlet, exc)
        silent = error_action in ("SilentlyContinue", "Ignore")
        if terminating or error_action == "Stop":
            if silent and not terminating:
                record.category = "_silent"
            raise TerminatingError(record)
        self._report(record, silent=silent)
        variable = common.get("ErrorVariable")
        if variable:
            self.scope.set(str(variable).lstrip("+"), [record])

    def _outputs(self, invocation: Invocation, produced: Iterable[Any] | None) -> Iterator[Any]:
        if produced is None:
            return
        variable = invocation.common.get("OutVariable")
        collected: list[Any] | None = [] if variable else None
        for value in produced:
            for item in enumerate_value(value) if is_collection(value) else [value]:
                if collected is not None:
                    collected.append(item)
                yield item
        if variable and collected is not None:
            self.scope.set(variable.lstrip("+"), collected)

    # -- script blocks -------------------------------------------------------

    def invoke_scriptblock(
        self, block: ScriptBlockValue, dollar_underscore: Any = _MISSING, args: Iterable[Any] = ()
    ) -> list[Any]:
        """Run a script block in a child scope (with `$_` set when given) and return
        its output."""
        parent = block.scope if isinstance(block.scope, Scope) else self.scope
        scope = Scope(parent)
        if dollar_underscore is not _MISSING:
            scope.set("_", dollar_underscore)
            scope.set("PSItem", dollar_underscore)
        scope.set("args", list(args))
        previous, self.scope = self.scope, scope
        try:
            return self.run_script(block.node.body)
        finally:
            self.scope = previous

    def scriptblock_value(self, block: ScriptBlockValue, item: Any) -> Any:
        """The single value a script block yields for `item` (None, one, or a list)."""
        out = self.invoke_scriptblock(block, item)
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    # -- variables -----------------------------------------------------------

    def get_variable(self, name: str, pos: int | None = None) -> Any:
        lower = name.lower()
        if lower == "true":
            return True
        if lower == "false":
            return False
        if lower == "null":
            return None
        if lower.startswith("env:"):
            return os.environ.get(name[4:])
        value = self.scope.lookup(name)
        return None if value is _MISSING else value

    def set_variable(self, name: str, value: Any) -> None:
        lower = name.lower()
        if lower in ("true", "false", "null"):
            raise ShellRuntimeError(
                f"Cannot overwrite variable {name} because it is read-only or constant.",
                category="WriteError",
            )
        if lower.startswith("env:"):
            os.environ[name[4:]] = to_string(value)
            return
        self.scope.set(name, value)

    def assign(self, node: ast.Assignment) -> None:
        produced = self.run_inner(node.value)
        value: Any = None if not produced else produced[0] if len(produced) == 1 else produced
        if (
            len(node.value.elements) == 1
            and isinstance(node.value.elements[0], ast.CommandExpression)
            and len(produced) != 1
        ):
            value = self.evaluate(node.value.elements[0].expression)
        if node.operator != "=":
            current = self.evaluate(node.target)
            value = binary(node.operator[0], current, value, self)
        target = node.target
        if isinstance(target, ast.Variable):
            self.set_variable(target.name, value)
        elif isinstance(target, ast.MemberAccess):
            member = (
                target.member
                if isinstance(target.member, str)
                else to_string(self.evaluate(target.member))
            )
            set_member(self.evaluate(target.target), member, value)
        elif isinstance(target, ast.Index):
            container = self.evaluate(target.target)
            index = self.evaluate(target.index)
            if isinstance(container, list):
                container[int(index)] = value
            elif isinstance(container, dict):
                set_member(container, to_string(index), value)
            else:
                raise ShellRuntimeError("Unable to index into this object.", target.pos)
        else:
            raise ShellRuntimeError(
                "The assignment expression is not valid. The input to an assignment operator "
                "must be an object that is able to accept assignments, such as a variable or a "
                "property.",
                node.pos,
            )

    # -- expressions ----------------------------------------------------------

    def evaluate(self, node: Any) -> Any:
        method: Callable[[Any], Any] | None = getattr(self, "_eval_" + type(node).__name__, None)
        if method is None:
            raise ShellRuntimeError(f"Cannot evaluate {type(node).__name__}.", node.pos)
        try:
            return method(node)
        except ShellRuntimeError as exc:
            if exc.pos is None:
                exc.pos = node.pos
            raise

    def _eval_StringLiteral(self, node: ast.StringLiteral) -> Any:
        return node.value

    def _eval_ExpandableString(self, node: ast.ExpandableString) -> str:
        return "".join(
            part if isinstance(part, str) else to_string(self.evaluate(part)) for part in node.parts
        )

    def _eval_NumberLiteral(self, node: ast.NumberLiteral) -> Any:
        return node.value

    def _eval_Variable(self, node: ast.Variable) -> Any:
        return self.get_variable(node.name, node.pos)

    def _eval_ArrayLiteral(self, node: ast.ArrayLiteral) -> list[Any]:
        return [self.evaluate(item) for item in node.items]

    def _eval_ArrayExpression(self, node: ast.ArrayExpression) -> list[Any]:
        return self.run_script(node.body)

    def _eval_SubExpression(self, node: ast.SubExpression) -> Any:
        out = self.run_script(node.body)
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    def _eval_ParenExpression(self, node: ast.ParenExpression) -> Any:
        elements = node.pipeline.elements
        if len(elements) == 1 and isinstance(elements[0], ast.CommandExpression):
            return self.evaluate(elements[0].expression)
        out = list(self.pipeline(node.pipeline))
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    def _eval_HashLiteral(self, node: ast.HashLiteral) -> dict[Any, Any]:
        table: dict[Any, Any] = {}
        for key_node, value_node in node.entries:
            key = self.evaluate(key_node)
            out = self.run_inner(value_node)
            elements = value_node.elements
            if len(elements) == 1 and isinstance(elements[0], ast.CommandExpression):
                value = self.evaluate(elements[0].expression)
            else:
                value = None if not out else out[0] if len(out) == 1 else out
            if any(str(k).lower() == str(key).lower() for k in table):
                raise ShellRuntimeError(
                    f"Duplicate keys '{key}' are not allowed in hash literals.", key_node.pos
                )
            table[key] = value
        return table

    def _eval_ScriptBlock(self, node: ast.ScriptBlock) -> ScriptBlockValue:
        return ScriptBlockValue(node, self.scope)

    def _member_name(self, member: str | Any) -> str:
        return member if isinstance(member, str) else to_string(self.evaluate(member))

    def _eval_MemberAccess(self, node: ast.MemberAccess) -> Any:
        return get_member(self.evaluate(node.target), self._member_name(node.member))

    def _eval_MethodCall(self, node: ast.MethodCall) -> Any:
        target = self.evaluate(node.target)
        args = [self.evaluate(a) for a in node.arguments]
        return call_method(target, node.member, args)

    def _eval_Index(self, node: ast.Index) -> Any:
        target = self.evaluate(node.target)
        index = self.evaluate(node.index)
        if isinstance(target, dict):
            return get_member(target, to_string(index))
        if isinstance(target, PSObject):
            return target.get(to_string(index))
        if isinstance(target, (list, tuple, str)):
            if is_collection(index):
                return [self._index_one(target, i) for i in index]
            return self._index_one(target, index)
        if target is None:
            raise ShellRuntimeError("Cannot index into a null array.", node.pos)
        return self._index_one([target], index)

    @staticmethod
    def _index_one(target: Any, index: Any) -> Any:
        try:
            return target[int(index)]
        except (IndexError, ValueError, TypeError):
            return None

    def _eval_Unary(self, node: ast.Unary) -> Any:
        return unary(node.operator, self.evaluate(node.operand))

    def _eval_Binary(self, node: ast.Binary) -> Any:
        op = node.operator.lower()
        if op in ("-and", "-or"):
            left = truthy(self.evaluate(node.left))
            if op == "-and" and not left:
                return False
            if op == "-or" and left:
                return True
            return truthy(self.evaluate(node.right))
        return binary(op, self.evaluate(node.left), self.evaluate(node.right), self)

    def _eval_TypeLiteral(self, node: ast.TypeLiteral) -> str:
        return node.name

    def _eval_Cast(self, node: ast.Cast) -> Any:
        return cast(node.type.name, self.evaluate(node.operand), node.pos)


def _property(item: Any, name: str) -> Any:
    if isinstance(item, PSObject):
        return item.get(name) if item.has(name) else _MISSING
    if isinstance(item, dict):
        for key, value in item.items():
            if str(key).lower() == name.lower():
                return value
    return _MISSING


def cast(type_text: str, value: Any, pos: int | None = None) -> Any:
    name = type_text.lower().removeprefix("system.")
    try:
        if name in ("int", "int32", "int64", "long"):
            return int(float(value)) if isinstance(value, str) and "." in value else int(value)
        if name in ("double", "float", "decimal"):
            return float(value)
        if name == "string":
            return to_string(value)
        if name == "bool" or name == "boolean":
            return truthy(value)
        if name in ("array", "object[]", "string[]"):
            items = list(value) if is_collection(value) else ([] if value is None else [value])
            return [to_string(i) for i in items] if name == "string[]" else items
        if name == "hashtable" and isinstance(value, dict):
            return value
        if name == "datetime":
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if name in ("psobject", "pscustomobject", "object"):
            if isinstance(value, dict) and name == "pscustomobject":
                return PSObject(value)
            return value
    except (TypeError, ValueError):
        pass
    else:
        if name not in ("hashtable",):
            raise ShellRuntimeError(f"Unable to find type [{type_text}].", pos, "InvalidOperation")
    raise ShellRuntimeError(
        f'Cannot convert value "{to_string(value)}" to type "{type_text}".', pos, "InvalidArgument"
    )


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
        from casarray.shell.parser import parse_number

        number = parse_number(to_string(value))
        if number is None:
            raise _bind_error(param, value, pos)
        return int(number)
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
