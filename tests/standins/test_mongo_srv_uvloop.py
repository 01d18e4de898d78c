"""mongodb+srv on uvloop as on asyncio's loop, and loopback_resolution failing closed.

uvloop resolves ``loop.getaddrinfo`` in libuv, past ``socket.getaddrinfo``;
:func:`~pool.standins.mongo.resolution.loopback_resolution` hooks
``uvloop.Loop.getaddrinfo`` for the stand-in's zone. Every test runs under
``loopback_only``, which on uvloop also guards ``uvloop.Loop``'s lookups,
connects and datagrams (``tests.standins.net_guard``): a zone name that
escaped the hook would be refused there, never sent to a DNS server.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import anyio
import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient

pytest.importorskip("uvloop")

import uvloop

import pool.standins.mongo.resolution as resolution
from pool.standins.emulator import SRV_ZONE, Emulator
from pool.standins.mongo.srv import (
    DnsStandIn,
    LoopbackResolutionError,
    loopback_resolution,
)
from tests.fakes import SettlingLoop
from tests.standins.cluster_fixtures import emulator_client_options
from tests.standins.mongo_fixtures import *  # noqa: F403
from tests.standins.net_guard import *  # noqa: F403
from tests.standins.net_guard import NonLoopbackError
from tests.standins.test_mongo_srv import (
    srv,
    test_dns_answers_as_atlas_publishes,
    test_drivers_connect_through_mongodb_srv,
    test_guard_refuses_names_outside_the_zone,
    test_txt_auth_source_trips_a_client_without_external,
)

__all__ = [
    "srv",
    "test_dns_answers_as_atlas_publishes",
    "test_drivers_connect_through_mongodb_srv",
    "test_guard_refuses_names_outside_the_zone",
    "test_txt_auth_source_trips_a_client_without_external",
]

UVLOOP = ("asyncio", {"debug": True, "use_uvloop": True})
DEFAULT = ("asyncio", {"debug": True, "loop_factory": SettlingLoop})


BOTH_LOOPS = pytest.mark.parametrize("anyio_backend", [UVLOOP, DEFAULT], ids=["uvloop", "asyncio"])


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """uvloop for every test here; BOTH_LOOPS adds the project's default (selector) loop."""
    return UVLOOP


def _on_uvloop() -> bool:
    return isinstance(asyncio.get_running_loop(), uvloop.Loop)


@BOTH_LOOPS
@pytest.mark.parametrize("driver", ["pymongo", "motor"])
async def test_emulator_replica_set_through_mongodb_srv(
    driver: str, anyio_backend: tuple[str, dict[str, Any]], loopback_only: list[str]
) -> None:
    """A real client on mongodb+srv over TLS: discovers the 3-member set, writes, reads."""
    assert _on_uvloop() == ("use_uvloop" in anyio_backend[1])
    async with Emulator(replica_set=3, tls=True, srv=True) as em:
        assert em.dns is not None and em.mongodb_srv_uri is not None
        with em.srv_resolution():
            options = emulator_client_options(em, heartbeatFrequencyMS=500)
            if driver == "pymongo":
                client: Any = AsyncMongoClient(em.mongodb_srv_uri, **options)
            else:
                client = AsyncIOMotorClient(em.mongodb_srv_uri, **options)
            try:
                await client.db.t.insert_one(
                    {"_id": 1, "loop": type(asyncio.get_running_loop()).__name__}
                )
                assert await client.db.t.find_one({"_id": 1}) is not None
                hello = await client.admin.command("hello")
            finally:
                if driver == "pymongo":
                    await client.close()
                else:  # Motor's close() is synchronous and talks to the server on this loop
                    await anyio.to_thread.run_sync(client.close)
        members = sorted(em.summary()["mongodb_members"])
        assert hello["setName"] == "rs0" and sorted(hello["hosts"]) == members
        assert all(m.split(":")[0].endswith(f".{SRV_ZONE}") for m in members)
        assert em.dns.queries >= 5  # SRV, TXT, and A for each member name
    assert set(loopback_only) == {"127.0.0.1"}  # all that reached a system resolver


