"""How a live experiment splits one send's recipients: what each variant (and the holdout)
gets is worked out once per refresh, with the winner and ``holdout_after_winner`` applied."""

from __future__ import annotations

import dataclasses

import pytest

from clarion.domain.experiment_assignment import HOLDOUT, Assigner
from clarion.domain.experiments import content_patch, validated
from clarion.domain.send_command import SendCommand
from clarion.services.experiment_split import Live, routes_of, split_send

USERS = [f"u{i}" for i in range(400)]
CMD = SendCommand(user_ids=tuple(USERS), type="follow", title="Bo followed you")


def _live(winner: str | None, after_winner: str) -> Live:
    config = validated(
        {
            "variants": [
                {"key": "control", "weight": 50},
                {"key": "short", "weight": 50, "title": "New follower", "delay_seconds": 60},
            ],
            "holdout": 20,
            "holdout_after_winner": after_winner,
        }
    )
    live = Live(
        "x1",
        config,
        winner,
        "follow",
        None,
        {v.key: content_patch(v) for v in config.variants},
        Assigner("x1", config.weights(), 0.2),
    )
    return dataclasses.replace(live, routes=routes_of(live))


def test_without_a_winner_each_user_gets_the_hashed_variant() -> None:
    live = _live(None, "keep")
    split = split_send(live, CMD, USERS, {})
    hashed = {u: live.assign(u) for u in USERS}
    assert split.chosen == hashed
    assert sorted(split.holdout) == sorted(u for u, v in hashed.items() if v == HOLDOUT)
    by_variant = {g.experiment[1]: g for g in split.groups if g.experiment}
    assert set(by_variant) == {"control", "short"}
    short, control = by_variant["short"], by_variant["control"]
    assert short.cmd.title == "New follower" and short.delay_seconds == 60
    assert short.content_patch == {"title": "New follower"}
    assert control.cmd is CMD and control.delay_seconds == 0 and control.content_patch == {}
    for key, group in by_variant.items():
        assert sorted(group.user_ids) == sorted(u for u, v in hashed.items() if v == key)


def test_a_recorded_variant_wins_over_the_hash() -> None:
    live = _live(None, "keep")
    flip = {"control": "short", "short": "control", HOLDOUT: "control"}
    known = {u: flip[live.assign(u)] for u in USERS[:50]}
    split = split_send(live, CMD, USERS[:50], known)
    assert split.chosen == {} and split.holdout == []
    for group in split.groups:
        assert group.experiment is not None
        assert all(known[u] == group.experiment[1] for u in group.user_ids)


@pytest.mark.parametrize(("after_winner", "holdout_gets"), [("keep", None), ("end", "short")])
def test_the_winner_takes_all_traffic_and_the_holdout_as_configured(
    after_winner: str, holdout_gets: str | None
) -> None:
    live = _live("short", after_winner)
    split = split_send(live, CMD, USERS, {})
    held = [u for u in USERS if live.assign(u) == HOLDOUT]
    assert held  # 20 % of 400
    assert [g.experiment for g in split.groups] == [("x1", "short")]
    if holdout_gets is None:
        assert sorted(split.holdout) == sorted(held)
        assert len(split.groups[0].user_ids) == len(USERS) - len(held)
    else:
        assert split.holdout == [] and len(split.groups[0].user_ids) == len(USERS)
