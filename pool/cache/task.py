"""The background task of :class:`pool.CredentialCache`: it runs what the state machine says.

:class:`RefreshTask` asks :meth:`RefreshMachine.next_step` what to do (sleep
or fetch), performs it, and hands each fetch's outcome back
(:meth:`RefreshMachine.fetch_done`). It decides nothing and counts nothing;
the fetch in flight belongs to the machine, so a caller cancelled while waiting
on it never cancels it for the others.

However the task ends, the machine hears of it, so no waiter hangs: stopped by
the cache's ``aclose()`` the machine is already CLOSED (waiters got
:class:`pool.PoolClosedError`); an exception escaping the loop (a bug), or a
cancellation that did not come from :meth:`RefreshTask.stop` (loop shutdown, a
stray ``task.cancel()``), makes it CRASHED: waiters, and every later call that
would need a fetch, get :class:`pool.InvariantError`.

A ``CancelledError`` raised by the source while nobody is cancelling this task
(``Task.cancelling() == 0``: a bug in the source or in a library under it) is
not the end of the task: it is a failed fetch, retryable with backoff, so one
misbehaving fetch does not stop refreshing for the whole process.

Concurrency: event-loop only (asyncio), not thread-safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio

from pool._internal.clock import Clock
from pool.cache.entry import as_pool_error
from pool.cache.refresh import Fetch, RefreshMachine, Sleep
from pool.credentials import Credentials
from pool.errors import PoolError

__all__ = ["RefreshTask"]


class RefreshTask:
    """Runs one cache's fetches in one asyncio task.

    ``publish`` is called (inline, must not block) with each new set.
    """

    def __init__(
        self,
        source: Any,
        machine: RefreshMachine,
        *,
        clock: Clock,
        log: Any,
        publish: Callable[[Credentials], None],
        startup_delay: float = 0.0,
    ) -> None:
        self._source, self._m, self._log, self._publish = source, machine, log, publish
        self._clock = clock
        self._startup_delay = startup_delay  # a fleet's spread first fetch (windows.Fleet)
        self.task: asyncio.Task[None] | None = None
        self._sleep_scope: anyio.CancelScope | None = None

    def start(self) -> None:
        """Create the task (once). Needs a running loop."""
        if self.task is None:
            loop = asyncio.get_running_loop()
            self.task = loop.create_task(self._run(), name=f"CredentialCache({self._m.name})")

    def nudge(self) -> None:
        """Wake the task if it is sleeping, so it asks the machine again."""
        if self._sleep_scope is not None:
            self._sleep_scope.cancel()

    async def stop(self, caller: asyncio.Task[Any] | None) -> None:
        """Cancel the task and wait for it to end (not when ``caller`` is the task itself).

        Call after :meth:`RefreshMachine.close`, so the task's end is not a crash.
        """
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            if task is not caller and task is not asyncio.current_task():
                await asyncio.wait([task])

    async def _run(self) -> None:
        failure: Exception | None = None
        try:
            if self._startup_delay > 0:
                # Not the nudgeable sleep: callers wait for the spread first fetch.
                await self._clock.sleep(self._startup_delay)
            while (step := self._m.next_step(self._clock.monotonic())) is not None:
                if isinstance(step, Sleep):
                    await self._sleep_until_woken(step.seconds)
                else:
                    await self._fetch(step)
        except Exception as exc:
            failure = exc  # a bug here must not leave waiters hanging
        finally:
            self._m.task_ended(failure)  # a no-op once the cache is closed

    async def _sleep_until_woken(self, delay: float) -> None:
        scope = self._sleep_scope = anyio.CancelScope()
        try:
            with scope:
                await self._clock.sleep(delay)
        finally:
            self._sleep_scope = None

    async def _fetch(self, step: Fetch) -> None:
        started = self._clock.monotonic()
        self._log.debug("cache.fetch.start", reason=step.flight.reason, fetch=step.number)
        creds: object = None
        error: PoolError | None = None
        try:
            creds = await self._source.fetch()
        except Exception as exc:
            error = as_pool_error(exc, self._m.name)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise  # stop() or loop shutdown
            # Nobody cancelled this task: the source (or a library under it)
            # leaked a CancelledError. A failed fetch, retried with backoff.
            error = as_pool_error(exc, self._m.name)
        now = self._clock.monotonic()
        rotated = self._m.fetch_done(creds, error, now, round((now - started) * 1000, 3))
        if rotated is not None:
            self._publish(rotated)
