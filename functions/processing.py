"""Event Hub trigger: batches of SDK events in, handed to the processing service. Kept thin on purpose."""
from __future__ import annotations

import logging

import azure.functions as func

from shared.domain.ports import InboundEvent
from shared.wiring import get_context

logger = logging.getLogger(__name__)

bp = func.Blueprint()


@bp.function_name("process_sightings")
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    connection="EVENTHUB",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
)
async def process_sightings(events: list[func.EventHubEvent]) -> None:
    context = await get_context()
    inbound = [to_inbound(event) for event in events]
    report = await context.processing.process(inbound)
    logger.info("processed %d events (%d dead-lettered), sequence numbers %s-%s", report.events,
                report.dead_lettered, inbound[0].sequence_number if inbound else None,
                inbound[-1].sequence_number if inbound else None)


def to_inbound(event: func.EventHubEvent) -> InboundEvent:
    partition_context = (event.metadata or {}).get("PartitionContext") or {}
    return InboundEvent(
        body=event.get_body(),
        partition_key=event.partition_key,
        sequence_number=event.sequence_number or 0,
        enqueued_time=event.enqueued_time,
        partition_id=str(partition_context.get("PartitionId", "0")),
    )
