"""Cancellation: a cancelled holder, run() or aclose() never leaks a lease or a client."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pool_helpers import make_pool, rotate, until

from pool.cache import CredentialCache
from pool.drivers import live_clients
from pool.standins.mongo.server import MongoStandIn


async def _hold(cp: Any, entered: asyncio.Event) -> None:
    async with cp.client() as client:
        await client.admin.command("ping")
        entered.set()
        await asyncio.Event().wait()  # until cancelled


async def test_cancelled_holder_releases_its_lease(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Cancelling a task inside `async with cp.client()` returns its lease."""
    async with make_pool(mongo, cache, driver) as cp:
        entered = asyncio.Event()
        task = asyncio.create_task(_hold(cp, entered))
        await entered.wait()
        assert cp.status()["leases"] == {"1": 1}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cp.status()["leases"] == {"1": 0}


async def test_cancelled_last_holder_closes_draining_client(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Cancelling the last holder of a replaced client closes that client at once."""
    async with make_pool(mongo, cache, driver) as cp:
        entered = asyncio.Event()
        task = asyncio.create_task(_hold(cp, entered))
        await entered.wait()
        await rotate(cp, cache)
        assert cp.status()["draining"] == [1]
        live = live_clients()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cp.status()["draining"] == [] and cp.status()["dropped_leases"] == 0
        # The holder's cancellation did not cancel the close it triggered.
        await until(lambda: live_clients() == live - 1)


async def test_cancelled_run_releases_its_lease(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Cancelling run() while its operation waits releases the lease, with no retry."""
    async with make_pool(mongo, cache, driver) as cp:
        entered = asyncio.Event()

        async def op(client: Any) -> None:
            entered.set()
            await asyncio.Event().wait()

        task = asyncio.create_task(cp.run(op))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cp.status()["leases"] == {"1": 0}
        assert cp.status()["run_retries"] == 0


async def test_cancelled_aclose_still_closes_everything(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Cancelling aclose() while it waits for a lease closes every client anyway."""
    live0 = live_clients()
    cp = make_pool(mongo, cache, driver)
    await cp.start()
    entered = asyncio.Event()
    holder = asyncio.create_task(_hold(cp, entered))
    await entered.wait()
    closing = asyncio.create_task(cp.aclose())
    await until(lambda: cp.status()["state"] == "closing")
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await cp.aclose()  # waits for the shielded close to finish
    assert cp.status()["state"] == "closed"
    assert cp.status()["dropped_leases"] == 1
    assert live_clients() == live0
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_aclose_during_warmup_closes_the_warming_client(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """aclose() while a new client warms cancels the warm-up and closes that client too."""
    live0 = live_clients()
    cp = make_pool(mongo, cache, driver)
    await cp.start()
    mongo.faults.add("mongo:saslStart:hang")
    await cache.refresh()
    await until(lambda: any(g["state"] == "warming" for g in cp.status()["generations"]))
    await cp.aclose()
    assert live_clients() == live0
    assert cp.status()["generations"] == []
