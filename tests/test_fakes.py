"""The shared fakes keep their promises: settle() sees every runnable task, FakeClock is a Clock."""

from __future__ import annotations

import asyncio

import pytest

from pool._internal.clock import Clock
from tests.fakes import FakeClock, SettlingLoop, settle


async def test_tests_run_on_the_settling_loop() -> None:
    """tests/conftest.py runs async tests on SettlingLoop, which settle() needs."""
    assert isinstance(asyncio.get_running_loop(), SettlingLoop)


async def test_a_woken_task_counts_as_pending_until_it_ran() -> None:
    """Task and Future wake-ups go through loop.call_soon() (read on CPython 3.11).

    SettlingLoop, hence settle(), relies on it: if a later CPython scheduled
    them another way, this test fails first.
    """
    loop = asyncio.get_running_loop()
    assert isinstance(loop, SettlingLoop)
    event = asyncio.Event()
    woke: list[bool] = []

    async def sleeper() -> None:
        await event.wait()
        woke.append(True)

    task = asyncio.ensure_future(sleeper())
    assert loop.pending() >= 1  # the new task's first step
    await settle()
    assert loop.pending() == 0 and not woke
    event.set()  # the waiter future's callback: the task's wake-up
    assert loop.pending() >= 1
    await settle()
    assert woke == [True] and task.done()


async def test_settle_waits_through_chains_of_wake_ups() -> None:
    """A chain of tasks each waking the next has fully run when settle() returns."""
    events = [asyncio.Event() for _ in range(20)]
    done: list[int] = []

    async def link(n: int) -> None:
        await events[n].wait()
        done.append(n)
        if n + 1 < len(events):
            events[n + 1].set()

    tasks = [asyncio.ensure_future(link(n)) for n in range(len(events))]
    await settle()
    events[0].set()
    await settle()
    assert done == list(range(20))
    await asyncio.gather(*tasks)


async def test_settle_treats_timers_as_blocked() -> None:
    """A task sleeping on a real timer counts as blocked: settle() does not wait for it."""
    sleeper = asyncio.ensure_future(asyncio.sleep(3600))
    await settle()
    assert not sleeper.done()
    sleeper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeper


async def test_settle_refuses_another_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """settle() on a loop that cannot count pending callbacks says so instead of guessing."""
    monkeypatch.setattr(asyncio, "get_running_loop", lambda: object())
    with pytest.raises(RuntimeError, match="SettlingLoop"):
        await settle()


def test_fake_clock_is_a_clock() -> None:
    """tests.fakes.FakeClock implements the library's Clock protocol (one clock for all)."""
    clock = FakeClock(start=5.0)
    assert isinstance(clock, Clock)
    before = clock.time()
    clock.advance(10)
    assert clock.monotonic() == 15.0 and clock() == 15.0
    assert clock.time() == pytest.approx(before + 10)
