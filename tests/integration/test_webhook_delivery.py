"""Webhook delivery end to end on loopback: real HTTP receivers that check signatures with the `standardwebhooks`
library, the relay and worker on an injected clock (backoff and the 24 hours are clock steps, not sleeps)."""
from __future__ import annotations

import asyncio
import socket
from datetime import timedelta

import pytest
from aiohttp.abc import AbstractResolver

from devkit.webhook_receiver import WebhookReceiver
from shared.domain.events import EventType
from shared.domain.subscriptions import GIVE_UP_AFTER, DeliveryStatus, SubscriptionStatus
from tests.support.delivery import HQ, harness

OCCUPIED, VACATED = EventType.space_occupied.value, EventType.space_vacated.value


@pytest.fixture
async def receivers():
    started: list[WebhookReceiver] = []

    async def start(**behaviour) -> tuple[WebhookReceiver, str]:
        receiver = WebhookReceiver(**{"secrets": [], **behaviour})
        started.append(receiver)
        return receiver, await receiver.start()

    yield start
    for receiver in started:
        await receiver.stop()


async def test_signed_events_verify_with_the_standardwebhooks_library_and_a_wrong_secret_does_not(receivers):
    h = await harness()
    try:
        good, good_url = await receivers()
        wrong, wrong_url = await receivers(secrets=["whsec_" + "A" * 43])
        sub_id, secret = await h.subscribe(good_url)
        good.secrets.append(secret)
        wrong_id, _ = await h.subscribe(wrong_url)
        [event] = await h.occupy("r-oak", "phone-1")
        await h.round()
        [received] = good.received
        assert received.webhook_id == event.id == received.event["id"]
        assert (received.event["type"], received.event["subject"], received.event["data"]["status"]) == (
            OCCUPIED, "spaces/r-oak", "occupied")
        assert wrong.received == [] and wrong.rejected == 1
        [bad] = await h.deliveries.recent(HQ.tenant_id, wrong_id)
        assert (bad.status, bad.log[-1].status_code, bad.next_attempt_at > h.clock()) == (
            DeliveryStatus.pending, 401, True)
        [ok] = await h.deliveries.recent(HQ.tenant_id, sub_id)
        assert (ok.status, ok.attempts, ok.log[0].status_code) == (DeliveryStatus.delivered, 1, 204)
        assert ok.log[0].latency_ms > 0
    finally:
        await h.close()


async def test_a_receiver_failing_the_first_attempts_gets_every_event_once_and_in_order_per_space(receivers):
    h = await harness()
    try:
        receiver, url = await receivers(fail_first=3)
        sub_id, secret = await h.subscribe(url)
        receiver.secrets.append(secret)
        first = await h.occupy("r-oak", "phone-1")
        h.clock.advance(timedelta(seconds=1))
        second = await h.occupy("r-oak", "phone-1", leave=True)
        other = await h.occupy("k-0", "phone-2")
        await h.round()
        assert receiver.received == []
        # the backoff with full jitter at its ceiling (rand = 1): 5 s, 10 s, 20 s
        for wait_s in (4, 1, 9, 1, 19, 1):
            h.clock.advance(timedelta(seconds=wait_s))
            await h.round()
        ids = [r.webhook_id for r in receiver.received]
        assert sorted(ids) == sorted(e.id for e in first + other)  # the vacated one still waits for the occupied
        for _ in range(8):
            h.clock.advance(timedelta(seconds=30))
            await h.round()
        ids = [r.webhook_id for r in receiver.received]
        assert len(ids) == len(set(ids)) == 3
        r_oak = [r.event["type"] for r in receiver.received if r.event["subject"] == "spaces/r-oak"]
        assert r_oak == [OCCUPIED, VACATED]
        assert ids.index(second[0].id) > ids.index(first[0].id)
        [occupied] = [d for d in await h.deliveries.recent(HQ.tenant_id, sub_id) if d.event_id == first[0].id]
        assert [a.status_code for a in occupied.log] == [503, 503, 503, 204]
        gaps = [(b.at - a.at).total_seconds() for a, b in zip(occupied.log, occupied.log[1:], strict=False)]
        assert gaps == [5, 10, 20]
    finally:
        await h.close()


