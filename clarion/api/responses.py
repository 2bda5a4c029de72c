"""JSON responses encoded with orjson (datetimes, speed), used by every route."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from clarion.domain import jsonlimits


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            # A value orjson cannot write (an integer beyond 64 bits, nesting past 255
            # levels) that the store's tolerant reads did not already clean: written
            # cleaned as they would have (domain/jsonlimits.sanitized), never a 500.
            return orjson.dumps(jsonlimits.sanitized(content))
