"""The parser of casarray's PowerShell subset: source text in, `ast.Script` out.

A hand-written, mode-aware scanner and a recursive-descent parser, as PowerShell's own
parser is: the same characters mean different things in *argument mode* (after a
command name: `bj-cas.lab.net`, `DB*`, `C:\\x.csv` are strings, `-Name` is a parameter)
and in *expression mode* (at the start of a statement that is not a command word,
inside `(...)`, after `=`, as operands: `-eq` is an operator, `5` is a number, bare
words are errors). So there is no separate token stream: the parser asks for the next
token in the mode it is in, at the current offset. One parser object in three layers:
`scanner.Scanner` (characters, strings, variables), `expression_parser.ExpressionParser`
(expression mode) and `_Parser` here (statements, pipelines, commands in argument mode).

Public API: `parse(source) -> ast.Script`, `ParseError` (with PowerShell's error
layout from `format()`), and `is_incomplete(source)` for a REPL deciding whether to
ask for another line.

Parameter and operator dashes may be '-', en dash, em dash or horizontal bar (text
pasted from the web). Quotes may be typographic quotes, as PowerShell allows.

How the tree reads (for the evaluator):
- Command arguments: a bare word is `StringLiteral(bare=True)`, or `NumberLiteral` when
  the whole word is a number (`5`, `-1`, `0x10`, `10GB`); a bare word holding `$x` or
  `$(...)` (`pre$x`, `$env:TEMP\\out.csv`) is an `ExpandableString`. `-Name value` is
  two elements, `CommandParameter("Name")` then the value; `-Name:value` is one,
  `CommandParameter("Name", value)`. `--` is not kept: later dash words are strings.
- A double-quoted string without expansions is a `StringLiteral`, like a single-quoted
  one. A unary comma (`,$x`) is an `ArrayLiteral` of one item.
- Operators are lower-case with '-' for any dash: unary "-not" "!" "-" "+" "-bnot"
  "-split" "-join"; binary as in `ast.Binary`, plus "-f", "-band", "-bor", "-bxor",
  "-shl", "-shr"; assignment "=", "+=", "-=", "*=", "/=", "%=".
- `[T]::Name` and `[T]::Name(...)` are `MemberAccess` / `MethodCall` on a `TypeLiteral`.
- `exit`, `return`, `throw`, `break`, `continue` are parsed as commands of that name;
  other keywords (`if`, `foreach` at a statement's start, `function`...) are errors.
- Command names are kept as written: the seed's glued `New-clientaccessarray-name "X"`
  is the command `New-clientaccessarray-name` (as in PowerShell); a quoted string ends
  its argument, so `"BJ CAS Array"-fqdn` is a string then the parameter `fqdn`.
"""

from __future__ import annotations

from casarray.shell import ast
from casarray.shell.expression_parser import ExpressionParser
from casarray.shell.scanner import (
    ARG_STOP,
    DASHES,
    DIGITS,
    NEWLINES,
    NUMBER,
    QUOTES,
    ParseError,
    is_name_char,
    is_space,
    number_from_word,
)

__all__ = ["ParseError", "is_incomplete", "parse"]

# Where a command's arguments end.
_COMMAND_END = frozenset(";|)}\r\n")
# Characters that may follow a number at the start of a statement for it to be a number
# (`1..3`, `5 -gt 3`, `2*3`) rather than the start of a command name (`7z`).
_AFTER_NUMBER = frozenset(" \t\r\n;|)}],+*/%=!<>#") | DASHES

# Keywords that start statements this shell has no syntax for. `exit`, `return`,
# `throw`, `break` and `continue` are parsed as commands named so.
_UNSUPPORTED_KEYWORDS = frozenset(
    {
        "begin",
        "catch",
        "class",
        "configuration",
        "data",
        "define",
        "do",
        "dynamicparam",
        "else",
        "elseif",
        "end",
        "enum",
        "filter",
        "finally",
        "for",
        "foreach",
        "from",
        "function",
        "if",
        "in",
        "inlinescript",
        "parallel",
        "param",
        "process",
        "sequence",
        "switch",
        "trap",
        "try",
        "until",
        "using",
        "var",
        "while",
        "workflow",
    }
)


