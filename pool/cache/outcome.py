"""What a fetch's outcome means: plain functions for :class:`~pool.cache.refresh.RefreshMachine`.

The errors a fetched value is refused with, the retry delays after a failure
or the same keys again, and the log lines that say what the cache decided.
Nothing here changes state or reads a clock; the policy numbers themselves are
:mod:`pool.cache.windows`'s.
"""

from __future__ import annotations

import math
import random
from typing import Any

from pool._internal.log import key_hint
from pool.cache import windows as w
from pool.cache.entry import Entry
from pool.cache.policy import Policy
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, PoolError

__all__ = [
    "describe_unavailable",
    "failure_delay",
    "finite",
    "log_failure",
    "log_success",
    "not_credentials",
    "refresh_point",
    "rejected",
    "same_delay",
    "windows_for",
]


def windows_for(remaining: float, policy: Policy) -> w.Windows:
    """The windows for a set with ``remaining`` seconds left, under ``policy``."""
    return w.windows_for(remaining, policy.advisory, policy.mandatory)


def refresh_point(
    now: float,
    deadline: float,
    windows: w.Windows,
    policy: Policy,
    rng: random.Random,
    *,
    first: bool,
) -> float:
    """The jittered refresh point of a set that arrived at ``now``, expiring at ``deadline``.

    With ``policy.fleet`` it is spread as :func:`pool.cache.windows.spread_refresh_point`
    says (``first``: the cache's first set); without, :func:`pool.cache.windows.refresh_point`.
    """
    return w.spread_refresh_point(
        now, deadline, windows, policy.jitter, rng, policy.fleet, first=first
    )


def same_delay(streak: int, policy: Policy, windows: w.Windows, rng: random.Random) -> float:
    """The delay after the same keys came back ``streak`` times in a row."""
    return w.same_credentials_delay(streak, policy.same_retry, windows.advisory, rng)


def failure_delay(
    error: PoolError,
    attempt: int,
    policy: Policy,
    entry: Entry | None,
    rng: random.Random,
    now: float = -math.inf,
) -> float:
    """The delay before retrying after failure number ``attempt``: :func:`.windows.retry_delay`.

    ``serving`` for that rule is "valid credentials outside the mandatory
    window at ``now``", ``first`` "nothing fetched yet" (no ``entry``).
    """
    serving = entry is not None and now < min(entry.valid_until, entry.mandatory_at)
    return w.retry_delay(
        attempt,
        rng,
        throttled=bool(getattr(error, "throttled", False)),
        retryable=bool(getattr(error, "retryable", False)),
        backoff_initial=policy.backoff_initial,
        backoff_max=policy.backoff_max,
        lifetime=entry.lifetime if entry is not None else None,
        fleet=policy.fleet,
        serving=serving,
        first=entry is None,
    )


def not_credentials(name: str, value: object) -> CredentialFetchError:
    """The error for a source whose fetch() returned something else than Credentials."""
    return CredentialFetchError(
        f"credential source {name!r} returned {type(value).__name__}, "
        "not pool.Credentials; fix the source's fetch()",
        source=name,
        retryable=False,
        code="MalformedResponse",  # the metrics' error.type "malformed"
    )


def rejected(
    name: str, creds: Credentials, remaining: float, mandatory: float
) -> CredentialFetchError:
    """The error for a set that arrived expired or inside the mandatory window."""
    what = "already expired" if remaining <= 0 else f"expiring in {remaining:.1f} s"
    return CredentialFetchError(
        f"credential source {name!r} returned credentials "
        f"({key_hint(creds.access_key_id)}) {what}, inside the {mandatory:.1f} s mandatory "
        "refresh window; check the source's clock and expiry, or lower mandatory_window",
        source=name,
        retryable=True,
        code="ExpiredOnArrival",  # the metrics' error.type "expired"
    )


def log_failure(
    log: Any,
    error: PoolError,
    consecutive: int,
    entry: Entry | None,
    at: float,
    now: float,
    duration_ms: float,
) -> None:
    """Log what the cache decided after a failed fetch.

    A built-in source logs the failure itself, with the reason. A foreign
    exception (a custom source's RuntimeError, wrapped by as_pool_error) was
    logged by nobody: its redacted message (the wrapper's text) goes here, or
    the operator cannot diagnose it.
    """
    valid_for = entry.valid_until - now if entry is not None else -math.inf
    cause = error.__cause__
    log.warning(
        "cache.fetch.failed",
        error_class=type(error).__name__,
        cause_class=type(cause).__name__ if cause else None,
        reason=str(error) if cause is not None and not isinstance(cause, PoolError) else None,
        retryable=bool(getattr(error, "retryable", False)),
        throttled=bool(getattr(error, "throttled", False)),
        consecutive=consecutive,
        retry_in_s=finite(at - now),
        serving_current=valid_for > 0,
        valid_for_s=finite(valid_for) if valid_for > 0 else None,
        duration_ms=duration_ms,
    )


def log_success(
    log: Any, entry: Entry | None, rotated: bool, now: float, duration_ms: float
) -> None:
    """Log the end of a successful fetch (key hint, expiry; never a secret)."""
    if entry is None:
        return
    log.info(
        "cache.fetch.end",
        outcome="rotated" if rotated else "same-credentials",
        key=key_hint(entry.creds.access_key_id),
        expires_in=None if entry.lifetime is None else round(entry.deadline - now, 3),
        duration_ms=duration_ms,
    )


def describe_unavailable(
    name: str,
    entry: Entry | None,
    error: PoolError | None,
    wake_at: float,
    now: float,
    *,
    started: bool,
) -> str:
    """Why no credentials are valid now, for :class:`pool.CredentialsExpiredError`'s message."""
    if entry is None:
        what = "no credentials fetched yet"
        if not started:
            what += " (the cache is not started: 'async with cache:' or 'await cache.start()')"
        elif error is None:
            what += "; await cache.get() instead"
    elif entry.rejected:
        what = "the current credentials were rejected (invalidated)"
    else:
        what = "the credentials expired"
    if error is not None:
        retry_in = max(0.0, wake_at - now)
        what += (
            f"; last fetch failed ({type(error).__name__}: {error}); next try in {retry_in:.1f} s"
        )
    return f"no valid credentials from {name!r}: {what}"


def finite(seconds: float) -> float | None:
    """``seconds`` rounded for a log line or a status; None for "never" (infinite)."""
    return round(seconds, 3) if math.isfinite(seconds) else None
