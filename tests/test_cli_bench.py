"""``python -m pool bench`` as a user runs it: a tiny configuration, every output checked.

Timings are never asserted (a noisy 2-core machine); shapes, types, counts,
nulls, files and the absence of secrets are.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from pool._internal.redact import redact
from pool.cli.bench.stats import Recorder

ENVS = ["lambda", "ecs", "ec2", "eks_irsa", "eks_pod_identity", "assume_role", "laptop"]
P_KEYS = {"p50", "p95", "p99", "max", "n"}
R_KEYS = {"ops", "failed", "lost", "rotations", "p99_steady_ms", "p99_rotation_ms"}
SAMPLES = 2
# A stand-in secret access key (40 characters of base64) or session token (AWS's prefix).
SECRETS = re.compile(r"IQoJb3JpZ2lu|(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    data: dict[str, Any]
    json_text: str
    markdown: str
    png: bytes


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One tiny bench run (all environments, 2 samples, short rotation), shared by the tests."""
    out = tmp_path_factory.mktemp("bench")
    paths = {name: out / f"bench.{name}" for name in ("json", "md", "png")}
    proc = subprocess.run(
        [sys.executable, "-m", "pool", "bench", "--samples", str(SAMPLES),
         "--cache-batches", "5", "--rotation-seconds", "2.5",
         "--json", str(paths["json"]), "--markdown", str(paths["md"]),
         "--plot", str(paths["png"])],
        capture_output=True, text=True, timeout=55, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = paths["json"].read_text("utf-8")
    return Run(
        proc.returncode, proc.stdout, proc.stderr, json.loads(text), text,
        paths["md"].read_text("utf-8"), paths["png"].read_bytes(),
    )  # fmt: skip


def assert_p(value: Any, *, n: int | None = None) -> None:
    assert isinstance(value, dict) and set(value) == P_KEYS, value
    assert isinstance(value["n"], int) and value["n"] > 0
    if n is not None:
        assert value["n"] == n
    for key in ("p50", "p95", "p99", "max"):
        assert isinstance(value[key], float) and value[key] > 0
    assert value["p50"] <= value["p95"] <= value["p99"] <= value["max"]


def test_json_has_exactly_the_documented_shape(run: Run) -> None:
    """The JSON's keys and types are exactly those the README documents, nothing more."""
    data = run.data
    assert set(data) == {"meta", "environments", "rotation", "cache_get_ns"}
    meta = data["meta"]
    assert set(meta) == {
        "python",
        "pymongo",
        "motor",
        "aiobotocore",
        "profile",
        "quick",
        "topology",
    }
    assert all(isinstance(meta[k], str) for k in ("python", "pymongo", "motor", "aiobotocore"))
    assert meta["profile"] == "loopback" and meta["quick"] is False
    assert meta["topology"] == "standalone"
    assert list(data["environments"]) == ENVS
    for env, series in data["environments"].items():
        assert set(series) == {"fetch_ms", "handshake_ms", "loop_stall_ms"}, env
        assert set(series["fetch_ms"]) == {"pool", "aiobotocore"}
        assert set(series["handshake_ms"]) == {"pool", "pymongo_builtin"}
        assert set(series["loop_stall_ms"]) == {"pool", "pymongo_builtin"}
    assert set(data["rotation"]) == {"motor", "pymongo"}
    for modes in data["rotation"].values():
        assert set(modes) == {"warmed", "naive"}
    assert set(data["cache_get_ns"]) == {"pool_current", "pool_get", "aiobotocore"}


def test_every_comparison_that_applies_was_measured(run: Run) -> None:
    """Each latency series holds n == --samples measurements; Lambda's aiobotocore fetch is null."""
    for env, series in run.data["environments"].items():
        assert_p(series["fetch_ms"]["pool"], n=SAMPLES)
        if env == "lambda":
            assert series["fetch_ms"]["aiobotocore"] is None
        else:
            assert_p(series["fetch_ms"]["aiobotocore"], n=SAMPLES)
        for metric in ("handshake_ms", "loop_stall_ms"):
            assert_p(series[metric]["pool"], n=SAMPLES)
            assert_p(series[metric]["pymongo_builtin"], n=SAMPLES)
    for value in run.data["cache_get_ns"].values():
        assert_p(value, n=5)


def test_rotation_figures_for_both_drivers_and_modes(run: Run) -> None:
    """Rotation reports R for each driver and mode; the warmed swap fails and loses nothing."""
    for driver, modes in run.data["rotation"].items():
        for mode, r in modes.items():
            assert isinstance(r, dict) and set(r) == R_KEYS, (driver, mode)
            for key in ("ops", "failed", "lost", "rotations"):
                assert isinstance(r[key], int) and r[key] >= 0
            for key in ("p99_steady_ms", "p99_rotation_ms"):
                assert isinstance(r[key], float)
            assert r["ops"] > 0
        assert modes["warmed"]["failed"] == 0 and modes["warmed"]["lost"] == 0


def test_markdown_and_png_are_written(run: Run) -> None:
    """--markdown writes the tables with ratios, --plot a real PNG."""
    for title in ("Credential fetch", "Handshake", "Event-loop stall", "Rotation", "Cache hot"):
        assert title in run.markdown
    assert "ratio p50" in run.markdown and "×" in run.markdown
    assert run.png.startswith(b"\x89PNG\r\n\x1a\n") and len(run.png) > 20_000


def test_terminal_output_has_tables_with_ratios(run: Run) -> None:
    """stdout holds the end-of-run tables with ratio columns; progress goes to stderr."""
    assert "ratio p50" in run.stdout and "×" in run.stdout
    assert "Amazon ECS" in run.stdout
    assert "handshake" in run.stderr


def test_no_secret_is_printed_or_written(run: Run) -> None:
    """No secret key or session token appears on stdout, stderr, in the JSON or the markdown."""
    for name, text in (("stdout", run.stdout), ("stderr", run.stderr),
                       ("json", run.json_text), ("markdown", run.markdown)):  # fmt: skip
        found = SECRETS.search(text)
        assert found is None, f"secret-looking text in {name}: {found.group()[:6]}…"


def test_redact_hides_keys_and_tokens() -> None:
    """Error text shown by the bench never carries a key or token, but keeps the message."""
    token = "IQoJb3JpZ2luX2VjE" + "A" * 300
    text = redact(f"AuthenticationFailed for {token} with wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert "IQoJb3JpZ2lu" not in text and "EXAMPLEKEY" not in text
    assert text.startswith("AuthenticationFailed for <redacted>")


def test_recorder_reports_hdr_percentiles() -> None:
    """p50/p95/p99/max come from the HDR histogram, accurate to 3 significant digits."""
    rec = Recorder(resolution=0.001, highest=60_000.0)
    for value in range(1, 101):
        rec.record(float(value))
    summary = rec.summary()
    assert summary is not None and summary["n"] == 100
    assert summary["p50"] == pytest.approx(50, rel=1e-3)
    assert summary["p99"] == pytest.approx(99, rel=1e-3)
    assert summary["max"] == pytest.approx(100, rel=1e-3)
    assert Recorder(resolution=1, highest=10).summary() is None


def test_redaction_leaves_endpoints_and_paths_alone() -> None:
    """Redaction does not mangle the endpoints and file paths that make errors useful."""
    text = (
        "cannot reach http://127.0.0.1:4242/v1/credentials; token file "
        "/tmp/pool-aws-y2oojhl9/eks-pod-identity-token"
    )
    assert redact(text) == text
    assert redact("Authorization V-jHZ52Zv3EQxgOL3lD6OH6Qu9HelPxWYh3B_xbUcl0") == (
        "Authorization <redacted>"
    )