@BOTH_LOOPS
async def test_zone_names_resolve_on_the_loop_itself(loopback_only: list[str]) -> None:
    """loop.getaddrinfo answers zone names from the stand-in served by the same loop."""
    loop = asyncio.get_running_loop()
    async with DnsStandIn(SRV_ZONE) as dns_server:
        dns_server.add(f"m0.{SRV_ZONE}", "A", "127.0.0.1")
        with loopback_resolution(dns_server.address, SRV_ZONE):
            found = await loop.getaddrinfo(f"m0.{SRV_ZONE}", 27017, type=socket.SOCK_STREAM)
            assert {info[4][:2] for info in found} == {("127.0.0.1", 27017)}
            with pytest.raises(socket.gaierror) as missing:
                await loop.getaddrinfo(f"nope.{SRV_ZONE}", 27017)
            assert missing.value.errno == socket.EAI_NONAME
            with pytest.raises(NonLoopbackError):  # outside the zone: passed on, to the guard
                await loop.getaddrinfo("example.com", 443)
            with pytest.raises(NonLoopbackError):  # not a DNS name at all: passed on too
                await loop.getaddrinfo("a..b", 443)
    assert "example.com" in loopback_only and f"m0.{SRV_ZONE}" not in loopback_only


HOOKED = ("getaddrinfo", "create_connection", "create_server", "create_datagram_endpoint")


def _uvloop_methods() -> list[Any]:
    return [uvloop.Loop.__dict__.get(name) for name in HOOKED]


async def test_the_hook_lives_only_inside_the_block(loopback_only: list[str]) -> None:
    """uvloop.Loop's methods and socket.getaddrinfo are put back on exit, even on error."""
    before = (_uvloop_methods(), socket.getaddrinfo)
    with pytest.raises(KeyError), loopback_resolution(("127.0.0.1", 53), SRV_ZONE):
        assert all(a is not b for a, b in zip(_uvloop_methods(), before[0], strict=True))
        assert socket.getaddrinfo is not before[1]
        raise KeyError("boom")
    assert (_uvloop_methods(), socket.getaddrinfo) == before


async def test_uvloop_connections_to_zone_names(loopback_only: list[str]) -> None:
    """On uvloop, create_connection resolves a zone name here; server/datagram refuse one."""
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    async with server, DnsStandIn(SRV_ZONE) as dns_server:
        dns_server.add(f"m0.{SRV_ZONE}", "A", "127.0.0.1")
        port = server.sockets[0].getsockname()[1]
        with loopback_resolution(dns_server.address, SRV_ZONE):
            _, writer = await asyncio.open_connection(f"m0.{SRV_ZONE}", port)
            assert writer.get_extra_info("peername")[:2] == ("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            with pytest.raises(LoopbackResolutionError, match="create_datagram_endpoint"):
                await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=(f"m0.{SRV_ZONE}", 53)
                )
            with pytest.raises(LoopbackResolutionError, match="create_server"):
                await loop.create_server(asyncio.Protocol, f"m0.{SRV_ZONE}", 0)
    assert f"m0.{SRV_ZONE}" not in loopback_only


@BOTH_LOOPS
async def test_refuses_a_loop_it_cannot_redirect(
    monkeypatch: pytest.MonkeyPatch, loopback_only: list[str]
) -> None:
    """A running loop with its own getaddrinfo is refused at entry, before any lookup."""

    async def own_getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("never called")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", own_getaddrinfo)
    before = (_uvloop_methods(), socket.getaddrinfo)
    with (
        pytest.raises(LoopbackResolutionError, match="cannot redirect"),
        loopback_resolution(("127.0.0.1", 53), SRV_ZONE),
    ):
        raise AssertionError("the block must not run")
    assert (_uvloop_methods(), socket.getaddrinfo) == before


async def test_refuses_when_uvloop_cannot_be_hooked(
    monkeypatch: pytest.MonkeyPatch, loopback_only: list[str]
) -> None:
    """If uvloop's loop class refuses the hook, entry raises instead of letting names leak."""
    # uvloop.loop.Loop, the compiled base, is immutable: what uvloop.Loop would be if
    # uvloop stopped subclassing it in Python.
    monkeypatch.setattr(resolution, "_uvloop_class", lambda: uvloop.loop.Loop)
    with (
        pytest.raises(LoopbackResolutionError, match=r"hook uvloop\.loop\.Loop\.getaddrinfo"),
        loopback_resolution(("127.0.0.1", 53), SRV_ZONE),
    ):
        raise AssertionError("the block must not run")


async def test_uvloop_loop_takes_a_getaddrinfo_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop 0.23: uvloop.Loop is a Python subclass, and sock_connect resolves through the hook."""
    assert _on_uvloop()
    assert uvloop.Loop.__bases__[0] is uvloop.loop.Loop
    seen: list[Any] = []
    original = uvloop.Loop.getaddrinfo

    async def hook(self: Any, host: Any, port: Any, **kwargs: Any) -> Any:
        seen.append(host)
        return await original(self, host, port, **kwargs)

    monkeypatch.setattr(uvloop.Loop, "getaddrinfo", hook)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        sock = socket.socket()
        sock.setblocking(False)
        with sock:
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    assert seen == ["127.0.0.1"]
