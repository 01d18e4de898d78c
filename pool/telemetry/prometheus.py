"""A Prometheus scrape endpoint in one call, through OpenTelemetry's Prometheus exporter.

``endpoint = serve_prometheus(port=9464)`` starts prometheus-client's HTTP
server (loopback by default) on a registry of its own, fed by an OpenTelemetry
SDK ``MeterProvider`` with a ``PrometheusMetricReader``; unless a meter
provider is configured already, it becomes the global one, so every pool and
cache built with the default telemetry shows up. Frameworks mount the same
registry instead of a port: ``endpoint.asgi_app()`` (FastAPI/Starlette:
``app.mount("/metrics", endpoint.asgi_app())``) or ``endpoint.aiohttp_handler``
(``app.router.add_get("/metrics", endpoint.aiohttp_handler)``); pass
``port=None`` to start no server.

Why the OpenTelemetry exporter rather than prometheus-client alone: one set of
instruments serves OpenTelemetry pipelines and Prometheus alike, and the
per-event cost is paid only on rare events (see ``python -m pool bench``'s
``telemetry`` section and the README for the measured comparison).

Needs the ``prometheus`` extra (opentelemetry-sdk, opentelemetry-exporter-prometheus).
"""

from __future__ import annotations

from typing import Any

from pool.errors import ConfigurationError
from pool.telemetry.instruments import Telemetry

__all__ = ["PrometheusEndpoint", "serve_prometheus"]

_INSTALL = "pip install 'mongodb-aws-pool[prometheus]'"


class PrometheusEndpoint:
    """A private registry, the meter provider feeding it, and optionally its HTTP server.

    ``telemetry`` reports into it (pass it to pools and caches explicitly when
    the endpoint is not the global provider). :meth:`close` stops the server
    and the provider. Thread-safety: scrapes run on the server's thread and
    read the pools' counters there (plain reads; the monitors lock).
    """

    def __init__(self, *, port: int | None, host: str, install_global: bool) -> None:
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from opentelemetry.sdk.metrics import MeterProvider
            from prometheus_client import CollectorRegistry
        except ImportError as exc:
            raise ConfigurationError(
                f"serve_prometheus() needs the Prometheus exporter ({exc.name} is missing): "
                f"{_INSTALL}"
            ) from None
        import opentelemetry.metrics as otel_metrics

        self.registry = CollectorRegistry(auto_describe=True)
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(meter_provider=self.provider)
        self.installed_global = False
        if install_global:
            if isinstance(otel_metrics.get_meter_provider(), MeterProvider):
                raise ConfigurationError(
                    "an OpenTelemetry MeterProvider is configured already: add a "
                    "PrometheusMetricReader to it, or call serve_prometheus(install_global=False) "
                    "and pass telemetry=endpoint.telemetry to the pools"
                )
            otel_metrics.set_meter_provider(self.provider)
            self.installed_global = True
        self._server: Any = None
        self._thread: Any = None
        self.port: int | None = None
        if port is not None:
            from prometheus_client import start_http_server

            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
            self.port = int(self._server.server_address[1])
        self.host = host

    @property
    def url(self) -> str | None:
        """``http://host:port/metrics`` of the server, if one was started."""
        return None if self.port is None else f"http://{self.host}:{self.port}/metrics"

    def scrape(self) -> bytes:
        """The text exposition format, as a scrape would return it now."""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))

    def asgi_app(self) -> Any:
        """An ASGI app serving this registry (mount it at ``/metrics``)."""
        from prometheus_client import make_asgi_app

        return make_asgi_app(self.registry)

    async def aiohttp_handler(self, request: Any) -> Any:
        """An aiohttp handler serving this registry (``add_get("/metrics", ...)``)."""
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(body=self.scrape(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def close(self) -> None:
        """Stop the HTTP server and the meter provider. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)
        self.provider.shutdown()

    def __enter__(self) -> PrometheusEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve_prometheus(
    port: int | None = 9464, host: str = "127.0.0.1", *, install_global: bool = True
) -> PrometheusEndpoint:
    """Serve every pool's and cache's metrics for Prometheus at ``http://host:port/metrics``.

    ``port=0`` picks a free port (``endpoint.port``); ``port=None`` starts no
    server (mount ``endpoint.asgi_app()`` or ``endpoint.aiohttp_handler``).
    Loopback by default: pass ``host="0.0.0.0"`` to be scraped from outside.
    Raises :class:`pool.ConfigurationError` when the exporter is not
    installed, or when ``install_global`` and a meter provider exists already.
    """
    return PrometheusEndpoint(port=port, host=host, install_global=install_global)
