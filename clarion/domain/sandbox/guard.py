"""The AST rewrite that routes a template's loops, literals and output through the budget.

Python threads cannot be killed, so a render is bounded from inside its generated code:
:func:`rewrite` wraps every ``{% for %}`` iterable, list/tuple/dict literal, ``~`` and
printed expression of a parsed template in one of the :data:`HOOKS` filters, which tick
the render's budget, weigh the value, or charge the printed characters. It also refuses
the template loading statements, as stored templates have no loader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context, markup_join, str_join
from jinja2.utils import pass_context
from jinja2.visitor import NodeTransformer

from clarion.domain.sandbox.limits import (
    MAX_VALUE_WEIGHT,
    Abort,
    GuardedIterator,
    checked,
    current_budget,
    fail,
    tick,
    weight,
)

__all__ = ["HOOKS", "rewrite"]

_ITER, _CONCAT, _EMIT, _CHARGE = "clarion:iter", "clarion:concat", "clarion:emit", "clarion:charge"
_CHECK = "clarion:check"


@pass_context
def _iter_filter(context: Context, value: Any) -> Any:
    return GuardedIterator(value)


@pass_context
def _concat_filter(context: Context, values: list[Any]) -> str:
    tick()
    if weight(values) > MAX_VALUE_WEIGHT:  # before str(), which would build the big string
        fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
    joined: str = markup_join(values) if context.eval_ctx.autoescape else str_join(values)
    return checked(joined)  # type: ignore[no-any-return]


@pass_context
def _emit_filter(context: Context, value: Any) -> Any:
    budget = current_budget.get()
    if budget is not None:
        budget.tick()
        if not isinstance(value, str) and weight(value) > MAX_VALUE_WEIGHT:
            fail("the template produces too much output")  # before str() builds it
        budget.charge(len(str(value)))
    return value


@pass_context
def _check_filter(context: Context, value: Any) -> Any:
    """List, tuple and dict literals: ``[x, x, x]`` repeats a checked value by reference."""
    tick()
    return checked(value)


@pass_context
def _charge_filter(context: Context, chars: int) -> str:
    budget = current_budget.get()
    if budget is not None:
        budget.charge(chars)
    return ""


HOOKS: dict[str, Callable[..., Any]] = {
    _ITER: _iter_filter,
    _CONCAT: _concat_filter,
    _EMIT: _emit_filter,
    _CHARGE: _charge_filter,
    _CHECK: _check_filter,
}


def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Guard(NodeTransformer):
    """Routes loops, ``~`` and printed output through the budget-checking filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, _ITER)  # type: ignore[arg-type]
        return node

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return _filter(node, _CHECK)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return _filter(node, _CHECK)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        return node if node.ctx != "load" else _filter(node, _CHECK)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), _CONCAT)

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        literal = sum(len(n.data) for n in node.nodes if isinstance(n, nodes.TemplateData))
        children: list[nodes.Expr] = []
        if literal:
            children.append(_filter(nodes.Const(literal, lineno=node.lineno), _CHARGE))
        for child in node.nodes:
            children.append(
                child if isinstance(child, nodes.TemplateData) else _filter(child, _EMIT)
            )
        node.nodes = children
        return node


_REFUSED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
)


def rewrite(tree: nodes.Template) -> None:
    """Refuse template loading statements and rewrite ``tree`` in place for the budget."""
    for node in tree.find_all(_REFUSED_NODES):
        kind = type(node).__name__.lower()
        raise Abort(f"line {node.lineno}: {{% {kind} %}} is not supported in stored templates")
    _Guard().visit(tree)
