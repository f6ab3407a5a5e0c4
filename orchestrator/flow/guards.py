"""The `when:` guard language: comparisons of counters and call variables, parsed once, evaluated
per event.

Parsing goes through `ast` with an allow-list of node types, so a guard can never call, index,
import or reach an attribute that is not a known call variable. Evaluation never raises: a missing
value is None and a comparison between values of different kinds is simply false.
Imports only `orchestrator.errors` and this package's templates and suggestions.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.flow.suggestions import unknown_dotted_name, unknown_name
from orchestrator.flow.templates import lookup

__all__ = ["Guard", "GuardError", "compile_guard"]

# Operands are whatever the guard evaluated to; a mismatch raises TypeError, caught by the caller.
_COMPARISONS: Mapping[type[ast.cmpop], Callable[[Any, Any], object]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class GuardError(OrchestratorError):
    """A `when:` expression is not valid; the loader turns it into a located FlowProblem."""

    def __init__(self, message: str, *, column: int = 0) -> None:
        self.message = message
        self.column = column  # 0-based offset inside the expression
        super().__init__(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class Guard:
    """A compiled `when:` expression; `names` are the counters and variables it reads."""

    source: str
    names: frozenset[str]
    tree: ast.expr

    def evaluate(self, counters: Mapping[str, int], context: Mapping[str, object]) -> bool:
        """True when the guard passes for these counters and this call context."""
        return bool(_evaluate(self.tree, counters, context))


def compile_guard(source: str, *, counters: Collection[str], variables: Collection[str]) -> Guard:
    """Parse `source`: only counters (bare names) and dotted call variables; raise GuardError."""
    text = source.strip()
    if not text:
        raise GuardError("empty guard")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        # Python reports offset 0 when the expression ends too early: point at its end.
        offset = exc.offset or 0
        column = offset - 1 if 0 < offset <= len(text) else len(text)
        raise GuardError(exc.msg, column=column) from None
    names: set[str] = set()
    _check(tree, counters=counters, variables=variables, names=names)
    return Guard(source=text, names=frozenset(names), tree=tree)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr}"
    return None


def _check(
    node: ast.expr, *, counters: Collection[str], variables: Collection[str], names: set[str]
) -> None:
    column = node.col_offset
    match node:
        case ast.BoolOp(op=ast.And() | ast.Or(), values=values):
            for value in values:
                _check(value, counters=counters, variables=variables, names=names)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            _check(operand, counters=counters, variables=variables, names=names)
        case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() as value)) if (
            not isinstance(value, bool)
        ):
            pass
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            for op in ops:
                if type(op) not in _COMPARISONS:
                    raise GuardError(f"operator {type(op).__name__} is not allowed", column=column)
            for operand in (left, *comparators):
                _check(operand, counters=counters, variables=variables, names=names)
        case ast.Constant(value=value) if isinstance(value, int | str) and not isinstance(
            value, bool
        ):
            pass
        case ast.Name() | ast.Attribute():
            name = _dotted(node)
            if name is None:
                raise GuardError("only counters and call variables may be named", column=column)
            if "." not in name and name not in counters:
                raise GuardError(unknown_name("counter", name, counters), column=column)
            if "." in name and name not in variables:
                raise GuardError(unknown_dotted_name("variable", name, variables), column=column)
            names.add(name)
        case _:
            raise GuardError(
                f"{type(node).__name__} is not allowed; use counters, variables, integer or string "
                "literals, comparisons, and/or/not",
                column=column,
            )


def _evaluate(node: ast.expr, counters: Mapping[str, int], context: Mapping[str, object]) -> object:
    match node:
        case ast.BoolOp(op=ast.And(), values=values):
            return all(_evaluate(v, counters, context) for v in values)
        case ast.BoolOp(values=values):
            return any(_evaluate(v, counters, context) for v in values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _evaluate(operand, counters, context)
        case ast.UnaryOp(operand=operand):
            value = _evaluate(operand, counters, context)
            return -value if isinstance(value, int) else None
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _evaluate(left, counters, context)
            for op, right_node in zip(ops, comparators, strict=True):
                right = _evaluate(right_node, counters, context)
                try:
                    passed = _COMPARISONS[type(op)](current, right)
                except TypeError:
                    # e.g. a missing ETA (None) compared with a number: the guard does not pass.
                    return False
                if not passed:
                    return False
                current = right
            return True
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return counters.get(name, 0)
        case _:
            dotted = _dotted(node)
            return None if dotted is None else lookup(context, dotted)
