"""PyMongo's own MONGODB-AWS credential lookup (no username) through each AWS stand-in.

PyMongo fetches credentials through boto3 synchronously, even inside the async
driver, so the AWS endpoints run on a background thread (``threaded_aws``);
the MongoDB stand-in stays on the test's loop, which is only needed once the
lookup has finished. pymongo-auth-aws caches credentials process-wide: every
test starts and ends with that cache cleared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure
from pymongo_auth_aws.auth import set_cached_credentials

from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.mongo import MongoStandIn
from tests.standins.mongo_fixtures import *  # noqa: F403

LOOKUP = {"authMechanism": "MONGODB-AWS", "serverSelectionTimeoutMS": 5000}


@pytest.fixture(autouse=True)
def _no_cached_aws_credentials() -> Iterator[None]:
    set_cached_credentials(None)
    yield
    set_cached_credentials(None)


async def _async_driver(uri: str) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, **LOOKUP)
    try:
        return await client.admin.command("connectionStatus")
    finally:
        await client.close()


async def _sync_driver(uri: str) -> Any:
    def work() -> Any:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, **LOOKUP)
        try:
            return client.admin.command("connectionStatus")
        finally:
            client.close()

    return await anyio.to_thread.run_sync(work)


async def _motor_driver(uri: str) -> Any:
    client = AsyncIOMotorClient(uri, **LOOKUP)
    try:
        return await client.admin.command("connectionStatus")
    finally:
        # Motor's close() is synchronous and talks to the server on this loop.
        await anyio.to_thread.run_sync(client.close)


DRIVERS = {"AsyncMongoClient": _async_driver, "MongoClient": _sync_driver, "Motor": _motor_driver}


@pytest.mark.parametrize("driver", DRIVERS.values(), ids=DRIVERS.keys())
@pytest.mark.parametrize("environment", ["lambda", "ecs", "ec2", "eks_irsa", "eks_pod_identity"])
async def test_pymongo_lookup_authenticates_through_each_endpoint(
    environment: str,
    driver: Any,
    clean_aws_env: pytest.MonkeyPatch,
    threaded_aws: AwsStandIns,
    authority: CredentialAuthority,
) -> None:
    """With only the standard AWS variables set, each driver finds credentials and logs in."""
    if environment == "ec2":
        clean_aws_env.delenv("AWS_EC2_METADATA_DISABLED")
    for name, value in threaded_aws.env_for(environment).items():
        clean_aws_env.setenv(name, value)
    async with MongoStandIn(authority) as server:
        status = await driver(server.uri)
    assert status["authInfo"]["authenticatedUsers"] == [{"user": "app", "db": "$external"}]
    assert server.stats.auth_successes >= 1 and not server.stats.auth_failures


async def test_lookup_without_any_source_fails_before_reaching_the_server(
    clean_aws_env: pytest.MonkeyPatch, authority: CredentialAuthority
) -> None:
    """No credentials anywhere: PyMongo refuses to authenticate and the server sees no attempt."""
    async with MongoStandIn(authority) as server:
        with pytest.raises(OperationFailure, match="could not be obtained"):
            await _async_driver(server.uri)
    assert server.stats.sts_calls == 0


async def test_lookup_with_a_rejected_ecs_token_fails(
    clean_aws_env: pytest.MonkeyPatch, threaded_aws: AwsStandIns, authority: CredentialAuthority
) -> None:
    """A container endpoint that refuses the Authorization token makes the lookup fail."""
    for name, value in threaded_aws.env_for("ecs").items():
        clean_aws_env.setenv(name, value)
    clean_aws_env.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "not-the-token")
    async with MongoStandIn(authority) as server:
        with pytest.raises(OperationFailure, match="could not be obtained"):
            await _async_driver(server.uri)
