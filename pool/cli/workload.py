"""Pieces the demo and the benchmarks share: a timed source, a handshake
listener, and a realistic insert/find workload that proves no acknowledged
write is lost.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring

from pool.credentials import Credentials
from pool.sources import aclose_source

DB = "pooldemo"
COLLECTION = "events"


class TimedSource:
    """Delegates to ``source`` and records each fetch's duration in milliseconds."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.name: str = source.name
        self.fetch_ms: list[float] = []
        self.failures = 0

    async def fetch(self) -> Credentials:
        t0 = time.perf_counter()
        try:
            creds: Credentials = await self.source.fetch()
        except BaseException:
            self.failures += 1
            raise
        self.fetch_ms.append((time.perf_counter() - t0) * 1000)
        return creds

    async def aclose(self) -> None:
        await aclose_source(self.source)


class HandshakeListener(monitoring.ConnectionPoolListener):
    """Records how long each new connection took to become ready.

    PyMongo's ``ConnectionReadyEvent.duration`` spans TCP connect, ``hello``,
    ``saslStart`` and ``saslContinue``: the MONGODB-AWS handshake.
    """

    def __init__(self) -> None:
        self.handshake_ms: list[float] = []
        self.checkout_failures = 0

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        if event.duration is not None:
            self.handshake_ms.append(event.duration * 1000)

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        self.checkout_failures += 1

    # The rest of the interface: nothing to record.
    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None: ...
    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None: ...
    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None: ...
    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None: ...
    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None: ...
    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None: ...
    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None: ...
    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None: ...
    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None: ...


@contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Replace every ``AWS_*`` variable (and any other key in ``values``, such as a
    laptop's ``HOME``) with ``values`` for the duration; restore after."""
    keys = {k for k in os.environ if k.startswith("AWS_")} | set(values)
    saved = {k: os.environ[k] for k in keys if k in os.environ}
    for key in keys:
        os.environ.pop(key, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("AWS_") or k in values]:
            del os.environ[key]
        os.environ.update(saved)


Op = Callable[[Any], Awaitable[Any]]


@dataclass
class Workload:
    """``workers`` tasks alternating an insert and a find of what they inserted.

    ``run(op)`` performs one operation ``op(client)`` on whatever client the
    caller chooses (``ClientPool.run``, a lease, a naive client). ``pause``
    seconds between a worker's rounds stand for the rest of a request's work;
    without it the client's CPU saturates and every latency measured in the
    process (credential fetches included) is queueing. Every insert the server
    acknowledged is remembered, so :meth:`missing` can prove afterwards that
    nothing acknowledged was lost; ``samples`` holds ``(start, seconds)`` of
    each successful operation on the monotonic clock.
    """

    run: Callable[[Op], Awaitable[Any]]
    tag: str
    workers: int = 32
    pause: float = 0.0
    db: str = DB
    collection: str = COLLECTION
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    samples: list[tuple[float, float]] = field(default_factory=list)

    @property
    def ops(self) -> int:
        """Operations that succeeded."""
        return len(self.samples)

    async def _timed(self, op: Op) -> bool:
        started = time.monotonic()
        try:
            await self.run(op)
        except Exception as exc:  # counted and shown, never hidden
            self.failed += 1
            self.errors[type(exc).__name__] += 1
            return False
        self.samples.append((started, time.monotonic() - started))
        return True

    def _insert(self, doc: dict[str, Any]) -> Op:
        async def op(client: Any) -> Any:
            return await client[self.db][self.collection].insert_one(doc)

        return op

    def _find(self, doc_id: str) -> Op:
        async def op(client: Any) -> Any:
            return await client[self.db][self.collection].find_one({"_id": doc_id})

        return op

    async def _worker(self, number: int, stop: asyncio.Event) -> None:
        seq = 0
        while not stop.is_set():
            doc_id = f"{self.tag}-{number}-{seq}"
            seq += 1
            doc = {"_id": doc_id, "tag": self.tag, "worker": number}
            if await self._timed(self._insert(doc)):
                self.acknowledged.append(doc_id)
                await self._timed(self._find(doc_id))
            if self.pause:
                await asyncio.sleep(self.pause)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run every worker until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            for n in range(self.workers):
                tg.create_task(self._worker(n, stop))

    async def missing(self, run: Callable[[Op], Awaitable[Any]] | None = None) -> int:
        """How many acknowledged inserts the server no longer has (read through ``run``)."""

        async def ids(client: Any) -> set[str]:
            coll = client[self.db][self.collection]
            return {doc["_id"] async for doc in coll.find({"tag": self.tag}, {"_id": 1})}

        present: set[str] = await (run or self.run)(ids)
        return len(set(self.acknowledged) - present)
