"""The evaluator: runs statements and evaluates expressions of a parsed script
(`ast`) in a session. A statement is an assignment or a pipeline (`pipeline`); at top
level its output goes to Out-Default, inside an expression (`$(...)`, `@(...)`, a
script block) it is collected and returned. Expressions are evaluated by node type
(`_eval_<Node>`), with PowerShell's operators (`operators`) and conversions
(`values`); variables live in the session's scopes (`variables`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from casarray.shell import ast
from casarray.shell.errors import ErrorRecord, TerminatingError, record_from_exception
from casarray.shell.operators import binary, unary
from casarray.shell.pipeline import run_pipeline
from casarray.shell.psobject import PSObject
from casarray.shell.values import (
    ScriptBlockValue,
    ShellRuntimeError,
    call_method,
    get_member,
    is_collection,
    set_member,
    to_string,
    truthy,
)
from casarray.shell.variables import MISSING, Scope

if TYPE_CHECKING:
    from casarray.shell.runtime import Session


class Evaluator:
    """Runs the statements and evaluates the expressions of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- statements -------------------------------------------------------------

    def run_statement(self, statement: ast.Statement, *, top_level: bool = False) -> list[Any]:
        """Run one statement; at top level its output goes to Out-Default, otherwise it
        is returned."""
        try:
            if isinstance(statement, ast.Assignment):
                self.assign(statement)
                return []
            stream = self.pipeline(statement)
            if top_level:
                from casarray.shell.formatting import out_default

                out_default(self.session, stream)
                return []
            return list(stream)
        except TerminatingError as exc:
            self.session.report(exc.record, silent=exc.record.category == "_silent")
        except RecursionError:
            self.session.report(
                ErrorRecord(
                    "The script failed due to call depth overflow.",
                    category="InvalidOperation",
                    pos=statement.pos,
                    source=self.session.source,
                )
            )
        except Exception as exc:  # an evaluation error stops the statement
            self.session.report(
                record_from_exception(exc, None, statement.pos, self.session.source)
            )
        return []

    def run_script(self, script: ast.Script) -> list[Any]:
        """The output of a script's statements (a script block's, `$(...)`'s body)."""
        out: list[Any] = []
        for statement in script.statements:
            out.extend(self.run_inner(statement))
        return out

    def run_inner(self, statement: ast.Statement) -> list[Any]:
        """A statement inside an expression: errors propagate to the caller."""
        if isinstance(statement, ast.Assignment):
            self.assign(statement)
            return []
        return list(self.pipeline(statement))

    def pipeline(
        self, node: ast.Pipeline, input_stream: Iterable[Any] | None = None
    ) -> Iterator[Any]:
        """A pipeline's output, as it streams (see `pipeline.run_pipeline`)."""
        return run_pipeline(self.session, node, input_stream)

    # -- assignments -----------------------------------------------------------

    def assign(self, node: ast.Assignment) -> None:
        produced = self.run_inner(node.value)
        value: Any = None if not produced else produced[0] if len(produced) == 1 else produced
        if (
            len(node.value.elements) == 1
            and isinstance(node.value.elements[0], ast.CommandExpression)
            and len(produced) != 1
        ):
            value = self.evaluate(node.value.elements[0].expression)
        if node.operator != "=":
            current = self.evaluate(node.target)
            value = binary(node.operator[0], current, value, self.session)
        target = node.target
        if isinstance(target, ast.Variable):
            self.session.set_variable(target.name, value)
        elif isinstance(target, ast.MemberAccess):
            member = (
                target.member
                if isinstance(target.member, str)
                else to_string(self.evaluate(target.member))
            )
            set_member(self.evaluate(target.target), member, value)
        elif isinstance(target, ast.Index):
            container = self.evaluate(target.target)
            index = self.evaluate(target.index)
            if isinstance(container, list):
                container[int(index)] = value
            elif isinstance(container, dict):
                set_member(container, to_string(index), value)
            else:
                raise ShellRuntimeError("Unable to index into this object.", target.pos)
        else:
            raise ShellRuntimeError(
                "The assignment expression is not valid. The input to an assignment operator "
                "must be an object that is able to accept assignments, such as a variable or a "
                "property.",
                node.pos,
            )

    # -- expressions ----------------------------------------------------------

    def evaluate(self, node: Any) -> Any:
        method: Callable[[Any], Any] | None = getattr(self, "_eval_" + type(node).__name__, None)
        if method is None:
            raise ShellRuntimeError(f"Cannot evaluate {type(node).__name__}.", node.pos)
        try:
            return method(node)
        except ShellRuntimeError as exc:
            if exc.pos is None:
                exc.pos = node.pos
            raise

    def _eval_StringLiteral(self, node: ast.StringLiteral) -> Any:
        return node.value

    def _eval_ExpandableString(self, node: ast.ExpandableString) -> str:
        return "".join(
            part if isinstance(part, str) else to_string(self.evaluate(part)) for part in node.parts
        )

    def _eval_NumberLiteral(self, node: ast.NumberLiteral) -> Any:
        return node.value

    def _eval_Variable(self, node: ast.Variable) -> Any:
        return self.session.get_variable(node.name)

    def _eval_ArrayLiteral(self, node: ast.ArrayLiteral) -> list[Any]:
        return [self.evaluate(item) for item in node.items]

    def _eval_ArrayExpression(self, node: ast.ArrayExpression) -> list[Any]:
        return self.run_script(node.body)

    def _eval_SubExpression(self, node: ast.SubExpression) -> Any:
        out = self.run_script(node.body)
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    def _eval_ParenExpression(self, node: ast.ParenExpression) -> Any:
        elements = node.pipeline.elements
        if len(elements) == 1 and isinstance(elements[0], ast.CommandExpression):
            return self.evaluate(elements[0].expression)
        out = list(self.pipeline(node.pipeline))
        if not out:
            return None
        return out[0] if len(out) == 1 else out

    def _eval_HashLiteral(self, node: ast.HashLiteral) -> dict[Any, Any]:
        table: dict[Any, Any] = {}
        for key_node, value_node in node.entries:
            key = self.evaluate(key_node)
            out = self.run_inner(value_node)
            elements = value_node.elements
            if len(elements) == 1 and isinstance(elements[0], ast.CommandExpression):
                value = self.evaluate(elements[0].expression)
            else:
                value = None if not out else out[0] if len(out) == 1 else out
            if any(str(k).lower() == str(key).lower() for k in table):
                raise ShellRuntimeError(
                    f"Duplicate keys '{key}' are not allowed in hash literals.", key_node.pos
                )
            table[key] = value
        return table

    def _eval_ScriptBlock(self, node: ast.ScriptBlock) -> ScriptBlockValue:
        return ScriptBlockValue(node, self.session.scope)

    def _member_name(self, member: str | Any) -> str:
        return member if isinstance(member, str) else to_string(self.evaluate(member))

    def _eval_MemberAccess(self, node: ast.MemberAccess) -> Any:
        return get_member(self.evaluate(node.target), self._member_name(node.member))

    def _eval_MethodCall(self, node: ast.MethodCall) -> Any:
        target = self.evaluate(node.target)
        args = [self.evaluate(a) for a in node.arguments]
        return call_method(target, node.member, args)

    def _eval_Index(self, node: ast.Index) -> Any:
        target = self.evaluate(node.target)
        index = self.evaluate(node.index)
        if isinstance(target, dict):
            return get_member(target, to_string(index))
        if isinstance(target, PSObject):
            return target.get(to_string(index))
        if isinstance(target, (list, tuple, str)):
            if is_collection(index):
                return [self._index_one(target, i) for i in index]
            return self._index_one(target, index)
        if target is None:
            raise ShellRuntimeError("Cannot index into a null array.", node.pos)
        return self._index_one([target], index)

    @staticmethod
    def _index_one(target: Any, index: Any) -> Any:
        try:
            return target[int(index)]
        except (IndexError, ValueError, TypeError):
            return None

    def _eval_Unary(self, node: ast.Unary) -> Any:
        return unary(node.operator, self.evaluate(node.operand))

    def _eval_Binary(self, node: ast.Binary) -> Any:
        op = node.operator.lower()
        if op in ("-and", "-or"):
            left = truthy(self.evaluate(node.left))
            if op == "-and" and not left:
                return False
            if op == "-or" and left:
                return True
            return truthy(self.evaluate(node.right))
        return binary(op, self.evaluate(node.left), self.evaluate(node.right), self.session)

    def _eval_TypeLiteral(self, node: ast.TypeLiteral) -> str:
        return node.name

    def _eval_Cast(self, node: ast.Cast) -> Any:
        return cast(node.type.name, self.evaluate(node.operand), node.pos)

    # -- script blocks -------------------------------------------------------

    def invoke_scriptblock(
        self, block: ScriptBlockValue, dollar_underscore: Any = MISSING, args: Iterable[Any] = ()
    ) -> list[Any]:
        """Run a script block in a child scope (with `$_` set when given) and return
        its output."""
        session = self.session
        parent = block.scope if isinstance(block.scope, Scope) else session.scope
        scope = Scope(parent)
        if dollar_underscore is not MISSING:
            scope.set("_", dollar_underscore)
            scope.set("PSItem", dollar_underscore)
        scope.set("args", list(args))
        previous, session.scope = session.scope, scope
        try:
            return self.run_script(block.node.body)
        finally:
            session.scope = previous

    def scriptblock_value(self, block: ScriptBlockValue, item: Any) -> Any:
        """The single value a script block yields for `item` (None, one, or a list)."""
        out = self.invoke_scriptblock(block, item)
        if not out:
            return None
        return out[0] if len(out) == 1 else out


def cast(type_text: str, value: Any, pos: int | None = None) -> Any:
    name = type_text.lower().removeprefix("system.")
    try:
        if name in ("int", "int32", "int64", "long"):
            return int(float(value)) if isinstance(value, str) and "." in value else int(value)
        if name in ("double", "float", "decimal"):
            return float(value)
        if name == "string":
            return to_string(value)
        if name == "bool" or name == "boolean":
            return truthy(value)
        if name in ("array", "object[]", "string[]"):
            items = list(value) if is_collection(value) else ([] if value is None else [value])
            return [to_string(i) for i in items] if name == "string[]" else items
        if name == "hashtable" and isinstance(value, dict):
            return value
        if name == "datetime":
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if name in ("psobject", "pscustomobject", "object"):
            if isinstance(value, dict) and name == "pscustomobject":
                return PSObject(value)
            return value
    except (TypeError, ValueError):
        pass
    else:
        if name not in ("hashtable",):
            raise ShellRuntimeError(f"Unable to find type [{type_text}].", pos, "InvalidOperation")
    raise ShellRuntimeError(
        f'Cannot convert value "{to_string(value)}" to type "{type_text}".', pos, "InvalidArgument"
    )
