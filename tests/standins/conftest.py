"""Shared fixtures for the stand-in tests (AWS endpoints and the MongoDB server).

Generic on purpose: a fake clock, an authority driven by it, the AWS group
on the test's loop or on a background thread, an environment with no
ambient AWS configuration, and an aiohttp client session.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.threaded import ThreadedStandIns
from tests.fakes import FakeWallClock as FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def authority(clock: FakeClock) -> CredentialAuthority:
    """An authority on the fake clock; STS accepts lifetimes down to 1 s."""
    return CredentialAuthority(clock=clock, min_duration=1.0)


@pytest.fixture
def clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No ambient AWS variables or config files; IMDS only where a test points at it."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
async def aws(authority: CredentialAuthority) -> AsyncIterator[AwsStandIns]:
    """The AWS group served by the test's own event loop (for non-blocking clients)."""
    async with AwsStandIns(authority) as group:
        yield group


@pytest.fixture
def threaded_aws(authority: CredentialAuthority) -> Iterator[AwsStandIns]:
    """The AWS group on a background loop (for blocking clients: boto3, PyMongo's lookup)."""
    with ThreadedStandIns(lambda: AwsStandIns(authority)) as runner:
        yield runner.value


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
