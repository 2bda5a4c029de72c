"""The one cursor format of every paginated list (inbox, batches, scheduled sends,
templates): an opaque URL-safe token of a kind and a keyset position.

Why one helper: a cursor comes back from the client, so it is client input like any
other. Decoded here, with the position checked against the shape its kind allows, a
garbage, truncated or foreign cursor (a batches cursor passed to the inbox, text with NUL
that PostgreSQL would refuse) is a ``400 bad_cursor`` before any query, the same on
every list. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Literal

from clarion.errors import BadCursor

__all__ = ["MAX_CURSOR", "Kind", "decode", "decode_id", "encode"]

Kind = Literal["n", "b", "s", "t"]

#: The longest cursor any list issues (a template key of 100 characters): longer is
#: refused by the routes' declared bounds.
MAX_CURSOR = 140

# The position each kind's list keys on: a notification id, a batch or scheduled send id
# (a UUID), a template key (services/templates.KEY_PATTERN).
_POSITION: dict[str, re.Pattern[str]] = {
    "n": re.compile(r"[1-9][0-9]{0,18}"),
    "b": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "s": re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    "t": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}"),
}
_ALPHABET = re.compile(rf"[A-Za-z0-9_\-]{{1,{MAX_CURSOR}}}")


def encode(kind: Kind, position: int | str) -> str:
    """The cursor after ``position`` in the list of ``kind``."""
    raw = f"{kind}:{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(kind: Kind, cursor: str) -> str:
    """The position ``cursor`` stands for, or :class:`BadCursor` when this service did not
    issue it for a list of ``kind``."""
    if _ALPHABET.fullmatch(cursor) is None:
        raise BadCursor("the cursor is not one this service issued")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("the cursor is not one this service issued") from exc
    tag, _, position = raw.partition(":")
    if tag != kind or _POSITION[kind].fullmatch(position) is None:
        raise BadCursor("the cursor is not one this service issued")
    return position


def decode_id(cursor: str) -> int:
    """A notification list's cursor as the id it continues below (a positive int64)."""
    value = int(decode("n", cursor))
    if value >= 2**63:
        raise BadCursor("the cursor is not one this service issued")
    return value
