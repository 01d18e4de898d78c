"""The lease hot path: ``async with cp.client()`` and ``await cp.run(fn)``, side by side.

Every contender runs one batch of ``BATCH`` calls per round, rounds
interleaved, so drift (CPU frequency, another process) hits them alike; a
sample is the mean ns per call of one batch. Contenders:

* references: a bare ``@asynccontextmanager`` (a generator per use), a bare
  hand-written context manager class, and calling ``fn(client)`` directly;
* ``before``: the lease as it was up to 0.1 (two nested ``@asynccontextmanager``
  and a ``Lease`` record per use), rebuilt here over the same pool;
* ``cp.client()`` and ``cp.run()`` with telemetry disabled, enabled with the
  OpenTelemetry API and no SDK (the default for an application that
  configures none), and with an SDK meter provider collecting;
* the driver: one ``find_one`` directly and through ``cp.run()`` (fewer calls
  per batch), against the MongoDB stand-in on its own thread.

The pools run against the stand-in with real credentials; the lease figures
do not touch the server (``fn`` returns at once).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from pool.cache import CredentialCache
from pool.cli.bench.stats import Recorder
from pool.client_pool import ClientPool
from pool.credentials import Credentials
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn
from pool.standins.threaded import ThreadedStandIns
from pool.telemetry import Telemetry

__all__ = ["BATCH", "LEASE_KEYS", "LEASE_LABELS", "bench_lease", "overheads"]

BATCH = 1000
DRIVER_BATCH = 50

LEASE_LABELS: dict[str, str] = {
    "direct": "await fn(client) (the call itself)",
    "bare_asynccontextmanager": "bare @asynccontextmanager",
    "bare_class": "bare context manager class",
    "client_before": "cp.client(), before (0.1)",
    "client_disabled": "cp.client(), telemetry disabled",
    "client_no_sdk": "cp.client(), OpenTelemetry API, no SDK",
    "client_sdk": "cp.client(), OpenTelemetry SDK collecting",
    "run_before": "cp.run(fn), before (0.1)",
    "run_disabled": "cp.run(fn), telemetry disabled",
    "run_no_sdk": "cp.run(fn), OpenTelemetry API, no SDK",
    "run_sdk": "cp.run(fn), OpenTelemetry SDK collecting",
    "cache_current_disabled": "cache.current, telemetry disabled",
    "cache_current_no_sdk": "cache.current, OpenTelemetry API, no SDK",
    "driver_direct": "client.db.c.find_one() directly",
    "driver_run": "cp.run(find_one)",
}
LEASE_KEYS = tuple(LEASE_LABELS)


class _Minting:
    """Fresh, server-verifiable credentials from the stand-in's authority on every fetch."""

    name = "bench"

    def __init__(self, authority: CredentialAuthority) -> None:
        self.authority = authority

    async def fetch(self) -> Credentials:
        issued = self.authority.mint(lifetime=3600.0)
        return Credentials(
            access_key_id=issued.access_key_id,
            secret_access_key=issued.secret_access_key,
            session_token=issued.session_token,
            expiration=issued.expiration,
            source="bench",
        )


@asynccontextmanager
async def _bare() -> AsyncIterator[None]:
    yield None


