"""Fakes shared by several test folders."""

from __future__ import annotations

import time

import anyio

__all__ = ["FakeClock", "FakeWallClock", "settle"]


class FakeWallClock:
    """Epoch seconds that start at the real time (botocore's signatures stay unskewed).

    They move only when the test calls :meth:`advance`.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeClock:
    """A :class:`pool._internal.clock.Clock` whose time moves only when the test says so.

    ``monotonic()`` (also ``clock()``) starts at ``start``; ``time()`` is the real
    epoch at creation plus however far the fake has moved, so expiry timestamps
    and signatures stay realistic. ``sleep()`` parks until :meth:`advance` or
    :meth:`run_until` passes its due time.
    """

    def __init__(self, start: float = 10_000.0) -> None:
        self.now = start
        self._start = start
        self._epoch = time.time()
        self._timers: list[tuple[float, anyio.Event]] = []

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self._epoch + (self.now - self._start)

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await anyio.lowlevel.checkpoint()
            return
        timer = (self.now + delay, anyio.Event())
        self._timers.append(timer)
        try:
            await timer[1].wait()
        finally:
            if timer in self._timers:
                self._timers.remove(timer)

    @property
    def next_timer(self) -> float | None:
        """When the earliest parked sleeper is due (None when nobody sleeps)."""
        return min((t for t, _ in self._timers), default=None)

    def advance(self, seconds: float, *, fire: bool = True) -> None:
        """Move time forward; wake the sleepers now due unless ``fire`` is False."""
        self.now += seconds
        if fire:
            for due, event in list(self._timers):
                if due <= self.now:
                    event.set()

    async def run_until(self, moment: float) -> None:
        """Move to ``moment``, firing due timers one by one and letting tasks react."""
        while True:
            await settle()
            due = self.next_timer
            if due is None or due > moment:
                break
            self.advance(max(0.0, due - self.now))
        self.advance(max(0.0, moment - self.now))
        await settle()


async def settle(max_rounds: int = 10_000) -> None:
    """Let every other task run until all are blocked.

    Uses :func:`anyio.wait_all_tasks_blocked`'s public contract where possible;
    see ``tests/cache/cache_fakes.py`` for the historical version that read
    ``Task._fut_waiter``.
    """
    from tests.cache.cache_fakes import settle as _settle

    await _settle(max_rounds)
