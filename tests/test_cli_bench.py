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
from pool.cli.bench.lease import LEASE_KEYS
from pool.cli.bench.stats import Recorder

ENVS = ["lambda", "ecs", "ec2", "eks_irsa", "eks_pod_identity", "assume_role", "laptop"]
P_KEYS = {"p50", "p95", "p99", "max", "n"}
R_KEYS = {"ops", "failed", "lost", "rotations", "p99_steady_ms", "p99_rotation_ms"}
TOPOLOGIES = ["standalone", "replica-set-tls"]
MONGODB_KEYS = {"members", "tls", "topology_type", "connections", "authentications",
                "tls_handshakes"}  # fmt: skip
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
    metrics: str  # the run's own Prometheus scrape, next to the JSON


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One tiny full run (both topologies, all environments, 2 samples), shared by the tests."""
    out = tmp_path_factory.mktemp("bench")
    paths = {name: out / f"bench.{name}" for name in ("json", "md", "png")}
    # Rotation runs kept short and small (each warm-up opens one connection per worker):
    # two topologies' rotations are most of this run's time.
    proc = subprocess.run(
        [sys.executable, "-m", "pool", "bench", "--samples", str(SAMPLES),
         "--cache-batches", "5", "--rotation-seconds", "1", "--rotation-workers", "8",
         "--json", str(paths["json"]), "--markdown", str(paths["md"]),
         "--plot", str(paths["png"])],
        capture_output=True, text=True, timeout=55, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = paths["json"].read_text("utf-8")
    return Run(
        proc.returncode, proc.stdout, proc.stderr, json.loads(text), text,
        paths["md"].read_text("utf-8"), paths["png"].read_bytes(),
        paths["json"].with_suffix(".metrics.prom").read_text("utf-8"),
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
    assert set(data) == {
        "meta", "environments", "rotation", "topologies", "cache_get_ns", "lease_ns", "lease",
        "exporters",
    }  # fmt: skip
    assert set(data["lease_ns"]) == set(LEASE_KEYS)
    assert data["lease"]["ratio_client_before_vs_after"] > 0
    assert set(data["exporters"]) == {"opentelemetry_exporter", "prometheus_client"}
    assert "mongodb_aws_pool_rotations_total" in run.metrics
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
    assert list(data["topologies"]) == TOPOLOGIES
    for name, topology in data["topologies"].items():
        assert set(topology) == {"mongodb", "environments", "rotation"}, name
        assert set(topology["mongodb"]) == MONGODB_KEYS
        assert list(topology["environments"]) == ENVS
        for series in topology["environments"].values():
            assert set(series) == {"handshake_ms", "loop_stall_ms"}  # the fetch is measured once
        assert set(topology["rotation"]) == {"motor", "pymongo"}


def test_top_level_figures_are_the_standalone_ones(run: Run) -> None:
    """The keys that predate topologies keep meaning the standalone server's figures."""
    standalone = run.data["topologies"]["standalone"]
    assert run.data["rotation"] == standalone["rotation"]
    for env, series in run.data["environments"].items():
        for metric in ("handshake_ms", "loop_stall_ms"):
            assert series[metric] == standalone["environments"][env][metric], (env, metric)
    assert run.data["topologies"]["replica-set-tls"]["environments"] != standalone["environments"]


def test_each_topology_was_the_server_it_claims(run: Run) -> None:
    """Standalone was one plaintext server; replica-set-tls three members, every connection TLS."""
    # Each sample is two new clients, each authenticating at least once (2 warm-ups too).
    least = len(ENVS) * (SAMPLES + 2) * 2
    alone = run.data["topologies"]["standalone"]["mongodb"]
    assert alone["members"] == 1 and alone["tls"] is False
    assert alone["topology_type"] == "Single"
    assert alone["tls_handshakes"] == 0 and alone["authentications"] >= least
    rs = run.data["topologies"]["replica-set-tls"]["mongodb"]
    assert rs["members"] == 3 and rs["tls"] is True
    assert rs["topology_type"] == "ReplicaSetWithPrimary"
    assert rs["authentications"] >= least
    # Every connection the server accepted completed a TLS handshake before any command
    # (a client closing mid-handshake may leave a few short).
    assert rs["connections"] >= rs["tls_handshakes"] >= rs["authentications"]
    assert rs["tls_handshakes"] >= 0.9 * rs["connections"]
    # Three members: each new client opens a monitor per member, so more connections than auths.
    assert rs["connections"] >= 3 * least


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
    for series in run.data["topologies"]["replica-set-tls"]["environments"].values():
        for metric in ("handshake_ms", "loop_stall_ms"):
            assert_p(series[metric]["pool"], n=SAMPLES)
            assert_p(series[metric]["pymongo_builtin"], n=SAMPLES)


