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

import random
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, Self

import anyio

from pool._internal.log import get_logger, key_hint
from pool._internal.resource import AsyncResource
from pool.cache import windows as w
from pool.cache.entry import status_of
from pool.cache.fanout import DEFAULT_SUBSCRIBER_BUFFER, Fanout, Subscription
from pool.cache.refresh import Policy, RefreshState, source_name
from pool.cache.task import RefreshTask
from pool.credentials import Credentials
from pool.errors import (
    ConfigurationError,
    CredentialsExpiredError,
    InvariantError,
    PoolClosedError,
)

__all__ = ["CredentialCache", "Subscription"]

_log = get_logger("pool.cache")


class CredentialCache(AsyncResource):
    """Keeps one source's credentials fresh; an async context manager owning one task.

    ``advisory_window``/``mandatory_window`` (seconds before expiry) default to
    sizes derived from each set's lifetime (:func:`pool.cache.windows.windows_for`).
    ``jitter`` (0..1) spreads the refresh point over that part of the advisory
    window. ``backoff_initial``/``backoff_max`` bound the full-jitter retry
    delays after failures; ``same_credentials_retry`` is the first delay after
    the source returned the current credentials again. ``clock`` (monotonic
    seconds) and ``sleep`` must agree: inject both in tests. ``owns_source``
    closes the source (its ``aclose()``) when the cache closes.
    ``subscriber_buffer`` is how many undelivered sets each subscriber keeps
    (the newest; the oldest is dropped). ``fleet``
    (:class:`pool.cache.windows.Fleet`) spreads the first fetch and the refresh
    points of a process that is one of many sharing a credential service's
    rate limit; throttled answers back off longer in any case.
    """

    def __init__(
        self,
        source: Any,
        *,
        advisory_window: float | None = None,
        mandatory_window: float | None = None,
        jitter: float = w.DEFAULT_JITTER,
        backoff_initial: float = w.DEFAULT_BACKOFF_INITIAL,
        backoff_max: float = w.DEFAULT_BACKOFF_MAX,
        same_credentials_retry: float = w.DEFAULT_SAME_CREDENTIALS_RETRY,
        clock: Callable[[], float] = time.monotonic,
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
        self._clock = clock
        self._owns_source = owns_source
        self._fanout = Fanout(subscriber_buffer)
        self._log = _log.bind(source=self._name)
        rng = rng or random.Random()
        self._st = RefreshState(policy, self._name, rng, self._log)
        self._runner = RefreshTask(
            source, self._st, clock=clock, sleep=sleep or anyio.sleep, log=self._log,
            publish=self._fanout.publish, startup_delay=w.startup_delay(fleet, rng),
        )  # fmt: skip
        self._closed = False
        self._close_done: anyio.Event | None = None

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the background task; the first fetch begins at once."""
        self._check_open()
        self._runner.start()
        return self

    async def aclose(self) -> None:
        """Stop the task, wake every waiter with :class:`PoolClosedError`, end subscriptions.

        Idempotent; safe from any task. Closes the source too when
        ``owns_source``. Shielded: cancelling the caller does not leave a task behind.
        """
        if self._closed:
            if self._close_done is not None:
                await self._close_done.wait()
            return
        self._closed = True
        self._close_done = done = anyio.Event()
        try:
            with anyio.CancelScope(shield=True):
                await self._runner.stop(
                    PoolClosedError(f"credential cache for {self._name!r} closed")
                )
                self._st.entry = None
                await self._fanout.aclose()
                if self._owns_source:
                    closer = getattr(self._source, "aclose", None)
                    if closer is not None:
                        await closer()
                self._log.debug("cache.closed", fetches=self._st.fetches)
        finally:
            done.set()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        # The running task references the cache, so this only runs once the task
        # is gone without aclose(): typically the loop shut down under it.
        runner = getattr(self, "_runner", None)
        if runner is not None and runner.task is not None and not getattr(self, "_closed", True):
            _warn(
                f"CredentialCache for {self._name!r} was never closed; "
                "use 'async with' or await aclose()",
                ResourceWarning,
                source=self,
            )

    @property
    def source(self) -> Any:
        """The source this cache fetches from."""
        return self._source

    # -- reading ---------------------------------------------------------------

    @property
    def current(self) -> Credentials:
        """The credentials valid at this instant. Never blocks, never fetches.

        Raises :class:`CredentialsExpiredError` when there are none (not yet
        fetched, expired, or invalidated) and :class:`PoolClosedError` after close.
        """
        entry = self._st.entry
        if entry is not None and self._clock() < entry.valid_until:
            return entry.creds
        raise self._unavailable()

    async def get(self) -> Credentials:
        """Credentials to use now; waits only when none are valid outside the mandatory window.

        Then it waits for the single in-flight fetch (starting one unless a
        retry is already scheduled) and returns the credentials valid after
        it, or raises its error when none are. Cancelling the caller never
        cancels the fetch. Starts the cache's task if ``async with`` did not.
        """
        entry = self._st.entry
        if entry is not None:
            now = self._clock()
            if now < entry.mandatory_at:
                if now >= self._st.wake_at and self._runner.flight is None:
                    self._runner.nudge()  # the timer is late (frozen process): refresh now
                return entry.creds
        return await self._get_slow()

    async def _get_slow(self) -> Credentials:
        self._check_open()
        self._runner.start()
        entry, now = self._st.entry, self._clock()
        if entry is not None and now < entry.mandatory_at:
            return entry.creds
        flight = self._runner.flight
        if flight is None:
            st = self._st
            if st.retry_pending and now < st.wake_at:
                # Backing off: do not ask the source again before the retry time.
                if entry is not None and now < entry.valid_until:
                    return entry.creds
                if st.last_error is not None:
                    raise st.last_error.with_traceback(st.last_traceback)
                raise self._unavailable()
            flight = self._runner.request("get")
        await flight.done.wait()
        entry = self._st.entry
        if entry is not None and self._clock() < entry.valid_until:
            return entry.creds
        if flight.error is not None:
            raise flight.error.with_traceback(flight.traceback)
        raise self._unavailable()

    async def refresh(self) -> Credentials:
        """Fetch now, or join the fetch in flight; return its credentials or raise its error.

        Ignores the backoff schedule: use for explicit operator action, not in a loop.
        """
        self._check_open()
        self._runner.start()
        flight = self._runner.flight or self._runner.request("refresh")
        await flight.done.wait()
        if flight.error is not None:
            raise flight.error.with_traceback(flight.traceback)
        if flight.creds is None:
            raise InvariantError("a credential fetch finished with neither credentials nor error")
        return flight.creds

    def invalidate(self, creds: Credentials | None = None) -> None:
        """The server rejected ``creds`` (default: the current set): stop using them, refresh now.

        A no-op when ``creds`` is no longer the current set, and for a set
        already invalidated, so many failing operations cause one fetch. If the
        source hands the same keys back they are used again (it is all there
        is), and later invalidations of that set are ignored until a new one arrives.
        """
        entry = self._st.entry
        if self._closed or entry is None or entry.invalidated:
            return
        if creds is not None and not creds.same_keys(entry.creds):
            return
        entry.invalidate()
        self._log.warning("cache.invalidated", key=key_hint(entry.creds.access_key_id))
        if self._runner.task is not None:
            self._runner.request("invalidate")

    def subscribe(self) -> Subscription:
        """``async for creds in cache.subscribe()``: the current set (if valid), then each new one.

        Never blocks the cache: keeps up to ``subscriber_buffer`` undelivered
        sets, dropping the oldest. Ends when the cache closes.
        """
        entry = self._st.entry
        valid = entry is not None and self._clock() < entry.valid_until
        return self._fanout.subscribe(entry.creds if valid and entry else None)

    def add_listener(self, callback: Callable[[Credentials], object]) -> Callable[[], None]:
        """Call ``callback(creds)`` for each new set; returns the function that unsubscribes.

        Plain functions run inline in the cache's task and must not block;
        ``async def`` functions run in their own task, one set at a time, in
        order. Exceptions are logged (class only) and never reach the cache.
        """
        return self._fanout.add_listener(callback)

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: state, remaining time, next refresh, counts, last error.

        ``state`` is one of ``idle`` (task not started), ``fetching`` /
        ``refreshing`` (a fetch in flight, without / with valid credentials),
        ``valid``, ``retrying`` (last attempt failed, still serving), ``failed``
        (failed, nothing valid), ``expired``, ``crashed`` (the task is gone:
        every call that needs a fetch raises :class:`InvariantError`), ``closed``.
        No secret: key hints, and error messages whose third-party text is redacted.
        """
        subscribers, listeners = self._fanout.counts
        return status_of(
            name=self._name,
            state=self._state(),
            entry=self._st.entry,
            now=self._clock(),
            next_at=0.0 if self._runner.flight is not None else self._st.wake_at,
            counts={**self._st.counts(), "subscribers": subscribers, "listeners": listeners},
            last_error=self._st.last_error,
        )

    def __repr__(self) -> str:
        return f"CredentialCache(source={self._name!r}, state={self._state()!r})"

    # -- state -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError(
                f"credential cache for {self._name!r} was used after aclose(); create a new one"
            )
        if self._runner.crash is not None:
            raise self._runner.crash

    def _unavailable(self) -> Exception:
        if self._closed:
            return PoolClosedError(f"credential cache for {self._name!r} is closed")
        if self._runner.crash is not None:
            return self._runner.crash
        exc = CredentialsExpiredError(self._st.describe_unavailable(self._clock()))
        exc.__cause__ = self._st.last_error if self._st.retry_pending else None
        return exc

    def _state(self) -> str:
        if self._closed:
            return "closed"
        if self._runner.crash is not None:
            return "crashed"
        if self._runner.task is None:
            return "idle"
        entry = self._st.entry
        valid = entry is not None and self._clock() < entry.valid_until
        if self._runner.flight is not None:
            return "refreshing" if valid else "fetching"
        if self._st.retry_pending:
            return "retrying" if valid else ("failed" if self._st.last_error else "expired")
        return "valid" if valid else "expired"
