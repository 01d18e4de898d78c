"""Fakes shared by several test folders."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

__all__ = ["FakeClock", "FakeWallClock", "SettlingLoop", "settle"]


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


class SettlingLoop(asyncio.SelectorEventLoop):
    """An event loop that knows whether any callback is waiting to run: :func:`settle`'s basis.

    Every task step and every future callback is scheduled through the
    public ``loop.call_soon()`` (the C ``Task`` and ``Future`` call it by
    method lookup, so this override sees them; checked on CPython 3.11 by
    ``tests/test_fakes.py``). Callbacks scheduled and neither run nor
    cancelled yet are what :meth:`pending` counts; when it is zero from inside
    a task, every other task is blocked (on a future, a timer, I/O or a
    thread), which is what ``anyio.wait_all_tasks_blocked()`` finds out by
    reading the private ``Task._fut_waiter`` and polling every 0.1 s.
    """

    def __init__(self) -> None:
        super().__init__()
        self._soon_handles: set[asyncio.Handle] = set()

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: object, context: Any = None
    ) -> asyncio.Handle:
        cell: list[asyncio.Handle] = []

        @functools.wraps(callback)  # debug-mode reports still name the real callback
        def run(*a: object) -> object:
            self._soon_handles.discard(cell[0])
            return callback(*a)

        handle = super().call_soon(run, *args, context=context)
        cell.append(handle)
        self._soon_handles.add(handle)
        return handle

    def pending(self) -> int:
        """Callbacks scheduled with call_soon() that have neither run nor been cancelled."""
        self._soon_handles = {h for h in self._soon_handles if not h.cancelled()}
        return len(self._soon_handles)


async def settle(max_rounds: int = 10_000) -> None:
    """Let every other task run until all are blocked, in as few loop iterations as that takes.

    Needs a :class:`SettlingLoop` (``tests/conftest.py`` runs every async test
    on one).
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, SettlingLoop):
        raise RuntimeError("settle() needs the SettlingLoop that tests/conftest.py provides")
    for _ in range(max_rounds):
        await asyncio.sleep(0)
        # This task's own wake-up has run (it is running now): anything left is another's.
        if loop.pending() == 0:
            return
    raise AssertionError("tasks did not settle: something is spinning")
