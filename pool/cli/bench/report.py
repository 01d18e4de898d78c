"""The bench's results and how they are shown: the JSON shape, markdown and rich tables.

Ratios are alternative ÷ this library for the same statistic: above 1 means
this library took less time. They are the claims; absolute times depend on
the machine and the ``--profile``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pool.cli.bench.fetch import FetchResult
from pool.cli.bench.handshake import HandshakeResult
from pool.cli.bench.lease import LEASE_KEYS
from pool.cli.bench.report_telemetry import lease_markdown, lease_tables
from pool.cli.bench.setup import ENVIRONMENTS, TOPOLOGY_LABELS, Profile
from pool.cli.bench.stats import Percentiles, Recorder, Stat, ratio

__all__ = ["BenchResults", "EnvResult", "TopologyResult", "markdown", "rich_tables", "to_json"]

DRIVERS = ("motor", "pymongo")
MODES = ("warmed", "naive")
CACHE_KEYS = ("pool_current", "pool_get", "aiobotocore")
CACHE_LABELS = {
    "pool_current": "cache.current",
    "pool_get": "await cache.get()",
    "aiobotocore": "aiobotocore get_frozen_credentials()",
}


@dataclass
class EnvResult:
    """One environment's measurements; ``error`` says why some are missing."""

    fetch: FetchResult | None = None
    handshake: HandshakeResult | None = None
    error: str | None = None


@dataclass
class TopologyResult:
    """What one MongoDB topology measured: handshakes per environment, rotation.

    ``mongodb`` is what the stand-in was and what it served: ``members``,
    ``tls``, the ``topology_type`` the clients discovered, and the server's
    own counts (``connections``, ``authentications``, ``tls_handshakes``).
    """

    envs: dict[str, EnvResult] = field(default_factory=dict)
    rotation: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)
    rotation_note: str | None = None
    rotation_error: str | None = None
    mongodb: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.rotation_error) or any(r.error for r in self.envs.values())


@dataclass
class BenchResults:
    """Everything one run measured, plus what is needed to describe it.

    ``topologies`` holds every topology measured, in run order; the first is
    the primary one: its environments carry the credential fetch too (which
    never touches MongoDB, so it is measured once), and the JSON's top-level
    ``environments`` and ``rotation`` are its figures.
    """

    meta: dict[str, Any]
    profile: Profile
    topologies: dict[str, TopologyResult] = field(default_factory=dict)
    cache: dict[str, Recorder] = field(default_factory=dict)
    lease: dict[str, Recorder] = field(default_factory=dict)
    lease_overheads: dict[str, Any] = field(default_factory=dict)
    exporters: dict[str, dict[str, float]] = field(default_factory=dict)
    metrics_text: str = ""
    elapsed_s: float = 0.0

    @property
    def primary(self) -> TopologyResult:
        return next(iter(self.topologies.values()))

    @property
    def envs(self) -> dict[str, EnvResult]:
        return self.primary.envs

    @property
    def rotation(self) -> dict[str, dict[str, dict[str, Any] | None]]:
        return self.primary.rotation

    @property
    def failed(self) -> bool:
        return any(t.failed for t in self.topologies.values())


def _summary(rec: Recorder | None) -> Percentiles | None:
    return None if rec is None else rec.summary()


def series(res: EnvResult) -> dict[str, dict[str, Percentiles | None]]:
    """``{"fetch_ms": {...}, "handshake_ms": {...}, "loop_stall_ms": {...}}`` of one environment."""
    fetch, hs = res.fetch, res.handshake
    return {
        "fetch_ms": {
            "pool": _summary(fetch.pool if fetch else None),
            "aiobotocore": _summary(fetch.aiobotocore if fetch else None),
        },
        "handshake_ms": {
            "pool": _summary(hs.pool if hs else None),
            "pymongo_builtin": _summary(hs.pymongo_builtin if hs else None),
        },
        "loop_stall_ms": {
            "pool": _summary(hs.pool_stall if hs else None),
            "pymongo_builtin": _summary(hs.pymongo_builtin_stall if hs else None),
        },
        # Not in the JSON shape (issue 5); shown in the tables (issue 3 asks for it).
        "fetch_stall_ms": {
            "pool": _summary(fetch.pool_stall if fetch else None),
            "aiobotocore": _summary(fetch.aiobotocore_stall if fetch else None),
        },
    }


