"""The TLS stand-ins keep a ClientHello that arrives before the server starts TLS.

uvloop reads an accepted connection before the serving task runs, so a
client that sends its ClientHello at once (PyMongo's sync driver, so Motor)
had it swallowed by the ``StreamReader`` and the handshake hung. Here the
server waits until the ClientHello has been read, then starts TLS: the
handshake must complete on both loops.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest

from pool.standins.mongo.tls import TlsFirstProtocol, TlsMaterial, start_tls_first_server
from tests.fakes import SettlingLoop
from tests.standins.cluster_fixtures import eventually

pytest.importorskip("uvloop")


@pytest.fixture(
    params=[
        ("asyncio", {"debug": True, "use_uvloop": True}),
        ("asyncio", {"debug": True, "loop_factory": SettlingLoop}),
    ],
    ids=["uvloop", "asyncio"],
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Both loops: uvloop showed the race, asyncio's loop must keep working."""
    return request.param  # type: ignore[no-any-return]


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls: ssl.SSLObject, bios: Any
) -> None:
    incoming, outgoing = bios
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if pending := outgoing.read():
            writer.write(pending)
            await writer.drain()
        if done:
            return
        data = await reader.read(65536)
        assert data, "the server closed the connection during the handshake"
        incoming.write(data)


async def test_client_hello_read_before_start_tls_is_kept() -> None:
    """A ClientHello read before start_tls reaches the TLS layer; the handshake completes."""
    material = TlsMaterial()
    go = asyncio.Event()
    protocols: list[TlsFirstProtocol] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = writer.transport.get_protocol()
        assert isinstance(protocol, TlsFirstProtocol)
        protocols.append(protocol)
        await go.wait()
        await protocol.start_tls(writer, material.server_context(), 10.0)
        writer.write((await reader.readexactly(5)).upper())
        await writer.drain()
        writer.close()

    server = await start_tls_first_server(serve, "127.0.0.1", 0)
    try:
        async with server:
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            bios = (ssl.MemoryBIO(), ssl.MemoryBIO())
            tls = material.client_context().wrap_bio(*bios, server_hostname="127.0.0.1")
            with pytest.raises(ssl.SSLWantReadError):
                tls.do_handshake()
            writer.write(bios[1].read())  # the ClientHello, before the server starts TLS
            await eventually(lambda: bool(protocols) and protocols[0].bytes_before_tls > 0)
            go.set()
            await _handshake(reader, writer, tls, bios)
            tls.write(b"hello")
            writer.write(bios[1].read())
            while True:
                try:
                    answer = tls.read(5)
                    break
                except ssl.SSLWantReadError:
                    bios[0].write(await reader.read(65536))
            assert answer == b"HELLO" and protocols[0].bytes_before_tls == 0
            writer.close()
            await writer.wait_closed()
    finally:
        material.close()
