"""What :meth:`pool.ClientPool.status` returns: frozen dataclasses, documented field by field.

Like anyio's ``statistics()`` results, each is a snapshot taken at one
instant, never updated afterwards. ``to_dict()`` gives the JSON-serialisable
form (``json.dumps(cp.status().to_dict())``: tuples become lists, nested
records dicts). No field ever holds a secret: keys appear as hints
(``ASIA...WXYZ``) and error messages are redacted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pool._internal.log import key_hint
from pool.cache.status import RefreshCounts
from pool.client_pool.health import Health

if TYPE_CHECKING:
    from pool.client_pool.budget import ConnectionBudget
    from pool.client_pool.drivers import DriverClient
    from pool.client_pool.generations import Generation, GenerationBook
    from pool.client_pool.rotation import Rotator
    from pool.telemetry.hooks import PoolTelemetry

__all__ = [
    "ConnectionCounts",
    "CredentialStatus",
    "GenerationStatus",
    "PoolState",
    "PoolStatus",
    "WarmupFailure",
    "snapshot",
]

PoolState = Literal["new", "starting", "open", "closing", "closed"]


class _Record:
    """``to_dict()`` for the records below."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """This record as plain JSON-serialisable values (tuples as lists)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload, no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ConnectionCounts(_Record):
    """One client's connections, from the driver's CMAP events.

    ``open``: open and authenticated now (monitoring connections excluded);
    ``in_use``: checked out by operations now; ``peak_in_use``: the most
    checked out at once so far; ``pending``: being opened now (TCP,
    handshake, authentication); ``created``/``closed``: totals so far;
    ``per_member``: open connections per member (``"host:port"``; on a
    replica set ``warm_connections`` is per member).
    """

    open: int
    in_use: int
    peak_in_use: int
    pending: int
    created: int
    closed: int
    per_member: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class GenerationStatus(_Record):
    """One client generation not yet closed.

    ``number``: its generation number; ``state``: ``warming``, ``active`` or
    ``draining``; ``leases``: leases open on it; ``key``: its access key id,
    as a hint; ``credentials_remaining_s``: seconds until its credentials
    expire (negative once expired; None for long-term keys: a draining client
    keeps serving its leases past expiry); ``draining_for_s``: seconds since
    it was replaced (None unless draining); ``drain_deadline_in_s``: seconds
    until it is closed even if leases remain (None unless draining);
    ``connections``: its :class:`ConnectionCounts`.
    """

    number: int
    state: str
    leases: int
    key: str
    credentials_remaining_s: float | None
    draining_for_s: float | None
    drain_deadline_in_s: float | None
    connections: ConnectionCounts


@dataclass(frozen=True, slots=True)
class CredentialStatus(_Record):
    """The serving client's credentials: ``key`` (a hint), ``source`` (the source's
    name), ``remaining_s`` (seconds to expiry, negative once expired, None for
    long-term keys)."""

    key: str
    source: str
    remaining_s: float | None


@dataclass(frozen=True, slots=True)
class WarmupFailure(_Record):
    """The last failed warm-up: ``message`` (redacted) and ``seconds_ago``."""

    message: str
    seconds_ago: float


