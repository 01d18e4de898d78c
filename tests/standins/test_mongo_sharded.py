"""Sharded mode: several mongos-like routers over one store, as Atlas sharded clusters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo.topology_description import TOPOLOGY_TYPE

from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.cluster import MongoCluster
from tests.standins.cluster_fixtures import DRIVERS, cluster_client, eventually
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import RawConnection


@pytest.fixture
async def routers(mongo_authority: CredentialAuthority) -> AsyncIterator[MongoCluster]:
    async with MongoCluster(mongo_authority, sharded=2, tls=True) as cluster:
        yield cluster


async def test_router_hello_says_isdbgrid(mongo_authority: CredentialAuthority) -> None:
    """Each router answers hello as mongos: msg isdbgrid, writable, no set name."""
    cluster = MongoCluster(mongo_authority, sharded=2, require_auth=False)
    async with cluster:
        assert cluster.uri == f"mongodb://{','.join(cluster.hosts)}/"
        async with RawConnection.open(cluster.servers[1]) as conn:
            hello = await conn.command({"hello": 1, "$db": "admin"})
    assert hello["msg"] == "isdbgrid" and hello["isWritablePrimary"] is True
    assert "setName" not in hello and "hosts" not in hello


@pytest.mark.parametrize("driver", DRIVERS)
async def test_drivers_see_a_sharded_cluster_and_survive_a_router_going_down(
    driver: str, routers: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """Over TLS the driver sees Sharded, writes through either router, and goes on with one."""
    async with cluster_client(driver, routers, mongo_authority.mint()) as client:
        await client.db.t.insert_one({"_id": 0})
        await eventually(
            lambda: (
                client.topology_description.topology_type == TOPOLOGY_TYPE.Sharded
                and len(client.topology_description.known_servers) == 2
            )
        )
        routers.member_down(0)
        for i in range(1, 6):
            await client.db.t.insert_one({"_id": i})
        assert await client.db.t.count_documents({}) == 6
    assert routers.stats_by_member[1].commands["insert"] >= 1
