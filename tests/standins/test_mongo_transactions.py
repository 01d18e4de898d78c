"""Transactions on the replica-set and sharded stand-ins, through the real drivers.

Writes are applied at commit and discarded on abort; a transaction reads its
own writes; what mongod labels TransientTransactionError is labelled so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import bson
import pytest
from pymongo.errors import OperationFailure

from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.cluster import MongoCluster
from tests.standins.cluster_fixtures import DRIVERS, cluster_client
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection


@pytest.fixture(params=["replica-set", "sharded"])
async def cluster(
    request: pytest.FixtureRequest, mongo_authority: CredentialAuthority
) -> AsyncIterator[MongoCluster]:
    sharded = 2 if request.param == "sharded" else 0
    async with MongoCluster(mongo_authority, sharded=sharded) as c:
        yield c


async def _maybe(value: Any) -> Any:
    """PyMongo's async API returns coroutines where Motor's returns values."""
    return await value if hasattr(value, "__await__") else value


async def _session(client: Any) -> Any:
    return await _maybe(client.start_session())


@pytest.mark.parametrize("driver", DRIVERS)
async def test_with_transaction_commits_all_writes_at_once(
    driver: str, cluster: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """Inside the callback the writes are visible to the session only; after it, to everyone."""
    async with cluster_client(driver, cluster, mongo_authority.mint()) as client:
        coll = client.db.accounts
        await coll.insert_many([{"_id": "a", "n": 10}, {"_id": "b", "n": 0}])
        seen: dict[str, Any] = {}

        async def transfer(session: Any) -> None:
            await coll.update_one({"_id": "a"}, {"$inc": {"n": -5}}, session=session)
            await coll.update_one({"_id": "b"}, {"$inc": {"n": 5}}, session=session)
            seen["inside"] = await coll.find_one({"_id": "b"}, session=session)
            seen["outside"] = await coll.find_one({"_id": "b"})

        session = await _session(client)
        try:
            await session.with_transaction(transfer)
        finally:
            await session.end_session()
        assert seen == {"inside": {"_id": "b", "n": 5}, "outside": {"_id": "b", "n": 0}}
        assert [d["n"] async for d in coll.find().sort("_id")] == [5, 5]
    assert cluster.sessions.commits == 1 and cluster.sessions.open_transactions == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_abort_discards_the_writes(
    driver: str, cluster: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """abort_transaction() (and an exception in with_transaction) leaves the data untouched."""
    async with cluster_client(driver, cluster, mongo_authority.mint()) as client:
        coll = client.db.t
        session = await _session(client)
        try:
            await _maybe(session.start_transaction())
            await coll.insert_one({"_id": 1}, session=session)
            await session.abort_transaction()

            async def fail(s: Any) -> None:
                await coll.insert_one({"_id": 2}, session=s)
                raise RuntimeError("the callback gives up")

            with pytest.raises(RuntimeError):
                await session.with_transaction(fail)
        finally:
            await session.end_session()
        assert await coll.count_documents({}) == 0
    assert cluster.sessions.aborts == 2 and cluster.sessions.commits == 0


async def test_transaction_survives_a_stepdown_before_commit(
    mongo_authority: CredentialAuthority,
) -> None:
    """A stepdown before the commit aborts the transaction; with_transaction runs it again."""
    runs = 0
    async with MongoCluster(mongo_authority) as rs:
        async with cluster_client("pymongo", rs, mongo_authority.mint()) as client:
            coll = client.db.t
            async with client.start_session() as session:

                async def work(s: Any) -> None:
                    nonlocal runs
                    runs += 1
                    await coll.insert_one({"_id": 1}, session=s)
                    if rs.state.term == 1:
                        rs.step_down()

                await session.with_transaction(work)
            assert [d async for d in coll.find()] == [{"_id": 1}]
    assert runs == 2 and rs.sessions.aborts == 1 and rs.sessions.commits == 1


async def test_transaction_errors_carry_mongod_labels(mongo_authority: CredentialAuthority) -> None:
    """Unknown txnNumber: 251 with TransientTransactionError; a retried commit is ok."""
    cluster = MongoCluster(mongo_authority, require_auth=False)
    lsid = {"id": bson.Binary(b"\x03" * 16, 4)}
    txn = {"lsid": lsid, "txnNumber": 1, "autocommit": False}
    async with cluster, RawConnection.open(cluster.servers[0]) as conn:
        missing = await conn.command({"find": "t", "$db": "db", **txn})
        assert missing["code"] == 251 and missing["errorLabels"] == ["TransientTransactionError"]
        first = {"insert": "t", "documents": [{"_id": 1}], "$db": "db", "startTransaction": True}
        assert (await conn.command(first | txn))["n"] == 1
        commit = {"commitTransaction": 1, "$db": "admin", **txn}
        assert (await conn.command(commit))["ok"] == 1.0
        assert (await conn.command(commit))["ok"] == 1.0, "a retried commit is acknowledged"
        old = await conn.command(first | txn)
        assert (old["code"], old["codeName"]) == (256, "TransactionCommitted")
    assert cluster.storage_client.db.t.count_documents({}) == 1


async def test_standalone_still_refuses_transactions(
    mongo_server: Any, mongo_authority: CredentialAuthority
) -> None:
    """A standalone answers txnNumber with code 20, as mongod does (the default is unchanged)."""
    from tests.standins.mongo_fixtures import async_client

    async with async_client(mongo_server, mongo_authority.mint()) as client:
        async with client.start_session() as session:
            await session.start_transaction()
            with pytest.raises(OperationFailure) as info:
                await client.db.t.insert_one({"a": 1}, session=session)
            assert info.value.code == 20
            await session.abort_transaction()
