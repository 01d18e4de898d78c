"""``max_connections_per_member`` and ``warm_spread`` at their edges (a red-team pass's cases).

Counted at the server: ``authenticated_peak`` is the most authenticated
(application) connections open at once; the stand-in is one standalone, so
per member == per server. ``gate_finds`` holds every ``find`` on collection
``hold`` until released, so a test keeps connections checked out on purpose.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

from pool.cache import CredentialCache
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import make_pool, rotate, until
from tests.fakes import FakeClock
from tests.standins.net_guard import *  # noqa: F403


def gate_finds(server: MongoStandIn, collection: str = "hold") -> tuple[asyncio.Event, list[int]]:
    """Make the stand-in hold every ``find`` on ``collection`` until the event is set."""
    gate, held = asyncio.Event(), [0]
    original = server._apply_faults

    async def apply(request: Any, reader: Any) -> Any:
        if request.body.get("find") == collection:
            held[0] += 1
            try:
                await gate.wait()
            finally:
                held[0] -= 1
        return await original(request, reader)

    server._apply_faults = apply  # type: ignore[method-assign]
    return gate, held


def hold(cp: Any) -> Any:
    return cp.run(lambda c: c.db.hold.find_one({}))


def reset_peak(server: MongoStandIn) -> None:
    server.stats.authenticated_peak = server.stats.authenticated_open


async def test_warm_up_counts_every_open_client_not_only_the_serving_one(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Generation 1 still draining (held), 2 serving, 3 warming: 3's warm-up counts 1's too."""
    async with make_pool(
        mongo, cache, driver, warm_connections=2, maxPoolSize=4,
        max_connections_per_member=5, warm_spread=0,
    ) as cp:  # fmt: skip
        async with cp.client():  # keeps generation 1 (2 connections) open
            await rotate(cp, cache)  # generation 2 warms min(2, 5 - 2) = 2
            reset_peak(mongo)
            await rotate(cp, cache)  # generation 3 warms what is left next to 1 and 2: 1
            peak = mongo.stats.authenticated_peak
    assert peak <= 5, f"{peak} authenticated connections at once, cap 5"


async def test_leases_on_the_serving_client_during_a_paced_warm_up_leave_room_for_it(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A paced warm-up's whole target is reserved: leases on the serving client admitted
    meanwhile leave room for the connections it has not opened yet (5 of 6 admitted)."""
    clock = FakeClock()
    gate, held = gate_finds(mongo)
    async with make_pool(
        mongo, cache, driver, warm_connections=3, maxPoolSize=7,
        max_connections_per_member=8, warm_spread=1.0, clock=clock,
    ) as cp:  # fmt: skip
        serving = cp._book.current
        await cache.refresh()
        await until(lambda: len(cp._book.generations) == 2)
        warming = cp._book.generations[-1]
        # Paced: ping + one step = 2 ready, then a 1/3 s pause on the fake clock.
        await until(lambda: warming.handle.monitor.ready == 2 and clock.next_timer is not None)
        assert warming.handle.reserved == 3  # 3 fit next to the serving client's 3
        reset_peak(mongo)
        tasks = [asyncio.create_task(hold(cp)) for _ in range(6)]
        await until(lambda: held[0] == 5 and cp._budget is not None and cp._budget.waiting == 1)
        await clock.run_until(clock.now + 0.34)  # the warm-up opens its third
        await until(lambda: warming.handle.monitor.ready == 3)
        peak = mongo.stats.authenticated_peak
        gate.set()
        await asyncio.gather(*tasks)
        while cp._book.current is serving:
            await clock.run_until(clock.now + 0.5)
    assert peak <= 8, f"{peak} authenticated connections at once, cap 8"


async def test_leases_already_held_on_the_old_client_are_counted(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Five leases held idle on the old client (2 connections open) through a rotation, then
    each running one operation: the new client's warm-up left room for them."""
    gate, held = gate_finds(mongo)
    async with make_pool(
        mongo, cache, driver, warm_connections=2, maxPoolSize=5,
        max_connections_per_member=6, warm_spread=0,
    ) as cp:  # fmt: skip
        async with AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(cp.client()) for _ in range(5)]
            await rotate(cp, cache)  # the 5 leases may open 5: the new client warms 1
            reset_peak(mongo)
            tasks = [asyncio.ensure_future(c.db.hold.find_one({})) for c in clients]
            await until(lambda: held[0] == 5)
            peak = mongo.stats.authenticated_peak
            gate.set()
            await asyncio.gather(*tasks)
    assert peak <= 6, f"{peak} authenticated connections at once, cap 6"


