"""Credential fetch per environment: this library's sources against aiobotocore's providers.

Each sample is one fetch that reaches the endpoint, the cost paid whenever
credentials rotate: ``await source.fetch()`` on a long-lived source, against
the ``refresh_using`` call an ``AioRefreshableCredentials`` makes at refresh
(see :meth:`pool.cli._bench_setup.BenchSetup.aiobotocore_refresh`). Samples
of the two alternate, so drift on a noisy machine hits both alike. The first
fetches of each are warm-up (imports, first connections) and not recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..sources import aclose_source
from ._bench_setup import BenchSetup
from ._bench_stats import Recorder, ms_recorder
from ._workload import patched_environ

__all__ = ["FetchResult", "bench_fetch"]

WARMUP = 2


@dataclass
class FetchResult:
    """Fetch latencies in ms; ``aiobotocore`` is None where it has no equivalent (Lambda)."""

    pool: Recorder = field(default_factory=ms_recorder)
    aiobotocore: Recorder | None = field(default_factory=ms_recorder)


async def bench_fetch(
    env: str, setup: BenchSetup, samples: int, advance: Callable[[], None]
) -> FetchResult:
    """Time ``samples`` fetches of each contender in ``env``; ``advance()`` after each pair."""
    result = FetchResult()
    with patched_environ(setup.variables(env)):
        ours = setup.our_source(env)
        try:
            theirs = await setup.aiobotocore_refresh(env)
            if theirs is None:
                result.aiobotocore = None
            for i in range(WARMUP + samples):
                t0 = time.perf_counter()
                await ours.fetch()
                ours_ms = (time.perf_counter() - t0) * 1000
                theirs_ms = None
                if theirs is not None:
                    t0 = time.perf_counter()
                    await theirs()
                    theirs_ms = (time.perf_counter() - t0) * 1000
                if i < WARMUP:
                    continue
                result.pool.record(ours_ms)
                if result.aiobotocore is not None and theirs_ms is not None:
                    result.aiobotocore.record(theirs_ms)
                advance()
        finally:
            await aclose_source(ours)
    return result
