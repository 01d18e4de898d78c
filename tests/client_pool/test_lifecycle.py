"""Start, close and leaks: nothing is left behind, misuse fails with a useful message."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pool import ClientPool
from pool.cache import CredentialCache
from pool.client_pool.drivers import live_clients
from pool.errors import ConfigurationError, PoolClosedError, WarmupError
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import (
    FAST,
    MintingSource,
    make_pool,
    pymongo_threads,
    rotate,
    until,
)
from tests.logcapture import capture_logs


def _tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_nothing_left_after_50_rotations_and_aclose(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """After 50 rotations and aclose(): no client, socket, thread or task remains."""
    tasks0, threads0, live0 = _tasks(), pymongo_threads(), live_clients()
    async with make_pool(mongo, cache, driver, warm_connections=2) as cp:
        for i in range(50):
            await cp.run(lambda c, i=i: c.db.leak.insert_one({"_id": i}))
            await rotate(cp, cache)
        await until(lambda: live_clients() == live0 + 1, pool=cp)  # only the serving client
        status = cp.status()
        assert status.rotations == 50 and status.draining == ()
        open_now = status.generations[0].connections.open
        # The serving client's pool plus its monitoring connection(s), nothing older.
        await until(lambda: mongo.stats.connections_open <= open_now + 2)
        assert await cp.run(lambda c: c.db.leak.count_documents({})) == 50
    assert live_clients() == live0
    await until(lambda: mongo.stats.connections_open == 0)
    await until(lambda: _tasks() <= tasks0)
    await until(lambda: pymongo_threads() <= threads0)


async def test_aclose_waits_for_leases_then_closes(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """aclose() lets a lease in progress finish its work, then closes; it is idempotent."""
    cp = make_pool(mongo, cache, driver)
    await cp.start()
    live0 = live_clients()
    async with cp.client() as client:
        closing = asyncio.create_task(cp.aclose())
        await until(lambda: cp.status().state == "closing")
        with pytest.raises(PoolClosedError):
            async with cp.client():
                pass
        await client.db.c.insert_one({"_id": "during-close"})  # still open for us
        assert not closing.done()
    await closing
    assert cp.status().state == "closed" and not cp.status().ready
    assert cp.status().dropped_leases == 0
    assert live_clients() == live0 - 1
    await cp.aclose()
    with pytest.raises(PoolClosedError, match="not open"):
        async with cp.client():
            pass


async def test_aclose_drops_leases_after_close_timeout(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A lease outliving close_timeout is dropped and counted; aclose() still finishes."""
    cp = make_pool(mongo, cache, driver, close_timeout=0.1)
    await cp.start()
    release = asyncio.Event()
    held = asyncio.Event()

    async def holder() -> None:
        async with cp.client():
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    await cp.aclose()
    assert cp.status().dropped_leases == 1
    release.set()
    await task


