"""Transcript tests of the shell parser: a source line and the syntax tree it must give
(positions zeroed, so trees are compared by shape; a few tests check positions) for
statements, commands, pipelines and assignments, the errors it must raise (message,
line, column), `is_incomplete`, and properties: any text parses or raises ParseError,
never anything else. Strings are in test_scanner, expressions in
test_expression_parser."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casarray.shell import ast
from casarray.shell.parser import ParseError, is_incomplete, parse
from tests.shell.parser_trees import (
    arr,
    arrexpr,
    assign,
    bi,
    call,
    check,
    cmd,
    error,
    hashlit,
    idx,
    mem,
    n,
    p,
    paren,
    pipe,
    s,
    sb,
    sub,
    v,
    w,
    xs,
)

# -- the seed's commands and the brief's verbatim lines ----------------------------------

BJ = "bj-cas.lab.net"

SEED_CASES = [
    (
        'New-ClientAccessArray -Name "BJ CAS Array" -Fqdn "bj-cas.lab.net" -Site "BJ"',
        cmd(
            "New-ClientAccessArray",
            p("Name"),
            s("BJ CAS Array"),
            p("Fqdn"),
            s(BJ),
            p("Site"),
            s("BJ"),
        ),
    ),
    (
        # EN DASH before rpcclientaccessserver, as pasted from the web.
        'Set-MailboxDatabase "DB01" –rpcclientaccessserver bj-cas.lab.net',
        cmd("Set-MailboxDatabase", s("DB01"), p("rpcclientaccessserver"), w(BJ)),
    ),
    (
        "Get-MailboxDatabase | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net",
        pipe(
            cmd("Get-MailboxDatabase"),
            cmd("Set-MailboxDatabase", p("RpcClientAccessServer"), w(BJ)),
        ),
    ),
    (
        'Get-MailboxDatabase | Where-Object {$_.RpcClientAccessServer -ne "bj-cas.lab.net"} | Format-Table Name,Server,RpcClientAccessServer',  # noqa: E501
        pipe(
            cmd("Get-MailboxDatabase"),
            cmd(
                "Where-Object",
                sb(
                    '$_.RpcClientAccessServer -ne "bj-cas.lab.net"',
                    bi("-ne", mem(v("_"), "RpcClientAccessServer"), s(BJ)),
                ),
            ),
            cmd("Format-Table", arr(w("Name"), w("Server"), w("RpcClientAccessServer"))),
        ),
    ),
    ("Get-ClientAccessArray | fl", pipe(cmd("Get-ClientAccessArray"), cmd("fl"))),
    (
        'New-Mailbox -Name "Alice" -Password (ConvertTo-SecureString "x" -AsPlainText -Force) -Database DB01',  # noqa: E501
        cmd(
            "New-Mailbox",
            p("Name"),
            s("Alice"),
            p("Password"),
            paren(cmd("ConvertTo-SecureString", s("x"), p("AsPlainText"), p("Force"))),
            p("Database"),
            w("DB01"),
        ),
    ),
    (
        'Get-MailboxDatabase | Select-Object Name,@{Name="Rpc";Expression={$_.RpcClientAccessServer}}',  # noqa: E501
        pipe(
            cmd("Get-MailboxDatabase"),
            cmd(
                "Select-Object",
                arr(
                    w("Name"),
                    hashlit(
                        (w("Name"), s("Rpc")),
                        (
                            w("Expression"),
                            sb("$_.RpcClientAccessServer", mem(v("_"), "RpcClientAccessServer")),
                        ),
                    ),
                ),
            ),
        ),
    ),
    (
        # The seed's glued form: PowerShell reads `New-clientaccessarray-name` as one
        # command name; a quoted string ends its argument, so `-fqdn` after it is a
        # parameter. The evaluator may split the unknown name at a known cmdlet.
        'New-clientaccessarray-name "BJ CAS Array"-fqdn "bj-cas.lab.net"-site "BJ"',
        cmd(
            "New-clientaccessarray-name",
            s("BJ CAS Array"),
            p("fqdn"),
            s(BJ),
            p("site"),
            s("BJ"),
        ),
    ),
    (
        "Get-mailboxdatabase | Set-mailboxdatabase-rpcclientaccessserver bj-cas.lab.net",
        pipe(cmd("Get-mailboxdatabase"), cmd("Set-mailboxdatabase-rpcclientaccessserver", w(BJ))),
    ),
]


@pytest.mark.parametrize(("source", "expected"), SEED_CASES, ids=[c[0][:40] for c in SEED_CASES])
def test_seed_lines(source: str, expected: Any) -> None:
    check(source, expected)


def test_seed_positions() -> None:
    source = 'Set-MailboxDatabase "DB01" –rpcclientaccessserver bj-cas.lab.net'
    (pipeline,) = parse(source).statements
    assert isinstance(pipeline, ast.Pipeline)
    (command,) = pipeline.elements
    assert isinstance(command, ast.Command)
    assert command.pos == 0
    string, parameter, word = command.elements
    assert string.pos == source.index('"DB01"')
    assert parameter.pos == source.index("–")
    assert word.pos == source.index("bj-cas")


def test_pipeline_and_block_positions() -> None:
    source = "Get-X | Where-Object { $_.Name -like 'DB*' }"
    (pipeline,) = parse(source).statements
    assert isinstance(pipeline, ast.Pipeline)
    where = pipeline.elements[1]
    assert isinstance(where, ast.Command)
    assert where.pos == 8
    block = where.elements[0]
    assert isinstance(block, ast.ScriptBlock)
    assert block.pos == source.index("{")
    assert block.body.pos == block.pos + 1
    assert block.text == " $_.Name -like 'DB*' "
    (inner,) = block.body.statements
    assert isinstance(inner, ast.Pipeline)
    expr = inner.elements[0]
    assert isinstance(expr, ast.CommandExpression)
    binary = expr.expression
    assert isinstance(binary, ast.Binary)
    assert binary.pos == source.index("$_")
    assert binary.right.pos == source.index("'DB*'")


def test_positions_on_later_lines() -> None:
    source = "Get-A\n  $x = 'y'"
    _first, second = parse(source).statements
    assert isinstance(second, ast.Assignment)
    assert second.pos == source.index("$x")
    assert second.value.pos == source.index("'y'")


# -- statements, comments, continuations ----------------------------------------------

STATEMENT_CASES = [
    ("", ()),
    ("   \n\n ; ;", ()),
    ("Get-A; Get-B", (cmd("Get-A"), cmd("Get-B"))),
    ("Get-A\nGet-B\r\nGet-C", (cmd("Get-A"), cmd("Get-B"), cmd("Get-C"))),
    ("Get-A `\n  -Name x", (cmd("Get-A", p("Name"), w("x")),)),
    ("Get-A `\r\n  -Name x", (cmd("Get-A", p("Name"), w("x")),)),
    ("Get-A |\n  fl", (pipe(cmd("Get-A"), cmd("fl")),)),
    ("Get-A |   # why\n\n  fl", (pipe(cmd("Get-A"), cmd("fl")),)),
    ("# just a comment", ()),
    ("Get-A # the rest is a comment | fl", (cmd("Get-A"),)),
    ("Get-A a#b", (cmd("Get-A", w("a#b")),)),
    ("<# block\n comment #> Get-A <# inline #> x", (cmd("Get-A", w("x")),)),
]


@pytest.mark.parametrize(("source", "expected"), STATEMENT_CASES)
def test_statements(source: str, expected: tuple[Any, ...]) -> None:
    check(source, *expected)


# -- command names and arguments --------------------------------------------------------

COMMAND_CASES = [
    # aliases and other words are command names, kept as written
    ("?", cmd("?")),
    ("Get-X | ? { $_ }", pipe(cmd("Get-X"), cmd("?", sb(" $_ ", v("_"))))),
    ("Get-X | %{$_}", pipe(cmd("Get-X"), cmd("%", sb("$_", v("_"))))),
    ("Get-X | where Name -eq x", pipe(cmd("Get-X"), cmd("where", w("Name"), p("eq"), w("x")))),
    ("Get-X | foreach { 1 }", pipe(cmd("Get-X"), cmd("foreach", sb(" 1 ", n(1))))),
    (
        "Get-X | select Name | sort Name",
        pipe(cmd("Get-X"), cmd("select", w("Name")), cmd("sort", w("Name"))),
    ),
    ("Get-X | ft -AutoSize", pipe(cmd("Get-X"), cmd("ft", p("AutoSize")))),
    ("Get-X | measure", pipe(cmd("Get-X"), cmd("measure"))),
    ("gcm *Mailbox*", cmd("gcm", w("*Mailbox*"))),
    ("echo hello", cmd("echo", w("hello"))),
    ("get-mailboxDATABASE", cmd("get-mailboxDATABASE")),
    (".\\setup.ps1 /mode:install", cmd(".\\setup.ps1", w("/mode:install"))),
    ("7z a", cmd("7z", w("a"))),
    # parameters
    ("Get-X -Name value", cmd("Get-X", p("Name"), w("value"))),
    ("Get-X -Name:value", cmd("Get-X", p("Name", w("value")))),
    ("Get-X -Name: value", cmd("Get-X", p("Name", w("value")))),
    ("Get-X -Switch", cmd("Get-X", p("Switch"))),
    ("Get-X -Confirm:$false", cmd("Get-X", p("Confirm", v("false")))),
    ('Get-X -Name:"a b"', cmd("Get-X", p("Name", s("a b")))),
    ("Get-X -Name:a,b", cmd("Get-X", p("Name", arr(w("a"), w("b"))))),
    ("Get-X -Count:-5", cmd("Get-X", p("Count", n(-5)))),
    ("Get-X –Name a", cmd("Get-X", p("Name"), w("a"))),  # en dash
    ("Get-X —Name a", cmd("Get-X", p("Name"), w("a"))),  # em dash
    ("Get-X ―Name a", cmd("Get-X", p("Name"), w("a"))),  # horizontal bar
    ('Get-X -Name"x"', cmd("Get-X", p("Name"), s("x"))),
    ("Get-X -Name(1)", cmd("Get-X", p("Name"), paren(n(1)))),
    ("Get-X -?", cmd("Get-X", p("?"))),
    ("Get-X - a", cmd("Get-X", w("-"), w("a"))),
    ("Get-X -", cmd("Get-X", w("-"))),
    ("Get-X -- -Name", cmd("Get-X", w("-Name"))),
    ("Get-X -A -- -B -5", cmd("Get-X", p("A"), w("-B"), n(-5))),
    ("Get-X --name", cmd("Get-X", w("--name"))),
    ("Get-X -1x", cmd("Get-X", w("-1x"))),
    # bare words
    ("Get-X bj-cas.lab.net", cmd("Get-X", w(BJ))),
    ("Get-X C:\\path\\file.csv", cmd("Get-X", w("C:\\path\\file.csv"))),
    ("Get-X DB*", cmd("Get-X", w("DB*"))),
    ("Get-X 127.77.1.10", cmd("Get-X", w("127.77.1.10"))),
    ("Get-X 10.0.0.0/24", cmd("Get-X", w("10.0.0.0/24"))),
    ("Get-X alice@lab.net", cmd("Get-X", w("alice@lab.net"))),
    ("Get-X 1..3 1+2 5.txt [int]", cmd("Get-X", w("1..3"), w("1+2"), w("5.txt"), w("[int]"))),
    ("Get-X a`tb a`$b", cmd("Get-X", w("a\tb"), w("a$b"))),
    ("Get-X a'b c'd", cmd("Get-X", w("ab cd"))),
    ('Get-X pre"mid dle"post', cmd("Get-X", w("premid dlepost"))),
    ("Get-X $ a", cmd("Get-X", w("$"), w("a"))),
    ("Get-X @ a", cmd("Get-X", w("@"), w("a"))),
    # numbers
    ("Get-X 5", cmd("Get-X", n(5))),
    ("Get-X 1.5", cmd("Get-X", n(1.5))),
    ("Get-X .5", cmd("Get-X", n(0.5))),
    ("Get-X 0x10", cmd("Get-X", n(16))),
    ("Get-X 0X1f", cmd("Get-X", n(31))),
    ("Get-X 10GB", cmd("Get-X", n(10 * 2**30))),
    (
        "Get-X 1kb 2Mb 3gB 1TB 1pb",
        cmd("Get-X", n(1024), n(2 * 2**20), n(3 * 2**30), n(2**40), n(2**50)),
    ),
    ("Get-X 1.5GB", cmd("Get-X", n(1.5 * 2**30))),
    ("Get-X 1e3", cmd("Get-X", n(1000.0))),
    ("Get-X 5l", cmd("Get-X", n(5))),
    ("Get-X -5 -1.5", cmd("Get-X", n(-5), n(-1.5))),
    ("Get-X 1,2,3", cmd("Get-X", arr(n(1), n(2), n(3)))),
    # quoted strings
    ("Get-X 'a b'", cmd("Get-X", s("a b"))),
    ("Get-X 'it''s'", cmd("Get-X", s("it's"))),
    ("Get-X '$x `n'", cmd("Get-X", s("$x `n"))),
    ("Get-X ''", cmd("Get-X", s(""))),
    ('Get-X ""', cmd("Get-X", s(""))),
    ('Get-X "say ""hi"""', cmd("Get-X", s('say "hi"'))),
    ("Get-X ‘smart’ “quotes”", cmd("Get-X", s("smart"), s("quotes"))),
    # variables
    (
        "Get-X $true $false $null $_ $x $env:NAME ${a b}",
        cmd("Get-X", v("true"), v("false"), v("null"), v("_"), v("x"), v("env:NAME"), v("a b")),
    ),
    ("Get-X $x,$y", cmd("Get-X", arr(v("x"), v("y")))),
    ("Get-X $x , $y", cmd("Get-X", arr(v("x"), v("y")))),
    ("Get-X a,\n  b", cmd("Get-X", arr(w("a"), w("b")))),
    ('Get-X a,b,"c d"', cmd("Get-X", arr(w("a"), w("b"), s("c d")))),
    # member access, index, method calls after a value in argument mode
    ("Get-X $_.Name", cmd("Get-X", mem(v("_"), "Name"))),
    ("Get-X $db.Server.Name", cmd("Get-X", mem(mem(v("db"), "Server"), "Name"))),
    ("Get-X (Get-Y).Count", cmd("Get-X", mem(paren(cmd("Get-Y")), "Count"))),
    ("Get-X $a[0]", cmd("Get-X", idx(v("a"), n(0)))),
    ("Get-X $s.ToUpper()", cmd("Get-X", call(v("s"), "ToUpper"))),
    ('Get-X $s.Replace("a","b")', cmd("Get-X", call(v("s"), "Replace", s("a"), s("b")))),
    ("Get-X $x.'odd name'", cmd("Get-X", mem(v("x"), "odd name"))),
    ("Get-X $env:TEMP\\out.csv", cmd("Get-X", xs(v("env:TEMP"), "\\out.csv"))),
    ("Get-X $x.", cmd("Get-X", xs(v("x"), "."))),
    ("Get-X pre$x", cmd("Get-X", xs("pre", v("x")))),
    ("Get-X a$($b)c", cmd("Get-X", xs("a", sub(v("b")), "c"))),
    # grouping
    ("Get-X @(1,2)", cmd("Get-X", arrexpr(arr(n(1), n(2))))),
    ("Get-X @()", cmd("Get-X", arrexpr())),
    ("Get-X $(Get-Y; 2)", cmd("Get-X", sub(cmd("Get-Y"), n(2)))),
    ("Get-X (1 + 2)", cmd("Get-X", paren(bi("+", n(1), n(2))))),
    ("Get-X ,a", cmd("Get-X", arr(w("a")))),
    # script blocks and hashtables
    ("Get-X {}", cmd("Get-X", sb(""))),
    ("Get-X { Get-Y; 1 }", cmd("Get-X", sb(" Get-Y; 1 ", cmd("Get-Y"), n(1)))),
    (
        'Get-X @{Name="X"; Expression={$_.Y}}',
        cmd(
            "Get-X",
            hashlit((w("Name"), s("X")), (w("Expression"), sb("$_.Y", mem(v("_"), "Y")))),
        ),
    ),
    (
        "Get-X @{ N = 'x'\n  E = {1} }",
        cmd("Get-X", hashlit((w("N"), s("x")), (w("E"), sb("1", n(1))))),
    ),
    ("Get-X @{}", cmd("Get-X", hashlit())),
    (
        "Get-X @{'a b'=1; 2=Get-Y; $k=-1}",
        cmd("Get-X", hashlit((s("a b"), n(1)), (n(2), cmd("Get-Y")), (v("k"), n(-1)))),
    ),
]


