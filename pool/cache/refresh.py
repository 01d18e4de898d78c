"""The cache's refresh logic as one state machine: :class:`RefreshMachine`.

Every change of the cache's state is a method here (as
:class:`pool.client_pool.generations.GenerationBook` does for the pool), plain
synchronous code that returns what the caller must do next (httpcore's
"bookkeeping apart from I/O"): :class:`pool.CredentialCache` asks it what a
caller gets, :class:`pool.cache.task.RefreshTask` asks it what to do next
(:class:`Sleep` or :class:`Fetch`) and hands back each fetch's outcome. Nothing
here awaits; the only clock reading is the ``now`` passed in.

The states (:class:`Phase`) and the only transitions allowed between them::

    IDLE ──start──▶ FETCHING ──outcome──▶ SCHEDULED | BACKING_OFF
                       ▲                        │
                       └──due / request─────────┘
    FETCHING | SCHEDULED | BACKING_OFF ──task ended──▶ CRASHED
    any state ──close──▶ CLOSED (final)

:data:`TRANSITIONS` is that table; :meth:`RefreshMachine._enter` refuses
anything else with :class:`pool.InvariantError`, and the property tests drive
random event sequences through it.

``status()``'s ``state`` label is the phase read together with whether the
current set is still valid at that instant (``valid``/``expired``, ...): expiry
is a matter of time, not an event.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final

from pool._internal.log import key_hint
from pool.cache import outcome as oc
from pool.cache.entry import Entry, Flight
from pool.cache.policy import Policy
from pool.cache.status import StateName
from pool.credentials import Credentials
from pool.errors import (
    CredentialsExpiredError,
    InvariantError,
    PoolClosedError,
    PoolError,
)

__all__ = ["TRANSITIONS", "Fetch", "Join", "Phase", "RefreshMachine", "Sleep"]


class Phase(enum.Enum):
    """Where the cache's refresh cycle stands."""

    #: Not started: nothing fetches until ``start()`` (or a lazy ``get()``).
    IDLE = "idle"
    #: A fetch is requested or running (:attr:`RefreshMachine.flight`).
    FETCHING = "fetching"
    #: Waiting for the scheduled refresh point (``wake_at``); callers may ask earlier.
    SCHEDULED = "scheduled"
    #: The last attempt failed or brought the same keys: no fetch before ``wake_at``
    #: unless forced by ``refresh()`` or ``invalidate()``.
    BACKING_OFF = "backing_off"
    #: The task ended other than by ``aclose()``: nothing fetches any more.
    CRASHED = "crashed"
    #: ``aclose()`` was called: final.
    CLOSED = "closed"


P = Phase
#: The transitions :meth:`RefreshMachine._enter` accepts; anything else is a bug.
TRANSITIONS: Final[dict[Phase, frozenset[Phase]]] = {
    P.IDLE: frozenset({P.FETCHING, P.CLOSED}),
    P.FETCHING: frozenset({P.SCHEDULED, P.BACKING_OFF, P.CRASHED, P.CLOSED}),
    P.SCHEDULED: frozenset({P.FETCHING, P.CRASHED, P.CLOSED}),
    P.BACKING_OFF: frozenset({P.FETCHING, P.CRASHED, P.CLOSED}),
    P.CRASHED: frozenset({P.CLOSED}),
    P.CLOSED: frozenset(),
}


@dataclass(frozen=True, slots=True)
class Sleep:
    """Task: sleep ``seconds`` (or until woken), then ask again."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Fetch:
    """Task: run the source's fetch for ``flight`` (the ``number``-th fetch), then report."""

    flight: Flight
    number: int


@dataclass(frozen=True, slots=True)
class Join:
    """Caller: wait on ``flight``; wake the task first when ``wake`` (a new fetch was requested)."""

    flight: Flight
    wake: bool


