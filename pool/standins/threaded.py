"""Run an async stand-in group on a background thread with its own event loop.

Blocking clients (boto3, PyMongo's own MONGODB-AWS credential lookup, which
fetches synchronously even inside the async driver) would deadlock against a
stand-in served by the very loop they block. :class:`ThreadedStandIns` starts
any async context manager (``AwsStandIns``, the MongoDB stand-in, a group of
both) on a private loop in a daemon thread and stops it cleanly.

Usable as a sync (``with``) or async (``async with``) context manager; the
async form starts and stops the thread off the caller's loop. Objects of the
group live on the background loop: call their thread-safe methods directly
(the authority, the fault injector), and run their coroutines with
:meth:`ThreadedStandIns.call` / :meth:`ThreadedStandIns.acall`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio.to_thread

__all__ = ["ThreadedStandIns", "run_in_thread"]

T = TypeVar("T", bound=AbstractAsyncContextManager[Any])
R = TypeVar("R")

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class ThreadedStandIns(Generic[T]):
    """Runs ``factory()`` (an async context manager) on a background loop.

    ``factory`` is called on the background loop, so everything it creates
    binds to that loop. :meth:`start` blocks until the group is entered (or
    re-raises its startup error); :meth:`stop` exits it and joins the thread.
    Both are idempotent.
    """

    def __init__(self, factory: Callable[[], T], *, name: str = "standins") -> None:
        self._factory = factory
        self._name = name
        self._value: T | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def value(self) -> T:
        """The running group: the object ``factory()`` returned."""
        if self._value is None:
            raise RuntimeError("ThreadedStandIns is not started; call start() first")
        return self._value

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("ThreadedStandIns is not started; call start() first")
        return self._loop

    def start(self) -> T:
        """Start the thread and enter the group; blocks until ready. Returns the group."""
        if self._thread is not None:
            return self.value
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._started.wait(START_TIMEOUT):
            raise RuntimeError(f"stand-ins did not start within {START_TIMEOUT} s")
        if self._error is not None:
            self._thread.join()
            raise RuntimeError("stand-ins failed to start") from self._error
        return self.value

    def stop(self) -> None:
        """Exit the group on its loop and join the thread. Idempotent; never raises on re-call."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if thread.is_alive() and loop is not None and stop is not None:
            # The loop may already be closing; then the thread is ending anyway.
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        thread.join(STOP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError(f"stand-ins did not stop within {STOP_TIMEOUT} s")
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError("stand-ins failed while stopping") from error

    def call(self, make: Callable[[], Coroutine[Any, Any, R]], timeout: float | None = 30.0) -> R:
        """Run ``make()`` on the background loop and wait for its result (blocking)."""
        future = asyncio.run_coroutine_threadsafe(make(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    async def acall(self, make: Callable[[], Coroutine[Any, Any, R]]) -> R:
        """Run ``make()`` on the background loop and await it from the caller's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), self.loop))

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()/stop(), never lost
            self._error = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        group = self._factory()
        async with group:
            self._value = group
            self._started.set()
            await self._stop.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await anyio.to_thread.run_sync(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)


def run_in_thread(factory: Callable[[], T], *, name: str = "standins") -> ThreadedStandIns[T]:
    """A :class:`ThreadedStandIns` for ``factory`` (not started yet)."""
    return ThreadedStandIns(factory, name=name)
