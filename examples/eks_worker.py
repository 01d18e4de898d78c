"""An EKS worker: hundreds of concurrent tasks sharing one ClientPool.

Credentials come from EKS Pod Identity (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` +
``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``) or IRSA (``AWS_WEB_IDENTITY_TOKEN_FILE``
+ ``AWS_ROLE_ARN``); both are detected. Settings: ``MONGODB_URI``, optionally
``MONGODB_DRIVER``, ``WORKERS``, ``DURATION`` (seconds; 0 = until SIGTERM).

Each task loops: take a job, write its result with ``cp.run(...)`` (a single
insert, so the retry ``run()`` may do is safe), read it back inside a lease,
then do the job's other (simulated) work. When the pod is stopped (SIGTERM)
the tasks finish their current job and the pool drains and closes.
Rotations happen underneath; no task notices.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import Mapping
from typing import Any

from pool import ClientPool
from pool.sources import from_environment


async def run(
    environ: Mapping[str, str] | None = None,
    *,
    workers: int = 300,
    duration: float = 0.0,
    think: float = 0.05,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run ``workers`` tasks for ``duration`` seconds (0: until ``stop`` is set)."""
    env = os.environ if environ is None else environ
    stop = stop or asyncio.Event()
    counter = itertools.count()
    done = failed = 0

    async def worker(cp: ClientPool[Any]) -> None:
        nonlocal done, failed
        while not stop.is_set():
            job = {"_id": next(counter), "result": "ok"}

            async def save(client: Any, job: dict[str, Any] = job) -> Any:
                return await client.jobs.results.insert_one(job)

            try:
                await cp.run(save)
                async with cp.client() as client:
                    if await client.jobs.results.find_one({"_id": job["_id"]}) is None:
                        raise RuntimeError(f"job {job['_id']} acknowledged but not found")
                done += 1
            except Exception:
                failed += 1
            await asyncio.sleep(think)  # the rest of the job

    async with ClientPool(
        env["MONGODB_URI"],
        credentials=from_environment(env),
        driver=env.get("MONGODB_DRIVER", "pymongo"),
        warm_connections=int(env.get("MONGODB_WARM_CONNECTIONS", "16")),
        serverSelectionTimeoutMS=5000,
    ) as cp:
        tasks = [asyncio.create_task(worker(cp)) for _ in range(workers)]
        if duration:
            loop = asyncio.get_running_loop()
            loop.call_later(duration, stop.set)
        await asyncio.gather(*tasks)
        status = cp.status()
    return {
        "done": done,
        "failed": failed,
        "rotations": status.rotations,
        "dropped_leases": status.dropped_leases,
    }


async def main() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    summary = await run(
        workers=int(os.environ.get("WORKERS", "300")),
        duration=float(os.environ.get("DURATION", "0")),
        stop=stop,
    )
    print(summary)


if __name__ == "__main__":
    asyncio.run(main())
