"""The background task of :class:`pool.CredentialCache`: sleep until due, fetch, record.

:class:`RefreshTask` owns the single fetch in flight (a :class:`Flight`):
callers only wait on it, so a caller cancelled while waiting never cancels
the fetch for the others. The decisions (what an outcome does, when to try
next) are :class:`pool.cache.refresh.RefreshState`'s; this module only performs them.

However the task ends, it finishes the flight it owns, so no waiter hangs:

* stopped by the cache's ``aclose()`` (:meth:`RefreshTask.stop`): waiters get
  the :class:`PoolClosedError` passed in;
* an exception escaping the loop (a bug), or a cancellation that did not
  come from :meth:`~RefreshTask.stop` (loop shutdown, a stray ``task.cancel()``):
  waiters, and every later call that would need a fetch, get
  :class:`InvariantError` (:attr:`RefreshTask.crash`), since nothing fetches any more.

A ``CancelledError`` raised by the source while nobody is cancelling this
task (``Task.cancelling() == 0``: a bug in the source or in a library under
it) is not the end of the task: it is a failed fetch, retryable with backoff,
so one misbehaving fetch does not stop refreshing for the whole process.

Concurrency: event-loop only (asyncio), not thread-safe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from pool.cache.entry import Flight, as_pool_error
from pool.cache.refresh import RefreshState
from pool.credentials import Credentials
from pool.errors import InvariantError, PoolClosedError, PoolError

__all__ = ["RefreshTask"]


class RefreshTask:
    """Runs one cache's fetches in one asyncio task, started on first need.

    ``flight`` is the fetch in progress or requested (None when idle);
    ``crash`` is set once the task ended other than by :meth:`stop`.
    ``publish`` is called (inline, must not block) with each new set.
    """

    def __init__(
        self,
        source: Any,
        state: RefreshState,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        log: Any,
        publish: Callable[[Credentials], None],
        startup_delay: float = 0.0,
    ) -> None:
        self._source, self._st, self._log, self._publish = source, state, log, publish
        self._startup_delay = startup_delay  # a fleet's spread first fetch (windows.Fleet)
        self._clock, self._sleep = clock, sleep
        self.flight: Flight | None = None
        self.crash: InvariantError | None = None
        self.task: asyncio.Task[None] | None = None
        self._sleep_scope: anyio.CancelScope | None = None
        self._stopping = False

    def start(self) -> None:
        """Create the task unless it exists or :meth:`stop` was called. Needs a running loop."""
        if self.task is None and not self._stopping:
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self._run(), name=f"CredentialCache({self._st.name})")

    def request(self, reason: str) -> Flight:
        """The flight to wait on: the one in progress, or a new one started now.

        Raises :attr:`crash` when the task is gone, rather than return a
        flight nobody would ever run.
        """
        if self.crash is not None:
            raise self.crash
        if self.flight is None:
            self.flight = Flight(reason if self._st.fetches else "initial")
            self.nudge()
        return self.flight

    def nudge(self) -> None:
        """Wake the task if it is sleeping, so it re-reads the clock and the requests."""
        if self._sleep_scope is not None:
            self._sleep_scope.cancel()

    async def stop(self, error: PoolClosedError) -> None:
        """Cancel the task, wait for it, and fail the pending flight with ``error``.

        Idempotent. Callers shield it (``aclose()`` does); safe from inside the
        task itself (it then does not wait on itself).
        """
        self._stopping = True
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
            if task is not asyncio.current_task():
                await asyncio.wait([task])
        self.end_flight(error)

    def end_flight(self, error: BaseException | None, creds: Credentials | None = None) -> None:
        """Finish the current flight (if any) and wake its waiters."""
        flight, self.flight = self.flight, None
        if flight is not None:
            flight.finish(creds, error)

    async def _run(self) -> None:
        try:
            if self._startup_delay > 0:
                # Not the nudgeable sleep: callers wait for the spread first fetch.
                await self._sleep(self._startup_delay)
            while not self._stopping:  # in case a cancellation were ever swallowed
                if self.flight is None:
                    delay = self._st.wake_at - self._clock()
                    if delay > 0:
                        await self._sleep_until_woken(delay)
                        continue  # re-read the clock: woken early, or a request came
                    self.flight = Flight(self._st.wake_reason)
                await self._attempt(self.flight)
        except Exception as exc:
            # A bug here must not leave waiters hanging: fail them and every later call.
            self.crash = InvariantError(f"credential cache task crashed: {type(exc).__name__}")
            self.crash.__cause__ = exc
            self._log.error("cache.crashed", error_class=type(exc).__name__, exc_info=True)
        finally:
            if not self._stopping:  # stop() ends the flight itself, with its own error
                if self.crash is None:
                    self.crash = InvariantError(
                        f"credential cache task for {self._st.name!r} was cancelled "
                        "without aclose(); create a new cache"
                    )
                    self._log.warning("cache.task_cancelled")
                self.end_flight(self.crash)

    async def _sleep_until_woken(self, delay: float) -> None:
        scope = self._sleep_scope = anyio.CancelScope()
        try:
            with scope:
                await self._sleep(delay)
        finally:
            self._sleep_scope = None

    async def _attempt(self, flight: Flight) -> None:
        st = self._st
        st.fetches += 1
        started = time.perf_counter()
        self._log.debug("cache.fetch.start", reason=flight.reason, fetch=st.fetches)
        creds: object = None
        error: PoolError | None = None
        try:
            creds = await self._source.fetch()
        except Exception as exc:
            error = as_pool_error(exc, st.name)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # stop() or loop shutdown: _run's finally sees to the flight
            # Nobody cancelled this task: the source (or a library under it)
            # leaked a CancelledError. A failed fetch, retried with backoff.
            error = as_pool_error(exc, st.name)
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        error, rotated = st.record(creds, error, self._clock(), duration_ms)
        entry = st.entry
        self.end_flight(error, entry.creds if entry is not None and error is None else None)
        if rotated and entry is not None:
            self._publish(entry.creds)
