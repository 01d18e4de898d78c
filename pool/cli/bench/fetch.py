"""Credential fetch per environment: this library's sources against aiobotocore's providers.

Each sample is one fetch that reaches the endpoint, the cost paid whenever
credentials rotate: ``await source.fetch()`` on a long-lived source, against
the ``refresh_using`` call an ``AioRefreshableCredentials`` makes at refresh
(see :meth:`pool.cli.bench.setup.BenchSetup.aiobotocore_refresh`). Samples
of the two alternate, so drift on a noisy machine hits both alike. The first
fetches of each are warm-up (imports, first connections) and not recorded.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pool.cli.bench.setup import BenchSetup
from pool.cli.bench.stats import Recorder, Ticker, ms_recorder
from pool.cli.workload import patched_environ
from pool.sources import aclose_source

__all__ = ["FetchResult", "bench_fetch"]

WARMUP = 2


@dataclass
class FetchResult:
    """Fetch latencies and per-fetch loop stalls in ms; ``aiobotocore*`` is None where it
    has no equivalent (Lambda)."""

    pool: Recorder = field(default_factory=ms_recorder)
    aiobotocore: Recorder | None = field(default_factory=ms_recorder)
    pool_stall: Recorder = field(default_factory=ms_recorder)
    aiobotocore_stall: Recorder | None = field(default_factory=ms_recorder)


async def _timed(ticker: Ticker, fetch: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(fetch ms, longest loop gap ms during it)."""
    await ticker.start_window()
    t0 = time.perf_counter()
    await fetch()
    elapsed = (time.perf_counter() - t0) * 1000
    return elapsed, await ticker.end_window()


async def bench_fetch(
    env: str, setup: BenchSetup, samples: int, ticker: Ticker, advance: Callable[[], None]
) -> FetchResult:
    """Time ``samples`` fetches of each contender in ``env``, and the longest loop stall
    during each (``ticker``); ``advance()`` after each pair."""
    result = FetchResult()
    with patched_environ(setup.variables(env)):
        ours = setup.our_source(env)
        try:
            theirs = await setup.aiobotocore_refresh(env)
            if theirs is None:
                result.aiobotocore = result.aiobotocore_stall = None
            for i in range(WARMUP + samples):
                ours_ms, ours_stall = await _timed(ticker, ours.fetch)
                theirs_ms = theirs_stall = None
                if theirs is not None:
                    theirs_ms, theirs_stall = await _timed(ticker, theirs)
                if i < WARMUP:
                    continue
                result.pool.record(ours_ms)
                result.pool_stall.record(ours_stall)
                if theirs_ms is not None and theirs_stall is not None:
                    assert result.aiobotocore is not None and result.aiobotocore_stall is not None
                    result.aiobotocore.record(theirs_ms)
                    result.aiobotocore_stall.record(theirs_stall)
                advance()
        finally:
            await aclose_source(ours)
    return result
