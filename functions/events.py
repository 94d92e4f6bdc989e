"""The outbox relay in Azure: the Cosmos DB change feed of the spaces and beacons containers hands each new
outbox document over within about a second, with no polling across partitions; the relay moves it to the event
log and the subscriptions' deliveries and attempts them at once. The `event_delivery` timer (functions/timers.py)
does the retries and relays what the change feed has not (docs/events.md: why the change feed here and a poller
locally, where the emulator's change feed is not incremental)."""
from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import azure.functions as func

from shared.adapters import documents
from shared.adapters.cosmos import BEACONS, LEASES, SPACES
from shared.domain.events import CloudEvent
from shared.wiring import get_context

logger = logging.getLogger(__name__)

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions: Blueprint(*args, **kwargs) is untyped


def outbox_events(changed: Iterable[dict[str, Any]]) -> list[CloudEvent]:
    """The outbox documents among changed documents (the state documents change far more often)."""
    return [documents.outbox_from_doc(doc) for doc in changed
            if doc.get(documents.KIND_FIELD) == documents.OUTBOX_KIND]


async def relay_changes(changed: Iterable[dict[str, Any]]) -> int:
    events = outbox_events(changed)
    if not events:
        return 0
    app = await get_context()
    relayed = await app.relay.relay(events)
    await app.delivery.run_once()
    await app.delivery.drain()
    logger.info("relayed %d events from the change feed", relayed)
    return relayed


@bp.function_name("relay_space_events")
@bp.cosmos_db_trigger(arg_name="changes", connection="COSMOS", database_name="%COSMOS_DATABASE%",
                      container_name=SPACES, lease_container_name=LEASES, lease_container_prefix="spaces-",
                      create_lease_container_if_not_exists=False)
async def relay_space_events(changes: func.DocumentList) -> None:
    await relay_changes(doc.to_dict() for doc in changes)


@bp.function_name("relay_beacon_events")
@bp.cosmos_db_trigger(arg_name="changes", connection="COSMOS", database_name="%COSMOS_DATABASE%",
                      container_name=BEACONS, lease_container_name=LEASES, lease_container_prefix="beacons-",
                      create_lease_container_if_not_exists=False)
async def relay_beacon_events(changes: func.DocumentList) -> None:
    await relay_changes(doc.to_dict() for doc in changes)
