"""What your operations see while credentials rotate: latency through a ClientPool.

Runs ``CONCURRENCY`` tasks doing a ``find_one`` then an ``insert_one`` each
for ``SECONDS`` seconds against ``MONGODB_URI`` with the credentials detected
in the environment, asks the credential cache for new credentials every
``ROTATE_EVERY`` seconds (this rotates only with sources that mint new
credentials on request: STS web identity or assume-role; IMDS and ECS hand
back the same ones until AWS rotates them), and prints p50/p90/p99/max in
milliseconds for operations that started within a second of a rotation and
for the rest. Needs ``hdrhistogram`` (``pip install mongodb-aws-pool[bench]``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Any

from hdrh.histogram import HdrHistogram

from pool import ClientPool
from pool.cache import CredentialCache
from pool.sources import from_environment

WINDOW = 1.0  # seconds after a rotation request counted as "around the rotation"


def _summary(h: HdrHistogram) -> dict[str, float]:
    ms = {f"p{p}": h.get_value_at_percentile(p) / 1000 for p in (50, 90, 99)}
    return {**ms, "max": h.get_max_value() / 1000, "n": h.get_total_count()}


async def measure(
    environ: Mapping[str, str] | None = None,
    *,
    concurrency: int = 50,
    seconds: float = 10.0,
    rotate_every: float = 2.0,
) -> dict[str, Any]:
    """Run the workload; return latency summaries, failures and rotations."""
    env = os.environ if environ is None else environ
    steady, around = HdrHistogram(1, 60_000_000, 3), HdrHistogram(1, 60_000_000, 3)
    rotation_marks: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    def near_rotation(t: float) -> bool:
        return any(0 <= t - mark <= WINDOW for mark in rotation_marks)

    async def op(cp: ClientPool[Any], fn: Any) -> None:
        nonlocal failures
        started = time.monotonic()
        try:
            await cp.run(fn)
        except Exception:
            failures += 1
            return
        micros = max(1, int((time.monotonic() - started) * 1_000_000))
        (around if near_rotation(started) else steady).record_value(micros)

    async def worker(cp: ClientPool[Any], n: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            last, new = f"{n}-{i - 1}", f"{n}-{i}"
            await op(cp, lambda c, last=last: c.latency.docs.find_one({"_id": last}))
            await op(cp, lambda c, new=new: c.latency.docs.insert_one({"_id": new}))

    async with (
        CredentialCache(from_environment(env), owns_source=True) as cache,
        ClientPool(
            env["MONGODB_URI"],
            credentials=cache,
            driver=env.get("MONGODB_DRIVER", "pymongo"),
            warm_connections=concurrency,
            serverSelectionTimeoutMS=5000,
        ) as cp,
    ):
        tasks = [asyncio.create_task(worker(cp, n)) for n in range(concurrency)]
        while rotate_every and time.monotonic() + rotate_every < deadline:
            await asyncio.sleep(rotate_every)
            rotation_marks.append(time.monotonic())
            await cache.refresh()
        await asyncio.gather(*tasks)
        rotations = cp.status().rotations
    return {
        "steady": _summary(steady),
        "around_rotation": _summary(around),
        "failures": failures,
        "rotations": rotations,
    }


def main() -> None:
    result = asyncio.run(
        measure(
            concurrency=int(os.environ.get("CONCURRENCY", "50")),
            seconds=float(os.environ.get("SECONDS", "10")),
            rotate_every=float(os.environ.get("ROTATE_EVERY", "2")),
        )
    )
    print(f"{'':16}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}{'n':>8}   (ms)")
    for name in ("steady", "around_rotation"):
        s = result[name]
        print(f"{name:16}{s['p50']:9.2f}{s['p90']:9.2f}{s['p99']:9.2f}{s['max']:9.2f}{s['n']:8d}")
    print(f"failures: {result['failures']}   rotations: {result['rotations']}")


if __name__ == "__main__":
    main()
