"""Output sizes of single builtin operations, computed from their arguments before they run.

``'%999999999s' % x``, ``'x'.ljust(n)`` or ``s.replace('', big)`` is one C call that no
tick can interrupt, so its result size must be known, and refused past
``MAX_VALUE_WEIGHT``, before it is made. The environment's ``%`` operator and method
calls, and the ``format`` and ``replace`` filters, check here first.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from clarion.domain.sandbox.limits import (
    MAX_ARGUMENT,
    MAX_FORMAT_WIDTH,
    MAX_VALUE_WEIGHT,
    fail,
    weight,
)

__all__ = ["check_method", "check_percent_format", "replaced_size"]

_WIDEST_NUMBER = 330  # characters '%f' prints for the largest float, 1.8e308
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def check_percent_format(fmt: str | bytes, args: Any = ()) -> None:
    """Refuse ``%`` formatting whose output would outgrow ``MAX_VALUE_WEIGHT``, before it
    runs: widths and precisions are capped, and since ``'%(a)s' * 40000 % {'a': long}``
    repeats one argument per specifier, each specifier is charged for the biggest argument
    (plus the widest a number can print, as ``'%f' % 1e300`` has 300 digits)."""
    text = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    specs = _short_percent_specs(text) if len(text) <= 1024 else _percent_specs(text)
    if not specs:
        return
    if isinstance(args, dict):
        values: Any = list(args.values())
    elif isinstance(args, tuple):
        values = list(args)
    else:
        values = [args]
    biggest = max((weight(v) for v in values), default=0) + _WIDEST_NUMBER
    size = len(text) + sum(biggest + w + p for w, p in specs)
    if size > MAX_VALUE_WEIGHT:
        fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")


def _percent_specs(text: str) -> tuple[tuple[int, int], ...]:
    """Width and precision of each ``%`` specifier; refuses ``*`` and widths too large."""
    specs = []
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_FORMAT_WIDTH):
                fail(f"format widths are limited to {MAX_FORMAT_WIDTH}")
        specs.append((int(width or 0), int(precision or 0)))
    return tuple(specs)


# Templates format with the same few short strings on every render; long ones (which
# could make the cache hold megabytes) are parsed each time.
_short_percent_specs = lru_cache(maxsize=512)(_percent_specs)


def replaced_size(s: str, old: str, new: str, count: int | None) -> int:
    """The length of ``s.replace(old, new, count)``, without building it."""
    occurrences = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(s) + occurrences * (len(new) - len(old))


def _as_text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def check_method(owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-check the methods of builtin values whose output size is set by an argument, not
    by the value: one such call is a single C operation, which no tick can interrupt."""
    numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
    if any(abs(n) > MAX_ARGUMENT for n in numbers):  # ljust(10**9), to_bytes(10**9), ...
        fail(f"numbers passed to {type(owner).__name__}.{name}() are limited to {MAX_ARGUMENT}")
    if not isinstance(owner, str | bytes):
        return
    text, size = _as_text(owner), len(owner)
    if name == "expandtabs" and size + text.count("\t") * max([0, *numbers]) > MAX_VALUE_WEIGHT:
        fail(f"{name}() output too large")
    if name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        if replaced_size(text, _as_text(args[0]), _as_text(args[1]), count) > MAX_VALUE_WEIGHT:
            fail(f"{name}() output too large")
    if name == "join" and args:
        items = args[0]
        n = len(items) if hasattr(items, "__len__") else 0
        if weight(items) + size * n > MAX_VALUE_WEIGHT:
            fail(f"{name}() output too large")
    if name == "translate" and args and isinstance(args[0], dict):
        longest = max((weight(v) for v in args[0].values()), default=1)
        if size * longest > MAX_VALUE_WEIGHT:
            fail(f"{name}() output too large")
