"""A credential cache that refreshes ahead of expiry in its own task, so nobody waits.

:class:`CredentialCache` wraps any source (anything with ``async def fetch() ->
Credentials``). It improves on botocore's ``RefreshableCredentials`` and
aiobotocore's ``AioRefreshableCredentials`` in four ways:

* refreshes run in the background, ahead of expiry, at a jittered point of an
  advisory window sized by the credentials' lifetime (see :mod:`pool.cache.windows`),
  instead of lazily inside whichever caller noticed;
* the single fetch in flight belongs to the cache's task: a caller cancelled
  while waiting leaves it running for everybody else (aiobotocore's caller
  that holds the lock throws the refresh away when it is cancelled);
* failures back off with full jitter and keep serving the current credentials
  while they are valid; the same credentials handed back (IMDS, ECS) are not a
  rotation and are asked for again soon, not after a whole lifetime;
* ``get()`` checks validity against the clock itself, so a late timer (a
  frozen Lambda sandbox) never hands out expired credentials.

No waiter ever hangs: whatever ends the fetch or the task (a failure, a
``CancelledError`` the source raised by itself, which counts as a retryable
failed fetch, a bug, or the task cancelled without ``aclose()``), the waiters
are woken with an error (see :mod:`pool.cache.task`).

Concurrency: event-loop only (asyncio), not thread-safe.
"""

from __future__ import annotations

import asyncio
import random
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

from pool._internal.clock import SYSTEM_CLOCK, Clock, SystemClock
from pool._internal.log import get_logger
from pool._internal.resource import AsyncResource
from pool.cache import windows as w
from pool.cache.compat import clock_from
from pool.cache.entry import Flight
from pool.cache.fanout import DEFAULT_SUBSCRIBER_BUFFER, Fanout, Subscription
from pool.cache.policy import Policy
from pool.cache.refresh import Join, Phase, RefreshMachine
from pool.cache.status import CacheStatus, status_of
from pool.cache.task import RefreshTask
from pool.credentials import Credentials
from pool.errors import ConfigurationError, InvariantError
from pool.sources.base import CredentialSource, aclose_source

__all__ = ["CredentialCache", "Subscription"]

_log = get_logger("pool.cache")


