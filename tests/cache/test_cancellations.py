"""Closing a cache under every kind of cancellation: asyncio.timeout, task.cancel(), anyio scopes.

anyio's ``CancelScope(shield=True)`` stops only anyio's own cancellation; on
asyncio a native ``task.cancel()`` or an enclosing ``asyncio.timeout()`` used to
cut ``aclose()`` half-way, leaving the owned source open, and a second
``aclose()`` returned at once although nothing was closed yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from tests.cache.cache_fakes import make_creds, settle

CLOSE_TAKES = 0.2  # the reproduction: a 200 ms source close ...
DEADLINE = 0.05  # ... under a 50 ms deadline


class SlowClosingSource:
    """A source whose aclose() takes CLOSE_TAKES seconds, or until ``release`` is set.

    Counts closes begun and finished.
    """

    name = "slow-close"

    def __init__(self, *, gated: bool = False) -> None:
        self.close_started = asyncio.Event()
        self.release = asyncio.Event() if gated else None
        self.closes_begun = 0
        self.closes_done = 0

    async def fetch(self) -> Credentials:
        return make_creds(1)

    async def aclose(self) -> None:
        self.closes_begun += 1
        self.close_started.set()
        if self.release is None:
            await asyncio.sleep(CLOSE_TAKES)
        else:
            await self.release.wait()
        self.closes_done += 1


async def _open_cache(source: SlowClosingSource) -> CredentialCache:
    cache = CredentialCache(source, owns_source=True)
    await cache.start()
    await cache.get()
    return cache


async def _release_after_cancel(
    source: SlowClosingSource, cancel: Callable[[], object], closer: asyncio.Future[object]
) -> None:
    """Once the source's close began: cancel the closer, check it keeps waiting, then release."""
    await source.close_started.wait()
    cancel()
    await settle()
    assert not closer.done(), "aclose() returned while the source was still closing"
    assert source.release is not None
    source.release.set()


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
    """A second aclose() during a cancelled first one returns only once the source is closed."""
    source = SlowClosingSource(gated=True)
    cache = await _open_cache(source)
    first = asyncio.ensure_future(cache.aclose())
    await source.close_started.wait()
    first.cancel()
    second = asyncio.ensure_future(cache.aclose())
    await settle()
    assert not second.done()
    source.release.set()  # type: ignore[union-attr]
    await second
    assert source.closes_done == 1 and source.closes_begun == 1
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_aclose_under_native_task_cancel_still_closes_the_source() -> None:
    """task.cancel() on the closer mid-close: CancelledError after the source was closed."""
    source = SlowClosingSource(gated=True)
    cache = await _open_cache(source)
    closer = asyncio.ensure_future(cache.aclose())
    helper = asyncio.ensure_future(_release_after_cancel(source, closer.cancel, closer))
    with pytest.raises(asyncio.CancelledError):
        await closer
    await helper
    assert source.closes_done == 1
    await cache.aclose()  # idempotent: returns at once, closes nothing twice
    assert source.closes_begun == 1


async def test_aclose_under_anyio_cancel_scope_still_closes_the_source() -> None:
    """An anyio scope cancelled mid-close is left only after the source was closed."""
    source = SlowClosingSource(gated=True)
    cache = await _open_cache(source)

    async def close_in_scope() -> anyio.CancelScope:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await cache.aclose()
        return scope

    scopes: list[anyio.CancelScope] = []
    closer = asyncio.ensure_future(close_in_scope())
    await settle()
    await _release_after_cancel(source, scopes[0].cancel, closer)
    assert (await closer).cancelled_caught
    assert source.closes_done == 1


async def test_cancelled_closer_leaves_no_cleanup_running() -> None:
    """Once a cancelled aclose() has returned, no cleanup of it is still running."""
    from pool._internal.shield import pending_cleanups

    source = SlowClosingSource(gated=True)
    cache = await _open_cache(source)
    before = pending_cleanups()
    closer = asyncio.ensure_future(cache.aclose())
    helper = asyncio.ensure_future(_release_after_cancel(source, closer.cancel, closer))
    with pytest.raises(asyncio.CancelledError):
        await closer
    await helper
    await settle()  # the done-callbacks that forget the cleanup task
    assert pending_cleanups() == before
