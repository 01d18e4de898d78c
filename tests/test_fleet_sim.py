"""The fleet benchmarks keep their interface: a small fleet_sim run and a tiny fleet_procs run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("peak_sts_per_s", "p99_sts_per_s", "peak_auth_per_s")
REQUIRED += ("expired_served_processes", "failed_operations")
STRATEGIES = ("pool", "pool_no_jitter", "botocore", "pymongo_builtin")


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AWS_EC2_METADATA_DISABLED": "true"}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, check=True,
    )  # fmt: skip


def test_fleet_sim_json_shape_and_what_the_fleet_settings_buy(tmp_path: Path) -> None:
    """fleet_sim writes {deploy, sts_outage} x strategies; pool beats no-jitter, fails nothing."""
    out = tmp_path / "fleet.json"
    done = _run(
        "benchmarks/fleet_sim.py", "--processes", "400", "--hours", "6", "--sts-budget", "20",
        "--json", str(out), timeout=50,
    )  # fmt: skip
    assert "fleet_sim: done" in done.stderr
    result = json.loads(out.read_text("utf-8"))
    for scenario in ("deploy", "sts_outage"):
        for strategy in STRATEGIES:
            assert set(REQUIRED) <= set(result[scenario][strategy]), (scenario, strategy)
    deploy, outage = result["deploy"], result["sts_outage"]
    assert deploy["pool"]["peak_sts_per_s"] * 10 < deploy["pool_no_jitter"]["peak_sts_per_s"]
    assert outage["pool"]["failed_operations"] == 0
    assert outage["pool"]["expired_served_processes"] == 0
    assert outage["pool_no_jitter"]["failed_operations"] > 0
    for key in ("peak_sts_per_s_during_outage", "peak_sts_per_s_after_outage", "catch_up_s"):
        assert key in outage["pool"], key


def test_fleet_sim_outage_catch_up_stays_within_the_budget(tmp_path: Path) -> None:
    """2,000 processes at a 10/s budget: during and after the outage pool stays within it."""
    out = tmp_path / "fleet.json"
    _run(
        "benchmarks/fleet_sim.py", "--processes", "2000", "--hours", "6", "--sts-budget", "10",
        "--json", str(out), timeout=50,
    )  # fmt: skip
    pool = json.loads(out.read_text("utf-8"))["sts_outage"]["pool"]
    assert pool["peak_sts_per_s_during_outage"] <= 10  # 22/s when retries ramped from 1 s
    assert pool["peak_sts_per_s_after_outage"] <= 10 and pool["peak_sts_per_s"] <= 10
    assert pool["catch_up_processes"] > 0 and pool["not_caught_up"] == 0
    assert pool["failed_operations"] == 0 and pool["expired_served_processes"] == 0


@pytest.mark.timeout(120)
def test_fleet_procs_runs_real_processes_against_one_emulator(tmp_path: Path) -> None:
    """fleet_procs with 2 processes, one short mode: counters from the emulator, no failed ops."""
    out = tmp_path / "procs.json"
    _run(
        "benchmarks/fleet_procs.py", "--processes", "2", "--modes", "jitter", "--lifetime", "3",
        "--duration", "4", "--spawn-margin", "6", "--json", str(out), timeout=110,
    )  # fmt: skip
    row = json.loads(out.read_text("utf-8"))["jitter"]
    assert row["exit_codes_nonzero"] == 0 and row["failed_operations"] == 0
    assert row["operations"] > 0 and row["sts_peak_per_s"] >= 1 and row["auth_peak_per_s"] >= 1
