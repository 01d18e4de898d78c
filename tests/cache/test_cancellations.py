"""Closing a cache under every kind of cancellation: asyncio.timeout, task.cancel(), anyio scopes.

anyio's ``CancelScope(shield=True)`` stops only anyio's own cancellation; on
asyncio a native ``task.cancel()`` or an enclosing ``asyncio.timeout()`` used to
cut ``aclose()`` half-way, leaving the owned source open, and a second
``aclose()`` returned at once although nothing was closed yet.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from tests.cache.cache_fakes import make_creds

CLOSE_TAKES = 0.2  # the source's aclose(): four times the caller's deadline below
DEADLINE = 0.05


class SlowClosingSource:
    """A source whose aclose() takes CLOSE_TAKES seconds; counts closes begun and finished."""

    name = "slow-close"

    def __init__(self) -> None:
        self.close_started = asyncio.Event()
        self.closes_begun = 0
        self.closes_done = 0

    async def fetch(self) -> Credentials:
        return make_creds(1)

    async def aclose(self) -> None:
        self.closes_begun += 1
        self.close_started.set()
        await asyncio.sleep(CLOSE_TAKES)
        self.closes_done += 1


async def _open_cache(source: SlowClosingSource) -> CredentialCache:
    cache = CredentialCache(source, owns_source=True)
    await cache.start()
    await cache.get()
    return cache


async def test_aclose_under_asyncio_timeout_still_closes_the_source() -> None:
    """A deadline that expires mid-close raises TimeoutError only after the source was closed."""
    source = SlowClosingSource()
    cache = await _open_cache(source)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(DEADLINE):
            await cache.aclose()
    assert source.closes_done == 1
    assert cache.status()["state"] == "closed"


async def test_second_aclose_waits_for_the_first_to_finish() -> None:
    """A second aclose() during a slow first one returns only once the source is closed."""
    source = SlowClosingSource()
    cache = await _open_cache(source)

    async def first() -> None:
        async with asyncio.timeout(DEADLINE):
            await cache.aclose()

    first_task = asyncio.ensure_future(first())
    await source.close_started.wait()
    await cache.aclose()
    assert source.closes_done == 1
    with pytest.raises(TimeoutError):
        await first_task
    assert source.closes_begun == 1


async def test_aclose_under_native_task_cancel_still_closes_the_source() -> None:
    """task.cancel() on the closer mid-close: CancelledError after the source was closed."""
    source = SlowClosingSource()
    cache = await _open_cache(source)
    closer = asyncio.ensure_future(cache.aclose())
    await source.close_started.wait()
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert source.closes_done == 1
    await cache.aclose()  # idempotent: returns at once, closes nothing twice
    assert source.closes_begun == 1


async def test_aclose_under_anyio_cancel_scope_still_closes_the_source() -> None:
    """anyio's move_on_after around aclose(): the scope is left after the source was closed."""
    source = SlowClosingSource()
    cache = await _open_cache(source)
    with anyio.move_on_after(DEADLINE) as scope:
        await cache.aclose()
    assert scope.cancelled_caught
    assert source.closes_done == 1


async def test_cancelled_closer_leaves_no_cleanup_running() -> None:
    """Once a cancelled aclose() has returned, no cleanup of it is still running."""
    from pool._internal.shield import pending_cleanups

    source = SlowClosingSource()
    cache = await _open_cache(source)
    before = pending_cleanups()
    closer = asyncio.ensure_future(cache.aclose())
    await source.close_started.wait()
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    await asyncio.sleep(0)  # the done-callbacks that forget the cleanup task
    assert pending_cleanups() == before
