"""Event Hub trigger: batches of SDK events in, handed to the processing service. Kept thin on purpose."""
from __future__ import annotations

import logging

import azure.functions as func

from shared.domain.ports import InboundEvent
from shared.domain.retry import PROCESSING_RETRY, DeliveryAttempt
from shared.wiring import get_context

logger = logging.getLogger(__name__)

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions: Blueprint(*args, **kwargs) is untyped


@bp.function_name("process_sightings")
# An invocation that raises is retried with the same events before the checkpoint moves: it raises only while some
# event can be neither processed nor dead-lettered (Cosmos unreachable, or Blob down too). The policy and why it
# rides out a 10-minute outage: shared/domain/retry.py, docs/data-model.md.
@bp.retry(**PROCESSING_RETRY.function_retry_arguments())
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    connection="EVENTHUB",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
)
async def process_sightings(events: list[func.EventHubEvent],
                            context: func.Context = None) -> None:  # type: ignore[assignment]
    # `context` is annotated func.Context exactly (the worker insists); None when a test calls the function.
    app = await get_context()
    inbound = [to_inbound(event) for event in events]
    report = await app.processing.process(inbound, delivery_attempt(context))
    logger.info("processed %d events (%d dead-lettered, %d done by an earlier attempt), sequence numbers %s-%s",
                report.events, report.dead_lettered, report.already_secured,
                inbound[0].sequence_number if inbound else None, inbound[-1].sequence_number if inbound else None)


def delivery_attempt(context: func.Context | None) -> DeliveryAttempt:
    """Which attempt the host is making, from its retry context (the first of PROCESSING_RETRY without one: tests
    call the function directly)."""
    retry = getattr(context, "retry_context", None) if context is not None else None
    if retry is None:
        return DeliveryAttempt(0, PROCESSING_RETRY.max_retry_count)
    return DeliveryAttempt(retry.retry_count, retry.max_retry_count)


def to_inbound(event: func.EventHubEvent) -> InboundEvent:
    partition_context = (event.metadata or {}).get("PartitionContext") or {}
    return InboundEvent(
        body=event.get_body(),
        partition_key=event.partition_key,
        sequence_number=event.sequence_number or 0,
        enqueued_time=event.enqueued_time,
        partition_id=str(partition_context.get("PartitionId", "0")),
    )
