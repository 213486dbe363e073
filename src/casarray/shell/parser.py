"""The parser of casarray's PowerShell subset: source text in, `ast.Script` out.

A hand-written, mode-aware scanner and a recursive-descent parser in one class, as
PowerShell's own parser is: the same characters mean different things in *argument
mode* (after a command name: `bj-cas.lab.net`, `DB*`, `C:\\x.csv` are strings, `-Name`
is a parameter) and in *expression mode* (at the start of a statement that is not a
command word, inside `(...)`, after `=`, as operands: `-eq` is an operator, `5` is a
number, bare words are errors). So there is no separate token stream: the parser asks
for the next token in the mode it is in, at the current offset.

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

import re
from typing import NoReturn

from casarray.shell import ast

__all__ = ["ParseError", "is_incomplete", "parse"]

# -- character classes -----------------------------------------------------------

_DASHES = frozenset("-\u2013\u2014\u2015")
_SQUOTES = frozenset("'\u2018\u2019\u201a\u201b")
_DQUOTES = frozenset('"\u201c\u201d\u201e')
_QUOTES = _SQUOTES | _DQUOTES
_NEWLINES = frozenset("\r\n")
_DIGITS = frozenset("0123456789")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Characters that end a bare word in argument mode (besides whitespace and newlines).
_ARG_STOP = frozenset(";|&(){},<>")
# Characters that may follow a number at the start of a statement for it to be a number
# (`1..3`, `5 -gt 3`, `2*3`) rather than the start of a command name (`7z`).
_AFTER_NUMBER = frozenset(" \t\r\n;|)}],+*/%=!<>#") | _DASHES
_MEMBER_START = frozenset("$(")
# Where a command's arguments end.
_COMMAND_END = frozenset(";|)}\r\n")
_TYPE_NAME_CHARS = frozenset("_.,`+ []")

_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
}

_NUMBER = re.compile(
    r"(?:0[xX](?P<hex>[0-9a-fA-F]+)"
    r"|(?P<dec>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<exp>[eE][+-]?[0-9]+)?)"
    r"(?P<suffix>[lLdD])?"
    r"(?P<mult>[kKmMgGtTpP][bB])?"
)
_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# -- operators -------------------------------------------------------------------

_PREC_LOGICAL, _PREC_BITWISE, _PREC_COMPARISON = 1, 2, 3
_PREC_ADD, _PREC_MULTIPLY, _PREC_FORMAT, _PREC_RANGE = 4, 5, 6, 7


def _binary_operators() -> dict[str, int]:
    table: dict[str, int] = {}
    comparisons = ("eq", "ne", "gt", "ge", "lt", "le", "like", "notlike", "match", "notmatch")
    comparisons += ("contains", "notcontains", "in", "notin", "replace", "split")
    for word in comparisons:
        for prefix in ("", "c", "i"):
            table[prefix + word] = _PREC_COMPARISON
    for word in ("join", "is", "isnot", "as", "shl", "shr"):
        table[word] = _PREC_COMPARISON
    for word in ("band", "bor", "bxor"):
        table[word] = _PREC_BITWISE
    for word in ("and", "or", "xor"):
        table[word] = _PREC_LOGICAL
    table["f"] = _PREC_FORMAT
    return table


_BINARY_WORDS = _binary_operators()
_UNARY_WORDS = frozenset({"not", "bnot", "split", "join"})
_SYMBOL_PREC = {"+": _PREC_ADD, "*": _PREC_MULTIPLY, "/": _PREC_MULTIPLY, "%": _PREC_MULTIPLY}

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

# Deepest nesting of expressions, blocks and sub-expressions; a few frames each, well
# inside Python's default recursion limit.
_MAX_DEPTH = 64


def _is_space(c: str) -> bool:
    return c == " " or c == "\t" or (c.isspace() and c not in _NEWLINES)


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _number_value(m: re.Match[str]) -> int | float:
    value: int | float
    hex_digits = m.group("hex")
    if hex_digits is not None:
        value = int(hex_digits, 16)
    else:
        dec, exp = m.group("dec"), m.group("exp")
        exact = "." not in dec and not exp and len(dec) <= 1000
        value = int(dec) if exact else float(dec + (exp or ""))
    mult = m.group("mult")
    if mult:
        value = value * _MULTIPLIERS[mult[0].lower()]
    return value


def _number_from_word(text: str) -> int | float | None:
    """The value of a bare word that is a whole number literal (`5`, `-1`, `10GB`)."""
    negative = bool(text) and text[0] in _DASHES
    m = _NUMBER.fullmatch(text, 1 if negative else 0)
    if m is None:
        return None
    value = _number_value(m)
    return -value if negative else value


def _line_col(source: str, pos: int) -> tuple[int, int]:
    line, start = 1, 0
    for m in _LINE_BREAK.finditer(source, 0, pos):
        line += 1
        start = m.end()
    return line, pos - start + 1


class ParseError(Exception):
    """A syntax error. `pos` is an offset into `source`; `line` and `column` are
    1-based; `incomplete` is True when more input could complete the source (an
    unclosed quote, brace or paren, a trailing pipe or operator)."""

    def __init__(
        self,
        message: str,
        pos: int,
        source: str,
        *,
        length: int = 1,
        incomplete: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.pos = max(0, min(pos, len(source)))
        self.length = max(1, length)
        self.incomplete = incomplete
        self.line, self.column = _line_col(source, self.pos)

    def format(self) -> str:
        """The error in PowerShell's layout: position, the line, a `~` marker, message."""
        lines = _LINE_BREAK.split(self.source)
        text = lines[self.line - 1] if self.line <= len(lines) else ""
        width = max(1, min(self.length, len(text) - self.column + 1))
        marker = " " * (self.column - 1) + "~" * width
        return f"At line:{self.line} char:{self.column}\n+ {text}\n+ {marker}\n{self.message}"


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


