"""finish(): cleanup runs to its end under asyncio.timeout, task.cancel() and anyio scopes alike."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from pool._internal.shield import finish, pending_cleanups


class _Cleanup:
    """A cleanup that blocks until released, recording that it started and finished."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.finished = False
        self.error = error

    async def __call__(self) -> str:
        self.started.set()
        await self.release.wait()
        self.finished = True
        if self.error is not None:
            raise self.error
        return "done"


async def _cancel_mid_cleanup(cleanup: _Cleanup, caller: asyncio.Future[object]) -> None:
    await cleanup.started.wait()
    caller.cancel()
    for _ in range(3):
        await asyncio.sleep(0)
    assert not caller.done(), "finish() returned before its cleanup ended"
    cleanup.release.set()


async def test_returns_the_cleanups_result() -> None:
    """Without cancellation finish() is a plain await of the cleanup."""
    cleanup = _Cleanup()
    cleanup.release.set()
    assert await finish(cleanup()) == "done"
    assert cleanup.finished


async def test_asyncio_timeout_gives_timeout_error_after_the_cleanup_ran() -> None:
    """An expired asyncio.timeout() surfaces as TimeoutError, only once the cleanup has finished."""
    cleanup = _Cleanup()
    deadlines: list[asyncio.Timeout] = []

    async def expire_mid_cleanup() -> None:
        await cleanup.started.wait()
        deadlines[0].reschedule(asyncio.get_running_loop().time())  # the deadline passes now
        for _ in range(3):
            await asyncio.sleep(0)
        assert not cleanup.finished
        cleanup.release.set()

    helper = asyncio.ensure_future(expire_mid_cleanup())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(None) as deadline:
            deadlines.append(deadline)
            await finish(cleanup())
    assert cleanup.finished
    await helper


async def test_task_cancel_gives_cancelled_error_after_the_cleanup_ran() -> None:
    """task.cancel() on the caller: CancelledError, raised only once the cleanup has finished."""
    cleanup = _Cleanup()
    caller = asyncio.ensure_future(finish(cleanup()))
    await _cancel_mid_cleanup(cleanup, caller)
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert cleanup.finished
    await asyncio.sleep(0)
    assert pending_cleanups() == 0


async def test_anyio_move_on_after_is_honoured_after_the_cleanup_ran() -> None:
    """anyio.move_on_after around finish(): the scope catches its cancellation after the cleanup."""
    cleanup = _Cleanup()

    async def release_later() -> None:
        await cleanup.started.wait()
        await anyio.sleep(0.1)  # past the 0.01 s scope deadline: the scope fires first
        cleanup.release.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(release_later)
        with anyio.move_on_after(0.01) as scope:
            await finish(cleanup())
    assert scope.cancelled_caught
    assert cleanup.finished


async def test_cleanup_error_propagates() -> None:
    """An error raised by the cleanup reaches the caller unchanged."""
    cleanup = _Cleanup(error=OSError("socket close failed"))
    cleanup.release.set()
    with pytest.raises(OSError, match="socket close failed"):
        await finish(cleanup())


async def test_cleanup_error_after_cancellation_is_kept_as_the_cause() -> None:
    """Cancelled caller and failed cleanup: CancelledError is raised, the error chained to it."""
    cleanup = _Cleanup(error=OSError("socket close failed"))
    caller = asyncio.ensure_future(finish(cleanup()))
    await _cancel_mid_cleanup(cleanup, caller)
    with pytest.raises(asyncio.CancelledError) as info:
        await caller
    assert isinstance(info.value.__cause__, OSError)


async def test_names_the_cleanup_task() -> None:
    """The cleanup's task carries the given name (it shows in task dumps)."""
    names: list[str] = []

    async def cleanup() -> None:
        task = asyncio.current_task()
        assert task is not None
        names.append(task.get_name())

    await finish(cleanup(), name="close-thing")
    assert names == ["close-thing"]


async def test_anyio_cancellation_is_not_redelivered_while_the_cleanup_runs() -> None:
    """An anyio-cancelled caller waits quietly: anyio does not re-cancel it every loop turn.

    anyio (4.16, ``CancelScope._deliver_cancellation``) retries delivery on
    every loop iteration while a task stays inside a cancelled scope; without
    an anyio shield around the wait, finish() would busy-loop for the whole
    cleanup. settle() returns only once no callback is pending.
    """
    from tests.fakes import settle

    cleanup = _Cleanup()
    scopes: list[anyio.CancelScope] = []

    async def caller() -> bool:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await finish(cleanup())
        return scope.cancelled_caught

    task = asyncio.ensure_future(caller())
    await cleanup.started.wait()
    scopes[0].cancel()
    await settle()  # raises "something is spinning" if the caller is woken again and again
    assert not task.done()
    cleanup.release.set()
    assert await task is True  # the scope still sees its cancellation, after the cleanup
    assert cleanup.finished
