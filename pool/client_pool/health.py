"""What a readiness and a liveness probe should answer, from the pool's and cache's state.

Two questions, as Kubernetes asks them:

* **readiness**: can this process serve database work now, and will it still
  be able to open connections? Answered ``ok``, ``degraded`` or ``failing``;
* **liveness**: is the pool itself stuck (so that restarting the process is
  the fix)? Answered ``ok`` or ``failing``.

Readiness, condition by condition (the first that applies wins):

==========  ===============================================================
failing     the pool is not open (starting, closing, closed)
failing     no client is serving
failing     the serving client's credentials expired and it has no open
            connection: every operation would wait out server selection
degraded    the serving client's credentials expired but connections are
            still open: work on them goes on, new connections are refused
degraded    the credential refresh is failing (cache ``retrying``,
            ``failed``, ``expired``, or failures in a row) while the serving
            credentials are valid
degraded    the last warm-up of the next client failed (the current one
            keeps serving until its credentials expire)
ok          otherwise
==========  ===============================================================

Liveness is ``failing`` when the pool is closed, when one of its background
tasks ended while it is open, when the credential cache's task crashed, or
when one warm-up has run for more than twice ``warmup_timeout`` plus
:data:`STUCK_GRACE` (it is bounded by ``warmup_timeout``, so it hangs).

:func:`assess` is pure: it maps a :class:`HealthInputs` snapshot to a
:class:`Health`, so every row above is a unit test with no server;
:func:`pool_health` reads those facts from a pool's parts (no I/O, no await).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pool.client_pool.rotation import Gen, Rotator

__all__ = [
    "STUCK_GRACE",
    "Health",
    "HealthInputs",
    "Probe",
    "ProbeStatus",
    "assess",
    "pool_health",
]

ProbeStatus = Literal["ok", "degraded", "failing"]

#: Seconds beyond twice ``warmup_timeout`` after which a running warm-up counts as stuck.
STUCK_GRACE = 10.0

_CACHE_FAILING = ("retrying", "failed", "expired")


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe's answer: ``status`` and the reasons behind it (empty when ``ok``)."""

    status: ProbeStatus
    reasons: tuple[str, ...] = ()

    @property
    def passing(self) -> bool:
        """True unless ``failing``: what a probe answering 200/503 should send."""
        return self.status != "failing"

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class Health:
    """Readiness and liveness at one instant; :meth:`as_dict` is JSON-able."""

    ready: Probe
    live: Probe

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready.as_dict(), "live": self.live.as_dict()}


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """The facts :func:`assess` needs, read from the pool and its cache at one instant.

    ``remaining_s`` is the serving credentials' remaining lifetime (``None``:
    no serving client, or long-term keys); ``connections`` the serving
    client's open, authenticated connections; ``cache_state`` the cache's
    ``status()["state"]`` and ``cache_failures`` its ``consecutive_failures``
    (a fetch under way after failures is still a failing refresh);
    ``dead_tasks`` the names of pool background tasks that ended while the
    pool is open; ``warming_for_s`` how long the warm-up
    under way has run (``None``: none).
    """

    pool_state: str
    serving: bool
    remaining_s: float | None
    connections: int
    cache_state: str
    cache_error: str | None = None
    cache_failures: int = 0
    dead_tasks: tuple[str, ...] = ()
    warming_for_s: float | None = None
    warmup_timeout: float = 30.0
    warmup_failures_in_a_row: int = 0
    last_warmup_error: str | None = None


def assess(facts: HealthInputs) -> Health:
    """Readiness and liveness for ``facts``, by the tables in this module's docstring."""
    return Health(ready=_readiness(facts), live=_liveness(facts))


def _readiness(f: HealthInputs) -> Probe:
    if f.pool_state != "open":
        return Probe("failing", (f"the pool is {f.pool_state}",))
    if not f.serving:
        return Probe("failing", ("no client is serving",))
    reasons: list[str] = []
    if f.remaining_s is not None and f.remaining_s <= 0:
        ago = f"the serving credentials expired {-f.remaining_s:.1f} s ago"
        if f.connections == 0:
            return Probe(
                "failing",
                (
                    f"{ago} and no connection is open: new connections would be refused",
                    *_refresh_reason(f),
                ),
            )
        reasons.append(
            f"{ago}; {f.connections} open connection(s) still serve, new ones would be refused"
        )
    reasons.extend(_refresh_reason(f))
    if f.warmup_failures_in_a_row:
        reasons.append(
            f"the next client's warm-up failed {f.warmup_failures_in_a_row} time(s) in a row"
            + (f": {f.last_warmup_error}" if f.last_warmup_error else "")
        )
    return Probe("degraded", tuple(reasons)) if reasons else Probe("ok")


def _refresh_reason(f: HealthInputs) -> tuple[str, ...]:
    if f.cache_state not in _CACHE_FAILING and not f.cache_failures:
        return ()
    detail = f": {f.cache_error}" if f.cache_error else ""
    times = f"{f.cache_failures} failure(s) in a row, " if f.cache_failures else ""
    return (f"the credential refresh is failing ({times}cache {f.cache_state}){detail}",)


def _liveness(f: HealthInputs) -> Probe:
    reasons: list[str] = []
    if f.pool_state == "closed":
        reasons.append("the pool is closed")
    if f.dead_tasks:
        reasons.append(
            f"background task(s) ended while the pool is open: {', '.join(f.dead_tasks)}"
        )
    if f.cache_state == "crashed":
        reasons.append("the credential cache's refresh task crashed")
    limit = 2 * f.warmup_timeout + STUCK_GRACE
    if f.warming_for_s is not None and f.warming_for_s > limit:
        reasons.append(
            f"a warm-up has run for {f.warming_for_s:.0f} s (bounded by warmup_timeout "
            f"{f.warmup_timeout:g} s): it hangs"
        )
    return Probe("failing", tuple(reasons)) if reasons else Probe("ok")


def pool_health(
    *,
    now: float,
    state: str,
    current: Gen | None,
    rotator: Rotator,
    cache: Mapping[str, Any],
    tasks: Sequence[asyncio.Task[None]],
    warmup_timeout: float,
) -> Health:
    """:func:`assess` on the facts read from one pool's parts at ``now`` (monotonic)."""
    error = cache.get("last_error")
    warm_error = rotator.last_failure(now)
    since = rotator.warming_since
    dead = () if state != "open" else tuple(t.get_name() for t in tasks if t.done())
    return assess(
        HealthInputs(
            pool_state=state,
            serving=current is not None,
            remaining_s=None
            if current is None or current.expires_at is None
            else current.expires_at - now,
            connections=0 if current is None else current.handle.monitor.ready,
            cache_state=str(cache.get("state")),
            cache_error=None if not error else str(error.get("message")),
            cache_failures=int(cache.get("consecutive_failures") or 0),
            dead_tasks=dead,
            warming_for_s=None if since is None else now - since,
            warmup_timeout=warmup_timeout,
            warmup_failures_in_a_row=rotator.failures_in_a_row,
            last_warmup_error=None if warm_error is None else warm_error.message,
        )
    )
