"""domain/jsonlimits: the rules on accepted JSON, the raw depth scan, and tolerant reads
of documents stored before the rules."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

import orjson
import pytest

from clarion.domain import jsonlimits as jl
from clarion.errors import InvalidJsonValue


def nested(depth: int, leaf: Any = 1) -> Any:
    value: Any = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def real_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((real_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((real_depth(v) for v in value), default=0)
    return 0


# --- the rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ({"a": {"b": 2**63}}, "data.a.b", "integer_out_of_range"),
        ({"a": [1, -(2**63) - 1]}, "data.a.1", "integer_out_of_range"),
        ({"a": 10**400}, "data.a", "integer_out_of_range"),
        ({"x": [0.5, float("nan")]}, "data.x.1", "not_finite"),
        ({"x": float("inf")}, "data.x", "not_finite"),
        ({"x": -float("inf")}, "data.x", "not_finite"),
        ({"s": "a\x00b"}, "data.s", "nul_character"),
        ({"a\x00": 1}, "data.a\x00", "nul_character"),
        ({"o": object()}, "data.o", "invalid_type"),
    ],
)
def test_each_rule_names_the_path(value: Any, field: str, problem: str) -> None:
    found = jl.find_problem(value, 32, "data")
    assert found is not None
    assert (found.field, found.problem) == (field, problem)
    with pytest.raises(InvalidJsonValue) as caught:
        jl.check(value, 32, "data")
    assert caught.value.status == 422 and caught.value.code == "invalid_json_value"
    assert caught.value.details == [{"field": field, "problem": problem, "message": found.message}]
    assert caught.value.message.startswith(f"{field}: ")


def test_boundaries_are_accepted() -> None:
    ok = {
        "max": jl.MAX_INT,
        "min": jl.MIN_INT,
        "f": 1.7976931348623157e308,
        "tiny": 5e-324,
        "b": True,
        "n": None,
        "s": "héllo \U0001f600",
        "l": [],
        "o": {},
    }
    assert jl.find_problem(ok, 32) is None
    assert jl.find_problem([1, [2, [3]]], 3) is None


def test_depth_counts_objects_and_arrays() -> None:
    assert jl.find_problem(nested(5), 5) is None
    found = jl.find_problem(nested(6), 5, "data")
    assert found is not None and found.problem == "too_deep"
    assert found.field == "data.0.k.0.k.0"  # the sixth container
    assert jl.find_problem("scalar", 0) is None


def test_value_count_is_limited() -> None:
    assert jl.find_problem(list(range(jl.MAX_VALUES - 1)), 2) is None
    found = jl.find_problem(list(range(jl.MAX_VALUES)), 2)
    assert found is not None and found.problem == "too_many_values"


def test_bool_is_not_judged_as_an_integer() -> None:
    # bool is an int subclass: True must not be compared with the integer range.
    assert jl.find_problem({"t": True, "f": False}, 2) is None


# --- the raw depth scan ------------------------------------------------------------


def test_raw_scan_matches_the_parsed_depth_fixed_seed() -> None:
    rng = random.Random(20261207)

    def gen(depth: int) -> Any:
        roll = rng.random()
        if depth <= 0 or roll < 0.25:
            return rng.choice([1, "x[{", 'q"[', "]}\\", None, 2.5, '\\"{'])
        if roll < 0.6:
            return [gen(depth - 1) for _ in range(rng.randint(0, 3))]
        return {f"k{i}[": gen(depth - 1) for i in range(rng.randint(0, 3))}

    for _ in range(600):
        value = gen(rng.randint(0, 12))
        raw = orjson.dumps(value)
        depth = real_depth(value)
        for limit in (max(1, depth - 1), depth, depth + 1):
            assert jl.depth_exceeds(raw, limit) is (depth > limit), (raw, limit)


def test_raw_scan_of_a_huge_depth_is_fast_and_not_recursive() -> None:
    raw = b"[" * 100_000 + b"]" * 100_000
    start = time.perf_counter()
    assert jl.depth_exceeds(raw, 32)
    assert jl.raw_problem(raw, 32) is not None
    unterminated = b'{"a":' * 100_000
    assert jl.depth_exceeds(unterminated, 32)
    assert time.perf_counter() - start < 2.0  # milliseconds really; loaded machines vary


def test_raw_scan_leaves_malformed_shallow_text_to_the_parser() -> None:
    # More brackets than the limit, mismatched but never deeper than it.
    raw = b"[" + b"[}" * 40 + b"]"
    assert not jl.depth_exceeds(raw, 32)


def test_long_digit_runs_need_the_exact_parser() -> None:
    assert jl.needs_exact_parse(b'{"n": 18446744073709551616}')
    assert not jl.needs_exact_parse(b'{"n": 9223372036854775807}')


# --- reading back stored documents ------------------------------------------------


def test_loads_stored_keeps_ordinary_documents() -> None:
    doc = {"a": [1, 2.5, "x", None, True], "b": {"c": "d"}}
    text = json.dumps(doc)
    assert jl.loads_stored(text) == doc
    assert jl.loads_stored(text.encode()) == doc


def test_loads_stored_reads_what_the_limits_now_refuse() -> None:
    huge = "9" * 400
    value = jl.loads_stored('{"n": ' + huge + ', "m": NaN, "i": -Infinity, "f": 1e400}')
    assert value == {"n": huge, "m": None, "i": None, "f": None}
    orjson.dumps(value)  # encodable again


def test_loads_stored_cuts_nesting_beyond_the_read_depth() -> None:
    for depth in (256, 1500, 100_000):
        text = '{"d": ' + "[" * depth + "1" + "]" * depth + ', "after": 2}'
        value = jl.loads_stored(text)
        assert value["after"] == 2
        assert real_depth(value) == jl.READ_MAX_DEPTH
        orjson.dumps({"items": [{"data": value}]})  # with a response around it


def test_loads_stored_reads_lone_surrogates_and_garbage() -> None:
    assert jl.loads_stored('{"s": "\\ud800x"}') == {"s": "?x"}
    assert jl.loads_stored("not json") is None


def test_clip_depth_keeps_strings_and_siblings() -> None:
    text = '[["[[", [[1]]], "]"]'
    assert json.loads(jl.clip_depth(text, 2)) == [["[[", None], "]"]
    assert jl.clip_depth(text, 4) == text


def test_sanitized_fixed_seed_always_encodes() -> None:
    rng = random.Random(7)
    weird: list[Any] = [10**30, -(10**25), math.nan, math.inf, "\udc80", 1, "ok", None]
    for _ in range(300):
        value: Any = rng.choice(weird)
        for _ in range(rng.randint(0, 300)):
            value = [value, rng.choice(weird)] if rng.random() < 0.5 else {"k": value}
        clean = jl.sanitized(value)
        orjson.dumps(clean)
        assert real_depth(clean) <= jl.READ_MAX_DEPTH


def test_loads_stored_keeps_integers_beyond_64_bits_exact() -> None:
    # orjson alone would read these as floats.
    assert jl.loads_stored('{"n": 18446744073709551616}') == {"n": "18446744073709551616"}
    assert jl.loads_stored('{"n": -' + "1" * 30 + "}") == {"n": "-" + "1" * 30}
    assert jl.loads_stored('{"s": "12345678901234567890"}') == {"s": "12345678901234567890"}


def test_loads_stored_many_reads_each_document_as_loads_stored_fixed_seed() -> None:
    rng = random.Random(99)
    pool = [
        "{}",
        '["in_app"]',
        '{"kind": "simple", "title": "x", "message": ""}',
        '{"n": 18446744073709551616}',
        '{"n": ' + "9" * 400 + "}",
        '{"x": NaN}',
        "[" * 300 + "]" * 300,
        '{"s": "\\ud800"}',
        '{"a": 12345678901, "b": 123456789}',  # digits of two numbers never join
    ]
    for _ in range(200):
        page = [rng.choice(pool) for _ in range(rng.randint(1, 12))]
        assert jl.loads_stored_many(page) == [jl.loads_stored(t) for t in page]
    plain = ['{"a": 1234567890}', '{"b": 1234567890}']  # 20 digits only across documents
    assert jl.loads_stored_many(plain) == [{"a": 1234567890}, {"b": 1234567890}]
