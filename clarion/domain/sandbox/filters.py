"""The built-in Jinja filters, bounded: each one that could outgrow the limits is replaced.

A filter is one Python call, so it must not allocate in proportion to an argument or scan
unbounded text without checking first. :data:`REPLACED_FILTERS` are size-checked versions
of Jinja's own (``tojson`` and ``pprint`` write into a sink that stops at
``MAX_VALUE_WEIGHT`` while they produce); :data:`TICKING_FILTERS` loop in Python and are
wrapped with :func:`ticking`; every filter's result is weighed by :func:`weighed`. The
environment applies all three.
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Callable
from functools import wraps
from typing import Any

from jinja2 import filters as jfilters
from jinja2.utils import _PassArg, pass_environment, pass_eval_context
from markupsafe import Markup

from clarion.domain.sandbox.limits import (
    MAX_FORMAT_WIDTH,
    MAX_JSON_INDENT,
    MAX_RANGE,
    MAX_ROUND_PRECISION,
    MAX_TEXT_SCAN,
    MAX_URLIZE_INPUT,
    MAX_VALUE_WEIGHT,
    GuardedIterator,
    checked,
    fail,
    tick,
    weight,
)
from clarion.domain.sandbox.sizing import check_percent_format, replaced_size

__all__ = ["REPLACED_FILTERS", "TICKING_FILTERS", "ticking", "weighed"]


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _do_center(value: Any, width: int = 80) -> str:
    if _as_int(width) > MAX_VALUE_WEIGHT:
        fail("center() width too large")
    return jfilters.do_center(value, width)


def _do_indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    prefix = width if isinstance(width, str) else " " * min(_as_int(width), MAX_FORMAT_WIDTH + 1)
    if len(prefix) > MAX_FORMAT_WIDTH:
        fail("indent() width too large")
    if len(str(s)) + (str(s).count("\n") + 1) * len(prefix) > MAX_VALUE_WEIGHT:
        fail("indent() output too large")
    return jfilters.do_indent(s, width, first, blank)


def _do_format(value: str, *args: Any, **kwargs: Any) -> str:
    check_percent_format(str(value), kwargs or args)
    return jfilters.do_format(value, *args, **kwargs)


@pass_eval_context
def _do_replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    if replaced_size(str(s), str(old), str(new), count) > MAX_VALUE_WEIGHT:
        fail("replace() output too large")
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
        fail("wordwrap() output too large")
    return jfilters.do_wordwrap(
        environment, s, width, break_long_words, wrapstring, break_on_hyphens
    )


_do_wordwrap = pass_environment(_do_wordwrap)


@pass_eval_context
def _do_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    items = list(GuardedIterator(value))
    if attribute is not None:
        getter = jfilters.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(item) for item in items]
    size = sum(weight(str(item)) for item in items) + len(str(d)) * max(len(items) - 1, 0)
    if size > MAX_VALUE_WEIGHT:
        fail("join() output too large")
    return jfilters.sync_do_join(eval_ctx, items, d)


@pass_environment
def _do_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    items = list(GuardedIterator(iterable))
    if attribute is not None:
        getter = jfilters.make_attrgetter(environment, attribute)
        items = [getter(item) for item in items]
    if not all(isinstance(x, int | float) for x in [start, *items]):
        fail("sum() adds numbers only")
    return checked(sum(items, start))


def _do_batch(value: Any, linecount: int, fill_with: Any = None) -> Any:
    if _as_int(linecount) > MAX_RANGE:
        fail(f"batch() size is limited to {MAX_RANGE}")
    return list(jfilters.do_batch(GuardedIterator(value), linecount, fill_with))


def _do_slice(value: Any, slices: int, fill_with: Any = None) -> Any:
    if _as_int(slices) > MAX_RANGE:
        fail(f"slice() count is limited to {MAX_RANGE}")
    return list(jfilters.sync_do_slice(list(GuardedIterator(value)), slices, fill_with))


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
            fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        if len(self._chunks) % 256 == 0:
            tick()
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
    fail("tojson() indent must be a number or a string")


@pass_eval_context
def _do_tojson(eval_ctx: Any, value: Any, indent: Any = None) -> Markup:
    """``tojson``, with the indent capped and the JSON written into a bounded sink: each
    line of ``tojson(indent=n)`` carries n spaces per nesting level, so a small value can
    lay out into gigabytes."""
    if _indent_width(indent) > MAX_JSON_INDENT:
        fail(f"tojson() indent is limited to {MAX_JSON_INDENT}")
    kwargs = dict(eval_ctx.environment.policies["json.dumps_kwargs"])
    out = _BoundedText()
    if indent is None:
        # The C encoder (one shot) is fast; its output is at most a few times the weight.
        if weight(value) > MAX_VALUE_WEIGHT:
            fail(f"a value grew beyond {MAX_VALUE_WEIGHT} characters")
        out.write(json.dumps(value, **kwargs))
    else:
        for chunk in json.JSONEncoder(indent=indent, **kwargs).iterencode(value):
            out.write(chunk)
    return Markup(
        checked(
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
        fail(f"pprint() works on values of at most {MAX_TEXT_SCAN} characters")
    out = _BoundedText()
    pprint.PrettyPrinter(stream=out).pprint(value)  # type: ignore[arg-type]
    return out.text().removesuffix("\n")


def _text_arg(value: Any, limit: int, name: str) -> str:
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        fail(f"{name}() works on at most {limit} characters")
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
        fail("urlize() output too large")
    return jfilters.do_urlize(eval_ctx, value, trim_url_limit, nofollow, target, rel, extra_schemes)


def _do_round(value: float, precision: int = 0, method: str = "common") -> float:
    if isinstance(precision, int) and abs(precision) > MAX_ROUND_PRECISION:
        fail(f"round() precision is limited to {MAX_ROUND_PRECISION}")
    return jfilters.do_round(value, precision, method)  # type: ignore[arg-type]


def _scanning(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Text filters that scan with a regular expression in one C call hold the interpreter
    for as long as the text is: their input is capped instead."""

    @wraps(func)
    def wrapper(s: Any, *args: Any, **kwargs: Any) -> Any:
        _text_arg(s, MAX_TEXT_SCAN, name)
        return func(s, *args, **kwargs)

    return wrapper


def ticking(func: Callable[..., Any]) -> Callable[..., Any]:
    """Filters that loop over their input in Python tick the budget on every item, so
    the deadline holds while one of them runs over a large list."""
    skip = 0 if _PassArg.from_obj(func) is None else 1

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and not isinstance(args[skip], str | bytes | dict):
            args = (*args[:skip], GuardedIterator(args[skip]), *args[skip + 1 :])
        return func(*args, **kwargs)

    return wrapper


TICKING_FILTERS = frozenset(
    {"unique", "map", "select", "reject", "selectattr", "rejectattr", "groupby", "list"}
)


REPLACED_FILTERS: dict[str, Callable[..., Any]] = {
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


def weighed(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so that its result is weighed; ``wraps`` keeps Jinja's pass_* marker."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tick()
        return checked(func(*args, **kwargs))

    return wrapper
