from __future__ import annotations

from itertools import pairwise

import numpy as np

from shared.domain.positioning.floor import FloorPolicy, decide_floor
from shared.domain.positioning.space import SpacePolicy, decide_space

POLICY = SpacePolicy(margin=0.2, dwell_s=5.0, evidence_needed=4.0)


def _run_space(sequence, step_s=1.0, start=None, policy=POLICY):
    current, conf, cand, since, evidence = start, 0.0, None, None, 0.0
    reported = []
    for i, probs in enumerate(sequence):
        d = decide_space(probs, i * step_s, current=current, confidence=conf, candidate=cand, candidate_since=since,
                         evidence=evidence, elapsed_s=step_s, policy=policy)
        current, conf, cand, since, evidence = d.space, d.confidence, d.candidate, d.candidate_since, d.evidence
        reported.append(current)
    return reported


def test_still_phone_near_a_wall_does_not_flap():
    rng = np.random.default_rng(0)
    sequence = []
    for _ in range(600):
        p = float(np.clip(rng.normal(0.55, 0.12), 0, 1))  # straddling the wall, room A slightly ahead
        sequence.append({"A": p, "B": 1 - p})
    reported = _run_space(sequence)
    changes = sum(a != b for a, b in pairwise(reported))
    assert changes <= 1


def test_walking_phone_changes_room_within_a_few_seconds():
    sequence = [{"A": 0.9, "B": 0.1}] * 10 + [{"A": 0.1, "B": 0.9}] * 20
    reported = _run_space(sequence)
    first_b = reported.index("B")
    assert 10 <= first_b <= 10 + POLICY.dwell_s + 1
    assert all(r == "B" for r in reported[first_b:])


def test_a_clear_lead_needs_less_time_than_a_marginal_one():
    clear = [{"A": 0.9, "B": 0.1}] * 5 + [{"A": 0.05, "B": 0.95}] * 30
    marginal = [{"A": 0.9, "B": 0.1}] * 5 + [{"A": 0.35, "B": 0.65}] * 30
    quick = SpacePolicy(margin=0.2, dwell_s=1.0, evidence_needed=4.0)
    assert _run_space(clear, policy=quick).index("B") < _run_space(marginal, policy=quick).index("B")


def test_switching_takes_about_the_same_time_at_any_cadence():
    def switch_time(step_s):
        n_before, n_after = int(20 / step_s), int(60 / step_s)
        seq = [{"A": 0.9, "B": 0.1}] * n_before + [{"A": 0.1, "B": 0.9}] * n_after
        return _run_space(seq, step_s=step_s).index("B") * step_s - n_before * step_s

    fast, slow = switch_time(1.0), switch_time(4.0)
    assert fast <= 6 and slow <= 8


def test_a_brief_glitch_does_not_switch_room():
    sequence = [{"A": 0.9, "B": 0.1}] * 10 + [{"A": 0.1, "B": 0.9}] * 3 + [{"A": 0.9, "B": 0.1}] * 10
    assert set(_run_space(sequence)) == {"A"}


def test_confidence_is_the_probability_of_the_reported_space():
    d = decide_space({"A": 0.7, "B": 0.3}, 0.0, current=None, confidence=0.0, candidate=None, candidate_since=None)
    assert (d.space, d.confidence) == ("A", 0.7)


def _floor_run(index, scores_seq, xy, policy=FloorPolicy(dwell_s=4.0, gate_m=8.0), step_s=1.0):
    current = cand = since = None
    out = []
    last_seen = None
    for i, scores in enumerate(scores_seq):
        d = decide_floor(index, np.array(scores), i * step_s, current=current, candidate=cand, candidate_since=since,
                         last_xy=xy, last_seen=last_seen, policy=policy)
        current, cand, since, last_seen = d.floor, d.candidate, d.candidate_since, i * step_s
        out.append(current)
    return out


def test_floor_change_needs_dwell_and_is_accepted_near_stairs(sim_index, sim_site):
    stairs = next(n for n in sim_site.navigation.nodes if n.kind.value == "stairs" and n.floor == "L0")
    seq = [[0.9, 0.1]] * 5 + [[0.2, 0.8]] * 10
    out = _floor_run(sim_index, seq, (stairs.x, stairs.y + 1.0))
    switch = out.index("L1")
    assert 5 + 4 <= switch <= 5 + 5
    assert out[-1] == "L1"


def test_floor_change_far_from_stairs_and_elevators_is_refused(sim_index):
    seq = [[0.9, 0.1]] * 5 + [[0.2, 0.8]] * 30
    far = (55.0, 10.0)
    assert set(_floor_run(sim_index, seq, far)) == {"L0"}


def test_weak_floor_evidence_keeps_the_floor(sim_index, sim_site):
    stairs = next(n for n in sim_site.navigation.nodes if n.kind.value == "stairs" and n.floor == "L0")
    seq = [[0.9, 0.1]] * 3 + [[0.45, 0.55]] * 30  # other floor ahead but below the switch share and margin
    assert set(_floor_run(sim_index, seq, (stairs.x, stairs.y))) == {"L0"}


def test_a_floor_held_for_a_minute_is_taken_even_far_from_stairs(sim_index):
    """A track that started on the wrong floor is not stuck there: a minute of the other floor is no teleport."""
    seq = [[0.9, 0.1]] * 5 + [[0.1, 0.9]] * 80
    out = _floor_run(sim_index, seq, (55.0, 10.0))
    assert out[5 + 30] == "L0" and out[-1] == "L1"
    assert out.index("L1") == 5 + 60
