"""The demo's analytics step: the hourly rollup over the simulated hours, and where to find what it wrote."""
from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from shared.domain.site import BusinessHours, SiteModel

if TYPE_CHECKING:
    from shared.wiring import AppContext

MIRROR = Path(".devkit") / "analytics"


def around_the_clock(site: SiteModel) -> SiteModel:
    """The demo office is open every day, all day, so a demo at any hour has business time to measure."""
    hours = BusinessHours(start="00:00", end="24:00", days=[1, 2, 3, 4, 5, 6, 7])
    return site.model_copy(update={"business_hours": hours})


async def roll_simulated_hours(context: AppContext, tenant: str, building_id: str, start: datetime, end: datetime,
                               read_key: str, port: int) -> list[str]:
    """Run the hourly rollup job as its timer would have at 5 past each simulated hour that is over, mirror the
    files to .devkit/analytics and return the lines to print."""
    from shared.services import ScheduledJobs

    boundary = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    runs = 0
    while boundary <= end:
        await context.scheduled.run(ScheduledJobs.HOURLY_ROLLUP, min(boundary + timedelta(minutes=5), end))
        boundary += timedelta(hours=1)
        runs += 1
    container = context.settings.analytics_container
    names = await context.blobs.list_names(container, f"tenant={tenant}/building={building_id}/")
    if not runs or not names:
        return [("analytics: no simulated hour is complete yet (the hourly rollup needs a whole hour); "
                "run longer with --minutes 60")]
    endpoint = re.search(r"BlobEndpoint=([^;]+)", context.settings.analytics_storage_connection_string or "")
    where = f"{endpoint.group(1).rstrip('/')}/{container}/" if endpoint else f"container '{container}'"
    shutil.rmtree(MIRROR, ignore_errors=True)  # only this demo's files
    lines = [f"analytics: the hourly rollup ran for {runs} simulated hour(s); {len(names)} files in Azurite at {where}"]
    for name in names:
        data = await context.blobs.get(container, name)
        if data is None:
            continue  # removed since it was listed (a newer rollup superseded it)
        target = MIRROR / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        lines.append(f"  {name}")
    day = names[0].split("date=")[1].split("/")[0]
    lines += [
        f"copied to {MIRROR}/; one line of DuckDB reads them (add hive_partitioning for tenant/building/date):",
        (f"  .venv/bin/python -c \"import duckdb; duckdb.sql(\\\"SELECT local_hour, level, zone_id, peak_headcount, "
        f"round(mean_headcount, 1) AS mean, unique_visitors, suppressed FROM '{MIRROR}/*/*/grain=hour/*/zones-*.parquet'"
        f" ORDER BY ALL\\\").show()\""),
        (f"  (with DuckDB's azure extension: SELECT * FROM 'az://{container}/tenant=*/building=*/grain=hour/date=*/"
        f"spaces-*.parquet')"),
        (f"the API: curl -H 'x-api-key: {read_key}' "
        f"'http://127.0.0.1:{port}/api/v1/buildings/{building_id}/analytics?from={day}&to={day}&grain=hour'"),
    ]
    return lines
