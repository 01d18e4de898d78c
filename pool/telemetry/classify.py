"""Small, bounded label values for the instruments: why a refresh ran, why it failed.

Metric attributes must have few possible values (each combination is a time
series), and must never carry a message or a key: only the words below.
"""

from __future__ import annotations

import math

__all__ = ["ERROR_TYPES", "REASONS", "error_type", "pool_name", "refresh_reason"]

REASONS = ("initial", "advisory", "mandatory", "forced", "invalidated")
ERROR_TYPES = (
    "throttled",
    "timeout",
    "access_denied",
    "expired",
    "malformed",
    "unavailable",
    "other",
)

_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
}
_TIMEOUT = {"Timeout", "TokenTimeout", "RequestTimeout", "RequestTimeoutException"}
_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "InvalidIdentityToken",
    "IDPRejectedClaim",
    "SignatureDoesNotMatch",
    "TokenRejected",
    "InvalidToken",
    "NoInstanceProfile",
    "UnrecognizedClientException",
    "AuthFailure",
}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "ExpiredOnArrival"}
_MALFORMED = {
    "MalformedResponse",
    "MalformedExpiration",
    "ResponseTooLarge",
    "Redirect",
    "InvalidURL",
}
_UNAVAILABLE = {"ConnectionError", "ServiceUnavailable", "InternalFailure", "InternalError"}


def refresh_reason(requested: str, has_entry: bool, mandatory_at: float, now: float) -> str:
    """Which of :data:`REASONS` a fetch ran for.

    ``requested`` is the cache's own word for the attempt (``initial``,
    ``scheduled``, ``retry``, ``same-credentials``, ``get``, ``refresh``,
    ``invalidate``); ``mandatory_at`` is where the serving set's mandatory
    window begins (``-inf`` once it was invalidated).
    """
    if requested == "refresh":
        return "forced"
    if requested == "invalidate":
        return "invalidated"
    if not has_entry:
        return "initial"
    if math.isinf(mandatory_at) and mandatory_at < 0:
        return "invalidated"  # a retry after the server refused the serving set
    return "mandatory" if now >= mandatory_at else "advisory"


def error_type(error: BaseException) -> str:
    """Which of :data:`ERROR_TYPES` a failed fetch's error is (from its code and status only)."""
    code = getattr(error, "code", None)
    status = getattr(error, "status", None)
    if code in _THROTTLED or status == 429 or code == "HTTP429":
        return "throttled"
    if code in _TIMEOUT or isinstance(error.__cause__ or error, TimeoutError):
        return "timeout"
    if code in _EXPIRED:
        return "expired"
    if code in _DENIED or status in (401, 403):
        return "access_denied"
    if code in _MALFORMED or (isinstance(code, str) and code.startswith("Malformed")):
        return "malformed"
    if code in _UNAVAILABLE or (isinstance(status, int) and status >= 500):
        return "unavailable"
    return "other"


def pool_name(uri: str) -> str:
    """A pool's default name: the URI's host list (never its user info or options)."""
    rest = uri.split("://", 1)[-1]
    hosts = rest.split("/", 1)[0].split("?", 1)[0]
    return hosts.rsplit("@", 1)[-1] or "mongodb"
