"""``python -m pool emulate`` as a new user runs it: start, point real software at it, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import OperationFailure

pymongo_auth_aws = pytest.importorskip("pymongo_auth_aws")

ENV_KEYS = {
    "mongodb_uri",
    "sts_endpoint",
    "imds_endpoint",
    "ecs_full_uri",
    "ecs_auth_token",
    "web_identity_token_file",
    "role_arn",
    "region",
    "lambda_env",
}


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"emulate exited early: {proc.communicate()}")
        if path.exists() and path.stat().st_size > 0:
            try:
                return json.loads(path.read_text())  # type: ignore[no-any-return]
            except json.JSONDecodeError:
                pass  # still being written
        time.sleep(0.05)
    raise AssertionError("emulate did not write its JSON in time")


@pytest.fixture
def emulate(tmp_path: Path):  # type: ignore[no-untyped-def]
    out = tmp_path / "emulate.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pool", "emulate", "--lifetime", "120", "--json", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, wait_for_file(out, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_emulate_json_and_clean_shutdown(emulate) -> None:  # type: ignore[no-untyped-def]
    """The JSON has the documented keys; SIGINT stops the process with status 0."""
    proc, info = emulate
    assert ENV_KEYS <= set(info)
    assert set(info["lambda_env"]) >= {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "export AWS_CONTAINER_CREDENTIALS_FULL_URI=" in stdout
    assert "export AWS_WEB_IDENTITY_TOKEN_FILE=" in stdout
    assert "export AWS_EC2_METADATA_SERVICE_ENDPOINT=" in stdout


def test_pymongo_own_lookup_through_printed_variables(emulate, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """PyMongo's built-in MONGODB-AWS lookup authenticates with what emulate printed (ECS)."""
    _, info = emulate
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", info["ecs_full_uri"])
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", info["ecs_auth_token"])
    pymongo_auth_aws.auth.set_cached_credentials(None)
    uri = info["mongodb_uri"].rstrip("/") + "/?authMechanism=MONGODB-AWS"
    client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=10_000)  # type: ignore[type-arg]
    try:
        assert client.admin.command("ping")["ok"] == 1
    finally:
        client.close()
        pymongo_auth_aws.auth.set_cached_credentials(None)

    # And a wrong token is refused by the endpoint, so authentication fails.
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-the-token")
    client = MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        with pytest.raises(OperationFailure):
            client.admin.command("ping")
    finally:
        client.close()
        pymongo_auth_aws.auth.set_cached_credentials(None)


def test_emulate_json_is_private(tmp_path: Path) -> None:
    """The JSON (container token, Lambda keys) is written 0600, even over a 0644 file."""
    import stat

    from pool.cli.emulate import write_private

    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, '{"token": "x"}\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '{"token": "x"}\n'
    fresh = tmp_path / "fresh.json"
    write_private(fresh, "{}")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


def test_emulate_writes_its_json_0600(emulate, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`python -m pool emulate --json F` leaves F readable by its owner only."""
    import stat

    assert stat.S_IMODE((tmp_path / "emulate.json").stat().st_mode) == 0o600


def test_emulate_rate_limit_throttles_and_stats_count(tmp_path: Path) -> None:
    """--rate-limit sts=1:1 answers STS's Throttling once over; --stats writes per-second counts."""
    import urllib.error
    import urllib.request

    out, stats = tmp_path / "emulate.json", tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pool", "emulate", "--json", str(out), "--stats", str(stats),
         "--rate-limit", "sts=0.001:1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        info = wait_for_file(out, proc)
        url = info["sts_endpoint"] + "/?Action=GetCallerIdentity&Version=2011-06-15"
        bodies = []
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        for _ in range(2):
            with pytest.raises(urllib.error.HTTPError) as err:
                direct.open(url, timeout=10)
            bodies.append((err.value.code, err.value.read().decode()))
        assert "<Code>Throttling</Code>" not in bodies[0][1]
        assert bodies[1][0] == 400 and "<Code>Throttling</Code>" in bodies[1][1]
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    counts = json.loads(stats.read_text())["aws"]
    assert sum(counts["calls"]["sts"].values()) == 2
    assert sum(counts["throttled"]["sts"].values()) == 1


def test_emulate_refuses_a_bad_rate_limit() -> None:
    """A malformed --rate-limit spec exits with status 2 and says the expected form."""
    done = subprocess.run(
        [sys.executable, "-m", "pool", "emulate", "--rate-limit", "sts"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2 and "TARGET[:OPERATION]=RATE[:BURST]" in done.stderr