async def test_a_hanging_receiver_does_not_hold_up_another(receivers):
    h = await harness(timeout_s=0.5)
    try:
        hanging, hanging_url = await receivers(hang_s=3)
        quick, quick_url = await receivers()
        hang_id, hang_secret = await h.subscribe(hanging_url)
        _, quick_secret = await h.subscribe(quick_url)
        hanging.secrets.append(hang_secret)
        quick.secrets.append(quick_secret)
        await h.occupy("r-oak", "phone-1")
        await h.relay.relay_pending()
        started = asyncio.get_running_loop().time()
        assert await h.worker.run_once() == 2  # returns at once: the attempts run on their own
        while not quick.received:
            await asyncio.sleep(0.01)
        assert asyncio.get_running_loop().time() - started < 0.4
        assert h.worker.in_flight == 1  # the hanging one
        await h.occupy("k-0", "phone-2")  # the pipeline writes on meanwhile
        await h.worker.drain()
        [hung] = await h.deliveries.recent(HQ.tenant_id, hang_id)
        assert (hung.status, hung.log[0].status_code, hung.log[0].error) == (
            DeliveryStatus.pending, None, "no answer within 0.5 s")
        assert 450 < hung.log[0].latency_ms < 1500
    finally:
        await h.close()


async def test_410_gone_disables_the_subscription_and_resuming_delivers_what_waited(receivers):
    h = await harness()
    try:
        receiver, url = await receivers(status=410)
        sub_id, secret = await h.subscribe(url)
        receiver.secrets.append(secret)
        await h.occupy("r-oak", "phone-1")
        await h.round()
        subscription = await h.subscriptions.get(HQ.tenant_id, sub_id)
        assert subscription.status is SubscriptionStatus.disabled
        assert "410 Gone" in subscription.disabled_reason and url in subscription.disabled_reason
        await h.occupy("k-0", "phone-2")
        h.clock.advance(timedelta(hours=1))
        await h.round()
        assert receiver.requests == 1  # nothing more is sent to it
        assert {d.status for d in await h.deliveries.recent(HQ.tenant_id, sub_id)} == {DeliveryStatus.held}
        receiver.status = 204
        resumed = await h.service.update(HQ.tenant_id, sub_id, paused=False, types=None)
        assert resumed.status is SubscriptionStatus.active and resumed.disabled_reason is None
        h.cache.invalidate()
        await h.round()
        await h.round()
        assert sorted(r.event["subject"] for r in receiver.received) == ["spaces/k-0", "spaces/r-oak"]
    finally:
        await h.close()


