"""Exactly one fetch in flight, owned by the cache: cancelled callers never cancel it."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from tests.cache.cache_fakes import FakeClock, FakeSource, settle

N = 200  # the benchmark runs 10,000; debug-mode asyncio makes tasks costly here


async def _gather_gets(cache: CredentialCache, n: int, results: list[Credentials]) -> None:
    async def one() -> None:
        results.append(await cache.get())

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)


async def test_concurrent_gets_at_cold_start_cause_one_fetch(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Many concurrent get() before the first fetch completes share a single fetch."""
    source.gate = anyio.Event()
    results: list[Credentials] = []
    async with make_cache(source) as cache, anyio.create_task_group() as tg:
        tg.start_soon(_gather_gets, cache, N, results)
        await settle()
        assert source.fetches == 1
        source.gate.set()
    assert len(results) == N
    assert {c.access_key_id for c in results} == {"ASIAFAKE00000001"}
    assert source.fetches == 1


async def test_concurrent_gets_at_expiry_cause_one_fetch(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """When the set has expired (timer never ran), concurrent get() share one refetch."""
    clock.advance(3601, fire=False)
    source.gate = anyio.Event()
    results: list[Credentials] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_gather_gets, cache, N, results)
        await settle()
        assert source.fetches == 2
        source.gate.set()
    assert {c.access_key_id for c in results} == {"ASIAFAKE00000002"}
    assert source.fetches == 2


async def test_cancelled_waiter_does_not_cancel_the_shared_fetch(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Cancel one waiter mid-fetch: the others still get the result, and fetches == 1."""
    source.gate = anyio.Event()
    results: list[Credentials] = []
    async with make_cache(source) as cache, anyio.create_task_group() as tg:
        victim = anyio.CancelScope()

        async def cancelled_waiter() -> None:
            with victim:
                await cache.get()
            results.append(None)  # type: ignore[arg-type]  # reached only via cancellation

        tg.start_soon(cancelled_waiter)
        tg.start_soon(_gather_gets, cache, 10, results)
        await settle()
        victim.cancel()
        await settle()
        assert victim.cancelled_caught
        source.gate.set()
    assert results.count(None) == 1
    assert [c.access_key_id for c in results if c is not None] == ["ASIAFAKE00000001"] * 10
    assert source.fetches == 1
    assert source.completed == 1


async def test_fetch_completes_even_when_every_waiter_gave_up(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """All callers time out: the fetch still completes and the next get() needs no fetch."""
    source.gate = anyio.Event()
    async with make_cache(source) as cache:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(cache.get)
            await settle()
            tg.cancel_scope.cancel()
        assert source.completed == 0
        source.gate.set()
        await settle()
        assert source.completed == 1
        assert (await cache.get()).access_key_id == "ASIAFAKE00000001"
        assert source.fetches == 1


async def test_refresh_joins_the_fetch_in_flight(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """refresh() while a fetch is in flight joins it instead of starting another."""
    source.gate = anyio.Event()
    got: list[Credentials] = []
    async with make_cache(source) as cache, anyio.create_task_group() as tg:

        async def refresher() -> None:
            got.append(await cache.refresh())

        for _ in range(5):
            tg.start_soon(refresher)
        tg.start_soon(_gather_gets, cache, 5, got)
        await settle()
        source.gate.set()
    assert source.fetches == 1
    assert {c.access_key_id for c in got} == {"ASIAFAKE00000001"}


async def test_refresh_forces_a_new_fetch(cache: CredentialCache, source: FakeSource) -> None:
    """refresh() with valid credentials fetches now and returns the new set."""
    new = await cache.refresh()
    assert new.access_key_id == "ASIAFAKE00000002"
    assert cache.current is new
    assert source.fetches == 2


@pytest.mark.parametrize("n_waiters", [1, 50])
async def test_waiters_are_released_by_close(
    make_cache: Callable[..., CredentialCache], source: FakeSource, n_waiters: int
) -> None:
    """Closing the cache during a fetch wakes every waiter with PoolClosedError."""
    from pool.errors import PoolClosedError

    source.gate = anyio.Event()
    outcomes: list[BaseException] = []
    cache = make_cache(source)
    await cache.__aenter__()

    async def waiter() -> None:
        try:
            await cache.get()
        except PoolClosedError as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(n_waiters):
            tg.start_soon(waiter)
        await settle()
        await cache.aclose()
    assert len(outcomes) == n_waiters
