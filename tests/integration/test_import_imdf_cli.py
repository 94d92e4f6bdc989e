"""`python -m devkit import-imdf --attach`: a folder of IMDF files and a capacity overlay, written straight into the
stores of the environment (here: the emulators), through the same service and checks as the HTTP route."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from shared.domain import space_kinds
from shared.domain.tenancy import BuildingRef
from shared.settings import load_settings
from shared.wiring import build_context
from tests.integration.test_wiring import environment

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "tests" / "fixtures" / "imdf" / "demo-office"


def import_imdf(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "devkit", "import-imdf", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False, env={**os.environ, **env})


async def test_a_folder_and_an_overlay_go_straight_into_the_stores(azurite, cosmos, tmp_path):
    env = environment(azurite.port, cosmos.port)
    context = await build_context(load_settings(env))
    try:
        await context.admin.create_tenant("cli-acme", "CLI Acme")
    finally:
        await context.close()
    folder = tmp_path / "venue"
    shutil.copytree(DEMO, folder)
    units = json.loads((folder / "unit.geojson").read_text())["features"]
    room = next(u for u in units if u["properties"]["category"] not in space_kinds.WALKABLE | space_kinds.VERTICAL)
    overlay = tmp_path / "rooms.csv"
    overlay.write_text(f"spaceId,capacity,bookable,amenities\n{room['id']},14,true,display;whiteboard\n")

    done = import_imdf(env, str(folder), "--building", "cli-hq", "--attach", "--tenant", "cli-acme",
                       "--overlay", str(overlay))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["buildingId"] == "cli-hq" and summary["spaces"] == len(units) and summary["etag"]
    assert summary["navigation"]["generated"] and summary["navigation"]["nodes"] > 0

    context = await build_context(load_settings(env), bootstrap=False)
    try:
        stored = await context.admin.get_site(BuildingRef("cli-acme", "cli-hq"))
    finally:
        await context.close()
    assert stored.etag == summary["etag"]
    space = next(s for s in stored.site.spaces if s.id == room["id"])
    assert (space.capacity, space.bookable) == (14, True)
    assert {"display", "whiteboard"} <= set(space.amenities)

    stale = import_imdf(env, str(folder), "--building", "cli-hq", "--attach", "--tenant", "cli-acme",
                        "--if-match", '"not-the-version"')
    assert stale.returncode == 1 and "version" in stale.stderr
    unknown = import_imdf(env, str(folder), "--building", "cli-hq", "--attach", "--tenant", "nobody-here")
    assert unknown.returncode == 1 and "nobody-here" in unknown.stderr