async def test_a_receiver_down_for_24_hours_disables_the_subscription_saying_why(receivers):
    h = await harness()
    try:
        receiver, url = await receivers(fail_first=10**6)
        sub_id, secret = await h.subscribe(url)
        receiver.secrets.append(secret)
        await h.occupy("r-oak", "phone-1")
        await h.round()
        start = h.clock()
        while (await h.subscriptions.get(HQ.tenant_id, sub_id)).disabled_reason is None:
            [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
            assert h.clock() - start < GIVE_UP_AFTER + timedelta(hours=2), "never disabled"
            h.clock.now = delivery.next_attempt_at
            await h.round()
        subscription = await h.subscriptions.get(HQ.tenant_id, sub_id)
        assert GIVE_UP_AFTER <= h.clock() - start < GIVE_UP_AFTER + timedelta(hours=1)
        assert "for 24 hours" in subscription.disabled_reason and "HTTP 503" in subscription.disabled_reason
        [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
        assert delivery.status is DeliveryStatus.held and receiver.received == []
        # 5 s doubling to an hour (rand = 1): attempts at 0, 5, 15 ... 2555, 5115 s, then hourly until 24 h passed
        assert delivery.attempts == 34 and len(delivery.log) == 20  # the attempts kept: the last 20
        delays = [(b.at - a.at).total_seconds() for a, b in zip(delivery.log, delivery.log[1:], strict=False)]
        assert set(delays) == {3600}
    finally:
        await h.close()


async def test_after_a_rotation_both_secrets_sign_for_a_day_then_only_the_new_one(receivers):
    h = await harness()
    try:
        old_side, url = await receivers()
        sub_id, first = await h.subscribe(url)
        old_side.secrets.append(first)
        _, second = await h.service.rotate_secret(HQ.tenant_id, sub_id)
        h.cache.invalidate()
        await h.occupy("r-oak", "phone-1")
        await h.round()
        assert len(old_side.received) == 1  # a receiver not yet told the new secret still verifies
        old_side.secrets[:] = [second]
        await h.occupy("k-0", "phone-1")
        await h.round()
        assert len(old_side.received) == 2  # ... and one that switched already
        h.clock.advance(timedelta(hours=24, seconds=1))
        old_side.secrets[:] = [first]
        await h.occupy("r-oak", "phone-2")
        await h.round()
        assert len(old_side.received) == 2 and old_side.rejected == 1  # the old secret no longer signs
        old_side.secrets[:] = [second]
        h.clock.advance(timedelta(seconds=10))
        await h.round()
        assert len(old_side.received) == 3
    finally:
        await h.close()


class _Resolves(AbstractResolver):
    """A DNS answer of our choosing (a public-looking name that points inside)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        self.asked.append(host)
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET, "proto": 0,
                 "flags": 0}]

    async def close(self) -> None:
        return None


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "127.0.0.1", "192.168.0.7"])
async def test_a_name_that_resolves_inside_is_refused_at_delivery(receivers, address):
    resolver = _Resolves(address)
    h = await harness(allow_loopback=False, resolver=resolver)
    try:
        sub_id, _secret = await h.subscribe("https://hooks.example.com/spaceflow")
        await h.occupy("r-oak", "phone-1")
        await h.round()
        [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
        assert resolver.asked == ["hooks.example.com"]
        assert delivery.status is DeliveryStatus.pending and delivery.log[0].status_code is None
        assert delivery.log[0].error.startswith("target refused"), delivery.log[0].error
    finally:
        await h.close()


async def test_a_loopback_subscription_is_refused_where_loopback_is_not_allowed(receivers):
    h = await harness(allow_loopback=False)
    try:
        receiver, url = await receivers()
        sub_id, secret = await h.subscribe(url)  # accepted while the setting allowed it
        receiver.secrets.append(secret)
        await h.occupy("r-oak", "phone-1")
        await h.round()
        [delivery] = await h.deliveries.recent(HQ.tenant_id, sub_id)
        assert receiver.requests == 0 and delivery.log[0].error.startswith("target refused")
    finally:
        await h.close()


async def test_replay_sends_the_events_again_with_their_ids(receivers):
    h = await harness()
    try:
        receiver, url = await receivers()
        sub_id, secret = await h.subscribe(url)
        receiver.secrets.append(secret)
        since = h.clock()
        sent = await h.occupy("r-oak", "phone-1")
        h.clock.advance(timedelta(seconds=1))
        sent += await h.occupy("r-oak", "phone-1", leave=True)
        for _ in range(3):
            await h.round()
        assert [r.webhook_id for r in receiver.received] == [e.id for e in sent]
        assert await h.service.replay(HQ.tenant_id, sub_id, since) == 2
        for _ in range(3):
            await h.round()
        assert [r.webhook_id for r in receiver.received] == [e.id for e in sent] * 2
        assert [r.attempt for r in receiver.received] == [1, 1, 2, 2]
        h.clock.advance(timedelta(seconds=10))
        assert await h.service.replay(HQ.tenant_id, sub_id, h.clock() - timedelta(seconds=5)) == 0  # none since
    finally:
        await h.close()


async def test_deliveries_held_while_paused_go_once_resumed_even_when_the_resume_raced_the_hold(receivers):
    from dataclasses import replace

    h = await harness()
    try:
        receiver, url = await receivers()
        sub_id, secret = await h.subscribe(url)
        receiver.secrets.append(secret)
        await h.service.update(HQ.tenant_id, sub_id, paused=True, types=None)
        [event] = await h.occupy("r-oak", "phone-1")
        await h.round()
        assert receiver.requests == 0
        [held] = await h.deliveries.recent(HQ.tenant_id, sub_id)
        assert held.status is DeliveryStatus.held
        # resumed by a writer that released nothing (its release ran before this worker's hold)
        paused = await h.subscriptions.get(HQ.tenant_id, sub_id)
        await h.subscriptions.save(replace(paused, paused=False))
        await h.round()
        await h.round()
        assert [r.webhook_id for r in receiver.received] == [event.id]
    finally:
        await h.close()
