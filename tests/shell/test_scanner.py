"""Transcript tests of the scanner, through `parse`: double-quoted strings (escapes,
expansions) and here-strings, positions inside strings, and `ParseError`'s layout."""

from __future__ import annotations

from typing import Any

import pytest

from casarray.shell import ast
from casarray.shell.parser import parse
from tests.shell.parser_trees import (
    assign,
    check,
    error,
    mem,
    n,
    s,
    sub,
    v,
    xs,
)

# -- double-quoted strings and here-strings ---------------------------------------------

STRING_CASES = [
    ('"plain"', s("plain")),
    ('"$x"', xs(v("x"))),
    ('"$x.Name"', xs(v("x"), ".Name")),  # only $x expands, as in PowerShell
    ('"Name: $($x.Name)!"', xs("Name: ", sub(mem(v("x"), "Name")), "!")),
    ('"${a b}c"', xs(v("a b"), "c")),
    ('"$env:TEMP\\x"', xs(v("env:TEMP"), "\\x")),
    ('"cost: 5$ $"', s("cost: 5$ $")),
    ('"a`tb`nc`"d``e`$f`qg"', s('a\tb\nc"d`e$fqg')),
    ('"`0`a`b`f`r`v`e"', s("\0\a\b\f\r\v\x1b")),
    ('"`u{263A}"', s("\u263a")),
    ('"it""s"', s('it"s')),
    ('"$($x = 1; "in $x")"', xs(sub(assign(v("x"), "=", n(1)), xs("in ", v("x"))))),
    ("@'\nverbatim $x `n 'q' \"d\"\n'@", s("verbatim $x `n 'q' \"d\"")),
    ('@"\nline1 $x\n"quoted"\n"@', xs("line1 ", v("x"), '\n"quoted"')),
    ('@"\r\nwin\r\n"@', s("win")),
    ("@'\n'@", s("")),
    ("@'\n\n'@", s("")),
]


@pytest.mark.parametrize(("source", "expected"), STRING_CASES, ids=[c[0] for c in STRING_CASES])
def test_strings(source: str, expected: Any) -> None:
    check(source, expected)


def test_positions_inside_strings() -> None:
    source = 'Write-Host "a $b $(c)"'
    (pipeline,) = parse(source).statements
    assert isinstance(pipeline, ast.Pipeline)
    command = pipeline.elements[0]
    assert isinstance(command, ast.Command)
    string = command.elements[0]
    assert isinstance(string, ast.ExpandableString)
    assert string.pos == source.index('"')
    variable, subexpr = (part for part in string.parts if not isinstance(part, str))
    assert isinstance(variable, ast.Node)
    assert isinstance(subexpr, ast.Node)
    assert variable.pos == source.index("$b")
    assert subexpr.pos == source.index("$(")


# -- ParseError's layout -----------------------------------------------------------------


def test_error_format_is_powershells() -> None:
    e = error("Get-MailboxDatabase | | fl")
    assert e.format() == (
        "At line:1 char:22\n"
        "+ Get-MailboxDatabase | | fl\n"
        "+                      ~\n"
        "An empty pipe element is not allowed."
    )
    assert e.pos == 21


def test_error_format_marks_the_token_on_its_line() -> None:
    e = error("Get-A\n$x -eq 1 oops")
    assert e.format() == (
        "At line:2 char:10\n"
        "+ $x -eq 1 oops\n"
        "+          ~~~~\n"
        "Unexpected token 'oops' in expression or statement."
    )


def test_error_format_unterminated_string() -> None:
    e = error('Write-Host "abc')
    assert e.format().splitlines()[1:3] == ['+ Write-Host "abc', "+            ~~~~"]
