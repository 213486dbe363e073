"""A shell session: what one `casarray shell` (or one lab walkthrough) runs in. The
`Session` holds the state (variables in scopes, $Error, the source being run), the
services cmdlets use (the directory, the host they write to, -WhatIf/-Confirm) and
runs scripts; the work is done by the pieces around it:

- `parser`: source text to a syntax tree (`ast`);
- `evaluator`: statements and expressions;
- `pipeline`: commands chained as generators, their errors and -ErrorAction;
- `binding`: parameters bound and converted, the common parameters;
- `errors`: error records as PowerShell lays them out;
- `variables`: scopes and the special variables.

`Host` is where the session writes (output, errors, warnings) and reads answers to
confirmation prompts."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any

from casarray.shell.errors import ErrorRecord, TerminatingError
from casarray.shell.evaluator import Evaluator
from casarray.shell.pipeline import cmdlet_error, terminating_error
from casarray.shell.values import ScriptBlockValue, truthy
from casarray.shell.variables import MISSING, Scope, get_variable, set_variable

if TYPE_CHECKING:
    from casarray.directory import Directory
    from casarray.shell.binding import Invocation
    from casarray.shell.cmdlet import Cmdlet


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


# -- the session ---------------------------------------------------------------


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
        self.evaluator = Evaluator(self)

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
            self.report(
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
                self.evaluator.run_statement(statement, top_level=True)
        finally:
            self.source = previous
        return len(self.errors) == errors_before

    def report(self, record: ErrorRecord, *, silent: bool = False) -> None:
        """Add an error to $Error and (unless `silent`) write it to the host."""
        self.errors.append(record)
        error_list = self.global_scope.lookup("Error")
        if isinstance(error_list, list):
            error_list.insert(0, record)
        if not silent:
            self.host.write_error(record.format())

    # -- variables, script blocks and errors, for cmdlets and formatting ------

    def get_variable(self, name: str) -> Any:
        return get_variable(self.scope, name)

    def set_variable(self, name: str, value: Any) -> None:
        set_variable(self.scope, name, value)

    def invoke_scriptblock(
        self, block: ScriptBlockValue, dollar_underscore: Any = MISSING, args: Iterable[Any] = ()
    ) -> list[Any]:
        """Run a script block in a child scope (with `$_` set when given) and return
        its output."""
        return self.evaluator.invoke_scriptblock(block, dollar_underscore, args)

    def scriptblock_value(self, block: ScriptBlockValue, item: Any) -> Any:
        """The single value a script block yields for `item` (None, one, or a list)."""
        return self.evaluator.scriptblock_value(block, item)

    def terminating_error(self, cmdlet: Cmdlet, exc: BaseException) -> TerminatingError:
        return terminating_error(self, cmdlet, exc)

    def cmdlet_error(self, cmdlet: Cmdlet, exc: BaseException, *, terminating: bool) -> None:
        """Write a cmdlet's error, honouring -ErrorAction and -ErrorVariable; raise
        TerminatingError when it is terminating or under -ErrorAction Stop."""
        cmdlet_error(self, cmdlet, exc, terminating=terminating)
