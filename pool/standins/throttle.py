"""Rate limits and per-second counters for the stand-ins: throttling as AWS does it.

Real credential endpoints are rate-limited, each in its own way:

* the ECS agent's task metadata server (credentials included) runs one
  token bucket (``tollbooth``'s limiter over ``golang.org/x/time/rate``), 40
  requests/s steady and 60 burst by default, ``ECS_TASK_METADATA_RPS_LIMIT``;
  over it the agent answers ``429`` with tollbooth's default body
  ``You have reached maximum request limit.`` as ``text/plain`` (read from
  ``ecs-agent/tmds/server.go`` and the vendored ``didip/tollbooth`` v4.0.2);
* IMDS throttles per instance and answers ``429``;
* STS throttles per account (limits unpublished) with HTTP 400 and the Query
  API error ``Sender``/``Throttling``/``Rate exceeded``.

:class:`Throttle` holds one :class:`TokenBucket` per target (an endpoint
such as ``sts``, or ``endpoint:operation``) and counts, per wall-clock
second, every call it admits or refuses; :class:`RateCounters` is the same
per-second counting for anything else (the MongoDB stand-in counts
``saslStart``, successful authentications and new connections with it). Both
are thread-safe: the stand-ins run on their own loop or thread while tests
and benchmarks read the counters. Spec strings for the CLI::

    sts=5          5 calls/s, burst 5
    ecs=40:60      the ECS agent's default
    sts:AssumeRoleWithWebIdentity=2:4
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ECS_AGENT_DEFAULT",
    "RateCounters",
    "RateLimit",
    "Throttle",
    "TokenBucket",
    "parse_rate_limit",
    "peak",
    "percentile",
]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket's shape: ``rate`` tokens per second, at most ``burst`` saved up."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be a positive number of calls per second; got {self.rate}")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise ValueError(f"burst must be at least 1; got {self.burst}")


#: ``ECS_TASK_METADATA_RPS_LIMIT``'s default in the ECS agent: 40/s steady, 60 burst.
ECS_AGENT_DEFAULT = RateLimit(40.0, 60.0)

_SPEC = re.compile(
    r"^(?P<target>[A-Za-z0-9_*]+(?::[A-Za-z0-9_]+)?)=(?P<rate>[0-9.]+)(?::(?P<burst>[0-9.]+))?$"
)


def parse_rate_limit(spec: str) -> tuple[str, RateLimit]:
    """Parse ``TARGET[:OPERATION]=RATE[:BURST]``; the burst defaults to the rate (at least 1)."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(
            f"bad rate limit {spec!r}: expected TARGET[:OPERATION]=RATE[:BURST], "
            "e.g. 'sts=5' or 'ecs=40:60'"
        )
    rate = float(m["rate"])
    burst = float(m["burst"]) if m["burst"] else max(1.0, rate)
    return m["target"], RateLimit(rate, burst)


class TokenBucket:
    """A token bucket on an injectable clock (monotonic seconds); starts full."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = limit.burst
        self._at = clock()

    def take(self) -> bool:
        """Spend one token if there is one; False means the call is throttled."""
        now = self._clock()
        self._tokens = min(self.limit.burst, self._tokens + (now - self._at) * self.limit.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class RateCounters:
    """Events counted per name and per wall-clock second (``int(time.time())``).

    ``record(name)`` is cheap (one dict update under a lock); ``per_second``
    gives ``{second: count}`` for one name, ``snapshot`` all of them.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._bins: dict[str, Counter[int]] = {}

    @classmethod
    def merged(cls, parts: Iterable[RateCounters]) -> RateCounters:
        """One set of counters summing ``parts`` (e.g. every member of a cluster)."""
        total = cls()
        for part in parts:
            with part._lock:
                items = [(n, dict(b)) for n, b in part._bins.items()]
            for name, bins in items:
                total._bins.setdefault(name, Counter()).update(bins)
        return total

    def record(self, name: str, count: int = 1) -> None:
        second = int(self._clock())
        with self._lock:
            self._bins.setdefault(name, Counter())[second] += count

    def per_second(self, name: str) -> dict[int, int]:
        with self._lock:
            return dict(self._bins.get(name, {}))

    def total(self, name: str) -> int:
        with self._lock:
            return sum(self._bins.get(name, {}).values())

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._bins)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{name: {second: count}}`` with string keys, ready for JSON."""
        with self._lock:
            return {n: {str(s): c for s, c in sorted(b.items())} for n, b in self._bins.items()}


class Throttle:
    """Rate limits per target, and per-second counts of admitted and throttled calls.

    Targets match like faults do (:mod:`pool.standins.faults`): ``"sts"`` covers
    every STS operation, ``"sts:AssumeRole"`` only that one, ``"*"`` every
    endpoint; each target has its own bucket (one bucket shared by all that it
    covers, as the ECS agent has one limiter per server). Counters are kept for
    every endpoint whether limited or not: ``calls`` (``endpoint`` and
    ``endpoint:operation``) and ``throttled`` (the same names).
    """

    def __init__(
        self,
        limits: Iterable[tuple[str, RateLimit]] | dict[str, RateLimit] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        counter_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self.calls = RateCounters(counter_clock)
        self.throttled = RateCounters(counter_clock)
        items = limits.items() if isinstance(limits, dict) else limits
        for target, limit in items:
            self.set_limit(target, limit)

    def set_limit(self, target: str, limit: RateLimit | str | None) -> None:
        """Limit ``target`` (a :class:`RateLimit` or ``"RATE[:BURST]"``); None removes it."""
        with self._lock:
            if limit is None:
                self._buckets.pop(target, None)
                return
            if isinstance(limit, str):
                limit = parse_rate_limit(f"{target}={limit}")[1]
            self._buckets[target] = TokenBucket(limit, self._clock)

    def limits(self) -> dict[str, RateLimit]:
        with self._lock:
            return {t: b.limit for t, b in self._buckets.items()}

    def admit(self, endpoint: str, operation: str | None = None) -> bool:
        """Count one call; False when a bucket covering it is empty (answer "throttled")."""
        names = [endpoint] + ([f"{endpoint}:{operation}"] if operation else [])
        for name in names:
            self.calls.record(name)
        with self._lock:
            buckets = [b for t, b in self._buckets.items() if t in ("*", *names)]
            allowed = all([b.take() for b in buckets])  # every covering bucket pays
        if not allowed:
            for name in names:
                self.throttled.record(name)
        return allowed

    def snapshot(self) -> dict[str, Any]:
        """Limits and the per-second counters, for ``python -m pool emulate --stats``."""
        return {
            "limits": {t: {"rate": r.rate, "burst": r.burst} for t, r in self.limits().items()},
            "calls": self.calls.snapshot(),
            "throttled": self.throttled.snapshot(),
        }


def peak(per_second: dict[Any, int]) -> int:
    """The largest count in one second (0 when empty)."""
    return max(per_second.values(), default=0)


def percentile(per_second: dict[Any, int], q: float, *, span: Iterable[int] | None = None) -> float:
    """The ``q`` (0..100) percentile of the per-second counts; ``span`` adds the zero seconds."""
    if span is not None:
        keys = {int(k): v for k, v in per_second.items()}
        values = sorted(keys.get(s, 0) for s in span)
    else:
        values = sorted(per_second.values())
    if not values:
        return 0.0
    rank = min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))
    return float(values[rank])
