"""CRUD, cursors and catalog commands through a real authenticated AsyncMongoClient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import bson
import pytest
from pymongo import AsyncMongoClient, ReturnDocument, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

from pool.standins.authority import CredentialAuthority
from pool.standins.mongo import MongoStandIn
from pool.standins.mongo.cursors import CursorStore
from pool.standins.mongo.errors import CommandError
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection, async_client


@pytest.fixture
async def client(
    mongo_server: MongoStandIn, mongo_authority: CredentialAuthority
) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    # One pooled connection keeps w=0 writes and later reads in order.
    async with async_client(mongo_server, mongo_authority.mint(), maxPoolSize=1) as c:
        yield c


@pytest.fixture
async def things(client: AsyncMongoClient[dict[str, Any]]) -> AsyncCollection[dict[str, Any]]:
    coll = client.db.things
    await coll.insert_many([{"_id": i, "i": i, "odd": i % 2 == 1} for i in range(250)])
    return coll


async def test_find_reads_every_batch_through_get_more(
    things: AsyncCollection[dict[str, Any]], mongo_server: MongoStandIn
) -> None:
    """batchSize applies to the first batch and to each getMore, like mongod."""
    docs = await things.find({}, batch_size=20).sort("i", 1).to_list()
    assert [d["i"] for d in docs] == list(range(250))
    assert mongo_server.stats.commands["getMore"] == 12  # 230 more docs / 20 per batch
    assert mongo_server.open_cursors == 0


async def test_default_first_batch_is_101(
    things: AsyncCollection[dict[str, Any]], mongo_server: MongoStandIn
) -> None:
    """Without batchSize the first batch holds 101 documents and one getMore fetches the rest."""
    assert len(await things.find().to_list()) == 250
    assert mongo_server.stats.commands["getMore"] == 1


async def test_limit_skip_projection_and_filter(things: AsyncCollection[dict[str, Any]]) -> None:
    """Filter, projection, sort, skip and limit mean what they mean on mongod."""
    cursor = things.find({"odd": True}, {"_id": 0, "i": 1}, batch_size=3)
    docs = await cursor.sort("i", -1).skip(2).limit(5).to_list()
    assert docs == [{"i": 245}, {"i": 243}, {"i": 241}, {"i": 239}, {"i": 237}]


async def test_closing_a_cursor_kills_it_on_the_server(
    things: AsyncCollection[dict[str, Any]], mongo_server: MongoStandIn
) -> None:
    """An abandoned cursor is killed with killCursors and forgotten by the server."""
    cursor = things.find({}, batch_size=10)
    assert (await cursor.next())["i"] == 0
    assert mongo_server.open_cursors == 1
    await cursor.close()
    assert mongo_server.stats.commands["killCursors"] == 1
    assert mongo_server.open_cursors == 0


async def test_get_more_for_an_unknown_cursor_is_cursor_not_found(
    mongo_authority: CredentialAuthority,
) -> None:
    """getMore after the server forgot a cursor fails with 43 (CursorNotFound)."""
    async with MongoStandIn(mongo_authority, require_auth=False) as server:
        async with RawConnection.open(server) as conn:
            reply = await conn.command(
                {"getMore": bson.Int64(12345), "collection": "c", "$db": "db"}
            )
    assert reply["code"] == 43 and reply["codeName"] == "CursorNotFound"


async def test_cursors_belong_to_the_server_not_the_connection(
    mongo_authority: CredentialAuthority,
) -> None:
    """A cursor opened on one connection can be continued on another, as with mongod."""
    async with MongoStandIn(mongo_authority, require_auth=False) as server:
        server.storage.db.c.insert_many([{"n": n} for n in range(5)])
        async with RawConnection.open(server) as a, RawConnection.open(server) as b:
            first = await a.command({"find": "c", "batchSize": 2, "$db": "db"})
            cursor_id = first["cursor"]["id"]
            more = await b.command({"getMore": cursor_id, "collection": "c", "$db": "db"})
    assert [d["n"] for d in more["cursor"]["nextBatch"]] == [2, 3, 4]
    assert more["cursor"]["id"] == 0


async def test_duplicate_id_is_error_11000(things: AsyncCollection[dict[str, Any]]) -> None:
    """A duplicate _id fails with 11000; unordered batches go on past it."""
    with pytest.raises(DuplicateKeyError) as single:
        await things.insert_one({"_id": 3})
    assert single.value.code == 11000
    with pytest.raises(BulkWriteError) as bulk:
        await things.insert_many([{"_id": 1000}, {"_id": 5}, {"_id": 1001}], ordered=False)
    assert bulk.value.details["nInserted"] == 2
    assert [(e["index"], e["code"]) for e in bulk.value.details["writeErrors"]] == [(1, 11000)]


async def test_updates_report_matched_modified_and_upserted(
    things: AsyncCollection[dict[str, Any]],
) -> None:
    """update results carry mongod's n / nModified / upserted."""
    many = await things.update_many({"i": {"$lt": 10}}, {"$set": {"small": True}})
    assert (many.matched_count, many.modified_count) == (10, 10)
    upsert = await things.update_one({"_id": "new"}, {"$set": {"x": 1}}, upsert=True)
    assert (upsert.matched_count, upsert.upserted_id) == (0, "new")
    replaced = await things.replace_one({"_id": 7}, {"replaced": True})
    assert replaced.modified_count == 1
    assert await things.find_one({"_id": 7}) == {"_id": 7, "replaced": True}


