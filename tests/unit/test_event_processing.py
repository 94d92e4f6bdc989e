"""Event processing: bad events go to a dead-letter blob with their reason; good ones go on, in order; an event
that can be neither processed nor parked fails the delivery for a retry, and is counted lost only on the last."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import InMemoryBlobStore
from shared.domain.ports import DependencyUnavailable, InboundEvent
from shared.domain.retry import DeliveryAttempt
from shared.services import EventProcessingService
from shared.services.processing import EventsNotSecured
from tests.support.batches import BEACON_A, ingest_event_body

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def good(rssi: int) -> bytes:
    return ingest_event_body(NOW, readings=[(BEACON_A, rssi)])


def event(body: bytes, sequence: int) -> InboundEvent:
    return InboundEvent(body=body, partition_key="install-0001", sequence_number=sequence, enqueued_time=NOW,
                        partition_id="3")


async def test_bad_events_are_dead_lettered_and_good_ones_passed_on_in_order():
    blobs = InMemoryBlobStore()
    passed = []

    async def on_valid(batches):
        passed.extend(batches)

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    stale_batch = json.loads(good(-62))
    stale_batch["batch"]["sentAt"] = (NOW - timedelta(days=2)).isoformat()
    events = [event(good(-60), 1), event(b"\xff\xfe not json", 2),
              event(json.dumps({"schema": "ingest/v1", "tenantId": "tenant-x", "receivedAt": NOW.isoformat(),
                                "batch": {"schema": "sightings/v1"}}).encode(), 3),
              event(good(-61), 4), event(json.dumps(stale_batch).encode(), 5)]
    report = await service.process(events)

    assert (report.events, report.valid, report.dead_lettered) == (5, 2, 3)
    assert [decoded.parsed.batch.sightings[0].rssi for _, decoded in passed] == [-60, -61]
    assert {decoded.tenant_id for _, decoded in passed} == {"tenant-a"}
    names = await blobs.list_names("deadletter")
    assert len(names) == 3 and all(name.startswith("2026/11/26/partition=3/") for name in names)
    letters = [json.loads(await blobs.get("deadletter", name)) for name in names]
    by_sequence = {letter["sequenceNumber"]: letter for letter in letters}
    assert "not JSON" in by_sequence[2]["errors"][0]["message"]
    assert base64.b64decode(by_sequence[2]["bodyBase64"]) == b"\xff\xfe not json"
    assert {e["field"] for e in by_sequence[3]["errors"]} >= {"batch.batchId", "batch.deviceId", "batch.sentAt"}
    assert by_sequence[5]["errors"][0]["field"] == "batch.sentAt"


async def test_a_redelivered_bad_event_overwrites_its_own_dead_letter():
    blobs = InMemoryBlobStore()

    async def on_valid(batches):
        raise AssertionError("no valid batch expected")

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    await service.process([event(b"{", 7)])
    await service.process([event(b"{", 7)])
    assert len(await blobs.list_names("deadletter")) == 1


async def test_a_processing_failure_dead_letters_each_valid_event_and_the_call_succeeds():
    blobs = InMemoryBlobStore()

    async def on_valid(batches):
        raise ValueError("a bug, not an outage")

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    # Every event is parked: raising would only have the delivery run again (and, if it then worked, leave the
    # events both applied and parked).
    report = await service.process([event(good(-60), 1), event(good(-61), 2)], DeliveryAttempt(0, 16))
    assert (report.dead_lettered, report.processed, service.retries, service.lost) == (2, 0, 0, 0)
    names = await blobs.list_names("deadletter")
    letters = [json.loads(await blobs.get("deadletter", n)) for n in names]
    assert sorted(letter["sequenceNumber"] for letter in letters) == [1, 2]
    assert {letter["reason"] for letter in letters} == {"processing-failed"}
    assert "ValueError" in letters[0]["errors"][0]["message"]
    replayed = json.loads(base64.b64decode(letters[0]["bodyBase64"]))
    assert replayed["schema"] == "ingest/v1"  # the whole event, ready to publish again


async def test_one_poison_event_is_parked_alone_and_its_neighbours_are_processed():
    blobs = InMemoryBlobStore()
    applied = []

    async def on_valid(batches):
        if any(e.sequence_number == 2 for e, _decoded in batches):
            raise KeyError("a building model the pipeline cannot handle")
        applied.extend(e.sequence_number for e, _decoded in batches)

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    report = await service.process([event(good(-60), 1), event(good(-61), 2), event(good(-62), 3)],
                                   DeliveryAttempt(0, 16))
    assert applied == [1, 3] and (report.processed, report.dead_lettered) == (2, 1)
    [name] = await blobs.list_names("deadletter")
    letter = json.loads(await blobs.get("deadletter", name))
    assert letter["sequenceNumber"] == 2 and "KeyError" in letter["errors"][0]["message"]
    assert (service.processed, service.dead_lettered, service.lost, service.retries) == (2, 1, 0, 0)


async def test_an_unreachable_store_fails_the_delivery_for_a_retry_instead_of_parking_it():
    blobs = InMemoryBlobStore()
    outage = {"on": True}
    processed = []

    async def on_valid(batches):
        if outage["on"]:
            raise DependencyUnavailable("cosmos", "ServiceRequestError")
        processed.extend(e.sequence_number for e, _decoded in batches)

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    events = [event(good(-60), 1), event(good(-61), 2)]
    with pytest.raises(EventsNotSecured) as raised:
        await service.process(events, DeliveryAttempt(0, 16))
    assert not raised.value.final and [e.sequence_number for e in raised.value.events] == [1, 2]
    assert await blobs.list_names("deadletter") == [] and service.retries == 1
    outage["on"] = False
    report = await service.process(events, DeliveryAttempt(1, 16))
    assert processed == [1, 2] and report.processed == 2
    assert (service.processed, service.dead_lettered, service.lost) == (2, 0, 0)


async def test_on_the_final_attempt_an_unreachable_store_parks_the_events():
    blobs = InMemoryBlobStore()

    async def on_valid(batches):
        raise DependencyUnavailable("cosmos", "ServiceRequestError")

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    report = await service.process([event(good(-60), 1)], DeliveryAttempt(16, 16))
    assert report.dead_lettered == 1 and service.lost == 0
    assert len(await blobs.list_names("deadletter")) == 1


class SelectiveBlobs(InMemoryBlobStore):
    """Blob storage where the puts of chosen sequence numbers fail (all of them while `down`)."""

    def __init__(self, failing: set[int] = frozenset(), down: bool = False) -> None:
        super().__init__()
        self.failing, self.down, self.puts = set(failing), down, []

    async def put(self, container, name, data, content_type="application/octet-stream"):
        sequence = json.loads(data)["sequenceNumber"]
        self.puts.append(sequence)
        if self.down or sequence in self.failing:
            raise DependencyUnavailable("blob", "ServiceRequestError")
        await super().put(container, name, data, content_type)


async def test_one_failing_dead_letter_does_not_stop_the_others_and_the_retry_skips_what_was_parked():
    blobs = SelectiveBlobs(failing={2})
    calls = []

    async def on_valid(batches):
        calls.append([e.sequence_number for e, _decoded in batches])
        raise ValueError("poison")

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW, dead_letter_pause_s=0)
    events = [event(good(-60), 1), event(good(-61), 2), event(good(-62), 3)]
    with pytest.raises(EventsNotSecured) as raised:
        await service.process(events, DeliveryAttempt(0, 16))
    assert [e.sequence_number for e in raised.value.events] == [2]
    assert service.dead_lettered == 2 and service.retries == 1 and service.lost == 0
    letters = [json.loads(await blobs.get("deadletter", n)) for n in await blobs.list_names("deadletter")]
    assert sorted(letter["sequenceNumber"] for letter in letters) == [1, 3]

    blobs.failing.clear()
    blobs.puts.clear()
    report = await service.process(events, DeliveryAttempt(1, 16))  # the host retries the same events
    # Each event was tried on its own after the first failure; what was parked is not processed (nor parked) again.
    assert calls == [[1, 2, 3], [1], [2], [3], [2], [2]]
    assert blobs.puts == [2] and report.already_secured == 2 and report.dead_lettered == 1
    assert service.dead_lettered == 3


async def test_an_event_neither_processed_nor_parked_on_the_final_attempt_is_counted_and_logged_lost(caplog):
    blobs = SelectiveBlobs(down=True)

    async def on_valid(batches):
        raise DependencyUnavailable("cosmos", "ServiceRequestError")

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW, dead_letter_pause_s=0)
    events = [event(good(-60), 41), event(b"not json", 42)]
    with pytest.raises(EventsNotSecured):
        await service.process(events, DeliveryAttempt(3, 16))  # not final: retried, nothing lost yet
    assert service.lost == 0
    caplog.set_level("ERROR", logger="shared.services.processing")
    with pytest.raises(EventsNotSecured) as raised:
        await service.process(events, DeliveryAttempt(16, 16))
    assert raised.value.final and service.lost == 2
    lost_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lost event")]
    assert lost_lines == [
        f"lost event: partition 3 sequence {sequence} could be neither processed nor dead-lettered "
        "(DependencyUnavailable, after 16 retries)" for sequence in (41, 42)]
    assert not any("not json" in r.getMessage() or "tenant-a" in r.getMessage() for r in caplog.records)


async def test_a_processed_event_is_not_processed_again_when_a_bad_neighbour_could_not_be_parked():
    blobs = SelectiveBlobs(down=True)
    calls = []

    async def on_valid(batches):
        calls.append([e.sequence_number for e, _decoded in batches])

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW, dead_letter_pause_s=0)
    events = [event(good(-60), 7), event(b"{", 8)]
    with pytest.raises(EventsNotSecured) as raised:
        await service.process(events, DeliveryAttempt(0, 16))
    assert [e.sequence_number for e in raised.value.events] == [8]
    blobs.down = False
    report = await service.process(events, DeliveryAttempt(1, 16))
    assert calls == [[7]] and report.dead_lettered == 1 and service.processed == 1


async def test_a_dead_letter_write_is_retried():
    class FlakyBlobs(InMemoryBlobStore):
        failures = 1

        async def put(self, container, name, data, content_type="application/octet-stream"):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("blob hiccup")
            await super().put(container, name, data, content_type)

    blobs = FlakyBlobs()

    async def on_valid(batches):
        pass

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW, dead_letter_pause_s=0)
    report = await service.process([event(b"{", 3)])
    assert len(await blobs.list_names("deadletter")) == 1 and report.dead_lettered == 1


async def test_replay_publishes_failed_events_again_and_keeps_invalid_ones():
    from shared.adapters.memory import RecordingEventPublisher
    from shared.services.replay import DeadLetterReplay

    blobs = InMemoryBlobStore()

    async def outage(batches):
        raise ConnectionError("cosmos is down")

    service = EventProcessingService(blobs, "deadletter", outage, clock=lambda: NOW)
    # The final attempt (no retry follows): parked for a replay once Cosmos is back.
    await service.process([event(good(-60), 1), event(b"not json", 2), event(good(-61), 3)])
    publisher = RecordingEventPublisher()
    replay = DeadLetterReplay(blobs, "deadletter", publisher)

    dry = await replay.replay(dry_run=True)
    assert (dry.letters, dry.replayed, dry.kept) == (3, 2, {"invalid": 1}) and publisher.published == []
    report = await replay.replay()
    assert report.replayed == 2
    assert {json.loads(e.body)["batch"]["sightings"][0]["rssi"] for e in publisher.published} == {-60, -61}
    assert all(e.partition_key == "install-0001" for e in publisher.published)
    assert len(await blobs.list_names("deadletter")) == 1  # only the invalid event's letter is left


async def test_a_stamped_event_that_is_malformed_is_parked_naming_the_field_and_its_neighbours_go_on():
    """The ingest route's stamp does not make a broken event crash the processor or hold up the others."""
    blobs = InMemoryBlobStore()
    passed = []

    async def on_valid(batches):
        passed.extend(batches)

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    broken = json.loads(good(-62))
    assert broken["validated"] == "sightings/v1"
    broken["batch"]["deviceId"] = 5
    nested = good(-63).replace(b'"sightings":', b'"sightings":' + b"[" * 50_000, 1)
    report = await service.process([event(good(-60), 1), event(json.dumps(broken).encode(), 2),
                                    event(nested, 3), event(good(-61), 4)])
    assert (report.valid, report.processed, report.dead_lettered) == (2, 2, 2)
    assert [decoded.sightings.rssi for _, decoded in passed] == [[-60], [-61]]
    letters = {json.loads(await blobs.get("deadletter", name))["sequenceNumber"]:
               json.loads(await blobs.get("deadletter", name)) for name in await blobs.list_names("deadletter")}
    assert letters[2]["reason"] == "invalid" and letters[2]["errors"][0]["field"] == "batch.deviceId"
    assert letters[3]["errors"][0]["field"] == "$"
