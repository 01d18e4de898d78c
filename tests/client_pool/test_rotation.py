"""Rotation on both drivers: under load, with cursors and sessions, failed warm-ups, deadlines."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from pymongo.errors import InvalidOperation, NetworkTimeout

from pool.cache import CredentialCache
from pool.client_pool.drivers import is_client_closed, live_clients
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import MintingSource, make_pool, rotate, start_session, until
from tests.fakes import FakeClock

WORKERS = 200
ROTATIONS = 10
# Each worker pauses between its operations so that the stand-in (mongomock on
# one thread, sharing the GIL with the clients) is not saturated: a saturated
# server turns every round trip, warm-up included, into a queue of seconds and
# the test would measure the stand-in. ~20 operations stay in flight at once.
THINK = (0.4, 0.8)
SERVER_DELAY = 0.02


class _Load:
    """WORKERS tasks inserting and reading back, half through run(), half through client()."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.acked: list[str] = []
        self.failures: list[BaseException] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._worker(i)) for i in range(WORKERS)]

    async def _worker(self, i: int) -> None:
        n = 0
        while not self._stop.is_set():
            doc: dict[str, Any] = {"_id": f"{i}-{n}", "w": i}
            n += 1
            try:
                if i % 2:  # half through run(), without retries so none is masked
                    await self.cp.run(lambda c, d=doc: c.db.load.insert_one(d), retry=False)
                else:
                    async with self.cp.client() as c:
                        await c.db.load.insert_one(doc)
                self.acked.append(doc["_id"])
                async with self.cp.client() as c:
                    found = await c.db.load.find_one({"_id": doc["_id"]})
                assert found is not None and found["w"] == i
            except Exception as exc:
                self.failures.append(exc)
            await asyncio.sleep(random.uniform(*THINK))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    def check(self, mongo: MongoStandIn, status: dict[str, Any], rotations: int) -> None:
        failures = self.failures
        assert failures == [], f"{len(failures)} failed operations, first: {failures[:1]!r}"
        assert status.rotations >= rotations
        assert status.dropped_leases == 0
        stored = {d["_id"] for d in mongo.storage["db"]["load"].find({}, {"_id": 1})}
        lost = set(self.acked) - stored
        assert not lost, f"{len(lost)} acknowledged inserts lost"
        assert len(self.acked) > WORKERS


@pytest.mark.slow
async def test_rotation_under_load(
    driver: str, authority: CredentialAuthority, threaded_mongo: MongoStandIn
) -> None:
    """200 workers insert and read through 10+ rotations: no failure, no lost write."""
    source = MintingSource(authority, lifetime=10.0)
    threaded_mongo.command_delay = SERVER_DELAY
    async with (
        CredentialCache(source) as cache,
        make_pool(threaded_mongo, cache, driver, warm_connections=4) as cp,
    ):
        load = _Load(cp)
        while cp.status().rotations < ROTATIONS and not load.failures:
            mark = len(load.acked)
            await until(lambda m=mark: len(load.acked) >= m + 50)  # real traffic between swaps
            await rotate(cp, cache)
        await load.stop()
        status = cp.status()
    load.check(threaded_mongo, status, ROTATIONS)


