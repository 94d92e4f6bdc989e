"""Event processing: bad events go to a dead-letter blob with their reason; good ones go on, in order."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import pytest

from shared.adapters.memory import InMemoryBlobStore
from shared.domain.ports import InboundEvent
from shared.services import EventProcessingService
from tests.support.batches import BEACON_A, ingest_event_body

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


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


async def test_a_pipeline_failure_dead_letters_the_valid_events_for_replay():
    blobs = InMemoryBlobStore()

    async def on_valid(batches):
        raise ConnectionError("cosmos is down")

    service = EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW)
    with pytest.raises(ConnectionError):
        await service.process([event(good(-60), 1), event(good(-61), 2)])
    names = await blobs.list_names("deadletter")
    letters = [json.loads(await blobs.get("deadletter", n)) for n in names]
    assert sorted(letter["sequenceNumber"] for letter in letters) == [1, 2]
    assert {letter["reason"] for letter in letters} == {"processing-failed"}
    assert "ConnectionError" in letters[0]["errors"][0]["message"]
    replayed = json.loads(base64.b64decode(letters[0]["bodyBase64"]))
    assert replayed["schema"] == "ingest/v1"  # the whole event, ready to publish again


async def test_a_dead_letter_write_is_retried():
    class FlakyBlobs(InMemoryBlobStore):
        failures = 2

        async def put(self, container, name, data, content_type="application/octet-stream"):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("blob hiccup")
            await super().put(container, name, data, content_type)

    blobs = FlakyBlobs()

    async def on_valid(batches):
        pass

    await EventProcessingService(blobs, "deadletter", on_valid, clock=lambda: NOW).process([event(b"{", 3)])
    assert len(await blobs.list_names("deadletter")) == 1


async def test_replay_publishes_failed_events_again_and_keeps_invalid_ones():
    from shared.adapters.memory import RecordingEventPublisher
    from shared.services.replay import DeadLetterReplay

    blobs = InMemoryBlobStore()

    async def outage(batches):
        raise ConnectionError("cosmos is down")

    service = EventProcessingService(blobs, "deadletter", outage, clock=lambda: NOW)
    with pytest.raises(ConnectionError):
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
