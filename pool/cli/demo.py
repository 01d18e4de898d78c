"""``python -m pool demo``: every AWS environment, credentials rotating under load.

For each environment in turn the stand-ins' standard variables are exported
exactly as that environment would export them, the pool is built through
``pool.sources.from_environment()`` (an explicit ``AssumeRoleSource`` for role
chaining), and a concurrent insert/find workload runs while credentials
expire every few seconds. Live progress while it runs; a table at the end,
and a verdict per environment: rotated (how many times), or not, and why.

Exit status: 0 when every environment rotated at least once (Lambda, whose
credentials do not rotate, excepted) with no failed operation and no lost
write; 1 when an operation failed or a write is missing; 3 when the run was
too short for some environment to rotate (nothing was tested there).
``--json PATH`` writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pool.cli.bench.setup import ENVIRONMENTS
from pool.cli.workload import HandshakeListener, TimedSource, Workload, patched_environ


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="total run time, shared by the environments (default 60)",
    )
    p.add_argument("--driver", choices=["pymongo", "motor"], default="pymongo")
    p.add_argument(
        "--lifetime",
        type=float,
        default=6.0,
        metavar="SECONDS",
        help="credential lifetime at the stand-ins (default 6: several rotations each)",
    )
    p.add_argument("--workers", type=int, default=32, help="concurrent tasks per environment")
    p.add_argument(
        "--pause",
        type=float,
        default=0.01,
        metavar="SECONDS",
        help="pause between a worker's insert+find rounds (default 0.01)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="also serve the pools' metrics for Prometheus at http://127.0.0.1:PORT/metrics",
    )
    p.add_argument(
        "--metrics",
        type=Path,
        metavar="PATH",
        help="write the final Prometheus scrape of the pools' metrics to PATH",
    )
    p.add_argument(
        "--only",
        choices=list(ENVIRONMENTS),
        action="append",
        help="run only this environment (repeatable)",
    )
    p.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the figures and verdicts as JSON"
    )


#: Lambda's variables hold one credential set for the sandbox's life: nothing rotates there.
NO_ROTATION = frozenset({"lambda"})
EXIT_FAILED = 1
EXIT_TOO_SHORT = 3


@dataclass
class Row:
    """One environment's live counters and final figures."""

    env: str
    state: str = "waiting"
    started: float = 0.0
    ops: int = 0
    failed: int = 0
    rotations: int = 0
    remaining: float | None = None
    missing: int | None = None
    partial_warmups: int = 0
    seconds: float = 0.0
    fetch: dict[str, Any] = field(default_factory=dict)
    handshake: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """No failed operation, no lost write."""
        return self.error is None and self.failed == 0 and self.missing == 0

    @property
    def tested(self) -> bool:
        """It rotated at least once (or is not expected to: Lambda)."""
        return self.rotations > 0 or self.env in NO_ROTATION

    def verdict(self, lifetime: float, envs: int = 1) -> str:
        """One sentence: what this environment's run showed."""
        if not self.ok:
            return f"FAILED: {self.error or 'failed operations or lost writes'}"
        if self.env in NO_ROTATION:
            return "passed; no rotation expected (Lambda's credentials live the sandbox's life)"
        if not self.rotations:
            return (
                f"NOT TESTED: no rotation in {self.seconds:.0f} s with {lifetime:g} s credentials; "
                f"give each environment at least {2 * lifetime:g} s (--duration "
                f"{2 * lifetime * envs:g} for {envs} environment(s)) or shorten --lifetime"
            )
        text = f"passed: rotated {self.rotations} time(s) under load, 0 failed, 0 lost writes"
        if self.partial_warmups:
            text += (
                f"; {self.partial_warmups} partial warm-up(s) (pool.warmup_partial): the next "
                "client took traffic before all its warm connections were open because the "
                "serving credentials were about to expire; the rest opened on demand"
            )
        return text

    def figures(self, lifetime: float, envs: int = 1) -> dict[str, Any]:
        """The row as JSON-able figures, with its verdict."""
        out = {k: v for k, v in asdict(self).items() if k not in ("state", "started", "remaining")}
        return {
            **out,
            "ok": self.ok,
            "tested": self.tested,
            "verdict": self.verdict(lifetime, envs),
        }


