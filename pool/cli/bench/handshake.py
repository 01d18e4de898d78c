"""Handshake per environment, and the event-loop stall it causes.

One sample is the time from "a new client is needed" to its first
successful operation: ``AsyncMongoClient(...)`` then ``ping`` (server
discovery, a new connection, ``hello``/``saslStart``/``saslContinue``, the
ping). The client is closed after the clock stops.

* **pool**: the credentials are already in a :class:`pool.CredentialCache`
  (``cache.current``) and are given as ``creds.client_options()``; nothing
  is fetched.
* **pymongo_builtin**: no credentials given (``?authMechanism=MONGODB-AWS``);
  PyMongo asks ``pymongo_auth_aws`` and so boto3's chain, synchronously, on
  the event loop. Its process-wide cache is cleared before each sample, so
  every sample pays the lookup, as every new client does once the cached
  set is within 60 s of expiry or after any authentication failure.

A 1 ms ticker runs throughout; each sample also records the longest gap
between its wake-ups (the loop stall). The endpoints run in another process,
so a blocked loop here cannot stall them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pool.cache import CredentialCache
from pool.cli.bench.setup import BenchSetup
from pool.cli.bench.stats import Recorder, Ticker, ms_recorder
from pool.cli.workload import patched_environ

__all__ = ["HandshakeResult", "bench_handshake"]

WARMUP = 2
_TIMEOUTS: dict[str, Any] = {"serverSelectionTimeoutMS": 10_000, "connectTimeoutMS": 10_000}


@dataclass
class HandshakeResult:
    """Handshake latencies and per-sample loop stalls, in ms, for both contenders."""

    pool: Recorder = field(default_factory=ms_recorder)
    pymongo_builtin: Recorder = field(default_factory=ms_recorder)
    pool_stall: Recorder = field(default_factory=ms_recorder)
    pymongo_builtin_stall: Recorder = field(default_factory=ms_recorder)
    #: What the clients discovered (``"Single"``, ``"ReplicaSetWithPrimary"``...).
    topology_type: str | None = None


async def _timed(ticker: Ticker, make_client: Callable[[], Any]) -> tuple[float, float, str]:
    """(handshake ms, longest loop gap ms, topology type) of one new client; closes it."""
    await ticker.start_window()
    t0 = time.perf_counter()
    client = make_client()
    try:
        await client.admin.command("ping")
        elapsed = (time.perf_counter() - t0) * 1000
        stall = await ticker.end_window()
        kind = str(client.topology_description.topology_type_name)
    finally:
        await client.close()
    return elapsed, stall, kind


async def bench_handshake(
    env: str,
    setup: BenchSetup,
    uri: str,
    samples: int,
    ticker: Ticker,
    advance: Callable[[], None],
) -> HandshakeResult:
    """Alternate ``samples`` handshakes of each contender in ``env``; ``advance()`` per pair."""
    from pymongo import AsyncMongoClient
    from pymongo_auth_aws.auth import set_cached_credentials

    result = HandshakeResult()
    builtin_uri = uri + ("&" if "?" in uri else "?") + "authMechanism=MONGODB-AWS"

    with patched_environ(setup.variables(env)):
        async with CredentialCache(setup.our_source(env), owns_source=True) as cache:
            await cache.get()

            def ours() -> AsyncMongoClient[dict[str, Any]]:
                return AsyncMongoClient(uri, **cache.current.client_options(), **_TIMEOUTS)

            def builtin() -> AsyncMongoClient[dict[str, Any]]:
                return AsyncMongoClient(builtin_uri, **_TIMEOUTS)

            for i in range(WARMUP + samples):
                ours_ms, ours_stall, result.topology_type = await _timed(ticker, ours)
                set_cached_credentials(None)
                builtin_ms, builtin_stall, _ = await _timed(ticker, builtin)
                if i < WARMUP:
                    continue
                result.pool.record(ours_ms)
                result.pool_stall.record(ours_stall)
                result.pymongo_builtin.record(builtin_ms)
                result.pymongo_builtin_stall.record(builtin_stall)
                advance()
    return result
