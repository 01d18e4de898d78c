"""``python -m pool bench``: this library side by side with the alternatives, in one run.

1. handshake per environment (new client to first ping): credentials from
   the cache against PyMongo's built-in MONGODB-AWS lookup;
2. credential fetch per environment: our sources against aiobotocore's providers;
3. event-loop stall during (1), from a 1 ms ticker;
4. rotation under load: warmed swap against naive rotation, both drivers;
5. the cache hot path against aiobotocore's ``get_frozen_credentials()``.

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
from pool.cli.bench.setup import ENVIRONMENTS, PROFILES

QUICK = {"samples": 25, "cache_batches": 100, "rotation_seconds": None}
FULL = {"samples": 200, "cache_batches": 200, "rotation_seconds": None}


#: ``--topology``: the emulator's MongoDB options (what Atlas users compare with: TLS, a set).
TOPOLOGIES: dict[str, dict[str, Any]] = {
    "standalone": {},
    "replica-set-tls": {"replica_set": 3, "tls": True},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick", action="store_true", help="fewer samples: about a minute instead of several"
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
        default="standalone",
        help="the MongoDB stand-in's shape: one plaintext server, or a 3-member replica set "
        "over TLS as on Atlas (default: standalone)",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="write the tables as markdown")
    p.add_argument("--plot", type=Path, metavar="PATH", help="write the distributions as a PNG")
    # For tests and quick experiments; not part of the documented interface.
    p.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    p.add_argument("--cache-batches", type=int, help=argparse.SUPPRESS)
    p.add_argument("--rotation-seconds", type=float, help=argparse.SUPPRESS)
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
        "topology": args.topology,
    }


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
    env: str, emulator: Any, setup: Any, samples: int, progress: Progress
) -> Any:
    from pool.cli.bench.fetch import bench_fetch
    from pool.cli.bench.handshake import bench_handshake
    from pool.cli.bench.report import EnvResult
    from pool.cli.bench.stats import Ticker, ratio

    result = EnvResult()
    label = ENVIRONMENTS[env]
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


async def _rotation(args: argparse.Namespace, results: Any, progress: Progress) -> None:
    from pool.cli.bench.rotation import bench_rotation

    _, done = progress.phase("rotation under load (both drivers)", 1)
    try:
        results.rotation, results.rotation_note = await bench_rotation(
            quick=bool(args.quick), seconds=args.rotation_seconds, **TOPOLOGIES[args.topology]
        )
        done("")
    except Exception as exc:  # shown in the table and the exit status
        results.rotation_error = "rotation: " + describe(exc)
        results.rotation_note = results.rotation_error
        done("[red]failed")


async def _measure(args: argparse.Namespace, results: Any, progress: Progress) -> None:
    """Run every measurement into ``results``, in an order that keeps them apart."""
    from pool.cli.bench.hot_path import bench_hot_path
    from pool.cli.bench.setup import BenchSetup
    from pool.standins.process import EmulatorProcess

    preset = QUICK if args.quick else FULL
    samples = args.samples or int(preset["samples"] or 0)
    profile = results.profile
    progress.console.print(
        f"python -m pool bench: profile '{profile.name}', {samples} samples per contender "
        f"and environment; stand-ins in a child process",
        highlight=False,
    )
    # First, while nothing else runs: the hot path is nanoseconds.
    _, done = progress.phase("cache hot path", 1)
    results.cache = await bench_hot_path(args.cache_batches or int(preset["cache_batches"] or 0))
    done("")
    _, done = progress.phase("starting the stand-ins", 1)
    async with EmulatorProcess(command_delay=profile.command_delay, faults=list(profile.faults),
                               **TOPOLOGIES[args.topology]) as emulator:  # fmt: skip
        done("")
        async with BenchSetup(emulator.info) as setup:
            for env in dict.fromkeys(args.only or ENVIRONMENTS):
                results.envs[env] = await _environment(env, emulator, setup, samples, progress)
    # Last: it starts its own stand-ins and loads both CPUs.
    await _rotation(args, results, progress)


async def _bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pool.cli.bench.report import BenchResults, markdown, rich_tables, to_json

    results = BenchResults(meta=_meta(args), profile=PROFILES[args.profile])
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
    if args.markdown is not None:
        await asyncio.to_thread(args.markdown.write_text, md, "utf-8")
    if args.plot is not None:
        await asyncio.to_thread(write_plot, results, args.plot)


def run(args: argparse.Namespace) -> int:
    for name in ("samples", "cache_batches", "rotation_seconds"):
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
