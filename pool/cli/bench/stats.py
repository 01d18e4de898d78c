"""Measuring instruments for ``python -m pool bench``: HDR histograms and a loop-stall ticker.

Latencies go into HDR histograms (``hdrhistogram``, three significant digits),
which is what the report's p50/p95/p99/max come from; the raw samples are
kept beside them only for the plot. The ticker is a task that wakes every
millisecond; the longest gap between two of its wake-ups is how long
something held the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Literal, TypedDict

from hdrh.histogram import HdrHistogram

__all__ = ["Percentiles", "Recorder", "Ticker", "ms_recorder", "ratio", "summarize_ms"]

Stat = Literal["p50", "p95", "p99", "max"]


class Percentiles(TypedDict):
    """The ``P`` of the JSON shape: p50/p95/p99/max in the recorder's unit, and n."""

    p50: float
    p95: float
    p99: float
    max: float
    n: int


class Recorder:
    """An HDR histogram of one latency series, in a unit such as ms or ns.

    ``resolution`` is the smallest difference recorded, in that unit (values
    are stored as integer multiples of it); ``highest`` the largest value
    expected (larger ones are clamped, never dropped, so ``n`` stays right).
    """

    def __init__(self, *, resolution: float, highest: float) -> None:
        self.resolution = resolution
        self._top = max(2, round(highest / resolution))
        self._hist = HdrHistogram(1, self._top, 3)
        self.values: list[float] = []

    def record(self, value: float) -> None:
        self.values.append(value)
        self._hist.record_value(min(self._top, max(1, round(value / self.resolution))))

    @property
    def n(self) -> int:
        return int(self._hist.get_total_count())

    def summary(self) -> Percentiles | None:
        """p50/p95/p99/max and n; ``None`` when nothing was recorded."""
        if self.n == 0:
            return None
        digits = 3 if self.resolution < 1 else 1

        def at(p: float) -> float:
            return round(float(self._hist.get_value_at_percentile(p)) * self.resolution, digits)

        return {
            "p50": at(50),
            "p95": at(95),
            "p99": at(99),
            "max": round(self._hist.get_max_value() * self.resolution, digits),
            "n": self.n,
        }


def ms_recorder() -> Recorder:
    """Milliseconds at microsecond resolution, up to a minute."""
    return Recorder(resolution=0.001, highest=60_000.0)


def summarize_ms(values: Iterable[float]) -> Percentiles | None:
    """p50/p95/p99/max and n of millisecond ``values``; ``None`` when there are none."""
    rec = ms_recorder()
    for value in values:
        rec.record(value)
    return rec.summary()


def ratio(alternative: Percentiles | None, ours: Percentiles | None, key: Stat) -> float | None:
    """``alternative[key] / ours[key]``: how many times less ours took; None when n/a."""
    if alternative is None or ours is None or ours[key] <= 0:
        return None
    return float(alternative[key]) / float(ours[key])


class Ticker:
    """A task waking every ``period`` seconds, recording the longest gap between wake-ups.

    The gap includes the period itself, so an idle loop shows about
    ``period`` (plus scheduling overhead); anything holding the loop adds to
    it. Use :meth:`window` around the code under test. Event-loop only.
    """

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.longest = 0.0
        self._tick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run(), name="bench-ticker")
        await self.next_tick()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(self.period)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now
            self._tick.set()
            self._tick.clear()

    async def next_tick(self) -> None:
        """Wait until the ticker has woken once more (so a gap in progress is counted)."""
        await self._tick.wait()

    async def start_window(self) -> None:
        """Begin a measurement: sync with a tick, then forget earlier gaps."""
        await self.next_tick()
        self.longest = 0.0

    async def end_window(self) -> float:
        """End a measurement; the longest gap since :meth:`start_window`, in ms."""
        await self.next_tick()
        return self.longest * 1000
