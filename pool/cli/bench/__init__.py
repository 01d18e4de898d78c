"""``python -m pool bench``: this library side by side with the alternatives, in one run.

1. handshake per environment (new client to first ping): credentials from
   the cache against PyMongo's built-in MONGODB-AWS lookup, on each MongoDB
   topology (a standalone server in plaintext, and a 3-member replica set
   over TLS as on Atlas; ``--topology`` picks one);
2. credential fetch per environment: our sources against aiobotocore's providers;
3. event-loop stall during (1), from a 1 ms ticker;
4. rotation under load: warmed swap against naive rotation, both drivers,
   on each topology;
5. the cache hot path against aiobotocore's ``get_frozen_credentials()``;
6. the lease hot path (``cp.client()``, ``cp.run()``) against bare context
   managers and the driver, telemetry disabled / API without SDK / SDK, and
   the Prometheus exporters' costs. With ``--json``, the run's own metrics
   (a Prometheus scrape at the end) go to ``<json stem>.metrics.prom``.

The stand-ins run in a child process (PyMongo's built-in lookup blocks the
event loop it runs on). ``--profile aws`` adds latency at each endpoint (see
:data:`pool.cli.bench.setup.PROFILES`). Progress goes to stderr, the tables
to stdout. Nothing printed or written holds a secret: the stand-ins'
variables are only ever put into the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pool._internal.redact import describe
from pool.cli.bench.setup import ENVIRONMENTS, PROFILES, TOPOLOGIES, TOPOLOGY_LABELS

__all__ = ["TOPOLOGIES", "add_arguments", "run"]

QUICK = {"samples": 25, "cache_batches": 100, "rotation_seconds": None}
FULL = {"samples": 200, "cache_batches": 200, "rotation_seconds": None}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help="fewer samples: about 2 minutes instead of 7"
    )
    p.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="loopback",
        help="latency added at the endpoints: none (loopback, default) or "
        "modelled on AWS figures (aws; see the README)",
    )
    p.add_argument(
        "--topology",
        choices=sorted(TOPOLOGIES),
        help="measure one MongoDB stand-in shape only: one plaintext server, or a 3-member "
        "replica set over TLS as on Atlas (default: both, side by side)",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="write the tables as markdown")
    p.add_argument("--plot", type=Path, metavar="PATH", help="write the distributions as a PNG")
    # For tests and quick experiments; not part of the documented interface.
    p.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cache-batches", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rotation-seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--rotation-workers", type=int, help=argparse.SUPPRESS)
    p.add_argument("--only", choices=list(ENVIRONMENTS), action="append", help=argparse.SUPPRESS)


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "python": platform.python_version(),
        "pymongo": version("pymongo"),
        "motor": version("motor"),
        "aiobotocore": version("aiobotocore"),
        "profile": args.profile,
        "quick": bool(args.quick),
        # The topology of the top-level figures; "topologies" in the JSON has every one.
        "topology": _topologies(args)[0],
    }


def _topologies(args: argparse.Namespace) -> list[str]:
    """The topologies this run measures, in order: the one asked for, or all of them."""
    return [args.topology] if args.topology else list(TOPOLOGIES)


class Progress:
    """Live progress on stderr: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(stderr=True)
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("[bold green]{task.fields[summary]}"),
            console=self.console, disable=not self.console.is_terminal,
        )  # fmt: skip

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)

    def phase(
        self, description: str, total: int
    ) -> tuple[Callable[[], None], Callable[[str], None]]:
        """Start a phase: returns ``advance()`` and ``done(summary)``."""
        task = self._bar.add_task(description, total=total, summary="")
        started = time.monotonic()
        if not self.console.is_terminal:
            self.console.print(f"… {description}", highlight=False)

        def advance() -> None:
            self._bar.advance(task)

        def done(summary: str) -> None:
            self._bar.update(task, completed=total, summary=summary)
            if not self.console.is_terminal:
                took = time.monotonic() - started
                self.console.print(f"  {description}: {summary} ({took:.1f} s)", highlight=False)

        return advance, done


