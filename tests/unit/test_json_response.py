"""api/responses.Json writes anything a handler returns: what orjson cannot encode (an
integer beyond 64 bits, nesting past 255 levels) is written cleaned, never a 500."""

from __future__ import annotations

import json
from typing import Any

from clarion.api.responses import Json


def test_ordinary_content_is_written_by_orjson() -> None:
    assert json.loads(Json({"a": [1, 2.5, None, "é"]}).body) == {"a": [1, 2.5, None, "é"]}


def test_content_orjson_refuses_is_written_cleaned() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    body = json.loads(Json({"n": 10**30, "m": -(2**64), "d": deep}).body)
    assert body["n"] == str(10**30) and body["m"] == str(-(2**64))
    depth, value = 0, body["d"]
    while isinstance(value, list):
        depth, value = depth + 1, value[0]
    assert value is None and depth == 199  # cut below the response's own object