@dataclass(frozen=True, slots=True)
class PoolStatus(_Record):
    """A snapshot of one :class:`pool.ClientPool`.

    * ``ready``: readiness is ``ok`` or ``degraded`` (:meth:`pool.ClientPool.health`);
    * ``state``: ``new`` (constructed), ``starting`` (in ``start()``), ``open``,
      ``closing`` (in ``aclose()``), ``closed``;
    * ``driver``: ``"pymongo"`` or ``"motor"``;
    * ``generation``: the serving generation's number (None when none
      serves); failed warm-ups use numbers too;
    * ``generations``: every generation not yet closed, oldest first;
    * ``leases``: open leases per generation number (as a string, for JSON);
    * ``draining``: numbers of the replaced generations still open;
    * ``rotations``: swaps since start; ``dropped_leases``: leases whose
      client was closed under them at the drain bound or at ``aclose()``'s
      ``close_timeout``; ``run_retries``: ``run()`` calls retried on a newer
      client;
    * ``warmup_failures``, ``warmup_failures_in_a_row``, ``partial_warmups``
      (swaps made with fewer than ``warm_connections`` because the serving
      credentials were about to expire);
    * ``credentials``: the serving client's :class:`CredentialStatus`, or None;
    * ``last_warmup_error``: the last :class:`WarmupFailure`, or None;
    * ``last_refresh_error``: the cache's last error message, or None;
    * ``last_warmup_s``: seconds the last warm-up took, whatever its outcome
      (full, partial, refused, failed), on the pool's clock; None before the first;
    * ``last_drain_s``: seconds from the last swap to the close of the client
      it replaced, on the pool's clock; None before the first drain ends;
    * ``refreshes``: the cache's fetches by outcome
      (:class:`pool.cache.RefreshCounts`: ``rotated``, ``same``, ``failed``);
      these three are the figures the metrics report (:mod:`pool.telemetry`);
    * ``cache``: the credential cache's own status
      (:meth:`pool.CredentialCache.status`);
    * ``health``: readiness and liveness with reasons
      (:class:`pool.client_pool.health.Health`);
    * ``max_connections_per_member``: the cap set on the pool, or None;
      ``capped_warmups``: warm-ups that opened fewer than ``warm_connections``
      to stay under it; ``capped_leases``: leases that waited for room under it;
      ``cap_overruns``: leases admitted past it after waiting ``warmup_timeout``
      (see :mod:`pool.client_pool.budget`).
    """

    ready: bool
    state: PoolState
    driver: str
    generation: int | None
    generations: tuple[GenerationStatus, ...]
    leases: Mapping[str, int]
    draining: tuple[int, ...]
    rotations: int
    dropped_leases: int
    run_retries: int
    warmup_failures: int
    warmup_failures_in_a_row: int
    partial_warmups: int
    credentials: CredentialStatus | None
    last_warmup_error: WarmupFailure | None
    last_refresh_error: str | None
    last_warmup_s: float | None
    last_drain_s: float | None
    refreshes: RefreshCounts | None
    cache: Mapping[str, Any]
    health: Health
    max_connections_per_member: int | None = None
    capped_warmups: int = 0
    capped_leases: int = 0
    cap_overruns: int = 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _generation(gen: Generation[DriverClient], now: float) -> GenerationStatus:
    return GenerationStatus(
        number=gen.number,
        state=str(gen.state),
        leases=gen.leases,
        key=key_hint(gen.credentials.access_key_id),
        credentials_remaining_s=None if gen.expires_at is None else _round(gen.expires_at - now),
        draining_for_s=None if gen.drain_started is None else _round(now - gen.drain_started),
        drain_deadline_in_s=None if gen.deadline is None else _round(gen.deadline - now),
        connections=gen.handle.monitor.snapshot(),
    )


def _refreshes(value: object) -> RefreshCounts | None:
    """The cache's ``refreshes`` counts, copied (None when its status has none)."""
    if not isinstance(value, Mapping):
        return None
    return {"rotated": value["rotated"], "same": value["same"], "failed": value["failed"]}


def _as_mapping(value: object) -> Mapping[str, Any]:
    """The cache's status as a mapping, whether it is a dict or a record with ``to_dict()``."""
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    return dict(value) if isinstance(value, Mapping) else {}


def snapshot(
    *,
    health: Health,
    now: float,
    state: PoolState,
    driver: str,
    book: GenerationBook[DriverClient],
    rotator: Rotator,
    run_retries: int,
    cache: object,
    telemetry: PoolTelemetry,
    budget: ConnectionBudget | None = None,
) -> PoolStatus:
    """Build a :class:`PoolStatus` from the pool's parts at ``now`` (pool clock)."""
    current = book.current
    credentials = None
    if current is not None:
        creds = current.credentials
        remaining = None if current.expires_at is None else current.expires_at - now
        key = key_hint(creds.access_key_id)
        credentials = CredentialStatus(key, creds.source, _round(remaining))
    cache_status = _as_mapping(cache)
    refresh_error = cache_status.get("last_error")
    if isinstance(refresh_error, Mapping):
        refresh_error = refresh_error.get("message")
    return PoolStatus(
        ready=health.ready.passing,
        state=state,
        driver=driver,
        generation=None if current is None else current.number,
        generations=tuple(_generation(g, now) for g in book.generations),
        leases={str(g.number): g.leases for g in book.generations},
        draining=tuple(g.number for g in book.generations if g.state == "draining"),
        rotations=book.rotations,
        dropped_leases=book.dropped_total,
        run_retries=run_retries,
        warmup_failures=rotator.warmup_failures,
        warmup_failures_in_a_row=rotator.failures_in_a_row,
        partial_warmups=rotator.partial_warmups,
        credentials=credentials,
        last_warmup_error=rotator.last_failure(now),
        last_refresh_error=None if refresh_error is None else str(refresh_error),
        last_warmup_s=_round(telemetry.last_warmup_s),
        last_drain_s=_round(telemetry.last_drain_s),
        refreshes=_refreshes(cache_status.get("refreshes")),
        cache=cache_status,
        health=health,
        max_connections_per_member=None if budget is None else budget.limit,
        capped_warmups=rotator.capped_warmups,
        capped_leases=0 if budget is None else budget.waited,
        cap_overruns=0 if budget is None else budget.overruns,
    )
