"""Helpers for the replica-set, sharded, TLS and SRV stand-in tests.

Real drivers against :class:`~pool.standins.mongo.cluster.MongoCluster`:
``AsyncMongoClient`` and Motor with explicit MONGODB-AWS credentials, and
``MongoClient`` with PyMongo's own credential lookup (in a thread, since it
blocks). Each client is closed afterwards; heartbeats are short so that
discovery after an election is quick, never waited for by sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient

from pool.standins.authority import IssuedCredentials
from pool.standins.mongo.cluster import MongoCluster
from tests.standins.mongo_fixtures import aws_options

__all__ = ["DRIVERS", "cluster_client", "emulator_client_options", "eventually"]

FAST = {"heartbeatFrequencyMS": 500, "serverSelectionTimeoutMS": 10_000}


def client_options(
    cluster: MongoCluster, creds: IssuedCredentials | None, **extra: Any
) -> dict[str, Any]:
    opts = aws_options(creds) | FAST
    if cluster.tls_ca_file is not None:
        opts |= {"tls": True, "tlsCAFile": cluster.tls_ca_file}
    return opts | extra


@asynccontextmanager
async def cluster_client(
    driver: str,
    cluster: MongoCluster,
    creds: IssuedCredentials | None,
    uri: str | None = None,
    **extra: Any,
) -> AsyncIterator[Any]:
    """An ``AsyncMongoClient`` (``"pymongo"``) or Motor client (``"motor"``) for ``cluster``."""
    target = uri or cluster.uri
    opts = client_options(cluster, creds, **extra)
    if driver == "pymongo":
        client: Any = AsyncMongoClient(target, **opts)
        try:
            yield client
        finally:
            await client.close()
    else:
        client = AsyncIOMotorClient(target, **opts)
        try:
            yield client
        finally:
            # Motor's close() is synchronous and talks to the server on this loop.
            await anyio.to_thread.run_sync(client.close)


DRIVERS = ["pymongo", "motor"]


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], rounds: int = 400
) -> None:
    """Poll ``check`` (sync or async) until true, yielding to the loop between tries."""
    for _ in range(rounds):
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition never became true")


def emulator_client_options(em: Any, **extra: Any) -> dict[str, Any]:
    """Explicit MONGODB-AWS keyword options for a driver client on ``em`` (an Emulator),
    with the Lambda environment's credentials; ``extra`` adds driver options."""
    env = em.env_for("lambda")
    return {
        "username": env["AWS_ACCESS_KEY_ID"],
        "password": env["AWS_SECRET_ACCESS_KEY"],
        "authMechanism": "MONGODB-AWS",
        "authMechanismProperties": {"AWS_SESSION_TOKEN": env["AWS_SESSION_TOKEN"]},
        "serverSelectionTimeoutMS": 10_000,
        **extra,
    }