async def _environment(
    env: str, emulator: Any, setup: Any, samples: int, progress: Progress, where: str, fetch: bool
) -> Any:
    """One environment on one topology; the credential fetch too when ``fetch``."""
    from pool.cli.bench.fetch import bench_fetch
    from pool.cli.bench.handshake import bench_handshake
    from pool.cli.bench.report import EnvResult
    from pool.cli.bench.stats import Ticker, ratio

    result = EnvResult()
    label = where + ENVIRONMENTS[env]
    if fetch:
        advance, done = progress.phase(f"{label}: credential fetch", samples)
        try:
            async with Ticker() as ticker:
                result.fetch = await bench_fetch(env, setup, samples, ticker, advance)
            r = ratio(result.fetch.aiobotocore.summary() if result.fetch.aiobotocore else None,
                      result.fetch.pool.summary(), "p50")  # fmt: skip
            done("" if r is None else f"{r:.1f}× vs aiobotocore (p50)")
        except Exception as exc:  # reported in the tables, never hidden; other environments go on
            result.error = "fetch: " + describe(exc)
            done("[red]failed")
    advance, done = progress.phase(f"{label}: handshake + loop stall", samples)
    try:
        async with Ticker() as ticker:
            result.handshake = await bench_handshake(
                env, setup, emulator.mongodb_uri, samples, ticker, advance
            )
        hs = result.handshake
        r = ratio(hs.pymongo_builtin.summary(), hs.pool.summary(), "p50")
        done("" if r is None else f"{r:.1f}× vs PyMongo built-in (p50)")
    except Exception as exc:
        result.error = "handshake: " + describe(exc)
        done("[red]failed")
    return result


async def _rotation(
    args: argparse.Namespace, name: str, topology: Any, progress: Progress, where: str
) -> None:
    from pool.cli.bench.rotation import bench_rotation

    _, done = progress.phase(f"{where}rotation under load (both drivers)", 1)
    try:
        topology.rotation, topology.rotation_note = await bench_rotation(
            quick=bool(args.quick),
            seconds=args.rotation_seconds,
            workers=args.rotation_workers,
            **TOPOLOGIES[name],
        )
        done("")
    except Exception as exc:  # shown in the table and the exit status
        topology.rotation_error = "rotation: " + describe(exc)
        topology.rotation_note = topology.rotation_error
        done("[red]failed")


async def _topology(
    args: argparse.Namespace, name: str, results: Any, progress: Progress, samples: int
) -> None:
    """Every environment's handshakes on one topology's stand-ins (and the fetch on the first)."""
    from pool.cli.bench.setup import BenchSetup
    from pool.standins.process import EmulatorProcess

    profile, topology = results.profile, results.topologies[name]
    first = topology is results.primary
    where = _where(results, name)
    _, done = progress.phase(f"{where}starting the stand-ins", 1)
    async with EmulatorProcess(command_delay=profile.command_delay, faults=list(profile.faults),
                               **TOPOLOGIES[name]) as emulator:  # fmt: skip
        done("")
        async with BenchSetup(emulator.info) as setup:
            for env in dict.fromkeys(args.only or ENVIRONMENTS):
                topology.envs[env] = await _environment(
                    env, emulator, setup, samples, progress, where, fetch=first
                )
    topology.mongodb = _served(emulator, topology)


def _where(results: Any, name: str) -> str:
    """The progress lines' prefix: the topology, when the run measures several."""
    return f"{TOPOLOGY_LABELS[name]} · " if len(results.topologies) > 1 else ""


def _served(emulator: Any, topology: Any) -> dict[str, Any]:
    """What the stand-in was, what the clients found, and what the server counted serving them."""
    counts = emulator.stats.get("mongo", {})
    kinds = {r.handshake.topology_type for r in topology.envs.values() if r.handshake}
    return {
        "members": len(emulator.info["mongodb_members"]),
        "tls": emulator.info["tls_ca_file"] is not None,
        "topology_type": kinds.pop() if len(kinds) == 1 else None,
        "connections": counts.get("connections_opened"),
        "authentications": counts.get("auth_successes"),
        "tls_handshakes": counts.get("tls_handshakes"),
    }