async def test_find_and_modify_variants(things: AsyncCollection[dict[str, Any]]) -> None:
    """find_one_and_update/replace/delete honour sort, projection, new and upsert."""
    after = await things.find_one_and_update(
        {"odd": True},
        {"$inc": {"i": 1000}},
        sort=[("i", -1)],
        projection={"_id": 0, "i": 1},
        return_document=ReturnDocument.AFTER,
    )
    assert after == {"i": 1249}
    before = await things.find_one_and_replace({"_id": 0}, {"z": 1})
    assert before == {"_id": 0, "i": 0, "odd": False}
    created = await things.find_one_and_update(
        {"_id": "u"}, {"$set": {"v": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": "u", "v": 1}
    assert await things.find_one_and_delete({"_id": "u"}) == {"_id": "u", "v": 1}
    assert await things.find_one_and_delete({"_id": "u"}) is None


async def test_delete_one_and_many(things: AsyncCollection[dict[str, Any]]) -> None:
    """delete_one removes one match, delete_many all of them."""
    assert (await things.delete_one({"odd": True})).deleted_count == 1
    assert (await things.delete_many({"odd": True})).deleted_count == 124
    assert await things.count_documents({}) == 125


async def test_counts_distinct_and_aggregation(things: AsyncCollection[dict[str, Any]]) -> None:
    """count_documents, estimated_document_count, distinct and aggregate stages work."""
    assert await things.count_documents({"odd": True}) == 125
    assert await things.count_documents({}, skip=240, limit=5) == 5
    assert await things.estimated_document_count() == 250
    assert sorted(await things.distinct("odd")) == [False, True]
    pipeline: list[dict[str, Any]] = [
        {"$match": {"i": {"$lt": 10}}},
        {"$group": {"_id": "$odd", "total": {"$sum": "$i"}}},
        {"$sort": {"total": -1}},
        {"$limit": 1},
    ]
    assert await (await things.aggregate(pipeline)).to_list() == [{"_id": True, "total": 25}]
    counted = await (
        await things.aggregate([{"$match": {"odd": False}}, {"$count": "n"}])
    ).to_list()
    assert counted == [{"n": 125}]


async def test_catalog_and_unique_indexes(client: AsyncMongoClient[dict[str, Any]]) -> None:
    """Collections and unique indexes behave as on mongod, index violations included."""
    db = client.catalog
    await db.create_collection("a")
    with pytest.raises(OperationFailure) as exists:
        await db.command("create", "a")  # create_collection() would check client-side
    assert exists.value.code == 48
    assert await db.a.create_index("email", unique=True) == "email_1"
    await db.a.insert_one({"email": "x@example.com"})
    with pytest.raises(DuplicateKeyError):
        await db.a.insert_one({"email": "x@example.com"})
    assert set(await db.a.index_information()) == {"_id_", "email_1"}
    assert await db.list_collection_names() == ["a"]
    assert "catalog" in await client.list_database_names()
    await db.drop_collection("a")
    assert await db.list_collection_names() == []


async def test_sessions_work_and_transactions_are_refused(
    client: AsyncMongoClient[dict[str, Any]], mongo_server: MongoStandIn
) -> None:
    """lsid is accepted; a transaction fails with 20 as on a standalone mongod."""
    async with client.start_session() as session:
        await client.db.s.insert_one({"a": 1}, session=session)
        with pytest.raises(OperationFailure) as info:
            async with await session.start_transaction():
                await client.db.s.insert_one({"a": 2}, session=session)
    assert info.value.code == 20
    assert await client.db.s.count_documents({}) == 1


async def test_unacknowledged_writes_are_applied(
    client: AsyncMongoClient[dict[str, Any]],
) -> None:
    """w=0 writes (OP_MSG moreToCome) are executed although nothing is answered."""
    coll = client.db.get_collection("w0", write_concern=WriteConcern(w=0))
    await coll.insert_one({"fire": "forget"})
    assert await client.db.w0.find_one({}, {"_id": 0}) == {"fire": "forget"}


def test_cursor_store_refuses_other_users_and_expires_idle_cursors() -> None:
    """A cursor is only continued by its owner and is forgotten after the idle timeout."""
    now = [0.0]
    store = CursorStore(idle_timeout=60, clock=lambda: now[0])
    reply = store.open(
        "d.c", [{"n": n} for n in range(5)], batch_size=1, single_batch=False, user="a"
    )
    cid = reply["cursor"]["id"]
    with pytest.raises(CommandError) as other:
        store.get_more(cid, "d.c", batch_size=1, user="b")
    assert other.value.code == 13
    with pytest.raises(CommandError) as wrong_ns:
        store.get_more(cid, "d.other", batch_size=1, user="a")
    assert wrong_ns.value.code == 13
    now[0] = 61.0
    with pytest.raises(CommandError) as gone:
        store.get_more(cid, "d.c", batch_size=1, user="a")
    assert gone.value.code == 43


def test_cursor_batches_stop_near_16_mib() -> None:
    """A batch never grows much past 16 MiB, so every reply fits in a 48 MB message."""
    big = {"blob": b"x" * (5 * 1024 * 1024)}
    store = CursorStore()
    reply = store.open("d.c", [big] * 5, batch_size=None, single_batch=False, user=None)
    assert len(reply["cursor"]["firstBatch"]) == 3
    more = store.get_more(reply["cursor"]["id"], "d.c", batch_size=None, user=None)
    assert len(more["cursor"]["nextBatch"]) == 2 and more["cursor"]["id"] == 0


async def test_id_lookups_keep_mongodb_semantics(client: AsyncMongoClient[dict[str, Any]]) -> None:
    """Finds, updates and deletes by _id (the indexed fast path) match what a scan would."""
    coll = client.db.by_id
    oid = bson.ObjectId()
    await coll.insert_many([{"_id": 1, "v": "int"}, {"_id": "1", "v": "str"}, {"_id": oid}])
    assert (await coll.find_one({"_id": 1}))["v"] == "int"
    assert (await coll.find_one({"_id": 1.0}))["v"] == "int"  # numbers compare by value
    assert (await coll.find_one({"_id": "1"}))["v"] == "str"
    assert await coll.find_one({"_id": oid}) == {"_id": oid}
    assert await coll.find_one({"_id": 2}) is None
    assert await coll.find_one({"_id": 1}, {"_id": 0}) == {"v": "int"}
    assert (await coll.update_one({"_id": "1"}, {"$set": {"w": 1}})).modified_count == 1
    assert (await coll.delete_one({"_id": 1})).deleted_count == 1
    assert sorted(map(str, await coll.distinct("_id"))) == sorted(["1", str(oid)])
