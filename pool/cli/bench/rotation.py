"""Rotation under load: the warmed swap (``ClientPool``) against the naive swap, both drivers.

Naive: on new credentials build a new client, use it at once (no warm-up) and
close the old client immediately. Warmed: :class:`pool.ClientPool` (build,
warm ``workers`` connections, swap, drain the old client until its last lease
ends). Both run the same workload against the stand-ins in a separate process
(``python -m pool emulate``: the server's CPU, SigV4 verification included,
does not compete with the client for the GIL, as with a real cluster), with
a per-command delay (network latency to the cluster; it applies to the
handshake and authentication too), ``workers`` tasks doing an ``insert_one``
then a ``find_one`` of what they wrote, and a credential rotation every
``rotate_every`` seconds. Credentials come from the web identity stand-in
(STS ``AssumeRoleWithWebIdentity``), which mints a new set per request.

Reported per driver and mode: operations, failed operations, lost writes
(acknowledged inserts absent at the end), rotations, and p50/p99 latency of
operations that started in the window from a rotation request to
``window`` seconds after its swap ("rotation") and of all others ("steady").
Also the event loop's p99 lag, and for Motor the mean backlog of Motor's
process-wide thread pool, steady and around rotations ("steady/rotation").

Run: ``python benchmarks/bench_rotation.py [--seconds 12] [--workers 40] ...``;
``run_benchmark()`` returns the figures for ``python -m pool bench``. It lives in
the package so that the installed ``python -m pool bench`` has it too.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pool.cache import CredentialCache
from pool.cli.bench.stats import summarize_ms
from pool.cli.workload import Op, Workload
from pool.client_pool import ClientPool
from pool.client_pool.drivers import get_driver
from pool.sources import aclose_source, from_environment
from pool.standins.process import EmulatorProcess

DRIVERS = ("pymongo", "motor")
_OPTIONS = {"serverSelectionTimeoutMS": 10000}
MODES = ("warmed", "naive")


@dataclass
class Settings:
    """Workload knobs; the defaults keep the stand-in below saturation on 2 cores."""

    workers: int = 40
    seconds: float = 12.0
    rotate_every: float = 2.0
    command_delay: float = 0.01
    think: float = 0.1
    window: float = 1.0
    warm_connections: int = 0  # 0: as many as workers
    #: The warmed swap's ``warm_spread``. 0, not the pool's 5 s default: credentials
    #: rotate every ``rotate_every`` (2 s) here, and a paced warm-up (meant for fleets)
    #: would not fit between rotations; the figures are the swap's, as measured before
    #: pacing existed. ``python benchmarks/bench_rotation.py --warm-spread 5`` paces it.
    warm_spread: float = 0.0
    #: The MongoDB topology: members of a replica set (0: standalone), and TLS.
    replica_set: int = 0
    tls: bool = False


class _Naive:
    """New client per credential set, no warm-up, old client closed at once."""

    def __init__(self, uri: str, driver: str, source: Any) -> None:
        self.uri, self.adapter, self.source = uri, get_driver(driver), source
        self.handle: Any = None

    async def rotate(self) -> None:
        new = await self.adapter.build(self.uri, await self.source.fetch(), _OPTIONS)
        old, self.handle = self.handle, new
        if old is not None:
            await self.adapter.close(old)

    async def run(self, fn: Op) -> Any:
        return await fn(self.handle.client)

    async def aclose(self) -> None:
        await self.adapter.close(self.handle)


class RunLog:
    """One run's workload, its rotation windows and its loop-lag ticks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.work: Workload | None = None
        self.windows: list[tuple[float, float, float]] = []  # (requested, swapped, end)
        self.ticks: list[tuple[float, float, int]] = []  # (time, loop lag s, Motor backlog)

    def in_window(self, t: float) -> bool:
        return any(a <= t <= b for a, _, b in self.windows)

    def _p99_ms(self, seconds: list[float]) -> float:
        summary = summarize_ms(s * 1000 for s in seconds)
        return 0.0 if summary is None else round(summary["p99"], 2)

    def figures(self, lost: int, rotations: int) -> dict[str, Any]:
        work = self.work
        samples = [] if work is None else work.samples
        failed = 0 if work is None else work.failed
        steady = [d for t, d in samples if not self.in_window(t)]
        rot = [d for t, d in samples if self.in_window(t)]
        warming = [d for t, d in samples if any(a <= t < s for a, s, _ in self.windows)]
        after = [d for t, d in samples if any(s <= t <= b for _, s, b in self.windows)]
        out: dict[str, Any] = {"ops": len(samples) + failed, "failed": failed, "lost": lost}
        out["rotations"] = rotations
        for name, values in (("steady", steady), ("rotation", rot)):
            summary = summarize_ms(v * 1000 for v in values)
            out[f"p50_{name}_ms"] = 0.0 if summary is None else round(summary["p50"], 2)
            out[f"p99_{name}_ms"] = 0.0 if summary is None else round(summary["p99"], 2)
        out["p99_warming_ms"], out["p99_after_swap_ms"] = self._p99_ms(warming), self._p99_ms(after)
        for name, inside in (("steady", False), ("rotation", True)):
            ticks = [(lag, n) for t, lag, n in self.ticks if self.in_window(t) == inside]
            out[f"loop_lag_p99_{name}_ms"] = self._p99_ms([lag for lag, _ in ticks])
            if self.ticks and self.ticks[0][2] >= 0:
                mean = sum(n for _, n in ticks) / max(1, len(ticks))
                out[f"motor_backlog_mean_{name}"] = round(mean, 1)
        return out


