"""The lifetime rule: start() means started, lazy start by get()/refresh(), warnings when leaked."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable

import pytest

from pool.cache import CredentialCache
from pool.errors import CredentialsExpiredError, PoolClosedError
from tests.cache.cache_fakes import FakeClock, FakeSource, cache_task, settle


def _cache_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("CredentialCache(")]


async def test_start_starts_the_task_and_the_first_fetch(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """await cache.start() (no async with, no get) starts the task; the first fetch runs."""
    cache = make_cache(source)
    try:
        await cache.start()
        assert len(_cache_tasks()) == 1
        await settle()
        assert source.fetches == 1
        assert cache.status()["state"] == "valid"
    finally:
        await cache.aclose()


async def test_start_is_idempotent(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A second start() (or entering after start()) creates no second task and no second fetch."""
    cache = make_cache(source)
    await cache.start()
    await cache.start()
    async with cache:
        await settle()
        assert len(_cache_tasks()) == 1
        assert source.fetches == 1


async def test_start_after_aclose_raises(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """start() on a closed cache raises PoolClosedError naming the fix."""
    cache = make_cache(source)
    await cache.aclose()
    with pytest.raises(PoolClosedError, match="create a new one"):
        await cache.start()
    assert _cache_tasks() == []


async def test_refresh_before_start_starts_the_cache(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """refresh() on a cache never started starts it (the documented lazy rule), one fetch."""
    cache = make_cache(source)
    try:
        creds = await cache.refresh()
        assert creds.access_key_id == "ASIAFAKE00000001"
        assert source.fetches == 1 and len(_cache_tasks()) == 1
    finally:
        await cache.aclose()


async def test_reading_calls_never_start_the_cache(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """current, subscribe(), add_listener(), invalidate() and status() leave a cache idle."""
    cache = make_cache(source)
    with pytest.raises(CredentialsExpiredError, match=r"not started.*await cache\.start\(\)"):
        _ = cache.current
    cache.subscribe()
    cache.add_listener(lambda creds: None)
    cache.invalidate()
    await settle()
    assert cache.status()["state"] == "idle"
    assert _cache_tasks() == [] and source.fetches == 0
    await cache.aclose()


async def test_aclose_of_a_never_started_cache_closes_an_owned_source(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A cache closed before it ever started fetches nothing and still closes what it owns."""
    cache = make_cache(source, owns_source=True)
    await cache.aclose()
    await cache.aclose()
    assert source.fetches == 0 and source.closed == 1
    assert cache.status()["state"] == "closed"


async def test_started_cache_collected_unclosed_warns(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A cache started and dropped without aclose() emits a ResourceWarning when collected."""
    cache = make_cache(source)
    await cache.start()
    await settle()
    task = cache_task()
    try:
        with pytest.warns(ResourceWarning, match="started and never closed"):
            del cache
            gc.collect()
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_idle_or_closed_cache_collected_does_not_warn(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Only a started, unclosed cache warns: a never-started or a closed one is silent."""
    idle = make_cache(source)
    closed = make_cache(FakeSource())
    async with closed:
        await closed.get()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del idle, closed
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_old_clock_and_sleep_keywords_still_work_with_a_deprecation_warning(
    clock: FakeClock,
) -> None:
    """clock=<callable>, sleep=... (before the Clock protocol) works for one release, and warns."""
    source = FakeSource()
    with pytest.warns(DeprecationWarning, match="pass one pool._internal.clock.Clock"):
        cache = CredentialCache(source, clock=lambda: clock.now, sleep=clock.sleep)
    async with cache:
        await cache.get()
        assert clock.next_timer is not None  # it sleeps on the fake clock it was given
        await clock.run_until(clock.next_timer)
        assert source.fetches == 2
    assert cache._clock.time() == pytest.approx(time.time(), abs=60)