def parse(source: str) -> ast.Script:
    """Parse a script (one or more statements) into its syntax tree."""
    parser = _Parser(source)
    try:
        return parser.parse_script()
    except RecursionError:
        raise ParseError("The script is nested too deeply.", parser.i, source) from None


def is_incomplete(source: str) -> bool:
    """True when `source` is unfinished and a REPL should read another line: an open
    quote, here-string, brace, paren, `@(`, `$(`, `@{`, `<#` comment, a trailing
    backtick or pipe, or an operator still waiting for its operand."""
    parser = _Parser(source)
    try:
        parser.parse_script()
    except ParseError as e:
        return e.incomplete
    except RecursionError:
        return False
    return parser.dangling


class _Parser(ExpressionParser):
    """Statements, pipelines and commands (argument mode) on top of the expression
    grammar and the scanner."""

    # -- statements ---------------------------------------------------------------

    def parse_script(self) -> ast.Script:
        return ast.Script(0, self.parse_statements(None))

    def parse_statements(
        self, closer: str | None, missing: str = "", missing_pos: int | None = None
    ) -> tuple[ast.Statement, ...]:
        """Statements up to `closer` (not consumed) or the end of input."""
        statements: list[ast.Statement] = []
        while True:
            self.skip_ws(newlines=True)
            c = self.char()
            if c == ";":
                self.i += 1
                continue
            if c == "":
                if closer is not None:
                    self.fail(missing, missing_pos, incomplete=True)
                return tuple(statements)
            if c == closer:
                return tuple(statements)
            if c in ")}]":
                self.unexpected()
            statements.append(self.parse_pipeline(assignment=True))
            self.skip_ws()
            c = self.char()
            if c == "" or c in NEWLINES or c == ";" or c == closer:
                continue
            self.unexpected()

    def start_is_command(self) -> bool:
        """Whether the pipeline element at the current offset is a command (else an
        expression). Raises for constructs this shell does not support."""
        c, d = self.char(), self.char(1)
        if c in "$([{!+," or c in QUOTES or c in DASHES:
            return False
        if c == "@":
            if d in "({" or d in QUOTES:
                return False
            if is_name_char(d):
                self.fail(
                    "The splatting operator '@' cannot be used to reference variables "
                    "in an expression. Splatting is not supported in this shell."
                )
            return True
        if c == ".":
            if d in DIGITS:
                return False
            if d == "" or is_space(d) or d in NEWLINES:
                self.fail("Dot-sourcing ('. script') is not supported in this shell.")
            return True
        if c in DIGITS:
            m = NUMBER.match(self.src, self.i)
            assert m is not None
            end = m.end()
            f = self.at(end)
            if f == "" or f in _AFTER_NUMBER or is_space(f):
                return False
            return not (f == "." and self.at(end + 1) == ".")
        if c == "&":
            if d == "&":
                self.fail(
                    "The token '&&' is not a valid statement separator in this version.",
                    length=2,
                )
            self.fail("The call operator '&' is not supported in this shell.")
        if c == "<":
            self.fail("The '<' operator is reserved for future use.")
        if c == ">":
            self.fail("Redirection operators are not supported in this shell.")
        if c in "]=":
            self.unexpected()
        return True

    def parse_pipeline(self, assignment: bool) -> ast.Pipeline | ast.Assignment:
        """A pipeline (or, where `assignment` is allowed, an assignment statement)
        starting at the current offset, which is not whitespace."""
        if self.char() == "|":
            self.fail("An empty pipe element is not allowed.")
        first: ast.Command | ast.CommandExpression
        if self.start_is_command():
            first = self.parse_command(statement_start=True)
        else:
            expr = self.parse_expression()
            if assignment:
                op = self.peek_assignment()
                if op is not None:
                    return self.parse_assignment(expr, *op)
            first = ast.CommandExpression(expr.pos, expr)
        elements: list[ast.Command | ast.CommandExpression] = [first]
        while True:
            self.skip_ws()
            if self.char() != "|":
                break
            if self.char(1) == "|":
                self.fail(
                    "The token '||' is not a valid statement separator in this version.",
                    length=2,
                )
            self.i += 1
            after = self.i
            self.skip_ws(newlines=True)
            c = self.char()
            if c == "" or c in ";|)}":
                self.fail("An empty pipe element is not allowed.", after, incomplete=c == "")
            if not self.start_is_command():
                self.fail(
                    "Expressions are only allowed as the first element of a pipeline.",
                    length=len(self.token_text(self.i)),
                )
            elements.append(self.parse_command(statement_start=False))
        return ast.Pipeline(elements[0].pos, tuple(elements))

    def peek_assignment(self) -> tuple[str, int, int] | None:
        self.skip_ws()
        c, d = self.char(), self.char(1)
        if c == "=":
            return None if d == "=" else ("=", self.i, self.i + 1)
        if d == "=" and (c in "+*/%" or c in DASHES):
            return ("-=" if c in DASHES else c + "=", self.i, self.i + 2)
        return None

    def parse_assignment(
        self, target: ast.Expression, op: str, start: int, end: int
    ) -> ast.Assignment:
        if isinstance(target, ast.Cast) and isinstance(target.operand, ast.Variable):
            self.fail(
                "Typed assignment ([type]$name = ...) is not supported in this shell.",
                target.pos,
            )
        if not isinstance(target, ast.Variable | ast.MemberAccess | ast.Index):
            self.fail(
                "The assignment expression is not valid. The input to an assignment "
                "operator must be an object that is able to accept assignments, such as "
                "a variable or a property.",
                target.pos,
            )
        self.i = end
        self.skip_ws(newlines=True)
        c = self.char()
        if c == "" or c in ";)}|":
            self.fail(
                f"You must provide a value expression on the right-hand side of the "
                f"'{self.src[start:end]}' operator.",
                end,
                incomplete=c == "",
            )
        value = self.parse_pipeline(assignment=False)
        assert isinstance(value, ast.Pipeline)
        return ast.Assignment(target.pos, target, op, value)

    # -- commands (argument mode) ---------------------------------------------------

    def parse_command(self, statement_start: bool) -> ast.Command:
        start = self.i
        word = self.parse_bare_word()
        if isinstance(word, ast.StringLiteral):
            name = word.value
        elif isinstance(word, ast.NumberLiteral):
            name = self.src[start : self.i]
        else:
            self.fail("A command name cannot contain variables or sub-expressions.", start)
        if statement_start and name.lower() in _UNSUPPORTED_KEYWORDS:
            self.fail(
                f"The '{name}' keyword is not supported in this version of the language.",
                start,
                length=len(name),
            )
        elements: list[ast.CommandParameter | ast.Expression] = []
        parameters_ended = False
        while True:
            self.skip_ws()
            c = self.char()
            if c == "" or c in _COMMAND_END:
                break
            if c == "&":
                if self.char(1) == "&":
                    self.fail(
                        "The token '&&' is not a valid statement separator in this version.",
                        length=2,
                    )
                self.fail(
                    "The ampersand (&) character is not allowed. The & operator is "
                    'reserved for future use; wrap an ampersand in double quotation marks ("&") '
                    "to pass it as part of a string."
                )
            if c == "<":
                self.fail("The '<' operator is reserved for future use.")
            if c == ">":
                self.fail("Redirection operators are not supported in this shell.")
            if c in DASHES and not parameters_ended:
                element = self.parse_dash_element()
                if element is None:
                    parameters_ended = True
                    continue
                elements.append(element)
            else:
                elements.append(self.parse_argument())
        return ast.Command(start, name, tuple(elements))

    def parse_dash_element(self) -> ast.CommandParameter | ast.Expression | None:
        """At a dash in argument mode: a parameter (`-Name`, `-Name:value`), a lone
        dash (a string), `--` (end of parameters: None) or a word (`-5`, `-x.y`)."""
        start = self.i
        d = self.char(1)
        if d == "" or is_space(d) or d in NEWLINES or d in ARG_STOP:
            self.i += 1
            return ast.StringLiteral(start, self.src[start], bare=True)
        if d in DASHES:
            e = self.char(2)
            if e == "" or is_space(e) or e in NEWLINES or e in ARG_STOP:
                self.i += 2
                return None
        if not (d.isalpha() or d in "_?"):
            return self.parse_argument()
        j = start + 2
        src = self.src
        while j < self.n:
            c = src[j]
            if is_space(c) or c in NEWLINES or c in ARG_STOP or c == ":" or c in QUOTES:
                break
            j += 1
        name = src[start + 1 : j]
        self.i = j
        if self.char() != ":":
            return ast.CommandParameter(start, name)
        self.i += 1
        self.skip_ws()
        c = self.char()
        if c == "" or c in _COMMAND_END or c in "&<>,":
            self.fail(
                f"Missing an argument for parameter '{name}'.",
                incomplete=c == "",
            )
        return ast.CommandParameter(start, name, self.parse_argument())

    def parse_argument(self) -> ast.Expression:
        """One argument: a value, or values joined by commas (an ArrayLiteral)."""
        first = self.parse_argument_value()
        return self.comma_list(first, self.parse_argument_value, self._argument_follows)

    def _argument_follows(self, after: int) -> None:
        c = self.char()
        if c == "" or c in ARG_STOP:
            self.fail("Missing argument in parameter list.", after, incomplete=c == "")

    def parse_argument_value(self) -> ast.Expression:
        self.enter()
        try:
            return self._argument_value()
        finally:
            self.depth -= 1

    def _argument_value(self) -> ast.Expression:
        start = self.i
        c, d = self.char(), self.char(1)
        if c in QUOTES:
            return self.parse_string()
        node: ast.Expression
        if c == "@":
            if d in QUOTES:
                return self.parse_here_string()
            if d == "(" or d == "{":
                node = self.parse_array_expression() if d == "(" else self.parse_hash()
                return self.parse_postfix(node, argument=True)
            if is_name_char(d):
                self.fail("Splatting (@name) is not supported in this shell.")
            return self.parse_bare_word()
        if c == "$":
            if d == "(":
                node = self.parse_subexpression()
            else:
                variable = self.scan_variable()
                if variable is None:
                    return self.parse_bare_word()
                node = variable
            node = self.parse_postfix(node, argument=True)
            f = self.char()
            if f == "" or is_space(f) or f in NEWLINES or f in ARG_STOP:
                return node
            # `$env:TEMP\out.csv`: the rest of the word is expanded into one string.
            parts, _quoted = self.scan_word_parts()
            return ast.ExpandableString(start, (node, *parts))
        if c == "(":
            return self.parse_postfix(self.parse_paren(), argument=True)
        if c == "{":
            return self.parse_postfix(self.parse_script_block(), argument=True)
        if c == ",":
            self.i += 1
            self.skip_ws()
            f = self.char()
            if f == "" or f in NEWLINES or f in ARG_STOP:
                self.fail("Missing argument in parameter list.", incomplete=f == "")
            return ast.ArrayLiteral(start, (self.parse_argument_value(),))
        return self.parse_bare_word()

    def parse_bare_word(self) -> ast.Expression:
        """A word in argument mode: a number, a string, or an expandable string when
        it holds `$var` or `$(...)`."""
        start = self.i
        parts, quoted = self.scan_word_parts()
        if self.i == start:
            self.unexpected()
        if any(not isinstance(p, str) for p in parts):
            return ast.ExpandableString(start, tuple(parts))
        text = "".join(p for p in parts if isinstance(p, str))
        if not quoted:
            number = number_from_word(text)
            if number is not None:
                return ast.NumberLiteral(start, number)
        return ast.StringLiteral(start, text, bare=True)
