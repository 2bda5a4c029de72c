"""The Jinja2 sandbox that stored templates run in, with limits enforced *inside* it.

Templates are written by API clients and rendered inside the service, so a template must
not read Python internals, and must not be able to spend unbounded time or memory. Jinja's
``ImmutableSandboxedEnvironment`` covers the first; Python threads cannot be killed, so
the second is enforced cooperatively, from inside the generated code:

* every ``{% for %}`` iterable is wrapped (an AST rewrite, :class:`_Guard`) in an iterator
  that ticks a per-render :class:`Budget`; so do every call, attribute/item lookup and
  intercepted operator. A tick past the step cap or the CPU-time deadline raises :class:`Abort`.
  With every loop and every call (macros, recursive loops) ticking, nothing can run long
  between two ticks except a single builtin operation — hence the next point;
* builtins that allocate in proportion to an *argument* are pre-checked: ``*``, ``**``,
  ``+``, ``%`` (output sized from widths and arguments), ``~``, the methods of str, bytes
  and int (every integer argument capped: ``ljust``, ``zfill``, ``to_bytes``, ...; the
  output of ``replace``, ``join``, ``expandtabs``, ``translate`` sized), and the filters
  ``center``, ``indent``, ``format``, ``replace``, ``wordwrap``, ``join``, ``sum``,
  ``batch``, ``slice``, ``round`` (precision), ``tojson`` (indent), ``urlize``; filters
  that scan text in one C call (``wordcount``, ``title``, ``striptags``) take bounded
  input. ``tojson`` and ``pprint`` write into a sink that stops at ``MAX_VALUE_WEIGHT``
  while they produce, and filters that loop in Python (``unique``, ``map``, ``list``, ...)
  tick per item;
* every call, operator and filter result, every call's arguments and every list, tuple
  and dict literal is weighed (:func:`weight`), so no value bigger than
  ``MAX_VALUE_WEIGHT`` is kept — ``[x, x, x]`` holds ``x`` three times. (What is refused
  only after it was built is at most a small multiple of the limit: its size follows
  from inputs that were themselves weighed.)
* everything printed, including output captured by ``{% set %}`` blocks and macros, is
  charged to the budget's character allowance (a non-string is weighed before ``str()``).

``str.format``/``format_map`` and ``lipsum`` are not offered at all; ``range`` refuses
more than ``MAX_RANGE`` items. Unsafe attribute access raises at once instead of
rendering as an empty ``Undefined``, so an escape attempt is always an error.
"""

from __future__ import annotations

import json
import pprint
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, lru_cache, wraps
from typing import Any, NoReturn

from jinja2 import filters as jfilters
from jinja2 import nodes
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, pass_context, pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

__all__ = [
    "MAX_RANGE",
    "MAX_VALUE_WEIGHT",
    "Abort",
    "Budget",
    "environment",
    "harden",
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

_ITER, _CONCAT, _EMIT, _CHARGE = "clarion:iter", "clarion:concat", "clarion:emit", "clarion:charge"
_CHECK = "clarion:check"
_BLOCKED_ATTRIBUTES = frozenset({"format", "format_map", "fromkeys"})
_WIDEST_NUMBER = 330  # characters '%f' prints for the largest float, 1.8e308
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


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


def _tick() -> None:
    budget = current_budget.get()
    if budget is not None:
        budget.tick()


def _fail(message: str) -> NoReturn:
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


def _checked(value: Any) -> Any:
    if weight(value) > MAX_VALUE_WEIGHT:
        _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
    return value


def _check_percent_format(fmt: str | bytes, args: Any = ()) -> None:
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
        _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")


def _percent_specs(text: str) -> tuple[tuple[int, int], ...]:
    """Width and precision of each ``%`` specifier; refuses ``*`` and widths too large."""
    specs = []
    for width, precision in _PERCENT_SPEC.findall(text):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_FORMAT_WIDTH):
                _fail(f"format widths are limited to {MAX_FORMAT_WIDTH}")
        specs.append((int(width or 0), int(precision or 0)))
    return tuple(specs)


# Templates format with the same few short strings on every render; long ones (which
# could make the cache hold megabytes) are parsed each time.
_short_percent_specs = lru_cache(maxsize=512)(_percent_specs)


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _safe_range(*args: Any) -> range:
    _tick()
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        _fail(f"range() is limited to {MAX_RANGE} items")
    return rng


