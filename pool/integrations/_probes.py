"""HTTP answers for the pool's probes, shared by the framework glue.

``GET <prefix>/live`` and ``GET <prefix>/ready`` answer 200 or 503 with a
JSON body ``{"status": "ok"|"degraded"|"failing", "reasons": [...]}``, as
Kubernetes ``livenessProbe``/``readinessProbe`` ``httpGet`` checks expect
(any 2xx/3xx passes, anything else fails). ``degraded`` answers
``degraded_status`` (default 200: a fleet-wide STS outage should not take
every pod out of service while their open connections still serve; pass 503
to take a degraded pod out). What each status means:
:mod:`pool.client_pool.health`.
"""

from __future__ import annotations

from typing import Any, Literal

from pool.client_pool import ClientPool

__all__ = ["DEFAULT_PREFIX", "ProbeName", "answer", "check_degraded_status"]

DEFAULT_PREFIX = "/healthz"
ProbeName = Literal["live", "ready"]


def check_degraded_status(status: int) -> int:
    """``status`` if it is 200 or 503 (the two answers a probe tells apart)."""
    if status not in (200, 503):
        raise ValueError(f"degraded_status must be 200 or 503, not {status!r}")
    return status


def answer(
    cp: ClientPool[Any] | None, probe: ProbeName, degraded_status: int
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for ``probe`` of ``cp`` (``None``: no pool yet)."""
    if cp is None:
        # Before the lifespan/cleanup_ctx opened the pool, or after it closed.
        body = {"status": "failing", "reasons": ["no pool is open on this application"]}
        return (503 if probe == "ready" else 200), body
    health = cp.health()
    result = health.ready if probe == "ready" else health.live
    body = result.as_dict()
    if result.status == "ok":
        return 200, body
    if result.status == "degraded":
        return degraded_status, body
    return 503, body
