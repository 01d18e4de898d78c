"""The replica-set stand-in: hello as mongod answers it, elections, refusals, real drivers.

Raw-socket tests pin the wire details (fields, codes, the awaitable hello
stream); driver tests prove that PyMongo's and Motor's SDAM discover the
set, follow an election and retry writes across it, as against Atlas.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import bson
import pytest
from pymongo import MongoClient, ReadPreference
from pymongo.server_type import SERVER_TYPE
from pymongo_auth_aws.auth import set_cached_credentials

from pool.errors import ConfigurationError
from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.faults import FaultInjector
from pool.standins.mongo.cluster import MongoCluster
from tests.standins.cluster_fixtures import DRIVERS, cluster_client, eventually
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection, op_msg

EXHAUST_ALLOWED = 1 << 16


@pytest.fixture
async def rs(mongo_authority: CredentialAuthority) -> AsyncIterator[MongoCluster]:
    async with MongoCluster(mongo_authority, members=3) as cluster:
        yield cluster


@pytest.fixture
async def open_rs(mongo_authority: CredentialAuthority) -> AsyncIterator[MongoCluster]:
    """A set with authentication off, for raw-socket tests."""
    cluster = MongoCluster(mongo_authority, members=3, require_auth=False)
    async with cluster:
        yield cluster


async def test_hello_describes_the_set_as_mongod_does(open_rs: MongoCluster) -> None:
    """Each member's hello names the set, every host, itself, the primary and its state."""
    replies = []
    for server in open_rs.servers:
        async with RawConnection.open(server) as conn:
            replies.append(await conn.command({"hello": 1, "$db": "admin"}))
    primary, *secondaries = replies
    for i, reply in enumerate(replies):
        assert reply["setName"] == "rs0" and reply["hosts"] == open_rs.hosts
        assert reply["me"] == open_rs.hosts[i] and reply["primary"] == open_rs.hosts[0]
        assert reply["setVersion"] == 1
        assert set(reply["topologyVersion"]) == {"processId", "counter"}
    assert primary["isWritablePrimary"] is True and primary["secondary"] is False
    assert primary["electionId"] == bson.ObjectId("7fffffff0000000000000001")
    for reply in secondaries:
        assert reply["isWritablePrimary"] is False and reply["secondary"] is True
        assert "electionId" not in reply


async def test_awaitable_hello_streams_an_election_at_once(open_rs: MongoCluster) -> None:
    """An exhaust hello waits; a stepdown gets an answer at once, moreToCome and a new counter."""
    async with RawConnection.open(open_rs.servers[1]) as conn:
        first = await conn.command({"hello": 1, "$db": "admin"})
        tv = first["topologyVersion"]
        await conn.send(
            op_msg(
                {"hello": 1, "$db": "admin", "topologyVersion": tv, "maxAwaitTimeMS": 30_000},
                flags=EXHAUST_ALLOWED,
            )
        )
        open_rs.step_down(1)
        _, _, payload = await conn.reply()
        (flags,) = struct.unpack_from("<I", payload)
        streamed = bson.decode(payload[5:])
        assert flags & 2, "moreToCome set: more replies follow without a request"
        assert streamed["isWritablePrimary"] is True
        assert streamed["topologyVersion"]["counter"] > tv["counter"]
        open_rs.step_down(2)
        _, _, payload = await conn.reply()
        assert bson.decode(payload[5:])["primary"] == open_rs.hosts[2]


async def test_awaitable_hello_answers_when_the_wait_ends(open_rs: MongoCluster) -> None:
    """With no change, the awaitable hello answers after maxAwaitTimeMS with the same version."""
    async with RawConnection.open(open_rs.servers[0]) as conn:
        tv = (await conn.command({"hello": 1, "$db": "admin"}))["topologyVersion"]
        reply = await conn.command(
            {"hello": 1, "$db": "admin", "topologyVersion": tv, "maxAwaitTimeMS": 10}
        )
        assert reply["topologyVersion"] == tv
        assert (await conn.command({"ping": 1, "$db": "admin"}))["ok"] == 1.0


