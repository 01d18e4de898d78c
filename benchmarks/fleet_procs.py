"""N real processes, each with a ClientPool, started at the same instant against one emulator.

    python benchmarks/fleet_procs.py [--processes 16] [--lifetime 6] [--duration 20]
                                     [--modes no_jitter,jitter,fleet] [--json PATH]

What N means here: N operating-system processes, each one event loop with one
:class:`pool.ClientPool` (EKS IRSA: ``WebIdentitySource`` -> the STS stand-in),
a small steady workload (``--ops`` operations/s), all waiting for one
wall-clock instant and then starting together, like a deploy. The stand-ins
(STS and the MongoDB server) run in one more process
(:class:`pool.standins.process.EmulatorProcess`), on loopback. On 2 cores,
16-32 processes is what fits while leaving the emulator CPU to answer; the
figures show per-process behaviour (synchronised or not), not capacity.

Modes: ``no_jitter`` (jitter=0: the synchronised fleet), ``jitter`` (the
library's defaults), ``fleet`` (defaults plus ``Fleet(stagger_first_refresh=True,
startup_spread=...)``). Per mode: STS calls/s (peak, mean), authentications
and new connections/s at the server (peak, mean), peak open connections at the
server (one member), failed operations, and the spread of the k-th rotation's
time across processes. Bounded: each mode runs ``--duration`` seconds. Not a
test: prints a table, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pool import ClientPool, CredentialCache
from pool.cache.windows import Fleet
from pool.sources import WebIdentitySource
from pool.standins.process import EmulatorProcess

MODES = ("no_jitter", "jitter", "fleet")


# -- one fleet member (a child process) ---------------------------------------------------


async def member(args: argparse.Namespace) -> dict[str, Any]:
    """Wait for the start instant, run the pool and the workload, report rotations and ops."""
    await asyncio.sleep(max(0.0, args.start_at - time.time()))
    jitter = 0.0 if args.mode == "no_jitter" else 0.5
    fleet = Fleet(stagger_first_refresh=True, startup_spread=1.0) if args.mode == "fleet" else None
    source = WebIdentitySource.from_env()
    rotations: list[float] = []
    ok = failed = 0
    async with (
        CredentialCache(source, jitter=jitter, fleet=fleet, owns_source=True) as cache,
        ClientPool(args.uri, credentials=cache, warm_connections=args.warm) as cp,
    ):
        cache.add_listener(lambda _creds: rotations.append(time.time()))
        stop_at = args.start_at + args.duration

        async def load() -> None:
            nonlocal ok, failed
            while time.time() < stop_at:
                try:
                    await cp.run(lambda c: c.fleet.items.find_one({"_id": os.getpid()}))
                    ok += 1
                except Exception:
                    failed += 1
                await asyncio.sleep(1 / args.ops)

        await asyncio.gather(*(load() for _ in range(args.tasks)))
    return {"pid": os.getpid(), "ok": ok, "failed": failed, "sets": rotations}


def child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    for name in ("--uri", "--mode", "--out"):
        p.add_argument(name)
    for name, kind in (("--start-at", float), ("--duration", float), ("--ops", float)):
        p.add_argument(name, type=kind)
    p.add_argument("--warm", type=int)
    p.add_argument("--tasks", type=int)
    args = p.parse_args(argv)
    result = asyncio.run(member(args))
    Path(args.out).write_text(json.dumps(result), "utf-8")
    return 0


# -- the parent: one emulator, N members, per mode ------------------------------------------


def per_second(series: dict[str, int], start: float, end: float) -> list[int]:
    return [series.get(str(s), 0) for s in range(int(start), int(end) + 1)]


def rotation_spread(members: list[dict[str, Any]]) -> list[float]:
    """For each rotation (each set after the first), max - min of its time across processes."""
    depth = min(len(m["sets"]) for m in members) if members else 0
    return [
        round(max(m["sets"][k] for m in members) - min(m["sets"][k] for m in members), 3)
        for k in range(depth)
    ]


async def run_mode(args: argparse.Namespace, mode: str, tmp: Path) -> dict[str, Any]:
    async with EmulatorProcess(lifetime=args.lifetime) as em:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env |= em.env_for("eks_irsa") | {"AWS_EC2_METADATA_DISABLED": "true"}
        start_at = time.time() + args.spawn_margin
        outs = [tmp / f"{mode}-{i}.json" for i in range(args.processes)]
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--child",
                "--uri",
                em.mongodb_uri,
                "--mode",
                mode,
                "--out",
                str(out),
                "--start-at",
                str(start_at),
                "--duration",
                str(args.duration),
                "--ops",
                str(args.ops),
                "--warm",
                str(args.warm),
                "--tasks",
                str(args.tasks),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            for out in outs
        ]
        codes = [await p.wait() for p in procs]
    members = [json.loads(o.read_text("utf-8")) for o in outs if o.exists()]
    stats, end = em.stats, start_at + args.duration
    sts = per_second(stats["aws"]["calls"].get("sts", {}), start_at, end)
    rates = stats["mongo"]["per_second"]
    auths = per_second(rates.get("auth", {}), start_at, end)
    conns = per_second(rates.get("connections", {}), start_at, end)
    spread = rotation_spread(members)
    return {
        "processes": args.processes,
        "exit_codes_nonzero": sum(1 for c in codes if c != 0),
        "sts_peak_per_s": max(sts, default=0),
        "sts_mean_per_s": round(statistics.fmean(sts), 2) if sts else 0,
        "auth_peak_per_s": max(auths, default=0),
        "auth_mean_per_s": round(statistics.fmean(auths), 2) if auths else 0,
        "connections_peak_per_s": max(conns, default=0),
        "connections_peak": stats["mongo"]["connections_peak"],
        "auth_failures": sum(stats["mongo"]["auth_failures"].values()),
        "operations": sum(m["ok"] for m in members),
        "failed_operations": sum(m["failed"] for m in members),
        "rotation_spread_s": spread,
        "rotation_spread_mean_s": round(statistics.fmean(spread), 3) if spread else None,
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    cols = ("sts_peak_per_s", "sts_mean_per_s", "auth_peak_per_s", "auth_mean_per_s",
            "connections_peak_per_s", "connections_peak", "failed_operations",
            "rotation_spread_mean_s")  # fmt: skip
    lines = ["| mode | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for mode, row in results.items():
        lines.append(f"| {mode} | " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines)


async def parent(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fleet-procs-") as tmp:
        for mode in args.modes.split(","):
            started = time.perf_counter()
            results[mode] = await run_mode(args, mode, Path(tmp))
            took = time.perf_counter() - started
            print(f"fleet_procs: {mode} done in {took:.0f} s", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--processes", type=int, default=16)
    p.add_argument("--lifetime", type=float, default=6.0, help="credential lifetime, seconds")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per mode")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--ops", type=float, default=10.0, help="operations/s per task")
    p.add_argument("--tasks", type=int, default=2, help="workload tasks per process")
    p.add_argument("--warm", type=int, default=2, help="warm_connections per process")
    p.add_argument("--spawn-margin", type=float, default=10.0, help="seconds to start processes")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    results = asyncio.run(parent(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
