"""TLS listeners: a CA made at start, MONGODB-AWS over TLS exactly as over plaintext."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from pool.standins.authority import CredentialAuthority
from pool.standins.mongo import MongoStandIn
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.tls import TlsMaterial
from tests.standins.cluster_fixtures import DRIVERS, cluster_client, eventually
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.mongo_fixtures import aws_options


@pytest.fixture
async def tls_rs(mongo_authority: CredentialAuthority) -> AsyncIterator[MongoCluster]:
    async with MongoCluster(mongo_authority, members=3, tls=True) as cluster:
        yield cluster


@pytest.mark.parametrize("driver", DRIVERS)
async def test_drivers_authenticate_over_tls_and_follow_a_stepdown(
    driver: str, tls_rs: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """With tlsCAFile, each driver verifies the member certificates, logs in and writes."""
    async with cluster_client(driver, tls_rs, mongo_authority.mint()) as client:
        status = await client.admin.command("connectionStatus")
        assert status["authInfo"]["authenticatedUsers"] == [{"user": "app", "db": "$external"}]
        await client.db.t.insert_one({"_id": 1})
        tls_rs.step_down()
        await client.db.t.insert_one({"_id": 2})
        assert await client.db.t.count_documents({}) == 2
    assert tls_rs.stats.auth_successes >= 1 and not tls_rs.stats.auth_failures


async def test_uri_carries_the_tls_options_a_user_writes(
    tls_rs: MongoCluster, mongo_authority: CredentialAuthority
) -> None:
    """The cluster URI alone (replicaSet, tls, tlsCAFile) is enough to connect."""
    assert "replicaSet=rs0&tls=true&tlsCAFile=" in tls_rs.uri
    assert tls_rs.tls_ca_file is not None and Path(tls_rs.tls_ca_file).is_file()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        tls_rs.uri, **aws_options(mongo_authority.mint())
    )
    try:
        assert (await client.admin.command("ping"))["ok"] == 1.0
    finally:
        await client.close()
    # The bench reports this count to show its replica-set topology really used TLS.
    assert tls_rs.stats.tls_handshakes >= 2 and tls_rs.stats.tls_failures == 0


async def test_a_client_without_the_ca_is_refused(tls_rs: MongoCluster) -> None:
    """Without the stand-in's CA the certificate does not verify, and the server counts it."""
    # A raw TLS client, not PyMongo: closing a PyMongo client while its monitor
    # retries a failing handshake leaks that socket (PyMongo 4.20; see FACTS).
    host, port = tls_rs.servers[0].address
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(host, port, ssl=ssl.create_default_context())
    await eventually(lambda: tls_rs.stats.tls_failures == 1)
    assert tls_rs.stats.commands == {} and tls_rs.stats.sts_calls == 0


async def test_standalone_server_over_tls(mongo_authority: CredentialAuthority) -> None:
    """A single MongoStandIn started with a TLS context serves MONGODB-AWS over TLS."""
    material = TlsMaterial()
    try:
        async with MongoStandIn(mongo_authority) as server:
            pass
        server = MongoStandIn(mongo_authority)
        await server.start(tls=material.server_context())
        try:
            assert server.uri.endswith("?tls=true")
            client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
                server.uri, **aws_options(mongo_authority.mint(), tlsCAFile=material.ca_file)
            )
            try:
                await client.db.t.insert_one({"a": 1})
                assert await client.db.t.count_documents({}) == 1
            finally:
                await client.close()
            # A raw TLS socket with the CA verifies the host name 127.0.0.1 too.
            _, writer = await asyncio.open_connection(
                *server.address, ssl=material.client_context(), server_hostname="127.0.0.1"
            )
            assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            writer.close()
            await writer.wait_closed()
            assert server.stats.tls_handshakes >= 2  # at least the client's monitor and pool
        finally:
            await server.aclose()
    finally:
        material.close()
    assert not Path(material.ca_file).exists()


async def test_plaintext_client_cannot_talk_to_a_tls_listener(tls_rs: MongoCluster) -> None:
    """A plaintext hello to a TLS port gets no MongoDB answer (the TLS handshake fails)."""
    host, port = tls_rs.servers[0].address
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"\x00" * 64)
    await writer.drain()
    try:
        assert await asyncio.wait_for(reader.read(100), 10) == b""
    except ConnectionError:
        pass  # reset by the server: fine too
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    assert tls_rs.stats.commands == {}
    assert tls_rs.stats.tls_failures == 1


async def test_a_writer_whose_tls_failed_gets_its_plain_transport_back() -> None:
    """restore_transport() relies on StreamWriter keeping its transport in ``_transport``."""
    import asyncio

    from pool.standins.mongo.server import restore_transport

    served: list[asyncio.StreamWriter] = []
    connected = asyncio.Event()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(writer)
        connected.set()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, client = await asyncio.open_connection("127.0.0.1", port)
    await connected.wait()
    writer = served[0]
    plain = writer.transport
    writer._transport = None  # what CPython 3.11's failed start_tls leaves behind
    restore_transport(writer, plain)
    assert writer.transport is plain
    writer.close()
    client.close()
    server.close()
    await server.wait_closed()
