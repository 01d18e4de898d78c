"""The cache's bookkeeping: what a fetch outcome does to the current set and the schedule.

:class:`RefreshState` is plain synchronous code (httpcore's "bookkeeping apart
from I/O"): the cache's task performs the fetch, then hands the outcome here,
which installs the new set, or extends the current one, or records the
failure, and decides when the next attempt happens. Nothing here awaits; the
only clock reading is the ``now`` passed in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from pool._internal.backoff import backoff_delay
from pool._internal.log import key_hint
from pool.cache import windows as w
from pool.cache.entry import Entry
from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialError, CredentialFetchError, PoolError

__all__ = ["Policy", "RefreshState", "source_name"]


@dataclass(frozen=True, slots=True)
class Policy:
    """The cache's configuration (see :class:`pool.CredentialCache`), validated."""

    advisory: float | None
    mandatory: float | None
    jitter: float
    backoff_initial: float
    backoff_max: float
    same_retry: float
    fleet: w.Fleet | None = None

    def __post_init__(self) -> None:
        for label, value in (
            ("advisory_window", self.advisory),
            ("mandatory_window", self.mandatory),
        ):
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ConfigurationError(f"{label} must be a finite number of seconds >= 0 or None")
        if (
            self.advisory is not None
            and self.mandatory is not None
            and self.mandatory > self.advisory
        ):
            raise ConfigurationError(
                f"mandatory_window ({self.mandatory} s) must not exceed "
                f"advisory_window ({self.advisory} s)"
            )
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError(f"jitter must be between 0 and 1; got {self.jitter}")
        if not (0 < self.backoff_initial <= self.backoff_max and math.isfinite(self.backoff_max)):
            raise ConfigurationError(
                "backoff_initial and backoff_max must be finite with 0 < initial <= max"
            )
        if not (self.same_retry > 0 and math.isfinite(self.same_retry)):
            raise ConfigurationError("same_credentials_retry must be a positive number of seconds")


