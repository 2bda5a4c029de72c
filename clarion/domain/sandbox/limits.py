"""The sandbox's limits, the error that ends a render, and what one render may spend.

Every bound of :mod:`clarion.domain.sandbox` is a number here, so the table in
docs/templates.md maps onto one place. A render carries a :class:`Budget` (steps, CPU
time, printed characters) in :data:`current_budget`; the rest of the sandbox ticks it,
charges it, and weighs values with :func:`weight`, raising :class:`Abort` past a limit.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "MAX_ARGUMENT",
    "MAX_FORMAT_WIDTH",
    "MAX_INT_BITS",
    "MAX_JSON_INDENT",
    "MAX_RANGE",
    "MAX_ROUND_PRECISION",
    "MAX_TEXT_SCAN",
    "MAX_URLIZE_INPUT",
    "MAX_VALUE_WEIGHT",
    "Abort",
    "Budget",
    "GuardedIterator",
    "checked",
    "current_budget",
    "fail",
    "tick",
    "weight",
]

MAX_RANGE = 10_000
MAX_VALUE_WEIGHT = 256 * 1024  # characters (or elements) any single value may hold
MAX_FORMAT_WIDTH = 1_000
MAX_INT_BITS = 4_096
MAX_JSON_INDENT = 16  # tojson(indent=...): spaces (or characters) per nesting level
MAX_ROUND_PRECISION = 100  # round(precision): ceil/floor compute 10 ** precision
MAX_URLIZE_INPUT = 8 * 1024  # characters urlize works on: it loops over words in Python
MAX_TEXT_SCAN = 64 * 1024  # characters of text wordcount/title/striptags scan in one step
MAX_ARGUMENT = MAX_VALUE_WEIGHT  # any integer argument of a str/bytes/int method


class Abort(Exception):
    """A limit was hit; :mod:`clarion.domain.rendering` turns it into ``RenderError``."""


@dataclass
class Budget:
    """What one render may still spend. Lives in a ContextVar for the render's duration.

    Time is the render thread's CPU time, not the wall clock: on a loaded machine a render
    that waits for a core (or for the interpreter lock) spends nothing, and must not fail
    for it. Reading the thread's CPU clock costs a system call, so each tick compares the
    cheap monotonic clock with ``wall_mark``, the earliest moment the CPU allowance could
    run out (CPU time never runs ahead of wall time), and reads the CPU clock only then.
    ``wall_deadline`` still bounds how long a starved render may take.
    """

    cpu_deadline: float  # time.thread_time() of the rendering thread
    steps_left: int
    chars_left: int
    wall_deadline: float = float("inf")  # time.monotonic()
    wall_mark: float = 0.0

    @classmethod
    def start(
        cls, *, seconds: float, steps: int, chars: int, wall_seconds: float | None = None
    ) -> Budget:
        """A budget of ``seconds`` of this thread's CPU time from now."""
        now = time.monotonic()
        return cls(
            cpu_deadline=time.thread_time() + seconds,
            steps_left=steps,
            chars_left=chars,
            wall_deadline=float("inf") if wall_seconds is None else now + wall_seconds,
            wall_mark=now + seconds,
        )

    def tick(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise Abort("the template does too much work (step limit reached)")
        now = time.monotonic()
        if now > self.wall_mark:
            left = self.cpu_deadline - time.thread_time()
            if left <= 0 or now > self.wall_deadline:
                raise Abort("the template took too long to render")
            self.wall_mark = now + left

    def charge(self, chars: int) -> None:
        self.chars_left -= chars
        if self.chars_left < 0:
            raise Abort("the template produces too much output")


current_budget: ContextVar[Budget | None] = ContextVar("clarion_render_budget", default=None)


def tick() -> None:
    budget = current_budget.get()
    if budget is not None:
        budget.tick()


def fail(message: str) -> NoReturn:
    raise Abort(message)


def weight(value: Any, limit: int = MAX_VALUE_WEIGHT) -> int:
    """Roughly how many characters/elements ``value`` holds; stops counting past ``limit``.

    Strings count their length, containers their length plus their contents (a value held
    twice counts twice: ``[x, x]`` prints ``x`` twice), integers their decimal digits,
    anything else 1, so the cost of weighing is itself bounded by ``limit``. Every result
    is weighed, so the common exact types take the fast path.
    """
    kind = type(value)
    if kind is str:  # most values weighed are short strings and numbers: no stack
        return len(value)
    if kind is float or kind is bool or value is None:
        return 1
    total = 0
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack and total <= limit:
        item = pop()
        kind = type(item)
        if kind is str:
            total += len(item)
        elif kind is int:
            total += 1 + item.bit_length() // 3  # about its decimal digits
        elif kind is list or kind is tuple:
            total += len(item)
            extend(item)
        elif kind is dict:
            total += len(item)
            extend(item.keys())
            extend(item.values())
        elif isinstance(item, str | bytes | range):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            extend(item.keys())
            extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += 1 + item.bit_length() // 3
        else:
            total += 1
    return total


def checked(value: Any) -> Any:
    if weight(value) > MAX_VALUE_WEIGHT:
        fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
    return value


class GuardedIterator:
    """Ticks the budget on every step of a ``{% for %}`` loop, or of a filter that loops
    over its input in Python."""

    __slots__ = ("_it",)

    def __init__(self, iterable: Any) -> None:
        self._it = iter(iterable)

    def __iter__(self) -> GuardedIterator:
        return self

    def __next__(self) -> Any:
        tick()
        return next(self._it)
