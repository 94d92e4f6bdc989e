"""The floor summary's two documents: every space document's headcount (counts) and since (sinces) survive the round
trip to the microsecond, the counts alone answer occupied and the floor's headcount, a summary written for another
order of the floor's spaces is never read as this one, and a damaged or foreign document is never read as one."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters import documents
from shared.domain.floor_summary import (
    BadSummary,
    FloorSummary,
    SpaceSnapshot,
    decode_counts,
    encode_counts,
    order_key,
)
from shared.domain.presence import SpaceState
from shared.domain.tenancy import BuildingRef

HQ = BuildingRef("tenant-a", "hq")
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def state(space_id: str, headcount: int, since: datetime | None) -> SpaceState:
    return SpaceState("tenant-a", "hq", space_id, occupants={f"d{i}": T0.isoformat() for i in range(headcount)},
                      since=since)


def round_trip(summary: FloorSummary, *, sinces: bool = True) -> FloorSummary:
    counts = {**documents.floor_summary_to_doc(summary), "_etag": '"e1"'}
    return documents.floor_summary_from_docs(counts, documents.floor_sinces_to_doc(summary) if sinces else None)


def test_random_states_survive_the_document_round_trip():
    rng = random.Random(3)
    ids = [f"r{i}" for i in range(300)]
    states = {}
    for space_id in ids:
        if rng.random() < 0.2:
            continue  # no space document
        since = None if rng.random() < 0.1 else T0 + timedelta(microseconds=rng.randrange(-10**12, 10**12))
        states[space_id] = state(space_id, rng.choice([0, 0, 1, 2, 17, 61, 62, 140]), since)
    summary = FloorSummary.build(HQ, "f0", ids, states)
    assert not summary.sinces_saved  # a built summary's sinces are still to be written
    read = round_trip(summary)
    assert read.complete() and read.sinces_saved and read.etag == '"e1"'
    assert read.snapshots(ids) == {s: SpaceSnapshot.of(st) for s, st in states.items()}
    # later changes (some before the summary's base, so negative offsets) land where they belong
    later = {s: state(s, 1, T0 - timedelta(days=3, microseconds=7)) for s in rng.sample(ids, 40)}
    updated = read.updated(ids, later)
    assert not updated.sinces_saved
    assert round_trip(updated).snapshots(ids) == {**{s: SpaceSnapshot.of(st) for s, st in states.items()},
                                                  **{s: SpaceSnapshot.of(st) for s, st in later.items()}}


def test_a_change_of_headcount_alone_leaves_the_sinces_written():
    ids = ["a", "b"]
    read = round_trip(FloorSummary.build(HQ, "f0", ids, {"a": state("a", 1, T0)}))
    more = read.updated(ids, {"a": state("a", 2, T0)})
    assert more.sinces_saved and more.sinces is read.sinces and more.counts == (2, None)
    moved = read.updated(ids, {"a": state("a", 1, T0 + timedelta(microseconds=1))})
    assert not moved.sinces_saved


def test_the_counts_alone_answer_occupied_and_the_floor_headcount():
    ids = ["a", "b", "c", "d"]
    states = {"a": state("a", 10, T0), "b": state("b", 0, T0), "c": state("c", 1, None)}
    counts_only = round_trip(FloorSummary.build(HQ, "f0", ids, states), sinces=False)
    assert not counts_only.complete() and counts_only.fits(ids)
    assert [counts_only.occupied(i) for i in range(4)] == [True, False, True, False]
    assert counts_only.headcount() == 11
    with pytest.raises(ValueError):
        counts_only.snapshot(0)  # no since without the sinces document
    with pytest.raises(ValueError):
        counts_only.updated(ids, {})


def test_a_floor_of_one_space_without_a_document_is_one_entry_not_none():
    read = round_trip(FloorSummary.build(HQ, "f1", ["o-1"], {}))
    assert read.counts == (None,) and read.fits(["o-1"]) and read.complete() and read.snapshots(["o-1"]) == {}


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


def test_the_counts_are_a_character_a_space_and_the_sinces_short():
    ids = [f"L3-R{i:03d}" for i in range(200)]
    states = {s: state(s, i % 3, T0 + timedelta(seconds=i * 97.123457)) for i, s in enumerate(ids)}
    summary = FloorSummary.build(HQ, "L3", ids, states)
    assert len(documents.floor_summary_to_doc(summary)["counts"]) == 200
    assert len(documents.floor_sinces_to_doc(summary)["sinces"]) <= 200 * 9  # 8 base-36 digits within a day, ','
    assert encode_counts([0, 9, 10, 35, 36, 61, 62, 1000, None]) == "09azAZ(62)(1000)-"
    assert decode_counts("09azAZ(62)(1000)-") == (0, 9, 10, 35, 36, 61, 62, 1000, None)


@pytest.mark.parametrize("text", ["0 1", "(61)", "(07x)", "(12", "1)", "()", "é", "(-3)"])
def test_counts_that_no_summary_writes_are_refused(text):
    with pytest.raises(BadSummary):
        decode_counts(text)


def test_a_damaged_counts_document_fits_no_floor_and_keeps_its_etag_for_the_rebuild():
    ids = ["a", "b"]
    good = {**documents.floor_summary_to_doc(FloorSummary.build(HQ, "f0", ids, {})), "_etag": '"e7"'}
    for damage in ({"counts": "0?"}, {"counts": None}, {"counts": 12}, {"order": None},
                   {"codes": "0.1,0.2", "counts": None}):  # the last: a summary from before the counts
        read = documents.floor_summary_from_docs({**good, **damage})
        assert not read.fits(ids) and read.etag == '"e7"'


def test_a_sinces_document_that_is_not_the_counts_is_as_if_unread():
    ids = ["a", "b"]
    summary = FloorSummary.build(HQ, "f0", ids, {"a": state("a", 1, T0), "b": state("b", 0, T0)})
    counts = documents.floor_summary_to_doc(summary)
    sinces = documents.floor_sinces_to_doc(summary)
    assert documents.floor_summary_from_docs(counts, sinces).complete()
    for damage in ({"order": order_key(["b", "a"])}, {"sinces": "0"}, {"sinces": "0,1,2"}, {"sinces": "0,ZZ"},
                   {"sinces": None}, {"base": "12"}, {"sinces": "0," + "1" * 20}):
        assert not documents.floor_summary_from_docs(counts, {**sinces, **damage}).complete()
