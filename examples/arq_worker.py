"""An arq worker: jobs from Redis, one ClientPool per worker process.

Run as many of these processes as the load needs (``python examples/arq_worker.py``
or ``arq examples.arq_worker.WorkerSettings``); each opens one pool at
startup and closes it at shutdown (:mod:`pool.integrations.arq`). Credentials
are detected (ECS, EKS Pod Identity, IRSA, EC2, Lambda variables) and rotate
underneath; no job notices. Settings: ``MONGODB_URI``, ``REDIS_HOST``
(default ``127.0.0.1``), ``REDIS_PORT`` (6379), ``ARQ_BURST=1`` to exit once
the queue is empty, ``ARQ_MAX_JOBS`` (concurrent jobs per process, 20),
``MONGODB_WARM_CONNECTIONS`` (4), ``JOB_WORK_SECONDS`` (the rest of each job,
simulated; 0).

The job ``record`` writes one document (an upsert by job id: safe to run
twice, which matters because ``cp.run`` retries once on a newer client when
the old one was refused or closed) and reads it back inside a lease.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings
from arq.worker import run_worker

from pool import ClientPool
from pool.integrations.arq import PoolHooks, get_pool
from pool.sources import from_environment


def make_pool() -> ClientPool[Any]:
    return ClientPool(
        os.environ["MONGODB_URI"],
        credentials=from_environment(),
        warm_connections=int(os.environ.get("MONGODB_WARM_CONNECTIONS", "4")),
        serverSelectionTimeoutMS=5000,
    )


hooks = PoolHooks(make_pool)


async def record(ctx: dict[str, Any], job_id: int, payload: str) -> dict[str, Any]:
    """Write the job's document, read it back, return what was read."""
    cp = get_pool(ctx)
    doc = {"_id": job_id, "payload": payload, "worker": os.getpid()}

    async def write(client: Any) -> Any:
        return await client.jobs.done.replace_one({"_id": job_id}, doc, upsert=True)

    await cp.run(write)
    async with cp.client() as client:
        found = await client.jobs.done.find_one({"_id": job_id})
    if found is None:
        raise RuntimeError(f"job {job_id}: acknowledged write not found")
    await asyncio.sleep(float(os.environ.get("JOB_WORK_SECONDS", "0")))  # the job's other work
    return {"job_id": job_id, "worker": found["worker"], "generation": cp.status().generation}


class WorkerSettings:
    functions = (record,)
    on_startup = hooks.on_startup
    on_shutdown = hooks.on_shutdown
    redis_settings = RedisSettings(
        host=os.environ.get("REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
    )
    max_jobs = int(os.environ.get("ARQ_MAX_JOBS", "20"))
    burst = os.environ.get("ARQ_BURST") == "1"
    poll_delay = 0.05
    handle_signals = True


if __name__ == "__main__":
    run_worker(WorkerSettings)  # type: ignore[arg-type]
