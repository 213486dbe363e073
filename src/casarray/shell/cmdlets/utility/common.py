"""What the utility cmdlets share: the -InputObject parameter and how to tell "no
input" from $null, argument checks and messages, and `Collecting`, the base of the
cmdlets that read all their input before they output anything."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.shell.cmdlet import Cmdlet, Parameter
from casarray.shell.values import ShellRuntimeError

INPUT_HELP = "The objects to process; usually they come from the pipeline."
NO_INPUT = object()


def input_object(params: Mapping[str, Any]) -> Any:
    """The pipeline object being processed, or NO_INPUT when the command runs
    without input (first in a pipeline, no -InputObject)."""
    return params.get("InputObject", NO_INPUT)


def input_parameter(help_text: str = INPUT_HELP, position: int | None = None) -> Parameter:
    return Parameter(
        "InputObject", kind="object", from_pipeline=True, position=position, help=help_text
    )


def not_negative(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise ShellRuntimeError(
            f"Cannot validate argument on parameter '{name}'. The {value} argument is less "
            "than the minimum allowed range of 0. Supply an argument that is greater than or "
            "equal to 0 and then try the command again.",
            category="InvalidData",
        )


PARAMETER_SET = "Parameter set cannot be resolved using the specified named parameters."


class Collecting(Cmdlet):
    """A cmdlet that reads all its input before it outputs anything."""

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.params = dict(params)
        self.items: list[Any] = []
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        item = input_object(params)
        if item is not NO_INPUT:
            self.items.append(item)
        return ()
