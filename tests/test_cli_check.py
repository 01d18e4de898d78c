"""``python -m pool check --emulated``: the whole path, and failures explained with a fix."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", "check", "--emulated", "--timeout", "5", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("source", "driver"),
    [("auto", "pymongo"), ("web-identity", "motor"), ("pod-identity", "pymongo")],
)
def test_check_passes_end_to_end(source: str, driver: str) -> None:
    """Detect, fetch, identity, connect+auth and ping all pass; exit status 0."""
    done = check("--source", source, "--driver", driver)
    assert done.returncode == 0, done.stdout + done.stderr
    for step in ("source", "fetch", "identity", "connect+auth", "ping"):
        assert f"ok    {step}" in done.stdout
    assert "arn:aws:iam::123456789012:role/standin-app" in done.stdout
    assert "all good" in done.stdout


def test_check_explains_a_refused_fetch() -> None:
    """A credential endpoint that refuses: exit 1, the endpoint named, the fix given."""
    done = check("--source", "ecs", "--fault", "ecs:error=403")
    assert done.returncode == 1
    assert "FAIL  fetch" in done.stdout and "AWS_CONTAINER_AUTHORIZATION_TOKEN" in done.stdout
    assert "connect+auth" not in done.stdout


def test_check_explains_an_authentication_failure() -> None:
    """The server refusing the credentials: exit 1 and the Atlas role mapping named first."""
    done = check("--source", "ec2", "--fault", "mongo:saslContinue:error=18")
    assert done.returncode == 1
    assert "FAIL  connect+auth" in done.stdout
    assert "is not a database user" in done.stdout and "NTP" in done.stdout


def test_check_never_prints_secrets() -> None:
    """No secret key or session token in check's output, even with -vv."""
    done = subprocess.run(
        [sys.executable, "-m", "pool", "-vv", "check", "--emulated", "--source", "env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout + done.stderr
    # The stand-in's Lambda credentials have a 40-char secret and an IQoJ… token.
    assert "IQoJb3JpZ2lu" not in text
    # A secret access key is 40 chars of base64 alphabet; nothing like it may appear.
    assert not re.search(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", text)


def test_check_refuses_a_uri_with_credentials_without_echoing_them() -> None:
    """A URI with a password is refused with the fix named, and the password is never printed."""
    done = check("--source", "ecs", "--uri", "mongodb://AKIAEXAMPLE:s3cr3tPassw0rd@127.0.0.1:1/")
    assert done.returncode == 1
    assert "FAIL  connect" in done.stdout and "keyword options" in done.stdout
    assert "s3cr3tPassw0rd" not in done.stdout + done.stderr


@pytest.mark.parametrize("profile", ["sso", "process", "chained-twice"])
def test_check_profile_names_identity_file_and_endpoint(profile: str) -> None:
    """--profile: passes end to end and says which profile, which file and which STS endpoint."""
    done = check("--profile", profile)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"profile {profile!r}" in done.stdout and ".aws/config" in done.stdout
    assert "STS endpoint: 127.0.0.1:" in done.stdout
    if profile == "chained-twice":  # two roles deep: the last one is the database user
        assert "Atlas database user to map: arn:aws:iam::123456789012:role/chained-2" in (
            done.stdout
        )


def test_check_role_arn_chains_onto_the_profile() -> None:
    """--role-arn assumes the role with the profile's credentials and reports the STS endpoint."""
    role = "arn:aws:iam::123456789012:role/standin-app"
    done = check("--profile", "static", "--role-arn", role)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    sts" in done.stdout and f"role {role} assumed with profile:static" in done.stdout


def test_check_unknown_profile_fails_without_falling_back() -> None:
    """--profile naming no profile: the fetch fails naming the files, nothing else is tried."""
    done = check("--profile", "nope")
    assert done.returncode == 1
    assert "FAIL  fetch" in done.stdout and "'nope' is not in" in done.stdout