def test_rotation_figures_for_both_drivers_and_modes(run: Run) -> None:
    """Each topology's rotation reports R per driver and mode; the warmed swap loses nothing."""
    for name, topology in run.data["topologies"].items():
        for driver, modes in topology["rotation"].items():
            for mode, r in modes.items():
                assert isinstance(r, dict) and set(r) == R_KEYS, (name, driver, mode)
                for key in ("ops", "failed", "lost", "rotations"):
                    assert isinstance(r[key], int) and r[key] >= 0
                for key in ("p99_steady_ms", "p99_rotation_ms"):
                    assert isinstance(r[key], float)
                assert r["ops"] > 0
            assert modes["warmed"]["failed"] == 0 and modes["warmed"]["lost"] == 0, name


def test_markdown_and_png_are_written(run: Run) -> None:
    """--markdown writes the tables with ratios, --plot a real PNG."""
    for title in ("Credential fetch", "Handshake", "Event-loop stall", "Rotation", "Cache hot"):
        assert title in run.markdown
    assert "ratio p50" in run.markdown and "×" in run.markdown
    assert "| environment | topology | who |" in run.markdown
    assert "| Amazon ECS | replica set (3) over TLS | PyMongo built-in |" in run.markdown
    assert "| replica set (3) over TLS | motor | warmed |" in run.markdown
    assert run.png.startswith(b"\x89PNG\r\n\x1a\n") and len(run.png) > 20_000


def test_terminal_output_has_tables_with_ratios(run: Run) -> None:
    """stdout holds the end-of-run tables with ratio columns; progress goes to stderr."""
    assert "ratio p50" in run.stdout and "×" in run.stdout
    assert "Amazon ECS" in run.stdout and "replica set (3) over TLS" in run.stdout
    assert "handshake" in run.stderr
    assert "replica set (3) over TLS · Amazon ECS: handshake" in run.stderr


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


@pytest.mark.parametrize(
    ("argv", "measured"),
    [([], TOPOLOGIES), (["--topology", "replica-set-tls"], ["replica-set-tls"]),
     (["--topology", "standalone"], ["standalone"])],
)  # fmt: skip
def test_topology_flag_picks_one_and_no_flag_measures_both(
    argv: list[str], measured: list[str]
) -> None:
    """Without --topology the run measures every topology; with it, only that one."""
    from pool.cli import build_parser
    from pool.cli.bench import _meta, _topologies

    args = build_parser().parse_args(["bench", *argv])
    assert _topologies(args) == measured
    assert _meta(args)["topology"] == measured[0]


def test_json_of_a_one_topology_run_has_it_at_the_top_and_in_topologies() -> None:
    """--topology X: the top-level figures are X's, and topologies holds X alone."""
    from pool.cli.bench.report import BenchResults, EnvResult, TopologyResult, to_json
    from pool.cli.bench.setup import PROFILES

    topology = TopologyResult(envs={"ecs": EnvResult(error="handshake: refused")})
    topology.mongodb = {"members": 3, "tls": True}
    results = BenchResults(
        meta={"topology": "replica-set-tls"}, profile=PROFILES["loopback"],
        topologies={"replica-set-tls": topology},
    )  # fmt: skip
    data = to_json(results)
    assert list(data["topologies"]) == ["replica-set-tls"]
    assert data["topologies"]["replica-set-tls"]["mongodb"] == {"members": 3, "tls": True}
    assert data["environments"]["ecs"]["handshake_ms"] == {"pool": None, "pymongo_builtin": None}
    assert results.failed
