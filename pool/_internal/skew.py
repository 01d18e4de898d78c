"""How far this machine's clock is from the clocks of the endpoints that hand it credentials.

SigV4 signatures are refused more than 15 minutes from AWS's clock: STS
answers ``SignatureDoesNotMatch``, and a MONGODB-AWS handshake (whose signed
``GetCallerIdentity`` the server forwards to STS) fails with code 18, which
says nothing about time. Every HTTP answer of a credentials endpoint (STS,
IMDS, the ECS and Pod Identity agents) carries a ``Date`` header (RFC 9110,
one-second resolution); the sources report each one here, the first skew of
more than :data:`WARN_AT` is logged (``clock_skew``), and a refused warm-up
names the measured skew (:func:`describe`).

Process-wide on purpose: the host has one clock. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import time
from datetime import UTC
from email.utils import parsedate_to_datetime

from pool._internal.log import get_logger

__all__ = ["LIMIT", "WARN_AT", "current", "describe", "observe", "reset"]

LIMIT = 15 * 60  # SigV4's tolerance at STS, in seconds
WARN_AT = 5 * 60  # told well before the limit (a drifting clock keeps drifting)

_log = get_logger("pool.sources")
_last: tuple[float, str] | None = None  # (local - remote seconds, where it was measured)
_warned = False


def observe(date_header: str | None, where: str, now: float | None = None) -> float | None:
    """Record the skew a response's ``Date`` header shows; return it (None if unparsable).

    ``now`` is this machine's wall-clock time when the answer arrived
    (default: ``time.time()``); ``where`` names the endpoint (host:port).
    Positive: this machine is ahead.
    """
    global _last, _warned
    if not date_header:
        return None
    try:
        parsed = parsedate_to_datetime(date_header)
        if parsed.tzinfo is None:  # asctime / "-0000": HTTP dates are always GMT (RFC 9110)
            parsed = parsed.replace(tzinfo=UTC)
        remote = parsed.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    skew = (time.time() if now is None else now) - remote
    _last = (skew, where)
    if abs(skew) >= WARN_AT and not _warned:
        _warned = True
        _log.warning(
            "clock_skew",
            skew_s=round(skew),
            endpoint=where,
            hint="this machine's clock is far from the endpoint's; SigV4 (STS and "
            "MONGODB-AWS) refuses signatures over 15 minutes off: check NTP/chrony",
        )
    elif abs(skew) < WARN_AT:
        _warned = False
    return skew


def current() -> tuple[float, str] | None:
    """The last skew measured and where, or None before any answer with a ``Date``."""
    return _last


def describe() -> str | None:
    """A sentence for error messages when the last measured skew is large, else None."""
    if _last is None or abs(_last[0]) < WARN_AT:
        return None
    skew, where = _last
    side = "ahead of" if skew > 0 else "behind"
    over = "over" if abs(skew) > LIMIT else "under"
    return (
        f"Measured: this machine's clock is {abs(skew):,.0f} s {side} {where}'s "
        f"(its Date header), {over} SigV4's 15-minute limit."
    )


def reset() -> None:
    """Forget what was measured (tests)."""
    global _last, _warned
    _last, _warned = None, False