async def test_cursor_survives_two_rotations(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A cursor opened before two rotations reads every document after them."""
    async with make_pool(mongo, cache, driver) as cp:
        await cp.run(lambda c: c.db.items.insert_many([{"_id": i} for i in range(60)]))
        seen: list[int] = []
        async with cp.client() as client:
            cursor = client.db.items.find({}, batch_size=5).sort("_id", 1)
            async for doc in cursor:
                seen.append(doc["_id"])
                if len(seen) in (7, 23):  # mid-batch: the next getMore comes after a swap
                    first = cp.status().generations[0].number
                    await rotate(cp, cache)
                    assert first in cp.status().draining, "old client kept open for us"
        assert seen == list(range(60))
        await until(lambda: cp.status().draining == (), pool=cp)
        assert cp.status().dropped_leases == 0


async def test_session_opened_before_rotation_completes(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A session started before a rotation keeps working on its own client until done."""
    async with make_pool(mongo, cache, driver) as cp, cp.client() as client:
        session = await start_session(client)
        async with session:
            await client.db.s.insert_one({"_id": 1}, session=session)
            await rotate(cp, cache)
            await rotate(cp, cache)
            await client.db.s.insert_one({"_id": 2}, session=session)
            docs = await client.db.s.find({}, session=session).to_list(None)
        assert [d["_id"] for d in docs] == [1, 2]
        assert cp.status().draining == (1,), "the session's client stayed open"


async def test_warmup_failure_keeps_serving_then_recovers(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Refused new credentials: traffic stays on the old client, error in status, then recovery."""
    async with make_pool(mongo, cache, driver) as cp:
        first = cp.status().generation
        # Only the new credentials are refused: the serving client may still open
        # connections (PyMongo's minPoolSize fill does, in the background).
        mongo.reject_auth(True, except_keys={cache.current.access_key_id})
        await cache.refresh()
        await until(lambda: cp.status().warmup_failures >= 2, pool=cp)
        status = cp.status()
        assert status.generation == first and status.ready
        assert "refused" in status.last_warmup_error.message
        for i in range(20):  # the old client's authenticated connections still serve
            await cp.run(lambda c, i=i: c.db.w.insert_one({"_id": i}))
        mongo.reject_auth(False)
        await until(lambda: cp.status().generation != first, pool=cp)
        status = cp.status()
        assert status.warmup_failures_in_a_row == 0 and status.rotations == 1
        assert await cp.run(lambda c: c.db.w.count_documents({})) == 20


async def test_lease_past_deadline_is_dropped_and_client_closed(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, clock: FakeClock
) -> None:
    """A lease held past the drain deadline is counted as dropped; its client is closed."""
    async with make_pool(mongo, cache, driver, drain_timeout=20.0, clock=clock) as cp:
        held = asyncio.Event()
        release = asyncio.Event()
        errors: list[BaseException] = []

        async def holder() -> None:
            async with cp.client() as client:
                held.set()
                await release.wait()
                try:
                    await client.db.x.find_one({})
                except Exception as exc:
                    errors.append(exc)

        task = asyncio.create_task(holder())
        await held.wait()
        await rotate(cp, cache)
        clock.advance(20.0)  # the drain bound, on the pool's clock (fires its timer)
        clients = live_clients()
        await until(lambda: cp.status().dropped_leases == 1, pool=cp)
        assert cp.status().draining == ()
        await until(lambda: live_clients() == clients - 1, pool=cp)  # the close has finished
        release.set()
        await task
        assert len(errors) == 1 and is_client_closed(errors[0]), errors
        assert isinstance(errors[0], InvalidOperation)


async def test_run_retries_once_on_newer_client_after_drop(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, clock: FakeClock
) -> None:
    """run() whose client was closed under it at the deadline succeeds on the new client."""
    async with make_pool(mongo, cache, driver, drain_timeout=20.0, clock=clock) as cp:
        await cp.run(lambda c: c.db.r.insert_one({"_id": 1}))
        entered = asyncio.Event()
        go = asyncio.Event()
        calls: list[int] = []

        async def op(client: Any) -> Any:
            calls.append(id(client))
            if len(calls) == 1:
                entered.set()
                await go.wait()
            return await client.db.r.find_one({"_id": 1})

        task = asyncio.create_task(cp.run(op))
        await entered.wait()
        await rotate(cp, cache)
        clock.advance(20.0)  # the drain bound, on the pool's clock (fires its timer)
        clients = live_clients()
        await until(lambda: cp.status().dropped_leases == 1, pool=cp)
        await until(lambda: live_clients() == clients - 1, pool=cp)
        go.set()
        assert await task == {"_id": 1}
        assert len(calls) == 2 and calls[0] != calls[1]
        assert cp.status().run_retries == 1


async def test_run_does_not_retry_other_errors_on_a_dropped_client(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, clock: FakeClock
) -> None:
    """A network timeout on a client closed at its deadline is raised, not retried: the
    write may have been applied (a retried $inc would count twice)."""
    async with make_pool(mongo, cache, driver, drain_timeout=20.0, clock=clock) as cp:
        entered, go = asyncio.Event(), asyncio.Event()
        calls: list[int] = []

        async def op(client: Any) -> Any:
            calls.append(id(client))
            entered.set()
            await go.wait()
            raise NetworkTimeout("timed out waiting for the $inc reply")

        task = asyncio.create_task(cp.run(op))
        await entered.wait()
        await rotate(cp, cache)
        clock.advance(20.0)  # the drain bound, on the pool's clock (fires its timer)
        await until(lambda: cp.status().dropped_leases == 1, pool=cp)  # op's client closed under it
        go.set()
        with pytest.raises(NetworkTimeout):
            await task
        assert len(calls) == 1 and cp.status().run_retries == 0


async def test_slow_warmup_swaps_partially_before_expiry(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the serving credentials are due, the new client swaps in once authenticated."""
    import pool.client_pool.rotation

    async with make_pool(mongo, cache, driver, warm_connections=50) as cp:
        monkeypatch.setattr(pool.client_pool.rotation, "swap_by", lambda creds: time.monotonic())
        await rotate(cp, cache)
        status = cp.status()
        assert status.partial_warmups == 1
        assert status.generations[0].connections.open < 50
        assert await cp.run(lambda c: c.db.p.insert_one({"_id": 1}))
