"""Sites and stays for the analytics tests: a small building whose numbers are easy to work out by hand."""
from __future__ import annotations

from datetime import UTC, datetime

from shared.domain.site import SiteModel, parse_site_model
from tests.support.sites import small_site

# small_site: r-oak (conferenceroom, cap 8, f0), k-0 (kitchen, cap 12, f0), o-1 (office, cap 30, f1)


def site(time_zone: str = "UTC", start: str = "08:00", end: str = "18:00", days=(1, 2, 3, 4, 5),
         building_id: str = "hq", oak_capacity: int = 9) -> SiteModel:
    data = small_site(building_id)
    data["timeZone"] = time_zone
    data["businessHours"] = {"start": start, "end": end, "days": list(days)}
    data["spaces"][0]["capacity"] = oak_capacity
    return parse_site_model(data)


def at(day: int, hour: int, minute: int = 0, month: int = 11, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
