"""`casarray shell`: the Exchange Management Shell of casarray.

    casarray shell                 an interactive prompt ([PS] casarray>)
    casarray shell -c 'COMMANDS'   run commands and exit
    casarray shell FILE.ps1        run a script
    ... | casarray shell           run commands from standard input

The exit status is 1 when any command wrote an error, else 0."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from casarray.shell.runtime import Session

if TYPE_CHECKING:
    from prompt_toolkit.completion import CompleteEvent, Completion
    from prompt_toolkit.document import Document

PROMPT = "[PS] casarray> "
CONTINUATION = ">> "


def run(
    directory: str | None = None,
    command: str | None = None,
    file: str | None = None,
) -> int:
    session = Session(directory_url=directory)
    try:
        if command is not None:
            return 0 if session.run(command) else 1
        if file is not None:
            path = Path(file)
            try:
                source = path.read_text(encoding="utf-8-sig")
            except OSError as exc:
                print(f"casarray shell: cannot read {file}: {exc.strerror}", file=sys.stderr)
                return 2
            return 0 if session.run(source) else 1
        if not sys.stdin.isatty():
            return 0 if session.run(sys.stdin.read()) else 1
        return repl(session)
    finally:
        session.close()


# -- the interactive prompt -------------------------------------------------------


def identity_names(session: Session, kind: str) -> list[str]:
    """Names of the objects an identity parameter of `kind` can name."""
    d = session.directory
    if kind == "site":
        return [s.name for s in d.sites.get()]
    if kind == "subnet":
        return [s.name for s in d.sites.subnets()]
    if kind == "server":
        return [s.name for s in d.servers.get()]
    if kind == "array":
        return [a.name for a in d.arrays.get()] + [a.fqdn for a in d.arrays.get()]
    if kind == "database":
        return [db.name for db in d.databases.get()]
    if kind == "mailbox":
        return [m.alias for m in d.mailboxes.get(limit=500)]
    return []


def _quote(name: str) -> str:
    return f'"{name}"' if any(ch in name for ch in " ,;'\"(){}|") else name


class ShellCompleter:
    """Completes cmdlet names, their parameter names, and identities from the
    directory for identity parameters (and the first positional Identity)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def suggestions(self, line: str) -> tuple[str, list[str]]:
        """(the word being completed, candidates) for the text before the cursor."""
        from casarray.shell.binding import all_parameters
        from casarray.shell.cmdlet import COMMANDS, load_commands

        load_commands()
        segment = line.rsplit("|", 1)[-1].rsplit(";", 1)[-1].lstrip()
        tokens = segment.split()
        word = "" if not segment or segment[-1].isspace() else tokens[-1]
        previous = tokens[:-1] if word else tokens
        if not previous:
            names = sorted({cls.name for cls in COMMANDS.values()})
            return word, [n for n in names if n.lower().startswith(word.lower())]
        cls = COMMANDS.get(previous[0].lower())
        if cls is None:
            return word, []
        if word[:1] and word[0] in "-–—―":
            stem = word[1:].lower()
            return word, [
                "-" + p.name for p in all_parameters(cls) if p.name.lower().startswith(stem)
            ]
        param = None
        if len(previous) > 1 and previous[-1][:1] in "-–—―":
            written = previous[-1][1:].split(":", 1)[0].lower()
            matches = [p for p in cls.parameters if p.name.lower().startswith(written)]
            param = matches[0] if len(matches) == 1 else None
        elif len(previous) == 1:
            param = next((p for p in cls.parameters if p.position == 0), None)
        if param is None:
            return word, []
        if param.choices:
            options = list(param.choices)
        elif param.identity_of:
            try:
                options = identity_names(self.session, param.identity_of)
            except Exception:
                return word, []
        else:
            return word, []
        stem = word.strip("\"'").lower()
        return word, [_quote(o) for o in options if o.lower().startswith(stem)]

    # prompt_toolkit's Completer protocol
    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        from prompt_toolkit.completion import Completion

        word, options = self.suggestions(document.text_before_cursor)
        for option in options:
            yield Completion(option, start_position=-len(word))


def repl(session: Session, *, input: Any = None, output: Any = None) -> int:
    """The interactive prompt. `input`/`output` are prompt_toolkit's (for tests)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, ThreadedCompleter
    from prompt_toolkit.history import FileHistory

    from casarray.config import casarray_home
    from casarray.shell.parser import is_incomplete

    class _Completer(Completer):
        def __init__(self) -> None:
            self.inner = ShellCompleter(session)

        def get_completions(self, document: Document, complete_event: CompleteEvent) -> Any:
            return self.inner.get_completions(document, complete_event)

    home = casarray_home()
    home.mkdir(parents=True, exist_ok=True)
    prompt: PromptSession[str] = PromptSession(
        history=FileHistory(str(home / "shell_history")),
        completer=ThreadedCompleter(_Completer()),
        complete_while_typing=False,
        input=input,
        output=output,
    )
    session.host.write(
        "casarray Exchange Management Shell. Get-Command lists the cmdlets; exit to leave."
    )
    failed = False
    while True:
        lines: list[str] = []
        try:
            while True:
                line = prompt.prompt(PROMPT if not lines else CONTINUATION)
                lines.append(line)
                if not is_incomplete("\n".join(lines)):
                    break
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        source = "\n".join(lines)
        if source.strip().lower() in ("exit", "quit"):
            break
        if source.strip():
            failed = not session.run(source) or failed
    return 1 if failed else 0
