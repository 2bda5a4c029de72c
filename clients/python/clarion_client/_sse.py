"""Server-Sent Events, read line by line: the user's live stream and the analytics
counters arrive this way."""

from __future__ import annotations

import json
from typing import Any

from clarion_client.models import LiveEvent


class SseDecoder:
    """Feeds lines (without their ending); gives back each complete ``(event, data)``."""

    def __init__(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed(self, line: str) -> list[tuple[str, str]]:
        if line == "":
            if not self._data:
                self._event = "message"
                return []
            out = [(self._event, "\n".join(self._data))]
            self._event, self._data = "message", []
            return out
        if line.startswith(":"):
            return []
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self.last_id = value
        return []


def live_event(event: str, data: str) -> LiveEvent | None:
    """A live-stream frame as a model; the stream's own control events (``token_expired``,
    ``closed``) as frames of that type."""
    try:
        payload: Any = json.loads(data)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    payload.setdefault("type", event)
    return LiveEvent.model_validate(payload)


def loads_or_none(payload: str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None
