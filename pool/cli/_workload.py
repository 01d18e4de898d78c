"""Pieces the demo and the benchmarks share: a timed source, a handshake
listener, a realistic insert/find workload that proves no acknowledged write
is lost, and percentile summaries.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring

from ..credentials import Credentials
from ..sources import aclose_source

DB = "pooldemo"
COLLECTION = "events"


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    """p50/p95/p99/max and n of ``values`` (nearest-rank, exact); zeros when empty."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "n": 0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {
        "p50": round(rank(50), 3),
        "p95": round(rank(95), 3),
        "p99": round(rank(99), 3),
        "max": round(ordered[-1], 3),
        "n": len(ordered),
    }


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
    """Replace every ``AWS_*`` variable with ``values`` for the duration; restore after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(values)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            del os.environ[key]
        os.environ.update(saved)


@dataclass
class Workload:
    """``workers`` tasks alternating an insert and a find of what they inserted.

    ``pause`` seconds between a worker's rounds stand for the rest of a
    request's work; without it the client's CPU saturates and every latency
    measured in the process (credential fetches included) is queueing.

    Every insert the server acknowledged is remembered, so :meth:`missing`
    can prove afterwards that nothing acknowledged was lost.
    """

    pool: Any
    tag: str
    workers: int = 32
    pause: float = 0.0
    ops: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    latencies_ms: list[tuple[float, float]] = field(default_factory=list)

    async def _worker(self, number: int, stop: asyncio.Event) -> None:
        coll_name = COLLECTION
        seq = 0
        while not stop.is_set():
            doc_id = f"{self.tag}-{number}-{seq}"
            seq += 1
            for op in ("insert", "find"):
                t0 = time.perf_counter()
                try:
                    if op == "insert":
                        await self.pool.run(
                            lambda c, d=doc_id: c[DB][coll_name].insert_one(
                                {"_id": d, "tag": self.tag, "worker": number}
                            )
                        )
                        self.acknowledged.append(doc_id)
                    else:
                        await self.pool.run(
                            lambda c, d=doc_id: c[DB][coll_name].find_one({"_id": d})
                        )
                except Exception as exc:  # counted and shown, never hidden
                    self.failed += 1
                    self.errors[type(exc).__name__] += 1
                    break
                self.ops += 1
                self.latencies_ms.append((time.monotonic(), (time.perf_counter() - t0) * 1000))
            if self.pause:
                await asyncio.sleep(self.pause)

    async def run_until(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as tg:
            for n in range(self.workers):
                tg.create_task(self._worker(n, stop))

    async def missing(self) -> int:
        """How many acknowledged inserts the server no longer has."""

        async def ids(client: Any) -> set[str]:
            cursor = client[DB][COLLECTION].find({"tag": self.tag}, {"_id": 1})
            return {doc["_id"] async for doc in cursor}

        present: set[str] = await self.pool.run(ids)
        return len(set(self.acknowledged) - present)