def _source_for(env: str, emulator: Any) -> Any:
    """Build the source exactly as a service in ``env`` would: from its variables."""
    from pool.sources import AssumeRoleSource, from_environment

    if env != "assume_role":
        return from_environment()
    return AssumeRoleSource(
        from_environment(),
        role_arn=emulator.info["chained_role_arn"],
        session_name="demo-chained",
        endpoint_url=emulator.info["sts_endpoint"],
        region=emulator.info["region"],
    )


async def _run_env(
    row: Row, emulator: Any, args: argparse.Namespace, seconds: float, telemetry: Any = None
) -> None:
    from pool.cli.bench.stats import summarize_ms
    from pool.client_pool import ClientPool

    row.state, row.started = "running", time.monotonic()
    listener = HandshakeListener()
    base_env = "ec2" if row.env == "assume_role" else row.env
    # The laptop runs the SSO profile: AWS_PROFILE, HOME and the two files. Every other
    # environment gets empty shared files, so the user's own ~/.aws takes no part.
    no_files = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    laptop = emulator.info["laptop"]["sso"] if row.env == "laptop" else None
    variables = laptop or {**no_files, **emulator.env_for(base_env)}
    with patched_environ(variables):
        source = TimedSource(_source_for(row.env, emulator))
        try:
            cp = ClientPool(
                emulator.mongodb_uri,
                credentials=source,
                driver=args.driver,
                warm_connections=4,
                name=row.env,
                telemetry=telemetry,
                event_listeners=[listener],
            )
            async with cp:
                work = Workload(cp.run, tag=row.env, workers=args.workers, pause=args.pause)
                stop = asyncio.Event()
                runner = asyncio.create_task(work.run_until(stop))
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline and not runner.done():
                    await asyncio.sleep(0.25)
                    status = cp.status()
                    row.ops, row.failed = work.ops, work.failed
                    row.rotations = status.rotations
                    row.remaining = (
                        None if status.credentials is None else (status.credentials.remaining_s)
                    )
                stop.set()
                await runner
                row.ops, row.failed = work.ops, work.failed
                row.rotations = cp.status().rotations
                row.missing = await work.missing()
                if work.errors:
                    row.error = ", ".join(f"{k}×{v}" for k, v in work.errors.items())
            # Read after close: a warm-up that finished while the pool closed counts too.
            row.partial_warmups = cp.status().partial_warmups
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {exc}"
        finally:
            row.seconds = time.monotonic() - row.started
            row.fetch = dict(summarize_ms(source.fetch_ms) or {})
            row.handshake = dict(summarize_ms(listener.handshake_ms) or {})
            row.state = ("done" if row.tested else "untested") if row.ok else "FAILED"


def _progress_table(rows: list[Row]) -> Any:
    from rich.table import Table

    table = Table(title="python -m pool demo: credentials rotating under load", expand=False)
    for col in ("environment", "state", "ops", "ops/s", "rotations", "failed", "creds expire in"):
        table.add_column(col, justify="left" if col in ("environment", "state") else "right")
    now = time.monotonic()
    for r in rows:
        rate = r.ops / max(1e-9, now - r.started) if r.state == "running" else None
        table.add_row(
            ENVIRONMENTS[r.env],
            r.state,
            f"{r.ops:,}",
            "" if rate is None else f"{rate:,.0f}",
            str(r.rotations),
            str(r.failed),
            "" if r.remaining is None or r.state != "running" else f"{r.remaining:.1f} s",
        )
    return table


def _results_table(rows: list[Row]) -> Any:
    from rich.table import Table

    table = Table(title="Results (milliseconds)")
    cols = (
        "environment",
        "fetch p50",
        "fetch p99",
        "handshake p50",
        "handshake p99",
        "rotations",
        "operations",
        "failed",
        "missing writes",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "environment" else "right")
    for r in rows:
        table.add_row(
            ENVIRONMENTS[r.env],
            f"{r.fetch.get('p50', 0):.2f}",
            f"{r.fetch.get('p99', 0):.2f}",
            f"{r.handshake.get('p50', 0):.2f}",
            f"{r.handshake.get('p99', 0):.2f}",
            str(r.rotations),
            f"{r.ops:,}",
            str(r.failed),
            "?" if r.missing is None else str(r.missing),
        )
    return table


