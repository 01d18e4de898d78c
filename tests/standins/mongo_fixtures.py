"""Fixtures and helpers for the MongoDB stand-in tests (``from mongo_fixtures import *``).

Kept out of ``conftest.py`` because that file belongs to the AWS stand-ins;
fixture names carry a ``mongo_`` prefix so they cannot clash with it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import bson
import pytest
from pymongo import AsyncMongoClient

from pool.standins.authority import CredentialAuthority, IssuedCredentials
from pool.standins.mongo import MongoStandIn
from tests.fakes import FakeWallClock as FakeClock

__all__ = [
    "FakeClock",
    "RawConnection",
    "async_client",
    "aws_options",
    "mongo_authority",
    "mongo_clock",
    "mongo_server",
    "op_msg",
]


@pytest.fixture
def mongo_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mongo_authority(mongo_clock: FakeClock) -> CredentialAuthority:
    return CredentialAuthority(clock=mongo_clock)


@pytest.fixture
async def mongo_server(mongo_authority: CredentialAuthority) -> AsyncIterator[MongoStandIn]:
    async with MongoStandIn(mongo_authority) as server:
        yield server


def aws_options(
    creds: IssuedCredentials | None,
    *,
    secret: str | None = None,
    token: str | bool | None = True,
    **extra: Any,
) -> dict[str, Any]:
    """Client keyword options for MONGODB-AWS with explicit credentials.

    ``secret`` overrides the secret key; ``token=True`` passes the real session
    token, a string passes that token, ``None`` passes none. Short timeouts keep
    failing tests quick.
    """
    opts: dict[str, Any] = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}
    if creds is not None:
        opts |= {
            "username": creds.access_key_id,
            "password": secret if secret is not None else creds.secret_access_key,
            "authMechanism": "MONGODB-AWS",
        }
        session_token = creds.session_token if token is True else token
        if session_token:
            opts["authMechanismProperties"] = {"AWS_SESSION_TOKEN": session_token}
    return opts | extra


@asynccontextmanager
async def async_client(
    server: MongoStandIn, creds: IssuedCredentials | None, **kwargs: Any
) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """An ``AsyncMongoClient`` for ``server``, always closed afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        server.uri, **aws_options(creds, **kwargs)
    )
    try:
        yield client
    finally:
        await client.close()


def op_msg(doc: dict[str, Any], *, request_id: int = 1, flags: int = 0) -> bytes:
    """One OP_MSG frame with a single body section."""
    body = struct.pack("<IB", flags, 0) + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), request_id, 0, 2013) + body


class RawConnection:
    """A bare TCP connection for sending hand-made (or broken) frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    @asynccontextmanager
    async def open(cls, server: MongoStandIn) -> AsyncIterator[RawConnection]:
        reader, writer = await asyncio.open_connection(*server.address)
        try:
            yield cls(reader, writer)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> tuple[int, int, bytes]:
        """(response_to, op_code, payload) of the next frame."""
        header = await asyncio.wait_for(self.reader.readexactly(16), 10)
        length, _rid, response_to, op_code = struct.unpack("<iiii", header)
        payload = await asyncio.wait_for(self.reader.readexactly(length - 16), 10)
        return response_to, op_code, payload

    async def command(self, doc: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Send an OP_MSG command and decode its OP_MSG reply."""
        await self.send(op_msg(doc, **kwargs))
        _, op_code, payload = await self.reply()
        assert op_code == 2013
        return bson.decode(payload[5:])

    async def closed_by_server(self) -> bool:
        """True when the server closes the connection (EOF) instead of answering."""
        try:
            data = await asyncio.wait_for(self.reader.read(1), 10)
        except ConnectionError:
            return True
        return data == b""