async def test_a_nested_lease_under_the_cap_does_not_deadlock(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """U holds the old client and calls cp.run(); T holds two leases on the new one and calls
    cp.run(): a task already holding a lease is admitted at once, so neither waits on the other."""
    async with make_pool(
        mongo, cache, driver, warm_connections=2, maxPoolSize=3,
        max_connections_per_member=4, warm_spread=0,
    ) as cp:  # fmt: skip
        t_holds, done = asyncio.Event(), []

        async def u() -> None:
            async with cp.client():  # generation 1
                await t_holds.wait()
                await cp.run(lambda c: c.db.t.find_one({}))
                done.append("u")

        async def t() -> None:
            async with cp.client(), cp.client():  # generation 2: 2 leases, 2 connections
                t_holds.set()
                await cp.run(lambda c: c.db.t.find_one({}))
                done.append("t")

        task_u = asyncio.create_task(u())
        await until(lambda: cp._book.current is not None and cp._book.current.leases == 1)
        await rotate(cp, cache)
        try:
            async with asyncio.timeout(5):  # only turns the hang into a failure
                await asyncio.gather(task_u, t())
        finally:
            task_u.cancel()
    assert sorted(done) == ["t", "u"]


async def test_a_full_serving_client_leaves_room_for_the_next_ones_ping(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """The serving client at maxPoolSize with every connection in use: the next client warms
    the one connection the cap keeps free (cap = maxPoolSize + 1), no more."""
    gate, held = gate_finds(mongo)
    async with make_pool(
        mongo, cache, driver, warm_connections=2, maxPoolSize=4,
        max_connections_per_member=5, warm_spread=0,
    ) as cp:  # fmt: skip
        tasks = [asyncio.create_task(hold(cp)) for _ in range(4)]
        await until(lambda: held[0] == 4)
        await rotate(cp, cache)
        peak = mongo.stats.authenticated_peak
        gate.set()
        await asyncio.gather(*tasks)
    assert peak <= 5, f"{peak} authenticated connections at once, cap 5"


async def test_warm_connections_zero_stays_zero_under_a_cap(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """warm_connections=0 with a cap stays 0 (the cap never raises a warm-up)."""
    async with make_pool(
        mongo,
        cache,
        driver,
        warm_connections=0,
        maxPoolSize=4,
        max_connections_per_member=5,
        warm_spread=0,
    ) as cp:
        assert cp._rot._warm_target(cp._book.current, cp._book.current) == 0


async def test_an_unpaced_warm_up_opens_exactly_warm_connections(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """warm_connections=3 unpaced (the first client): exactly 3, not maxConnecting - 1 more."""
    async with make_pool(mongo, cache, driver, warm_connections=3, warm_spread=0) as cp:
        ready = cp._book.current.handle.monitor.ready
    assert ready == 3, f"{ready} connections for warm_connections=3"


async def test_a_paced_warm_up_stops_pacing_once_the_serving_client_is_refused(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A routine (paced) warm-up under way when the serving client's credentials are refused
    stops pacing: the fake clock stands still and the swap still happens on real I/O alone."""
    from pymongo.errors import OperationFailure

    clock = FakeClock()
    async with make_pool(
        mongo, cache, driver, warm_connections=4, warm_spread=2.0, clock=clock
    ) as cp:
        serving = cp._book.current
        await cache.refresh()
        await until(lambda: len(cp._book.generations) == 2)
        warming = cp._book.generations[-1]
        await until(lambda: warming.handle.monitor.ready >= 2 and clock.next_timer is not None)
        # The serving client's next connection is refused (code 18), reported by a lease:
        cp._report(serving, OperationFailure("Authentication failed.", code=18))
        assert serving.auth_failure_reported and cp._rot._spread_for(serving) == 0.0
        try:
            # The fake clock stands still: an unpaced warm-up finishes on real I/O alone.
            await until(lambda: cp._book.current is not serving, timeout=3)
        finally:
            while cp._book.current is serving:
                await clock.run_until(clock.now + 0.5)


async def test_a_closing_client_is_counted_from_the_moment_it_leaves_the_book(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """The last lease on a draining client removes it from the book: it counts as closing
    from that instant, so a lease started before its close task runs is still capped."""
    async with make_pool(
        mongo, cache, driver, warm_connections=2, maxPoolSize=3,
        max_connections_per_member=4, warm_spread=0,
    ) as cp:  # fmt: skip
        lease = cp.client()
        await lease.__aenter__()
        old = cp._book.current
        await rotate(cp, cache)
        released, seen = asyncio.Event(), []
        original = cp._book.release_gen

        def release_gen(gen: Any) -> Any:
            out = original(gen)
            if out:
                released.set()
            return out

        cp._book.release_gen = release_gen  # type: ignore[method-assign]

        async def probe() -> None:
            await released.wait()
            capped_path = len(cp._book.generations) > 1 or bool(cp._rot.closing)
            seen.append((capped_path, old.handle.monitor.ready))

        task = asyncio.create_task(probe())
        await asyncio.sleep(0)
        await lease.__aexit__(None, None, None)
        await task
    capped_path, old_open = seen[0]
    assert capped_path or old_open == 0, f"hot path taken with {old_open} old connections open"
