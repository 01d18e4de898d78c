"""What :meth:`pool.CredentialCache.status` returns: typed, JSON-serialisable, secret-free.

The result is a plain ``dict`` (``json.dumps`` takes it as it is, a readiness
probe can merge it) typed as :class:`CacheStatus`, documented field by field as
anyio documents its ``statistics()``. Times are seconds on the cache's clock,
rounded to milliseconds; ``None`` means "never" or "not known".
"""

from __future__ import annotations

import math
from typing import Literal, TypedDict

from pool._internal.log import key_hint
from pool.cache.entry import Entry
from pool.errors import PoolError

__all__ = ["CacheStatus", "ErrorStatus", "StateName", "status_of"]

_MAX_MESSAGE = 300

#: ``CacheStatus["state"]``: ``idle`` (not started), ``fetching`` / ``refreshing``
#: (a fetch in flight, without / with valid credentials), ``valid``, ``retrying``
#: (the last attempt failed or brought the same keys, still serving), ``failed``
#: (failed, nothing valid), ``expired``, ``crashed`` (the task is gone: every call
#: that needs a fetch raises :class:`pool.InvariantError`), ``closed``.
StateName = Literal[
    "idle", "fetching", "refreshing", "valid", "retrying", "failed", "expired", "crashed", "closed"
]


class ErrorStatus(TypedDict):
    """The last failed fetch, as ``CacheStatus["last_error"]``."""

    type: str
    """The exception's class name (``CredentialFetchError``, ...)."""
    message: str
    """Its message, at most 300 characters; third-party text in it is redacted."""
    retryable: bool
    """Whether trying again later may succeed."""


class CacheStatus(TypedDict):
    """A snapshot of one :class:`pool.CredentialCache`. Never blocks; no secret in it."""

    source: str
    """The source's name (``ecs``, ``ec2``, ``eks_irsa``, ...)."""
    state: StateName
    """Where the cache stands (see :data:`StateName`)."""
    key: str | None
    """A hint of the current access key id (``ASIA…WXYZ``), or None before the first set."""
    remaining_s: float | None
    """Seconds until the current set expires (negative once expired); None: no set or no expiry."""
    next_refresh_in_s: float | None
    """Seconds until the next fetch begins (0 while one is in flight); None: never scheduled."""
    advisory_window_s: float | None
    """The current set's advisory window: background refreshes happen in here."""
    mandatory_window_s: float | None
    """The current set's mandatory window: callers wait for a refresh in here."""
    fetches: int
    """Fetches begun since the cache started."""
    sets: int
    """New credential sets installed (same keys handed back again do not count)."""
    failures: int
    """Fetches that failed, in total."""
    consecutive_failures: int
    """Fetches that failed since the last success."""
    subscribers: int
    """Live :meth:`~pool.CredentialCache.subscribe` iterators."""
    listeners: int
    """Callbacks registered with :meth:`~pool.CredentialCache.add_listener`."""
    last_error: ErrorStatus | None
    """The last failure (kept after later successes), or None when none ever happened."""


def _seconds(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 3)


def status_of(
    *,
    name: str,
    state: StateName,
    entry: Entry | None,
    now: float,
    next_at: float,
    counts: dict[str, int],
    subscribers: int,
    listeners: int,
    last_error: PoolError | None,
) -> CacheStatus:
    """Build the snapshot (key hints and error classes only: no secrets)."""
    error: ErrorStatus | None = None
    if last_error is not None:
        error = {
            "type": type(last_error).__name__,
            "message": str(last_error)[:_MAX_MESSAGE],
            "retryable": bool(getattr(last_error, "retryable", False)),
        }
    windows = entry.windows if entry is not None else None
    return {
        "source": name,
        "state": state,
        "key": key_hint(entry.creds.access_key_id) if entry is not None else None,
        "remaining_s": _seconds(entry.deadline - now) if entry is not None else None,
        "next_refresh_in_s": _seconds(max(0.0, next_at - now)),
        "advisory_window_s": _seconds(windows.advisory) if windows else None,
        "mandatory_window_s": _seconds(windows.mandatory) if windows else None,
        "fetches": counts["fetches"],
        "sets": counts["sets"],
        "failures": counts["failures"],
        "consecutive_failures": counts["consecutive_failures"],
        "subscribers": subscribers,
        "listeners": listeners,
        "last_error": error,
    }
