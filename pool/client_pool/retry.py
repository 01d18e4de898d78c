"""The retry policy of :meth:`pool.ClientPool.run`: which failures get one more try.

Every failure retried here happened before the server ran the failing
command: the credentials were refused while a new connection opened (code
18), the pool was paused by such a refusal, or the client had been closed
(a lease dropped at its drain deadline). Retrying a single operation is then
safe, writes included; a function doing several writes is not, hence
``run(..., retry=False)``.
"""

from __future__ import annotations

from pymongo.errors import NotPrimaryError, OperationFailure

from pool._internal.log import key_hint
from pool.client_pool.drivers import is_auth_failure, is_client_closed, is_pool_paused
from pool.client_pool.rotation import Gen
from pool.errors import AuthenticationError, LeaseExpiredError

__all__ = ["auth_error", "expired_lease_error", "refused_not_primary", "retry_worthy"]

#: NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary: the
#: member refused the command before running it (it is no longer primary).
_NOT_PRIMARY = frozenset({10107, 13435, 13436})


def refused_not_primary(exc: Exception) -> bool:
    """True for a write or read a member refused because it is not (or no longer) primary.

    PyMongo retries such a write itself only when it carried a transaction
    number, and PyMongo 4.20 decides that from the selected server's
    description *after* checkout: when the streaming monitor has just heard
    of an election, the write goes out without one, is refused with 10107
    and no ``RetryableWriteError`` label, and fails (measured on the
    replica-set stand-in: 2 to 5 writes of 50 to 270 per stepdown). The
    server did not run it, so one retry on the same client, after the
    driver re-selects the primary, is safe. (A ``NotPrimaryError`` without a
    code, from a network error, is not one of these.)
    """
    if isinstance(exc, NotPrimaryError):  # an AutoReconnect: the code is in its details
        details = exc.details
        return isinstance(details, dict) and details.get("code") in _NOT_PRIMARY
    return isinstance(exc, OperationFailure) and exc.code in _NOT_PRIMARY


def retry_worthy(gen: Gen, exc: Exception) -> bool:
    """True when ``exc``, raised by an operation on ``gen``, is worth one retry elsewhere.

    Only failures known to precede the command: any other error, even on a
    generation closed at its drain deadline (a network timeout, say), may
    come after the server applied a write, so it is not retried.
    """
    if is_auth_failure(exc) or is_client_closed(exc):
        return True
    # After an auth failure PyMongo pauses the client's pool; checkouts then
    # fail before sending anything, for the same reason.
    return gen.auth_failure_reported and is_pool_paused(exc)


def auth_error(gen: Gen | None) -> AuthenticationError:
    """The error :meth:`pool.ClientPool.run` raises when refused credentials remain."""
    key = "-" if gen is None else key_hint(gen.credentials.access_key_id)
    return AuthenticationError(
        f"MongoDB refused the AWS credentials {key} (AuthenticationFailed, code 18) and no "
        "newer client could take over in time (the newer credentials were refused too, or "
        "their warm-up did not finish); the pool invalidated them. Check that the IAM role "
        "is mapped to a database user (Atlas: Database Access, AWS IAM)."
    )


def expired_lease_error(gen: Gen, exc: BaseException, now: float) -> LeaseExpiredError | None:
    """The error for a lease on ``gen`` (credentials expired at ``now``) that needed a new
    connection, or None when ``exc`` is something else.

    Refused authentication (code 18), or PyMongo's "connection pool paused"
    that follows one, on a generation whose credentials have expired: the
    connections the lease had still work, but it needed one more, and
    expired credentials cannot open it.
    """
    if not (is_auth_failure(exc) or is_pool_paused(exc)) or gen.expires_at is None:
        return None
    return LeaseExpiredError(
        f"this lease on client generation {gen.number} (key "
        f"{key_hint(gen.credentials.access_key_id)}) needed a new MongoDB connection "
        f"{now - gen.expires_at:.1f} s after its AWS credentials expired; MongoDB refuses "
        "new connections with expired credentials (the ones already open keep working). "
        "Take a new lease (`async with cp.client()`) for work that starts after a rotation, "
        "or run fewer operations concurrently inside one lease.",
        generation=gen.number,
    )
