"""Every instrument the library reports, created once per :class:`Telemetry`.

Names follow the OpenTelemetry naming guide (dotted, lower case, the unit in
``unit`` and not in the name, counters of countable things in the plural,
UpDownCounters not, no ``total``); where the database client semantic
conventions define a metric (``db.client.connection.*``), it is used as
defined. The Prometheus exporter turns ``mongodb_aws_pool.credential.refreshes``
into ``mongodb_aws_pool_credential_refreshes_total`` and durations into
``..._seconds``.

Per-lease and per-connection counts are *observable* instruments: their
callbacks read, at collection time, counters the pool keeps anyway, so a
lease costs nothing more with instruments in place. Only rare events (a
fetch, a rotation, a dropped lease, a ``run()`` retry, a connection opened
or checked out) call an instrument.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pool.telemetry import _otel

if TYPE_CHECKING:
    from pool.telemetry.hooks import CacheTelemetry, PoolTelemetry

__all__ = ["INSTRUMENTS", "METER_NAME", "Telemetry", "default_telemetry"]

METER_NAME = "mongodb_aws_pool"
P = "mongodb_aws_pool."

# name -> (kind, unit, description); the README lists the same.
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    "db.client.connection.count": (
        "observable_up_down_counter", "{connection}",
        "Connections open per client (generation), by state idle/used.",
    ),
    "db.client.connection.max": (
        "observable_up_down_counter", "{connection}", "maxPoolSize of each client.",
    ),
    "db.client.connection.pending_requests": (
        "observable_up_down_counter", "{request}",
        "Operations waiting for a connection, per client.",
    ),
    "db.client.connection.create_time": (
        "histogram", "s", "Time to open and authenticate a connection (MONGODB-AWS included).",
    ),
    "db.client.connection.wait_time": (
        "histogram", "s", "Time an operation waited to check a connection out.",
    ),
    P + "credential.refreshes": (
        "counter", "{refresh}", "Credential fetches, by source, reason and outcome.",
    ),
    P + "credential.refresh.failures": (
        "counter", "{failure}", "Failed credential fetches, by source and error.type.",
    ),
    P + "credential.refresh.duration": (
        "histogram", "s", "Duration of one credential fetch, by source and outcome.",
    ),
    P + "credential.time_to_expiry": (
        "observable_gauge", "s", "Seconds until the serving client's credentials expire.",
    ),
    P + "rotations": ("counter", "{rotation}", "Client rotations, by outcome."),
    P + "warmup.duration": (
        "histogram", "s", "Connecting and authenticating a new client, by outcome.",
    ),
    P + "drain.duration": (
        "histogram", "s", "From a replaced client's swap to its close, by outcome.",
    ),
    P + "lease.count": (
        "observable_up_down_counter", "{lease}", "Leases held, by generation state.",
    ),
    P + "lease.drops": (
        "counter", "{lease}", "Leases whose client was closed at the drain deadline.",
    ),
    P + "run.retries": ("counter", "{retry}", "run() calls retried on a newer client."),
}  # fmt: skip


class Telemetry:
    """The instruments and tracer of one meter provider and tracer provider.

    ``Telemetry()`` uses the global providers (``opentelemetry.metrics``'s and
    ``opentelemetry.trace``'s; a no-op until the application configures an
    SDK, and bound to it as soon as it does). Pass providers to report
    elsewhere (tests, a private Prometheus registry). ``enabled=False``, or no
    ``opentelemetry-api`` installed, reports nothing at all. Pools and caches
    register here (held weakly); the observable instruments' callbacks read
    them at collection time, possibly from the exporter's thread.
    """

    def __init__(
        self,
        *,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled and _otel.api.load()
        self._pools: weakref.WeakSet[PoolTelemetry] = weakref.WeakSet()
        self.i: dict[str, Any] = {}
        if not self.enabled:
            self.tracer: Any = None
            self.i = dict.fromkeys(INSTRUMENTS, _otel.NULL_INSTRUMENT)
            return
        meter = _otel.api.metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.tracer = _otel.api.trace.get_tracer(METER_NAME, tracer_provider=tracer_provider)
        callbacks = {
            "db.client.connection.count": self._observe_connections,
            "db.client.connection.max": self._observe_max,
            "db.client.connection.pending_requests": self._observe_pending,
            P + "credential.time_to_expiry": self._observe_expiry,
            P + "lease.count": self._observe_leases,
        }
        for name, (kind, unit, description) in INSTRUMENTS.items():
            if kind == "histogram":
                self.i[name] = meter.create_histogram(
                    name, unit, description,
                    explicit_bucket_boundaries_advisory=_otel.DURATION_BUCKETS,
                )  # fmt: skip
            elif kind == "counter":
                self.i[name] = meter.create_counter(name, unit, description)
            else:
                create = getattr(meter, f"create_{kind}")
                self.i[name] = create(name, [callbacks[name]], unit, description)

    # -- registration ----------------------------------------------------

    def for_cache(self, source: str, now: Callable[[], float] | None = None) -> CacheTelemetry:
        """The hooks one :class:`pool.CredentialCache` calls; ``now`` reads its clock."""
        from pool.telemetry.hooks import CacheTelemetry

        return CacheTelemetry(self, source, now or time.perf_counter)

    def for_pool(
        self, name: str, view: Any, now: Callable[[], float] | None = None
    ) -> PoolTelemetry:
        """The hooks one :class:`pool.ClientPool` calls; ``view`` reads its counters,
        ``now`` its clock."""
        from pool.telemetry.hooks import PoolTelemetry

        tel = PoolTelemetry(self, name, view, now or time.perf_counter)
        if self.enabled:
            self._pools.add(tel)
        return tel

    def unregister(self, pool: PoolTelemetry) -> None:
        """A pool closed: its observable series end (its counters stay)."""
        self._pools.discard(pool)

    def pools(self) -> list[PoolTelemetry]:
        """The pools registered and still alive."""
        return list(self._pools)

    # -- observable callbacks (collection time, maybe another thread) -----

    def _observations(self, method: str) -> Iterator[Any]:
        observation = _otel.api.metrics.Observation
        for pool in self.pools():
            for value, attributes in getattr(pool, method)():
                yield observation(value, attributes)

    def _observe_connections(self, _options: Any) -> Iterable[Any]:
        return list(self._observations("connection_counts"))

    def _observe_max(self, _options: Any) -> Iterable[Any]:
        return list(self._observations("connection_max"))

    def _observe_pending(self, _options: Any) -> Iterable[Any]:
        return list(self._observations("pending_requests"))

    def _observe_expiry(self, _options: Any) -> Iterable[Any]:
        return list(self._observations("time_to_expiry"))

    def _observe_leases(self, _options: Any) -> Iterable[Any]:
        return list(self._observations("lease_counts"))


_default: Telemetry | None = None


def default_telemetry() -> Telemetry:
    """The process-wide :class:`Telemetry` on the global providers (created on first use)."""
    global _default
    if _default is None:
        _default = Telemetry()
    return _default