class _BareClass:
    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def _before(cp: ClientPool[Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The 0.1 lease: ``_lease()`` (what ``run()`` used) and ``client()`` nesting it,
    each an ``@asynccontextmanager``, over a ``Lease`` record."""
    book, rot = cp._book, cp._rot

    @asynccontextmanager
    async def lease() -> AsyncIterator[Any]:
        held = book.acquire()
        try:
            yield held.generation
        except BaseException as exc:
            cp._report(held.generation, exc)
            raise
        finally:
            await rot.close_gens(book.release(held))

    @asynccontextmanager
    async def client() -> AsyncIterator[Any]:
        async with lease() as gen:
            yield gen.handle.client

    return lease, client


async def _noop(client: Any) -> None:
    return None


def _contenders(pools: dict[str, ClientPool[Any]]) -> dict[str, Callable[[], Awaitable[Any]]]:
    client = pools["disabled"]._book.current.handle.client  # type: ignore[union-attr]
    lease_before, before = _before(pools["disabled"])

    async def run_before() -> None:  # 0.1's run(): one _lease() around the call
        async with lease_before() as gen:
            await _noop(gen.handle.client)

    def with_client(cm: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
        async def use() -> None:
            async with cm():
                pass

        return use

    out: dict[str, Callable[[], Awaitable[Any]]] = {
        "direct": lambda: _noop(client),
        "bare_asynccontextmanager": with_client(_bare),
        "bare_class": with_client(_BareClass),
        "client_before": with_client(before),
        "run_before": run_before,
    }

    def run(cp: ClientPool[Any], fn: Callable[[Any], Awaitable[Any]]) -> Callable[[], Any]:
        return lambda: cp.run(fn)

    for mode, cp in pools.items():
        out[f"client_{mode}"] = with_client(cp.client)
        out[f"run_{mode}"] = run(cp, _noop)

    async def find_one(c: Any) -> Any:
        return await c.bench.lease.find_one({"_id": 1})

    out["driver_direct"] = lambda: find_one(client)
    out["driver_run"] = run(pools["disabled"], find_one)
    return out


def _sdk_provider() -> Any:
    """An SDK meter provider collecting into memory, or None without the SDK."""
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        return None
    return MeterProvider(metric_readers=[InMemoryMetricReader()])


def _reader(cache: CredentialCache) -> Callable[[], Credentials]:
    return lambda: cache.current


def _sync_batch(fn: Callable[[], Any], n: int = BATCH) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - start) / n


async def _batch(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        await fn()
    return (time.perf_counter_ns() - start) / n


async def bench_lease(rounds: int = 100, driver: str = "pymongo") -> dict[str, Recorder]:
    """ns per call of each of :data:`LEASE_KEYS`, ``rounds`` interleaved batches each."""
    authority = CredentialAuthority(default_lifetime=3600.0)
    provider = _sdk_provider()
    modes = {"disabled": Telemetry(enabled=False), "no_sdk": Telemetry()}
    if provider is not None:  # the SDK is in the prometheus extra, not in bench
        modes["sdk"] = Telemetry(meter_provider=provider)
    samples: dict[str, list[float]] = {k: [] for k in LEASE_KEYS}
    try:
        async with AsyncExitStack() as stack:
            group = await stack.enter_async_context(
                ThreadedStandIns(lambda: MongoStandIn(authority), name="mongo")
            )
            pools: dict[str, ClientPool[Any]] = {}
            for mode, tel in modes.items():
                cache = await stack.enter_async_context(
                    CredentialCache(_Minting(authority), telemetry=tel)
                )
                pools[mode] = await stack.enter_async_context(
                    ClientPool(
                        group.value.uri, credentials=cache, driver=driver, name=f"bench-{mode}",
                        telemetry=tel, warm_connections=1,
                    )
                )  # fmt: skip
            contenders = _contenders(pools)
            await pools["disabled"].run(lambda c: c.bench.lease.insert_one({"_id": 1}))
            for fn in contenders.values():  # warm up every path once
                await _batch(fn, 10)
            for _ in range(rounds):
                for key, fn in contenders.items():
                    n = DRIVER_BATCH if key.startswith("driver_") else BATCH
                    samples[key].append(await _batch(fn, n))
                for mode in ("disabled", "no_sdk"):  # synchronous: timed without an await
                    current = _reader(pools[mode].cache)
                    samples[f"cache_current_{mode}"].append(_sync_batch(current))
    finally:
        if provider is not None:
            provider.shutdown()
    out = {}
    for key, values in samples.items():
        if not values:
            continue
        rec = Recorder(resolution=0.1, highest=1e8)
        for value in values:
            rec.record(value)
        out[key] = rec
    return out


def overheads(recs: dict[str, Recorder]) -> dict[str, float | None]:
    """Medians that answer the questions: the lease's cost over the call, and the ratios.

    ``*_us`` are µs per use over ``await fn(client)`` (for leases) or over
    nothing (bare managers); ``ratio_*`` divide medians measured in the same run.
    """

    def med(key: str) -> float | None:
        values = recs[key].values if key in recs else []
        return statistics.median(values) if values else None

    direct = med("direct") or 0.0
    out: dict[str, float | None] = {}
    for key in LEASE_KEYS:
        m = med(key)
        if m is None or key.startswith(("driver_", "cache_")) or key == "direct":
            continue
        over = m - direct if key.startswith("run_") else m
        out[f"{key}_us"] = round(over / 1000, 3)

    def div(a: str, b: str) -> float | None:
        x, y = out.get(a), out.get(b)
        return None if x is None or not y else round(x / y, 2)

    out["ratio_client_vs_bare_asynccontextmanager"] = div(
        "client_no_sdk_us", "bare_asynccontextmanager_us"
    )
    out["ratio_client_vs_bare_class"] = div("client_no_sdk_us", "bare_class_us")
    out["ratio_client_before_vs_after"] = div("client_before_us", "client_no_sdk_us")
    out["ratio_run_before_vs_after"] = div("run_before_us", "run_no_sdk_us")
    out["ratio_client_no_sdk_vs_disabled"] = div("client_no_sdk_us", "client_disabled_us")
    out["ratio_client_sdk_vs_disabled"] = div("client_sdk_us", "client_disabled_us")
    out["ratio_run_no_sdk_vs_disabled"] = div("run_no_sdk_us", "run_disabled_us")
    c_off, c_on = med("cache_current_disabled"), med("cache_current_no_sdk")
    out["ratio_cache_current_no_sdk_vs_disabled"] = (
        None if not c_off or c_on is None else round(c_on / c_off, 2)
    )
    d_direct, d_run = med("driver_direct"), med("driver_run")
    out["ratio_driver_run_vs_direct"] = (
        None if not d_direct or d_run is None else round(d_run / d_direct, 3)
    )
    return out