JSON_METRICS = ("fetch_ms", "handshake_ms", "loop_stall_ms")
#: What depends on the MongoDB topology (the fetch does not).
TOPOLOGY_METRICS = ("handshake_ms", "loop_stall_ms")


def _environments(topology: TopologyResult, metrics: tuple[str, ...]) -> dict[str, Any]:
    return {
        env: {k: v for k, v in series(res).items() if k in metrics}
        for env, res in topology.envs.items()
    }


def _rotation_json(topology: TopologyResult) -> dict[str, Any]:
    return {
        driver: {mode: topology.rotation.get(driver, {}).get(mode) for mode in MODES}
        for driver in DRIVERS
    }


def to_json(results: BenchResults) -> dict[str, Any]:
    """Exactly the shape documented in the README (and issue 5); null where n/a.

    The top-level ``environments`` and ``rotation`` are the primary
    topology's (``meta.topology``), as before topologies existed;
    ``topologies`` gives every topology measured side by side.
    """
    return {
        "meta": dict(results.meta),
        "environments": _environments(results.primary, JSON_METRICS),
        "rotation": _rotation_json(results.primary),
        "topologies": {
            name: {
                "mongodb": dict(t.mongodb),
                "environments": _environments(t, TOPOLOGY_METRICS),
                "rotation": _rotation_json(t),
            }
            for name, t in results.topologies.items()
        },
        "cache_get_ns": {key: _summary(results.cache.get(key)) for key in CACHE_KEYS},
        "lease_ns": {key: _summary(results.lease.get(key)) for key in LEASE_KEYS},
        "lease": dict(results.lease_overheads),
        "exporters": dict(results.exporters),
    }


# -- rows shared by the markdown and the rich tables ------------------------------

#: (JSON key, title, our key, alternative key, alternative label, statistics for ratios)
METRICS: tuple[tuple[str, str, str, str, str, tuple[Stat, Stat]], ...] = (
    ("fetch_ms", "Credential fetch (ms)", "pool", "aiobotocore", "aiobotocore",
     ("p50", "p99")),
    ("handshake_ms", "Handshake: new client to first ping (ms)", "pool", "pymongo_builtin",
     "PyMongo built-in", ("p50", "p99")),
    ("loop_stall_ms", "Event-loop stall during the handshake: longest 1 ms-ticker gap (ms)",
     "pool", "pymongo_builtin", "PyMongo built-in", ("p99", "max")),
    ("fetch_stall_ms", "Event-loop stall during the credential fetch: longest 1 ms-ticker gap (ms)",
     "pool", "aiobotocore", "aiobotocore", ("p99", "max")),
)  # fmt: skip


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}×"


def _num(p: Percentiles | None, key: Stat, digits: int = 2) -> str:
    return "—" if p is None else f"{p[key]:,.{digits}f}"


def _side_by_side(results: BenchResults, metric: str) -> bool:
    """Whether ``metric``'s tables show a topology column (it depends on it, and several ran)."""
    return metric in TOPOLOGY_METRICS and len(results.topologies) > 1


def _metric_rows(results: BenchResults, metric: str) -> Iterator[tuple[list[str], Any, Any]]:
    """``(first cells, series, error)``: per environment, each topology beside the other."""
    multi = _side_by_side(results, metric)
    topologies = list(results.topologies.items())[: None if multi else 1]
    for env in results.envs:
        for name, topology in topologies:
            res = topology.envs.get(env)
            if res is not None:
                where = [ENVIRONMENTS[env]] + ([TOPOLOGY_LABELS[name]] if multi else [])
                yield where, series(res)[metric], res.error