class _GuardedIterator:
    """Ticks the budget on every step of a ``{% for %}`` loop."""

    __slots__ = ("_it",)

    def __init__(self, iterable: Any) -> None:
        self._it = iter(iterable)

    def __iter__(self) -> _GuardedIterator:
        return self

    def __next__(self) -> Any:
        _tick()
        return next(self._it)


# -- filters -----------------------------------------------------------------------------


@pass_context
def _iter_filter(context: Context, value: Any) -> Any:
    return _GuardedIterator(value)


@pass_context
def _concat_filter(context: Context, values: list[Any]) -> str:
    _tick()
    if weight(values) > MAX_VALUE_WEIGHT:  # before str(), which would build the big string
        _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
    joined: str = markup_join(values) if context.eval_ctx.autoescape else str_join(values)
    return _checked(joined)  # type: ignore[no-any-return]


@pass_context
def _emit_filter(context: Context, value: Any) -> Any:
    budget = current_budget.get()
    if budget is not None:
        budget.tick()
        if not isinstance(value, str) and weight(value) > MAX_VALUE_WEIGHT:
            _fail("the template produces too much output")  # before str() builds it
        budget.charge(len(str(value)))
    return value


@pass_context
def _check_filter(context: Context, value: Any) -> Any:
    """List, tuple and dict literals: ``[x, x, x]`` repeats a checked value by reference."""
    _tick()
    return _checked(value)


@pass_context
def _charge_filter(context: Context, chars: int) -> str:
    budget = current_budget.get()
    if budget is not None:
        budget.charge(chars)
    return ""


def _do_center(value: Any, width: int = 80) -> str:
    if _as_int(width) > MAX_VALUE_WEIGHT:
        _fail("center() width too large")
    return jfilters.do_center(value, width)


def _do_indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    prefix = width if isinstance(width, str) else " " * min(_as_int(width), MAX_FORMAT_WIDTH + 1)
    if len(prefix) > MAX_FORMAT_WIDTH:
        _fail("indent() width too large")
    if len(str(s)) + (str(s).count("\n") + 1) * len(prefix) > MAX_VALUE_WEIGHT:
        _fail("indent() output too large")
    return jfilters.do_indent(s, width, first, blank)


def _do_format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_percent_format(str(value), kwargs or args)
    return jfilters.do_format(value, *args, **kwargs)


def _replaced_size(s: str, old: str, new: str, count: int | None) -> int:
    occurrences = s.count(old) if old else len(s) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(s) + occurrences * (len(new) - len(old))


@pass_eval_context
def _do_replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    if _replaced_size(str(s), str(old), str(new), count) > MAX_VALUE_WEIGHT:
        _fail("replace() output too large")
    return jfilters.do_replace(eval_ctx, s, old, new, count)


