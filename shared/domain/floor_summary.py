"""A floor's live state in two small documents beside its space documents, written in the same transactional batch
(docs/data-model.md): the **counts** (each space's headcount, a character a space: all that free rooms and
occupancy read of the whole building) and the **sinces** (when each space's status last changed: what a live
stream judges changes by, read only by the streams and the writer).

The entries follow the floor's spaces in the site model's order, so a space costs a few bytes and no id; `order`
is a short hash of that order, so a summary written for another order (spaces added, removed, moved or
renumbered) is seen as stale and rebuilt from the space documents instead of being read wrongly.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from shared.domain.presence import SpaceState
from shared.domain.site import Space
from shared.domain.tenancy import BuildingRef

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
# A headcount of 0-61 is one of these characters; a space without a document is NO_DOCUMENT; a larger headcount
# is its decimal digits in parentheses ("(75)").
COUNT_DIGITS = _DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NO_DOCUMENT = "-"
_COUNT_OF: dict[str, int | None] = {c: i for i, c in enumerate(COUNT_DIGITS)} | {NO_DOCUMENT: None}


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
    """Each floor's space ids in the site model's order: the order its summary's entries follow."""
    floors: dict[str, list[str]] = {}
    for space in spaces:
        floors.setdefault(space.floor, []).append(space.id)
    return {floor: tuple(ids) for floor, ids in floors.items()}


def order_key(space_ids: Sequence[str]) -> str:
    """A short hash of a floor's space ids in order: equal for the same order, different (in practice) for any
    other."""
    return hashlib.sha256("\n".join(space_ids).encode()).hexdigest()[:16]


class BadSummary(ValueError):
    """A stored summary that cannot be read (written by hand or by a bug): treated as no summary."""


