"""Test support for the tests of the session and its pieces (evaluator, binding,
pipeline, errors): a session writing to string buffers, and test-only cmdlets that
count what they pull, take a few objects, or record the parameters they were bound
with (`SEEN`).

Not a conftest: the test modules import what they use."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

from casarray.shell.cmdlet import Cmdlet, Parameter, StopUpstream, register
from casarray.shell.runtime import Host, Session

PULLED: list[int] = []
SEEN: list[Any] = []


@register
class CountCmdlet(Cmdlet):
    name = "Test-Count"
    parameters = (Parameter("Limit", kind="int", position=0),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        limit = params.get("Limit", 1_000_000)
        for i in range(1, limit + 1):
            PULLED.append(i)
            yield i


@register
class TakeCmdlet(Cmdlet):
    name = "Test-Take"
    parameters = (
        Parameter("InputObject", kind="object", from_pipeline=True),
        Parameter("Count", kind="int", mandatory=True, position=0),
    )

    def begin(self, params: Mapping[str, Any]) -> Iterable[Any]:
        self.left = params["Count"]
        return ()

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        if self.left <= 0:
            raise StopUpstream
        self.left -= 1
        yield params["InputObject"]


@register
class ThingCmdlet(Cmdlet):
    name = "Set-TestThing"
    supports_should_process = True
    confirm_impact = "High"
    parameters = (
        Parameter("Identity", kind="identity", position=0, from_pipeline=True, mandatory=True),
        Parameter("Database", kind="string"),
        Parameter("DatabaseCopy", kind="string"),
        Parameter("Count", kind="int"),
        Parameter("Enabled", kind="bool"),
        Parameter("Force", kind="switch"),
        Parameter("Mode", kind="enum", choices=("Single", "Multiple")),
        Parameter("Tags", kind="strings", aliases=("Labels",)),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        target = str(params["Identity"])
        if target == "boom":
            from casarray.directory.errors import NotFoundError

            raise NotFoundError("thing", target)
        if self.should_process(target):
            SEEN.append(dict(params))
        return ()


@register
class ByNameCmdlet(Cmdlet):
    name = "Get-TestByName"
    parameters = (Parameter("Name", from_pipeline_by_name=True, mandatory=True),)

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        yield f"name={params['Name']}"


class Run:
    def __init__(self, stdin: str = "") -> None:
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.session = Session(
            host=Host(self.out, self.err, io.StringIO(stdin), terminal=False, width=100)
        )
        PULLED.clear()
        SEEN.clear()

    def __call__(self, source: str) -> str:
        self.ok = self.session.run(source)
        return self.out.getvalue()


def lines(source: str) -> list[str]:
    run = Run()
    return [line for line in run(source).splitlines() if line]
