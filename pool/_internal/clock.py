"""One clock for the cache, the client pool and the rotation.

Everything in the library that waits or measures time asks a :class:`Clock`:
``monotonic()`` for deadlines, ``time()`` for the wall clock (credential expiry
times come as UTC timestamps), ``sleep()`` to wait, and :func:`fail_after` /
:func:`move_on_after` for bounded waits. :data:`SYSTEM_CLOCK` is the real one;
tests pass a fake whose time moves only when they say so, so timer-driven
behaviour (refreshes, rotations, drain deadlines) runs in milliseconds and
deterministically.
"""

from __future__ import annotations

import asyncio
import time as _time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "fail_after", "move_on_after"]


@runtime_checkable
class Clock(Protocol):
    """What the library needs of a clock."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, durations)."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (to place UTC expiry times on the monotonic clock)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock (a checkpoint when ``seconds <= 0``)."""
        ...


class SystemClock:
    """The real clocks: :func:`time.monotonic`, :func:`time.time`, :func:`asyncio.sleep`."""

    __slots__ = ()

    def monotonic(self) -> float:
        return _time.monotonic()

    def time(self) -> float:
        return _time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


@asynccontextmanager
async def fail_after(clock: Clock, seconds: float | None) -> AsyncIterator[None]:
    """Like ``asyncio.timeout(seconds)``, on ``clock``: raises :class:`TimeoutError`.

    ``None`` means no limit. On the system clock this *is* ``asyncio.timeout``;
    on another clock a watcher task sleeps on that clock and cancels the body.
    """
    if seconds is None:
        yield
        return
    if isinstance(clock, SystemClock):
        async with asyncio.timeout(seconds):
            yield
        return
    async with _watched(clock, seconds) as fired:
        try:
            yield
        except asyncio.CancelledError:
            if fired():
                raise TimeoutError(f"timed out after {seconds:g} s") from None
            raise


@asynccontextmanager
async def move_on_after(clock: Clock, seconds: float | None) -> AsyncIterator[None]:
    """Like :func:`fail_after`, but the body just stops when time is up (no error)."""
    try:
        async with fail_after(clock, seconds):
            yield
    except TimeoutError:
        pass


@asynccontextmanager
async def _watched(clock: Clock, seconds: float) -> AsyncIterator[_Fired]:
    task = asyncio.current_task()
    assert task is not None, "fail_after() needs a running task"
    state = _Fired()

    async def watch() -> None:
        await clock.sleep(seconds)
        state.value = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch(), name="fail_after-watcher")
    try:
        yield state
    finally:
        watcher.cancel()
        if state.value:
            # Our own cancellation must not count against the caller's
            # (asyncio.timeout does the same bookkeeping).
            task.uncancel()
        try:
            await watcher
        except asyncio.CancelledError:
            pass


class _Fired:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = False

    def __call__(self) -> bool:
        return self.value