async def _measure(args: argparse.Namespace, results: Any, progress: Progress) -> None:
    """Run every measurement into ``results``, in an order that keeps them apart."""
    from pool.cli.bench.hot_path import bench_hot_path

    preset = QUICK if args.quick else FULL
    samples = args.samples or int(preset["samples"] or 0)
    names = list(results.topologies)
    progress.console.print(
        f"python -m pool bench: profile '{results.profile.name}', {samples} samples per "
        f"contender and environment on {' and '.join(TOPOLOGY_LABELS[n] for n in names)}; "
        "stand-ins in a child process",
        highlight=False,
    )
    # First, while nothing else runs: the hot path is nanoseconds.
    _, done = progress.phase("cache hot path", 1)
    results.cache = await bench_hot_path(args.cache_batches or int(preset["cache_batches"] or 0))
    done("")
    await _lease(args, results, progress, int(preset["cache_batches"] or 0))
    # From here on every pool reports to an SDK: its scrape is written next to the JSON.
    metrics = _metrics_endpoint()
    for name in names:
        await _topology(args, name, results, progress, samples)
    # Last: it starts its own stand-ins and loads both CPUs.
    for name in names:
        await _rotation(args, name, results.topologies[name], progress, _where(results, name))
    if metrics is not None:
        results.metrics_text = metrics.scrape().decode()
        metrics.close()


async def _lease(args: argparse.Namespace, results: Any, progress: Progress, rounds: int) -> None:
    """The lease hot path (both telemetry modes, side by side) and the exporters' costs."""
    from pool.cli.bench.exporters import bench_exporters
    from pool.cli.bench.lease import bench_lease, overheads

    _, done = progress.phase("lease hot path", 1)
    results.lease = await bench_lease(args.cache_batches or rounds)
    results.lease_overheads = overheads(results.lease)
    done(f"cp.client() {results.lease_overheads.get('client_no_sdk_us')} µs")
    _, done = progress.phase("Prometheus exporters", 1)
    quick = bool(args.quick or args.cache_batches)
    try:
        results.exporters = await asyncio.to_thread(bench_exporters, 1 if quick else 3)
        done("")
    except ImportError as exc:  # the exporters are in the prometheus extra
        done(f"skipped: {exc.name} is not installed")


def _metrics_endpoint() -> Any:
    """A global SDK meter provider on a private Prometheus registry (no port), or None."""
    from pool.errors import ConfigurationError
    from pool.telemetry.prometheus import serve_prometheus

    try:
        return serve_prometheus(port=None)
    except ConfigurationError:  # exporter not installed, or a provider exists already
        return None


async def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pool.cli.bench.report import BenchResults, TopologyResult, markdown, rich_tables, to_json

    results = BenchResults(
        meta=_meta(args),
        profile=PROFILES[args.profile],
        topologies={name: TopologyResult() for name in _topologies(args)},
    )
    started = time.monotonic()
    with Progress() as progress:
        await _measure(args, results, progress)
    results.elapsed_s = time.monotonic() - started

    # Not a terminal (CI, a pipe): wide enough that the tables stay readable.
    out = Console(width=None if sys.stdout.isatty() else 150)
    for table in rich_tables(results):
        out.print(table)
    out.print("Ratio = alternative ÷ this library for the same statistic; above 1 means this "
              f"library took less time. Took {results.elapsed_s:.0f} s.")  # fmt: skip
    await _write_outputs(args, results, to_json(results), markdown(results))
    return 1 if results.failed else 0


async def _write_outputs(
    args: argparse.Namespace, results: Any, data: dict[str, Any], md: str
) -> None:
    from pool.cli.bench.plot import write_plot

    if args.json is not None:
        await asyncio.to_thread(args.json.write_text, json.dumps(data, indent=2) + "\n", "utf-8")
        if results.metrics_text:  # the run's own metrics, as Prometheus scraped them at the end
            path = args.json.with_suffix(".metrics.prom")
            await asyncio.to_thread(path.write_text, results.metrics_text, "utf-8")
    if args.markdown is not None:
        await asyncio.to_thread(args.markdown.write_text, md, "utf-8")
    if args.plot is not None:
        await asyncio.to_thread(write_plot, results, args.plot)


def run(args: argparse.Namespace) -> int:
    for name in ("samples", "cache_batches", "rotation_seconds", "rotation_workers"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            print(f"error: --{name.replace('_', '-')} must be positive", file=sys.stderr)
            return 2
    missing = [m for m in ("rich", "hdrh", "matplotlib") if not _importable(m)]
    if missing:
        print(f"error: the bench needs {', '.join(missing)}: "
              "pip install 'mongodb-aws-pool[bench]'", file=sys.stderr)  # fmt: skip
        return 2
    return asyncio.run(_bench(args))


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
