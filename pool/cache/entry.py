"""The plain records behind :class:`pool.CredentialCache`: one credential set, one fetch.

Kept apart from the cache's control flow so each piece stays readable; nothing
here awaits or reads a clock.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from types import TracebackType

import anyio

from pool._internal.redact import describe
from pool.cache.windows import Windows
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, PoolError

__all__ = ["Entry", "Flight", "as_pool_error"]

_MAX_MESSAGE = 300


@dataclass(slots=True, eq=False)
class Entry:
    """The current credential set and its times, all on the cache's clock.

    ``deadline`` is when the set expires (``inf`` for long-term keys);
    ``valid_until`` is the deadline, or ``-inf`` while the set stands rejected by
    :meth:`invalidate`; ``mandatory_at`` is where the mandatory window begins.
    ``invalidated`` stays True once set, so a set is invalidated only once.
    """

    creds: Credentials
    deadline: float
    lifetime: float | None
    windows: Windows | None
    refresh_at: float
    valid_until: float = field(init=False)
    mandatory_at: float = field(init=False)
    invalidated: bool = False

    def __post_init__(self) -> None:
        self._restore()

    def _restore(self) -> None:
        self.valid_until = self.deadline
        self.mandatory_at = self.deadline - (self.windows.mandatory if self.windows else 0.0)

    @property
    def rejected(self) -> bool:
        """True while the set is invalidated and not handed back by the source since."""
        return self.valid_until == -math.inf

    def invalidate(self) -> None:
        """The server rejected this set: stop handing it out."""
        self.invalidated = True
        self.valid_until = self.mandatory_at = -math.inf

    def extend(self, deadline: float) -> None:
        """The source returned these keys again: usable again, until the later deadline."""
        self.deadline = max(self.deadline, deadline)
        self._restore()


class Flight:
    """One fetch attempt that any number of callers wait on.

    It runs in the cache's task, never in a caller's, so a caller cancelled
    while waiting on :attr:`done` leaves it running for everybody else.
    """

    __slots__ = ("creds", "done", "error", "reason", "traceback")

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.done = anyio.Event()
        self.creds: Credentials | None = None
        self.error: BaseException | None = None
        self.traceback: TracebackType | None = None

    def finish(self, creds: Credentials | None, error: BaseException | None) -> None:
        """Record the outcome and wake every waiter."""
        self.creds, self.error = creds, error
        # Each waiter re-raises the one error object with this traceback (as
        # asyncio.Future does), so the traceback does not grow per waiter.
        self.traceback = error.__traceback__ if error is not None else None
        self.done.set()


def as_pool_error(exc: BaseException, source: str) -> PoolError:
    """``exc`` as one of the library's errors: ours as they are, others wrapped.

    Unknown exceptions (a custom source's ``OSError``, a bug, a stray
    ``CancelledError``) become a retryable :class:`CredentialFetchError`, so
    they are retried with backoff. Their text comes from third-party code and
    may quote a URL with a token or a response body, so the new message keeps
    only its redacted form (:func:`pool._internal.redact.describe`); the original stays
    reachable as ``__cause__`` only, for tracebacks. The library's own errors
    pass through (their messages carry no secret); only a
    :class:`CredentialFetchError` with ``retryable`` set is retried soon
    (misuse such as a closed source or bad configuration is not).
    """
    if isinstance(exc, PoolError):
        return exc
    if isinstance(exc, asyncio.CancelledError):
        detail = (
            "CancelledError although the cache did not cancel it "
            "(a bug in the source or in a library it uses); retrying with backoff"
        )
    else:
        detail = describe(exc, limit=_MAX_MESSAGE)
    err = CredentialFetchError(
        f"credential source {source!r} failed: {detail}", source=source, retryable=True
    )
    err.__cause__ = exc
    return err