async def _sample(rec: RunLog, stop: asyncio.Event, motor: bool) -> None:
    """Every 10 ms: the event loop's lag and (Motor) the backlog of Motor's thread pool."""
    executor: Any = None
    if motor:
        from motor.frameworks import asyncio as motor_asyncio

        executor = motor_asyncio._EXECUTOR
    while not stop.is_set():
        before = time.monotonic()
        await asyncio.sleep(0.01)
        now = time.monotonic()
        backlog = executor._work_queue.qsize() if executor is not None else -1
        rec.ticks.append((now, now - before - 0.01, backlog))


@asynccontextmanager
async def emulator(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """``python -m pool emulate`` in a subprocess; yields its summary (URIs, environments)."""
    async with EmulatorProcess(
        command_delay=settings.command_delay, replica_set=settings.replica_set, tls=settings.tls
    ) as proc:
        yield proc.info


async def measure(
    driver: str,
    mode: str,
    settings: Settings | None = None,
    stand_ins: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run: ``driver`` in ``mode`` (``"warmed"`` or ``"naive"``); returns its figures.

    ``stand_ins`` is a running :func:`emulator`'s summary; by default one is started.
    """
    settings = settings or Settings()
    if stand_ins is None:
        async with emulator(settings) as summary:
            return await measure(driver, mode, settings, summary)
    # Empty shared files: a developer's own ~/.aws must not take part.
    no_files = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    env = {**os.environ, **no_files, **stand_ins["environments"]["eks_irsa"]}
    uri = stand_ins["mongodb_uri"]
    rec = RunLog(settings)
    source = from_environment(env)
    try:
        if mode == "warmed":
            rotations = await _run_warmed(uri, driver, source, settings, rec)
        else:
            rotations = await _run_naive(uri, driver, source, settings, rec)
        acked = [] if rec.work is None else rec.work.acknowledged
        lost = len(set(acked) - await _stored_ids(uri, source))
    finally:
        await aclose_source(source)
    return rec.figures(lost, rotations)


async def _stored_ids(uri: str, source: Any) -> set[str]:
    from pymongo import AsyncMongoClient

    creds = await source.fetch()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, **creds.client_options())
    try:
        ids = await client.bench.docs.distinct("_id")
        await client.bench.docs.drop()  # the next run starts empty
        return set(ids)
    finally:
        await client.close()


async def _drive(
    run: Callable[[Op], Awaitable[Any]],
    rotate: Callable[[], Awaitable[None]],
    driver: str,
    settings: Settings,
    rec: RunLog,
) -> int:
    stop = asyncio.Event()
    rec.work = Workload(
        run, tag="bench", workers=settings.workers, pause=settings.think, db="bench",
        collection="docs",
    )  # fmt: skip
    tasks = [
        asyncio.create_task(rec.work.run_until(stop)),
        asyncio.create_task(_sample(rec, stop, motor=driver == "motor")),
    ]
    end = time.monotonic() + settings.seconds
    rotations = 0
    while time.monotonic() + settings.rotate_every < end:
        await asyncio.sleep(settings.rotate_every)
        requested = time.monotonic()
        await rotate()
        swapped = time.monotonic()
        rec.windows.append((requested, swapped, swapped + settings.window))
        rotations += 1
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    stop.set()
    await asyncio.gather(*tasks)
    return rotations


async def _run_warmed(uri: str, driver: str, source: Any, settings: Settings, rec: RunLog) -> int:
    async with (
        CredentialCache(source) as cache,
        ClientPool(  # type: ignore[call-overload]
            uri,
            credentials=cache,
            driver=driver,
            warm_connections=settings.warm_connections or settings.workers,
            warm_spread=settings.warm_spread,
            **_OPTIONS,
        ) as cp,
    ):

        async def run(op: Op) -> Any:
            async with cp.client() as client:
                return await op(client)

        async def rotate() -> None:
            before = cp.status().generation or 0
            await cache.refresh()
            await cp.wait_for_generation(before + 1)

        return await _drive(run, rotate, driver, settings, rec)


async def _run_naive(uri: str, driver: str, source: Any, settings: Settings, rec: RunLog) -> int:
    naive = _Naive(uri, driver, source)
    await naive.rotate()
    try:
        return await _drive(naive.run, naive.rotate, driver, settings, rec)
    finally:
        await naive.aclose()


async def run_benchmark(
    drivers: tuple[str, ...] = DRIVERS,
    modes: tuple[str, ...] = MODES,
    settings: Settings | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every driver x mode, one after the other: ``{driver: {mode: figures}}``."""
    settings = settings or Settings()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    async with emulator(settings) as stand_ins:
        for driver in drivers:
            for mode in modes:
                figures = await measure(driver, mode, settings, stand_ins)
                results.setdefault(driver, {})[mode] = figures
    return results


def format_table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The figures as a plain-text table."""
    head = (
        f"{'driver':8} {'mode':7} {'ops':>7} {'failed':>7} {'lost':>5} {'rot':>4} "
        f"{'p50 st':>8} {'p99 st':>8} {'p50 rot':>8} {'p99 rot':>8} {'p99 x':>6}"
    )
    lines = [head, "-" * len(head)]
    for driver, modes in results.items():
        for mode, f in modes.items():
            ratio = f["p99_rotation_ms"] / f["p99_steady_ms"] if f["p99_steady_ms"] else 0.0
            lines.append(
                f"{driver:8} {mode:7} {f['ops']:7d} {f['failed']:7d} {f['lost']:5d} "
                f"{f['rotations']:4d} {f['p50_steady_ms']:8.2f} {f['p99_steady_ms']:8.2f} "
                f"{f['p50_rotation_ms']:8.2f} {f['p99_rotation_ms']:8.2f} {ratio:6.2f}"
            )
            lines[-1] += f"   p99 warming/after {f['p99_warming_ms']}/{f['p99_after_swap_ms']}"
            lines[-1] += f", loop lag p99 {f['loop_lag_p99_steady_ms']}/"
            lines[-1] += f"{f['loop_lag_p99_rotation_ms']} ms"
            if "motor_backlog_mean_steady" in f:
                lines[-1] += (
                    f", Motor pool backlog {f['motor_backlog_mean_steady']}"
                    f"/{f['motor_backlog_mean_rotation']}"
                )
    return "\n".join(lines)


#: The drivers ``python -m pool bench`` runs, in its report's order.
BENCH_DRIVERS = ("motor", "pymongo")
#: The ``R`` of the bench's JSON shape; the rotation benchmark reports more, which is dropped there.
R_KEYS = ("ops", "failed", "lost", "rotations", "p99_steady_ms", "p99_rotation_ms")
QUICK_SECONDS = 8.0
FULL_SECONDS = 20.0

Figures = dict[str, dict[str, dict[str, Any] | None]]


def _shape(figures: dict[str, Any] | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {key: int(figures[key]) if key in R_KEYS[:4] else float(figures[key]) for key in R_KEYS}


async def bench_rotation(
    *,
    quick: bool,
    seconds: float | None = None,
    workers: int | None = None,
    replica_set: int = 0,
    tls: bool = False,
) -> tuple[Figures, str | None]:
    """``({driver: {mode: R | None}}, note)``; the note explains anything not measured.

    ``seconds`` is the length of each of the four runs (default 8 with
    ``quick``, else 20); credentials rotate every ``min(2, seconds / 3)`` s.
    ``workers`` defaults to :class:`Settings`' (the tests use fewer: each
    warm-up opens that many connections). Starts its own stand-ins
    (``python -m pool emulate``).
    """
    length = seconds or (QUICK_SECONDS if quick else FULL_SECONDS)
    settings = Settings(
        seconds=length, rotate_every=min(2.0, length / 3), replica_set=replica_set, tls=tls
    )
    if workers is not None:
        settings.workers = workers
    raw = await run_benchmark(BENCH_DRIVERS, MODES, settings)
    shaped: Figures = {d: {m: _shape(raw.get(d, {}).get(m)) for m in MODES} for d in BENCH_DRIVERS}
    return shaped, (
        f"{length:g} s per run, credentials rotating every {settings.rotate_every:g} s, "
        f"{settings.workers} workers (pool.cli.bench.rotation)"
    )
