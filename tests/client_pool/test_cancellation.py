"""Cancellation: a cancelled holder, run() or aclose() never leaks a lease or a client."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import anyio
import anyio.to_thread
import pytest

from pool.cache import CredentialCache
from pool.client_pool.drivers import get_driver, live_clients
from pool.errors import PoolClosedError
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import make_pool, rotate, until


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


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
        assert cp.status().leases == {"1": 1}
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cp.status().leases == {"1": 0}


async def test_cancelled_last_holder_closes_draining_client(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """Cancelling the last holder of a replaced client closes that client at once."""
    async with make_pool(mongo, cache, driver) as cp:
        entered = asyncio.Event()
        task = asyncio.create_task(_hold(cp, entered))
        await entered.wait()
        await rotate(cp, cache)
        assert cp.status().draining == (1,)
        live = live_clients()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cp.status().draining == () and cp.status().dropped_leases == 0
        # The holder's cancellation did not cancel the close it triggered.
        await until(lambda: live_clients() == live - 1, pool=cp)


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
        assert cp.status().leases == {"1": 0}
        assert cp.status().run_retries == 0


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
    await until(lambda: cp.status().state == "closing")
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    await cp.aclose()  # waits for the shielded close to finish
    assert cp.status().state == "closed"
    assert cp.status().dropped_leases == 1
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
    await until(lambda: any(g.state == "warming" for g in cp.status().generations))
    await cp.aclose()
    assert live_clients() == live0
    assert cp.status().generations == ()


async def test_aclose_during_a_client_build_closes_the_built_client(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aclose() cancelling a rotation mid-construction still closes the client being built."""
    live0 = live_clients()
    cp = make_pool(mongo, cache, driver)
    await cp.start()
    adapter = type(cp._rot.driver)
    entered, gate, built_evt = threading.Event(), threading.Event(), threading.Event()
    built: list[Any] = []
    closed: list[Any] = []
    real_new, real_close = adapter._new_client, adapter._close

    def new(self: Any, uri: str, kwargs: dict[str, Any]) -> Any:
        client = real_new(self, uri, kwargs)
        built.append(client)
        built_evt.set()
        return client

    def slow_new(self: Any, uri: str, kwargs: dict[str, Any]) -> Any:
        entered.set()
        gate.wait(10)
        return new(self, uri, kwargs)

    async def recording_close(self: Any, client: Any) -> None:
        closed.append(client)
        await real_close(self, client)

    monkeypatch.setattr(adapter, "_new_client", slow_new)
    monkeypatch.setattr(adapter, "_close", recording_close)
    if driver == "pymongo":  # its constructor runs on the loop: block before it, off the loop

        async def slow_make(self: Any, uri: str, kwargs: dict[str, Any]) -> Any:
            await anyio.to_thread.run_sync(entered.set)
            await anyio.to_thread.run_sync(gate.wait, 10)
            return new(self, uri, kwargs)

        monkeypatch.setattr(adapter, "_make", slow_make)
    await cache.refresh()
    await anyio.to_thread.run_sync(entered.wait, 10)
    closing = asyncio.create_task(cp.aclose())
    await until(lambda: cp.status().state == "closing")  # the rotation is cancelled now
    gate.set()
    await closing
    await anyio.to_thread.run_sync(built_evt.wait, 10)  # the construction has returned
    assert built, "the slow constructor ran"
    assert all(any(c is b for c in closed) for b in built), "a built client was never closed"
    assert live_clients() == live0


async def test_aclose_during_start_stops_it(
    driver: str, mongo: MongoStandIn, cache: CredentialCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aclose() while start() warms: start() raises PoolClosedError; nothing runs or stays open."""
    tasks0, live0 = _other_tasks(), live_clients()
    adapter = type(get_driver(driver))
    warming, gate = asyncio.Event(), asyncio.Event()
    real_warm = adapter.warm

    async def gated_warm(self: Any, handle: Any, *args: Any, **kwargs: Any) -> bool:
        warming.set()
        await gate.wait()
        return await real_warm(self, handle, *args, **kwargs)

    monkeypatch.setattr(adapter, "warm", gated_warm)
    cp = make_pool(mongo, cache, driver, close_timeout=0.2)
    starting = asyncio.create_task(cp.start())
    await warming.wait()
    closing = asyncio.create_task(cp.aclose())
    await until(lambda: cp.status().state != "starting")
    gate.set()  # a warm-up aclose() did not stop would now finish and open the pool
    with pytest.raises(PoolClosedError, match="aclose"):
        await starting
    await closing
    assert cp.status().state == "closed" and not cp.status().ready
    assert live_clients() == live0
    await until(lambda: _other_tasks() <= tasks0)


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout", "anyio.CancelScope"])
async def test_aclose_cancelled_mid_close_still_closes_every_client(
    driver: str,
    mongo: MongoStandIn,
    cache: CredentialCache,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    """However aclose() is cancelled while a client's close() runs (native task.cancel(),
    an enclosing asyncio.timeout(), an anyio scope), every client is closed before the
    cancellation reaches the caller, and a second aclose() has nothing left to do."""
    live0 = live_clients()
    adapter = type(get_driver(driver))
    entered, gate = asyncio.Event(), asyncio.Event()
    real_close = adapter._close

    async def gated_close(self: Any, client: Any) -> None:
        entered.set()
        await gate.wait()
        await real_close(self, client)

    cp = make_pool(mongo, cache, driver)
    await cp.start()
    await rotate(cp, cache)  # two generations' worth of closing
    monkeypatch.setattr(adapter, "_close", gated_close)
    outcome: list[str] = []

    async def closer() -> None:
        if how == "asyncio.timeout":
            try:
                async with asyncio.timeout(None) as scope:
                    timeouts.append(scope)
                    await cp.aclose()
            except TimeoutError:
                outcome.append("timeout")
        elif how == "anyio.CancelScope":
            with anyio.CancelScope() as scope:
                scopes.append(scope)
                await cp.aclose()
            outcome.append("cancelled" if scope.cancelled_caught else "finished")
        else:
            await cp.aclose()

    timeouts: list[asyncio.Timeout] = []
    scopes: list[anyio.CancelScope] = []
    task = asyncio.create_task(closer())
    await entered.wait()
    if how == "asyncio.timeout":
        timeouts[0].reschedule(asyncio.get_running_loop().time())
    elif how == "anyio.CancelScope":
        scopes[0].cancel()
    else:
        task.cancel()
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done(), "the cancellation waits for the close in progress"
    gate.set()
    if how == "task.cancel":
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        await task
        assert outcome == ["timeout" if how == "asyncio.timeout" else "cancelled"]
    assert live_clients() == live0, "every client closed before the cancellation arrived"
    assert cp.status().state == "closed" and cp.status().generations == ()
    async with asyncio.timeout(5):  # only turns a hang into a failure
        await cp.aclose()
