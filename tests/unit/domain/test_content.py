"""The in-app payload shapes: what each kind accepts, normalises and refuses."""

from __future__ import annotations

from typing import Any

import pytest

from clarion.domain.content import absolute_media, validate_content
from clarion.domain.types import TemplateKind
from clarion.errors import ValidationFailed


def problems(kind: str, **kwargs: Any) -> dict[str, str]:
    kwargs.setdefault("title", "Hello")
    kwargs.setdefault("message", "World")
    with pytest.raises(ValidationFailed) as info:
        validate_content(kind, **kwargs)
    return {d["field"]: d["problem"] for d in info.value.details}


def test_simple_is_normalised() -> None:
    out = validate_content(TemplateKind.SIMPLE, title="  Hi  ", message="line1\r\nline2")
    assert out == {"kind": "simple", "title": "Hi", "message": "line1\nline2"}


def test_simple_limits_and_types() -> None:
    found = problems("simple", title="x" * 201, message="y" * 4001)
    assert set(found) == {"title", "message"}
    assert "title" in problems("simple", title="")
    assert "title" in problems("simple", title="a\nb")
    assert "message" in problems("simple", message="bell\x07")
    assert "message" in problems("simple", message=5)


def test_unknown_kind() -> None:
    assert "template" in problems("carousel")


def test_rich_media_needs_one_http_url() -> None:
    out = validate_content(
        "rich_media", title="t", message="m", media={"image": "https://cdn.example/x.png"}
    )
    assert out["media"] == {"image": "https://cdn.example/x.png"}
    assert "media" in problems("rich_media")
    assert "media" in problems("rich_media", media={})
    found = problems(
        "rich_media",
        media={
            "image": "javascript:alert(1)",
            "video": "ftp://x/y",
            "avatar": "https://" + "a" * 2048,
            "gif": "x",
        },
    )
    assert set(found) == {"media.image", "media.video", "media.avatar", "media.gif"}


def test_media_is_optional_but_validated_on_other_kinds() -> None:
    assert "media" not in validate_content("simple", title="t", message="m")
    assert "media.thumbnail" in problems("simple", media={"thumbnail": "data:image/png;base64,xx"})


def test_interactive_actions() -> None:
    out = validate_content(
        "interactive",
        title="Invite",
        message="Join?",
        actions=[
            {"id": "accept", "label": "Accept", "action": "invite.accept", "style": "primary"},
            {"id": "view", "label": "View", "url": "https://app.example/i/1"},
        ],
    )
    assert out["actions"][1] == {
        "id": "view",
        "label": "View",
        "url": "https://app.example/i/1",
        "style": "secondary",
    }
    assert "actions" in problems("interactive")
    assert "actions" in problems("interactive", actions=[])
    six = [{"id": f"a{i}", "label": "x", "action": "x"} for i in range(6)]
    assert "actions" in problems("interactive", actions=six)
    found = problems(
        "interactive",
        actions=[
            {"id": "a b", "label": "x" * 65, "action": "x", "url": "https://x.y", "style": "loud"},
            {"id": "ok", "label": "Ok"},
            {"id": "ok", "label": "Ok", "url": "http://x.y"},
        ],
    )
    assert set(found) == {
        "actions[0].id",
        "actions[0].label",
        "actions[0]",
        "actions[0].style",
        "actions[1]",
        "actions[2].id",
    }


def test_card() -> None:
    out = validate_content(
        "card",
        title="Invoice",
        message="",
        extra={"header": "ACME", "fields": [{"label": "Total", "value": 42.5}], "footer": "Thanks"},
    )
    assert out["extra"] == {
        "header": "ACME",
        "footer": "Thanks",
        "fields": [{"label": "Total", "value": "42.5"}],
    }
    assert "content.fields" in problems("card", extra={"header": "x"})
    assert "content.fields[0].value" in problems(
        "card", extra={"fields": [{"label": "a", "value": True}]}
    )
    assert "content.colour" in problems(
        "card", extra={"fields": [{"label": "a", "value": "b"}], "colour": "red"}
    )


