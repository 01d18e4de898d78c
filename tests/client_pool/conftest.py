"""Fixtures for the client pool tests: the MongoDB stand-in, a minting source, both drivers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest

from pool.cache import CredentialCache
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.server import MongoStandIn
from pool.standins.threaded import ThreadedStandIns
from tests.client_pool.pool_helpers import MintingSource, on_fake_clock
from tests.fakes import FakeClock


@pytest.fixture(params=["pymongo", "motor"])
def driver(request: pytest.FixtureRequest) -> str:
    """Every pool test runs on PyMongo's async client and on Motor."""
    return str(request.param)


@pytest.fixture
def authority() -> CredentialAuthority:
    return CredentialAuthority(default_lifetime=30.0)


@pytest.fixture
async def mongo(authority: CredentialAuthority) -> AsyncIterator[MongoStandIn]:
    async with MongoStandIn(authority) as server:
        yield server


@pytest.fixture
async def rs(authority: CredentialAuthority) -> AsyncIterator[MongoCluster]:
    """A 3-member replica set stand-in (Atlas's smallest shape), plaintext."""
    async with MongoCluster(authority, members=3) as cluster:
        yield cluster


@pytest.fixture
async def threaded_mongo(authority: CredentialAuthority) -> AsyncIterator[MongoStandIn]:
    """The stand-in on its own thread and loop, as a real server would be: load tests
    then measure the client's loop, not the server's work queued on it."""
    async with ThreadedStandIns(lambda: MongoStandIn(authority), name="mongo") as group:
        yield group.value


@pytest.fixture
def source(authority: CredentialAuthority) -> MintingSource:
    return MintingSource(authority)


@pytest.fixture
async def cache(source: MintingSource) -> AsyncIterator[CredentialCache]:
    async with CredentialCache(source) as c:
        yield c


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock that the credentials, the stand-ins, the cache and the pool all read."""
    fake = FakeClock()
    on_fake_clock(monkeypatch, fake)
    return fake


@pytest.fixture
def fake_authority(clock: FakeClock) -> CredentialAuthority:
    """The authority minting and checking expiry on the fake clock's wall time."""
    return CredentialAuthority(default_lifetime=6.0, clock=clock.time)


@pytest.fixture
async def fake_mongo(fake_authority: CredentialAuthority) -> AsyncIterator[MongoStandIn]:
    async with MongoStandIn(fake_authority) as server:
        yield server


@pytest.fixture
def short_source(fake_authority: CredentialAuthority) -> MintingSource:
    """A source minting 6 s credentials (on the fake clock)."""
    return MintingSource(fake_authority, lifetime=6.0)


@pytest.fixture
async def fake_cache(
    short_source: MintingSource, clock: FakeClock
) -> AsyncIterator[CredentialCache]:
    async with CredentialCache(short_source, clock=clock, rng=random.Random(8)) as c:
        yield c
