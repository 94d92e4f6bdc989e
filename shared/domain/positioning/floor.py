"""Floor decision with hysteresis, and floor changes gated to stairs and elevators."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.domain.positioning.site_index import SiteIndex


@dataclass(frozen=True)
class FloorPolicy:
    """A new floor must hold `switch_share` of the received power, `margin` more than the current floor's, for
    `dwell_s`; where the site has stairs or elevators the phone must have been within `gate_m` of one (on
    the floor it leaves) unless it was not seen for `lost_after_s`, or the new floor has held for `override_s`
    (then the floor the track started on was wrong: a minute of the other floor is no teleport)."""

    switch_share: float = 0.6
    margin: float = 0.25
    dwell_s: float = 4.0
    gate_m: float = 10.0
    lost_after_s: float = 60.0
    override_s: float = 60.0


@dataclass(frozen=True)
class FloorDecision:
    floor: str
    candidate: str | None
    candidate_since: float | None


def decide_floor(
    index: SiteIndex,
    scores: Sequence[float],
    now: float,
    *,
    current: str | None,
    candidate: str | None,
    candidate_since: float | None,
    last_xy: tuple[float, float] | None,
    last_seen: float | None,
    policy: FloorPolicy = FloorPolicy(),
) -> FloorDecision:
    """Keep `current` unless another floor has clearly and durably taken over and the move is physically possible."""
    best = index.floor_ids[max(range(len(scores)), key=scores.__getitem__)]  # the first of equals, as argmax
    if current is None or current not in index.floor_ids:
        return FloorDecision(best, None, None)
    if best == current:
        return FloorDecision(current, None, None)
    share_best = float(scores[index.floor_ids.index(best)])
    share_current = float(scores[index.floor_ids.index(current)])
    if share_best < policy.switch_share or share_best - share_current < policy.margin:
        return FloorDecision(current, None, None)
    if candidate != best or candidate_since is None:
        candidate, candidate_since = best, now
    lost = last_seen is None or now - last_seen > policy.lost_after_s
    if now - candidate_since < policy.dwell_s and not lost:
        return FloorDecision(current, candidate, candidate_since)
    held = now - candidate_since >= policy.override_s
    if not lost and not held and not may_change_floor(index, current, last_xy, policy):
        return FloorDecision(current, candidate, candidate_since)
    return FloorDecision(best, None, None)


def may_change_floor(index: SiteIndex, floor: str, xy: tuple[float, float] | None, policy: FloorPolicy) -> bool:
    """True when the site has no stairs/elevators (nothing to gate on) or `xy` is near one on `floor`."""
    if not index.has_transitions or xy is None:
        return True
    return index.distance_to_transition(floor, xy) <= policy.gate_m
