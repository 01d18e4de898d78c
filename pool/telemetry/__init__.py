"""Metrics and traces through the OpenTelemetry API; a Prometheus endpoint in one call.

* :mod:`.instruments` — :class:`Telemetry`: every instrument, created once;
* :mod:`.hooks` — what the cache and the pool call at each event, and their spans;
* :mod:`.cmap` — the drivers' CMAP events to ``db.client.connection.*``;
* :mod:`.classify` — the bounded label values (refresh reason, error type);
* :mod:`.prometheus` — :func:`serve_prometheus` and the ASGI/aiohttp handlers.

Without ``opentelemetry-api`` installed (the ``otel`` extra) everything here
is a no-op, and ``import pool`` never imports OpenTelemetry: the first pool
or cache built does, once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pool.telemetry.instruments import INSTRUMENTS, Telemetry, default_telemetry

if TYPE_CHECKING:
    from pool.telemetry.prometheus import PrometheusEndpoint

__all__ = ["INSTRUMENTS", "Telemetry", "default_telemetry", "serve_prometheus"]


def serve_prometheus(
    port: int | None = 9464, host: str = "127.0.0.1", *, install_global: bool = True
) -> PrometheusEndpoint:
    """See :func:`pool.telemetry.prometheus.serve_prometheus` (imported on first use)."""
    from pool.telemetry.prometheus import serve_prometheus as serve

    return serve(port, host, install_global=install_global)
