"""Every error casarray raises on purpose derives from `casarray.errors.CasarrayError`,
so the shell shows it as an error record and a command line as one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import casarray
from casarray.errors import CasarrayError

# Exceptions that are control flow, not errors: none of them reaches a user.
CONTROL_FLOW = {
    "casarray.access.imap.selected.MailboxGone",  # ends a session whose mailbox went
    "casarray.shell.cmdlet.StopUpstream",  # Select-Object -First stops the pipeline
    "casarray.shell.errors.TerminatingError",  # carries an error record already made
    "casarray.lab.walkthrough.StepFailed",  # ends the walkthrough at a failed step
    "casarray.lab.soak.imap_wire.NotSent",  # a soak client's command never left: failed
    "casarray.lab.soak.imap_wire.NoAnswer",  # it left and no answer came: unknown
}


def defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(casarray.__path__, "casarray."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found[f"{module.__name__}.{name}"] = value
    return found


def test_every_public_error_derives_from_casarray_error() -> None:
    exceptions = defined_exceptions()
    assert "casarray.directory.errors.NotFoundError" in exceptions  # the walk finds them
    outside = sorted(
        name
        for name, cls in exceptions.items()
        if not issubclass(cls, CasarrayError) and name not in CONTROL_FLOW
    )
    assert outside == []


def test_control_flow_exceptions_are_still_there() -> None:
    assert set(defined_exceptions()) >= CONTROL_FLOW
