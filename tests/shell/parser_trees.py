"""Test support for the parser tests: builders of expected syntax trees (every `pos` is
0: trees are compared by shape, `check` zeroes the parsed tree's positions) and the
`check` and `error` helpers.

Not a conftest: the test modules import what they use."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from casarray.shell import ast
from casarray.shell.parser import ParseError, parse


def strip(value: Any) -> Any:
    """`value` with every node's pos set to 0, recursively."""
    if isinstance(value, ast.Node):
        changes = {
            f.name: strip(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name != "pos"
        }
        return dataclasses.replace(value, pos=0, **changes)
    if isinstance(value, tuple):
        return tuple(strip(v) for v in value)
    return value


def s(value: str) -> ast.StringLiteral:
    return ast.StringLiteral(0, value)


def w(value: str) -> ast.StringLiteral:
    """A bare word in argument mode."""
    return ast.StringLiteral(0, value, bare=True)


def n(value: float) -> ast.NumberLiteral:
    return ast.NumberLiteral(0, value)


def v(name: str) -> ast.Variable:
    return ast.Variable(0, name)


def xs(*parts: str | ast.Expression) -> ast.ExpandableString:
    return ast.ExpandableString(0, parts)


def p(name: str, argument: ast.Expression | None = None) -> ast.CommandParameter:
    return ast.CommandParameter(0, name, argument)


def cmd(name: str, *elements: Any) -> ast.Command:
    return ast.Command(0, name, elements)


def pipe(*elements: Any) -> ast.Pipeline:
    return ast.Pipeline(
        0,
        tuple(
            e if isinstance(e, ast.Command | ast.CommandExpression) else ast.CommandExpression(0, e)
            for e in elements
        ),
    )


def stmt(x: Any) -> ast.Statement:
    return x if isinstance(x, ast.Pipeline | ast.Assignment) else pipe(x)


def script(*statements: Any) -> ast.Script:
    return ast.Script(0, tuple(stmt(x) for x in statements))


def sb(text: str, *statements: Any) -> ast.ScriptBlock:
    return ast.ScriptBlock(0, script(*statements), text)


def arr(*items: ast.Expression) -> ast.ArrayLiteral:
    return ast.ArrayLiteral(0, items)


def hashlit(*entries: tuple[ast.Expression, Any]) -> ast.HashLiteral:
    return ast.HashLiteral(0, tuple((k, stmt(val)) for k, val in entries))


def paren(x: Any) -> ast.ParenExpression:
    return ast.ParenExpression(0, stmt(x))


def sub(*statements: Any) -> ast.SubExpression:
    return ast.SubExpression(0, script(*statements))


def arrexpr(*statements: Any) -> ast.ArrayExpression:
    return ast.ArrayExpression(0, script(*statements))


def mem(target: ast.Expression, member: str | ast.Expression) -> ast.MemberAccess:
    return ast.MemberAccess(0, target, member)


def call(target: ast.Expression, member: str, *arguments: ast.Expression) -> ast.MethodCall:
    return ast.MethodCall(0, target, member, arguments)


def idx(target: ast.Expression, index: ast.Expression) -> ast.Index:
    return ast.Index(0, target, index)


def bi(op: str, left: ast.Expression, right: ast.Expression) -> ast.Binary:
    return ast.Binary(0, op, left, right)


def un(op: str, operand: ast.Expression) -> ast.Unary:
    return ast.Unary(0, op, operand)


def ty(name: str) -> ast.TypeLiteral:
    return ast.TypeLiteral(0, name)


def cast(name: str, operand: ast.Expression) -> ast.Cast:
    return ast.Cast(0, ty(name), operand)


def assign(target: ast.Expression, op: str, value: Any) -> ast.Assignment:
    return ast.Assignment(0, target, op, stmt(value))


def check(source: str, *statements: Any) -> None:
    assert strip(parse(source)) == script(*statements)


def error(source: str) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(source)
    return info.value
