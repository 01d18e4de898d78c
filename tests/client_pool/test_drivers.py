"""The driver adapters: build, warm (N authenticated connections), close, error classes."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from pymongo import monitoring
from pymongo.errors import AutoReconnect, InvalidOperation, OperationFailure

from pool.client_pool.drivers import (
    check_client_options,
    get_driver,
    is_auth_failure,
    is_client_closed,
    is_pool_paused,
    live_clients,
)
from pool.credentials import Credentials
from pool.errors import ConfigurationError, WarmupError
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import FAST, MintingSource


@pytest.mark.parametrize("n", [1, 6])
async def test_warm_authenticates_n_connections(
    driver: str, mongo: MongoStandIn, source: MintingSource, n: int
) -> None:
    """warm() leaves N authenticated connections open and pings, ahead of any traffic."""
    adapter = get_driver(driver)
    handle = await adapter.build(mongo.uri, await source.fetch(), FAST)
    try:
        assert mongo.stats.auth_successes == 0, "building connects nothing"
        await adapter.warm(handle, n, within=10)
        assert handle.monitor.ready >= n
        assert mongo.stats.auth_successes >= n
        assert mongo.stats.commands.get("ping") == 1
    finally:
        await adapter.close(handle)
    assert handle.closed


async def test_warm_refused_credentials_raise_warmup_error(
    driver: str, mongo: MongoStandIn, source: MintingSource
) -> None:
    """Refused credentials make warm() fail fast with WarmupError, the code 18 as cause."""
    adapter = get_driver(driver)
    live0 = live_clients()
    handle = await adapter.build(mongo.uri, await source.fetch(), FAST)
    assert live_clients() == live0 + 1
    mongo.reject_auth(True)
    with pytest.raises(WarmupError, match="refused") as info:
        await adapter.warm(handle, 3, within=10)
    assert is_auth_failure(info.value.__cause__)  # type: ignore[arg-type]
    await adapter.close(handle)
    await adapter.close(handle)  # idempotent
    assert live_clients() == live0


async def test_build_keeps_user_listeners_and_min_pool_size(
    driver: str, mongo: MongoStandIn, source: MintingSource
) -> None:
    """The user's event listeners and minPoolSize stay; warm-up does not raise the minimum."""

    class Counter(monitoring.CommandListener):
        count = 0

        def started(self, event: Any) -> None:
            Counter.count += 1

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    adapter = get_driver(driver)
    opts = {**FAST, "event_listeners": [Counter()], "minPoolSize": 5}
    handle = await adapter.build(mongo.uri, await source.fetch(), opts)
    try:
        assert handle.client.options.pool_options.min_pool_size == 5
        await adapter.warm(handle, 2, within=10)
        assert Counter.count >= 1
    finally:
        await adapter.close(handle)


async def test_warm_stops_filling_at_fill_until(
    driver: str, mongo: MongoStandIn, source: MintingSource
) -> None:
    """Past fill_until, warm() returns False with the pinged client usable, not an error."""
    adapter = get_driver(driver)
    handle = await adapter.build(mongo.uri, await source.fetch(), FAST)
    try:
        assert await adapter.warm(handle, 50, within=10, fill_until=time.monotonic()) is False
        assert 1 <= handle.monitor.ready < 50
        assert await handle.client.admin.command("ping") == {"ok": 1.0}
    finally:
        await adapter.close(handle)


def test_credential_options_are_refused() -> None:
    """Credentials come from the cache only; passing them as options is a configuration error."""
    for key in ("username", "Password", "authSource", "authmechanism"):
        with pytest.raises(ConfigurationError, match="set by the pool"):
            check_client_options({key: "x"})
    check_client_options({"maxPoolSize": 10, "appname": "svc"})


def test_error_classification() -> None:
    """Auth failures, closed clients and paused pools are told apart from other errors."""
    assert is_auth_failure(OperationFailure("Authentication failed.", code=18))
    assert not is_auth_failure(OperationFailure("Unauthorized", code=13))
    assert not is_auth_failure(ValueError("18"))
    assert is_client_closed(InvalidOperation("Cannot use AsyncMongoClient after close"))
    assert is_client_closed(InvalidOperation("Cannot use MongoClient after close"))
    assert not is_client_closed(InvalidOperation("cannot set options after executing query"))
    assert is_pool_paused(AutoReconnect("localhost:1: connection pool paused"))
    assert not is_pool_paused(AutoReconnect("connection reset"))


def test_unknown_driver_is_refused() -> None:
    """Only the two supported drivers are accepted."""
    with pytest.raises(ConfigurationError, match="'pymongo' or 'motor'"):
        get_driver("mongoengine")


_IMPORT_PROBE = """
import asyncio, json, sys, threading

on_loop = []


class Recorder:
    # Sees every import not yet in sys.modules; records those run on the loop's thread.
    def find_spec(self, name, path=None, target=None):
        if threading.current_thread() is threading.main_thread():
            try:
                asyncio.get_running_loop()
                on_loop.append(name)
            except RuntimeError:
                pass
        return None


async def main(driver):
    from pool import ClientPool, CredentialCache, Credentials
    from pool.standins.authority import CredentialAuthority
    from pool.standins.mongo.server import MongoStandIn
    from pool.standins.threaded import ThreadedStandIns

    authority = CredentialAuthority(default_lifetime=60.0)

    class Source:
        async def fetch(self):
            c = authority.mint()
            return Credentials(c.access_key_id, c.secret_access_key, c.session_token,
                               c.expiration, source="probe")

    # The stand-in on its own thread: its imports are not the client's.
    async with ThreadedStandIns(lambda: MongoStandIn(authority), name="mongo") as group:
        async with CredentialCache(Source()) as cache:
            await cache.get()
            sys.meta_path.insert(0, Recorder())
            cp = ClientPool(group.value.uri, credentials=cache, driver=driver,
                            warm_connections=2, serverSelectionTimeoutMS=5000)
            await cp.start()
            sys.meta_path.pop(0)
            await cp.aclose()
    print(json.dumps(on_loop))


asyncio.run(main(sys.argv[1]))
"""


async def test_first_handshake_imports_nothing_heavy_on_the_loop(driver: str) -> None:
    """boto3/botocore and PyMongo's AWS auth modules are imported off the event loop."""
    root = Path(__file__).resolve().parents[2]
    result = await anyio.run_process(
        [sys.executable, "-c", _IMPORT_PROBE, driver], cwd=root, check=False
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    on_loop: list[str] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    heavy = [
        m
        for m in on_loop
        if m.split(".")[0] in {"boto3", "botocore", "pymongo_auth_aws"}
        or m.startswith("pymongo.asynchronous.auth")
    ]
    assert heavy == [], f"imported on the event loop during start(): {heavy}"


async def test_refused_options_are_explained_without_secrets(driver: str) -> None:
    """Options the driver refuses raise ConfigurationError quoting its reason, never a secret."""
    creds = Credentials("ASIAEXAMPLEEXAMPLE00", "s3cret-Key-ABCDEFGHIJKLMNOPQRSTUVWXYZ01")
    opts = {"tlsCertificateKeyFilePassword": "pw-hunter2", "maxPoolSize": "many"}
    with pytest.raises(ConfigurationError, match="maxPoolSize must be an integer") as info:
        await get_driver(driver).build("mongodb://127.0.0.1:1/", creds, opts)
    assert "pw-hunter2" not in str(info.value) and creds.secret_access_key not in str(info.value)
