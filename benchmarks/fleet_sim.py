"""A fleet of up to 10,000 processes sharing one credential endpoint, over a simulated day.

    python benchmarks/fleet_sim.py --processes 10000 --json fleet.json --plot docs/fleet_sim.png

Discrete events (see ``fleet_model.py`` for the model and the strategies),
driven by the library's own policy code from :mod:`pool.cache.windows` and
:mod:`pool._internal.backoff`. Scenarios, each starting every process at the
same instant (a deploy):

* ``deploy``: a day, nothing goes wrong;
* ``sts_outage``: the endpoint answers errors for ``--outage-minutes`` (15),
  starting when the synchronised fleet's 4th refresh window opens (the worst
  moment for strategies that refresh together);
* ``sts_throttled``: the endpoint admits ``--throttle-rate`` calls/s (burst
  twice that) as a token bucket, like STS per account.

Strategies: ``pool`` (this library with ``Fleet.for_budget(processes,
--sts-budget)``, the settings the README recommends for fleets),
``pool_defaults`` (no fleet settings), ``pool_no_jitter`` (jitter 0: the
synchronised case), ``botocore``, ``pymongo_builtin``. The top-level
``deploy``/``sts_outage``/``sts_throttled`` are for ``--environment``
(default ``eks_irsa``, 1 h STS credentials); ``--all-environments`` adds
``environments.<env>`` for ECS, EKS Pod Identity, EC2 (6 h) and Lambda.
Progress goes to stderr. Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from fleet_model import ENVS, STRATEGIES, Config, Env, World

from pool.cache import windows as w
from pool.client_pool.options import DEFAULT_WARM_SPREAD

SCENARIOS = ("deploy", "sts_outage", "sts_throttled")


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def summarise(world: World) -> dict[str, Any]:
    """The figures of one run (per-second peaks, availability, recovery)."""
    cfg, env = world.cfg, world.env
    steady = slice(int(min(env.lifetime, cfg.horizon / 2)), None)
    auths = world.auths
    ready = np.array(world.ready)
    ready = ready[~np.isnan(ready)]
    recovered = [r for r in world.recovered_at if r is not None]
    mean_auth = float(auths[steady].mean())
    tail = auths[steady][: len(auths[steady]) // 10 * 10]
    per_10s = tail.reshape(-1, 10).sum(axis=1) / 10 if len(tail) else tail
    return {
        "peak_sts_per_s": int(world.calls.max()),
        "p99_sts_per_s": round(percentile(world.calls, 99), 2),
        "mean_sts_per_s": round(float(world.calls.mean()), 3),
        "steady_peak_sts_per_s": int(world.calls[steady].max()),
        "total_sts_calls": int(world.calls.sum()),
        "throttled_calls": int(world.throttled.sum()),
        "peak_auth_per_s": int(auths.max()),
        "steady_peak_auth_per_s": int(auths[steady].max()),
        "steady_mean_auth_per_s": round(mean_auth, 2),
        "steady_auth_peak_to_mean": round(float(auths[steady].max()) / mean_auth, 2)
        if mean_auth
        else None,
        "steady_auth_peak_to_mean_10s": round(float(per_10s.max()) / mean_auth, 2)
        if mean_auth
        else None,
        "expired_served_processes": sum(world.expired_served),
        "failed_operations": round(sum(world.failed_ops)),
        "processes_with_failures": sum(1 for x in world.failed_ops if x > 0),
        "processes_without_credentials_ever": sum(1 for x in world.down_total if x > 0),
        "time_to_ready_p50_s": round(percentile(ready, 50), 1),
        "time_to_ready_max_s": round(float(ready.max()), 1) if len(ready) else None,
        "processes_ready": len(ready),
        "time_to_credentials_after_outage_s": round(max(recovered), 1) if recovered else 0.0,
        "processes_recovering_after_outage": len(recovered),
        **outage_figures(world),
        "events": world.events,
    }


def outage_figures(world: World) -> dict[str, Any]:
    """The outage and its catch-up: peaks during it and in the hour after, how long it took.

    ``catch_up_s``: from the end of the outage until the last process whose
    call failed in it held a new set (``catch_up_processes`` of them; those
    still without one at the end of the run count in ``not_caught_up``).
    """
    out = world.cfg.outage
    if out is None:
        return {}
    start, end = int(out[0]), int(out[1])
    caught = [x for x in world.caught_up_at if x is not None]
    return {
        "peak_sts_per_s_during_outage": int(world.calls[start:end].max()),
        "peak_sts_per_s_after_outage": int(world.calls[end : end + 3600].max()),
        "p99_sts_per_s_after_outage": round(percentile(world.calls[end : end + 3600], 99), 2),
        "catch_up_s": round(max(caught), 1) if caught else 0.0,
        "catch_up_p50_s": round(percentile(np.array(caught), 50), 1),
        "catch_up_processes": len(caught),
        "not_caught_up": sum(world.outage_failed),
    }


def scenario_config(args: argparse.Namespace, env: Env, scenario: str) -> Config:
    fleet = w.Fleet.for_budget(
        args.processes, args.sts_budget, outage_tolerance=args.outage_minutes * 60
    )
    cfg = Config(processes=args.processes, horizon=args.hours * 3600, fleet=fleet, seed=args.seed)
    cfg.warm_spread = args.warm_spread
    if scenario == "sts_outage":
        # STS: the refresh instant of the synchronised strategies (no jitter and
        # botocore refresh every lifetime - advisory) nearest mid-horizon, by
        # when jittered fleets are well mixed. Agents: mid-horizon.
        start = cfg.horizon / 2
        if env.fresh:
            period = env.lifetime - w.advisory_for(env.lifetime)
            start = round(start / period) * period
        cfg.outage = (start, start + args.outage_minutes * 60)
    elif scenario == "sts_throttled":
        cfg.throttle = (args.throttle_rate, 2 * args.throttle_rate)
    return cfg


def run_env(args: argparse.Namespace, env: Env) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scenario in SCENARIOS:
        if scenario == "sts_throttled" and not env.fresh:
            # Agents' limits are per instance or task (ECS: 40/s, burst 60), not
            # shared by the fleet: one fleet-wide bucket would be the wrong model.
            continue
        out[scenario] = {}
        for strategy in STRATEGIES:
            cfg = scenario_config(args, env, scenario)
            started = time.perf_counter()
            world = World(cfg, env, strategy).run()
            out[scenario][strategy] = summarise(world)
            if cfg.outage:
                out[scenario][strategy]["outage_s"] = [round(x) for x in cfg.outage]
            took = time.perf_counter() - started
            print(
                f"  {env.name:17} {scenario:13} {strategy:15} {took:5.1f} s  "
                f"peak {out[scenario][strategy]['peak_sts_per_s']:>6}/s  "
                f"failed ops {out[scenario][strategy]['failed_operations']}",
                file=sys.stderr,
                flush=True,
            )
            if scenario != "sts_throttled" and env.name == args.environment and args.plot:
                args.series.setdefault(scenario, {})[strategy] = world.calls.copy()
                args.outage = cfg.outage or args.outage
    return out


def table(result: dict[str, Any]) -> str:
    cols = (
        "peak_sts_per_s", "p99_sts_per_s", "steady_peak_sts_per_s", "peak_auth_per_s",
        "steady_auth_peak_to_mean", "steady_auth_peak_to_mean_10s",
        "expired_served_processes", "failed_operations",
        "time_to_ready_max_s", "time_to_credentials_after_outage_s",
    )  # fmt: skip
    lines = []
    for scenario in (s for s in SCENARIOS if s in result):
        lines.append(f"| {scenario} | " + " | ".join(cols) + " |")
        lines.append("|---" * (len(cols) + 1) + "|")
        for strategy, row in result[scenario].items():
            lines.append(f"| {strategy} | " + " | ".join(str(row[c]) for c in cols) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(
    series: dict[str, dict[str, np.ndarray]], path: Path, args: argparse.Namespace, env: Env
) -> None:
    """Two panels: the deploy's first four lifetimes, and the outage with its catch-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8.5))
    deploy = series["deploy"]
    span = int(min(len(next(iter(deploy.values()))), 4 * env.lifetime + 600)) // 60 * 60
    _panel(top, deploy, 0, span, args.sts_budget)
    top.set_title(
        f"{args.processes} processes started at once, {env.name} ({env.lifetime / 3600:g} h)"
    )
    start, end = (int(x) for x in args.outage)
    first = max(0, (start - 600) // 60 * 60)
    _panel(bottom, series["sts_outage"], first, end + 3600 - first, args.sts_budget)
    bottom.axvspan(start / 3600, end / 3600, color="grey", alpha=0.15, label="STS down")
    bottom.set_title(f"{args.outage_minutes:g}-minute STS outage and the catch-up after it")
    bottom.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _panel(ax: Any, series: dict[str, np.ndarray], first: int, span: int, budget: float) -> None:
    """Per-minute maxima of calls/s from ``first`` over ``span`` s (a multiple of 60), log scale."""
    span = span // 60 * 60
    for strategy, calls in series.items():
        # One-minute maxima keep the spikes visible at this scale.
        per_min = calls[first : first + span].reshape(-1, 60).max(axis=1)
        hours = (first + 60 * np.arange(len(per_min))) / 3600
        ax.plot(hours, np.maximum(per_min, 0.5), label=strategy, lw=1)
    ax.axhline(budget, color="black", ls="--", lw=0.8, label=f"budget {budget:g}/s")
    ax.set_yscale("log")
    ax.set_xlabel("hours since the deploy")
    ax.set_ylabel("credential endpoint calls/s (max per minute)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--processes", type=int, default=10_000)
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--environment", choices=sorted(ENVS), default="eks_irsa")
    p.add_argument("--all-environments", action="store_true")
    p.add_argument("--sts-budget", type=float, default=50.0, help="calls/s the operator allows")
    p.add_argument("--throttle-rate", type=float, default=50.0, help="STS's rate limit, calls/s")
    p.add_argument("--outage-minutes", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--warm-spread",
        type=float,
        default=DEFAULT_WARM_SPREAD,
        help="ClientPool(warm_spread=...) of the pool strategies: each rotation's "
        "connections over N s (default: the library's, %(default)s; 0: all at once)",
    )
    p.add_argument("--json", type=Path)
    p.add_argument("--plot", type=Path)
    args = p.parse_args(argv)
    args.series, args.outage = {}, None
    started = time.perf_counter()
    envs = list(ENVS) if args.all_environments else [args.environment]
    print(f"fleet_sim: {args.processes} processes, {args.hours:g} h", file=sys.stderr)
    by_env = {name: run_env(args, ENVS[name]) for name in envs}
    result: dict[str, Any] = dict(by_env[args.environment])
    result["config"] = {
        "processes": args.processes,
        "hours": args.hours,
        "environment": args.environment,
        "sts_budget": args.sts_budget,
        "throttle_rate": args.throttle_rate,
        "outage_minutes": args.outage_minutes,
        "fleet": vars_of(w.Fleet.for_budget(args.processes, args.sts_budget)),
    }
    if args.all_environments:
        result["environments"] = by_env
    sync = result["deploy"]["pool_no_jitter"]["peak_sts_per_s"]
    ours = result["deploy"]["pool"]["peak_sts_per_s"]
    result["ratios"] = {"deploy_peak_pool_over_no_jitter": round(ours / sync, 5) if sync else None}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    if args.plot:
        plot(args.series, args.plot, args, ENVS[args.environment])
    print(table(result))
    print(f"fleet_sim: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


def vars_of(fleet: w.Fleet) -> dict[str, Any]:
    names = ("startup_spread", "refresh_spread", "retry_spread")
    out: dict[str, Any] = {k: round(getattr(fleet, k), 1) for k in names}
    out |= {"stagger_first_refresh": fleet.stagger_first_refresh}
    return out | {"outage_tolerance": fleet.outage_tolerance}


if __name__ == "__main__":
    sys.exit(main())
