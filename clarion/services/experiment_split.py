"""How one send is split between an experiment's variants: the live experiment as the
send path sees it, what each assigned variant (or the holdout) gets, and the groups of
recipients a send becomes. Pure work on what :class:`~clarion.services.experiments.
ExperimentService` read; nothing here reads or writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clarion.domain.experiment_assignment import HOLDOUT, Assigner
from clarion.domain.experiments import ExperimentConfig, Variant, apply
from clarion.domain.send_command import SendCommand


@dataclass(frozen=True)
class Live:
    id: str
    config: ExperimentConfig
    winner: str | None
    target_type: str | None
    target_template: str | None
    #: Per variant, its validated title and message (domain.experiments.content_patch).
    patches: Mapping[str, Mapping[str, str] | None]
    assign: Assigner  # user id -> variant by the hash, for this config
    #: What each assigned variant (and the holdout) gets now, the winner taken into
    #: account: worked out once per refresh, so a send pays one lookup per recipient.
    routes: Mapping[str, Arm | None] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)  # one per variant and refresh: compared by identity
class Arm:
    """How one variant shapes a send: the variant (its fields and delay), its validated
    title and message laid over the send's content, and the (experiment, variant) the rows
    carry."""

    experiment: tuple[str, str]
    variant: Variant
    content_patch: Mapping[str, str] | None


@dataclass
class Group:
    """Recipients of one send that get the same variant (``variant`` None: no experiment)."""

    cmd: SendCommand
    user_ids: list[str]
    experiment: tuple[str, str] | None = None
    delay_seconds: float = 0.0
    #: Laid over the send's validated content gives ``cmd``'s (None: validate ``cmd``).
    content_patch: Mapping[str, str] | None = None


@dataclass
class Split:
    groups: list[Group]
    holdout: list[str] = field(default_factory=list)
    experiment_id: str | None = None
    chosen: dict[str, str] = field(default_factory=dict)  # new assignments to record


def split_send(
    exp: Live, cmd: SendCommand, user_ids: Sequence[str], known: Mapping[str, str]
) -> Split:
    """One send's recipients by variant: a recorded assignment first, else the hash."""
    chosen: dict[str, str] = {}
    by_arm: dict[Arm, list[str]] = {}
    holdout: list[str] = []
    routes = exp.routes
    for uid in user_ids:
        variant = known.get(uid)
        if variant is None:
            variant = chosen[uid] = exp.assign(uid)
        arm = routes[variant] if variant in routes else _route(exp, variant)
        if arm is None:
            holdout.append(uid)
        elif arm in by_arm:
            by_arm[arm].append(uid)
        else:
            by_arm[arm] = [uid]
    groups = [
        Group(
            apply(cmd, arm.variant),
            uids,
            arm.experiment,
            arm.variant.delay_seconds,
            arm.content_patch,
        )
        for arm, uids in by_arm.items()
    ]
    return Split(groups, holdout, exp.id, chosen)


def routes_of(exp: Live) -> dict[str, Arm | None]:
    """:func:`_route` of every variant and the holdout, one :class:`Arm` per variant sent
    (under a winner, all of them share the winner's: one group per send)."""
    arms: dict[str, Arm] = {}
    routes: dict[str, Arm | None] = {}
    for key in [*(v.key for v in exp.config.variants), HOLDOUT]:
        arm = _route(exp, key)
        routes[key] = None if arm is None else arms.setdefault(arm.experiment[1], arm)
    return routes


def _route(exp: Live, variant: str) -> Arm | None:
    """What a user assigned ``variant`` gets now (``None``: held out): the winner takes
    all traffic, and the holdout's too once it ends with the winner."""
    if exp.winner is not None and (variant != HOLDOUT or exp.config.holdout_after_winner == "end"):
        variant = exp.winner
    if variant == HOLDOUT:
        return None
    config = exp.config
    v = config.variant(variant) or config.variants[0]
    return Arm((exp.id, variant), v, exp.patches.get(v.key))


__all__ = ["Arm", "Group", "Live", "Split", "routes_of", "split_send"]
