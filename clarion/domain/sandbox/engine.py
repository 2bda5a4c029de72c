"""The sandboxed Jinja environment that stored templates compile and render in.

Jinja's ``ImmutableSandboxedEnvironment`` keeps templates away from Python internals; the
subclass here also refuses ``str.format``/``format_map`` and ``dict.fromkeys``, raises on
an unsafe attribute instead of rendering an empty ``Undefined`` (so an escape attempt is
always an error), ticks the budget on every call, lookup and intercepted operator, sizes
``*``, ``**``, ``+``, ``%`` and builtin method calls before they run, and weighs their
results. It carries the bounded filters and the rewrite's hooks, offers no ``lipsum``,
and a ``range`` of at most ``MAX_RANGE`` items. :func:`harden` binds a parsed template
to it.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NoReturn

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from clarion.domain.sandbox.filters import REPLACED_FILTERS, TICKING_FILTERS, ticking, weighed
from clarion.domain.sandbox.guard import HOOKS, rewrite
from clarion.domain.sandbox.limits import (
    MAX_INT_BITS,
    MAX_RANGE,
    MAX_VALUE_WEIGHT,
    checked,
    fail,
    tick,
    weight,
)
from clarion.domain.sandbox.sizing import check_method, check_percent_format

__all__ = ["environment", "harden"]

_BLOCKED_ATTRIBUTES = frozenset({"format", "format_map", "fromkeys"})


def _safe_range(*args: Any) -> range:
    tick()
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        fail(f"range() is limited to {MAX_RANGE} items")
    return rng


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, auto_reload=False, cache_size=0)
        for name, func in list(self.filters.items()):
            func = REPLACED_FILTERS.get(name, func)
            if name in TICKING_FILTERS:
                func = ticking(func)
            self.filters[name] = weighed(func)
        self.filters.update(HOOKS)
        self.globals.pop("lipsum", None)
        self.globals["range"] = _safe_range

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in _BLOCKED_ATTRIBUTES:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is refused in is_safe_attribute instead of sandboxed

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        fail(f"access to attribute {attribute!r} of a {type(obj).__name__!r} is not allowed")

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "*":
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(times, int) and not isinstance(seq, int | float):
                if weight(seq) * max(times, 0) > MAX_VALUE_WEIGHT:
                    fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
            elif (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                fail("number too large")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * left.bit_length() > MAX_INT_BITS:
                fail("number too large")
        elif operator == "+" and not isinstance(left, int | float):
            if weight(left) + weight(right) > MAX_VALUE_WEIGHT:
                fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        elif operator == "%" and isinstance(left, str | bytes):
            check_percent_format(left, right)
        return checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes | int | float):
            check_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        # Arguments are weighed too: cycler(x, x, ...) or namespace(...) keep them, and a
        # lookup on the result (``.items``) is not weighed again.
        if weight((args, kwargs)) > MAX_VALUE_WEIGHT:
            fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        return checked(super().call(__context, __obj, *args, **kwargs))


@cache
def environment(*, autoescape: bool) -> _Environment:
    """The shared sandbox (one with, one without autoescape); built on first use."""
    return _Environment(autoescape=autoescape)


def harden(tree: nodes.Template, env: _Environment) -> nodes.Template:
    """Refuse template loading statements, rewrite ``tree`` in place for the budget (see
    :func:`~clarion.domain.sandbox.guard.rewrite`) and bind it to ``env``."""
    rewrite(tree)
    tree.set_environment(env)
    return tree
