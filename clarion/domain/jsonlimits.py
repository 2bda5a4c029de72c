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

# A JSON string (escapes included): brackets inside one do not nest.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_LEAF = re.compile(rb"\[\]|\{\}")
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
# 20 digits in a row: an integer at or beyond 2**64 (orjson reads those as floats).
_LONG_DIGITS = re.compile(rb"[0-9]{20}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{20}")


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
    return _LONG_DIGITS.search(raw) is not None


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
    budget = [MAX_VALUES]
    found = _walk(value, max_depth, budget)
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


def _walk(value: Any, depth_left: int, budget: list[int]) -> _Found | None:
    # The path is built only on the way back from a problem (reversed): a valid document
    # costs no string work. ``type(...) is`` first: exact built-in types are all a parsed
    # document holds, and the common ones are cheapest to recognise that way.
    budget[0] -= 1
    if budget[0] < 0:
        return [], "too_many_values", f"JSON holds more than {MAX_VALUES} values"
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            return [], "nul_character", "strings must not contain NUL (\\u0000)"
        return None
    if kind is dict:
        if depth_left <= 0:
            return [], "too_deep", "nested too deeply"
        for key, item in value.items():
            if type(key) is not str:
                return [key], "invalid_key", "object keys must be strings"
            if "\x00" in key:
                return [key], "nul_character", "keys must not contain NUL (\\u0000)"
            found = _walk(item, depth_left - 1, budget)
            if found is not None:
                found[0].append(key)
                return found
        return None
    if kind is list:
        if depth_left <= 0:
            return [], "too_deep", "nested too deeply"
        for index, item in enumerate(value):
            found = _walk(item, depth_left - 1, budget)
            if found is not None:
                found[0].append(index)
                return found
        return None
    if kind is int:
        if MIN_INT <= value <= MAX_INT:
            return None
        return [], "integer_out_of_range", "integers must be within -2^63 .. 2^63-1"
    if kind is float:
        if math.isfinite(value):
            return None
        return [], "not_finite", "numbers must be finite (no NaN, Infinity or 1e400)"
    if value is None or kind is bool:
        return None
    if kind is tuple:  # built in code, not parsed: judged as the array it encodes to
        budget[0] += 1
        return _walk(list(value), depth_left, budget)
    return [], "invalid_type", f"{kind.__name__} is not a JSON value"


# --- reading back what is stored ------------------------------------------------------


def loads_stored(text: str | bytes) -> Any:
    """A stored JSON document, decoded whatever it holds, as something every encoder of
    the read paths (responses, live frames, exports) can write again.

    The common case is orjson's parse and a bracket count. A document stored before the
    limits (an integer beyond 64 bits, ``NaN``, nesting past :data:`READ_MAX_DEPTH`, a
    lone surrogate) takes the tolerant path: too-deep parts are cut textually before the
    stdlib parse (which would otherwise recurse out), then :func:`sanitized` applies."""
    if isinstance(text, str):
        inexact = _LONG_DIGITS_TEXT.search(text) is not None
    else:
        inexact = _LONG_DIGITS.search(text) is not None
    if inexact:  # orjson reads integers at or beyond 2**64 as floats: keep them exact
        return _loads_tolerant(text)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return _loads_tolerant(text)
    if isinstance(text, str):
        many = text.count("[") + text.count("{") > READ_MAX_DEPTH
        raw = text.encode("utf-8") if many else b""
    else:
        many = text.count(b"[") + text.count(b"{") > READ_MAX_DEPTH
        raw = text
    if many and depth_exceeds(raw, READ_MAX_DEPTH):
        return sanitized(value)
    return value


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
    """A copy of ``value`` every encoder can write: integers beyond int64 as their
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
        return value if MIN_INT <= value <= MAX_INT else str(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    return value
