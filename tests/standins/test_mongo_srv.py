"""mongodb+srv against the loopback DNS stand-in, with no packet leaving loopback.

Every test here runs under ``loopback_only``: a connect, sendto or lookup of
anything but loopback fails it, so a query that escaped to the system
resolver would be caught.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import dns.asyncquery
import dns.message
import dns.rcode
import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import ConfigurationError as PyMongoConfigurationError
from pymongo_auth_aws.auth import set_cached_credentials

from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.srv import (
    DnsStandIn,
    loopback_resolution,
    member_names,
    publish,
    srv_uri,
)
from tests.standins.cluster_fixtures import DRIVERS, cluster_client
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import aws_options
from tests.standins.net_guard import *  # noqa: F403
from tests.standins.net_guard import NonLoopbackError

ZONE = "cluster0.pool.test"


class Srv:
    def __init__(self, cluster: MongoCluster, dns_server: DnsStandIn) -> None:
        self.cluster = cluster
        self.dns = dns_server
        self.uri = srv_uri(ZONE, cluster)


@pytest.fixture
async def srv(mongo_authority: CredentialAuthority, loopback_only: list[str]) -> AsyncIterator[Srv]:
    async with (
        DnsStandIn(ZONE) as dns_server,
        MongoCluster(mongo_authority, tls=True, hostnames=member_names(ZONE, 3)) as cluster,
    ):
        publish(dns_server, cluster)
        with loopback_resolution(dns_server.address, ZONE):
            yield Srv(cluster, dns_server)


async def _ask(server: DnsStandIn, name: str, rdtype: str, *, tcp: bool = False) -> Any:
    query = dns.message.make_query(name, rdtype)
    host, port = server.address
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, host, port=port, timeout=5)


async def test_dns_answers_as_atlas_publishes(srv: Srv) -> None:
    """SRV lists every member, TXT carries authSource and replicaSet, A is loopback; UDP and TCP."""
    for tcp in (False, True):
        answer = await _ask(srv.dns, f"_mongodb._tcp.{ZONE}", "SRV", tcp=tcp)
        targets = sorted(f"{r.target.to_text(True)}:{r.port}" for r in answer.answer[0])
        assert targets == sorted(srv.cluster.hosts)
    txt = await _ask(srv.dns, ZONE, "TXT")
    assert b"".join(txt.answer[0][0].strings) == b"authSource=admin&replicaSet=rs0"
    a = await _ask(srv.dns, f"m1.{ZONE}", "A")
    assert [r.address for r in a.answer[0]] == ["127.0.0.1"]
    assert (await _ask(srv.dns, f"m1.{ZONE}", "AAAA")).answer == []
    assert (await _ask(srv.dns, f"nope.{ZONE}", "A")).rcode() == dns.rcode.NXDOMAIN
    assert (await _ask(srv.dns, "example.com", "A")).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("driver", DRIVERS)
async def test_drivers_connect_through_mongodb_srv(
    driver: str, srv: Srv, mongo_authority: CredentialAuthority, loopback_only: list[str]
) -> None:
    """mongodb+srv over TLS: SRV seeds, TXT's replicaSet, member names, a stepdown, writes."""
    async with cluster_client(driver, srv.cluster, mongo_authority.mint(), uri=srv.uri) as client:
        await client.db.t.insert_one({"_id": 1})
        srv.cluster.step_down()
        await client.db.t.insert_one({"_id": 2})
        assert await client.db.t.count_documents({}) == 2
    assert srv.dns.queries >= 5  # SRV, TXT, and A for each member name
    assert set(loopback_only) == {"127.0.0.1"}  # what reached the system resolver
    assert srv.cluster.stats.auth_successes >= 1


async def test_txt_auth_source_trips_a_client_without_external(
    srv: Srv, mongo_authority: CredentialAuthority
) -> None:
    """As on Atlas: without authSource=$external, TXT's authSource=admin is refused for AWS auth."""
    uri = f"mongodb+srv://{ZONE}/?tlsCAFile={srv.cluster.tls_ca_file}"
    trapped: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, **aws_options(mongo_authority.mint())
    )
    try:
        with pytest.raises(PyMongoConfigurationError, match=r"\$external"):
            await trapped.admin.command("ping")  # the async client resolves SRV on connect
    finally:
        await trapped.close()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, authSource="$external", **aws_options(mongo_authority.mint())
    )
    try:
        assert (await client.admin.command("ping"))["ok"] == 1.0
    finally:
        await client.close()


@pytest.fixture
def _no_cached_aws_credentials() -> Iterator[None]:
    set_cached_credentials(None)
    yield
    set_cached_credentials(None)


@pytest.mark.usefixtures("_no_cached_aws_credentials")
async def test_pymongo_own_lookup_through_mongodb_srv(
    clean_aws_env: pytest.MonkeyPatch,
    threaded_aws: AwsStandIns,
    authority: CredentialAuthority,
    loopback_only: list[str],
) -> None:
    """Sync MongoClient, no username, web identity variables, a mongodb+srv URI over TLS."""
    for name, value in threaded_aws.env_for("eks_irsa").items():
        clean_aws_env.setenv(name, value)
    async with (
        DnsStandIn(ZONE) as dns_server,
        MongoCluster(authority, tls=True, hostnames=member_names(ZONE, 3)) as cluster,
    ):
        publish(dns_server, cluster)
        uri = srv_uri(ZONE, cluster) + "&authMechanism=MONGODB-AWS"

        def work() -> Any:
            client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
            try:
                return client.admin.command("connectionStatus")
            finally:
                client.close()

        with loopback_resolution(dns_server.address, ZONE):
            status = await anyio.to_thread.run_sync(work)
    assert status["authInfo"]["authenticatedUsers"] == [{"user": "app", "db": "$external"}]


async def test_guard_refuses_names_outside_the_zone(srv: Srv) -> None:
    """A name the stand-in does not serve is refused before any system lookup."""
    import socket

    with pytest.raises(NonLoopbackError):
        socket.getaddrinfo("example.com", 443)
    # In a thread: the lookup is synchronous and the DNS stand-in runs on this loop.
    found = await anyio.to_thread.run_sync(socket.getaddrinfo, f"m0.{ZONE}", 1)
    assert found[0][4][0] == "127.0.0.1"