class CredentialCache(AsyncResource):
    """Keeps one source's credentials fresh; an async context manager owning one task.

    ``advisory_window``/``mandatory_window`` (seconds before expiry) default to
    sizes derived from each set's lifetime (:func:`pool.cache.windows.windows_for`).
    ``jitter`` (0..1) spreads the refresh point over that part of the advisory
    window. ``backoff_initial``/``backoff_max`` bound the full-jitter retry
    delays after failures; ``same_credentials_retry`` is the first delay after
    the source returned the current credentials again. ``clock`` is the one
    :class:`pool._internal.clock.Clock` every deadline, sleep and duration is
    read on (tests pass a fake). ``owns_source`` closes the source (its
    ``aclose()``) when the cache closes. ``subscriber_buffer`` is how many
    undelivered sets each subscriber keeps (the newest; the oldest is dropped).
    ``fleet`` (:class:`pool.Fleet`) spreads the first fetch, the refresh points
    and the retries of a process that is one of many sharing a credential
    service's rate limit; throttled answers back off longer in any case.

    Lifetime (:mod:`pool._internal.resource`'s rule): ``await cache.start()``
    or ``async with cache:`` starts the task, and the first fetch begins at
    once. ``get()`` and ``refresh()`` on a cache not started yet start it the
    same way (so a cache can be handed to :class:`pool.AssumeRoleSource` or
    :class:`pool.ClientPool` unopened); whoever does so must still ``aclose()``
    it, and a started cache garbage-collected unclosed warns with
    :class:`ResourceWarning`. ``current``, ``subscribe()``, ``add_listener()``,
    ``invalidate()`` and ``status()`` never start it.
    """

    def __init__(
        self,
        source: CredentialSource,
        *,
        advisory_window: float | None = None,
        mandatory_window: float | None = None,
        jitter: float = w.DEFAULT_JITTER,
        backoff_initial: float = w.DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = w.DEFAULT_BACKOFF_MAX,
        same_credentials_retry: float = w.DEFAULT_SAME_CREDENTIALS_RETRY,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
        owns_source: bool = False,
        subscriber_buffer: int = DEFAULT_SUBSCRIBER_BUFFER,
        fleet: w.Fleet | None = None,
    ) -> None:
        if not callable(getattr(source, "fetch", None)):
            raise ConfigurationError(
                "CredentialCache needs a source with 'async def fetch() -> Credentials'; "
                f"got {type(source).__name__}"
            )
        if subscriber_buffer < 1:
            raise ConfigurationError("subscriber_buffer must be at least 1")
        policy = Policy(
            advisory_window, mandatory_window, jitter, backoff_initial, backoff_max,
            same_credentials_retry, fleet,
        )  # fmt: skip
        self._source = source
        self._name = source_name(source)
        self._clock = clock_from(clock, sleep)
        # Read on every get(): the system clock's builtin itself, no Python frame around it.
        self._now = (
            time.monotonic if isinstance(self._clock, SystemClock) else self._clock.monotonic
        )
        self._owns_source = owns_source
        self._fanout = Fanout(subscriber_buffer)
        self._log = _log.bind(source=self._name)
        rng = rng or random.Random()
        self._machine = RefreshMachine(policy, self._name, rng, self._log)
        self._runner = RefreshTask(
            source, self._machine, clock=self._clock, log=self._log, publish=self._fanout.publish,
            startup_delay=w.startup_delay(fleet, rng),
        )  # fmt: skip

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task; the first fetch begins at once. Idempotent.

        Raises :class:`pool.PoolClosedError` after ``aclose()``.
        """
        self._ensure_started("start")

    def _ensure_started(self, trigger: str) -> None:
        if self._machine.start():
            self._runner.start()
            self._log.debug("cache.started", trigger=trigger)

    async def aclose(self) -> None:
        """Stop the task, wake every waiter with :class:`pool.PoolClosedError`, end subscriptions.

        Idempotent; safe from any task, including a listener's. Closes the
        source too when ``owns_source``. Finishes whatever cancels the caller
        (``asyncio.timeout()``, ``task.cancel()``, anyio scopes): the
        cancellation is re-raised once everything is closed, and a second
        ``aclose()`` meanwhile waits for the first.
        """
        self._machine.close()  # at once: from here on every call says "closed"
        caller = asyncio.current_task()
        await self._close_once(lambda: self._release(caller))

    async def _release(self, caller: asyncio.Task[Any] | None) -> None:
        await self._runner.stop(caller)
        await self._fanout.aclose(caller)
        if self._owns_source:
            await aclose_source(self._source)
        self._log.debug("cache.closed", fetches=self._machine.fetches)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # Neither the task nor the fanout references the cache itself, so this
        # runs once the last user reference is gone.
        machine = getattr(self, "_machine", None)
        if machine is not None and machine.phase not in (Phase.IDLE, Phase.CLOSED):
            _warn(
                f"CredentialCache for {self._name!r} was started and never closed; "
                "use 'async with' or await aclose()",
                ResourceWarning,
                source=self,
            )

    @property
    def source(self) -> CredentialSource:
        """The source this cache fetches from."""
        return self._source

    # -- reading ---------------------------------------------------------------

    @property
    def current(self) -> Credentials:
        """The credentials valid at this instant. Never blocks, never fetches.

        Raises :class:`pool.CredentialsExpiredError` when there are none (not
        yet fetched, expired, or invalidated) and :class:`pool.PoolClosedError`
        after close.
        """
        entry = self._machine.entry
        now = self._now()
        if entry is not None and now < entry.valid_until:
            return entry.creds
        raise self._machine.unavailable(now)

    async def get(self) -> Credentials:
        """Credentials to use now; waits only when none are valid outside the mandatory window.

        Then it waits for the single in-flight fetch (starting one unless a
        retry is already scheduled) and returns the credentials valid after
        it, or raises its error when none are. Cancelling the caller never
        cancels the fetch. Starts the cache if nothing did (see the class).
        """
        m = self._machine
        entry = m.entry
        if entry is not None:
            now = self._now()
            if now < entry.mandatory_at:
                if now >= m.wake_at and m.flight is None:
                    self._runner.nudge()  # the timer is late (frozen process): refresh now
                return entry.creds
        return await self._get_slow()

    async def _get_slow(self) -> Credentials:
        self._ensure_started("get")
        decision = self._machine.for_caller(self._now())
        if isinstance(decision, Credentials):
            return decision
        flight = await self._wait(decision)
        entry, now = self._machine.entry, self._now()
        if entry is not None and now < entry.valid_until:
            return entry.creds
        if flight.error is not None:
            raise flight.error.with_traceback(flight.traceback)
        raise self._machine.unavailable(now)

    async def _wait(self, join: Join) -> Flight:
        if join.wake:
            self._runner.nudge()
        await join.flight.done.wait()
        return join.flight

    async def refresh(self) -> Credentials:
        """Fetch now, or join the fetch in flight; return its credentials or raise its error.

        Ignores the backoff schedule: use for explicit operator action, not in
        a loop. Starts the cache if nothing did (see the class).
        """
        self._ensure_started("refresh")
        flight = await self._wait(self._machine.request("refresh"))
        if flight.error is not None:
            raise flight.error.with_traceback(flight.traceback)
        if flight.creds is None:
            raise InvariantError("a credential fetch finished with neither credentials nor error")
        creds: Credentials = flight.creds
        return creds

    def invalidate(self, creds: Credentials | None = None) -> None:
        """The server rejected ``creds`` (default: the current set): stop using them, refresh now.

        A no-op when ``creds`` is no longer the current set, and for a set
        already invalidated, so many failing operations cause one fetch. If the
        source hands the same keys back they are used again (it is all there
        is), and later invalidations of that set are ignored until a new one arrives.
        """
        join = self._machine.invalidate(creds)
        if join is not None and join.wake:
            self._runner.nudge()

    def subscribe(self) -> Subscription:
        """``async for creds in cache.subscribe()``: the current set (if valid), then each new one.

        Never blocks the cache: keeps up to ``subscriber_buffer`` undelivered
        sets, dropping the oldest. Ends when the cache closes.
        """
        entry = self._machine.entry
        valid = entry is not None and self._now() < entry.valid_until
        return self._fanout.subscribe(entry.creds if valid and entry else None)

    def add_listener(self, callback: Callable[[Credentials], object]) -> Callable[[], None]:
        """Call ``callback(creds)`` for each new set; returns the function that unsubscribes.

        Plain functions run inline in the cache's task and must not block;
        ``async def`` functions run in their own task, one set at a time, in
        order. Exceptions are logged (class only) and never reach the cache.
        """
        return self._fanout.add_listener(callback)

    def status(self) -> CacheStatus:
        """A JSON-able snapshot (:class:`pool.cache.CacheStatus`, documented field by field).

        Never blocks. No secret: key hints, and error messages whose
        third-party text is redacted.
        """
        m, now = self._machine, self._now()
        subscribers, listeners = self._fanout.counts
        return status_of(
            name=self._name,
            state=m.label(now),
            entry=m.entry,
            now=now,
            next_at=m.next_at,
            counts=m.counts(),
            subscribers=subscribers,
            listeners=listeners,
            last_error=m.last_error,
        )

    def __repr__(self) -> str:
        state = self._machine.label(self._now())
        return f"CredentialCache(source={self._name!r}, state={state!r})"


def source_name(source: object) -> str:
    """A source's short name: its ``name`` attribute, else its class name."""
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else type(source).__name__
