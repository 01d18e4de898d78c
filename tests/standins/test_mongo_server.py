"""MongoStandIn's lifecycle, fault injection and command delay, seen by a real client."""

from __future__ import annotations

import asyncio
import time
import warnings

import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure

from pool.errors import ConfigurationError, PoolClosedError
from pool.standins.authority import CredentialAuthority
from pool.standins.faults import FaultInjector
from pool.standins.mongo import MongoStandIn
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection, async_client


async def test_aclose_closes_open_connections_and_is_idempotent(
    mongo_authority: CredentialAuthority,
) -> None:
    """aclose() stops listening and drops live connections too, and may be called twice."""
    # Raw sockets, not PyMongo: closing a PyMongo client while its monitor is
    # reconnecting to a dead server leaks that socket (PyMongo 4.20, a
    # ResourceWarning that would make this test flaky).
    server = MongoStandIn(mongo_authority)
    uri = await server.start()
    assert uri == f"mongodb://127.0.0.1:{server.address[1]}/"
    async with RawConnection.open(server) as conn:
        assert (await conn.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0
        assert server.stats.connections_open == 1
        await server.aclose()
        await server.aclose()
        assert await conn.closed_by_server()
    assert server.stats.connections_open == 0
    with pytest.raises(OSError):
        await asyncio.open_connection(*server.address)
    with pytest.raises(PoolClosedError):
        await server.start()


async def test_misuse_is_reported(mongo_authority: CredentialAuthority) -> None:
    """No address before start(); a second start() or a bad sts_host are refused."""
    server = MongoStandIn(mongo_authority)
    with pytest.raises(ConfigurationError):
        server.uri  # noqa: B018
    async with server:
        with pytest.raises(ConfigurationError):
            await server.start()
    for host in ("", "sts..amazonaws.com", ".sts.amazonaws.com", "x" * 256):
        with pytest.raises(ConfigurationError):
            MongoStandIn(mongo_authority, sts_host=host)


async def test_unclosed_server_warns(mongo_authority: CredentialAuthority) -> None:
    """A started server dropped without aclose() raises a ResourceWarning."""
    server = MongoStandIn(mongo_authority)
    await server.start()
    with pytest.warns(ResourceWarning, match="unclosed"):
        server.__del__()
    await server.aclose()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        server.__del__()  # closed: silent


async def test_error_fault_answers_with_the_code(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """mongo:find:error=CODE answers find with that code; other commands are untouched."""
    mongo_server.faults.add("mongo:find:error=2x1")
    async with async_client(mongo_server, mongo_authority.mint()) as client:
        await client.db.t.insert_one({"a": 1})
        with pytest.raises(OperationFailure) as info:
            await client.db.t.find_one()
        assert info.value.code == 2
        assert await client.db.t.find_one({}, {"_id": 0}) == {"a": 1}
    assert mongo_server.stats.faults_fired == {"find:error": 1}


async def test_drop_fault_is_survived_by_a_retryable_read(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """A dropped connection on one find is retried by the driver on a new connection."""
    async with async_client(mongo_server, mongo_authority.mint()) as client:
        await client.db.t.insert_one({"a": 1})
        opened = mongo_server.stats.connections_opened
        mongo_server.faults.add("mongo:find:dropx1")
        assert await client.db.t.find_one({}, {"_id": 0}) == {"a": 1}
    assert mongo_server.stats.faults_fired == {"find:drop": 1}
    assert mongo_server.stats.connections_opened > opened


async def test_persistent_drop_fails_the_write(mongo_authority: CredentialAuthority) -> None:
    """Faults passed at construction apply; a write whose connection drops fails."""
    faults = FaultInjector()
    faults.add("mongo:insert:drop")
    async with (
        MongoStandIn(mongo_authority, faults=faults) as server,
        async_client(server, mongo_authority.mint()) as client,
    ):
        with pytest.raises(AutoReconnect):
            await client.db.t.insert_one({"a": 1})
    assert server.stats.faults_fired["insert:drop"] >= 1


async def test_hang_fault_times_the_client_out(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """A hung command never answers; the client's socket timeout fires."""
    async with async_client(mongo_server, mongo_authority.mint(), socketTimeoutMS=200) as client:
        await client.admin.command("ping")
        mongo_server.faults.add("mongo:find:hangx2")  # the first try and the retry
        with pytest.raises(NetworkTimeout):
            await client.db.t.find_one()
    # >= 1: on a loaded machine the retry may time out while it reconnects.
    assert mongo_server.stats.faults_fired["find:hang"] >= 1


async def test_auth_fault_fails_connection_setup(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """An error injected on saslContinue surfaces as an authentication failure."""
    mongo_server.faults.add("mongo:saslContinue:error=18x1")
    async with async_client(mongo_server, mongo_authority.mint()) as client:
        with pytest.raises(OperationFailure) as info:
            await client.db.t.insert_one({"a": 1})
        assert info.value.code == 18
        await client.db.t.insert_one({"a": 1})
    assert mongo_server.stats.auth_successes == 1


async def test_latency_and_command_delay_postpone_answers(
    mongo_authority: CredentialAuthority,
) -> None:
    """command_delay and latency faults delay replies by at least their duration."""
    async with MongoStandIn(mongo_authority, require_auth=False, command_delay=0.05) as server:
        server.faults.add("mongo:ping:latency=0.1x1")
        async with RawConnection.open(server) as conn:
            start = time.monotonic()
            await conn.command({"ping": 1, "$db": "admin"})
            assert time.monotonic() - start >= 0.14
            start = time.monotonic()
            await conn.command({"ping": 1, "$db": "admin"})
            assert time.monotonic() - start >= 0.045
    assert server.stats.faults_fired == {"ping:latency": 1}


async def test_drop_connections_forces_reconnects(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> None:
    """drop_connections() cuts every client connection; drivers reconnect and re-authenticate."""
    async with async_client(mongo_server, mongo_authority.mint()) as client:
        await client.db.t.insert_one({"a": 1})
        assert mongo_server.drop_connections() >= 1
        assert await client.db.t.find_one({}, {"_id": 0}) == {"a": 1}
    assert mongo_server.stats.auth_successes == 2
