"""Start, close and clean-up: one task, closed from anywhere, nothing left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from pool.errors import CredentialsExpiredError, InvariantError, PoolClosedError
from tests.cache.cache_fakes import FakeSource, cache_task, settle


def _other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_close_leaves_no_task_behind(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """After aclose() the cache's task and its listener tasks are finished."""
    before = _other_tasks()

    async def slow_listener(creds: Credentials) -> None:
        await anyio.sleep_forever()

    async with make_cache(source) as cache:
        cache.add_listener(slow_listener)
        await cache.get()
        await cache.refresh()
        await settle()
        assert len(_other_tasks() - before) == 2  # the cache's task and the listener's
    assert _other_tasks() - before == set()


async def test_aclose_is_idempotent_and_then_everything_says_closed(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A second aclose() is a no-op; get/refresh/current raise PoolClosedError."""
    cache = make_cache(source)
    async with cache:
        await cache.get()
    await cache.aclose()
    with pytest.raises(PoolClosedError):
        await cache.get()
    with pytest.raises(PoolClosedError):
        await cache.refresh()
    with pytest.raises(PoolClosedError):
        _ = cache.current
    with pytest.raises(PoolClosedError):
        await cache.__aenter__()
    assert cache.status()["state"] == "closed"


async def test_close_from_another_task_than_the_one_that_entered(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A cache entered in one task can be closed from another (no task-group affinity)."""
    cache = make_cache(source)
    await cache.__aenter__()
    await cache.get()
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.__aexit__, None, None, None)
    assert cache.status()["state"] == "closed"
    assert all("CredentialCache" not in t.get_name() for t in _other_tasks())


async def test_cancelled_closer_still_closes(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """aclose() is shielded: cancelling its caller mid-close still ends the cache's task."""
    source.gate = anyio.Event()
    cache = make_cache(source)
    await cache.__aenter__()
    await settle()  # the fetch hangs on the gate
    with anyio.CancelScope() as scope:
        scope.cancel()
        await cache.aclose()
    assert cache.status()["state"] == "closed"
    assert all("CredentialCache" not in t.get_name() for t in _other_tasks())


async def test_concurrent_closers_both_return_after_close(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Two tasks closing at once both return only once the cache is fully closed."""
    cache = make_cache(source)
    await cache.__aenter__()
    await cache.get()
    async with anyio.create_task_group() as tg:
        tg.start_soon(cache.aclose)
        tg.start_soon(cache.aclose)
    assert source.closed == 0  # not owned: left open


async def test_owned_source_is_closed_with_the_cache(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """owns_source=True closes the source exactly once, even on a double close."""
    cache = make_cache(source, owns_source=True)
    async with cache:
        await cache.get()
    await cache.aclose()
    assert source.closed == 1


async def test_get_without_async_with_starts_the_task(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """get() on a cache never entered starts its task (aclose() is still required)."""
    cache = make_cache(source)
    try:
        assert (await cache.get()).access_key_id == "ASIAFAKE00000001"
        assert cache.status()["state"] == "valid"
    finally:
        await cache.aclose()


async def test_close_before_the_task_ever_ran(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Entering and closing at once (the task never ran) leaves nothing pending."""
    before = _other_tasks()
    async with make_cache(source):
        pass
    assert _other_tasks() - before == set()
    assert source.fetches == 0


async def test_a_crash_of_the_task_fails_waiters_instead_of_hanging(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A bug inside the cache's task surfaces as InvariantError, never as a hang."""
    cache = make_cache(source)

    def broken(creds: object, now: float) -> None:
        raise KeyError("bug")

    async with cache:
        await cache.get()
        cache._machine._accept = broken  # type: ignore[assignment,method-assign]
        with pytest.raises(InvariantError, match="crashed"):
            await cache.refresh()
        with pytest.raises(InvariantError):
            await cache.refresh()


async def test_current_after_close_of_a_never_fetched_cache(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A cache closed before any fetch answers ``current`` with PoolClosedError, not expiry."""
    cache = make_cache(source)
    with pytest.raises(CredentialsExpiredError):
        _ = cache.current
    await cache.aclose()
    with pytest.raises(PoolClosedError):
        _ = cache.current


async def test_unclosed_cache_warns_when_collected(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A cache whose task died without aclose() emits a ResourceWarning when collected."""
    import gc

    cache = make_cache(source)
    await cache.get()
    task = cache_task()
    task.cancel()  # what loop shutdown does to a forgotten cache
    await asyncio.wait([task])
    del task
    with pytest.warns(ResourceWarning, match="never closed"):
        del cache
        gc.collect()


async def test_async_listener_may_close_the_cache(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """An async listener that closes the cache does not deadlock on its own task."""
    closed = anyio.Event()
    cache = make_cache(source)
    before = _other_tasks()

    async def close_on_rotation(creds: Credentials) -> None:
        await cache.aclose()
        closed.set()

    async with cache:
        cache.add_listener(close_on_rotation)
        await cache.get()
        with anyio.fail_after(5):
            await closed.wait()
    assert cache.status()["state"] == "closed"
    await settle()
    assert _other_tasks() - before == set()  # the listener's own task ended too