async def test_first_warmup_failure_raises_and_cleans_up(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """With no client to fall back on, start() raises WarmupError and leaves nothing open."""
    live0 = live_clients()
    mongo.reject_auth(True)
    cp = make_pool(mongo, cache, driver)
    with pytest.raises(WarmupError, match="refused"):
        async with cp:
            pass
    assert live_clients() == live0
    assert cp.status().state == "closed"
    await until(lambda: mongo.stats.connections_open == 0)


async def test_pool_owns_the_cache_it_creates(driver: str, mongo: MongoStandIn) -> None:
    """Given a source, the pool opens a cache for it and closes both at the end."""
    source = MintingSource(mongo.authority)
    async with ClientPool(mongo.uri, credentials=source, driver=driver, **FAST) as cp:
        assert await cp.run(lambda c: c.db.t.insert_one({"_id": 1}))
        assert cp.status().cache["state"] != "closed"
    assert source.closed
    assert cp.status().cache["state"] == "closed"


@pytest.mark.parametrize(
    ("uri", "kwargs", "match"),
    [
        ("mongodb://AKIA:secret@host/", {}, "user name or password"),
        ("localhost:27017", {}, "connection string"),
        ("mongodb://h/", {"username": "x"}, "set by the pool"),
        ("mongodb://h/", {"authMechanismProperties": {}}, "set by the pool"),
        ("mongodb://h/", {"driver": "mongoengine"}, "driver must be"),
        ("mongodb://h/", {"warm_connections": -1}, "warm_connections"),
        ("mongodb://h/", {"drain_timeout": -1.0}, "drain_timeout"),
        ("mongodb://h/", {"warm_connections": 8, "maxPoolSize": 4}, "maxPoolSize=4"),
        ("mongodb://h/?maxPoolSize=2", {"warm_connections": 4}, "maxPoolSize=2"),
        ("mongodb://h/", {"minPoolSize": 9, "maxpoolsize": 5}, "minPoolSize=9"),
    ],
)
def test_configuration_errors_say_what_to_fix(
    uri: str, kwargs: dict[str, Any], match: str, source: MintingSource
) -> None:
    """Bad settings fail at construction with a message naming the fix."""
    with pytest.raises(ConfigurationError, match=match):
        ClientPool(uri, credentials=source, **kwargs)


def test_credentials_must_be_a_cache_or_source() -> None:
    """Passing something that is neither a cache nor a source is refused."""
    with pytest.raises(ConfigurationError, match=r"CredentialCache or a pool\.CredentialSource"):
        ClientPool("mongodb://h/", credentials="AKIA...")


async def test_start_twice_is_refused(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A pool starts once; a second start() says to create a new pool."""
    async with make_pool(mongo, cache, driver) as cp:
        with pytest.raises(PoolClosedError, match="already"):
            await cp.start()


async def test_status_is_json_and_nothing_leaks_secrets(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, source: MintingSource
) -> None:
    """status(), repr and every log line stay free of secret keys and session tokens."""
    with capture_logs() as logs:
        async with make_pool(mongo, cache, driver, warmup_timeout=2.0) as cp:
            await rotate(cp, cache)
            mongo.reject_auth(True)
            await cache.refresh()
            await until(lambda: cp.status().warmup_failures >= 1, pool=cp)
            mongo.drop_connections()
            with pytest.raises(Exception, match=r"Authentication failed|paused"):
                async with cp.client() as client:
                    await client.db.t.find_one({})
            mongo.reject_auth(False)
            status = cp.status()
            text = json.dumps(status.to_dict()) + repr(status) + repr(cp)
    logged = repr(logs)
    assert source.secrets(), "the test minted credentials"
    for secret in source.secrets():
        assert secret not in text
        assert secret not in logged
    assert status.credentials.key.startswith("ASIA")
    assert any(e["event"] == "pool.auth_failed" for e in logs)
    assert any(e["event"] == "pool.warmup_failed" for e in logs)


def test_pool_size_within_limits_is_accepted(source: MintingSource) -> None:
    """warm_connections up to maxPoolSize, or any number with maxPoolSize=0 (no limit), is fine."""
    ClientPool("mongodb://h/", credentials=source, warm_connections=4, maxPoolSize=4)
    ClientPool("mongodb://h/?maxPoolSize=0", credentials=source, warm_connections=50)


async def test_warmup_error_text_is_redacted(
    driver: str,
    mongo: MongoStandIn,
    cache: CredentialCache,
    source: MintingSource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A warm-up error quoting a URI password or the credentials leaves no trace of them."""
    from pymongo.errors import AutoReconnect

    from pool.client_pool.drivers import get_driver

    adapter = type(get_driver(driver))
    uri_password = "Hunter2-uri-Passw0rd"

    async def leaky_ping(self: Any, client: Any) -> None:
        creds = source.minted[-1]  # the set being warmed
        raise AutoReconnect(
            f"mongodb://app:{uri_password}@db.example:27017 {creds.secret_access_key} "
            f"token={creds.session_token}"
        )

    with capture_logs() as logs:
        async with make_pool(mongo, cache, driver) as cp:
            monkeypatch.setattr(adapter, "_ping", leaky_ping)
            await cache.refresh()
            await until(lambda: cp.status().warmup_failures >= 1, pool=cp)
            status = cp.status()
    text = json.dumps(status.to_dict()) + repr(status) + repr(logs)
    assert "AutoReconnect" in status.last_warmup_error.message
    assert "db.example" in status.last_warmup_error.message, "the useful part stays"
    for secret in [uri_password, *source.secrets()]:
        assert secret not in text


async def test_wait_for_generation(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """wait_for_generation() returns at once for a serving number, else at the next swap."""
    async with make_pool(mongo, cache, driver) as cp:
        assert await cp.wait_for_generation(1) == 1
        waiter = asyncio.create_task(cp.wait_for_generation(2))
        await asyncio.sleep(0)
        assert not waiter.done()
        await cache.refresh()
        async with asyncio.timeout(15):
            assert await waiter == 2
        assert cp.status().generation == 2 and cp.status().rotations == 1


async def test_wait_for_generation_ends_when_the_pool_closes(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A wait_for_generation() in progress raises PoolClosedError when the pool closes."""
    cp = make_pool(mongo, cache, driver)
    await cp.start()
    waiter = asyncio.create_task(cp.wait_for_generation(5))
    await asyncio.sleep(0)
    await cp.aclose()
    async with asyncio.timeout(15):
        with pytest.raises(PoolClosedError, match="closed before generation 5"):
            await waiter
    with pytest.raises(PoolClosedError):
        await cp.wait_for_generation(1)


async def test_use_before_start_says_to_start(source: MintingSource) -> None:
    """client(), run() and wait_for_generation() before start() raise PoolClosedError
    naming the fix; an unstarted pool closes cleanly, more than once."""
    cp = ClientPool("mongodb://127.0.0.1:1/", credentials=source)
    with pytest.raises(PoolClosedError, match=r"not started.*await cp\.start\(\)"):
        async with cp.client():
            pass
    with pytest.raises(PoolClosedError, match="not started"):
        await cp.run(lambda c: c.admin.command("ping"))
    with pytest.raises(PoolClosedError, match="not started"):
        await cp.wait_for_generation(1)
    assert cp.status().state == "new" and not cp.status().ready
    await cp.aclose()
    await cp.aclose()
    assert cp.status().state == "closed"
    with pytest.raises(PoolClosedError, match="create a new pool"):
        await cp.start()


async def test_start_means_started_and_use_after_close_is_refused(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Once start() returns the pool serves; after aclose() every use raises PoolClosedError."""
    cp = make_pool(mongo, cache, driver)
    await cp.start()
    assert cp.status().state == "open" and cp.status().ready
    assert await cp.run(lambda c: c.admin.command("ping")) == {"ok": 1.0}
    await cp.aclose()
    with pytest.raises(PoolClosedError, match="not open"):
        await cp.run(lambda c: c.admin.command("ping"))
    with pytest.raises(PoolClosedError):
        await cp.wait_for_generation(1)


async def test_status_is_typed_and_serialises(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """status() is a frozen PoolStatus; to_dict() is plain JSON with every documented field."""
    import dataclasses

    from pool import GenerationStatus, PoolStatus

    async with make_pool(mongo, cache, driver, warm_connections=2) as cp:
        async with cp.client():
            await rotate(cp, cache)
            status = cp.status()
    assert isinstance(status, PoolStatus)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.ready = False  # type: ignore[misc]
    old, new = status.generations
    assert isinstance(old, GenerationStatus) and old.state == "draining"
    assert old.draining_for_s is not None and old.drain_deadline_in_s is not None
    assert new.state == "active" and new.connections.open >= 2
    assert status.credentials is not None and status.credentials.remaining_s is not None
    plain = json.loads(json.dumps(status.to_dict()))
    assert set(plain) == {f.name for f in dataclasses.fields(PoolStatus)}
    assert plain["draining"] == [1] and plain["generations"][0]["connections"]["pending"] == 0
    assert plain["leases"] == {"1": 1, "2": 0}


def test_credential_source_is_the_public_protocol(source: MintingSource) -> None:
    """pool.CredentialSource is exported and is what ClientPool(credentials=...) accepts."""
    import pool

    assert isinstance(source, pool.CredentialSource)
    assert "CredentialSource" in pool.__all__


def test_driver_name_is_checked_at_run_time(source: MintingSource) -> None:
    """driver= takes any str (os.environ[...] type-checks) and refuses unknown names."""
    for name in ("PyMongo", "", "motor "):
        with pytest.raises(ConfigurationError, match="driver must be 'pymongo' or 'motor'"):
            ClientPool("mongodb://h/", credentials=source, driver=name)