async def test_secondary_refuses_writes_and_unflagged_reads(open_rs: MongoCluster) -> None:
    """A secondary answers writes with 10107 and primary-only reads with 13435, as mongod."""
    async with RawConnection.open(open_rs.servers[1]) as conn:
        write = await conn.command({"insert": "t", "documents": [{"a": 1}], "$db": "db"})
        assert (write["code"], write["codeName"], write["errmsg"]) == (
            10107,
            "NotWritablePrimary",
            "not primary",
        )
        assert "topologyVersion" in write and "errorLabels" not in write
        read = await conn.command({"find": "t", "$db": "db"})
        assert (read["code"], read["codeName"]) == (13435, "NotPrimaryNoSecondaryOk")
        ok = await conn.command(
            {"find": "t", "$db": "db", "$readPreference": {"mode": "secondaryPreferred"}}
        )
        assert ok["ok"] == 1.0


async def test_retryable_write_refused_on_a_secondary_is_labelled(open_rs: MongoCluster) -> None:
    """A write with txnNumber refused by a secondary carries RetryableWriteError (4.4+ servers)."""
    lsid = {"id": bson.Binary(b"\x01" * 16, 4)}
    async with RawConnection.open(open_rs.servers[2]) as conn:
        reply = await conn.command(
            {"insert": "t", "documents": [{"a": 1}], "$db": "db", "lsid": lsid, "txnNumber": 1}
        )
    assert reply["code"] == 10107 and reply["errorLabels"] == ["RetryableWriteError"]


async def test_a_retried_write_is_applied_once(open_rs: MongoCluster) -> None:
    """The same (lsid, txnNumber) sent twice, to two members in turn, inserts one document."""
    lsid = {"id": bson.Binary(b"\x02" * 16, 4)}
    cmd = {"insert": "t", "documents": [{"_id": 7}], "$db": "db", "lsid": lsid, "txnNumber": 5}
    async with RawConnection.open(open_rs.servers[0]) as conn:
        assert (await conn.command(cmd))["n"] == 1
    open_rs.step_down(1)
    async with RawConnection.open(open_rs.servers[1]) as conn:
        again = await conn.command(cmd)
    assert again["n"] == 1 and "writeErrors" not in again
    assert open_rs.storage_client.db.t.count_documents({}) == 1
    assert open_rs.sessions.retries_answered == 1


async def test_replset_commands(open_rs: MongoCluster) -> None:
    """replSetGetStatus lists every member's state; replSetStepDown works on the primary only."""
    async with RawConnection.open(open_rs.servers[1]) as conn:
        status = await conn.command({"replSetGetStatus": 1, "$db": "admin"})
        assert [m["stateStr"] for m in status["members"]] == ["PRIMARY", "SECONDARY", "SECONDARY"]
        assert status["myState"] == 2 and status["members"][1]["self"] is True
        refused = await conn.command({"replSetStepDown": 60, "$db": "admin"})
        assert refused["code"] == 10107
    async with RawConnection.open(open_rs.servers[0]) as conn:
        assert (await conn.command({"replSetStepDown": 60, "$db": "admin"}))["ok"] == 1.0
    assert open_rs.primary == 1 and open_rs.state.term == 2


