"""However a fetch or the cache's task ends, no waiter hangs and status() tells the truth."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, InvariantError, PoolClosedError
from tests.cache.cache_fakes import FakeClock, FakeSource, cache_task, settle


class _Waiter:
    """Runs one awaitable in the background and records how it ended."""

    def __init__(self, tg: anyio.abc.TaskGroup, call: Callable[[], Awaitable[Credentials]]):
        self.done = False
        self.result: Credentials | None = None
        self.error: BaseException | None = None
        tg.start_soon(self._run, call)

    async def _run(self, call: Callable[[], Awaitable[Credentials]]) -> None:
        try:
            self.result = await call()
        except Exception as exc:
            self.error = exc
        self.done = True


async def _ended(waiter: _Waiter, tg: anyio.abc.TaskGroup) -> _Waiter:
    """Let every task run until blocked; a waiter still waiting then would hang forever."""
    await settle()
    if not waiter.done:
        tg.cancel_scope.cancel()
        pytest.fail("the waiter is still waiting although nothing will wake it")
    return waiter


async def test_stray_cancelled_error_at_cold_start_is_a_retryable_failure(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """A CancelledError the source raises by itself fails the fetch (retryable); nobody hangs."""
    source = FakeSource()
    source.script.append(asyncio.CancelledError())
    async with make_cache(source) as cache, anyio.create_task_group() as tg:
        waiter = await _ended(_Waiter(tg, cache.get), tg)
        assert isinstance(waiter.error, CredentialFetchError)
        assert waiter.error.retryable is True
        assert "CancelledError" in str(waiter.error)
        assert isinstance(waiter.error.__cause__, asyncio.CancelledError)
        assert cache.status()["state"] == "failed"
        assert clock.next_timer is not None and clock.next_timer - clock.now <= 1.0
        await clock.run_until(clock.next_timer)  # the task lives on and retries
        assert (await cache.get()).access_key_id == "ASIAFAKE00000002"
        assert cache.status()["state"] == "valid"


async def test_stray_cancelled_error_during_refresh_keeps_serving(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """A background refresh ending in a stray CancelledError keeps the valid set and retries."""
    first = cache.current
    source.script.append(asyncio.CancelledError())
    assert clock.next_timer is not None
    await clock.run_until(clock.next_timer)
    assert source.fetches == 2
    status = cache.status()
    assert status["state"] == "retrying"
    assert status["last_error"]["retryable"] is True
    assert await cache.get() is first
    assert clock.next_timer is not None
    await clock.run_until(clock.next_timer)
    assert cache.current.access_key_id == "ASIAFAKE00000003"


async def test_task_cancelled_without_aclose_wakes_waiters_with_invariant_error(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """If the cache's task is cancelled from outside mid-fetch, waiters get InvariantError."""
    source.gate = anyio.Event()
    cache = make_cache(source)
    async with cache, anyio.create_task_group() as tg:
        waiter = _Waiter(tg, cache.get)
        await settle()  # the fetch hangs on the gate
        cache_task().cancel()  # what a stray task.cancel() or loop shutdown does
        await _ended(waiter, tg)
        assert isinstance(waiter.error, InvariantError)
        assert "without aclose" in str(waiter.error)
        assert cache.status()["state"] == "crashed"
        with pytest.raises(InvariantError):
            await cache.get()
        with pytest.raises(InvariantError):
            await cache.refresh()
    assert cache.status()["state"] == "closed"  # aclose() still works afterwards


async def test_aclose_during_a_fetch_wakes_waiters_with_pool_closed(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Closing the cache while a fetch hangs wakes its waiters with PoolClosedError."""
    source.gate = anyio.Event()
    cache = make_cache(source)
    async with anyio.create_task_group() as tg:
        await cache.__aenter__()
        waiter = _Waiter(tg, cache.get)
        await settle()
        await cache.aclose()
        await _ended(waiter, tg)
    assert isinstance(waiter.error, PoolClosedError)
    assert cache.status()["state"] == "closed"


async def test_stray_cancelled_error_after_a_woken_sleep_is_still_a_failed_fetch(
    cache: CredentialCache, source: FakeSource
) -> None:
    """Waking the sleeping task (refresh()) leaves no pending cancel that misreads a stray one."""
    first = cache.current
    source.script.append(asyncio.CancelledError())
    with pytest.raises(CredentialFetchError, match="CancelledError"):
        await cache.refresh()  # wakes the task out of its sleep, then the source misbehaves
    assert cache.status()["state"] == "valid"  # an early forced refresh keeps the schedule
    assert await cache.refresh() is not first  # the task is alive and fetches again
