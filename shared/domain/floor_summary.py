"""A floor's live state in one small document: what free rooms and occupancy need of every space (headcount and
since), kept beside the space documents and written in the same transactional batch (docs/data-model.md).

The entries follow the floor's spaces in the site model's order, so a space costs a few bytes and no id; `order`
is a short hash of that order, so a summary written for another order (spaces added, removed, moved or
renumbered) is seen as stale and rebuilt from the space documents instead of being read wrongly.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared.domain.presence import SpaceState
from shared.domain.site import Space
from shared.domain.tenancy import BuildingRef

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class SpaceSnapshot:
    """What a query needs of a space's live state, as its space document says it: the same status, headcount and
    since as the SpaceState it was taken from."""

    headcount: int
    since: datetime | None

    @property
    def status(self) -> Literal["free", "occupied"]:
        return "occupied" if self.headcount else "free"

    @classmethod
    def of(cls, state: SpaceState) -> SpaceSnapshot:
        return cls(state.headcount, state.since)


def floor_space_ids(spaces: Iterable[Space]) -> dict[str, tuple[str, ...]]:
    """Each floor's space ids in the site model's order: the order its summary's codes follow."""
    floors: dict[str, list[str]] = {}
    for space in spaces:
        floors.setdefault(space.floor, []).append(space.id)
    return {floor: tuple(ids) for floor, ids in floors.items()}


def order_key(space_ids: Sequence[str]) -> str:
    """A short hash of a floor's space ids in order: equal for the same order, different (in practice) for any
    other."""
    return hashlib.sha256("\n".join(space_ids).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FloorSummary:
    """One floor of one tenant's building: `codes[i]` is the i-th space of the floor (site order) as a short
    code: "" when the space has no space document, else `<headcount>` and, when it has one, `.<since>` (since as
    signed base-36 microseconds from `base`, so the microseconds survive and a day's times take 7-8 characters)."""

    tenant_id: str
    building_id: str
    floor_id: str
    order: str  # order_key of the floor's space ids the codes follow
    base: int  # epoch seconds the `since` codes count from
    codes: tuple[str, ...]
    etag: str | None = None

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    def fits(self, space_ids: Sequence[str]) -> bool:
        """Whether the codes follow these space ids (the floor as the site model has it now)."""
        return self.order == order_key(space_ids) and len(self.codes) == len(space_ids)

    def snapshots(self, space_ids: Sequence[str], key: str | None = None) -> dict[str, SpaceSnapshot]:
        """The spaces that have a space document, by id (`fits(space_ids)` must hold; `key`, their order_key when
        the caller has it at hand)."""
        if (self.order != key or len(self.codes) != len(space_ids)) if key is not None else not self.fits(space_ids):
            raise ValueError(f"summary of floor {self.floor_id} was written for another order of its spaces")
        out = {}
        for space_id, code in zip(space_ids, self.codes):
            if code:
                out[space_id] = _decode(code, self.base)
        return out

    @classmethod
    def build(cls, building: BuildingRef, floor_id: str, space_ids: Sequence[str],
              states: Mapping[str, SpaceState], etag: str | None = None) -> FloorSummary:
        """The summary of the floor from its spaces' documents (a space absent from `states` has none)."""
        known = [since for s in space_ids if s in states and (since := states[s].since) is not None]
        base = int(min(known).timestamp()) if known else 0
        codes = tuple(_encode(states[s], base) if s in states else "" for s in space_ids)
        return cls(building.tenant_id, building.building_id, floor_id, order_key(space_ids), base, codes, etag)

    def headcount(self) -> int:
        """Everyone on the floor."""
        return sum(int(code.partition(".")[0]) for code in self.codes if code_occupied(code))

    def updated(self, space_ids: Sequence[str], states: Mapping[str, SpaceState]) -> FloorSummary:
        """This summary with the given spaces' documents in place of what it held for them."""
        if not self.fits(space_ids):
            raise ValueError(f"summary of floor {self.floor_id} was written for another order of its spaces")
        codes = list(self.codes)
        for i, space_id in enumerate(space_ids):
            state = states.get(space_id)
            if state is not None:
                codes[i] = _encode(state, self.base)
        return FloorSummary(self.tenant_id, self.building_id, self.floor_id, self.order, self.base, tuple(codes),
                            self.etag)


def code_occupied(code: str) -> bool:
    """Whether someone is in the space of this code (a headcount is written without leading zeros)."""
    return bool(code) and code[0] != "0"


def decode_code(code: str, base: int) -> SpaceSnapshot:
    """A non-empty code of a summary with this base."""
    return _decode(code, base)


def _encode(state: SpaceState, base: int) -> str:
    count = str(state.headcount)
    if state.since is None:
        return count
    delta = state.since - (_EPOCH + timedelta(seconds=base))
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{count}.{_base36(micros)}"


def _decode(code: str, base: int) -> SpaceSnapshot:
    count, _, since = code.partition(".")
    if not since:
        return SpaceSnapshot(int(count), None)
    return SpaceSnapshot(int(count), _EPOCH + timedelta(seconds=base, microseconds=int(since, 36)))


def _base36(number: int) -> str:
    if number < 0:
        return "-" + _base36(-number)
    digits = []
    while True:
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
        if not number:
            return "".join(reversed(digits))
