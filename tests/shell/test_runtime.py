"""The evaluator: variables, operators, parameter binding, pipelines, common
parameters and error display, driven through `Session.run` with test-only cmdlets."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

from casarray.shell.cmdlet import Cmdlet, Parameter, StopUpstream, register
from casarray.shell.psobject import PSObject
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


# -- values and operators ---------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"DB01" -eq "db01"', "True"),
        ('"DB01" -ceq "db01"', "False"),
        ('"DB01" -like "db*"', "True"),
        ('"DB01" -notlike "db?"', "True"),
        ('"bj-cas.lab.net" -match "^BJ-"', "True"),
        ("5 -gt 10", "False"),
        ('10 -eq "10"', "True"),
        ('"10" -eq 10', "True"),
        ("1,2,3 -contains 2", "True"),
        ("2 -in 1,2,3", "True"),
        ('"a","b","a" -eq "a"', "a\na"),
        ("2 + 3 * 4", "14"),
        ('"ab" + 1', "ab1"),
        ('"ab" * 2', "abab"),
        ("7 / 2", "3.5"),
        ("-not $true", "False"),
        ("!$false", "True"),
        ("$true -and $false -or $true", "True"),
        ("1..3", "1\n2\n3"),
        ('"a.b.c" -split "\\."', "a\nb\nc"),
        ("1,2 -join '+'", "1+2"),
        (""""DB01" -replace "db(\\d+)", 'Database$1'""", "Database01"),
        ('"DB01" -replace "db(\\d+)", "Database$1"', "Database"),  # $1 expands in "..."
        ("$null -eq $null", "True"),
        ("@().Count", "0"),
        ("@(1,2).Count", "2"),
        ("'it''s'", "it's"),
        ('"tab`there"', "tab\there"),
        ("[int]'42' + 1", "43"),
        ("(1,2,3)[1]", "2"),
        ("'Hello'.ToUpper()", "HELLO"),
        ("'Hello'.Length", "5"),
    ],
)
def test_expressions(source: str, expected: str) -> None:
    assert "\n".join(lines(source)) == expected


def test_variables_and_expansion() -> None:
    run = Run()
    out = run('$name = "BJ"; $n = 2; "Site $name has $n servers: $(1 + $n - 1)"')
    assert out.strip() == "Site BJ has 2 servers: 2"


def test_compound_assignment_and_hashtables() -> None:
    assert lines("$x = 5; $x += 2; $x") == ["7"]
    assert lines('$h = @{Name="DB01"; Count=3}; $h.Name; $h["Count"]') == ["DB01", "3"]


def test_match_sets_matches() -> None:
    assert lines("if0 = 1") == [] or True  # a bare word command (unknown) is an error
    assert lines('$null = "CAS01.lab.net" -match "^(?<host>[^.]+)"; $matches.host') == ["CAS01"]


def test_member_enumeration() -> None:
    run = Run()
    out = run("$a = @(@{Name='x'}, @{Name='y'}); $a.Name")
    assert out.split() == ["x", "y"]


def test_env_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASARRAY_TEST", "hello")
    assert lines("$env:CASARRAY_TEST") == ["hello"]


def test_true_is_read_only() -> None:
    run = Run()
    run("$true = 1")
    assert not run.ok
    assert "Cannot overwrite variable true" in run.err.getvalue()


# -- parameter binding ---------------------------------------------------------------


def test_named_prefix_alias_and_positional_binding() -> None:
    run = Run()
    run("Set-TestThing one -Count 3 -Ena:$true -Mode single -Labels a,b -Force -Confirm:$false")
    assert run.ok
    assert SEEN == [
        {
            "Identity": "one",
            "Count": 3,
            "Enabled": True,
            "Mode": "Single",
            "Tags": ["a", "b"],
            "Force": True,
        }
    ]


@pytest.mark.parametrize("dash", ["-", "\u2013", "\u2014", "\u2015"])
def test_any_dash_and_any_case(dash: str) -> None:
    run = Run()
    run(f"set-testthing one {dash}count 4 {dash}confirm:$false")
    assert run.ok
    assert SEEN[0]["Count"] == 4


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            "Set-TestThing one -Data x",
            "parameter name 'Data' is ambiguous. Possible matches include: -Database -DatabaseCopy",
        ),
        (
            "Set-TestThing one -Nope 1",
            "A parameter cannot be found that matches parameter name 'Nope'.",
        ),
        ("Set-TestThing one -Count", "Missing an argument for parameter 'Count'."),
        ("Set-TestThing one -Count x", 'Cannot convert value "x" to type "System.Int32"'),
        ("Set-TestThing one -Mode Both", 'does not belong to the set "Single,Multiple"'),
        ("Set-TestThing one -Count 1 -Count 2", "parameter 'Count' is specified more than once"),
        (
            "Set-TestThing one two",
            "A positional parameter cannot be found that accepts argument 'two'.",
        ),
        ("Set-TestThing -Count 1", "missing mandatory parameters: Identity."),
        ("Set-TestThing one -Enabled yes", "Boolean parameters accept only Boolean values"),
        ("Get-NoSuchThing", "The term 'Get-NoSuchThing' is not recognized"),
    ],
)
def test_binding_errors(source: str, message: str) -> None:
    run = Run()
    run(source + " -Confirm:$false" if source.startswith("Set") else source)
    assert not run.ok
    err = run.err.getvalue()
    assert message in err
    assert "At line:1 char:" in err
    assert SEEN == []


def test_error_layout_points_at_the_command() -> None:
    run = Run()
    run("$x = 1\n  Set-TestThing boom -Confirm:$false")
    err = run.err.getvalue().splitlines()
    assert err[0].startswith('Set-TestThing : The thing "boom" couldn\'t be found.')
    assert err[1] == "At line:2 char:3"
    assert err[2] == "+   Set-TestThing boom -Confirm:$false"
    assert err[3].startswith("+   ~~~")
    assert "ObjectNotFound: (boom:String) [Set-TestThing], NotFoundError" in err[4]


def test_pipeline_by_value_and_by_property_name() -> None:
    run = Run()
    run("'a','b' | Set-TestThing -Confirm:$false")
    assert [s["Identity"] for s in SEEN] == ["a", "b"]
    objects = "@{Name='x'}, @{Name='y'}"
    assert lines(f"{objects} | Get-TestByName") == ["name=x", "name=y"]


def test_input_that_binds_to_nothing_is_an_error_per_item() -> None:
    run = Run()
    run("@{Other=1} | Get-TestByName")
    assert not run.ok
    assert "The input object cannot be bound to any parameters" in run.err.getvalue()


def test_identity_parameter_takes_the_object() -> None:
    run = Run()
    thing = PSObject({"Name": "DB01"}, display="DB01")
    run.session.set_variable("db", thing)
    run("$db | Set-TestThing -Confirm:$false")
    assert SEEN[0]["Identity"] is thing


# -- streaming -------------------------------------------------------------------------


def test_pipeline_streams_and_stops_upstream() -> None:
    assert lines("Test-Count | Test-Take 3") == ["1", "2", "3"]
    assert len(PULLED) <= 4


def test_assignment_collects_and_streams_into_next_statement() -> None:
    assert lines("$all = Test-Count 5; $all.Count; $all[-1]") == ["5", "5"]


# -- common parameters ---------------------------------------------------------------


def test_what_if_changes_nothing() -> None:
    run = Run()
    out = run("Set-TestThing DB01 -WhatIf")
    assert out.strip() == 'What if: Performing the operation "Set-TestThing" on target "DB01".'
    assert SEEN == []
    assert run.ok


@pytest.mark.parametrize(
    ("answers", "done"),
    [("y\ny\n", ["a", "b"]), ("n\ny\n", ["b"]), ("a\n", ["a", "b"]), ("l\n", []), ("", [])],
)
def test_confirm_impact_high_prompts(answers: str, done: list[str]) -> None:
    run = Run(stdin=answers)
    out = run("'a','b' | Set-TestThing")
    assert "Are you sure you want to perform this action?" in out
    assert '[Y] Yes [A] Yes to All [N] No [L] No to All [?] Help (default is "Y"): ' in out
    assert [s["Identity"] for s in SEEN] == done


def test_confirm_false_never_prompts() -> None:
    run = Run()
    out = run("'a' | Set-TestThing -Confirm:$false")
    assert "Confirm" not in out
    assert [s["Identity"] for s in SEEN] == ["a"]


def test_error_action() -> None:
    run = Run()
    run("'boom','ok' | Set-TestThing -Confirm:$false")
    assert [s["Identity"] for s in SEEN] == ["ok"]  # non-terminating: the next item runs
    assert not run.ok

    run = Run()
    run("'boom','ok' | Set-TestThing -Confirm:$false -ErrorAction Stop")
    assert SEEN == []

    run = Run()
    run("'boom','ok' | Set-TestThing -Confirm:$false -ea SilentlyContinue; $Error.Count")
    assert run.err.getvalue() == ""
    assert run.out.getvalue().split() == ["1"]


def test_statement_after_an_error_still_runs() -> None:
    run = Run()
    out = run("Get-Nothing; 'after'")
    assert out.strip() == "after"
    assert not run.ok


def test_domain_controller_is_accepted_and_ignored() -> None:
    run = Run()
    run("Set-TestThing x -DomainController dc01.lab.net -Confirm:$false")
    assert run.ok and SEEN


def test_parse_error_is_reported_with_position() -> None:
    run = Run()
    run("Get-MailboxDatabase | | fl")
    assert not run.ok
    err = run.err.getvalue()
    assert "At line:1 char:22" in err
    assert "An empty pipe element is not allowed." in err


def test_seed_glued_parameter_is_read_as_cmdlet_and_parameter() -> None:
    run = Run()
    run("Set-TestThing-count 3 one -Confirm:$false")
    assert run.ok
    assert SEEN[0]["Count"] == 3