class _Parser:
    def __init__(self, source: str) -> None:
        self.src = source
        self.n = len(source)
        self.i = 0
        self.depth = 0
        self.dangling = False  # the source ends in a line continuation

    # -- low level --------------------------------------------------------------

    def char(self, k: int = 0) -> str:
        j = self.i + k
        return self.src[j] if 0 <= j < self.n else ""

    def at(self, j: int) -> str:
        return self.src[j] if 0 <= j < self.n else ""

    def fail(
        self,
        message: str,
        pos: int | None = None,
        *,
        length: int = 1,
        incomplete: bool = False,
    ) -> NoReturn:
        raise ParseError(
            message,
            self.i if pos is None else pos,
            self.src,
            length=length,
            incomplete=incomplete,
        )

    def token_text(self, pos: int) -> str:
        """The text of the token at `pos`, for error messages."""
        src, c = self.src, self.at(pos)
        if c == "":
            return ""
        if c in _QUOTES:
            j = pos + 1
            while j < self.n and src[j] not in _NEWLINES and src[j] not in _QUOTES:
                j += 1
            text = src[pos : j + 1]
        elif c in "(){}[];,":
            text = c
        elif c in "|&":
            text = c * 2 if self.at(pos + 1) == c else c
        else:
            j = pos
            while j < self.n:
                d = src[j]
                if _is_space(d) or d in _NEWLINES or d in "(){}[];,|&" or d in _QUOTES:
                    break
                j += 1
            text = src[pos:j] or c
        return text[:60]

    def line_rest(self, pos: int) -> int:
        """How many characters from `pos` to the end of its line."""
        m = _LINE_BREAK.search(self.src, pos)
        return (m.start() if m else self.n) - pos

    def unexpected(self, pos: int | None = None) -> NoReturn:
        pos = self.i if pos is None else pos
        if pos >= self.n:
            self.fail("Unexpected end of input.", pos, incomplete=True)
        text = self.token_text(pos)
        self.fail(f"Unexpected token '{text}' in expression or statement.", pos, length=len(text))

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail("The script is nested too deeply.")

    def skip_ws(self, newlines: bool = False) -> None:
        """Skip spaces, comments and line continuations (and newlines if asked)."""
        src, n, i = self.src, self.n, self.i
        while i < n:
            c = src[i]
            if c in _NEWLINES:
                if not newlines:
                    break
                i += 1
            elif _is_space(c):
                i += 1
            elif c == "`":
                d = src[i + 1] if i + 1 < n else ""
                if d == "":
                    self.dangling = True
                    i += 1
                elif d == "\n":
                    i += 2
                elif d == "\r":
                    i += 3 if src.startswith("\n", i + 2) else 2
                else:
                    break
                if d and not src[i:].strip():
                    self.dangling = True
            elif c == "#":
                while i < n and src[i] not in _NEWLINES:
                    i += 1
            elif c == "<" and i + 1 < n and src[i + 1] == "#":
                end = src.find("#>", i + 2)
                if end < 0:
                    self.i = i
                    self.fail("The comment is missing the terminator: '#>'.", i, incomplete=True)
                i = end + 2
            else:
                break
        self.i = i

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
            if c == "" or c in _NEWLINES or c == ";" or c == closer:
                continue
            self.unexpected()

    def start_is_command(self) -> bool:
        """Whether the pipeline element at the current offset is a command (else an
        expression). Raises for constructs this shell does not support."""
        c, d = self.char(), self.char(1)
        if c in "$([{!+," or c in _QUOTES or c in _DASHES:
            return False
        if c == "@":
            if d in "({" or d in _QUOTES:
                return False
            if _is_name_char(d):
                self.fail(
                    "The splatting operator '@' cannot be used to reference variables "
                    "in an expression. Splatting is not supported in this shell."
                )
            return True
        if c == ".":
            if d in _DIGITS:
                return False
            if d == "" or _is_space(d) or d in _NEWLINES:
                self.fail("Dot-sourcing ('. script') is not supported in this shell.")
            return True
        if c in _DIGITS:
            m = _NUMBER.match(self.src, self.i)
            assert m is not None
            end = m.end()
            f = self.at(end)
            if f == "" or f in _AFTER_NUMBER or _is_space(f):
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
        if d == "=" and (c in "+*/%" or c in _DASHES):
            return ("-=" if c in _DASHES else c + "=", self.i, self.i + 2)
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
            if c in _DASHES and not parameters_ended:
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
        if d == "" or _is_space(d) or d in _NEWLINES or d in _ARG_STOP:
            self.i += 1
            return ast.StringLiteral(start, self.src[start], bare=True)
        if d in _DASHES:
            e = self.char(2)
            if e == "" or _is_space(e) or e in _NEWLINES or e in _ARG_STOP:
                self.i += 2
                return None
        if not (d.isalpha() or d in "_?"):
            return self.parse_argument()
        j = start + 2
        src = self.src
        while j < self.n:
            c = src[j]
            if _is_space(c) or c in _NEWLINES or c in _ARG_STOP or c == ":" or c in _QUOTES:
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
        items = [first]
        while True:
            self.skip_ws()
            if self.char() != ",":
                break
            comma = self.i
            self.i += 1
            self.skip_ws(newlines=True)
            c = self.char()
            if c == "" or c in _ARG_STOP:
                self.fail("Missing argument in parameter list.", comma + 1, incomplete=c == "")
            items.append(self.parse_argument_value())
        if len(items) == 1:
            return first
        return ast.ArrayLiteral(first.pos, tuple(items))

    def parse_argument_value(self) -> ast.Expression:
        self.enter()
        try:
            return self._argument_value()
        finally:
            self.depth -= 1

    def _argument_value(self) -> ast.Expression:
        start = self.i
        c, d = self.char(), self.char(1)
        if c in _QUOTES:
            return self.parse_string()
        node: ast.Expression
        if c == "@":
            if d in _QUOTES:
                return self.parse_here_string()
            if d == "(" or d == "{":
                node = self.parse_array_expression() if d == "(" else self.parse_hash()
                return self.parse_postfix(node, argument=True)
            if _is_name_char(d):
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
            if f == "" or _is_space(f) or f in _NEWLINES or f in _ARG_STOP:
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
            if f == "" or f in _NEWLINES or f in _ARG_STOP:
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
            number = _number_from_word(text)
            if number is not None:
                return ast.NumberLiteral(start, number)
        return ast.StringLiteral(start, text, bare=True)

    def scan_word_parts(self) -> tuple[list[str | ast.Expression], bool]:
        """The pieces of a bare word up to whitespace or an argument separator;
        quotes and backtick escapes inside it are processed as PowerShell does."""
        src, n = self.src, self.n
        parts: list[str | ast.Expression] = []
        buf: list[str] = []
        quoted = False
        while self.i < n:
            c = src[self.i]
            if _is_space(c) or c in _NEWLINES or c in _ARG_STOP:
                break
            if c == "`":
                d = self.char(1)
                if d == "" or d in _NEWLINES:
                    break
                buf.append(self.scan_escape())
                quoted = True
            elif c in _SQUOTES:
                buf.append(self.scan_single_quoted())
                quoted = True
            elif c in _DQUOTES:
                quoted = True
                for part in self.scan_double_quoted():
                    if isinstance(part, str):
                        buf.append(part)
                    else:
                        if buf:
                            parts.append("".join(buf))
                            buf = []
                        parts.append(part)
            elif c == "$" and (expansion := self.scan_expansion()) is not None:
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(expansion)
            else:
                buf.append(c)
                self.i += 1
        if buf:
            parts.append("".join(buf))
        return parts, quoted

    # -- expressions ----------------------------------------------------------------

    def at_expression_start(self) -> bool:
        c, d = self.char(), self.char(1)
        if c == "":
            return False
        if c == "$":
            return (d != "" and d in "({$^?") or _is_name_char(d)
        if c in "([{!+,":
            return True
        if c in _QUOTES or c in _DIGITS:
            return True
        if c == "@":
            return d != "" and (d in "({" or d in _QUOTES)
        if c == ".":
            return d in _DIGITS
        if c in _DASHES:
            if d in _ASCII_LETTERS:
                return self.word_at(self.i + 1).lower() in _UNARY_WORDS
            return d != "="
        return False

    def word_at(self, j: int) -> str:
        k = j
        while k < self.n and self.src[k] in _ASCII_LETTERS:
            k += 1
        return self.src[j:k]

    def parse_expression(self, comma: bool = True) -> ast.Expression:
        return self.parse_binary(_PREC_LOGICAL, comma)

    def parse_binary(self, min_prec: int, comma: bool) -> ast.Expression:
        left = self.parse_array_literal(comma)
        while True:
            op = self.peek_binary()
            if op is None or op[1] < min_prec:
                return left
            name, prec, start, end = op
            self.i = end
            self.skip_ws(newlines=True)
            if not self.at_expression_start():
                self.fail(
                    f"You must provide a value expression following the "
                    f"'{self.src[start:end]}' operator.",
                    end,
                    incomplete=self.i >= self.n,
                )
            right = self.parse_binary(prec + 1, comma)
            left = ast.Binary(left.pos, name, left, right)

    def peek_binary(self) -> tuple[str, int, int, int] | None:
        """The binary operator at the current offset: (name, precedence, start, end)."""
        self.skip_ws()
        i, c, d = self.i, self.char(), self.char(1)
        if c in _DASHES:
            if d in _ASCII_LETTERS:
                word = self.word_at(i + 1)
                prec = _BINARY_WORDS.get(word.lower())
                if prec is None:
                    return None
                return ("-" + word.lower(), prec, i, i + 1 + len(word))
            if d == "=" or d in _DASHES:
                return None
            return ("-", _PREC_ADD, i, i + 1)
        if c in _SYMBOL_PREC:
            if d == "=" or (c == "+" and d == "+"):
                return None
            return (c, _SYMBOL_PREC[c], i, i + 1)
        if c == "." and d == ".":
            return ("..", _PREC_RANGE, i, i + 2)
        return None

    def parse_array_literal(self, comma: bool) -> ast.Expression:
        first = self.parse_unary()
        if not comma:
            return first
        items = [first]
        while True:
            self.skip_ws()
            if self.char() != ",":
                break
            after = self.i + 1
            self.i = after
            self.skip_ws(newlines=True)
            if not self.at_expression_start():
                self.fail("Missing expression after ','.", after, incomplete=self.i >= self.n)
            items.append(self.parse_unary())
        if len(items) == 1:
            return first
        return ast.ArrayLiteral(first.pos, tuple(items))

    def parse_unary(self) -> ast.Expression:
        self.enter()
        try:
            return self._unary()
        finally:
            self.depth -= 1

    def _unary(self) -> ast.Expression:
        start = self.i
        c, d = self.char(), self.char(1)
        if c == "!":
            self.i += 1
            return self.unary_operand("!", "!", start)
        if c == "+":
            self.i += 1
            return self.unary_operand("+", "+", start)
        if c == ",":
            self.i += 1
            self.skip_ws(newlines=True)
            if not self.at_expression_start():
                self.fail(
                    "Missing expression after unary operator ','.",
                    incomplete=self.i >= self.n,
                )
            return ast.ArrayLiteral(start, (self.parse_unary(),))
        if c in _DASHES:
            if d in _ASCII_LETTERS:
                word = self.word_at(start + 1)
                if word.lower() not in _UNARY_WORDS:
                    self.unexpected(start)
                self.i = start + 1 + len(word)
                return self.unary_operand("-" + word.lower(), self.src[start : self.i], start)
            if d in _DIGITS or (d == "." and self.char(2) in _DIGITS):
                m = _NUMBER.match(self.src, start + 1)
                assert m is not None
                self.i = m.end()
                number = ast.NumberLiteral(start, -_number_value(m))
                return self.parse_postfix(number, argument=False)
            if d in _DASHES:
                self.fail("The '--' operator is not supported in this shell.", length=2)
            self.i += 1
            return self.unary_operand("-", c, start)
        if c == "[":
            return self.parse_type_or_cast()
        return self.parse_postfix(self.parse_primary(), argument=False)

    def unary_operand(self, op: str, written: str, start: int) -> ast.Unary:
        self.skip_ws()
        if not self.at_expression_start():
            self.fail(
                f"Missing expression after unary operator '{written}'.",
                incomplete=self.i >= self.n,
            )
        return ast.Unary(start, op, self.parse_unary())

    def parse_type_or_cast(self) -> ast.Expression:
        type_literal = self.parse_type_literal()
        c, d = self.char(), self.char(1)
        if (c == ":" and d == ":") or (c == "." and d != "."):
            return self.parse_postfix(type_literal, argument=False)
        self.skip_ws()
        c, d = self.char(), self.char(1)
        if self.at_expression_start() and not (
            c in _DASHES and (d == "" or _is_space(d) or d in _NEWLINES)
        ):
            return ast.Cast(type_literal.pos, type_literal, self.parse_unary())
        return type_literal

    def parse_type_literal(self) -> ast.TypeLiteral:
        start = self.i
        src = self.src
        j = start + 1
        while j < self.n and _is_space(src[j]):
            j += 1
        first = self.at(j)
        if first == "":
            self.fail("Missing ] at end of attribute or type literal.", j, incomplete=True)
        if not (first.isalpha() or first == "_"):
            self.fail("Missing type name after '['.", j)
        depth = 1
        while j < self.n:
            c = src[j]
            if c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
                if depth == 0:
                    break
            elif not (c.isalnum() or c in _TYPE_NAME_CHARS):
                self.fail("Missing ] at end of attribute or type literal.", j)
            j += 1
        if j >= self.n:
            self.fail("Missing ] at end of attribute or type literal.", j, incomplete=True)
        self.i = j + 1
        return ast.TypeLiteral(start, src[start + 1 : j].strip())

    def parse_primary(self) -> ast.Expression:
        start = self.i
        c, d = self.char(), self.char(1)
        if c == "$":
            if d == "(":
                return self.parse_subexpression()
            variable = self.scan_variable()
            if variable is None:
                self.fail(
                    "Variable reference is not valid. '$' was not followed by a valid "
                    "variable name character. Consider using ${} to delimit the name."
                )
            return variable
        if c == "@":
            if d == "(":
                return self.parse_array_expression()
            if d == "{":
                return self.parse_hash()
            if d in _QUOTES:
                return self.parse_here_string()
            self.unexpected()
        if c == "(":
            return self.parse_paren()
        if c == "{":
            return self.parse_script_block()
        if c in _QUOTES:
            return self.parse_string()
        if c in _DIGITS or (c == "." and d in _DIGITS):
            m = _NUMBER.match(self.src, start)
            assert m is not None
            self.i = m.end()
            return ast.NumberLiteral(start, _number_value(m))
        self.unexpected()

    def parse_postfix(self, node: ast.Expression, argument: bool) -> ast.Expression:
        """Member access, method calls and indexing written right after a value."""
        while True:
            c, d = self.char(), self.char(1)
            if c == "." and d != ".":
                if argument and not (_is_name_char(d) or d in _QUOTES or d in _MEMBER_START):
                    return node
                self.i += 1
                node = self.parse_member(node)
            elif c == ":" and d == ":":
                self.i += 2
                node = self.parse_member(node)
            elif c == "[":
                node = self.parse_index(node)
            else:
                return node

    def parse_member(self, target: ast.Expression) -> ast.Expression:
        c = self.char()
        member: str | ast.Expression
        if _is_name_char(c):
            j = self.i
            while j < self.n and _is_name_char(self.src[j]):
                j += 1
            member = self.src[self.i : j]
            self.i = j
        elif c in _QUOTES:
            string = self.parse_string()
            member = string.value if isinstance(string, ast.StringLiteral) else string
        elif c == "$":
            member = self.parse_primary()
        elif c == "(":
            member = self.parse_paren()
        else:
            self.fail(
                "Missing property name after reference operator.",
                incomplete=c == "",
            )
        if self.char() == "(" and isinstance(member, str):
            return ast.MethodCall(target.pos, target, member, self.parse_method_arguments())
        return ast.MemberAccess(target.pos, target, member)

    def parse_method_arguments(self) -> tuple[ast.Expression, ...]:
        self.i += 1
        arguments: list[ast.Expression] = []
        self.skip_ws(newlines=True)
        if self.char() == ")":
            self.i += 1
            return ()
        while True:
            if self.char() == "" or not self.at_expression_start() or self.char() == ",":
                if self.char() in (",", ")"):
                    self.fail("Missing argument in parameter list.")
                self.fail("Missing ')' in method call.", incomplete=self.i >= self.n)
            arguments.append(self.parse_expression(comma=False))
            self.skip_ws(newlines=True)
            c = self.char()
            if c == ",":
                self.i += 1
                self.skip_ws(newlines=True)
                continue
            if c == ")":
                self.i += 1
                return tuple(arguments)
            self.fail("Missing ')' in method call.", incomplete=c == "")

    def parse_index(self, target: ast.Expression) -> ast.Index:
        self.i += 1
        self.skip_ws(newlines=True)
        if not self.at_expression_start():
            if self.char() == "":
                self.fail("Missing ']' after array index expression.", incomplete=True)
            self.fail("Array index expression is missing or not valid.")
        index = self.parse_expression()
        self.skip_ws(newlines=True)
        if self.char() != "]":
            self.fail("Missing ']' after array index expression.", incomplete=self.i >= self.n)
        self.i += 1
        return ast.Index(target.pos, target, index)

    # -- bracketed constructs -----------------------------------------------------------

    def parse_paren(self) -> ast.ParenExpression:
        start = self.i
        self.i += 1
        self.skip_ws(newlines=True)
        c = self.char()
        if c == ")":
            self.fail("An expression was expected after '('.")
        if c == "":
            self.fail("Missing closing ')' in expression.", incomplete=True)
        if c in ";}]":
            self.unexpected()
        pipeline = self.parse_pipeline(assignment=False)
        assert isinstance(pipeline, ast.Pipeline)
        self.skip_ws(newlines=True)
        c = self.char()
        if c == "":
            self.fail("Missing closing ')' in expression.", incomplete=True)
        if c != ")":
            self.unexpected()
        self.i += 1
        return ast.ParenExpression(start, pipeline)

    def parse_subexpression(self) -> ast.SubExpression:
        start = self.i
        self.i += 2
        body = self.parse_statements(")", "Missing closing ')' in subexpression.")
        self.i += 1
        return ast.SubExpression(start, ast.Script(start + 2, body))

    def parse_array_expression(self) -> ast.ArrayExpression:
        start = self.i
        self.i += 2
        body = self.parse_statements(")", "Missing closing ')' in array subexpression.")
        self.i += 1
        return ast.ArrayExpression(start, ast.Script(start + 2, body))

    def parse_script_block(self) -> ast.ScriptBlock:
        start = self.i
        self.i += 1
        body = self.parse_statements(
            "}", "Missing closing '}' in statement block or type definition.", start
        )
        text = self.src[start + 1 : self.i]
        self.i += 1
        return ast.ScriptBlock(start, ast.Script(start + 1, body), text)

    def parse_hash(self) -> ast.HashLiteral:
        start = self.i
        self.i += 2
        entries: list[tuple[ast.Expression, ast.Pipeline]] = []
        while True:
            self.skip_ws(newlines=True)
            c = self.char()
            if c == ";":
                self.i += 1
                continue
            if c == "}":
                self.i += 1
                return ast.HashLiteral(start, tuple(entries))
            if c == "":
                self.fail("The hash literal was incomplete.", start, incomplete=True)
            key = self.parse_hash_key()
            self.skip_ws()
            if self.char() != "=":
                self.fail(
                    "Missing '=' operator after key in hash literal.",
                    incomplete=self.i >= self.n,
                )
            self.i += 1
            self.skip_ws(newlines=True)
            c = self.char()
            if c == "" or c in ";})]|":
                self.fail("Missing statement after '=' in hash literal.", incomplete=c == "")
            value = self.parse_pipeline(assignment=False)
            assert isinstance(value, ast.Pipeline)
            entries.append((key, value))
            self.skip_ws()
            c = self.char()
            if c == "":
                self.fail("The hash literal was incomplete.", start, incomplete=True)
            if c not in _NEWLINES and c not in ";}":
                self.unexpected()

    def parse_hash_key(self) -> ast.Expression:
        c = self.char()
        if c in "})]":
            self.unexpected()
        if self.at_expression_start() and not (c in _DASHES or c in "!+,"):
            return self.parse_unary()
        start = self.i
        j = start
        while j < self.n:
            d = self.src[j]
            if _is_space(d) or d in _NEWLINES or d in _ARG_STOP or d == "=" or d in _QUOTES:
                break
            j += 1
        if j == start:
            self.fail("Missing key before '=' in hash literal.")
        self.i = j
        return ast.StringLiteral(start, self.src[start:j], bare=True)

    # -- strings and variables --------------------------------------------------------

    def parse_string(self) -> ast.StringLiteral | ast.ExpandableString:
        """A single- or double-quoted string at the current offset."""
        start = self.i
        if self.char() in _SQUOTES:
            return ast.StringLiteral(start, self.scan_single_quoted())
        return self.make_string(start, self.scan_double_quoted())

    @staticmethod
    def make_string(
        start: int, parts: list[str | ast.Expression]
    ) -> ast.StringLiteral | ast.ExpandableString:
        if all(isinstance(p, str) for p in parts):
            return ast.StringLiteral(start, "".join(p for p in parts if isinstance(p, str)))
        return ast.ExpandableString(start, tuple(parts))

    def scan_single_quoted(self) -> str:
        start = self.i
        src, n = self.src, self.n
        j = start + 1
        buf: list[str] = []
        while j < n:
            c = src[j]
            if c in _SQUOTES:
                if j + 1 < n and src[j + 1] in _SQUOTES:
                    buf.append(c)
                    j += 2
                    continue
                self.i = j + 1
                return "".join(buf)
            buf.append(c)
            j += 1
        self.fail(
            "The string is missing the terminator: '.",
            start,
            length=self.line_rest(start),
            incomplete=True,
        )

    def scan_double_quoted(self) -> list[str | ast.Expression]:
        start = self.i
        src, n = self.src, self.n
        self.i += 1
        parts: list[str | ast.Expression] = []
        buf: list[str] = []
        while self.i < n:
            c = src[self.i]
            if c in _DQUOTES:
                if self.i + 1 < n and src[self.i + 1] in _DQUOTES:
                    buf.append(c)
                    self.i += 2
                    continue
                self.i += 1
                if buf:
                    parts.append("".join(buf))
                return parts
            if c == "`":
                if self.i + 1 >= n:
                    break
                buf.append(self.scan_escape())
            elif c == "$" and (expansion := self.scan_expansion()) is not None:
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(expansion)
            else:
                buf.append(c)
                self.i += 1
        self.fail(
            'The string is missing the terminator: ".',
            start,
            length=self.line_rest(start),
            incomplete=True,
        )

    def parse_here_string(self) -> ast.StringLiteral | ast.ExpandableString:
        start = self.i
        src, n = self.src, self.n
        expandable = self.char(1) in _DQUOTES
        j = start + 2
        while j < n and _is_space(src[j]):
            j += 1
        if j < n and src[j] not in _NEWLINES:
            self.fail(
                "No characters are allowed after a here-string header but before the end "
                "of the line.",
                j,
            )
        j += 2 if src.startswith("\r\n", j) else 1
        quotes = _DQUOTES if expandable else _SQUOTES
        terminator = '"@' if expandable else "'@"
        self.i = j
        parts: list[str | ast.Expression] = []
        buf: list[str] = []
        line_start = True
        while self.i < n:
            c = src[self.i]
            if line_start and c in quotes and self.at(self.i + 1) == "@":
                if buf and buf[-1] == "\n":
                    buf.pop()
                if buf and buf[-1] == "\r":
                    buf.pop()
                self.i += 2
                if buf:
                    parts.append("".join(buf))
                if not expandable:
                    return ast.StringLiteral(start, "".join(p for p in parts if isinstance(p, str)))
                return self.make_string(start, parts)
            line_start = False
            if c in _NEWLINES:
                buf.append(c)
                self.i += 1
                line_start = c == "\n" or self.char() != "\n"
            elif expandable and c == "`" and self.i + 1 < n:
                buf.append(self.scan_escape())
            elif expandable and c == "$" and (expansion := self.scan_expansion()) is not None:
                if buf:
                    parts.append("".join(buf))
                    buf = []
                parts.append(expansion)
            else:
                buf.append(c)
                self.i += 1
        self.fail(
            f"The string is missing the terminator: {terminator}.",
            start,
            length=self.line_rest(start),
            incomplete=True,
        )

    def scan_escape(self) -> str:
        """A backtick escape at the current offset (the backtick and one character)."""
        c = self.char(1)
        self.i += 2
        if c == "u" and self.char() == "{":
            j = self.i + 1
            k = j
            while k < self.n and k - j < 6 and self.src[k] in "0123456789abcdefABCDEF":
                k += 1
            if k > j and self.at(k) == "}":
                code = int(self.src[j:k], 16)
                if code <= 0x10FFFF:
                    self.i = k + 1
                    return chr(code)
        return _ESCAPES.get(c, c)

    def scan_expansion(self) -> ast.Expression | None:
        """`$name`, `${name}` or `$(...)` inside a string or bare word; None when the
        dollar sign is just a character."""
        if self.char(1) == "(":
            self.enter()
            try:
                return self.parse_subexpression()
            finally:
                self.depth -= 1
        return self.scan_variable()

    def scan_variable(self) -> ast.Variable | None:
        start = self.i
        src, n = self.src, self.n
        d = self.char(1)
        if d == "{":
            j = start + 2
            buf: list[str] = []
            while j < n and src[j] != "}":
                if src[j] == "`" and j + 1 < n:
                    buf.append(src[j + 1])
                    j += 2
                    continue
                buf.append(src[j])
                j += 1
            if j >= n:
                self.fail("Missing '}' at end of variable name.", start, incomplete=True)
            if not buf:
                self.fail("Empty ${} variable reference, there should be a name after '${'.", start)
            self.i = j + 1
            return ast.Variable(start, "".join(buf))
        if d != "" and d in "$^?":
            self.i = start + 2
            return ast.Variable(start, d)
        if not _is_name_char(d):
            return None
        j = start + 1
        while j < n and _is_name_char(src[j]):
            j += 1
        if j + 1 < n and src[j] == ":" and _is_name_char(src[j + 1]):
            j += 1
            while j < n and _is_name_char(src[j]):
                j += 1
        self.i = j
        return ast.Variable(start, src[start + 1 : j])
