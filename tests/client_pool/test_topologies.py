"""The pool on Atlas's topologies: a replica set (TLS, mongodb+srv), elections, transactions.

Counts come from the server side, per member: ``saslStart`` is one
authentication, so "no authentication on the request path" means no
``saslStart`` at any member while the workload runs after a swap.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import ReadPreference
from pymongo.server_type import SERVER_TYPE

from pool import ClientPool
from pool.cache import CredentialCache
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.srv import DnsStandIn, loopback_resolution, member_names, publish
from tests.client_pool.pool_helpers import FAST, Writers, rotate, start_session, until
from tests.standins.net_guard import *  # noqa: F403

WARM = 4
CONCURRENCY = 3  # below WARM: a warm client never needs a new connection


def rs_pool(cluster: MongoCluster, cache: CredentialCache, driver: str, **kwargs: Any) -> Any:
    opts: dict[str, Any] = {**FAST, "heartbeatFrequencyMS": 500}
    if cluster.tls_ca_file:
        opts["tlsCAFile"] = cluster.tls_ca_file
    return ClientPool(cluster.uri, credentials=cache, driver=driver, **{**opts, **kwargs})  # type: ignore[call-overload]


def sasl_starts(cluster: MongoCluster) -> list[int]:
    return [s.commands["saslStart"] for s in cluster.stats_by_member]


async def _burst(cp: Any, rounds: int) -> None:
    """CONCURRENCY workers: a primary write and a secondaryPreferred read each round."""

    async def worker(w: int) -> None:
        for _ in range(rounds):
            await cp.run(lambda c: c.db.t.insert_one({"w": w}))
            await cp.run(
                lambda c: c.db.get_collection(
                    "t", read_preference=ReadPreference.SECONDARY_PREFERRED
                ).find_one({})
            )

    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))


async def test_warm_means_warm_on_every_member(
    driver: str, rs: MongoCluster, cache: CredentialCache
) -> None:
    """After a swap, no member authenticates again: each got warm_connections before the swap.

    Member 2 answers 50 ms later than the others, as a member in another
    zone would: its monitor's first check ends after the warm-up ping, so a
    warm-up that counted the client as a whole swapped with none there.
    """
    rs.servers[2].command_delay = 0.05
    async with rs_pool(rs, cache, driver, warm_connections=WARM) as cp:
        await _burst(cp, 2)
        start = sasl_starts(rs)
        await rotate(cp, cache)
        before = sasl_starts(rs)
        await _burst(cp, 10)
        after = sasl_starts(rs)
    at_swap = [b - a for a, b in zip(start, before, strict=True)]
    assert all(n >= WARM for n in at_swap), f"new client's connections per member: {at_swap}"
    assert [a - b for a, b in zip(after, before, strict=True)] == [0, 0, 0], (before, after)


def _primary_of(client: Any) -> str | None:
    for (host, port), sd in client.topology_description.server_descriptions().items():
        if sd.server_type == SERVER_TYPE.RSPrimary:
            return f"{host}:{port}"
    return None


@pytest.mark.parametrize("phase", ["steady", "warm-up", "drain"])
async def test_failover_loses_no_operation(
    driver: str, phase: str, rs: MongoCluster, cache: CredentialCache
) -> None:
    """A stepdown with no rotation, during a warm-up, during a drain: 0 failed, 0 missing."""
    async with rs_pool(rs, cache, driver, warm_connections=2) as cp:
        load = Writers(cp)
        await load.wait_progress(20)
        if phase == "steady":
            rs.step_down()
        elif phase == "warm-up":
            rs.faults.add("mongo:saslContinue:stepdownx1")  # the new client's handshake
            await rotate(cp, cache)
        else:
            async with cp.client() as old:
                await rotate(cp, cache)
                assert cp.status().draining, "the old client drains while we hold it"
                rs.step_down()
                # Outside run(), a write racing the election can fail (retry.py says
                # why); once the old client has heard of it, its writes go on.
                await until(lambda: _primary_of(old) == rs.hosts[rs.primary or 0])
                await old.db.acked.insert_one({"_id": "old-client-after-stepdown"})
                load.acked.append("old-client-after-stepdown")
        await load.wait_progress(20)
        await load.stop()
    stored = {d["_id"] for d in rs.storage_client.db.acked.find({}, {"_id": 1})}
    assert load.failures == []
    assert set(load.acked) <= stored and len(load.acked) == len(set(load.acked))
    assert rs.state.term == 2


async def test_transaction_begun_before_a_swap_commits_after_it(
    driver: str, rs: MongoCluster, cache: CredentialCache
) -> None:
    """A transaction inside one lease spans a rotation and commits on its own client."""
    async with rs_pool(rs, cache, driver) as cp, cp.client() as client:
        session = await start_session(client)
        try:
            start = session.start_transaction()
            if hasattr(start, "__await__"):
                await start
            await client.db.tx.insert_one({"_id": "before"}, session=session)
            await rotate(cp, cache)
            await client.db.tx.insert_one({"_id": "after"}, session=session)
            assert rs.storage_client.db.tx.count_documents({}) == 0, "nothing visible yet"
            await session.commit_transaction()
        finally:
            await session.end_session()
        assert (cp.status().generation or 0) > 1
    assert sorted(d["_id"] for d in rs.storage_client.db.tx.find()) == ["after", "before"]


async def test_with_transaction_workers_through_rotations_lose_nothing(
    driver: str, rs: MongoCluster, cache: CredentialCache
) -> None:
    """Concurrent with_transaction loops (two writes each) through 3 rotations: all or nothing."""
    workers, rotations = 20, 3
    done: list[int] = []

    async def worker(w: int) -> None:
        for n in range(rotations * 3):
            key = w * 1000 + n
            async with cp.client() as client:
                session = await start_session(client)
                try:

                    async def txn(s: Any, key: int = key, client: Any = client) -> None:
                        await client.db.a.insert_one({"_id": key}, session=s)
                        await client.db.b.insert_one({"_id": key}, session=s)

                    await session.with_transaction(txn)
                finally:
                    await session.end_session()
            done.append(key)
            await asyncio.sleep(0.01)

    async with rs_pool(rs, cache, driver) as cp:
        tasks = [asyncio.create_task(worker(w)) for w in range(workers)]
        for _ in range(rotations):
            await rotate(cp, cache)
        await asyncio.gather(*tasks)
    a = {d["_id"] for d in rs.storage_client.db.a.find()}
    b = {d["_id"] for d in rs.storage_client.db.b.find()}
    assert a == b == set(done) and len(done) == workers * rotations * 3
    assert rs.sessions.open_transactions == 0


async def test_pool_through_mongodb_srv_as_users_write_it(
    driver: str, authority: CredentialAuthority, cache: CredentialCache, loopback_only: list[str]
) -> None:
    """mongodb+srv://<name>/ and tlsCAFile only: Atlas's TXT authSource=admin does not trip it."""
    zone = "cluster0.pool.test"
    async with (
        DnsStandIn(zone) as dns_server,
        MongoCluster(authority, tls=True, hostnames=member_names(zone, 3)) as cluster,
    ):
        publish(dns_server, cluster)
        with loopback_resolution(dns_server.address, zone):
            uri = f"mongodb+srv://{zone}/"
            async with ClientPool(
                uri, credentials=cache, driver=driver, tlsCAFile=cluster.tls_ca_file, **FAST
            ) as cp:  # type: ignore[call-overload]
                await cp.run(lambda c: c.db.t.insert_one({"_id": 1}))
                await rotate(cp, cache)
                assert await cp.run(lambda c: c.db.t.find_one()) == {"_id": 1}
    assert cluster.stats.auth_successes >= 2 and not cluster.stats.auth_failures
