"""CredentialCache against aiobotocore's refreshable credentials, side by side in one run.

    python benchmarks/bench_cache.py [--concurrency 10000] [--fetch-ms 10]

Measures:

1. the cost of reading credentials that are valid: ``cache.current`` and
   ``await cache.get()`` against ``await AioRefreshableCredentials.get_frozen_credentials()``
   (median nanoseconds per call over batches, and the ratio);
2. N concurrent readers at cold start and at expiry (the process "thawed" after
   the expiry, so no timer ran): how many fetches reach the source (must be 1),
   with aiobotocore's ``AioSession.get_credentials()`` (cold) and
   ``get_frozen_credentials()`` (expiry) for contrast;
3. the reader that started the refresh is cancelled mid-fetch: fetch count.

The source is a fake that sleeps ``--fetch-ms`` and returns a fresh set: this
measures the caches, not any endpoint. Not a test: prints a table, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from aiobotocore.credentials import AioCredentialResolver
from aiobotocore.session import AioSession
from dateutil.tz import tzlocal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The measuring pieces live in the package, shared with ``python -m pool bench``.
from pool.cache import CredentialCache
from pool.cli.bench.hot_path import (
    BATCH,
    BATCHES,
    TTL,
    AioBotoFetcher,
    BenchSource,
    median_ns_async,
    median_ns_sync,
    refreshable,
)


class ShiftedClock:
    """The system clock plus an offset: jump ahead as a thawed Lambda sandbox would.

    A ``pool._internal.clock.Clock``: the cache reads its deadlines and sleeps on it.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


# -- 1. reading valid credentials --------------------------------------------


async def bench_reads() -> list[tuple[str, str, str]]:
    async with CredentialCache(BenchSource(0.0)) as cache:
        await cache.get()
        current_ns = median_ns_sync(lambda: cache.current)
        get_ns = await median_ns_async(cache.get)
    boto = refreshable(AioBotoFetcher(0.0))
    boto_ns = await median_ns_async(boto.get_frozen_credentials)
    return [
        ("cache.current", f"{current_ns:,.0f} ns", f"{boto_ns / current_ns:,.1f}x faster"),
        ("await cache.get()", f"{get_ns:,.0f} ns", f"{boto_ns / get_ns:,.1f}x faster"),
        ("aiobotocore get_frozen_credentials()", f"{boto_ns:,.0f} ns", "1.0x"),
    ]


# -- 2. concurrency at cold start and at expiry -----------------------------------


async def crowd(n: int, fn: Callable[[], Awaitable[object]]) -> float:
    """Run ``n`` concurrent calls of ``fn``; return the wall time in ms until all returned."""
    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(fn())
    return (time.perf_counter() - start) * 1000


def row(label: str, fetches: int, ms: float | None = None) -> tuple[str, str, str]:
    return (
        label,
        f"{fetches} fetch" + ("" if fetches == 1 else "es"),
        f"{ms:,.0f} ms" if ms else "",
    )


async def bench_concurrency(n: int, delay: float) -> list[tuple[str, str, str]]:
    rows = []
    source = BenchSource(delay)
    clock = ShiftedClock()
    async with CredentialCache(source, clock=clock) as cache:
        ms = await crowd(n, cache.get)
        rows.append(row(f"{n:,} x cache.get(), cold start", source.fetches, ms))
        clock.offset += TTL + 1  # frozen past expiry: the refresh timer never ran
        before = source.fetches
        ms = await crowd(n, cache.get)
        rows.append(row(f"{n:,} x cache.get(), at expiry", source.fetches - before, ms))

    provider = AioBotoFetcher(delay)
    session = AioSession()
    session.register_component("credential_provider", AioCredentialResolver(providers=[provider]))
    ms = await crowd(n, session.get_credentials)
    rows.append(row(f"{n:,} x AioSession.get_credentials(), cold", provider.calls, ms))

    offset = timedelta()
    fetcher = AioBotoFetcher(delay, shift=lambda: offset)
    boto = refreshable(fetcher, time_fetcher=lambda: datetime.now(tzlocal()) + offset)
    offset = timedelta(seconds=TTL + 1)
    ms = await crowd(n, boto.get_frozen_credentials)
    rows.append(row(f"{n:,} x aiobotocore get_frozen_credentials(), at expiry", fetcher.calls, ms))
    return rows


# -- 3. the refreshing caller is cancelled ------------------------------------------


async def cancel_first_then_crowd(
    fn: Callable[[], Awaitable[object]], fetched: Callable[[], int], others: int
) -> int:
    """Start one caller, cancel it once its fetch began, with ``others`` callers waiting."""
    start = fetched()
    first = asyncio.ensure_future(fn())
    while fetched() == start:
        await asyncio.sleep(0)
    async with asyncio.TaskGroup() as tg:
        for _ in range(others):
            tg.create_task(fn())
        await asyncio.sleep(0)
        first.cancel()
    try:
        await first
    except asyncio.CancelledError:
        pass
    return fetched() - start


async def bench_cancellation(delay: float) -> list[tuple[str, str, str]]:
    source = BenchSource(delay)
    clock = ShiftedClock()
    async with CredentialCache(source, clock=clock) as cache:
        await cache.get()
        clock.offset += TTL + 1
        ours = await cancel_first_then_crowd(cache.get, lambda: source.fetches, 100)
    offset = timedelta()
    fetcher = AioBotoFetcher(delay, shift=lambda: offset)
    boto = refreshable(fetcher, time_fetcher=lambda: datetime.now(tzlocal()) + offset)
    offset = timedelta(seconds=TTL + 1)
    theirs = await cancel_first_then_crowd(boto.get_frozen_credentials, lambda: fetcher.calls, 100)
    return [
        row("first caller cancelled mid-refresh: cache.get()", ours),
        row("... aiobotocore get_frozen_credentials()", theirs),
    ]


def table(title: str, rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [title, "-" * len(title)]
    lines += [f"  {a:<{width}}  {b:>14}  {c}" for a, b, c in rows]
    return "\n".join(lines)


async def main(n: int, delay: float) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    gc.collect()
    print(table("Reading valid credentials (median per call)", await bench_reads()))
    print()
    title = f"Concurrent readers (source takes {delay * 1000:.0f} ms): fetches and wall time"
    print(table(title, await bench_concurrency(n, delay)))
    print()
    print(table("Cancellation of the refreshing caller", await bench_cancellation(delay)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--concurrency", type=int, default=10_000)
    parser.add_argument("--fetch-ms", type=float, default=10.0)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, one asyncio loop, {BATCHES} batches of {BATCH}\n")
    asyncio.run(main(args.concurrency, args.fetch_ms / 1000))
