"""The demo's live metrics panel: the same instruments an operator scrapes, read back.

:class:`MetricsPanel` owns a :class:`pool.telemetry.prometheus.PrometheusEndpoint`
(a private registry; an HTTP port too with ``--metrics-port``); every pool of
the demo reports to it, and the panel is built from its scrape, parsed as
Prometheus would parse it: time to expiry, rotations, leases and connections
per generation. Without the ``prometheus`` extra there is no panel.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

__all__ = ["MetricsPanel"]


class MetricsPanel:
    """A metrics endpoint for the demo's pools and a rich table built from its scrape."""

    def __init__(self, port: int | None = None) -> None:
        from pool.errors import ConfigurationError
        from pool.telemetry.prometheus import serve_prometheus

        try:
            self.endpoint: Any = serve_prometheus(port=port, install_global=False)
        except ConfigurationError:
            self.endpoint = None

    @property
    def telemetry(self) -> Any:
        """What to pass to ``ClientPool(telemetry=...)`` (None: the default)."""
        return None if self.endpoint is None else self.endpoint.telemetry

    def scrape(self) -> str:
        return "" if self.endpoint is None else self.endpoint.scrape().decode()

    def rows(self) -> dict[str, dict[str, Any]]:
        """Per pool: ``expires_in``, ``rotations`` by outcome, ``leases`` by state, ``conns``."""
        from prometheus_client.parser import text_string_to_metric_families

        pools: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"expires_in": None, "rotations": {}, "leases": {}, "conns": {}}
        )
        for family in text_string_to_metric_families(self.scrape()):
            for s in family.samples:
                _take(pools, s.name, s.labels, s.value)
        return dict(pools)

    def table(self) -> Any:
        """The live panel (a rich Table), or None without the exporter."""
        from rich.table import Table

        if self.endpoint is None:
            return None
        t = Table(
            title="from the metrics (python -m pool's own instruments)",
            caption=(
                "clients built counts the first client too (swapped) and a warm-up that the "
                "pool's close cut short (cancelled); expiry, leases and connections are gauges "
                "of open pools, so they are empty once a pool has closed"
            ),
            expand=False,
        )
        for col in ("pool", "creds expire in", "clients built", "leases held", "connections"):
            t.add_column(col, justify="left")
        for name, row in sorted(self.rows().items()):
            expiry = row["expires_in"]
            t.add_row(
                name,
                "" if expiry is None else f"{expiry:.1f} s",
                " ".join(f"{k} {v:g}" for k, v in sorted(row["rotations"].items())),
                " ".join(f"{k} {v:g}" for k, v in sorted(row["leases"].items())),
                "; ".join(
                    f"#{gen}: " + " ".join(f"{v:g} {k}" for k, v in sorted(states.items()))
                    for gen, states in sorted(row["conns"].items())
                ),
            )
        return t

    def close(self) -> None:
        if self.endpoint is not None:
            self.endpoint.close()


def _take(pools: dict[str, dict[str, Any]], name: str, labels: dict[str, str], v: float) -> None:
    pool = labels.get("mongodb_aws_pool_pool_name")
    if name == "mongodb_aws_pool_credential_time_to_expiry_seconds" and pool:
        pools[pool]["expires_in"] = v
    elif name == "mongodb_aws_pool_rotations_total" and pool:
        pools[pool]["rotations"][labels.get("mongodb_aws_pool_outcome", "?")] = v
    elif name == "mongodb_aws_pool_lease_count" and pool:
        pools[pool]["leases"][labels.get("mongodb_aws_pool_generation_state", "?")] = v
    elif name == "db_client_connection_count":
        conn = labels.get("db_client_connection_pool_name", "")
        owner, _, gen = conn.rpartition("#")
        pools[owner]["conns"].setdefault(gen, {})[labels.get("db_client_connection_state", "?")] = v