class RefreshMachine:
    """The current set, the fetch in flight, the next attempt, the counters, the phase.

    ``wake_at`` is when the task next fetches by itself (``inf``: only on
    request). Read attributes freely; change state only through the methods.
    Event-loop only, not thread-safe.
    """

    def __init__(self, policy: Policy, name: str, rng: random.Random, log: Any) -> None:
        self.policy, self.name, self.rng, self.log = policy, name, rng, log
        self.phase = Phase.IDLE
        self.entry: Entry | None = None
        self.flight: Flight | None = None
        self.wake_at = -math.inf
        self.wake_reason = "initial"
        self.last_error: PoolError | None = None
        self.last_traceback: TracebackType | None = None
        self.crash: InvariantError | None = None
        self.fetches = self.sets = self.failures = 0
        self.consecutive_failures = self.same_streak = 0
        self._backed_off = False  # BACKING_OFF before the fetch now in flight

    # -- transitions ------------------------------------------------------------------

    def _enter(self, phase: Phase) -> None:
        if phase not in TRANSITIONS[self.phase]:
            raise InvariantError(
                f"credential cache {self.name!r}: no transition {self.phase.name} -> {phase.name}"
            )
        if phase is Phase.FETCHING:
            self._backed_off = self.phase is Phase.BACKING_OFF
        self.phase = phase

    def start(self) -> bool:
        """IDLE → FETCHING, the first fetch requested at once.

        Returns True when the caller must now create the task (False: already
        started). Raises after close or a crash.
        """
        self.check_open()
        if self.phase is not Phase.IDLE:
            return False
        self.flight = Flight("initial")
        self._enter(Phase.FETCHING)
        return True

    def request(self, reason: str) -> Join:
        """A caller needs a fetch now: join the one in flight, or request one (→ FETCHING)."""
        self.check_open()
        if self.phase is Phase.IDLE:
            raise InvariantError("a fetch was requested from a cache that was not started")
        if self.flight is not None:
            return Join(self.flight, wake=False)
        self.flight = Flight(reason if self.fetches else "initial")
        self._enter(Phase.FETCHING)
        return Join(self.flight, wake=True)

    def next_step(self, now: float) -> Sleep | Fetch | None:
        """The task's next move: sleep, fetch (→ FETCHING when due), or None to stop."""
        if self.phase in (Phase.CLOSED, Phase.CRASHED, Phase.IDLE):
            return None
        if self.flight is None:
            delay = self.wake_at - now
            if delay > 0:
                return Sleep(delay)
            self.flight = Flight(self.wake_reason)
            self._enter(Phase.FETCHING)
        self.fetches += 1
        return Fetch(self.flight, self.fetches)

    def fetch_done(
        self, creds: object, error: PoolError | None, now: float, duration_ms: float
    ) -> Credentials | None:
        """The fetch in flight returned ``creds`` or raised ``error``: record it, wake its waiters.

        FETCHING → SCHEDULED (new set, or same keys before the refresh point,
        or a failed early refresh) or BACKING_OFF (failure, same keys). Returns
        the new set the caller must announce, None when nothing rotated. After
        close (a fetch that swallowed its cancellation) nothing is recorded.
        """
        if self.phase is not Phase.FETCHING or self.flight is None:
            return None
        rotated = False
        if error is None:
            accepted = self._accept(creds, now)
            if isinstance(accepted, PoolError):
                error = accepted
            else:
                rotated = accepted
        if error is not None:
            self._fail(error, now, duration_ms)
        else:
            oc.log_success(self.log, self.entry, rotated, now, duration_ms)
        flight, self.flight = self.flight, None
        entry = self.entry
        flight.finish(entry.creds if entry is not None and error is None else None, error)
        return entry.creds if rotated and entry is not None else None

    def invalidate(self, creds: Credentials | None) -> Join | None:
        """The server rejected ``creds`` (None: the current set): stop serving it, refetch.

        Returns the fetch to wait on (None when this was a no-op: another set,
        one already invalidated, or nothing cached).
        """
        entry = self.entry
        if self.phase is Phase.CLOSED or entry is None or entry.invalidated:
            return None
        if creds is not None and not creds.same_keys(entry.creds):
            return None
        entry.invalidate()
        self.log.warning("cache.invalidated", key=key_hint(entry.creds.access_key_id))
        return self.request("invalidate")

    def task_ended(self, cause: Exception | None) -> None:
        """The task ended without :meth:`close` (→ CRASHED); its waiters get the crash error.

        ``cause`` is the exception that escaped the task (a bug), or None when
        it was cancelled from outside. A no-op once closed.
        """
        if self.phase in (Phase.CLOSED, Phase.CRASHED):
            return
        if cause is not None:
            crash = InvariantError(f"credential cache task crashed: {type(cause).__name__}")
            crash.__cause__ = cause
            self.log.error("cache.crashed", error_class=type(cause).__name__, exc_info=cause)
        else:
            crash = InvariantError(
                f"credential cache task for {self.name!r} was cancelled "
                "without aclose(); create a new cache"
            )
            self.log.warning("cache.task_cancelled")
        self.crash = crash
        self._enter(Phase.CRASHED)
        self._end_flight(crash)

    def close(self) -> bool:
        """Any phase → CLOSED: the set is dropped, the flight's waiters get PoolClosedError.

        Returns True the first time (the caller must then stop the task and
        release the rest), False after.
        """
        if self.phase is Phase.CLOSED:
            return False
        self._enter(Phase.CLOSED)
        self.entry = None
        self._end_flight(PoolClosedError(f"credential cache for {self.name!r} closed"))
        return True

    def _end_flight(self, error: BaseException) -> None:
        flight, self.flight = self.flight, None
        if flight is not None:
            flight.finish(None, error)

    # -- what callers get ---------------------------------------------------------------

    def check_open(self) -> None:
        """Raise PoolClosedError after close, the crash error after a crash."""
        if self.phase is Phase.CLOSED:
            raise PoolClosedError(
                f"credential cache for {self.name!r} was used after aclose(); create a new one"
            )
        if self.crash is not None:
            raise self.crash

    def for_caller(self, now: float) -> Credentials | Join:
        """What a ``get()`` that found nothing fresh gets: a set to return, or a fetch to wait on.

        While BACKING_OFF before ``wake_at`` the source is not asked again: the
        still-valid set is returned, or the last error raised (no hammering).
        """
        self.check_open()
        entry = self.entry
        if entry is not None and now < entry.mandatory_at:
            return entry.creds
        if self.flight is None and self.phase is Phase.BACKING_OFF and now < self.wake_at:
            if entry is not None and now < entry.valid_until:
                return entry.creds
            if self.last_error is not None:
                raise self.last_error.with_traceback(self.last_traceback)
            raise self.unavailable(now)
        return self.request("get")

    @property
    def retry_pending(self) -> bool:
        """Backing off (or fetching after backing off): the last error still explains things."""
        return self.phase is Phase.BACKING_OFF or (
            self.phase is Phase.FETCHING and self._backed_off
        )

    def unavailable(self, now: float) -> Exception:
        """The error for "no credentials valid now", naming why and what comes next."""
        if self.phase is Phase.CLOSED:
            return PoolClosedError(f"credential cache for {self.name!r} is closed")
        if self.crash is not None:
            return self.crash
        error = self.last_error if self.retry_pending else None
        exc = CredentialsExpiredError(
            oc.describe_unavailable(
                self.name, self.entry, error, self.wake_at, now, started=self.phase is not P.IDLE
            )
        )
        exc.__cause__ = error
        return exc

    def label(self, now: float) -> StateName:
        """``status()``'s ``state``: the phase, read with the current set's validity at ``now``."""
        phase = self.phase
        if phase is Phase.IDLE:
            return "idle"
        if phase is Phase.CLOSED:
            return "closed"
        if phase is Phase.CRASHED:
            return "crashed"
        entry = self.entry
        valid = entry is not None and now < entry.valid_until
        if phase is Phase.FETCHING:
            return "refreshing" if valid else "fetching"
        if phase is Phase.BACKING_OFF:
            return "retrying" if valid else ("failed" if self.last_error else "expired")
        return "valid" if valid else "expired"

    @property
    def next_at(self) -> float:
        """When the next fetch begins (now, while one is in flight)."""
        return -math.inf if self.flight is not None else self.wake_at

    # -- recording an outcome -------------------------------------------------------------

    def _accept(self, creds: object, now: float) -> bool | PoolError:
        """Take a fetched value: True for a new set, False for the current keys again, or the error.

        The entry's deadline is ``now + creds.remaining()``: ``remaining()`` is
        measured on the system clock from the moment the source built the
        object (so the age of one object handed out repeatedly counts), and
        adding it to the cache's clock reading keeps every later comparison on
        that one clock, the one tests control.
        """
        if not isinstance(creds, Credentials):
            return oc.not_credentials(self.name, creds)
        remaining = creds.remaining()
        p = self.policy
        windows = None if remaining is None else oc.windows_for(remaining, p)
        if remaining is not None and windows is not None and remaining <= windows.mandatory:
            return oc.rejected(self.name, creds, remaining, windows.mandatory)
        deadline = math.inf if remaining is None else now + remaining
        current = self.entry
        if current is not None and creds.same_keys(current.creds):
            self._on_same(current, deadline, now)
            return False
        refresh_at = math.inf
        if windows is not None:
            first = self.sets == 0
            refresh_at = oc.refresh_point(now, deadline, windows, p, self.rng, first=first)
        self.entry = Entry(creds, deadline, remaining, windows, refresh_at)
        self.sets += 1
        self.consecutive_failures = self.same_streak = 0
        self._schedule(refresh_at, "scheduled", now, backing_off=False)
        return True

    def _on_same(self, entry: Entry, deadline: float, now: float) -> None:
        if entry.rejected:
            self.log.warning(
                "cache.invalidated_returned_again", key=key_hint(entry.creds.access_key_id)
            )
        entry.extend(deadline)
        self.same_streak += 1
        self.consecutive_failures = 0
        if now < entry.refresh_at or entry.windows is None:
            # An early forced refresh: keep the normal schedule.
            self._schedule(entry.refresh_at, "scheduled", now, backing_off=False)
            return
        at = now + oc.same_delay(self.same_streak, self.policy, entry.windows, self.rng)
        if now < entry.mandatory_at:
            at = min(at, entry.mandatory_at)
        self._schedule(at, "same-credentials", now, backing_off=True)

    def _fail(self, error: PoolError, now: float, duration_ms: float) -> None:
        """Record a failed attempt and schedule the retry (backoff with jitter)."""
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error, self.last_traceback = error, error.__traceback__
        entry = self.entry
        delay = oc.failure_delay(
            error, self.consecutive_failures, self.policy, entry, self.rng, now
        )
        at, backing_off = now + delay, True
        if entry is not None and now < entry.valid_until:
            if now < entry.refresh_at:
                # An early forced refresh failed: keep the normal schedule.
                at, backing_off = entry.refresh_at, False
            elif now < entry.mandatory_at:
                at = min(at, entry.mandatory_at)  # one more try before callers must wait
        oc.log_failure(self.log, error, self.consecutive_failures, entry, at, now, duration_ms)
        self._schedule(at, "retry", now, backing_off=backing_off)

    def _schedule(self, at: float, reason: str, now: float, *, backing_off: bool) -> None:
        self.wake_at, self.wake_reason = at, reason
        self._enter(Phase.BACKING_OFF if backing_off else Phase.SCHEDULED)
        self.log.debug("cache.refresh.scheduled", in_s=oc.finite(max(0.0, at - now)), reason=reason)

    def counts(self) -> dict[str, int]:
        """The counters, for ``status()``."""
        return {
            "fetches": self.fetches,
            "sets": self.sets,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
        }
