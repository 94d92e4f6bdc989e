"""Space decision with hysteresis: a still phone near a wall must not flap, a walking phone must follow.

A challenger space collects evidence: its lead in probability over the current space, times the seconds since
the previous update (at most `max_step_s`, so a sparse stream is not over-trusted). It takes over once the
evidence reaches `evidence_needed` (probability-seconds) and it has led for `dwell_s`. A clear lead (walking
into a room) switches in a few seconds whatever the batch cadence; a marginal, noisy lead (a still phone near a
wall) rarely does, and one update where the challenger falls below the margin resets the challenge.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SpacePolicy:
    margin: float = 0.2
    dwell_s: float = 5.0
    evidence_needed: float = 6.0
    max_step_s: float = 5.0
    confidence_smoothing: float = 0.5
    min_probability: float = 0.0  # a challenger is considered only once it is at least this probable


@dataclass(frozen=True)
class SpaceDecision:
    space: str | None
    confidence: float
    candidate: str | None
    candidate_since: float | None
    evidence: float = 0.0


def decide_space(
    probabilities: Mapping[str, float],
    now: float,
    *,
    current: str | None,
    confidence: float,
    candidate: str | None,
    candidate_since: float | None,
    evidence: float = 0.0,
    elapsed_s: float = 1.0,
    policy: SpacePolicy = SpacePolicy(),
) -> SpaceDecision:
    """The space to report and a confidence (0..1), given this update's probability of each space."""
    if not probabilities:
        return SpaceDecision(current, confidence * policy.confidence_smoothing, None, None)
    best, p_best = max(probabilities.items(), key=lambda kv: kv[1])
    if current is None:
        return SpaceDecision(best, p_best, None, None)
    p_current = probabilities.get(current, 0.0)
    smoothed = policy.confidence_smoothing * confidence + (1 - policy.confidence_smoothing) * p_current
    lead = p_best - p_current
    if best == current or lead < policy.margin or p_best < policy.min_probability:
        return SpaceDecision(current, smoothed, None, None)
    if candidate != best or candidate_since is None:
        candidate, candidate_since, evidence = best, now, 0.0
    evidence += lead * min(max(elapsed_s, 0.0), policy.max_step_s)
    if evidence >= policy.evidence_needed and now - candidate_since >= policy.dwell_s:
        return SpaceDecision(best, p_best, None, None)
    return SpaceDecision(current, smoothed, candidate, candidate_since, evidence)