async def _demo(args: argparse.Namespace) -> int:
    from rich.console import Console, Group

    from pool.cli.demo_panel import MetricsPanel

    panel = MetricsPanel(args.metrics_port)

    def view() -> Any:
        live_panel = panel.table()
        table = _progress_table(rows)
        return table if live_panel is None else Group(table, live_panel)

    envs = args.only or list(ENVIRONMENTS)
    rows = [Row(env) for env in envs]
    per_env = args.duration / len(envs)
    # Not a terminal (CI, a pipe): wide enough that the results table stays readable.
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(
        f"Stand-ins on loopback; credentials live {args.lifetime:g} s; {args.workers} workers; "
        f"driver {args.driver}; {per_env:.0f} s per environment."
    )
    if per_env < args.lifetime and any(env not in NO_ROTATION for env in envs):
        console.print(
            f"[yellow]{per_env:.1f} s per environment is likely too short for {args.lifetime:g} s "
            f"credentials to rotate; give it {2 * args.lifetime:g} s or more "
            f"(--duration {2 * args.lifetime * len(envs):g})"
        )
    try:
        await _run_all(rows, args, per_env, console, panel, view)
        if args.metrics is not None:
            await asyncio.to_thread(args.metrics.write_text, panel.scrape(), "utf-8")
        final_panel = panel.table()
    finally:
        panel.close()
    console.print(_results_table(rows))
    if final_panel is not None:
        console.print(final_panel)
    status = _verdict(console, rows, args)
    if args.json is not None:
        report = {
            "driver": args.driver,
            "lifetime_s": args.lifetime,
            "seconds_per_environment": per_env,
            "exit_status": status,
            "environments": [r.figures(args.lifetime, len(rows)) for r in rows],
        }
        await asyncio.to_thread(args.json.write_text, json.dumps(report, indent=2) + "\n", "utf-8")
    return status


async def _run_all(
    rows: list[Row],
    args: argparse.Namespace,
    per_env: float,
    console: Any,
    panel: Any,
    view: Any,
) -> None:
    """Each environment in turn against one emulator, under a live progress view."""
    from rich.live import Live

    from pool.standins.process import EmulatorProcess

    async with EmulatorProcess(lifetime=args.lifetime, command_delay=0.002) as emulator:
        with Live(
            view(),
            console=console,
            refresh_per_second=4,
            transient=not console.is_terminal,
        ) as live:
            for row in rows:
                task = asyncio.create_task(_run_env(row, emulator, args, per_env, panel.telemetry))
                while not task.done():
                    live.update(view())
                    if not console.is_terminal:
                        console.print(_plain_line(row), highlight=False)
                    await asyncio.wait({task}, timeout=1.0 if console.is_terminal else 2.0)
                await task
            live.update(view())


def _verdict(console: Any, rows: list[Row], args: argparse.Namespace) -> int:
    """Print one verdict per environment and the overall one; return the exit status."""
    for r in rows:
        colour = "green" if r.ok and r.tested else ("red" if not r.ok else "yellow")
        console.print(f"[{colour}]{ENVIRONMENTS[r.env]}: {r.verdict(args.lifetime, len(rows))}")
    if any(not r.ok for r in rows):
        console.print("[red]FAILED: see above")
        return EXIT_FAILED
    untested = [ENVIRONMENTS[r.env] for r in rows if not r.tested]
    if untested:
        console.print(
            f"[yellow]NOT TESTED: no credential rotation in {', '.join(untested)}; the run was "
            "too short to show anything"
        )
        return EXIT_TOO_SHORT
    console.print("[green]all environments rotated under load: 0 failed operations, 0 lost writes")
    return 0


def _plain_line(r: Row) -> str:
    left = "" if r.remaining is None else f", creds expire in {r.remaining:.1f} s"
    return (
        f"  {ENVIRONMENTS[r.env]}: {r.ops:,} ops, {r.rotations} rotations, {r.failed} failed{left}"
    )


def run(args: argparse.Namespace) -> int:
    for flag in ("duration", "lifetime", "workers"):
        if getattr(args, flag) <= 0:
            print(f"error: --{flag} must be positive; got {getattr(args, flag)}", file=sys.stderr)
            return 2
    try:
        import rich  # noqa: F401
    except ImportError:
        print(
            "error: the demo needs 'rich': pip install 'mongodb-aws-pool[bench]'", file=sys.stderr
        )
        return 2
    return asyncio.run(_demo(args))
