"""Helpers for the telemetry tests: an SDK wired to in-memory readers, and a source that
can be told to fail or to hand out a set the server will refuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pool.credentials import Credentials
from pool.telemetry import Telemetry
from tests.client_pool.pool_helpers import MintingSource


@dataclass
class Otel:
    """One SDK meter and tracer provider reading into memory, and the Telemetry on them."""

    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)

    def __post_init__(self) -> None:
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.telemetry = Telemetry(
            meter_provider=self.meter_provider, tracer_provider=self.tracer_provider
        )

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Every metric's data points as ``{name: [(attributes, point), ...]}``."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    out.setdefault(metric.name, []).extend(
                        (dict(p.attributes or {}), p) for p in metric.data.data_points
                    )
        return out

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


def values(points: list[tuple[dict[str, Any], Any]], *keys: str) -> dict[tuple[Any, ...], Any]:
    """``{(attr values for keys...): value or histogram count}`` for one metric's points."""
    out: dict[tuple[Any, ...], Any] = {}
    for attrs, point in points:
        value = point.count if hasattr(point, "bucket_counts") else point.value
        out[tuple(attrs.get(k) for k in keys)] = value
    return out


class ScriptedSource(MintingSource):
    """A minting source whose next fetch can fail, or return a set the server refuses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fail_next: Exception | None = None
        self.refuse_next = False

    async def fetch(self) -> Credentials:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            self.fetches += 1
            raise error
        creds = await super().fetch()
        if self.refuse_next:
            self.refuse_next = False
            self.authority.revoke(creds.access_key_id)  # MongoDB will say code 18
        return creds
