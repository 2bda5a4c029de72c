"""Limits on the JSON Clarion accepts, and reading back JSON stored before they existed.

Free-form JSON (a send's ``data``, ``content``, ``media`` and ``actions``, a profile's
``data``, preview samples, ...) is stored and handed back to every client, live stream and
export. A value one part of that path cannot carry poisons every later read of it: an
integer beyond 64 bits or nesting past 255 levels cannot be encoded by the response
encoder (orjson), ``NaN`` and ``Infinity`` are not JSON at all (the stdlib parser accepts
them, PostgreSQL's ``json`` type refuses them, and ``1e400`` parses as infinity), and
PostgreSQL text refuses NUL. So every JSON request body is held to these rules before
anything runs (docs/api.md, "Limits on JSON fields"):

* nesting at most ``max_json_depth`` levels of objects and arrays, counted on the raw
  bytes before parsing (a body 100,000 levels deep costs one byte scan, never a
  recursive parse);
* at most :data:`MAX_VALUES` values in the whole body (the bytes are already limited by
  ``max_body_bytes``);
* integers within int64 (:data:`MIN_INT` .. :data:`MAX_INT`): exactly what both stores,
  the encoder and every 64-bit client round-trip;
* numbers finite (no ``NaN``, ``Infinity``, ``1e400``);
* strings (and keys) without NUL.

Reading is the other half: :func:`loads_stored` decodes a stored document whatever it
holds, so a row written before these limits is still listed, pushed and exported.

Pure: no I/O, no settings (callers pass the depth).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from clarion.errors import InvalidJsonValue

__all__ = [
    "MAX_INT",
    "MAX_VALUES",
    "MIN_INT",
    "READ_MAX_DEPTH",
    "InvalidJsonValue",
    "JsonProblem",
    "check",
    "clip_depth",
    "depth_exceeds",
    "find_problem",
    "loads_stored",
    "loads_stored_many",
    "needs_exact_parse",
    "raw_problem",
    "sanitized",
]

MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_VALUES = 10_000
#: Nesting kept when reading back a stored document: the deepest the setting allows
#: (``max_json_depth`` is at most 200), leaving room under the encoder's 255 levels for the
#: response or frame around it. Only documents stored before the limits can be deeper.
READ_MAX_DEPTH = 200
# The largest integer the encoder writes (unsigned 64 bits): a stored one up to it is kept.
_MAX_WRITABLE = 2**64 - 1

# A JSON string (escapes included): brackets inside one do not nest.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_LEAF = re.compile(rb"\[\]|\{\}")
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# 20 digits in a row: an integer at or beyond 2**64 (orjson reads those as floats).
# (A translation and a substring search: several times faster than a regex here.)
_DIGITS_AS_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_TWENTY_DIGITS = b"0" * 20
_SHAPE = bytes(48 if 48 <= i <= 57 else 91 if i in b"[{" else 32 for i in range(256))


@dataclass(frozen=True, slots=True)
class JsonProblem:
    """What broke a rule, and where: ``field`` is a dotted path (``data.items.3.id``),
    ``None`` for the body as a whole."""

    field: str | None
    problem: str
    message: str

    def error(self) -> InvalidJsonValue:
        where = f"{self.field}: " if self.field else ""
        return InvalidJsonValue(
            f"{where}{self.message}",
            [{"field": self.field, "problem": self.problem, "message": self.message}],
        )


def depth_exceeds(raw: bytes, max_depth: int) -> bool:
    """Whether the JSON text ``raw`` opens more than ``max_depth`` nested objects/arrays.

    Runs before any parser: a bracket count settles almost every body at C speed; past
    that, brackets inside strings are dropped and the innermost pairs peeled, one level
    per pass, at most ``max_depth`` passes. Malformed text is judged by its prefix
    nesting (its parser then reports it when it is not too deep)."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    if b'"' in raw:
        raw = _STRING.sub(b"", raw)
    brackets = peeled = raw.translate(None, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not peeled:
            return False
        peeled = _LEAF.sub(b"", peeled)
    if not peeled:
        return False
    # Not emptied: deeper, or malformed ("[}"). The exact prefix nesting tells which.
    depth = 0
    opens = b"[{"
    for byte in brackets:
        if byte in opens:
            depth += 1
            if depth > max_depth:
                return True
        else:
            depth -= 1
    return False


def needs_exact_parse(raw: bytes) -> bool:
    """Whether ``raw`` may hold an integer orjson would read inexactly (at or beyond 2**64
    it gives a float): such a body goes to the stdlib parser, which keeps integers exact
    (and so refuses them by :data:`MAX_INT`). Digits inside strings match too; they only
    cost the slower parse."""
    return _TWENTY_DIGITS in raw.translate(_DIGITS_AS_ZERO)


def raw_problem(raw: bytes, max_depth: int) -> JsonProblem | None:
    """The body-level check before parsing: nesting beyond ``max_depth``."""
    if depth_exceeds(raw, max_depth):
        return JsonProblem(
            None, "too_deep", f"JSON nests deeper than {max_depth} levels of objects and arrays"
        )
    return None


def find_problem(value: Any, max_depth: int, field: str | None = None) -> JsonProblem | None:
    """The first value of a parsed document breaking a rule, or ``None``: one pass, no
    copy. ``value`` itself is at depth 1 when it is an object or array; ``field`` prefixes
    the reported path."""
    kind = type(value)
    found: _Found | None
    if kind is dict or kind is list:
        found = _container(value, max_depth, [MAX_VALUES - 1])
    elif kind is tuple:
        found = _container(list(value), max_depth, [MAX_VALUES - 1])
    else:
        scalar = _scalar(value)
        found = None if scalar is None else ([], *scalar)
    if found is None:
        return None
    path, problem, message = found
    parts = [field] if field else []
    parts.extend(str(p) for p in reversed(path))
    return JsonProblem(".".join(parts) or None, problem, message)


def check(value: Any, max_depth: int, field: str | None = None) -> None:
    """Raise :class:`InvalidJsonValue` when ``value`` breaks a rule (see the module)."""
    found = find_problem(value, max_depth, field)
    if found is not None:
        raise found.error()


_Found = tuple[list[Any], str, str]
_NUL = ("nul_character", "strings must not contain NUL (\\u0000)")
_NUL_KEY = ("nul_character", "keys must not contain NUL (\\u0000)")
_BAD_KEY = ("invalid_key", "object keys must be strings")
_INT = ("integer_out_of_range", "integers must be within -2^63 .. 2^63-1")
_NOT_FINITE = ("not_finite", "numbers must be finite (no NaN, Infinity or 1e400)")
_TOO_DEEP = ("too_deep", "nested too deeply")
_TOO_MANY = ("too_many_values", f"JSON holds more than {MAX_VALUES} values")


def _scalar(value: Any) -> tuple[str, str] | None:
    kind = type(value)
    if kind is str:
        return _NUL if "\x00" in value else None
    if kind is int:
        return None if MIN_INT <= value <= MAX_INT else _INT
    if kind is float:
        return None if math.isfinite(value) else _NOT_FINITE
    if value is None or kind is bool:
        return None
    return ("invalid_type", f"{kind.__name__} is not a JSON value")


def _container(value: Any, depth_left: int, budget: list[int]) -> _Found | None:
    # Scalars are judged inline and only containers recurse: a send's few values cost a
    # few type checks, not a call each. The path is built only on the way back from a
    # problem (reversed): a valid document costs no string work. ``type(...) is``: exact
    # built-in types are all a parsed document holds (and bool is not taken for int).
    if depth_left <= 0:
        return [], *_TOO_DEEP
    budget[0] -= len(value)
    if budget[0] < 0:
        return [], *_TOO_MANY
    is_dict = type(value) is dict
    for key, item in value.items() if is_dict else enumerate(value):
        if is_dict and (type(key) is not str or "\x00" in key):
            return [key], *(_NUL_KEY if type(key) is str else _BAD_KEY)
        kind = type(item)
        found: _Found | None
        if kind is str:
            if "\x00" not in item:
                continue
            found = ([], *_NUL)
        elif kind is int:
            if MIN_INT <= item <= MAX_INT:
                continue
            found = ([], *_INT)
        elif kind is dict or kind is list:
            found = _container(item, depth_left - 1, budget)
            if found is None:
                continue
        elif kind is tuple:
            found = _container(list(item), depth_left - 1, budget)
            if found is None:
                continue
        else:
            scalar = _scalar(item)
            if scalar is None:
                continue
            found = ([], *scalar)
        found[0].append(key)
        return found
    return None


# --- reading back what is stored ------------------------------------------------------


def loads_stored(text: str | bytes) -> Any:
    """A stored JSON document, decoded whatever it holds, as something every encoder of
    the read paths (responses, live frames, exports) can write again.

    The common case is orjson's parse and a bracket count. A document stored before the
    limits (an integer beyond 64 bits, ``NaN``, nesting past :data:`READ_MAX_DEPTH`, a
    lone surrogate) takes the tolerant path: too-deep parts are cut textually before the
    stdlib parse (which would otherwise recurse out), then :func:`sanitized` applies."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _loads_tolerant(text)
    if len(text) < 20:  # no room for 20 digits or for deep nesting: most columns
        return value
    # One translation serves both checks: digits as "0", brackets as "[".
    shape = (text.encode("utf-8") if isinstance(text, str) else text).translate(_SHAPE)
    if _TWENTY_DIGITS in shape:  # orjson reads integers at or beyond 2**64 as floats
        return _loads_tolerant(text)
    if shape.count(b"[") > READ_MAX_DEPTH and depth_exceeds(
        text.encode("utf-8") if isinstance(text, str) else text, READ_MAX_DEPTH
    ):
        return sanitized(value)
    return value


def loads_stored_many(texts: list[str]) -> list[Any]:
    """:func:`loads_stored` of each of ``texts`` (a page's documents), with the checks
    made once over all of them: a page of ordinary documents costs orjson's parses and
    one translation."""
    shape = " ".join(texts).encode("utf-8", "surrogatepass").translate(_SHAPE)
    if _TWENTY_DIGITS in shape or shape.count(b"[") > READ_MAX_DEPTH:
        return [loads_stored(t) for t in texts]
    out: list[Any] = []
    for text in texts:
        try:
            out.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            out.append(_loads_tolerant(text))
    return out


def _loads_tolerant(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if depth_exceeds(text.encode("utf-8", "surrogatepass"), READ_MAX_DEPTH):
        text = clip_depth(text, READ_MAX_DEPTH)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None  # not JSON at all: nothing a client could use
    return sanitized(value)


def clip_depth(text: str, max_depth: int) -> str:
    """``text`` with every object or array nested deeper than ``max_depth`` replaced by
    ``null``, without parsing (so without recursion): a linear scan of its strings and
    brackets."""
    out: list[str] = []
    kept = 0
    depth = 0
    cut_from = -1
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token[0] == '"':
            continue
        if token in "[{":
            depth += 1
            if depth == max_depth + 1 and cut_from < 0:
                cut_from = match.start()
        else:
            if depth == max_depth + 1 and cut_from >= 0:
                out.append(text[kept:cut_from])
                out.append("null")
                kept = match.end()
                cut_from = -1
            depth -= 1
    if cut_from >= 0:  # unterminated: cut to the end
        out.append(text[kept:cut_from])
        out.append("null")
        return "".join(out)
    out.append(text[kept:])
    return "".join(out)


def sanitized(value: Any, depth_left: int = READ_MAX_DEPTH) -> Any:
    """A copy of ``value`` every encoder can write: integers beyond 64 bits as their
    decimal digits (a string), non-finite numbers as ``null``, strings that are not valid
    Unicode with replacement characters, objects and arrays deeper than ``depth_left`` as
    ``null``. Anything else is kept."""
    kind = type(value)
    if kind is dict:
        if depth_left <= 0:
            return None
        return {
            (sanitized(k, 1) if isinstance(k, str) else str(k)): sanitized(v, depth_left - 1)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        if depth_left <= 0:
            return None
        return [sanitized(v, depth_left - 1) for v in value]
    if kind is int:
        return value if MIN_INT <= value <= _MAX_WRITABLE else str(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    return value