async def test_member_down_refuses_and_elects(open_rs: MongoCluster) -> None:
    """A primary going down drops its connections, a new primary is elected, and it returns."""
    async with RawConnection.open(open_rs.servers[0]) as conn:
        open_rs.member_down(0)
        assert await conn.closed_by_server()
    assert open_rs.primary == 1
    async with RawConnection.open(open_rs.servers[0]) as conn:
        assert await conn.closed_by_server(), "new connections are refused while down"
    open_rs.member_up(0)
    async with RawConnection.open(open_rs.servers[0]) as conn:
        hello = await conn.command({"hello": 1, "$db": "admin"})
    assert hello["secondary"] is True and hello["primary"] == open_rs.hosts[1]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_driver_discovers_the_set_and_follows_a_stepdown(
    driver: str, rs: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """The driver finds every member, and retryable writes go on across two elections."""
    async with cluster_client(driver, rs, mongo_authority.mint()) as client:
        coll = client.db.t
        await coll.insert_one({"_id": 0})
        await eventually(lambda: len(client.nodes) == 3)
        for i in range(1, 3):
            rs.step_down()
            await coll.insert_one({"_id": i})  # on the old primary: 10107, retried
        assert await coll.count_documents({}) == 3
        secondary = coll.with_options(read_preference=ReadPreference.SECONDARY)
        assert await secondary.find_one({"_id": 1}) == {"_id": 1}
    assert rs.primary == 2 and rs.stats.auth_failures == {}


def _primary_of(client: Any) -> str | None:
    for (host, port), sd in client.topology_description.server_descriptions().items():
        if sd.server_type == SERVER_TYPE.RSPrimary:
            return f"{host}:{port}"
    return None


@pytest.mark.parametrize("driver", DRIVERS)
async def test_driver_streams_hello_and_hears_of_an_election_before_its_next_heartbeat(
    driver: str, rs: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """With a 60 s heartbeat, only the awaitable-hello stream can tell the driver so soon."""
    async with cluster_client(
        driver, rs, mongo_authority.mint(), heartbeatFrequencyMS=60_000
    ) as client:
        await client.admin.command("ping")
        await eventually(lambda: _primary_of(client) == rs.hosts[0])
        await eventually(lambda: all(s.awaited_hellos >= 1 for s in rs.stats_by_member))
        rs.step_down(2)
        await eventually(lambda: _primary_of(client) == rs.hosts[2], rounds=200)  # <= 5 s
    assert rs.stats.commands.get("insert") is None, "no operation was needed to learn it"


@pytest.mark.parametrize("driver", DRIVERS)
async def test_stepdown_fault_during_writes_loses_nothing(
    driver: str, mongo_authority: CredentialAuthority
) -> None:
    """mongo:insert:stepdown fires mid-workload; every acknowledged write is stored once."""
    faults = FaultInjector()
    async with MongoCluster(mongo_authority, faults=faults) as cluster:
        async with cluster_client(driver, cluster, mongo_authority.mint()) as client:
            coll = client.db.get_collection("t", write_concern=None)
            await coll.insert_one({"_id": -1})
            for i in range(20):
                if i % 10 == 0:  # one election at a time: a write is retried once
                    faults.add("mongo:insert:stepdownx1")
                await coll.insert_one({"_id": i})
        assert cluster.storage_client.db.t.count_documents({}) == 21
        assert cluster.state.term == 3
        assert cluster.stats.faults_fired["insert:stepdown"] == 2


async def test_pymongo_own_aws_lookup_against_the_set(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns, authority: CredentialAuthority
) -> None:
    """Sync MongoClient, no username: finds ECS credentials, writes across a stepdown."""
    set_cached_credentials(None)
    for name, value in threaded_aws.env_for("ecs").items():
        clean_aws_env.setenv(name, value)
    async with MongoCluster(authority) as cluster:

        def work() -> int:
            client: MongoClient[dict[str, Any]] = MongoClient(
                cluster.uri, authMechanism="MONGODB-AWS", heartbeatFrequencyMS=500
            )
            try:
                client.db.t.insert_one({"_id": 1})
                anyio.from_thread.run_sync(cluster.step_down)
                client.db.t.insert_one({"_id": 2})
                return client.db.t.count_documents({})
            finally:
                client.close()

        try:
            assert await anyio.to_thread.run_sync(work) == 2
        finally:
            set_cached_credentials(None)
    assert cluster.stats.auth_successes >= 2 and not cluster.stats.auth_failures


@pytest.fixture(autouse=True)
def _no_cached_aws_credentials() -> Iterator[None]:
    set_cached_credentials(None)
    yield
    set_cached_credentials(None)


async def test_misuse_is_reported(mongo_authority: CredentialAuthority) -> None:
    """Zero members, a wrong number of host names, or stepping down a sharded cluster fail."""
    with pytest.raises(ConfigurationError):
        MongoCluster(mongo_authority, members=0)
    with pytest.raises(ConfigurationError):
        MongoCluster(mongo_authority, members=3, hostnames=["a"])
    async with MongoCluster(mongo_authority, sharded=2) as cluster:
        with pytest.raises(ConfigurationError):
            cluster.step_down()
