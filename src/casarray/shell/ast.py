"""The syntax tree of casarray's PowerShell subset. Nodes are frozen dataclasses; every
node carries `pos`, the offset of its first character in the source, so errors can
point at a column. The parser (`parser.py`) builds it; the evaluator (`evaluator.py`)
walks it. Nothing here executes anything."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    pos: int


# -- expressions ---------------------------------------------------------------


@dataclass(frozen=True)
class StringLiteral(Node):
    """A single-quoted string, or a bare word in argument mode (`bj-cas.lab.net`)."""

    value: str
    bare: bool = False


@dataclass(frozen=True)
class ExpandableString(Node):
    """A double-quoted string: literal text and embedded `$var` / `$(...)` parts."""

    parts: tuple[str | Expression, ...]


@dataclass(frozen=True)
class NumberLiteral(Node):
    """`42`, `1.5`, `0x1F`, `10GB` (multiplier applied by the parser)."""

    value: int | float


@dataclass(frozen=True)
class Variable(Node):
    """`$name`, `$_`, `$true`, `$false`, `$null`, `${any name}`."""

    name: str


@dataclass(frozen=True)
class ArrayLiteral(Node):
    """`a, b, "c d"`: two or more items joined by commas."""

    items: tuple[Expression, ...]


@dataclass(frozen=True)
class ArrayExpression(Node):
    """`@( statements )`: always an array."""

    body: Script


@dataclass(frozen=True)
class SubExpression(Node):
    """`$( statements )`."""

    body: Script


@dataclass(frozen=True)
class ParenExpression(Node):
    """`( pipeline )`."""

    pipeline: Pipeline


@dataclass(frozen=True)
class HashLiteral(Node):
    """`@{ Name = "X"; Expression = { $_.Y } }`: keys are expressions (bare words are
    strings), values are pipelines."""

    entries: tuple[tuple[Expression, Pipeline], ...]


@dataclass(frozen=True)
class ScriptBlock(Node):
    """`{ statements }`; `text` is the source between the braces."""

    body: Script
    text: str


@dataclass(frozen=True)
class MemberAccess(Node):
    """`target.Name` (member names are case-insensitive; a member may be an
    expression, as in `$x.$name`)."""

    target: Expression
    member: str | Expression


@dataclass(frozen=True)
class MethodCall(Node):
    """`target.Name(arg, ...)`."""

    target: Expression
    member: str
    arguments: tuple[Expression, ...]


@dataclass(frozen=True)
class Index(Node):
    """`target[index]`."""

    target: Expression
    index: Expression


@dataclass(frozen=True)
class Unary(Node):
    """`-not x`, `!x`, `-x`, `+x`."""

    operator: str  # "-not", "!", "-", "+"
    operand: Expression


@dataclass(frozen=True)
class Binary(Node):
    """`left OP right`. Comparison operators are stored lower-case with their case
    prefix as written: "-eq", "-ceq", "-ieq", "-like", "-and", "+", "..", ..."""

    operator: str
    left: Expression
    right: Expression


@dataclass(frozen=True)
class TypeLiteral(Node):
    """`[int]`, `[string]` (as a cast: `Binary` is not used; see `Cast`)."""

    name: str


@dataclass(frozen=True)
class Cast(Node):
    type: TypeLiteral
    operand: Expression


Expression = (
    StringLiteral
    | ExpandableString
    | NumberLiteral
    | Variable
    | ArrayLiteral
    | ArrayExpression
    | SubExpression
    | ParenExpression
    | HashLiteral
    | ScriptBlock
    | MemberAccess
    | MethodCall
    | Index
    | Unary
    | Binary
    | TypeLiteral
    | Cast
)


# -- commands and statements ---------------------------------------------------


@dataclass(frozen=True)
class CommandParameter(Node):
    """`-Name` or `-Name:value` in a command. `name` is as written, without the dash
    (which may have been -, en dash, em dash or horizontal bar). With the colon form
    `argument` is the value; otherwise None and the binder decides whether the next
    argument belongs to it (it does unless the parameter is a switch)."""

    name: str
    argument: Expression | None = None


@dataclass(frozen=True)
class Command(Node):
    """`Verb-Noun args...` or an alias (`?`, `%`, `fl`). `elements` are parameters and
    arguments in source order."""

    name: str
    elements: tuple[CommandParameter | Expression, ...]


@dataclass(frozen=True)
class CommandExpression(Node):
    """An expression used as a pipeline element (only first in a pipeline)."""

    expression: Expression


@dataclass(frozen=True)
class Pipeline(Node):
    elements: tuple[Command | CommandExpression, ...]


@dataclass(frozen=True)
class Assignment(Node):
    """`$x = pipeline` (also `+=`, `-=`)."""

    target: Expression  # a Variable, MemberAccess or Index
    operator: str  # "=", "+=", "-="
    value: Pipeline


Statement = Pipeline | Assignment


@dataclass(frozen=True)
class Script(Node):
    statements: tuple[Statement, ...]
