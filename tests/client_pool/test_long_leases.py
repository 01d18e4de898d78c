"""Leases outlive their credentials (issue 10): with 6 s credentials and the default drain,
a slow cursor, a session spread over rotations and a long aggregation all finish on their
own client; a replaced client opens no connection on its own; a lease that needs a new
connection after expiry fails with LeaseExpiredError. On the fake clock, both drivers."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread
import pytest

from pool.cache import CredentialCache
from pool.client_pool import filling
from pool.errors import LeaseExpiredError
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import (
    MintingSource,
    make_pool,
    next_rotation,
    start_session,
    tick_until,
)
from tests.fakes import FakeClock


def _core(driver: str, client: Any) -> Any:
    return client.delegate if driver == "motor" else client


def _generation(cp: Any, number: int) -> Any:
    (gen,) = [g for g in cp.status().generations if g.number == number]
    return gen


async def _empty_pool(driver: str, client: Any) -> None:
    """Drop the client's idle connections (ready, unpaused): the next operation must connect."""
    core = _core(driver, client)
    for server in list(core._topology._servers.values()):
        if driver == "motor":
            await anyio.to_thread.run_sync(server.pool.reset_without_pause)
        else:
            await server.pool.reset_without_pause()


async def _fill_step(driver: str, client: Any) -> None:
    """What PyMongo's periodic executor runs every second: kill cursors, fill to minPoolSize."""
    core = _core(driver, client)
    if driver == "motor":
        await anyio.to_thread.run_sync(core._process_periodic_tasks)
    else:
        await core._process_periodic_tasks()


async def test_slow_cursor_reads_across_rotations_past_expiry(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """A cursor read a batch per rotation over 30 s of 6 s credentials reads every document;
    its client drains past its credentials' expiry and closes when the lease ends."""
    async with make_pool(fake_mongo, fake_cache, driver, clock=clock) as cp:
        await cp.run(lambda c: c.db.items.insert_many([{"_id": i} for i in range(40)]))
        seen: list[int] = []
        start = clock.now
        async with cp.client() as client:
            cursor = client.db.items.find({}, batch_size=5).sort("_id", 1)
            async for doc in cursor:
                seen.append(doc["_id"])
                if len(seen) % 5 == 0 and clock.now - start < 30:
                    await next_rotation(cp, clock, short_source)
            old = _generation(cp, 1)
            assert old.state == "draining" and old.credentials_remaining_s < -20
        assert seen == list(range(40))
        status = cp.status()
        assert status.rotations >= 6 and status.dropped_leases == 0
        assert 1 not in status.draining, "closed when the lease ended"


async def test_session_operations_spread_over_rotations(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """A session on one lease does an insert every rotation for 20 s, then reads them all."""
    async with make_pool(fake_mongo, fake_cache, driver, clock=clock) as cp:
        async with cp.client() as client:
            session = await start_session(client)
            async with session:
                start = clock.now
                for i in range(6):
                    await client.db.s.insert_one({"_id": i}, session=session)
                    await next_rotation(cp, clock, short_source)
                assert clock.now - start >= 20
                docs = await client.db.s.find({}, session=session).to_list(None)
            assert [d["_id"] for d in docs] == list(range(6))
            assert _generation(cp, 1).credentials_remaining_s < 0
        assert cp.status().dropped_leases == 0


async def test_long_aggregation_finishes_after_its_credentials_expired(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An aggregation whose reply comes after three rotations (and its credentials' expiry)
    returns its result, and its cursor's getMores work too."""
    gate, arrived = asyncio.Event(), asyncio.Event()
    real_faults = fake_mongo._apply_faults

    async def slow_aggregate(request: Any, reader: Any) -> Any:
        if "aggregate" in request.body:
            arrived.set()
            await gate.wait()
        return await real_faults(request, reader)

    monkeypatch.setattr(fake_mongo, "_apply_faults", slow_aggregate)
    async with make_pool(fake_mongo, fake_cache, driver, clock=clock) as cp:
        await cp.run(lambda c: c.db.a.insert_many([{"_id": i, "k": i % 3} for i in range(30)]))

        async def aggregate() -> list[Any]:
            async with cp.client() as client:
                pipeline = [{"$match": {"k": {"$gte": 0}}}, {"$sort": {"_id": 1}}]
                cursor = await client.db.a.aggregate(pipeline, batchSize=4)
                return [d["_id"] async for d in cursor]

        if driver == "motor":

            async def aggregate() -> list[Any]:  # Motor's aggregate() is not awaited
                async with cp.client() as client:
                    pipeline = [{"$match": {"k": {"$gte": 0}}}, {"$sort": {"_id": 1}}]
                    cursor = client.db.a.aggregate(pipeline, batchSize=4)
                    return [d["_id"] async for d in cursor]

        task = asyncio.create_task(aggregate())
        async with asyncio.timeout(15):
            await arrived.wait()
        for _ in range(3):
            await next_rotation(cp, clock, short_source)
        assert _generation(cp, 1).credentials_remaining_s < 0
        gate.set()
        async with asyncio.timeout(15):
            assert await task == list(range(30))
        assert cp.status().dropped_leases == 0


async def test_replaced_client_opens_no_connection_on_its_own(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """Once replaced, a client's pools fill to nothing: even emptied, the driver's periodic
    fill step opens no connection (with expired credentials it would clear the pool)."""
    async with make_pool(fake_mongo, fake_cache, driver, warm_connections=3, clock=clock) as cp:
        async with cp.client() as client:
            assert filling.min_pool_size(_core(driver, client)) == 0, "no background filler"
            await next_rotation(cp, clock, short_source)
            await next_rotation(cp, clock, short_source)
            await _empty_pool(driver, client)
            created = _generation(cp, 1).connections.created
            for _ in range(3):
                await _fill_step(driver, client)
            assert _generation(cp, 1).connections.created == created
            assert filling.min_pool_size(_core(driver, client)) == 0


async def test_new_connection_after_expiry_raises_lease_expired(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """A lease whose client must open a connection after its credentials expired fails with
    LeaseExpiredError saying so; a new lease works on the current client."""
    async with make_pool(fake_mongo, fake_cache, driver, clock=clock) as cp:
        with pytest.raises(LeaseExpiredError, match="after its AWS credentials expired") as info:
            async with cp.client() as client:
                await next_rotation(cp, clock, short_source)
                await tick_until(
                    clock, lambda: _generation(cp, 1).credentials_remaining_s < 0, pool=cp
                )
                await _empty_pool(driver, client)
                await client.db.x.find_one({})
        assert info.value.generation == 1
        assert getattr(info.value.__cause__, "code", None) == 18
        assert await cp.run(lambda c: c.db.x.count_documents({})) == 0
