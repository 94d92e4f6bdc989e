"""The shedding policy (functions/overload.py) on an injected clock: work slots, a wait queue that sheds by how
long a request has waited or would, FIFO in a burst and LIFO in a standing queue; then the asyncio wrapper."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.overload import AdmissionControl, Outcome, Overloaded


def control(slots: int = 2, **kwargs) -> AdmissionControl:
    kwargs.setdefault("target_s", 0.05)
    kwargs.setdefault("interval_s", 0.1)
    kwargs.setdefault("max_wait_s", 0.3)
    return AdmissionControl(slots, clock=lambda: 0.0, **kwargs)


def test_requests_get_a_slot_at_once_until_the_slots_are_taken():
    admission = control(slots=2)
    first, second, third = admission.arrive(0.0), admission.arrive(0.0), admission.arrive(0.0)
    assert [w.outcome for w in (first, second, third)] == [Outcome.admitted, Outcome.admitted, Outcome.waiting]
    assert admission.in_use == 2 and admission.waiting == 1


def test_in_a_burst_a_freed_slot_goes_to_the_oldest_waiter():
    admission = control(slots=1)
    working = admission.arrive(0.0)
    older, newer = admission.arrive(0.01), admission.arrive(0.02)
    admission.release(working, 0.05)  # the queue has not been waiting for interval_s yet: a burst
    assert older.outcome is Outcome.admitted and newer.outcome is Outcome.waiting
    assert admission.in_use == 1


def test_in_a_burst_a_waiter_is_shed_after_the_long_wait_only():
    admission = control(slots=1, interval_s=1.0)  # keep it a burst for the whole test
    admission.arrive(0.0)
    waiter = admission.arrive(0.0)
    admission.expire(0.29)
    assert waiter.outcome is Outcome.waiting
    admission.expire(0.31)
    assert waiter.outcome is Outcome.shed and admission.shed == 1 and admission.waiting == 0


def test_a_standing_queue_serves_the_newest_first_and_sheds_after_the_short_target():
    admission = control(slots=1)
    working = admission.arrive(0.0)
    waiters = [admission.arrive(0.0 + 0.03 * n) for n in range(5)]  # arrivals at 0, .03, .06, .09, .12
    # The queue has not been empty since 0.0: at 0.13 it has stood for more than interval_s (0.1).
    assert admission.congested(0.13) and admission.wait_limit(0.13) == 0.05
    admission.release(working, 0.13)
    outcomes = [w.outcome for w in waiters]
    # Waited more than 0.05 s (arrived at 0, .03, .06): shed. The newest (0.12) gets the slot, LIFO.
    assert outcomes == [Outcome.shed, Outcome.shed, Outcome.shed, Outcome.waiting, Outcome.admitted]


def test_a_newcomer_that_would_wait_too_long_is_shed_at_once():
    admission = control(slots=2, interval_s=10.0, max_wait_s=0.35)
    # Measure a service time: 0.2 s a request.
    measured = admission.arrive(0.0)
    admission.release(measured, 0.2)
    assert admission.service_s == pytest.approx(0.2)
    working = [admission.arrive(0.2), admission.arrive(0.2)]
    queued = [admission.arrive(0.2) for _ in range(3)]  # predicted waits 0.1, 0.2 and 0.3 s: within 0.35 s
    assert [w.outcome for w in queued] == [Outcome.waiting] * 3
    # A fourth in line would wait (3 + 1) * 0.2 / 2 = 0.4 s: more than it may. Shed at once, not queued.
    hopeless = admission.arrive(0.2)
    assert hopeless.outcome is Outcome.shed and admission.waiting == 3
    assert all(w.outcome is Outcome.admitted for w in working)


def test_a_waiter_that_leaves_frees_its_place_and_an_admitted_one_its_slot():
    admission = control(slots=1)
    working = admission.arrive(0.0)
    gone, staying = admission.arrive(0.0), admission.arrive(0.0)
    admission.leave(gone, 0.01)
    assert admission.waiting == 1
    admission.release(working, 0.02)
    assert staying.outcome is Outcome.admitted
    admission.leave(staying, 0.03)  # its client went away just as it got the slot
    assert admission.in_use == 0
    admission.release(staying, 0.04)  # a second give-back changes nothing
    assert admission.in_use == 0


def test_the_queue_is_bounded_a_burst_refusing_newcomers_a_standing_queue_dropping_its_oldest():
    burst = control(slots=1, max_queue=2, interval_s=10.0, target_s=10.0, max_wait_s=10.0)
    burst.arrive(0.0)
    waiters = [burst.arrive(0.0) for _ in range(3)]
    assert [w.outcome for w in waiters] == [Outcome.waiting, Outcome.waiting, Outcome.shed]

    standing = control(slots=1, max_queue=3, target_s=10.0, max_wait_s=10.0)
    standing.arrive(0.0)
    first = standing.arrive(0.0)  # the queue stands from here
    later = [standing.arrive(0.2 + n * 0.001) for n in range(4)]  # 0.2 s on: congested, LIFO
    assert standing.waiting == 3
    assert [w.outcome for w in [first, *later]] == [Outcome.shed, Outcome.shed] + [Outcome.waiting] * 3


# One step of a random workload: a request arrives, the oldest working one finishes, or time passes.
steps = st.lists(st.one_of(st.just(("arrive", 0.0)), st.just(("release", 0.0)),
                           st.tuples(st.just("advance"), st.floats(0.0, 0.5))), max_size=200)


@settings(max_examples=200, deadline=None)
@given(steps=steps, slots=st.integers(1, 4))
def test_no_workload_breaks_the_invariants(steps, slots):
    admission = control(slots=slots)
    now, working, everyone = 0.0, [], []
    for kind, value in steps:
        if kind == "advance":
            now += value
            admission.expire(now)
        elif kind == "arrive":
            everyone.append(admission.arrive(now))
        elif working:
            admission.release(working.pop(0), now)
        working += [w for w in everyone if w.outcome is Outcome.admitted and w not in working
                    and w.admitted_at is not None]
        assert 0 <= admission.in_use <= slots
        assert admission.in_use == len(working)
        # Nobody is left waiting while a slot is free, and nobody still waiting has waited past the long limit.
        assert admission.waiting == 0 or admission.in_use == slots
        assert all(now - w.arrived_at <= admission.max_wait_s for w in everyone if w.outcome is Outcome.waiting)
        # An admitted request never waited longer than it may.
        assert all(w.admitted_at - w.arrived_at <= admission.max_wait_s for w in working)
    assert admission.admitted + admission.shed + admission.waiting == len(everyone)


async def test_slot_wakes_a_waiter_when_a_slot_frees():
    admission = AdmissionControl(1, target_s=5.0, max_wait_s=5.0)
    holding = asyncio.Event()
    done = asyncio.Event()

    async def first() -> None:
        async with admission.slot():
            holding.set()
            await done.wait()

    async def second() -> str:
        async with admission.slot():
            return "served"

    one = asyncio.create_task(first())
    await holding.wait()
    two = asyncio.create_task(second())
    await asyncio.sleep(0)  # let it join the queue
    assert admission.waiting == 1
    done.set()
    assert await two == "served"
    await one
    assert admission.in_use == 0 and admission.shed == 0


async def test_slot_sheds_a_waiter_when_no_slot_frees_in_time():
    admission = AdmissionControl(1, target_s=0.01, max_wait_s=0.02)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(Overloaded) as shed:
        async with admission.slot():
            pytest.fail("should have been shed")
    assert shed.value.retry_after_s == admission.retry_after_s
    release.set()
    await holder
    assert admission.in_use == 0 and admission.waiting == 0


async def test_a_cancelled_waiter_leaves_the_queue():
    admission = AdmissionControl(1, target_s=5.0, max_wait_s=5.0)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(hold())
    await asyncio.sleep(0)
    assert admission.waiting == 1
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert admission.waiting == 0
    release.set()
    await holder
    assert admission.in_use == 0