def test_list() -> None:
    items = [
        {"title": "One", "subtitle": "s", "url": "https://x.y/1", "image": "https://x.y/1.png"}
    ]
    assert validate_content("list", title="t", message="m", extra={"items": items})["extra"] == {
        "items": items
    }
    assert "content.items" in problems("list", extra={"items": [{"title": "x"}] * 51})
    assert "content.items[0].url" in problems(
        "list", extra={"items": [{"title": "x", "url": "nope"}]}
    )


def test_timeline_is_sorted_and_needs_offsets() -> None:
    out = validate_content(
        "timeline",
        title="Order",
        message="",
        extra={
            "entries": [
                {"at": "2024-05-02T10:00:00+02:00", "title": "Shipped"},
                {"at": "2024-05-01T12:00:00Z", "title": "Ordered", "description": "Thanks"},
            ]
        },
    )
    assert [e["title"] for e in out["extra"]["entries"]] == ["Ordered", "Shipped"]
    assert out["extra"]["entries"][1]["at"] == "2024-05-02T08:00:00Z"
    assert "content.entries[0].at" in problems(
        "timeline", extra={"entries": [{"at": "2024-05-01T12:00", "title": "x"}]}
    )
    assert "content.entries[0].at" in problems(
        "timeline", extra={"entries": [{"at": "yesterday", "title": "x"}]}
    )
    assert "content.entries" in problems("timeline", extra={"entries": []})


def test_extra_refused_on_kinds_without_it() -> None:
    assert "content" in problems("simple", extra={"items": []})


def test_all_problems_reported_at_once() -> None:
    found = problems(
        "interactive", title="", message=None, actions=[{"id": "ok"}], media={"image": 1}
    )
    assert {"title", "actions[0].label", "actions[0]", "media.image"} <= set(found)


def test_relative_media_references_are_kept_as_sent() -> None:
    """The product brief sends ``media={"avatar": "john_avatar.jpg"}``."""
    out = validate_content(
        "rich_media",
        title="t",
        message="m",
        media={"avatar": "john_avatar.jpg", "image": "/img/cover.png?v=2"},
    )
    assert out["media"] == {"avatar": "john_avatar.jpg", "image": "/img/cover.png?v=2"}
    found = problems(
        "rich_media",
        media={
            "avatar": "//evil.example/x.png",  # a host of its own: not relative
            "image": "a b.png",
            "video": "\\\\evil.example\\x",
            "thumbnail": "",
        },
    )
    assert set(found) == {"media.avatar", "media.image", "media.video", "media.thumbnail"}


def test_absolute_media_resolves_only_relative_references() -> None:
    media = {"avatar": "john_avatar.jpg", "image": "/img/c.png", "video": "https://v.example/1"}
    assert absolute_media(media, "https://app.example/media") == {
        "avatar": "https://app.example/media/john_avatar.jpg",
        "image": "https://app.example/img/c.png",
        "video": "https://v.example/1",
    }
    assert absolute_media(None, "https://app.example") is None


def test_action_ids_are_derived_when_not_given() -> None:
    """The product brief's ``actions=[{"label": "View Profile", "action": "view_profile"}]``."""
    out = validate_content(
        "interactive",
        title="t",
        message="m",
        actions=[
            {"label": "View Profile", "action": "view_profile"},
            {"label": "Open", "url": "https://app.example/x"},
            {"label": "Again", "action": "view_profile"},
            {"id": "view_profile-2", "label": "Taken", "action": "x"},
            {"label": "★", "action": "☆"},
        ],
    )
    assert [a["id"] for a in out["actions"]] == [
        "view_profile",
        "Open",
        "view_profile-3",
        "view_profile-2",
        "action-5",
    ]
