"""Every block `emulate` prints keeps every call of `check` on loopback, under a socket guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.test_cli_emulate import wait_for_file

ROOT = Path(__file__).resolve().parents[1]
GUARD = Path(__file__).resolve().parent / "loopback_guard"
HOST = "127.0.0.2"  # not the default: proves emulate honours --host
BLOCKS = ("lambda", "ecs", "ec2", "eks_irsa", "eks_pod_identity")


def guarded_env(log: Path, extra: dict[str, str]) -> dict[str, str]:
    """A clean environment (no AWS variables of the test run) with the socket guard on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("MONGODB_URI", None)
    env |= {
        "PYTHONPATH": os.pathsep.join([str(GUARD), str(ROOT)]),
        "LOOPBACK_GUARD_LOG": str(log),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **extra,
    }
    return env


def test_the_guard_refuses_and_records_a_remote_connect(tmp_path: Path) -> None:
    """The guard itself works: a connect to a non-loopback address is refused and logged."""
    log = tmp_path / "guard.log"
    code = "import socket; socket.create_connection(('192.0.2.1', 9), timeout=1)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=guarded_env(log, {}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0 and "loopback guard" in done.stderr
    assert log.read_text().strip() == "connect 192.0.2.1:9"


@pytest.fixture
def emulated(tmp_path: Path) -> Any:
    """``python -m pool emulate --host 127.0.0.2`` under the guard; yields its JSON."""
    out, log = tmp_path / "emulate.json", tmp_path / "emulate-guard.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pool", "emulate", "--host", HOST, "--json", str(out)],
        env=guarded_env(log, {}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield wait_for_file(out, proc)
    finally:
        proc.kill()
        proc.communicate()
        assert not log.exists(), log.read_text()


def guarded_check(
    uri: str, variables: dict[str, str], log: Path
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``check`` under the socket guard; assert no remote connect and "all good"."""
    done = subprocess.run(
        [sys.executable, "-m", "pool", "check", "--uri", uri],
        env=guarded_env(log, variables),
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = done.stdout + done.stderr
    assert not log.exists(), f"{log.name}: {log.read_text()}\n{out}"
    assert done.returncode == 0 and "all good" in done.stdout, f"{log.name}:\n{out}"
    return done, out


def test_check_stays_on_loopback_for_every_emulate_block(emulated: Any, tmp_path: Path) -> None:
    """check on each printed block: all good, each call's host:port named, no remote connect."""
    assert set(emulated["environments"]) == set(BLOCKS)
    for block, variables in emulated["environments"].items():
        assert f"{HOST}:" in variables["AWS_ENDPOINT_URL_STS"], block
        done, out = guarded_check(emulated["mongodb_uri"], variables, tmp_path / f"{block}.log")
        lines = {line.split()[1]: line for line in done.stdout.splitlines() if "  ok  " in line}
        assert f"[called {HOST}:" in lines["identity"], out
        assert f" to {HOST}:" in lines["connect+auth"], out
        fetch = lines["fetch"]
        assert ("no network" in fetch) if block == "lambda" else (f"from {HOST}:" in fetch), out


def test_check_stays_on_loopback_for_every_laptop_profile(emulated: Any, tmp_path: Path) -> None:
    """check on each printed developer-laptop block (SSO, credential_process, keys, chain)."""
    assert set(emulated["laptop"]) == {"sso", "process", "static", "chained"}
    for profile, variables in emulated["laptop"].items():
        log = tmp_path / f"laptop-{profile}.log"
        _, out = guarded_check(emulated["mongodb_uri"], variables, log)
        assert f"[called {HOST}:" in out and f" to {HOST}:" in out, out


def test_emulate_refuses_a_non_loopback_host() -> None:
    """--host must be loopback: 0.0.0.0 and a DNS name are refused with exit status 2."""
    for host in ("0.0.0.0", "example.com"):
        done = subprocess.run(
            [sys.executable, "-m", "pool", "emulate", "--host", host],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2 and "not a loopback address" in done.stderr, host


def test_check_skips_real_sts_for_a_loopback_server(emulated: Any, tmp_path: Path) -> None:
    """Stand-in credentials with no STS override: check does not call AWS (warns instead)."""
    variables = dict(emulated["environments"]["ecs"])
    del variables["AWS_ENDPOINT_URL_STS"]
    log = tmp_path / "no-sts.log"
    done = subprocess.run(
        [sys.executable, "-m", "pool", "check", "--uri", emulated["mongodb_uri"]],
        env=guarded_env(log, variables),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not log.exists(), log.read_text()
    assert "warn  identity       skipped" in done.stdout and "sts.us-east-1" in done.stdout
    assert done.returncode == 0, done.stdout + done.stderr


def test_check_names_why_the_server_is_unreachable() -> None:
    """check against a closed port: the connect step says 'refused' and what to check."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "pool", "check", "--emulated", "--timeout", "2",
         "--uri", f"mongodb://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "FAIL  connect+auth" in done.stdout
    assert "could not be reached (refused)" in done.stdout