class RefreshState:
    """The current set, the next attempt's time and reason, and the counters.

    ``wake_at`` is when the cache's task next fetches (``-inf``: at once;
    ``inf``: only on request). ``retry_pending`` is True while the last attempt
    failed or brought the same keys back: callers are then not allowed to
    trigger a fetch before ``wake_at`` (no hammering).
    """

    def __init__(self, policy: Policy, name: str, rng: random.Random, log: Any) -> None:
        self.policy, self.name, self.rng, self.log = policy, name, rng, log
        self.entry: Entry | None = None
        self.wake_at = -math.inf  # the first fetch starts at once
        self.wake_reason = "initial"
        self.retry_pending = False
        self.last_error: PoolError | None = None
        self.last_traceback: TracebackType | None = None
        self.fetches = self.sets = self.failures = 0
        self.consecutive_failures = self.same_streak = 0

    def counts(self) -> dict[str, int]:
        """The counters, for ``status()``."""
        return {
            "fetches": self.fetches,
            "sets": self.sets,
            "failures": self.failures,
            "consecutive_failures": self.consecutive_failures,
        }

    def accept(self, creds: object, now: float) -> bool | CredentialError:
        """Take a fetched value: True for a new set, False for the current keys again, or the error.

        The entry's deadline is ``now + creds.remaining()``: ``remaining()``
        reads the real monotonic clock (and so also covers the time since the
        source built the object, e.g. one object handed out repeatedly), and
        adding it to the cache's injected clock keeps every later comparison on
        that one clock, the one tests control. ``ttl_at_fetch`` would not see
        the age of a reused object.
        """
        if not isinstance(creds, Credentials):
            return CredentialFetchError(
                f"credential source {self.name!r} returned {type(creds).__name__}, "
                "not pool.Credentials; fix the source's fetch()",
                source=self.name,
                retryable=False,
            )
        remaining = creds.remaining()
        p = self.policy
        windows = None if remaining is None else w.windows_for(remaining, p.advisory, p.mandatory)
        if remaining is not None and windows is not None and remaining <= windows.mandatory:
            return self._rejected(creds, remaining, windows.mandatory)
        deadline = math.inf if remaining is None else now + remaining
        current = self.entry
        if current is not None and creds.same_keys(current.creds):
            self._on_same(current, deadline, now)
            return False
        refresh_at = math.inf
        if windows is not None:
            refresh_at = w.spread_refresh_point(
                now, deadline, windows, p.jitter, self.rng, p.fleet, first=self.sets == 0
            )
        self.entry = Entry(creds, deadline, remaining, windows, refresh_at)
        self.sets += 1
        self.consecutive_failures = self.same_streak = 0
        self.retry_pending = False
        self.schedule(refresh_at, "scheduled", now)
        return True

    def _rejected(self, creds: Credentials, remaining: float, mandatory: float) -> CredentialError:
        what = "already expired" if remaining <= 0 else f"expiring in {remaining:.1f} s"
        return CredentialFetchError(
            f"credential source {self.name!r} returned credentials "
            f"({key_hint(creds.access_key_id)}) {what}, inside the {mandatory:.1f} s mandatory "
            "refresh window; check the source's clock and expiry, or lower mandatory_window",
            source=self.name,
            retryable=True,
        )

    def _on_same(self, entry: Entry, deadline: float, now: float) -> None:
        if entry.rejected:
            self.log.warning(
                "cache.invalidated_returned_again", key=key_hint(entry.creds.access_key_id)
            )
        entry.extend(deadline)
        self.same_streak += 1
        self.consecutive_failures = 0
        if now < entry.refresh_at or entry.windows is None:
            self.retry_pending = False  # an early forced refresh: keep the normal schedule
            self.schedule(entry.refresh_at, "scheduled", now)
            return
        at = now + w.same_credentials_delay(
            self.same_streak, self.policy.same_retry, entry.windows.advisory, self.rng
        )
        if now < entry.mandatory_at:
            at = min(at, entry.mandatory_at)
        self.retry_pending = True
        self.schedule(at, "same-credentials", now)

    def record(
        self, creds: object, error: PoolError | None, now: float, duration_ms: float
    ) -> tuple[PoolError | None, bool]:
        """Apply one fetch's outcome (``creds``, or the ``error`` it raised) and log it.

        Returns the error the fetch ends with (its own, or why ``creds`` were
        refused; None on success) and whether a new set was installed.
        """
        rotated = False
        if error is None:
            outcome = self.accept(creds, now)
            if isinstance(outcome, PoolError):
                error = outcome
            else:
                rotated = outcome
        if error is not None:
            self.fail(error, now, duration_ms)
        else:
            self.log_success(rotated, now, duration_ms)
        return error, rotated

    def fail(self, error: PoolError, now: float, duration_ms: float) -> None:
        """Record a failed attempt and schedule the retry (backoff with full jitter)."""
        self.failures += 1
        self.consecutive_failures += 1
        self.last_error, self.last_traceback = error, error.__traceback__
        retryable = bool(getattr(error, "retryable", False))
        entry, p = self.entry, self.policy
        # Spread retries only while callers are served without waiting (not
        # inside the mandatory window, where a long pause would let them expire).
        serving = entry is not None and now < min(entry.valid_until, entry.mandatory_at)
        lifetime = entry.lifetime if entry is not None else None
        cap = w.retry_cap(p.backoff_max, lifetime, p.fleet, serving=serving)
        throttled = bool(getattr(error, "throttled", False))
        if throttled:
            # "Slow down" from the endpoint: longer, never-immediate retries.
            delay = w.throttled_delay(self.consecutive_failures, p.backoff_initial, cap, self.rng)
        elif retryable:
            initial = min(p.backoff_initial, cap)
            delay = backoff_delay(self.consecutive_failures, initial, cap, self.rng)
        else:
            delay = w.non_retryable_delay(cap, self.rng)
        at, self.retry_pending = now + delay, True
        if entry is not None and now < entry.valid_until:
            if now < entry.refresh_at:
                # An early forced refresh failed: keep the normal schedule.
                at, self.retry_pending = entry.refresh_at, False
            elif now < entry.mandatory_at:
                at = min(at, entry.mandatory_at)  # one more try before callers must wait
        # The source logs the failure itself (built-in sources, with the
        # reason); this line says what the cache decided: the class only, no
        # message text (a custom source's text is not ours to vouch for).
        valid_for = entry.valid_until - now if entry is not None else -math.inf
        self.log.warning(
            "cache.fetch.failed",
            error_class=type(error).__name__,
            cause_class=type(error.__cause__).__name__ if error.__cause__ else None,
            retryable=retryable,
            throttled=throttled,
            consecutive=self.consecutive_failures,
            retry_in_s=_finite(at - now),
            serving_current=valid_for > 0,
            valid_for_s=_finite(valid_for) if valid_for > 0 else None,
            duration_ms=duration_ms,
        )
        self.schedule(at, "retry", now)

    def log_success(self, rotated: bool, now: float, duration_ms: float) -> None:
        """Log the end of a successful fetch (key hint, expiry; never a secret)."""
        entry = self.entry
        if entry is None:
            return
        self.log.info(
            "cache.fetch.end",
            outcome="rotated" if rotated else "same-credentials",
            key=key_hint(entry.creds.access_key_id),
            expires_in=None if entry.lifetime is None else round(entry.deadline - now, 3),
            duration_ms=duration_ms,
        )

    def schedule(self, at: float, reason: str, now: float) -> None:
        """Set the next attempt's time and reason, and log it."""
        self.wake_at, self.wake_reason = at, reason
        self.log.debug("cache.refresh.scheduled", in_s=_finite(max(0.0, at - now)), reason=reason)

    def describe_unavailable(self, now: float) -> str:
        """Why no credentials are valid now, for :class:`CredentialsExpiredError`'s message."""
        entry, error = self.entry, self.last_error if self.retry_pending else None
        if entry is None:
            what = "no credentials fetched yet" + ("" if error else "; await cache.get() instead")
        elif entry.rejected:
            what = "the current credentials were rejected (invalidated)"
        else:
            what = "the credentials expired"
        if error is not None:
            retry_in = max(0.0, self.wake_at - now)
            what += (
                f"; last fetch failed ({type(error).__name__}: {error}); "
                f"next try in {retry_in:.1f} s"
            )
        return f"no valid credentials from {self.name!r}: {what}"


def _finite(seconds: float) -> float | None:
    """``seconds`` rounded for a log line; None for "never" (infinite)."""
    return round(seconds, 3) if math.isfinite(seconds) else None


def source_name(source: object) -> str:
    """A source's short name: its ``name`` attribute, else its class name."""
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else type(source).__name__
