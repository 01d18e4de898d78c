"""The bench's lease and exporter tables (markdown and rich), kept apart from the main report."""

from __future__ import annotations

from typing import Any

from pool.cli.bench.lease import LEASE_KEYS, LEASE_LABELS
from pool.cli.bench.stats import Recorder

__all__ = ["lease_markdown", "lease_tables"]

_RATIOS = {
    "ratio_client_before_vs_after": "cp.client(): before ÷ now",
    "ratio_run_before_vs_after": "cp.run(fn): before ÷ now (over the call)",
    "ratio_client_vs_bare_asynccontextmanager": "cp.client() ÷ bare @asynccontextmanager",
    "ratio_client_vs_bare_class": "cp.client() ÷ bare context manager class",
    "ratio_client_no_sdk_vs_disabled": "cp.client(): API, no SDK ÷ disabled",
    "ratio_client_sdk_vs_disabled": "cp.client(): SDK collecting ÷ disabled",
    "ratio_run_no_sdk_vs_disabled": "cp.run(fn): API, no SDK ÷ disabled",
    "ratio_cache_current_no_sdk_vs_disabled": "cache.current: API, no SDK ÷ disabled",
    "ratio_driver_run_vs_direct": "cp.run(find_one) ÷ find_one directly",
}
_EXPORTER_ROWS = (
    ("import_ms", "import (ms, fresh interpreter)"),
    ("observe_counter_ns", "one counter increment, 3 labels (ns)"),
    ("observe_histogram_ns", "one histogram record, 3 labels (ns)"),
    ("scrape_ms", "one scrape, 90 series (ms)"),
)


def _rows(lease: dict[str, Recorder], overheads: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows = []
    for key in LEASE_KEYS:
        rec = lease.get(key)
        p = None if rec is None else rec.summary()
        over = overheads.get(f"{key}_us")
        rows.append((
            LEASE_LABELS[key],
            "—" if p is None else f"{p['p50']:,.0f}",
            "" if over is None else f"{over:.3f}",
        ))  # fmt: skip
    return rows


def _exporter_rows(exporters: dict[str, dict[str, float]]) -> list[tuple[str, str, str]]:
    otel, prom = exporters.get("opentelemetry_exporter", {}), exporters.get("prometheus_client", {})
    return [
        (label, f"{otel.get(k, 0):,.1f}", f"{prom.get(k, 0):,.1f}") for k, label in _EXPORTER_ROWS
    ]


def lease_markdown(
    lease: dict[str, Recorder], overheads: dict[str, Any], exporters: dict[str, dict[str, float]]
) -> list[str]:
    """The lease and exporter sections of the markdown report."""
    if not lease:
        return []
    out = ["## Lease hot path (ns per use, median of interleaved batches)", "",
           "| contender | p50 ns | µs over the call |", "|---|---:|---:|"]  # fmt: skip
    out += [f"| `{a}` | {b} | {c} |" for a, b, c in _rows(lease, overheads)]
    out += ["", "| ratio (same run) | value |", "|---|---:|"]
    out += [f"| {label} | {overheads.get(k)} |" for k, label in _RATIOS.items()]
    if exporters:
        out += ["", "## Prometheus endpoint: OpenTelemetry exporter vs prometheus-client", "",
                "| figure | OpenTelemetry SDK + exporter | prometheus-client |",
                "|---|---:|---:|"]  # fmt: skip
        out += [f"| {a} | {b} | {c} |" for a, b, c in _exporter_rows(exporters)]
    out.append("")
    return out


def lease_tables(
    lease: dict[str, Recorder], overheads: dict[str, Any], exporters: dict[str, dict[str, float]]
) -> list[Any]:
    """The same as rich tables for the terminal."""
    from rich.table import Table

    if not lease:
        return []
    t = Table(title="Lease hot path (ns per use)", title_justify="left")
    for col in ("contender", "p50 ns", "µs over the call"):
        t.add_column(col, justify="left" if col == "contender" else "right")
    for row in _rows(lease, overheads):
        t.add_row(*row)
    r = Table(title="Lease ratios (same run)", title_justify="left")
    r.add_column("ratio")
    r.add_column("value", justify="right", style="bold green")
    for k, label in _RATIOS.items():
        r.add_row(label, str(overheads.get(k)))
    tables = [t, r]
    if exporters:
        e = Table(title="Prometheus endpoint: cost of each stack", title_justify="left")
        for col in ("figure", "OpenTelemetry SDK + exporter", "prometheus-client"):
            e.add_column(col, justify="left" if col == "figure" else "right")
        for row in _exporter_rows(exporters):
            e.add_row(*row)
        tables.append(e)
    return tables