def _do_wordwrap(
    environment: Any,
    s: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    _text_arg(s, MAX_TEXT_SCAN, "wordwrap")  # textwrap loops over words in Python
    lines = len(str(s)) // max(_as_int(width), 1) + str(s).count("\n") + 1
    if len(str(s)) + lines * len(wrapstring or "\n") > MAX_VALUE_WEIGHT:
        _fail("wordwrap() output too large")
    return jfilters.do_wordwrap(
        environment, s, width, break_long_words, wrapstring, break_on_hyphens
    )


_do_wordwrap = pass_environment(_do_wordwrap)


@pass_eval_context
def _do_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(_GuardedIterator(value))
    if attribute is not None:
        getter = jfilters.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    size = sum(weight(str(item)) for item in items) + len(str(d)) * max(len(items) - 1, 0)
    if size > MAX_VALUE_WEIGHT:
        _fail("join() output too large")
    return jfilters.sync_do_join(eval_ctx, items, d)


@pass_environment
def _do_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = list(_GuardedIterator(iterable))
    if attribute is not None:
        getter = jfilters.make_attrgetter(environment, attribute)
        items = [getter(item) for item in items]
    if not all(isinstance(x, int | float) for x in [start, *items]):
        _fail("sum() adds numbers only")
    return _checked(sum(items, start))


def _do_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if _as_int(linecount) > MAX_RANGE:
        _fail(f"batch() size is limited to {MAX_RANGE}")
    return list(jfilters.do_batch(_GuardedIterator(value), linecount, fill_with))


def _do_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    if _as_int(slices) > MAX_RANGE:
        _fail(f"slice() count is limited to {MAX_RANGE}")
    return list(jfilters.sync_do_slice(list(_GuardedIterator(value)), slices, fill_with))


class _BoundedText:
    """A write-only text sink that ticks the budget and refuses to hold more than
    ``MAX_VALUE_WEIGHT`` characters: the serialisers below write into it piece by piece, so
    a value that would lay out too large is stopped while it is produced, not after."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._size = 0

    def write(self, chunk: str) -> int:
        self._size += len(chunk)
        if self._size > MAX_VALUE_WEIGHT:
            _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        if len(self._chunks) % 256 == 0:
            _tick()
        self._chunks.append(chunk)
        return len(chunk)

    def text(self) -> str:
        return "".join(self._chunks)


def _indent_width(indent: Any) -> int:
    if indent is None or isinstance(indent, bool):
        return 0
    if isinstance(indent, str):
        return len(indent)
    if isinstance(indent, int):
        return indent
    _fail("tojson() indent must be a number or a string")


@pass_eval_context
def _do_tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Markup:
    """``tojson``, with the indent capped and the JSON written into a bounded sink: each
    line of ``tojson(indent=n)`` carries n spaces per nesting level, so a small value can
    lay out into gigabytes."""
    if _indent_width(indent) > MAX_JSON_INDENT:
        _fail(f"tojson() indent is limited to {MAX_JSON_INDENT}")
    kwargs = dict(eval_ctx.environment.policies["json.dumps_kwargs"])
    out = _BoundedText()
    if indent is None:
        # The C encoder (one shot) is fast; its output is at most a few times the weight.
        if weight(value) > MAX_VALUE_WEIGHT:
            _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        out.write(json.dumps(value, **kwargs))
    else:
        for chunk in json.JSONEncoder(indent=indent, **kwargs).iterencode(value):
            out.write(chunk)
    return Markup(
        _checked(
            out.text()
            .replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("'", "\\u0027")
        )
    )


def _do_pprint(value: Any) -> str:
    """``pprint``, written into a bounded sink: nested values indent every line."""
    if weight(value) > MAX_TEXT_SCAN:  # it computes the repr of every subtree first
        _fail(f"pprint() works on values of at most {MAX_TEXT_SCAN} characters")
    out = _BoundedText()
    pprint.PrettyPrinter(stream=out).pprint(value)  # type: ignore[arg-type]
    return out.text().removesuffix("\n")


def _text_arg(value: Any, limit: int, name: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        _fail(f"{name}() works on at most {limit} characters")
    return text


@pass_eval_context
def _do_urlize(
    eval_ctx: Any,
    value: str,
    trim_url_limit: int | None = None,
    nofollow: bool = False,
    target: str | None = None,
    rel: str | None = None,
    extra_schemes: Any = None,
) -> str:
    text = _text_arg(value, MAX_URLIZE_INPUT, "urlize")
    words = len(text.split()) + 1
    extra = sum(len(str(a)) for a in (target, rel) if a is not None) + 64
    if 2 * len(text) + words * extra > MAX_VALUE_WEIGHT:  # each word may become a link
        _fail("urlize() output too large")
    return jfilters.do_urlize(eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes)


def _do_round(value: float, precision: int = 0, method: str = "common") -> float:
    if isinstance(precision, int) and abs(precision) > MAX_ROUND_PRECISION:
        _fail(f"round() precision is limited to {MAX_ROUND_PRECISION}")
    return jfilters.do_round(value, precision, method)  # type: ignore[arg-type]


def _scanning(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Text filters that scan with a regular expression in one C call hold the interpreter
    for as long as the text is: their input is capped instead."""

    @wraps(func)
    def wrapper(s: Any, *args: Any, **kwargs: Any) -> Any:
        _text_arg(s, MAX_TEXT_SCAN, name)
        return func(s, *args, **kwargs)

    return wrapper


def _ticking(func: Callable[..., Any]) -> Callable[..., Any]:
    """Filters that loop over their input in Python tick the budget on every item, so
    the deadline holds while one of them runs over a large list."""
    skip = 0 if _PassArg.from_obj(func) is None else 1

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and not isinstance(args[skip], str | bytes | dict):
            args = (*args[:skip], _GuardedIterator(args[skip]), *args[skip + 1 :])
        return func(*args, **kwargs)

    return wrapper


_TICKING_FILTERS = frozenset(
    {"unique", "map", "select", "reject", "selectattr", "rejectattr", "groupby", "list"}
)


_REPLACED_FILTERS: dict[str, Callable[..., Any]] = {
    "center": _do_center,
    "indent": _do_indent,
    "format": _do_format,
    "replace": _do_replace,
    "wordwrap": _do_wordwrap,
    "join": _do_join,
    "sum": _do_sum,
    "batch": _do_batch,
    "slice": _do_slice,
    "tojson": _do_tojson,
    "pprint": _do_pprint,
    "urlize": _do_urlize,
    "round": _do_round,
    "wordcount": _scanning(jfilters.do_wordcount, "wordcount"),
    "title": _scanning(jfilters.do_title, "title"),
    "striptags": _scanning(jfilters.do_striptags, "striptags"),
}


def _weighed(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so that its result is weighed; ``wraps`` keeps Jinja's pass_* marker."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _tick()
        return _checked(func(*args, **kwargs))

    return wrapper


# -- environment ------------------------------------------------------------------------


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, auto_reload=False, cache_size=0)
        for name, func in list(self.filters.items()):
            func = _REPLACED_FILTERS.get(name, func)
            if name in _TICKING_FILTERS:
                func = _ticking(func)
            self.filters[name] = _weighed(func)
        self.filters[_ITER] = _iter_filter
        self.filters[_CONCAT] = _concat_filter
        self.filters[_EMIT] = _emit_filter
        self.filters[_CHARGE] = _charge_filter
        self.filters[_CHECK] = _check_filter
        self.globals.pop("lipsum", None)
        self.globals["range"] = _safe_range

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr in _BLOCKED_ATTRIBUTES:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> None:
        return None  # str.format is refused in is_safe_attribute instead of sandboxed

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        _fail(f"access to attribute {attribute!r} of a {type(obj).__name__!r} is not allowed")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            seq, times = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(times, int) and not isinstance(seq, int | float):
                if weight(seq) * max(times, 0) > MAX_VALUE_WEIGHT:
                    _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
            elif (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                _fail("number too large")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if abs(left) > 1 and right * left.bit_length() > MAX_INT_BITS:
                _fail("number too large")
        elif operator == "+" and not isinstance(left, int | float):
            if weight(left) + weight(right) > MAX_VALUE_WEIGHT:
                _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        elif operator == "%" and isinstance(left, str | bytes):
            _check_percent_format(left, right)
        return _checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str | bytes | int | float):
            _check_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        # Arguments are weighed too: cycler(x, x, ...) or namespace(...) keep them, and a
        # lookup on the result (``.items``) is not weighed again.
        if weight((args, kwargs)) > MAX_VALUE_WEIGHT:
            _fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        return _checked(super().call(__context, __obj, *args, **kwargs))


def _as_text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _check_method(owner: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Pre-check the methods of builtin values whose output size is set by an argument, not
    by the value: one such call is a single C operation, which no tick can interrupt."""
    numbers = [a for a in (*args, *kwargs.values()) if isinstance(a, int)]
    if any(abs(n) > MAX_ARGUMENT for n in numbers):  # ljust(10**9), to_bytes(10**9), ...
        _fail(f"numbers passed to {type(owner).__name__}.{name}() are limited to {MAX_ARGUMENT}")
    if not isinstance(owner, str | bytes):
        return
    text, size = _as_text(owner), len(owner)
    if name == "expandtabs" and size + text.count("\t") * max([0, *numbers]) > MAX_VALUE_WEIGHT:
        _fail(f"{name}() output too large")
    if name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        if _replaced_size(text, _as_text(args[0]), _as_text(args[1]), count) > MAX_VALUE_WEIGHT:
            _fail(f"{name}() output too large")
    if name == "join" and args:
        items = args[0]
        n = len(items) if hasattr(items, "__len__") else 0
        if weight(items) + size * n > MAX_VALUE_WEIGHT:
            _fail(f"{name}() output too large")
    if name == "translate" and args and isinstance(args[0], dict):
        longest = max((weight(v) for v in args[0].values()), default=1)
        if size * longest > MAX_VALUE_WEIGHT:
            _fail(f"{name}() output too large")


@cache
def environment(*, autoescape: bool) -> _Environment:
    """The shared sandbox (one with, one without autoescape); built on first use."""
    return _Environment(autoescape=autoescape)


# -- AST rewrite ------------------------------------------------------------------------


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


def harden(tree: nodes.Template, env: _Environment) -> nodes.Template:
    """Refuse template loading statements and rewrite ``tree`` in place for the budget."""
    for node in tree.find_all(_REFUSED_NODES):
        kind = type(node).__name__.lower()
        raise Abort(f"line {node.lineno}: {{% {kind} %}} is not supported in stored templates")
    _Guard().visit(tree)
    tree.set_environment(env)
    return tree
