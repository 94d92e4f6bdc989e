from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.ncrontab import parse_ncrontab

T0 = datetime(2026, 11, 26, 9, 59, 58, tzinfo=UTC)  # a Thursday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("*/30 * * * * *", datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)),
        ("0 5 * * * *", datetime(2026, 11, 26, 10, 5, 0, tzinfo=UTC)),
        ("0 0 2 * * *", datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)),
        ("0 0 9 * * 1", datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)),  # next Monday
        ("0 0 0 1 1 *", datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)),
        ("15,45 * * * * *", datetime(2026, 11, 26, 10, 0, 15, tzinfo=UTC)),
        ("0 0 8-18/5 * * 1-5", datetime(2026, 11, 26, 13, 0, 0, tzinfo=UTC)),
    ],
)
def test_next_occurrence(expression, expected):
    assert parse_ncrontab(expression).next_after(T0) == expected


def test_seven_means_sunday():
    assert parse_ncrontab("0 0 0 * * 7").next_after(T0).isoweekday() == 7


@pytest.mark.parametrize("expression", ["* * * * *", "60 * * * * *", "* * 24 * * *", "*/0 * * * * *", "a * * * * *",
                                        "* * * 0 * *"])
def test_bad_expressions_say_which_field(expression):
    with pytest.raises(ValueError):
        parse_ncrontab(expression)