def markdown(results: BenchResults) -> str:
    """All tables as GitHub-flavoured markdown, with p50/p95/p99/max and n."""
    meta = results.meta
    out = [
        "# `python -m pool bench` results",
        "",
        f"Python {meta['python']}, PyMongo {meta['pymongo']}, Motor {meta['motor']}, "
        f"aiobotocore {meta['aiobotocore']}; profile `{meta['profile']}`"
        f"{' (--quick)' if meta['quick'] else ''}; {results.elapsed_s:.0f} s. "
        "Ratio = alternative ÷ this library (above 1: this library took less time).",
        "",
    ]
    if results.profile.figures:
        out += ["Latency added at the stand-ins (`--profile aws`):", ""]
        out += ["| endpoint | added | basis |", "|---|---:|---|"]
        out += [f"| {a} | {b} | {c} |" for a, b, c in results.profile.figures]
        out.append("")
    for metric, title, ours, theirs, label, stats in METRICS:
        topo = (" topology |", "---|") if _side_by_side(results, metric) else ("", "")
        out += [f"## {title}", ""]
        out += [f"| environment |{topo[0]} who | p50 | p95 | p99 | max | "
                f"n | ratio {stats[0]} | ratio {stats[1]} |",
                f"|---|{topo[1]}---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for where, data, error in _metric_rows(results, metric):
            a, b = data[ours], data[theirs]
            r0, r1 = fmt_ratio(ratio(b, a, stats[0])), fmt_ratio(ratio(b, a, stats[1]))
            first = " | ".join(where)
            for who, p, extra in (("this library", a, f" {r0} | {r1} |"),
                                  (label, b, " | |")):  # fmt: skip
                cells = " | ".join(_num(p, k) for k in ("p50", "p95", "p99", "max"))
                n = "—" if p is None else str(p["n"])
                out.append(f"| {first} | {who} | {cells} | {n} |{extra}")
            if error:
                out.append(f"| {first} | **error** | {error} | | | | | | |")
        out.append("")
    out += _rotation_markdown(results)
    out += ["## Cache hot path (ns per call, mean over batches of 1,000 calls)", ""]
    out += ["| reader | p50 | p95 | p99 | max | n | aiobotocore ÷ this (p50) |",
            "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    boto = _summary(results.cache.get("aiobotocore"))
    for key in CACHE_KEYS:
        p = _summary(results.cache.get(key))
        cells = " | ".join(_num(p, k, 1) for k in ("p50", "p95", "p99", "max"))
        r = "" if key == "aiobotocore" else fmt_ratio(ratio(boto, p, "p50"))
        out.append(f"| `{CACHE_LABELS[key]}` | {cells} | {p['n'] if p else '—'} | {r} |")
    out.append("")
    out += lease_markdown(results.lease, results.lease_overheads, results.exporters)
    return "\n".join(out)


def _rotation_runs(results: BenchResults) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """``(first cells, {mode: R | None})`` per topology (a column when several) and driver."""
    multi = len(results.topologies) > 1
    for name, topology in results.topologies.items():
        for driver in DRIVERS:
            where = ([TOPOLOGY_LABELS[name]] if multi else []) + [driver]
            yield where, topology.rotation.get(driver, {})


def _rotation_notes(results: BenchResults) -> list[str]:
    multi = len(results.topologies) > 1
    return [
        (f"{TOPOLOGY_LABELS[name]}: " if multi else "") + t.rotation_note
        for name, t in results.topologies.items()
        if t.rotation_note
    ]


def _rotation_markdown(results: BenchResults) -> list[str]:
    out = ["## Rotation under load", ""]
    for note in _rotation_notes(results):
        out += [note, ""]
    multi = len(results.topologies) > 1
    out += [f"|{' topology |' if multi else ''} driver | mode | ops | failed | lost | rotations | "
            "p99 steady (ms) | p99 at rotation (ms) |",
            f"|{'---|' if multi else ''}---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for where, modes in _rotation_runs(results):
        first = " | ".join(where)
        for mode in MODES:
            r = modes.get(mode)
            if r is None:
                out.append(f"| {first} | {mode} | — | — | — | — | — | — |")
                continue
            out.append(
                f"| {first} | {mode} | {r['ops']:,} | {r['failed']:,} | {r['lost']:,} | "
                f"{r['rotations']} | {r['p99_steady_ms']:.2f} | {r['p99_rotation_ms']:.2f} |"
            )
    out.append("")
    return out


def rich_tables(results: BenchResults) -> list[Any]:
    """The end-of-run tables for the terminal (rich ``Table`` objects)."""
    from rich.table import Table

    tables: list[Any] = []
    for metric, title, ours, theirs, label, stats in METRICS:
        t = Table(title=title, title_justify="left")
        t.add_column("environment")
        if _side_by_side(results, metric):
            t.add_column("topology")
        for who in ("this library", label):
            for s in stats:
                t.add_column(f"{who} {s}", justify="right")
        for s in stats:
            t.add_column(f"ratio {s}", justify="right", style="bold green")
        for where, data, error in _metric_rows(results, metric):
            a, b = data[ours], data[theirs]
            if error and a is None:
                t.add_row(*where, f"[red]error: {error}")
                continue
            t.add_row(
                *where,
                *(_num(a, s) for s in stats),
                *(_num(b, s) for s in stats),
                *(fmt_ratio(ratio(b, a, s)) for s in stats),
            )
        tables.append(t)
    tables.append(_rotation_table(results))
    tables.append(_cache_table(results))
    tables += lease_tables(results.lease, results.lease_overheads, results.exporters)
    return tables


def _rotation_table(results: BenchResults) -> Any:
    from rich.table import Table

    t = Table(title="Rotation under load: warmed swap vs naive", title_justify="left")
    if len(results.topologies) > 1:
        t.add_column("topology")
    for col in ("driver", "mode", "ops", "failed", "lost", "rotations", "p99 steady ms",
                "p99 rotation ms", "naive ÷ warmed p99 rotation"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("driver", "mode") else "right")
    for where, modes in _rotation_runs(results):
        warmed, naive = modes.get("warmed"), modes.get("naive")
        for mode, r in (("warmed", warmed), ("naive", naive)):
            if r is None:
                t.add_row(*where, mode, *(["—"] * 7))
                continue
            claim = ""
            if mode == "warmed" and naive is not None and r["p99_rotation_ms"] > 0:
                claim = f"[bold green]{naive['p99_rotation_ms'] / r['p99_rotation_ms']:,.1f}×"
            t.add_row(*where, mode, f"{r['ops']:,}", str(r["failed"]), str(r["lost"]),
                      str(r["rotations"]), f"{r['p99_steady_ms']:.2f}",
                      f"{r['p99_rotation_ms']:.2f}", claim)  # fmt: skip
    if notes := _rotation_notes(results):
        t.caption = "\n".join(notes)
    return t


def _cache_table(results: BenchResults) -> Any:
    from rich.table import Table

    t = Table(title="Cache hot path (ns per call)", title_justify="left")
    for col in ("reader", "p50", "p99", "aiobotocore ÷ this, p50"):
        t.add_column(col, justify="left" if col == "reader" else "right")
    boto = _summary(results.cache.get("aiobotocore"))
    for key in CACHE_KEYS:
        p = _summary(results.cache.get(key))
        claim = "" if key == "aiobotocore" else fmt_ratio(ratio(boto, p, "p50"))
        t.add_row(CACHE_LABELS[key], _num(p, "p50", 1), _num(p, "p99", 1),
                  f"[bold green]{claim}")  # fmt: skip
    return t
