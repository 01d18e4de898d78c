"""AsyncResource's close rule: once, to its end under cancellation, later callers wait."""

from __future__ import annotations

import asyncio

import pytest

from pool._internal.resource import AsyncResource
from tests.fakes import settle


class _Thing(AsyncResource):
    """Counts releases; its release blocks until ``gate`` is set and may close itself again."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.releases = 0
        self.finished = 0
        self.reenter = False

    async def aclose(self) -> None:
        await self._close_once(self._release)

    async def _release(self) -> None:
        self.releases += 1
        self.started.set()
        if self.reenter:
            await self.aclose()  # from inside the cleanup: must not wait on itself
        await self.gate.wait()
        self.finished += 1


async def test_release_runs_once_and_later_callers_wait_for_it() -> None:
    """Three concurrent aclose() calls: one release; all return only once it finished."""
    thing = _Thing()
    closers = [asyncio.ensure_future(thing.aclose()) for _ in range(3)]
    await settle()
    assert thing.releases == 1 and not any(c.done() for c in closers)
    thing.gate.set()
    await asyncio.gather(*closers)
    assert thing.finished == 1
    await thing.aclose()  # after the end: returns at once
    assert thing.releases == 1


async def test_cancelled_first_closer_does_not_cut_the_release() -> None:
    """task.cancel() on the first closer: the release still finishes, then CancelledError."""
    thing = _Thing()
    first = asyncio.ensure_future(thing.aclose())
    await thing.started.wait()
    first.cancel()
    await settle()
    assert not first.done()
    thing.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert thing.finished == 1


async def test_aclose_from_inside_the_release_returns_at_once() -> None:
    """A release that (indirectly) calls aclose() again does not deadlock on itself."""
    thing = _Thing()
    thing.reenter = True
    thing.gate.set()
    async with asyncio.timeout(5):
        await thing.aclose()
    assert thing.releases == 1 and thing.finished == 1


async def test_async_with_calls_start_then_aclose() -> None:
    """async with: start() on entry (a no-op by default), aclose() on exit."""
    thing = _Thing()
    thing.gate.set()
    async with thing as entered:
        assert entered is thing
    assert thing.finished == 1
