"""Helpers for the client pool tests (imported by name: a module called ``conftest``
is ambiguous when several test folders have one)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from pymongo import WriteConcern

from pool import ClientPool
from pool.cache import CredentialCache
from pool.credentials import Credentials
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn

# Short driver timeouts keep a failing test quick instead of hanging on 30 s defaults.
FAST = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000}


class MintingSource:
    """A credential source minting a fresh set from the authority on every fetch.

    ``lifetime`` is in seconds (real time: the stand-in checks expiry on the
    wall clock). ``minted`` keeps every set handed out, so tests can look for
    secrets in logs and statuses. ``closed`` records ``aclose()``.
    """

    name = "test"

    def __init__(self, authority: CredentialAuthority, lifetime: float = 30.0) -> None:
        self.authority = authority
        self.lifetime = lifetime
        self.fetches = 0
        self.minted: list[Credentials] = []
        self.closed = False

    async def fetch(self) -> Credentials:
        self.fetches += 1
        issued = self.authority.mint(lifetime=self.lifetime)
        creds = Credentials(
            access_key_id=issued.access_key_id,
            secret_access_key=issued.secret_access_key,
            session_token=issued.session_token,
            expiration=issued.expiration,
            source="test",
        )
        self.minted.append(creds)
        return creds

    async def aclose(self) -> None:
        self.closed = True

    def secrets(self) -> list[str]:
        out: list[str] = []
        for c in self.minted:
            out.append(c.secret_access_key)
            if c.session_token:
                out.append(c.session_token)
        return out


def make_pool(mongo: MongoStandIn, cache: Any, driver: str, **kwargs: Any) -> ClientPool[Any]:
    """A pool on the stand-in with short driver timeouts."""
    return ClientPool(mongo.uri, credentials=cache, driver=driver, **{**FAST, **kwargs})


async def until(
    predicate: Callable[[], bool], timeout: float = 15.0, *, pool: ClientPool[Any] | None = None
) -> None:
    """Wait for a condition the code under test brings about asynchronously.

    With ``pool``, event-driven: re-checks only when that pool wakes its
    waiters (a swap, a failed warm-up, a closed generation), for conditions
    on its status and its clients. Without, it polls (for conditions with no
    event: the stand-in's counters, task sets). The timeout only turns a hang
    into a failure.
    """
    async with asyncio.timeout(timeout):
        if pool is None:
            while not predicate():
                await asyncio.sleep(0.005)
            return
        rot = pool._rot
        while not predicate():
            waits = [asyncio.ensure_future(e.wait()) for e in (rot._progress, rot._gen_closed)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


async def rotate(cp: ClientPool[Any], cache: CredentialCache, timeout: float = 15.0) -> int:
    """Force one rotation (new credentials from the source) and wait for the swap."""
    before = cp.status().generation or 0
    await cache.refresh()
    async with asyncio.timeout(timeout):  # only turns a hang into a failure
        return await cp.wait_for_generation(before + 1)


def on_fake_clock(monkeypatch: pytest.MonkeyPatch, fake: Any) -> None:
    """Make :class:`pool.Credentials` pin expiry times on ``fake`` instead of the system clock.

    ``Credentials`` reads ``SYSTEM_CLOCK`` once, at construction (a source
    knows no other clock); with it on the fake clock, a set minted by an
    authority on ``fake.time`` expires exactly when the fake clock says so,
    for the cache and the pool alike.
    """
    import pool.credentials

    monkeypatch.setattr(pool.credentials, "SYSTEM_CLOCK", fake)


async def rotations_done(cp: ClientPool[Any]) -> None:
    """Wait (on the pool's own wake-ups, no polling) until no warm-up is under way."""
    rot = cp._rot
    async with asyncio.timeout(15):  # only turns a hang into a failure
        while rot._rotating:
            await rot._progress.wait()


async def tick_until(
    clock: Any,
    condition: Callable[[], bool],
    *,
    step: float = 0.1,
    limit: float = 120.0,
    pool: ClientPool[Any] | None = None,
) -> None:
    """Move the fake clock forward ``step`` at a time until ``condition()`` holds.

    Each step fires the timers due and lets every task react (``run_until``);
    with ``pool``, a warm-up started by a step (real I/O) finishes before the
    clock moves on, as it would in a real second. ``limit`` (fake seconds)
    only turns a hang into a failure.
    """
    end = clock.now + limit
    while not condition():
        if clock.now >= end:
            raise AssertionError(f"condition not reached within {limit} fake seconds")
        await clock.run_until(clock.now + step)
        if pool is not None:
            await rotations_done(pool)


async def next_rotation(cp: ClientPool[Any], clock: Any, source: Any, **tick: Any) -> int:
    """Move the fake clock to the cache's next scheduled refresh, then wait for the swap.

    The warm-up is real I/O against the stand-in: the fake clock stands
    still while it runs (the real-time timeout only turns a hang into a failure).
    """
    target = (cp.status().generation or 0) + 1
    fetches = source.fetches
    await tick_until(clock, lambda: source.fetches > fetches, pool=cp, **tick)
    async with asyncio.timeout(15):
        return await cp.wait_for_generation(target)


async def start_session(client: Any) -> Any:
    """``client.start_session()`` on either driver (Motor's is a coroutine)."""
    session = client.start_session()
    if inspect.isawaitable(session):
        session = await session
    return session


def pymongo_threads() -> set[threading.Thread]:
    """PyMongo's background threads (Motor's clients' monitors and periodic tasks)."""
    return {t for t in threading.enumerate() if t.name.startswith("pymongo_")}


def load_example(name: str) -> Any:
    """Import ``examples/<name>.py`` as a fresh module (examples are scripts, not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with a real uvicorn server on 127.0.0.1, any free port; yield its URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started or task.done())
        if task.done():
            task.result()  # startup failed: raise its error
            raise AssertionError("uvicorn stopped during startup")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class Writers:
    """Workers inserting (w:"majority") through cp.run() until stopped; acked ids kept.

    The documents go to collection ``acked``; ``failures`` holds every error.
    """

    def __init__(self, cp: Any, workers: int = 10) -> None:
        self.cp = cp
        self.acked: list[str] = []
        self.failures: list[BaseException] = []
        self.progress = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._worker(w)) for w in range(workers)]

    async def _worker(self, w: int) -> None:
        n = 0
        while not self._stop.is_set():
            doc = {"_id": f"{w}-{n}"}
            n += 1
            try:
                await self.cp.run(
                    lambda c, d=doc: c.db.get_collection(
                        "acked", write_concern=WriteConcern("majority")
                    ).insert_one(dict(d))
                )
                self.acked.append(doc["_id"])
                self.progress.set()
            except Exception as exc:
                self.failures.append(exc)
            await asyncio.sleep(0)

    async def wait_progress(self, ops: int) -> None:
        target = len(self.acked) + ops
        while len(self.acked) < target:
            self.progress.clear()
            await self.progress.wait()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
