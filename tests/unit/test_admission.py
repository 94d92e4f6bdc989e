"""The shedding policy (functions/overload.py) on an injected clock: work slots, a wait queue that sheds by how
long a request has waited or would, FIFO in a burst and LIFO in a standing queue; then the asyncio wrapper."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.overload import AdmissionControl, LoopDelay, Outcome, Overloaded


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


def observe_every(delay: LoopDelay, delays: list[float], every_s: float = 0.025, start: float = 0.0,
                  arrivals: int = 10) -> float:
    """Feed measurements `every_s` apart (the delay itself moves the clock too, as it does on a real loop), each
    with `arrivals` requests since the last."""
    now = start
    for measured in delays:
        now += every_s + measured
        delay.observe(measured, now, arrivals)
    return now


def test_a_one_off_stall_of_the_loop_sheds_nothing():
    delay = LoopDelay(target_s=0.05, rng=lambda: 0.0)  # rng 0: shed whenever the probability is above 0
    for measured in (0.001, 0.002, 0.9, 0.001, 0.002, 0.001):  # a site index built once: 900 ms
        observe_every(delay, [measured])
        assert delay.probability == 0 and not delay.shed_now()


def test_long_handlers_one_request_at_a_time_shed_nothing():
    # A client sending one heavy request after another (schemathesis validating site models): the loop is late
    # at every measurement, but each time only one request arrived: nobody waited behind anybody.
    delay = LoopDelay(target_s=0.1, rng=lambda: 0.0)
    observe_every(delay, [0.3] * 20, arrivals=1)
    assert delay.probability == 0 and delay.delay_s == 0 and not delay.shed_now()
    observe_every(delay, [0.3] * 20, start=10.0, arrivals=5)  # the same loop with requests piling up: overload
    assert delay.probability > 0.5 and delay.shed_now()


def test_a_loop_that_stays_late_raises_the_shedding_probability_and_on_time_lowers_it():
    delay = LoopDelay(target_s=0.05, window_s=0.1, step_up=0.1, step_down=0.02, rng=lambda: 0.5)
    probabilities = []
    now = 0.0
    for _ in range(12):  # every iteration of the loop 300 ms late: overload, longer than the window
        now = observe_every(delay, [0.3], start=now)
        probabilities.append(delay.probability)
    assert probabilities[0] == 0  # one late measurement is not a standing delay yet
    assert probabilities[1:4] == pytest.approx([0.1, 0.2, 0.3])  # up by the whole step: 6x the target
    assert probabilities == sorted(probabilities) and probabilities[-1] == delay.max_probability
    assert delay.shed_now()
    now = observe_every(delay, [0.001] * 5, start=now)
    assert delay.delay_s == 0.001 and not delay.shed_now()  # on time again: no shedding, whatever the probability
    assert delay.probability == pytest.approx(delay.max_probability - 5 * 0.02)  # and down slowly
    observe_every(delay, [0.001] * 60, start=now)
    assert delay.probability == 0


def test_a_delay_just_over_the_target_raises_the_probability_a_little():
    delay = LoopDelay(target_s=0.05, step_up=0.1)
    observe_every(delay, [0.06, 0.06])
    assert delay.probability == pytest.approx(0.1 * (0.06 / 0.05 - 1))
    observe_every(delay, [0.04, 0.04], start=1.0)  # between half the target and the target: hold
    assert delay.probability == pytest.approx(0.02)


def test_shedding_follows_the_probability():
    draws = iter([0.1, 0.6, 0.3, 0.9])
    delay = LoopDelay(target_s=0.05, rng=lambda: next(draws))
    delay.delay_s, delay.probability = 0.2, 0.5
    assert [delay.shed_now() for _ in range(4)] == [True, False, True, False]


def test_arrivals_are_shed_while_the_loop_is_late_even_with_free_slots():
    admission = control(slots=4, loop_delay=LoopDelay(target_s=0.05, rng=lambda: 0.0))
    observe_every(admission.loop_delay, [0.5] * 8)
    assert admission.arrive(0.0).outcome is Outcome.shed and admission.shed_by["loop"] == 1
    admission.loop_delay.idle()
    assert admission.arrive(0.0).outcome is Outcome.admitted


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