@pytest.mark.parametrize(("source", "expected"), COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_commands(source: str, expected: Any) -> None:
    check(source, expected)


def test_bare_word_flag() -> None:
    (pipeline,) = parse("Get-X DB01 'DB01'").statements
    assert isinstance(pipeline, ast.Pipeline)
    command = pipeline.elements[0]
    assert isinstance(command, ast.Command)
    assert [e.bare for e in command.elements if isinstance(e, ast.StringLiteral)] == [True, False]


# -- pipelines and assignments ------------------------------------------------------------

PIPELINE_CASES = [
    (
        "$dbs | Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net",
        pipe(v("dbs"), cmd("Set-MailboxDatabase", p("RpcClientAccessServer"), w(BJ))),
    ),
    ('"a","b" | % { $_ }', pipe(arr(s("a"), s("b")), cmd("%", sb(" $_ ", v("_"))))),
    ("1..3 | % {$_}", pipe(bi("..", n(1), n(3)), cmd("%", sb("$_", v("_"))))),
    ("(Get-X) | fl", pipe(paren(cmd("Get-X")), cmd("fl"))),
    ("$dbs = Get-MailboxDatabase", assign(v("dbs"), "=", cmd("Get-MailboxDatabase"))),
    (
        "$dbs = Get-MailboxDatabase | ? { $_ }",
        assign(v("dbs"), "=", pipe(cmd("Get-MailboxDatabase"), cmd("?", sb(" $_ ", v("_"))))),
    ),
    ("$x = 5", assign(v("x"), "=", n(5))),
    ("$x += 1", assign(v("x"), "+=", n(1))),
    ("$x -= 1", assign(v("x"), "-=", n(1))),
    ("$x *= 2", assign(v("x"), "*=", n(2))),
    ("$x =\n  5", assign(v("x"), "=", n(5))),
    ('$h.Name = "y"', assign(mem(v("h"), "Name"), "=", s("y"))),
    ("$a[0] = 1", assign(idx(v("a"), n(0)), "=", n(1))),
    ("$x = $y -eq 1", assign(v("x"), "=", bi("-eq", v("y"), n(1)))),
    ("$x = 'a', 'b'", assign(v("x"), "=", arr(s("a"), s("b")))),
]


@pytest.mark.parametrize(("source", "expected"), PIPELINE_CASES, ids=[c[0] for c in PIPELINE_CASES])
def test_pipelines_and_assignments(source: str, expected: Any) -> None:
    check(source, expected)


def test_multi_statement_script() -> None:
    source = (
        "$dbs = Get-MailboxDatabase\n"
        "# update the old ones\n"
        "$dbs | Where-Object { $_.RpcClientAccessServer -ne 'bj-cas.lab.net' } |\n"
        "    Set-MailboxDatabase -RpcClientAccessServer bj-cas.lab.net -Confirm:$false\n"
        "Get-MailboxDatabase | ft Name,RpcClientAccessServer -AutoSize\n"
    )
    check(
        source,
        assign(v("dbs"), "=", cmd("Get-MailboxDatabase")),
        pipe(
            v("dbs"),
            cmd(
                "Where-Object",
                sb(
                    " $_.RpcClientAccessServer -ne 'bj-cas.lab.net' ",
                    bi("-ne", mem(v("_"), "RpcClientAccessServer"), s(BJ)),
                ),
            ),
            cmd(
                "Set-MailboxDatabase",
                p("RpcClientAccessServer"),
                w(BJ),
                p("Confirm", v("false")),
            ),
        ),
        pipe(
            cmd("Get-MailboxDatabase"),
            cmd("ft", arr(w("Name"), w("RpcClientAccessServer")), p("AutoSize")),
        ),
    )


def test_flow_words_are_commands() -> None:
    check("exit", cmd("exit"))
    check("throw 'x'", cmd("throw", s("x")))


# -- errors -------------------------------------------------------------------------------

ERROR_CASES = [
    # source, message, line, column, incomplete
    ("Get-MailboxDatabase | | fl", "An empty pipe element is not allowed.", 1, 22, False),
    ("| fl", "An empty pipe element is not allowed.", 1, 1, False),
    ("Get-X |", "An empty pipe element is not allowed.", 1, 8, True),
    ("Get-X | ;", "An empty pipe element is not allowed.", 1, 8, False),
    (
        "Get-X | $_.Name",
        "Expressions are only allowed as the first element of a pipeline.",
        1,
        9,
        False,
    ),
    (
        "Get-X | 5",
        "Expressions are only allowed as the first element of a pipeline.",
        1,
        9,
        False,
    ),
    (
        'Get-X | "a"',
        "Expressions are only allowed as the first element of a pipeline.",
        1,
        9,
        False,
    ),
    ("Get-X { $_", "Missing closing '}' in statement block or type definition.", 1, 7, True),
    ("Get-X {\n$_\n", "Missing closing '}' in statement block or type definition.", 1, 7, True),
    ('Get-X "abc', 'The string is missing the terminator: ".', 1, 7, True),
    ("Get-X 'abc", "The string is missing the terminator: '.", 1, 7, True),
    ('@"\nabc', 'The string is missing the terminator: "@.', 1, 1, True),
    ("@'\nabc\n '@", "The string is missing the terminator: '@.", 1, 1, True),
    (
        '@" x\n"@',
        "No characters are allowed after a here-string header but before the end of the line.",
        1,
        4,
        False,
    ),
    ("Get-X x)", "Unexpected token ')' in expression or statement.", 1, 8, False),
    ("}", "Unexpected token '}' in expression or statement.", 1, 1, False),
    ("$x foo", "Unexpected token 'foo' in expression or statement.", 1, 4, False),
    ("5 5", "Unexpected token '5' in expression or statement.", 1, 3, False),
    ("$x -foo 1", "Unexpected token '-foo' in expression or statement.", 1, 4, False),
    ("-not", "Missing expression after unary operator '-not'.", 1, 5, True),
    ("-not )", "Missing expression after unary operator '-not'.", 1, 6, False),
    ("!", "Missing expression after unary operator '!'.", 1, 2, True),
    ("$a -eq", "You must provide a value expression following the '-eq' operator.", 1, 7, True),
    (
        "$a -EQ )",
        "You must provide a value expression following the '-EQ' operator.",
        1,
        7,
        False,
    ),
    ("1 +", "You must provide a value expression following the '+' operator.", 1, 4, True),
    (
        "$a -eq Name",
        "You must provide a value expression following the '-eq' operator.",
        1,
        7,
        False,
    ),
    ("1,", "Missing expression after ','.", 1, 3, True),
    ("Get-X a,", "Missing argument in parameter list.", 1, 9, True),
    ("Get-X a,,b", "Missing argument in parameter list.", 1, 9, False),
    ('$s.Replace("a",)', "Missing argument in parameter list.", 1, 16, False),
    ('$s.Replace("a"', "Missing ')' in method call.", 1, 15, True),
    ("$a[0", "Missing ']' after array index expression.", 1, 5, True),
    ("$a[]", "Array index expression is missing or not valid.", 1, 4, False),
    ("(1", "Missing closing ')' in expression.", 1, 3, True),
    ("()", "An expression was expected after '('.", 1, 2, False),
    ("$(1", "Missing closing ')' in subexpression.", 1, 4, True),
    ("@(1", "Missing closing ')' in array subexpression.", 1, 4, True),
    ("@{a=1", "The hash literal was incomplete.", 1, 1, True),
    ("@{a 1}", "Missing '=' operator after key in hash literal.", 1, 5, False),
    ("@{a=}", "Missing statement after '=' in hash literal.", 1, 5, False),
    ("[int", "Missing ] at end of attribute or type literal.", 1, 5, True),
    ("[]", "Missing type name after '['.", 1, 2, False),
    ("$x.", "Missing property name after reference operator.", 1, 4, True),
    ("<# never closed", "The comment is missing the terminator: '#>'.", 1, 1, True),
    ("${abc", "Missing '}' at end of variable name.", 1, 1, True),
    ("Get-X -Name:", "Missing an argument for parameter 'Name'.", 1, 13, True),
    (
        "$x =",
        "You must provide a value expression on the right-hand side of the '=' operator.",
        1,
        5,
        True,
    ),
    (
        "5 = 1",
        "The assignment expression is not valid. The input to an assignment operator must be "
        "an object that is able to accept assignments, such as a variable or a property.",
        1,
        1,
        False,
    ),
    (
        "if ($x) { 1 }",
        "The 'if' keyword is not supported in this version of the language.",
        1,
        1,
        False,
    ),
    ("Get-X a & b", "The ampersand (&) character is not allowed.", 1, 9, False),
    (
        "Get-X && Get-Y",
        "The token '&&' is not a valid statement separator in this version.",
        1,
        7,
        False,
    ),
    (
        "Get-X || Get-Y",
        "The token '||' is not a valid statement separator in this version.",
        1,
        7,
        False,
    ),
    ("Get-X > out.txt", "Redirection operators are not supported in this shell.", 1, 7, False),
    ("Get-X @params", "Splatting (@name) is not supported in this shell.", 1, 7, False),
    ("$", "Variable reference is not valid.", 1, 1, False),
    ("Get-X\n  (1 2)", "Unexpected token '2' in expression or statement.", 2, 6, False),
    ("Get-X\r\n$a | | x", "An empty pipe element is not allowed.", 2, 5, False),
    ("Get-X\r\n| x", "An empty pipe element is not allowed.", 2, 1, False),
]


@pytest.mark.parametrize(
    ("source", "message", "line", "column", "incomplete"),
    ERROR_CASES,
    ids=[c[0] for c in ERROR_CASES],
)
def test_errors(source: str, message: str, line: int, column: int, incomplete: bool) -> None:
    e = error(source)
    assert e.message.startswith(message)
    assert (e.line, e.column) == (line, column)
    assert e.incomplete is incomplete
    assert e.source == source
    assert str(e) == e.message


@pytest.mark.parametrize(
    "source",
    [
        "(" * 5000,
        "(" * 5000 + "1" + ")" * 5000,
        "{" * 5000,
        "$(" * 5000,
        "@{a=" * 5000,
        "-not " * 5000 + "1",
        "!" * 5000 + "$x",
        "[int]" * 5000 + "1",
        '"$(' * 3000,
        "Get-X (" * 3000,
        "$x[" * 5000,
        "$x.Foo(" * 5000,
    ],
    ids=lambda src: src[:12],
)
def test_deep_nesting_is_a_parse_error(source: str) -> None:
    e = error(source)
    assert "nested too deeply" in e.message


def test_moderate_nesting_parses() -> None:
    depth = 30
    check("(" * depth + "1" + ")" * depth, _nested_parens(depth))


def _nested_parens(depth: int) -> Any:
    node: Any = n(1)
    for _ in range(depth):
        node = paren(node)
    return node


# -- is_incomplete ----------------------------------------------------------------------------

INCOMPLETE = [
    "'abc",
    '"abc',
    '"abc $(1 +',
    "@'\nabc",
    '@"\nabc',
    "Get-X {",
    "Get-X { $_.Name -like",
    "(Get-X",
    "@(1",
    "$(1",
    "@{ a = 1",
    "@{ a = 1\n",
    "<# a comment",
    "Get-X `",
    "Get-X -Name a `\n",
    "Get-X |",
    "Get-X |\n",
    "Get-X |  # more to come",
    "$x = ",
    "$x -eq",
    "$a[",
    "$s.Foo(1,",
    "Get-X a,",
]

COMPLETE = [
    "",
    "Get-X",
    "Get-X | fl",
    "Get-X 'a`'",
    "Get-X # trailing comment `",
    "Get-X | | fl",
    "Get-X )",
    "}",
    "'a''b'",
    "$x = 5",
    "Get-X -Switch",
]


@pytest.mark.parametrize("source", INCOMPLETE)
def test_is_incomplete(source: str) -> None:
    assert is_incomplete(source)


@pytest.mark.parametrize("source", COMPLETE)
def test_is_complete(source: str) -> None:
    assert not is_incomplete(source)


# -- properties ---------------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_PUNCTUATION = list("-–—―'\"‘’“”`$@(){}[];,|&<>#=+*/%!.:?_ \t\n\r") + list("0aZé5")
_TOKENS = [
    "Get-X",
    "fl",
    "%",
    "?",
    "-Name",
    "-Name:",
    "–eq",
    "-not",
    "-like",
    "$_",
    "$x",
    "$env:A",
    "${a b}",
    ".Name",
    "[0]",
    "[int]",
    "(",
    ")",
    "{",
    "}",
    "@(",
    "@{",
    "$(",
    "=",
    "+=",
    ",",
    "|",
    ";",
    "\n",
    "`\n",
    "`",
    "'a'",
    "'",
    '"a $x"',
    '"',
    '@"\n',
    '\n"@',
    "#c\n",
    "<#",
    "#>",
    "10GB",
    "-5",
    "1..3",
    "bj-cas.lab.net",
    "::",
    "--",
    "-",
    "!",
]


def _check_total(source: str) -> None:
    started = time.perf_counter()
    try:
        result = parse(source)
    except ParseError as e:
        lines = _LINE_BREAK.split(source)
        assert 1 <= e.line <= len(lines) + 1
        assert 1 <= e.column <= len(lines[e.line - 1]) + 1 if e.line <= len(lines) else True
        assert 0 <= e.pos <= len(source)
        assert e.format().startswith(f"At line:{e.line} char:{e.column}\n")
    else:
        assert isinstance(result, ast.Script)
    assert isinstance(is_incomplete(source), bool)
    assert (
        time.perf_counter() - started < 10
    )  # a guard against runaway (quadratic) time, 10x the usual: bench/ measures speed


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.one_of(st.sampled_from(_PUNCTUATION), st.characters()), max_size=80))
def test_any_text_parses_or_raises_parse_error(source: str) -> None:
    _check_total(source)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(_TOKENS), max_size=25).flatmap(
        lambda tokens: st.sampled_from(["", " "]).map(lambda sep: sep.join(tokens))
    )
)
def test_token_soup_parses_or_raises_parse_error(source: str) -> None:
    _check_total(source)


# -- speed and weight ---------------------------------------------------------------------------


def test_import_is_light() -> None:
    code = (
        "import sys, casarray.shell.parser\n"
        "heavy = {'sqlalchemy', 'rich', 'hypothesis', 'prompt_toolkit', 'asyncio', 'alembic'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
