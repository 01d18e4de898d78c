"""What a Prometheus endpoint costs: OpenTelemetry's exporter against prometheus-client alone.

Three figures, side by side in one run, for the same synthetic set of series
(``COUNTERS`` counters and ``HISTOGRAMS`` histograms, ``SERIES`` label sets
each, about what one pool with a few generations exports):

* import time of each stack, in a fresh interpreter (best of ``IMPORT_RUNS``);
* the cost of one observation (a counter increment, a histogram record with
  three labels), ns, mean over a batch;
* one scrape (``generate_latest``) of the populated registry, ms.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["bench_exporters"]

COUNTERS, HISTOGRAMS, SERIES = 10, 5, 6
IMPORT_RUNS = 3
OBSERVATIONS = 20_000
SCRAPES = 30

_IMPORTS = {
    "opentelemetry_api": "import opentelemetry.metrics, opentelemetry.trace",
    "opentelemetry_sdk_prometheus_exporter": (
        "import opentelemetry.sdk.metrics, opentelemetry.exporter.prometheus"
    ),
    "prometheus_client": "import prometheus_client",
}


def _import_ms(statement: str, runs: int = IMPORT_RUNS) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        best = min(best, float(out.stdout.strip()) * 1000)
    return round(best, 1)


def _per_call_ns(fn: Callable[[], Any], n: int = OBSERVATIONS) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return round((time.perf_counter_ns() - start) / n, 1)


def _scrape_ms(scrape: Callable[[], Any]) -> float:
    samples = []
    for _ in range(SCRAPES):
        start = time.perf_counter()
        scrape()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def _labels(i: int) -> dict[str, str]:
    return {"pool": "bench", "source": f"s{i % 3}", "outcome": f"o{i}"}


def _otel() -> dict[str, float]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=True)
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    try:
        meter = provider.get_meter("bench")
        counters = [meter.create_counter(f"bench.c{i}", "{event}") for i in range(COUNTERS)]
        hists = [meter.create_histogram(f"bench.h{i}", "s") for i in range(HISTOGRAMS)]
        for i in range(SERIES):
            for c in counters:
                c.add(1, _labels(i))
            for h in hists:
                h.record(0.01 * i, _labels(i))
        attrs = _labels(0)
        return {
            "observe_counter_ns": _per_call_ns(lambda: counters[0].add(1, attrs)),
            "observe_histogram_ns": _per_call_ns(lambda: hists[0].record(0.02, attrs)),
            "scrape_ms": _scrape_ms(lambda: generate_latest(registry)),
        }
    finally:
        provider.shutdown()


def _otel_api_only() -> float:
    """A counter from the API with no SDK configured: what an unconfigured app pays."""
    from opentelemetry.metrics import NoOpMeterProvider

    counter = NoOpMeterProvider().get_meter("bench").create_counter("bench.noop")
    attrs = _labels(0)
    return _per_call_ns(lambda: counter.add(1, attrs))


def _prometheus_client() -> dict[str, float]:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = CollectorRegistry(auto_describe=True)
    names = ("pool", "source", "outcome")
    counters = [Counter(f"bench_c{i}", "c", names, registry=registry) for i in range(COUNTERS)]
    hists = [Histogram(f"bench_h{i}_seconds", "h", names, registry=registry)
             for i in range(HISTOGRAMS)]  # fmt: skip
    for i in range(SERIES):
        for c in counters:
            c.labels(**_labels(i)).inc()
        for h in hists:
            h.labels(**_labels(i)).observe(0.01 * i)
    attrs = _labels(0)
    return {
        "observe_counter_ns": _per_call_ns(lambda: counters[0].labels(**attrs).inc()),
        "observe_histogram_ns": _per_call_ns(lambda: hists[0].labels(**attrs).observe(0.02)),
        "scrape_ms": _scrape_ms(lambda: generate_latest(registry)),
    }


def bench_exporters(import_runs: int = IMPORT_RUNS) -> dict[str, dict[str, float]]:
    """``{"opentelemetry_exporter": {...}, "prometheus_client": {...}}``, measured in one run."""
    otel = _otel()
    otel["observe_counter_api_no_sdk_ns"] = _otel_api_only()
    otel["import_ms"] = _import_ms(_IMPORTS["opentelemetry_sdk_prometheus_exporter"], import_runs)
    otel["import_api_ms"] = _import_ms(_IMPORTS["opentelemetry_api"], import_runs)
    prom = _prometheus_client()
    prom["import_ms"] = _import_ms(_IMPORTS["prometheus_client"], import_runs)
    return {"opentelemetry_exporter": otel, "prometheus_client": prom}
