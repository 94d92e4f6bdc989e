"""NCRONTAB schedules as the Functions timer trigger reads them: `second minute hour day month day-of-week`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("day-of-week", 0, 6))


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday, as in cron

    def matches(self, moment: datetime) -> bool:
        return (
            moment.second in self.seconds and moment.minute in self.minutes and moment.hour in self.hours
            and moment.day in self.days and moment.month in self.months
            and (moment.isoweekday() % 7) in self.weekdays
        )

    def next_after(self, moment: datetime) -> datetime:
        """The first matching second strictly after `moment` (within about a year)."""
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366)
        while candidate < limit:
            if candidate.month not in self.months:
                candidate = (candidate.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if candidate.day not in self.days or (candidate.isoweekday() % 7) not in self.weekdays:
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if candidate.minute not in self.minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ValueError(f"schedule '{self.expression}' never fires within a year")


def parse_ncrontab(expression: str) -> Schedule:
    """Parse a six-field NCRONTAB expression; ValueError says which field is wrong."""
    parts = expression.split()
    if len(parts) != 6:
        raise ValueError(f"'{expression}' needs 6 fields (second minute hour day month day-of-week), it has {len(parts)}")
    values = [_parse_field(part, name, low, high) for part, (name, low, high) in zip(parts, _FIELDS)]
    return Schedule(expression, *values)


def _parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    result: set[int] = set()
    for item in text.split(","):
        step = 1
        if "/" in item:
            item, step_text = item.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name}: bad step '{step_text}'")
            step = int(step_text)
        if item == "*":
            start, end = low, high
        elif "-" in item:
            a, b = item.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise ValueError(f"{name}: bad range '{item}'")
            start, end = int(a), int(b)
        elif item.isdigit():
            start = int(item)
            end = high if step > 1 else start
        else:
            raise ValueError(f"{name}: bad value '{item}'")
        if name == "day-of-week" and end == 7:
            end = 6 if start <= 6 else 0  # 7 also means Sunday
            if start == 7:
                start = 0
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise ValueError(f"{name}: '{item}' is outside {low}-{high}")
        result.update(range(start, end + 1, step))
    return frozenset(result)
