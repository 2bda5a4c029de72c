"""domain/cursors: one opaque cursor format for every list; anything else is bad_cursor."""

from __future__ import annotations

import random
import string

import pytest

from clarion.domain import cursors
from clarion.errors import BadCursor

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_round_trips_per_kind() -> None:
    assert cursors.decode_id(cursors.encode("n", 42)) == 42
    assert cursors.decode_id(cursors.encode("n", 2**63 - 1)) == 2**63 - 1
    assert cursors.decode("b", cursors.encode("b", UUID)) == UUID
    assert cursors.decode("s", cursors.encode("s", UUID)) == UUID
    key = "a" + "b" * 99
    token = cursors.encode("t", key)
    assert len(token) <= cursors.MAX_CURSOR
    assert cursors.decode("t", token) == key


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("n", ""),
        ("n", "garbage"),
        ("n", "nope!"),
        ("n", "a\x00b"),
        ("n", "bjo="),
        ("s", cursors.encode("b", UUID)),  # another list's cursor
        ("n", cursors.encode("b", UUID)),
        ("n", cursors.encode("n", 0)),
        ("n", cursors.encode("n", 2**63)),
        ("t", cursors.encode("t", "-leading-dash")),
        ("s", cursors.encode("s", UUID.upper())),
        ("t", cursors.encode("t", "k\x00")),
        ("t", "x" * (cursors.MAX_CURSOR + 1)),
    ],
)
def test_anything_not_issued_is_bad_cursor(kind: cursors.Kind, bad: str) -> None:
    with pytest.raises(BadCursor) as caught:
        if kind == "n":
            cursors.decode_id(bad)
        else:
            cursors.decode(kind, bad)
    assert caught.value.status == 400 and caught.value.code == "bad_cursor"


def test_random_text_is_only_ever_bad_cursor_fixed_seed() -> None:
    rng = random.Random(1207)
    alphabet = string.printable + "\x00\x01é\udc80"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        for kind in ("n", "b", "s", "t"):
            try:
                position = cursors.decode(kind, text)  # type: ignore[arg-type]
            except BadCursor:
                continue
            # Whatever decodes is a well-formed position of that kind.
            assert cursors.encode(kind, position) == text  # type: ignore[arg-type]
