"""The pool's timers on a fake clock: scheduled rotations with 6 s credentials, drain bounds,
slow-drain warnings, warm-up deadlines. Real I/O against the stand-in, no real-time waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog

from pool.cache import CredentialCache
from pool.client_pool.drivers import get_driver, live_clients
from pool.client_pool.generations import DRAIN_WARNING_EVERY
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import (
    MintingSource,
    make_pool,
    next_rotation,
    tick_until,
    until,
)
from tests.fakes import FakeClock


class _Workers:
    """A few tasks inserting and reading back through the pool until stopped (real I/O)."""

    def __init__(self, cp: Any, n: int = 8) -> None:
        self.cp, self.acked, self.failures = cp, [], []
        self.stop = asyncio.Event()
        self.tasks = [asyncio.create_task(self._run(i)) for i in range(n)]

    async def _run(self, i: int) -> None:
        n = 0
        while not self.stop.is_set():
            doc = {"_id": f"{i}-{n}"}
            n += 1
            try:
                await self.cp.run(lambda c, d=doc: c.db.w.insert_one(d), retry=False)
                self.acked.append(doc["_id"])
                async with self.cp.client() as c:
                    assert await c.db.w.find_one({"_id": doc["_id"]}) is not None
            except Exception as exc:
                self.failures.append(exc)
            await asyncio.sleep(0.005)  # a checkpoint between jobs, not a timing assumption

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def test_scheduled_rotations_with_6s_credentials_under_load(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """The cache's own timer rotates the pool three times with 6 s credentials while 8
    workers run: no failure, no lost write, no dropped lease, every replaced client closed.

    Replaces the real-time test that needed 15 s credentials to be stable: on the fake
    clock the refresh point cannot race a warm-up slowed by a busy machine."""
    live0 = live_clients()
    async with make_pool(fake_mongo, fake_cache, driver, warm_connections=3, clock=clock) as cp:
        workers = _Workers(cp)
        for expected in (2, 3, 4):
            started = clock.now
            assert await next_rotation(cp, clock, short_source, step=0.5) == expected
            assert clock.now - started < 6.0, "rotated before the serving set expired"
        await workers.finish()
        status = cp.status()
        assert workers.failures == [], workers.failures[:1]
        assert status.rotations == 3 and status.dropped_leases == 0 and status.run_retries == 0
        stored = {d["_id"] for d in fake_mongo.storage["db"]["w"].find({}, {"_id": 1})}
        assert set(workers.acked) <= stored and len(workers.acked) > 8
        await until(lambda: cp.status().draining == (), pool=cp)
        assert live_clients() == live0 + 1
    assert live_clients() == live0


async def test_drain_timeout_drops_a_held_lease_at_its_bound(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """With drain_timeout=20 a lease held on a replaced client is dropped exactly at the bound."""
    async with make_pool(fake_mongo, fake_cache, driver, drain_timeout=20.0, clock=clock) as cp:
        async with cp.client():
            await next_rotation(cp, clock, short_source, step=0.05)
            swapped = clock.now
            (old,) = cp.status().draining
            await tick_until(clock, lambda: clock.now >= swapped + 19.9, step=0.1, pool=cp)
            assert old in cp.status().draining and cp.status().dropped_leases == 0
            await clock.run_until(swapped + 20.0)
            await until(lambda: old not in cp.status().draining, pool=cp)
            assert cp.status().dropped_leases == 1


async def test_slow_drain_warns_every_minute_and_keeps_the_lease(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """A replaced client waiting for a lease logs pool.drain_slow once a minute and stays open."""
    async with make_pool(fake_mongo, fake_cache, driver, clock=clock) as cp:
        with structlog.testing.capture_logs() as logs:
            async with cp.client() as client:
                await next_rotation(cp, clock, short_source, step=0.05)
                swapped = clock.now
                # No more rotations meanwhile: a fixed set lets the minutes pass quickly.
                short_source.lifetime = 600.0
                await next_rotation(cp, clock, short_source, step=0.05)
                await clock.run_until(swapped + DRAIN_WARNING_EVERY)
                await clock.run_until(swapped + 2 * DRAIN_WARNING_EVERY)
                assert await client.admin.command("ping") == {"ok": 1.0}, "still served"
                assert 1 in cp.status().draining
        slow = [e for e in logs if e["event"] == "pool.drain_slow"]
        assert [e["generation"] for e in slow] == [1, 1]
        assert slow[0]["leases"] == 1 and slow[0]["expired"] is True
        assert cp.status().dropped_leases == 0


async def test_warmup_deadline_runs_on_the_pool_clock(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hanging handshake fails the warm-up when the fake clock passes warmup_timeout, not
    before; the serving client keeps serving."""
    adapter = type(get_driver(driver))
    real_warm = adapter.warm
    warming = asyncio.Event()

    async def watched_warm(self: Any, *args: Any, **kwargs: Any) -> bool:
        warming.set()
        return await real_warm(self, *args, **kwargs)

    async with make_pool(fake_mongo, fake_cache, driver, warmup_timeout=30.0, clock=clock) as cp:
        monkeypatch.setattr(adapter, "warm", watched_warm)
        fake_mongo.faults.add("mongo:saslStart:hang")
        refresh = asyncio.create_task(fake_cache.refresh())
        async with asyncio.timeout(15):
            await warming.wait()
            await refresh
        start = clock.now
        await clock.run_until(start + 29.0)
        assert cp.status().warmup_failures == 0
        await clock.run_until(start + 30.0)
        await until(lambda: cp.status().warmup_failures >= 1, pool=cp)
        status = cp.status()
        assert (
            status.last_warmup_error is not None and "in time" in status.last_warmup_error.message
        )
        assert status.generation == 1 and status.ready
        fake_mongo.faults.clear()
        assert await cp.run(lambda c: c.db.t.count_documents({})) == 0
