"""Map-matched room tracking: a hidden Markov model over the spaces of a floor, moving only where people pass.

State: the probability of each space (the few that matter, kept in the tracking state). Each update:

1. *predict*: a phone stays in its space with probability exp(-dt / dwell), dwell by kind (a room is stayed in
   for minutes, a corridor, lobby, stairs or elevator for seconds: people dwell in rooms); what leaves goes to
   the spaces linked to it (doors; `SiteIndex.space_links`), the more the nearer the phone is to that door
   (Gaussian in the distance from the last position to the door, spread by the position's uncertainty and the
   walking distance since). A room can only be reached through its doors: a still phone near a wall cannot
   hop into the room behind it. A little mass (`recovery`) goes to every space the readings make plausible, so
   a wrong state is left when the evidence says so.
2. *update*: times the likelihood of the readings in each space (`Posterior.space_loglik`), tempered by
   `likelihood_power` (consecutive updates share the smoothed RSSI and the model's static errors, so they are
   not independent evidence).

Floors change only at stairs and elevators (`floor.py` gates them); on a new floor the state starts at the
spaces linked to where the phone left (stairs and elevators), mixed with what the readings say.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter

from shared.domain import space_kinds
from shared.domain.positioning.site_index import SiteIndex

PASSAGES = space_kinds.PASSAGES


@dataclass(frozen=True)
class MapMatchPolicy:
    """Tuning of the room HMM (docs/positioning.md has the measurements behind the defaults)."""

    room_dwell_s: float = 1800.0
    passage_dwell_s: float = 8.0
    likelihood_power: float = 1.0
    door_sigma_m: float = 2.0
    walking_speed_mps: float = 1.0
    recovery: float = 1e-3
    arrival_weight: float = 5.0  # on a new floor, spaces linked to the floor left count this much more
    keep: int = 8
    min_probability: float = 1e-3


def step(
    index: SiteIndex,
    probabilities: Mapping[int, float],
    space_loglik: Mapping[int, float],
    *,
    xy: tuple[float, float] | None,
    uncertainty_m: float,
    dt_s: float,
    policy: MapMatchPolicy,
) -> dict[int, float]:
    """One predict + update of the room HMM on the current floor; space positions of `index.spaces` to
    probability (the `keep` most probable, renormalised). With no previous state, the readings alone decide."""
    if not space_loglik:
        return dict(probabilities)
    candidates = list(space_loglik)
    prior: dict[int, float] = {}
    if probabilities:
        elapsed = max(dt_s, 0.0)
        reach = math.hypot(uncertainty_m, policy.door_sigma_m) + policy.walking_speed_mps * elapsed
        reach2 = reach * reach
        # the chance to stay, per kind of space (the same exp for every space of a kind)
        stay_passage = math.exp(-elapsed / policy.passage_dwell_s)
        stay_room = math.exp(-elapsed / policy.room_dwell_s)
        spaces, space_links, exp, mass_of = index.spaces, index.space_links, math.exp, prior.get
        for space, p in probabilities.items():
            stay = stay_passage if spaces[space].kind in PASSAGES else stay_room
            prior[space] = mass_of(space, 0.0) + p * stay
            links = space_links[space]
            if not links:
                prior[space] += p * (1.0 - stay)
                continue
            if xy is None:
                weights = [1.0] * len(links)
            else:
                x, y = xy
                weights = [exp(-0.5 * ((x - dx) ** 2 + (y - dy) ** 2) / reach2) for _j, dx, dy in links]
            total = sum(weights)
            if total <= 1e-12:
                prior[space] += p * (1.0 - stay)
                continue
            leaving = p * (1.0 - stay)
            for (j, _dx, _dy), w in zip(links, weights):
                prior[j] = mass_of(j, 0.0) + leaving * w / total
        recovery = policy.recovery / len(candidates)
        for space in candidates:
            prior[space] = mass_of(space, 0.0) + recovery
    else:
        prior = {space: 1.0 for space in candidates}
    return _update(prior, space_loglik, policy)


def arrive(index: SiteIndex, left: Mapping[int, float], space_loglik: Mapping[int, float],
           policy: MapMatchPolicy) -> dict[int, float]:
    """The state on a floor just reached: the spaces linked to the stairs / elevators the phone was in or near
    count `arrival_weight` times more, then the readings decide."""
    arrival = {j for space in left for j in index.vertical_links[space]}
    prior = {space: (policy.arrival_weight if space in arrival else 1.0) for space in space_loglik}
    return _update(prior, space_loglik, policy)


def _update(prior: Mapping[int, float], space_loglik: Mapping[int, float], policy: MapMatchPolicy) -> dict[int, float]:
    if not space_loglik:
        return {}
    top = max(space_loglik.values())
    power, exp, loglik_of = policy.likelihood_power, math.exp, space_loglik.get
    posterior = {}
    for space, p in prior.items():
        value = loglik_of(space)
        if value is not None and p > 0:
            posterior[space] = p * exp(power * (value - top))
    total = sum(posterior.values())
    if total <= 0:
        posterior = {space: exp(power * (v - top)) for space, v in space_loglik.items()}
        total = sum(posterior.values())
    kept = sorted(posterior.items(), key=itemgetter(1), reverse=True)[: policy.keep]  # ties keep their order
    smallest = policy.min_probability
    kept = [(s, p / total) for s, p in kept if p / total >= smallest] or [kept[0]]
    norm = sum([p for _s, p in kept])
    return {s: p / norm for s, p in kept}
