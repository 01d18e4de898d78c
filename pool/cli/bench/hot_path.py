"""The cache hot path: reading credentials that are valid, against aiobotocore.

``cache.current`` and ``await cache.get()`` of :class:`pool.CredentialCache`
against ``await AioRefreshableCredentials.get_frozen_credentials()``. Each
sample is the mean cost per call over a batch of ``BATCH`` calls (a single
call is too short for the clock), in nanoseconds. The source is a fake
that returns a fresh one-hour set: this measures the caches, not any
endpoint. ``benchmarks/bench_cache.py`` reuses these pieces.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pool.cache import CredentialCache
from pool.cli.bench.stats import Recorder
from pool.credentials import Credentials

__all__ = [
    "BATCH",
    "BATCHES",
    "TTL",
    "AioBotoFetcher",
    "BenchSource",
    "bench_hot_path",
    "median_ns_async",
    "median_ns_sync",
    "refreshable",
]

BATCH = 1000
BATCHES = 200
TTL = 3600.0


class BenchSource:
    """A source that takes ``delay`` seconds and returns a new one-hour set each time."""

    name = "bench"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.fetches = 0

    async def fetch(self) -> Credentials:
        self.fetches += 1
        n = self.fetches
        await asyncio.sleep(self.delay)
        return Credentials(
            access_key_id=f"ASIABENCH{n:08d}",
            secret_access_key=f"secret-{n}",
            session_token=f"token-{n}",
            expiration=datetime.now(UTC) + timedelta(seconds=TTL),
            source="bench",
        )


class AioBotoFetcher:
    """aiobotocore's ``refresh_using`` callback and credential provider, counting calls."""

    METHOD = "bench"
    CANONICAL_NAME = "bench"

    def __init__(self, delay: float, shift: Callable[[], timedelta] = timedelta) -> None:
        self.delay, self.shift, self.calls = delay, shift, 0

    async def refresh(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        # Any aware time compares right with aiobotocore's local-zone clock.
        expiry = datetime.now(UTC) + self.shift() + timedelta(seconds=TTL)
        return {
            "access_key": f"ASIABOTO{self.calls:08d}",
            "secret_key": "secret",
            "token": "token",
            "expiry_time": expiry.isoformat(),
        }

    async def load(self) -> Any:  # the provider interface
        from aiobotocore.credentials import AioRefreshableCredentials

        metadata = await self.refresh()
        return AioRefreshableCredentials.create_from_metadata(
            metadata, refresh_using=self.refresh, method=self.METHOD
        )


def refreshable(fetcher: AioBotoFetcher, time_fetcher: Callable[[], datetime] | None = None) -> Any:
    """aiobotocore refreshable credentials valid for an hour, refreshed by ``fetcher``."""
    from aiobotocore.credentials import AioRefreshableCredentials

    kwargs = {"time_fetcher": time_fetcher} if time_fetcher else {}
    return AioRefreshableCredentials(
        access_key="ASIABOTO",
        secret_key="secret",
        token="token",
        expiry_time=datetime.now(UTC) + timedelta(seconds=TTL),
        refresh_using=fetcher.refresh,
        method="bench",
        **kwargs,
    )


def batches_ns_sync(fn: Callable[[], object], batches: int = BATCHES) -> list[float]:
    """Mean ns per call of ``fn``, for each of ``batches`` batches of ``BATCH`` calls."""
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            fn()
        samples.append((time.perf_counter_ns() - start) / BATCH)
    return samples


async def batches_ns_async(
    fn: Callable[[], Awaitable[object]], batches: int = BATCHES
) -> list[float]:
    """As :func:`batches_ns_sync`, awaiting each call."""
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            await fn()
        samples.append((time.perf_counter_ns() - start) / BATCH)
    return samples


def median_ns_sync(fn: Callable[[], object]) -> float:
    return statistics.median(batches_ns_sync(fn))


async def median_ns_async(fn: Callable[[], Awaitable[object]]) -> float:
    return statistics.median(await batches_ns_async(fn))


def ns_recorder(samples: list[float]) -> Recorder:
    """Per-call ns at 0.1 ns resolution, up to 10 ms."""
    rec = Recorder(resolution=0.1, highest=1e7)
    for value in samples:
        rec.record(value)
    return rec


async def bench_hot_path(batches: int = BATCHES) -> dict[str, Recorder]:
    """``{"pool_current", "pool_get", "aiobotocore"}``: ns per call, one sample per batch."""
    async with CredentialCache(BenchSource(0.0)) as cache:
        await cache.get()
        current = batches_ns_sync(lambda: cache.current, batches)
        get = await batches_ns_async(cache.get, batches)
    boto = refreshable(AioBotoFetcher(0.0))
    theirs = await batches_ns_async(boto.get_frozen_credentials, batches)
    return {
        "pool_current": ns_recorder(current),
        "pool_get": ns_recorder(get),
        "aiobotocore": ns_recorder(theirs),
    }
