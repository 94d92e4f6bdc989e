"""Co-worker finder rules, pure: who may change sharing how, what a location shows at each level, and that a
coarse lastSeen gives no room away."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.domain.people import (
    LAST_SEEN_GRANULARITY,
    Sharing,
    SharingLevel,
    coarse_last_seen,
    narrows,
    shared_location,
)
from shared.domain.presence import DeviceState

NOW = datetime(2026, 11, 26, 9, 17, 43, 123456, tzinfo=UTC)
off, building, floor, space = SharingLevel.off, SharingLevel.building, SharingLevel.floor, SharingLevel.space


def sharing(level: SharingLevel, until: datetime | None = None) -> Sharing:
    return Sharing("acme", "ann", level, until, NOW - timedelta(hours=1))


def device(last_seen: datetime, user: str = "ann", space_id: str = "r-oak", floor_id: str = "f0") -> DeviceState:
    return DeviceState("acme", "hq", f"phone-{user}", last_seen, floor=floor_id, space_id=space_id, user_id=user)


def test_levels_are_ordered_by_how_much_they_reveal():
    assert [lvl.rank for lvl in (off, building, floor, space)] == [0, 1, 2, 3]


@pytest.mark.parametrize(("current", "level", "until", "allowed"), [
    (sharing(space), floor, None, True),
    (sharing(space), space, None, True),  # the same choice again reveals nothing new
    (sharing(floor), space, None, False),
    (sharing(building), floor, None, False),
    (sharing(floor), off, None, True),
    (None, off, None, True),
    (None, building, None, False),  # never opted in: nothing but off
    (sharing(off), building, None, False),
    (sharing(space, NOW - timedelta(minutes=1)), building, None, False),  # expired counts as off
    (sharing(space, NOW + timedelta(hours=1)), floor, NOW + timedelta(minutes=30), True),
    (sharing(space, NOW + timedelta(hours=1)), floor, NOW + timedelta(hours=1), True),
    (sharing(space, NOW + timedelta(hours=1)), floor, NOW + timedelta(hours=2), False),  # longer is wider
    (sharing(space, NOW + timedelta(hours=1)), floor, None, False),  # no end is wider still
    (sharing(space), floor, NOW + timedelta(hours=1), True),
])
def test_only_narrowing_is_allowed_to_someone_else(current, level, until, allowed):
    assert narrows(current, level, until, NOW) is allowed


def test_never_off_and_expired_are_refused_alike():
    expired = sharing(space, NOW - timedelta(seconds=1))
    for level in (building, floor, space):
        assert narrows(None, level, None, NOW) == narrows(sharing(off), level, None, NOW) \
            == narrows(expired, level, None, NOW) is False


def test_last_seen_is_exact_at_space_and_rounded_down_below():
    assert coarse_last_seen(NOW, space) == NOW
    for level in (floor, building):
        shown = coarse_last_seen(NOW, level)
        assert shown == datetime(2026, 11, 26, 9, 15, tzinfo=UTC)
        assert shown <= NOW < shown + LAST_SEEN_GRANULARITY
    on_boundary = datetime(2026, 11, 26, 9, 15, tzinfo=UTC)
    assert coarse_last_seen(on_boundary, floor) == on_boundary
    other_zone = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))  # rounding is in UTC, whatever the zone
    assert coarse_last_seen(other_zone, floor) == datetime(2026, 11, 26, 9, 15, tzinfo=UTC)


def test_the_location_at_each_level():
    devices = [device(NOW - timedelta(seconds=30)), device(NOW - timedelta(minutes=3), space_id="k-0")]
    at = {lvl: shared_location(sharing(lvl), "ann", devices, NOW) for lvl in (building, floor, space)}
    assert (at[building].floor, at[building].space_id) == (None, None)
    assert (at[floor].floor, at[floor].space_id) == ("f0", None)
    assert (at[space].floor, at[space].space_id) == ("f0", "r-oak")  # the latest device wins
    assert at[space].last_seen == NOW - timedelta(seconds=30)
    assert at[floor].last_seen == at[building].last_seen == datetime(2026, 11, 26, 9, 15, tzinfo=UTC)


def test_the_room_cannot_be_told_from_the_rounded_time():
    # Three rooms on the floor changed state a few seconds apart; ann's last sighting is what put her in r-2.
    since = {"r-1": NOW - timedelta(seconds=50), "r-2": NOW - timedelta(seconds=20), "r-3": NOW - timedelta(seconds=5)}
    seen = shared_location(sharing(floor), "ann", [device(since["r-2"], space_id="r-2")], NOW)
    assert seen.last_seen not in since.values()
    assert seen.last_seen <= min(since.values())  # every room that changed in the window is equally likely
    exact = shared_location(sharing(space), "ann", [device(since["r-2"], space_id="r-2")], NOW)
    assert exact.last_seen == since["r-2"]  # what floor level would have leaked without rounding


@pytest.mark.parametrize("case", ["never", "off", "expired", "not seen", "another person's device", "future"])
def test_every_not_available_case_is_none(case):
    recent = [device(NOW - timedelta(seconds=30))]
    choice, devices = {
        "never": (None, recent),
        "off": (sharing(off), recent),
        "expired": (sharing(space, NOW - timedelta(seconds=1)), recent),
        "not seen": (sharing(space), [device(NOW - timedelta(minutes=11))]),
        "another person's device": (sharing(space), [device(NOW, user="bob")]),
        "future": (sharing(space), [device(NOW + timedelta(minutes=6))]),
    }[case]
    assert shared_location(choice, "ann", devices, NOW) is None
