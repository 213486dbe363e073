"""The scanner of the shell's language: character classes, number literals, quoted
strings and here-strings with their escapes, variables and `$(...)` expansions,
whitespace, comments and line continuations, and `ParseError`.

There is no token stream: what a run of characters is depends on the mode the parser
is in (argument mode or expression mode, see `parser`), so the grammar asks for what
it expects at the current offset. `Scanner` holds the source and that offset; the
grammar (`expression_parser.ExpressionParser`, `parser._Parser`) derives from it."""

from __future__ import annotations

import re
from typing import NoReturn

from casarray.errors import CasarrayError
from casarray.shell import ast

# -- character classes -----------------------------------------------------------

DASHES = frozenset("-\u2013\u2014\u2015")
SQUOTES = frozenset("'\u2018\u2019\u201a\u201b")
DQUOTES = frozenset('"\u201c\u201d\u201e')
QUOTES = SQUOTES | DQUOTES
NEWLINES = frozenset("\r\n")
DIGITS = frozenset("0123456789")
ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Characters that end a bare word in argument mode (besides whitespace and newlines).
ARG_STOP = frozenset(";|&(){},<>")

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

NUMBER = re.compile(
    r"(?:0[xX](?P<hex>[0-9a-fA-F]+)"
    r"|(?P<dec>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?P<exp>[eE][+-]?[0-9]+)?)"
    r"(?P<suffix>[lLdD])?"
    r"(?P<mult>[kKmMgGtTpP][bB])?"
)
_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

# Deepest nesting of expressions, blocks and sub-expressions; a few frames each, well
# inside Python's default recursion limit.
_MAX_DEPTH = 64


def is_space(c: str) -> bool:
    return c == " " or c == "\t" or (c.isspace() and c not in NEWLINES)


def is_name_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def number_value(m: re.Match[str]) -> int | float:
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


def number_from_word(text: str) -> int | float | None:
    """The value of a bare word that is a whole number literal (`5`, `-1`, `10GB`)."""
    negative = bool(text) and text[0] in DASHES
    m = NUMBER.fullmatch(text, 1 if negative else 0)
    if m is None:
        return None
    value = number_value(m)
    return -value if negative else value


def _line_col(source: str, pos: int) -> tuple[int, int]:
    line, start = 1, 0
    for m in _LINE_BREAK.finditer(source, 0, pos):
        line += 1
        start = m.end()
    return line, pos - start + 1


class ParseError(CasarrayError):
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


class Scanner:
    """The source, the offset the grammar has reached, and the lexical level: low-level
    access and errors, whitespace and comments, bare words, strings and variables."""

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
        if c in QUOTES:
            j = pos + 1
            while j < self.n and src[j] not in NEWLINES and src[j] not in QUOTES:
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
                if is_space(d) or d in NEWLINES or d in "(){}[];,|&" or d in QUOTES:
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
            if c in NEWLINES:
                if not newlines:
                    break
                i += 1
            elif is_space(c):
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
                while i < n and src[i] not in NEWLINES:
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

    # -- bare words, strings and variables ---------------------------------------------

    def scan_word_parts(self) -> tuple[list[str | ast.Expression], bool]:
        """The pieces of a bare word up to whitespace or an argument separator;
        quotes and backtick escapes inside it are processed as PowerShell does."""
        src, n = self.src, self.n
        parts: list[str | ast.Expression] = []
        buf: list[str] = []
        quoted = False
        while self.i < n:
            c = src[self.i]
            if is_space(c) or c in NEWLINES or c in ARG_STOP:
                break
            if c == "`":
                d = self.char(1)
                if d == "" or d in NEWLINES:
                    break
                buf.append(self.scan_escape())
                quoted = True
            elif c in SQUOTES:
                buf.append(self.scan_single_quoted())
                quoted = True
            elif c in DQUOTES:
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

    def parse_string(self) -> ast.StringLiteral | ast.ExpandableString:
        """A single- or double-quoted string at the current offset."""
        start = self.i
        if self.char() in SQUOTES:
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
            if c in SQUOTES:
                if j + 1 < n and src[j + 1] in SQUOTES:
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
            if c in DQUOTES:
                if self.i + 1 < n and src[self.i + 1] in DQUOTES:
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
        expandable = self.char(1) in DQUOTES
        j = start + 2
        while j < n and is_space(src[j]):
            j += 1
        if j < n and src[j] not in NEWLINES:
            self.fail(
                "No characters are allowed after a here-string header but before the end "
                "of the line.",
                j,
            )
        j += 2 if src.startswith("\r\n", j) else 1
        quotes = DQUOTES if expandable else SQUOTES
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
            if c in NEWLINES:
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
        if not is_name_char(d):
            return None
        j = start + 1
        while j < n and is_name_char(src[j]):
            j += 1
        if j + 1 < n and src[j] == ":" and is_name_char(src[j + 1]):
            j += 1
            while j < n and is_name_char(src[j]):
                j += 1
        self.i = j
        return ast.Variable(start, src[start + 1 : j])

    def parse_subexpression(self) -> ast.SubExpression:
        """`$(...)` at the current offset; the expression grammar defines it."""
        raise NotImplementedError
