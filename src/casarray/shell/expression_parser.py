"""The expression grammar of the shell's language (expression mode: at the start of a
statement that is not a command word, inside `(...)`, after `=`, as operands): binary
operators by precedence, unary operators and casts, variables, literals, member
access, method calls and indexing, `(...)`, `$(...)`, `@(...)`, script blocks and
hash literals. Statements and commands (argument mode) are in `parser`, whose parser
derives from this class; the scanner below it is `scanner`."""

from __future__ import annotations

from collections.abc import Callable

from casarray.shell import ast
from casarray.shell.scanner import (
    ARG_STOP,
    ASCII_LETTERS,
    DASHES,
    DIGITS,
    NEWLINES,
    NUMBER,
    QUOTES,
    Scanner,
    is_name_char,
    is_space,
    number_value,
)

# -- operators -------------------------------------------------------------------

_PREC_LOGICAL, _PREC_BITWISE, _PREC_COMPARISON = 1, 2, 3
_PREC_ADD, _PREC_MULTIPLY, _PREC_FORMAT, _PREC_RANGE = 4, 5, 6, 7


def _binary_operators() -> dict[str, int]:
    table: dict[str, int] = {}
    comparisons: tuple[str, ...] = ("eq", "ne", "gt", "ge", "lt", "le", "like", "notlike")
    comparisons += ("match", "notmatch", "contains", "notcontains", "in", "notin")
    comparisons += ("replace", "split")
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
_MEMBER_START = frozenset("$(")
_TYPE_NAME_CHARS = frozenset("_.,`+ []")


class ExpressionParser(Scanner):
    """Expression mode. A paren, sub-expression, script block or hash value holds
    pipelines and statements again: `parse_pipeline` and `parse_statements` come from
    the statement grammar (`parser._Parser`)."""

    def at_expression_start(self) -> bool:
        c, d = self.char(), self.char(1)
        if c == "":
            return False
        if c == "$":
            return (d != "" and d in "({$^?") or is_name_char(d)
        if c in "([{!+,":
            return True
        if c in QUOTES or c in DIGITS:
            return True
        if c == "@":
            return d != "" and (d in "({" or d in QUOTES)
        if c == ".":
            return d in DIGITS
        if c in DASHES:
            if d in ASCII_LETTERS:
                return self.word_at(self.i + 1).lower() in _UNARY_WORDS
            return d != "="
        return False

    def word_at(self, j: int) -> str:
        k = j
        while k < self.n and self.src[k] in ASCII_LETTERS:
            k += 1
        return self.src[j:k]

    # -- operators and operands -------------------------------------------------------

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
        if c in DASHES:
            if d in ASCII_LETTERS:
                word = self.word_at(i + 1)
                prec = _BINARY_WORDS.get(word.lower())
                if prec is None:
                    return None
                return ("-" + word.lower(), prec, i, i + 1 + len(word))
            if d == "=" or d in DASHES:
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
        return self.comma_list(first, self.parse_unary, self._expression_follows)

    def _expression_follows(self, after: int) -> None:
        if not self.at_expression_start():
            self.fail("Missing expression after ','.", after, incomplete=self.i >= self.n)

    def comma_list(
        self,
        first: ast.Expression,
        parse_item: Callable[[], ast.Expression],
        check_item: Callable[[int], None],
    ) -> ast.Expression:
        """`first`, or an ArrayLiteral of it and the items after each comma; `check_item`
        is given the position after the comma and fails when no item follows."""
        items = [first]
        while True:
            self.skip_ws()
            if self.char() != ",":
                break
            self.i += 1
            after = self.i
            self.skip_ws(newlines=True)
            check_item(after)
            items.append(parse_item())
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
        if c in DASHES:
            if d in ASCII_LETTERS:
                word = self.word_at(start + 1)
                if word.lower() not in _UNARY_WORDS:
                    self.unexpected(start)
                self.i = start + 1 + len(word)
                return self.unary_operand("-" + word.lower(), self.src[start : self.i], start)
            if d in DIGITS or (d == "." and self.char(2) in DIGITS):
                m = NUMBER.match(self.src, start + 1)
                assert m is not None
                self.i = m.end()
                number = ast.NumberLiteral(start, -number_value(m))
                return self.parse_postfix(number, argument=False)
            if d in DASHES:
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
            c in DASHES and (d == "" or is_space(d) or d in NEWLINES)
        ):
            return ast.Cast(type_literal.pos, type_literal, self.parse_unary())
        return type_literal

    def parse_type_literal(self) -> ast.TypeLiteral:
        start = self.i
        src = self.src
        j = start + 1
        while j < self.n and is_space(src[j]):
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
            if d in QUOTES:
                return self.parse_here_string()
            self.unexpected()
        if c == "(":
            return self.parse_paren()
        if c == "{":
            return self.parse_script_block()
        if c in QUOTES:
            return self.parse_string()
        if c in DIGITS or (c == "." and d in DIGITS):
            m = NUMBER.match(self.src, start)
            assert m is not None
            self.i = m.end()
            return ast.NumberLiteral(start, number_value(m))
        self.unexpected()

    def parse_postfix(self, node: ast.Expression, argument: bool) -> ast.Expression:
        """Member access, method calls and indexing written right after a value."""
        while True:
            c, d = self.char(), self.char(1)
            if c == "." and d != ".":
                if argument and not (is_name_char(d) or d in QUOTES or d in _MEMBER_START):
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
        if is_name_char(c):
            j = self.i
            while j < self.n and is_name_char(self.src[j]):
                j += 1
            member = self.src[self.i : j]
            self.i = j
        elif c in QUOTES:
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
            if c not in NEWLINES and c not in ";}":
                self.unexpected()

    def parse_hash_key(self) -> ast.Expression:
        c = self.char()
        if c in "})]":
            self.unexpected()
        if self.at_expression_start() and not (c in DASHES or c in "!+,"):
            return self.parse_unary()
        start = self.i
        j = start
        while j < self.n:
            d = self.src[j]
            if is_space(d) or d in NEWLINES or d in ARG_STOP or d == "=" or d in QUOTES:
                break
            j += 1
        if j == start:
            self.fail("Missing key before '=' in hash literal.")
        self.i = j
        return ast.StringLiteral(start, self.src[start:j], bare=True)

    # -- from the statement grammar ------------------------------------------------------

    def parse_pipeline(self, assignment: bool) -> ast.Pipeline | ast.Assignment:
        raise NotImplementedError

    def parse_statements(
        self, closer: str | None, missing: str = "", missing_pos: int | None = None
    ) -> tuple[ast.Statement, ...]:
        raise NotImplementedError
