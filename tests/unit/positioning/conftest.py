from __future__ import annotations

import pytest

from devkit.simulator import BuildingSpec, generate_building
from shared.domain.positioning import BeaconSpec, FloorSpec, SiteIndex, SpaceSpec


@pytest.fixture(scope="session")
def square_site() -> SiteIndex:
    """One 10 m x 10 m floor split into two rooms (west and east), a beacon in each corner."""
    return SiteIndex.build(
        floors=[FloorSpec("0", 0, ((0, 0), (10, 0), (10, 10), (0, 10)))],
        beacons=[
            BeaconSpec("sw", 0, 0, "0", -59),
            BeaconSpec("se", 10, 0, "0", -59),
            BeaconSpec("ne", 10, 10, "0", -59),
            BeaconSpec("nw", 0, 10, "0", -59),
        ],
        spaces=[
            SpaceSpec("west", "0", ((0, 0), (5, 0), (5, 10), (0, 10)), "office"),
            SpaceSpec("east", "0", ((5, 0), (10, 0), (10, 10), (5, 10)), "office"),
        ],
        grid_step_m=0.5,
    )


@pytest.fixture(scope="session")
def sim_site():
    return generate_building(BuildingSpec(floors=2), seed=3)


@pytest.fixture(scope="session")
def sim_index(sim_site) -> SiteIndex:
    return SiteIndex.from_site_model(sim_site)
