"""Driving the pipeline in tests: a site, phones in rooms of it, and delivery of their batches."""
from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.ingest_event import decode_ingest_event
from shared.domain.ports import InboundEvent
from shared.domain.site import parse_site_model
from shared.domain.tenancy import BuildingRef
from tests.support.batches import ingest_event_body
from tests.support.sites import small_site, store_site

OAK_BEACON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"      # inside room r-oak (f0)
KITCHEN_BEACON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:2"  # inside the kitchen k-0 (f0)

HQ = BuildingRef("tenant-a", "hq")  # the building add_small_site saves by default

# What a phone hears sitting in each room: strong from the room's beacon, weak from the other.
IN_ROOM = {
    "r-oak": [(OAK_BEACON, -58), (KITCHEN_BEACON, -88), (OAK_BEACON, -60), (KITCHEN_BEACON, -86)],
    "k-0": [(KITCHEN_BEACON, -57), (OAK_BEACON, -89), (KITCHEN_BEACON, -59), (OAK_BEACON, -87)],
}


async def add_small_site(site_store, tenant_id: str = "tenant-a", building_id: str = "hq") -> None:
    await store_site(site_store, tenant_id, parse_site_model(small_site(building_id)))


def room_event(now: datetime, room: str, device: str = "install-0001", sequence: int = 0,
               tenant_id: str = "tenant-a", batch_id: str | None = None,
               user_id: str | None = None) -> tuple[InboundEvent, object]:
    extra = {"userId": user_id} if user_id is not None else {}
    body = ingest_event_body(now, tenant_id=tenant_id, device=device, readings=IN_ROOM[room], batch_id=batch_id,
                             **extra)
    return InboundEvent(body, device, sequence, now), decode_ingest_event(body)


def walk(start: datetime, plan: list[tuple[str, int]], device: str = "install-0001", every_s: int = 20):
    """Events of a phone following `plan`: (room, number of batches there), a batch every `every_s` seconds."""
    events, t = [], start
    for room, count in plan:
        for _ in range(count):
            events.append(room_event(t, room, device=device, sequence=len(events)))
            t += timedelta(seconds=every_s)
    return events
