"""The pipeline: commands chained as generators, so output streams from one to the next
(`Get-MailboxDatabase | Set-MailboxDatabase ...` starts writing before the whole list
is read) and a command that needs no more input (Select-Object -First) stops the ones
before it. Each command is looked up, bound (`binding`), then run: begin, process once
per input object (once without input), end; or stopped() when the pipeline ends early.

Errors a cmdlet raises from its blocks are written here, as PowerShell writes them:
non-terminating from process() (the next object still runs), terminating from
begin() and end(); -ErrorAction, -ErrorVariable and -OutVariable are applied here,
not by cmdlets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from casarray.shell import ast
from casarray.shell.binding import Invocation, bind_input, bind_static, check_mandatory
from casarray.shell.cmdlet import COMMANDS, Cmdlet, StopUpstream, load_commands
from casarray.shell.errors import ErrorRecord, TerminatingError, record_from_exception
from casarray.shell.values import enumerate_value, is_collection

if TYPE_CHECKING:
    from casarray.shell.runtime import Session


def run_pipeline(
    session: Session, node: ast.Pipeline, input_stream: Iterable[Any] | None = None
) -> Iterator[Any]:
    """The output of a pipeline, lazily: each command is a generator over the output
    of the one before it (over `input_stream` for the first, when given)."""
    stream: Iterator[Any] | None = iter(input_stream) if input_stream is not None else None
    for element in node.elements:
        if isinstance(element, ast.CommandExpression):
            value = session.evaluator.evaluate(element.expression)
            stream = enumerate_value(value)
        else:
            stream = command_stream(session, element, stream)
    return stream if stream is not None else iter(())


def lookup_command(node: ast.Command, source: str) -> tuple[type[Cmdlet], ast.Command]:
    """The cmdlet a command names. Text pasted from the web sometimes glues the
    first parameter to the name (`New-clientaccessarray-name "X"`, as in the seed);
    a name that is no cmdlet but starts with one followed by a dash is read as that
    cmdlet and a parameter."""
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
                source=source,
                error_id="CommandNotFoundException",
            )
        )
    return cls, node


def command_stream(
    session: Session, node: ast.Command, upstream: Iterator[Any] | None
) -> Iterator[Any]:
    """One command of a pipeline, bound, as a generator over `upstream` (None: the
    command is first and runs once without input)."""
    cls, node = lookup_command(node, session.source)
    invocation = bind_static(cls, node, session.evaluator.evaluate, session.source)
    return _run_command(session, invocation, upstream)


def _run_command(
    session: Session, invocation: Invocation, upstream: Iterator[Any] | None
) -> Iterator[Any]:
    cmdlet = invocation.cls(session, invocation)

    def fail(exc: BaseException, terminating: bool) -> None:
        cmdlet_error(session, cmdlet, exc, terminating=terminating)

    ended = False
    try:
        yield from _run_blocks(session, cmdlet, invocation, upstream, fail)
        ended = True
    finally:
        if not ended and invocation.began:
            cmdlet.stopped()


def _run_blocks(
    session: Session,
    cmdlet: Cmdlet,
    invocation: Invocation,
    upstream: Iterator[Any] | None,
    fail: Callable[[BaseException, bool], None],
) -> Iterator[Any]:
    try:
        if upstream is None:
            check_mandatory(invocation, invocation.static, piped=False)
        else:
            check_mandatory(invocation, invocation.static, piped=True)
        invocation.began = True
        yield from _outputs(session, invocation, cmdlet.begin(invocation.static))
    except TerminatingError:
        raise
    except Exception as exc:
        fail(exc, True)
        return
    if upstream is None:
        try:
            yield from _outputs(session, invocation, cmdlet.process(invocation.static))
        except TerminatingError:
            raise
        except StopUpstream:
            pass
        except Exception as exc:
            fail(exc, False)
    else:
        for item in upstream:
            try:
                bound = bind_input(invocation, item)
                check_mandatory(invocation, bound, piped=False)
                yield from _outputs(session, invocation, cmdlet.process(bound))
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
        yield from _outputs(session, invocation, cmdlet.end())
    except TerminatingError:
        raise
    except Exception as exc:
        fail(exc, True)


def _error_record(session: Session, cmdlet: Cmdlet, exc: BaseException) -> ErrorRecord:
    node = getattr(cmdlet.invocation, "node", None)
    record = record_from_exception(exc, cmdlet.name, getattr(node, "pos", None), session.source)
    if record.command is None:
        record.command = cmdlet.name
    return record


def terminating_error(session: Session, cmdlet: Cmdlet, exc: BaseException) -> TerminatingError:
    """The exception that stops the statement with `exc` as `cmdlet`'s error."""
    return TerminatingError(_error_record(session, cmdlet, exc))


def cmdlet_error(
    session: Session, cmdlet: Cmdlet, exc: BaseException, *, terminating: bool
) -> None:
    """Write a cmdlet's error, honouring -ErrorAction and -ErrorVariable; raise
    TerminatingError when it is terminating or under -ErrorAction Stop."""
    invocation: Invocation | None = cmdlet.invocation
    common = invocation.common if invocation is not None else {}
    error_action = common.get(
        "ErrorAction", str(session.global_scope.lookup("ErrorActionPreference") or "Continue")
    )
    record = _error_record(session, cmdlet, exc)
    silent = error_action in ("SilentlyContinue", "Ignore")
    if terminating or error_action == "Stop":
        if silent and not terminating:
            record.category = "_silent"
        raise TerminatingError(record)
    session.report(record, silent=silent)
    variable = common.get("ErrorVariable")
    if variable:
        session.scope.set(str(variable).lstrip("+"), [record])


def _outputs(
    session: Session, invocation: Invocation, produced: Iterable[Any] | None
) -> Iterator[Any]:
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
        session.scope.set(variable.lstrip("+"), collected)
