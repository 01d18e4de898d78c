"""The pool's timers on a fake clock: scheduled rotations with 6 s credentials, drain bounds,
slow-drain warnings, warm-up deadlines. Real I/O against the stand-in, no real-time waiting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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
from tests.logcapture import capture_logs


class _Workers:
    """Bursts of jobs (insert, then read back) from ``n`` concurrent workers (real I/O).

    Traffic comes in bursts, not forever: the fake clock moves only while every
    task is parked, and a worker that never parks would keep it from settling.
    """

    def __init__(self, cp: Any, n: int = 20) -> None:
        self.cp, self.n, self.acked, self.failures = cp, n, [], []
        self.jobs = 0

    async def burst(self, jobs: int = 3) -> None:
        await asyncio.gather(*(self._worker(i, jobs) for i in range(self.n)))

    async def _worker(self, i: int, jobs: int) -> None:
        for _ in range(jobs):
            self.jobs += 1
            doc = {"_id": f"{i}-{self.jobs}"}
            try:
                await self.cp.run(lambda c, d=doc: c.db.w.insert_one(d), retry=False)
                self.acked.append(doc["_id"])
                async with self.cp.client() as c:
                    assert await c.db.w.find_one({"_id": doc["_id"]}) is not None
            except Exception as exc:
                self.failures.append(exc)


async def test_scheduled_rotations_with_6s_credentials_under_load(
    driver: str,
    clock: FakeClock,
    fake_mongo: MongoStandIn,
    fake_cache: CredentialCache,
    short_source: MintingSource,
) -> None:
    """The cache's own timer rotates the pool three times with 6 s credentials, each swap
    under a burst of 20 workers: no failure, no lost write, no dropped lease, every
    replaced client closed.

    Replaces the real-time test that needed 15 s credentials to be stable: on the fake
    clock the refresh point cannot race a warm-up slowed by a busy machine."""
    live0 = live_clients()
    async with make_pool(fake_mongo, fake_cache, driver, warm_connections=3, clock=clock) as cp:
        workers = _Workers(cp)
        for expected in (2, 3, 4):
            await workers.burst()  # on the serving client
            started, fetches = clock.now, short_source.fetches
            # To the scheduled refresh; then the warm-up and swap run under a burst.
            await tick_until(clock, lambda f=fetches: short_source.fetches > f, step=0.5)
            during = asyncio.create_task(workers.burst())
            async with asyncio.timeout(15):  # only turns a hang into a failure
                assert await cp.wait_for_generation(expected) == expected
            await during
            assert clock.now - started < 6.0, "rotated before the serving set expired"
        status = cp.status()
        assert workers.failures == [], workers.failures[:1]
        assert status.rotations == 3 and status.dropped_leases == 0 and status.run_retries == 0
        stored = {d["_id"] for d in fake_mongo.storage["db"]["w"].find({}, {"_id": 1})}
        assert set(workers.acked) <= stored and len(workers.acked) == 20 * 3 * 6
        # Every replaced client closed (their closes finish in the background).
        await until(lambda: live_clients() == live0 + 1, pool=cp)
        assert cp.status().draining == ()
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
        with capture_logs() as logs:
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
