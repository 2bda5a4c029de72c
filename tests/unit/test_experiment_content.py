"""A variant that changes only a send's title or message: its validated content is the
send's with the variant's checked title and message laid over it, the same as validating
the variant's send whole (which the sending service then skips)."""

from __future__ import annotations

from typing import Any

import pytest

from clarion.domain.content import validate_content
from clarion.domain.experiments import Variant, apply, content_patch
from clarion.domain.send_command import SendCommand
from clarion.domain.types import TemplateKind


def _content(cmd: SendCommand) -> dict[str, Any]:  # as SendingService.content_of
    return validate_content(
        cmd.template,
        title=cmd.title or cmd.template_key or "",
        message=cmd.message,
        media=cmd.media,
        actions=cmd.actions,
        extra=cmd.content,
    )


SENDS = [
    SendCommand(user_ids=("u",), type="t", title="Bo followed you", message="Say hi!"),
    SendCommand(user_ids=("u",), type="t", title="  Padded  ", message=""),
    SendCommand(user_ids=("u",), type="t", title="", template_key="welcome"),
    SendCommand(
        user_ids=("u",),
        type="t",
        title="Card",
        template=TemplateKind.CARD,
        content={"fields": [{"label": "Total", "value": "42"}]},
        media={"image": "https://example.com/a.png"},
        actions=[{"id": "open", "label": "Open", "url": "https://example.com"}],
    ),
]
VARIANTS = [
    Variant("a", 50, {"title": "  Someone new follows you "}),
    Variant("b", 50, {"message": "Line one\nline two "}),
    Variant("c", 50, {"title": "Sale", "message": "Now", "channels": ["in_app"]}),
    Variant("d", 50, {"priority": "high", "delay_seconds": 60}),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.key)
@pytest.mark.parametrize("cmd", SENDS, ids=range(len(SENDS)))
def test_patch_gives_what_validating_the_variants_send_gives(
    cmd: SendCommand, variant: Variant
) -> None:
    patch = content_patch(variant)
    assert patch is not None
    assert {**_content(cmd), **patch} == _content(apply(cmd, variant))


@pytest.mark.parametrize(
    "overrides",
    [
        {"template": "card", "content": {"fields": []}},
        {"content": {"fields": []}},
        {"template_key": "welcome"},
        {"title": "bad \x07 bell"},  # refused: each send is validated, and refused, whole
    ],
)
def test_other_variants_are_validated_per_send(overrides: dict[str, Any]) -> None:
    assert content_patch(Variant("x", 50, overrides)) is None
