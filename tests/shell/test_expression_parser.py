"""Transcript tests of the expression grammar, through `parse`: a source line and the
syntax tree it must give (positions zeroed)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.shell.parser_trees import (
    arr,
    arrexpr,
    bi,
    call,
    cast,
    check,
    cmd,
    hashlit,
    idx,
    mem,
    n,
    paren,
    s,
    sb,
    sub,
    ty,
    un,
    v,
    w,
)

EXPRESSION_CASES = [
    ("5", n(5)),
    ("-5", n(-5)),
    ("–5", n(-5)),
    ("- 5", un("-", n(5))),
    ("-$x", un("-", v("x"))),
    ("+$x", un("+", v("x"))),
    ("1.5e2", n(150.0)),
    ("10GB", n(10 * 2**30)),
    ("'a'", s("a")),
    ("$x", v("x")),
    ("$_.Name", mem(v("_"), "Name")),
    ("$x.$name", mem(v("x"), v("name"))),
    ("$x.Items[0].Name", mem(idx(mem(v("x"), "Items"), n(0)), "Name")),
    ("$a[-1]", idx(v("a"), n(-1))),
    ("$a[0,1]", idx(v("a"), arr(n(0), n(1)))),
    ('$s.Split(",")[0]', idx(call(v("s"), "Split", s(",")), n(0))),
    ("$s.Foo((1,2), 3)", call(v("s"), "Foo", paren(arr(n(1), n(2))), n(3))),
    ("'a,b'.Split(',')", call(s("a,b"), "Split", s(","))),
    ('"abc".Length', mem(s("abc"), "Length")),
    ("(Get-MailboxDatabase).Count", mem(paren(cmd("Get-MailboxDatabase")), "Count")),
    ("@(Get-X).Count", mem(arrexpr(cmd("Get-X")), "Count")),
    ("$(1)", sub(n(1))),
    ("@{a=1}", hashlit((w("a"), n(1)))),
    ("{ $_ }", sb(" $_ ", v("_"))),
    # comparison operators, lower-cased, with case prefixes
    ("$a -eq 1", bi("-eq", v("a"), n(1))),
    ("$a -EQ 1", bi("-eq", v("a"), n(1))),
    ("$a –eq 1", bi("-eq", v("a"), n(1))),  # en dash
    ("$a —ne 1", bi("-ne", v("a"), n(1))),  # em dash
    ("$a -ceq 'A'", bi("-ceq", v("a"), s("A"))),
    ("$a -iLike 'a*'", bi("-ilike", v("a"), s("a*"))),
    ("$a -notlike 'a*'", bi("-notlike", v("a"), s("a*"))),
    ("$a -match '^x'", bi("-match", v("a"), s("^x"))),
    ("$a -cnotmatch 'x'", bi("-cnotmatch", v("a"), s("x"))),
    ("$a -gt 1", bi("-gt", v("a"), n(1))),
    ("$a -ge 1", bi("-ge", v("a"), n(1))),
    ("$a -lt 1", bi("-lt", v("a"), n(1))),
    ("$a -le 1", bi("-le", v("a"), n(1))),
    ("$a -contains 1", bi("-contains", v("a"), n(1))),
    ("$a -notcontains 1", bi("-notcontains", v("a"), n(1))),
    ("$a -in $b", bi("-in", v("a"), v("b"))),
    ("$a -notin $b", bi("-notin", v("a"), v("b"))),
    ("$a -replace 'x','y'", bi("-replace", v("a"), arr(s("x"), s("y")))),
    ("$a -split ','", bi("-split", v("a"), s(","))),
    ("$a -join ','", bi("-join", v("a"), s(","))),
    ("$a -is [string]", bi("-is", v("a"), ty("string"))),
    ("$a -isnot [int]", bi("-isnot", v("a"), ty("int"))),
    ("$a -as [int]", bi("-as", v("a"), ty("int"))),
    ('"{0}" -f $a', bi("-f", s("{0}"), v("a"))),
    ("$a -band 1", bi("-band", v("a"), n(1))),
    # logical and unary
    ("$a -and $b", bi("-and", v("a"), v("b"))),
    ("$a -or $b -xor $c", bi("-xor", bi("-or", v("a"), v("b")), v("c"))),
    ("-not $a", un("-not", v("a"))),
    ("-NOT$a", un("-not", v("a"))),
    ("!$a", un("!", v("a"))),
    ("-split 'a b'", un("-split", s("a b"))),
    ("-join $a", un("-join", v("a"))),
    # arithmetic and range
    ("1 + 2 * 3", bi("+", n(1), bi("*", n(2), n(3)))),
    ("(1 + 2) * 3", bi("*", paren(bi("+", n(1), n(2))), n(3))),
    ("10 - 4 - 3", bi("-", bi("-", n(10), n(4)), n(3))),
    ("5 -1", bi("-", n(5), n(1))),
    ("5-1", bi("-", n(5), n(1))),
    ("7 % 3 / 2", bi("/", bi("%", n(7), n(3)), n(2))),
    ("1..10", bi("..", n(1), n(10))),
    ("-2..2", bi("..", n(-2), n(2))),
    ("$a..$b", bi("..", v("a"), v("b"))),
    ("1..3 + 4", bi("+", bi("..", n(1), n(3)), n(4))),
    # precedence between levels
    ("-not $a -eq $b", bi("-eq", un("-not", v("a")), v("b"))),
    ("$a -eq 1 -and $b -eq 2", bi("-and", bi("-eq", v("a"), n(1)), bi("-eq", v("b"), n(2)))),
    ("$a -eq $b -eq $c", bi("-eq", bi("-eq", v("a"), v("b")), v("c"))),
    ("1 + 2 -gt 2", bi("-gt", bi("+", n(1), n(2)), n(2))),
    ("1,2 -contains 2", bi("-contains", arr(n(1), n(2)), n(2))),
    ("1,2 + 3", bi("+", arr(n(1), n(2)), n(3))),
    ("-1,2", arr(n(-1), n(2))),
    ("!$a -and $b", bi("-and", un("!", v("a")), v("b"))),
    ("$a -eq\n  1", bi("-eq", v("a"), n(1))),
    # casts and type literals
    ('[int]"5"', cast("int", s("5"))),
    ('[int] "5"', cast("int", s("5"))),
    ("[string]", ty("string")),
    ("[string[]]$a", cast("string[]", v("a"))),
    ("[System.Net.IPAddress]'127.0.0.1'", cast("System.Net.IPAddress", s("127.0.0.1"))),
    ("[int]$x.Count", cast("int", mem(v("x"), "Count"))),
    ('[int]"5" + 1', bi("+", cast("int", s("5")), n(1))),
    ("[int][string]5", cast("int", cast("string", n(5)))),
    ("[int]-5", cast("int", n(-5))),
    ("[int] -eq $t", bi("-eq", ty("int"), v("t"))),
    ("[Math]::Round(2.5)", call(ty("Math"), "Round", n(2.5))),
    ("[int]::MaxValue", mem(ty("int"), "MaxValue")),
    # arrays
    ('"a","b"', arr(s("a"), s("b"))),
    ("1,\n2", arr(n(1), n(2))),
    (",1", arr(n(1))),
]


@pytest.mark.parametrize(
    ("source", "expected"), EXPRESSION_CASES, ids=[c[0] for c in EXPRESSION_CASES]
)
def test_expressions(source: str, expected: Any) -> None:
    check(source, expected)