@dataclass(frozen=True)
class FloorSummary:
    """One floor of one tenant's building. `counts[i]` is the headcount of the i-th space of the floor (site
    order), None when the space has no space document. `sinces[i]` is its since as signed base-36 microseconds
    from `base` (epoch seconds), so the microseconds survive and a day's times take 7-8 characters; "" when the
    space has no document or no since. `sinces` is None when only the counts were read (free rooms, occupancy).

    `etag` is the counts document's: every batch that writes spaces of the floor writes the counts over it, so
    it serialises the floor's writers. `sinces_saved` is False while the sinces differ from the stored ones (a
    build, or an update that changed a since): `save_floor` then writes the sinces document too."""

    tenant_id: str
    building_id: str
    floor_id: str
    order: str  # order_key of the floor's space ids the entries follow
    counts: tuple[int | None, ...]
    base: int = 0
    sinces: tuple[str, ...] | None = None
    etag: str | None = None
    sinces_saved: bool = True

    @property
    def building(self) -> BuildingRef:
        return BuildingRef(self.tenant_id, self.building_id)

    def fits(self, space_ids: Sequence[str], key: str | None = None) -> bool:
        """Whether the entries follow these space ids (the floor as the site model has it now); `key`, their
        order_key when the caller has it at hand."""
        return (self.order == (key if key is not None else order_key(space_ids))
                and len(self.counts) == len(space_ids))

    def complete(self) -> bool:
        """Whether the sinces were read too."""
        return self.sinces is not None

    def occupied(self, index: int) -> bool:
        return bool(self.counts[index])

    def snapshot(self, index: int) -> SpaceSnapshot | None:
        """The i-th space's entry; None when it has no document (the sinces must have been read)."""
        count = self.counts[index]
        if count is None:
            return None
        if self.sinces is None:
            raise ValueError(f"summary of floor {self.floor_id} was read without its sinces")
        return _snapshot(count, self.sinces[index], self.base)

    def entry(self, index: int) -> tuple[int | None, str | None]:
        """The i-th space's entry as stored: equal entries are equal live states (headcount and since)."""
        return self.counts[index], self.sinces[index] if self.sinces is not None else None

    def snapshots(self, space_ids: Sequence[str], key: str | None = None) -> dict[str, SpaceSnapshot]:
        """The spaces that have a space document, by id (`fits(space_ids)` must hold and the sinces be read)."""
        self._check(space_ids, key)
        out = {}
        for i, space_id in enumerate(space_ids):
            snapshot = self.snapshot(i)
            if snapshot is not None:
                out[space_id] = snapshot
        return out

    @classmethod
    def build(cls, building: BuildingRef, floor_id: str, space_ids: Sequence[str],
              states: Mapping[str, SpaceState], etag: str | None = None) -> FloorSummary:
        """The summary of the floor from its spaces' documents (a space absent from `states` has none)."""
        known = [since for s in space_ids if s in states and (since := states[s].since) is not None]
        base = int(min(known).timestamp()) if known else 0
        counts = tuple(states[s].headcount if s in states else None for s in space_ids)
        sinces = tuple(since_code(states[s].since, base) if s in states else "" for s in space_ids)
        return cls(building.tenant_id, building.building_id, floor_id, order_key(space_ids), counts, base, sinces,
                   etag, sinces_saved=False)

    def headcount(self) -> int:
        """Everyone on the floor."""
        return sum(count for count in self.counts if count)

    def updated(self, space_ids: Sequence[str], states: Mapping[str, SpaceState]) -> FloorSummary:
        """This summary with the given spaces' documents in place of what it held for them (the sinces must have
        been read)."""
        self._check(space_ids)
        if self.sinces is None:
            raise ValueError(f"summary of floor {self.floor_id} was read without its sinces")
        counts, sinces = list(self.counts), list(self.sinces)
        for i, space_id in enumerate(space_ids):
            state = states.get(space_id)
            if state is not None:
                counts[i] = state.headcount
                sinces[i] = since_code(state.since, self.base)
        changed = tuple(sinces) != self.sinces
        return replace(self, counts=tuple(counts), sinces=tuple(sinces) if changed else self.sinces,
                       sinces_saved=self.sinces_saved and not changed)

    def _check(self, space_ids: Sequence[str], key: str | None = None) -> None:
        if not self.fits(space_ids, key):
            raise ValueError(f"summary of floor {self.floor_id} was written for another order of its spaces")


def encode_counts(counts: Sequence[int | None]) -> str:
    """The counts as one character a space (see COUNT_DIGITS)."""
    return "".join(NO_DOCUMENT if c is None else COUNT_DIGITS[c] if c < len(COUNT_DIGITS) else f"({c})"
                   for c in counts)


def decode_counts(text: str) -> tuple[int | None, ...]:
    """`encode_counts`' text back; BadSummary for anything else."""
    try:
        if "(" not in text:
            return tuple(_COUNT_OF[c] for c in text)
        out: list[int | None] = []
        i = 0
        while i < len(text):
            if text[i] == "(":
                end = text.index(")", i)
                count = int(text[i + 1:end])
                if count < len(COUNT_DIGITS) or not text[i + 1:end].isdigit():
                    raise BadSummary(f"count {text[i:end + 1]!r} is not how a count is written")
                out.append(count)
                i = end + 1
            else:
                out.append(_COUNT_OF[text[i]])
                i += 1
        return tuple(out)
    except (KeyError, ValueError) as exc:
        raise BadSummary(f"counts are not a summary's: {exc}") from None


def since_code(since: datetime | None, base: int) -> str:
    if since is None:
        return ""
    delta = since - (_EPOCH + timedelta(seconds=base))
    return _base36((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _snapshot(count: int, code: str, base: int) -> SpaceSnapshot:
    if not code:
        return SpaceSnapshot(count, None)
    return SpaceSnapshot(count, _EPOCH + timedelta(seconds=base, microseconds=int(code, 36)))


def _base36(number: int) -> str:
    if number < 0:
        return "-" + _base36(-number)
    digits = []
    while True:
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
        if not number:
            return "".join(reversed(digits))
