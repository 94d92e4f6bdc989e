"""The floor summary's codes: every space document's headcount and since survive the round trip to the microsecond,
and a summary written for another order of the floor's spaces is never read as this one."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters import documents
from shared.domain.floor_summary import FloorSummary, SpaceSnapshot, code_occupied, decode_code, order_key
from shared.domain.presence import SpaceState
from shared.domain.tenancy import BuildingRef

HQ = BuildingRef("tenant-a", "hq")
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def state(space_id: str, headcount: int, since: datetime | None) -> SpaceState:
    return SpaceState("tenant-a", "hq", space_id, occupants={f"d{i}": T0.isoformat() for i in range(headcount)},
                      since=since)


def test_random_states_survive_the_document_round_trip():
    rng = random.Random(3)
    ids = [f"r{i}" for i in range(300)]
    states = {}
    for space_id in ids:
        if rng.random() < 0.2:
            continue  # no space document
        since = None if rng.random() < 0.1 else T0 + timedelta(microseconds=rng.randrange(-10**12, 10**12))
        states[space_id] = state(space_id, rng.choice([0, 0, 1, 2, 17]), since)
    summary = FloorSummary.build(HQ, "f0", ids, states)
    read = documents.floor_summary_from_doc(documents.floor_summary_to_doc(summary))
    assert read.snapshots(ids) == {s: SpaceSnapshot.of(st) for s, st in states.items()}
    # later changes (some before the summary's base, so negative offsets) land where they belong
    later = {s: state(s, 1, T0 - timedelta(days=3, microseconds=7)) for s in rng.sample(ids, 40)}
    updated = documents.floor_summary_from_doc(documents.floor_summary_to_doc(read.updated(ids, later)))
    assert updated.snapshots(ids) == {**{s: SpaceSnapshot.of(st) for s, st in states.items()},
                                      **{s: SpaceSnapshot.of(st) for s, st in later.items()}}


def test_a_floor_of_one_space_without_a_document_is_one_code_not_none():
    summary = FloorSummary.build(HQ, "f1", ["o-1"], {})
    read = documents.floor_summary_from_doc(documents.floor_summary_to_doc(summary))
    assert read.codes == ("",) and read.fits(["o-1"]) and read.snapshots(["o-1"]) == {}


def test_a_summary_of_another_order_does_not_fit():
    ids = ["a", "b", "c"]
    summary = FloorSummary.build(HQ, "f0", ids, {"a": state("a", 1, T0)})
    assert summary.fits(ids)
    for other in (["b", "a", "c"], ["a", "b"], ["a", "b", "c", "d"], ["a", "b", "x"]):
        assert not summary.fits(other)
        with pytest.raises(ValueError):
            summary.snapshots(other)
        with pytest.raises(ValueError):
            summary.updated(other, {})
    assert order_key(ids) != order_key(["a", "bc"])  # ids are joined with a separator no id holds


def test_the_codes_are_short():
    ids = [f"L3-R{i:03d}" for i in range(200)]
    states = {s: state(s, i % 3, T0 + timedelta(seconds=i * 97.123457)) for i, s in enumerate(ids)}
    doc = documents.floor_summary_to_doc(FloorSummary.build(HQ, "L3", ids, states))
    assert len(doc["codes"]) <= 200 * 11  # headcount, '.', at most 8 base-36 digits within a day, ','


def test_occupied_and_the_floor_headcount_read_from_the_codes():
    ids = ["a", "b", "c", "d"]
    states = {"a": state("a", 10, T0), "b": state("b", 0, T0), "c": state("c", 1, None)}
    summary = FloorSummary.build(HQ, "f0", ids, states)
    assert [code_occupied(c) for c in summary.codes] == [True, False, True, False]
    assert summary.headcount() == 11
    assert decode_code(summary.codes[0], summary.base) == SpaceSnapshot(10, T0)
