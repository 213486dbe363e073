"""Test support for the utility cmdlet tests: a session on no directory writing to
string buffers, and test-only cmdlets that log what they produce and consume (to see
the pipeline stream).

Not a conftest: the test modules (and this folder's conftest) import what they use."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.psobject import PSObject
from casarray.shell.runtime import Host, Session

ITEM_TYPE = "Casarray.Test.UtilItem"


@register
class GetUtilTestStream(Cmdlet):
    """Yields numbered objects, logging each one it produces (and its end)."""

    name = "Get-UtilTestStream"
    parameters = (Parameter("Count", kind="int", position=0),)
    synopsis = "Test only: a stream of numbered objects."
    examples = (Example("Get-UtilTestStream 10", "Ten objects."),)
    events: ClassVar[list[tuple[str, Any]]] = []

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        try:
            for i in range(params.get("Count", 10)):
                self.events.append(("produce", i))
                yield PSObject({"N": i, "Name": f"item{i}"}, type_name=ITEM_TYPE)
        finally:
            self.events.append(("closed", None))


@register
class AddUtilTestEvent(Cmdlet):
    name = "Add-UtilTestEvent"
    parameters = (Parameter("InputObject", kind="object", from_pipeline=True),)
    synopsis = "Test only: logs each object it receives."
    examples = (Example("1 | Add-UtilTestEvent", "Logs 1."),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        value = params["InputObject"]
        GetUtilTestStream.events.append(("consume", value.get("N")))
        return ()


class Shell:
    def __init__(self, width: int = 120) -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.session = Session(
            host=Host(out=self.out, err=self.err, stdin=io.StringIO(), terminal=False, width=width)
        )

    def run(self, source: str) -> str:
        start = len(self.out.getvalue())
        self.session.run(source)
        return self.out.getvalue()[start:]

    def lines(self, source: str) -> list[str]:
        return self.run(source).splitlines()

    @property
    def messages(self) -> list[str]:
        return [e.message for e in self.session.errors]
