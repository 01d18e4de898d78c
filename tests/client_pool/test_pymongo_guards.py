"""The PyMongo behaviours the pool's filling relies on (read in PyMongo 4.20.1), and the fix
that depends on them: these fail when a PyMongo release changes what they pin down."""

from __future__ import annotations

import asyncio
import gc
import socket
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.pool_options import PoolOptions
from pymongo.pool_shared import _async_create_connection

from pool.client_pool import filling
from pool.client_pool.drivers import get_driver
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import FAST, MintingSource


class _ParkedConnects:
    """Replaces the running loop's ``sock_connect``: while ``parking``, connects wait for
    ``release`` (a TCP connect that takes long); every socket passed is recorded."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.real = loop.sock_connect
        self.sockets: list[socket.socket] = []
        self.parking = False
        self.parked = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, sock: socket.socket, address: Any) -> None:
        self.sockets.append(sock)
        if self.parking:
            self.parked.set()
            await self.release.wait()
        await self.real(sock, address)


@pytest.fixture
async def parked(monkeypatch: pytest.MonkeyPatch) -> _ParkedConnects:
    loop = asyncio.get_running_loop()
    fake = _ParkedConnects(loop)
    monkeypatch.setattr(loop, "sock_connect", fake)
    return fake


async def test_pymongo_leaks_the_socket_of_a_cancelled_connect(
    parked: _ParkedConnects, mongo: MongoStandIn
) -> None:
    """PyMongo's _async_create_connection closes its socket only on OSError/TimeoutError: a
    connect cancelled half-way leaves it open. If this fails, PyMongo closes it itself now
    and the shielded fill step in pool.client_pool.filling is no longer needed."""
    parked.parking = True
    task = asyncio.create_task(_async_create_connection(mongo.address, PoolOptions()))
    await parked.parked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (sock,) = parked.sockets
    try:
        assert sock.fileno() != -1, "PyMongo now closes a cancelled connect's socket"
    finally:
        sock.close()


async def test_every_pool_reads_min_pool_size_from_the_clients_options(
    mongo: MongoStandIn, source: MintingSource
) -> None:
    """minPoolSize lives in PoolOptions._PoolOptions__min_pool_size, and every server pool
    shares the client's PoolOptions object: one store stops or starts every pool's fill."""
    assert "__min_pool_size" in PoolOptions.__slots__
    assert callable(getattr(AsyncMongoClient, "_process_periodic_tasks", None))
    assert callable(getattr(MongoClient, "_process_periodic_tasks", None))
    creds = (await source.fetch()).client_options()
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo.uri, minPoolSize=3, **FAST, **creds)
    try:
        await client.admin.command("ping")
        options = client.options.pool_options
        pools = [s.pool for s in client._topology._servers.values()]
        assert pools and all(p.opts is options for p in pools)
        assert filling.min_pool_size(client) == 3
        filling.set_min_pool_size(client, 0)
        assert [p.opts.min_pool_size for p in pools] == [0] * len(pools)
    finally:
        await client.close()


async def test_a_cancelled_warmup_finishes_its_connect_and_leaks_nothing(
    parked: _ParkedConnects, mongo: MongoStandIn, source: MintingSource
) -> None:
    """Cancelling warm() while a fill step's TCP connect is in flight waits for that step
    (it is never cancelled half-way), then re-raises; closing leaves no socket open and no
    unclosed-socket ResourceWarning, which an interrupted connect would cause."""
    adapter = get_driver("pymongo")
    handle = await adapter.build(mongo.uri, await source.fetch(), FAST)
    real_ping = type(adapter)._ping

    async def ping_then_park(client: Any) -> None:
        await real_ping(adapter, client)
        parked.parking = True  # the fill step's connects now wait

    adapter._ping = ping_then_park  # type: ignore[method-assign]
    warm = asyncio.create_task(adapter.warm(handle, 4, within=30))
    await parked.parked.wait()
    warm.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not warm.done(), "the cancellation waits for the connect in flight"
    assert filling.min_pool_size(handle.client) == 0, "and stops the step after it"
    parked.release.set()
    with pytest.raises(asyncio.CancelledError):
        await warm
    await adapter.close(handle)
    gc.collect()  # an orphaned socket would warn here (filterwarnings=error)
    assert parked.sockets and all(s.fileno() == -1 for s in parked.sockets)
