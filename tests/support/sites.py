"""A small, valid site model (two floors, rooms, beacons, a connected navigation graph) for tests to start from."""
from __future__ import annotations

import copy


def small_site(building_id: str = "hq") -> dict:
    outline = [[0, 0], [40, 0], [40, 20], [0, 20]]
    return copy.deepcopy({
        "schema": "site/v1",
        "buildingId": building_id,
        "name": "Headquarters",
        "timeZone": "Europe/Amsterdam",
        "floors": [
            {"id": "f0", "name": "Ground", "ordinal": 0, "elevation": 0, "outline": outline},
            {"id": "f1", "name": "First", "ordinal": 1, "elevation": 3.5, "outline": outline},
        ],
        "spaces": [
            {"id": "r-oak", "name": "Oak", "kind": "conferenceroom", "floor": "f0",
             "polygon": [[0, 0], [10, 0], [10, 8], [0, 8]], "capacity": 8, "amenities": ["display"], "bookable": True},
            {"id": "k-0", "name": "Kitchen", "kind": "kitchen", "floor": "f0",
             "polygon": [[30, 0], [40, 0], [40, 8], [30, 8]], "capacity": 12},
            {"id": "o-1", "name": "Open office", "kind": "office", "floor": "f1",
             "polygon": [[0, 0], [40, 0], [40, 8], [0, 8]], "capacity": 30},
        ],
        "beacons": [
            {"id": "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1", "x": 5, "y": 4, "floor": "f0", "measuredPower": -59},
            {"id": "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:2", "x": 35, "y": 4, "floor": "f0", "measuredPower": -59},
            {"id": "edd1ebeac04e5defa017:0000000000a1", "x": 20, "y": 4, "floor": "f1", "measuredPower": -62},
        ],
        "navigation": {
            "nodes": [
                {"id": "d-oak", "x": 5, "y": 8, "floor": "f0", "kind": "door", "spaceId": "r-oak"},
                {"id": "c0", "x": 20, "y": 12, "floor": "f0"},
                {"id": "d-k0", "x": 35, "y": 8, "floor": "f0", "kind": "door", "spaceId": "k-0"},
                {"id": "st0", "x": 38, "y": 18, "floor": "f0", "kind": "stairs"},
                {"id": "st1", "x": 38, "y": 18, "floor": "f1", "kind": "stairs"},
                {"id": "el0", "x": 2, "y": 18, "floor": "f0", "kind": "elevator"},
                {"id": "el1", "x": 2, "y": 18, "floor": "f1", "kind": "elevator"},
                {"id": "c1", "x": 20, "y": 12, "floor": "f1"},
            ],
            "edges": [
                {"from": "d-oak", "to": "c0"}, {"from": "c0", "to": "d-k0"}, {"from": "c0", "to": "st0"},
                {"from": "c0", "to": "el0"}, {"from": "st0", "to": "st1", "kind": "stairs", "accessible": False},
                {"from": "el0", "to": "el1", "kind": "elevator"}, {"from": "st1", "to": "c1"}, {"from": "el1", "to": "c1"},
            ],
        },
    })


async def store_site(store, tenant_id: str, site, if_match: str | None = None) -> str:
    """Save a site model as the tenant's building of the site's id (the store takes a BuildingRef)."""
    from shared.domain.tenancy import BuildingRef

    return await store.put(BuildingRef(tenant_id, site.building_id), site, if_match=if_match)
