"""Parameter binding: names, prefixes, aliases and any dash; positions; pipeline input
by value and by property name; binding errors; the common parameters."""

from __future__ import annotations

import pytest

from casarray.shell.psobject import PSObject
from tests.shell.runtime_shell import SEEN, Run, lines


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


def test_domain_controller_is_accepted_and_ignored() -> None:
    run = Run()
    run("Set-TestThing x -DomainController dc01.lab.net -Confirm:$false")
    assert run.ok and SEEN
