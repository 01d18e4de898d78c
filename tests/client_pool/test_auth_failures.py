"""Authentication failures (code 18): invalidation once per credential set, run()'s retry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pool.cache import CredentialCache
from pool.client_pool.drivers import get_driver, is_pool_paused
from pool.credentials import Credentials
from pool.errors import AuthenticationError
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import make_pool, until


def _record_invalidations(cache: CredentialCache) -> list[Credentials | None]:
    seen: list[Credentials | None] = []
    real = cache.invalidate

    def invalidate(creds: Credentials | None = None) -> None:
        seen.append(creds)
        real(creds)

    cache.invalidate = invalidate  # type: ignore[method-assign]
    return seen


def _keys(seen: list[Credentials | None]) -> list[str]:
    return [c.access_key_id for c in seen if c is not None]


async def _fail_once(cp: Any) -> BaseException | None:
    try:
        async with cp.client() as client:
            await client.db.a.find_one({})
    except Exception as exc:
        return exc
    return None


async def test_auth_failure_invalidates_once_and_run_retries_on_new_client(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Revoked credentials: many failures, one invalidation; run() succeeds on the next client."""
    async with make_pool(mongo, cache, driver) as cp:
        invalidations = _record_invalidations(cache)
        revoked = cache.current
        # Hold the next client's build so that run() fails first and must wait for it.
        adapter = type(get_driver(driver))
        gate = asyncio.Event()
        real_build = adapter.build

        async def gated_build(self: Any, *args: Any, **kwargs: Any) -> Any:
            await gate.wait()
            return await real_build(self, *args, **kwargs)

        monkeypatch.setattr(adapter, "build", gated_build)
        mongo.authority.revoke(revoked.access_key_id)
        mongo.drop_connections()  # every operation now needs a new connection
        results: list[Any] = await asyncio.gather(*(_fail_once(cp) for _ in range(10)))
        # The first failure pauses PyMongo's pool: the others fail at checkout.
        assert all(getattr(r, "code", None) == 18 or is_pool_paused(r) for r in results), results
        assert any(getattr(r, "code", None) == 18 for r in results)
        assert _keys(invalidations) == [revoked.access_key_id]
        retried = asyncio.create_task(cp.run(lambda c: c.db.a.insert_one({"_id": "after"})))
        await until(lambda: cp.status().run_retries == 1)
        gate.set()
        assert (await retried).inserted_id == "after"
        assert cp.status().generation == 2
        assert _keys(invalidations) == [revoked.access_key_id]


async def test_refused_warmup_invalidates_each_set_once(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A warm-up refused with code 18 invalidates that set in the cache, once per set."""
    async with make_pool(mongo, cache, driver) as cp:
        invalidations = _record_invalidations(cache)
        serving = cache.current
        mongo.reject_auth(True)
        refused = await cache.refresh()
        await until(lambda: cp.status().warmup_failures >= 3, pool=cp)
        keys = _keys(invalidations)
        assert keys[0] == refused.access_key_id, "the refused set was invalidated"
        assert len(keys) == len(set(keys)), f"a set was invalidated twice: {keys}"
        assert serving.access_key_id not in keys, "the serving client's set was never refused"
        assert cp.status().generation == 1 and cp.status().ready
        mongo.reject_auth(False)
        await until(lambda: (cp.status().generation or 0) > 1, pool=cp)


async def test_run_fails_promptly_when_the_newer_credentials_are_refused_too(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """When the server refuses every set, run() raises AuthenticationError without waiting out
    warmup_timeout for a client that cannot come."""
    async with make_pool(mongo, cache, driver, warmup_timeout=40.0) as cp:
        mongo.reject_auth(True)
        mongo.drop_connections()
        # Far below warmup_timeout: only a hang (the old behaviour) reaches it.
        async with asyncio.timeout(20):
            with pytest.raises(AuthenticationError, match="refused") as info:
                await cp.run(lambda c: c.db.a.find_one({}))
        assert info.value.__cause__ is not None
        assert cp.status().warmup_failures >= 1
        assert cp.status().generation == 1
