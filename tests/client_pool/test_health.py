"""Readiness and liveness: the rules (pure) and the HTTP probes under real servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from fastapi import FastAPI

from pool.cache import CredentialCache
from pool.client_pool.health import HealthInputs, assess
from pool.integrations.aiohttp import add_health_routes, cleanup_ctx
from pool.integrations.fastapi import lifespan, mount_health
from pool.sources import ContainerSource
from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import make_pool, serve_asgi, until

OPEN = {"pool_state": "open", "serving": True, "connections": 4, "cache_state": "valid"}


def status_ready(cp: Any) -> bool:
    """``status()``'s ready flag, whether status() is a dict or a typed record."""
    status = cp.status()
    return bool(status["ready"] if isinstance(status, dict) else status.ready)


def facts(**changes: Any) -> HealthInputs:
    return HealthInputs(**{**OPEN, "remaining_s": 100.0, **changes})


@pytest.mark.parametrize(
    ("changes", "status", "reason"),
    [
        ({}, "ok", None),
        ({"pool_state": "starting"}, "failing", "the pool is starting"),
        ({"pool_state": "closed"}, "failing", "the pool is closed"),
        ({"serving": False}, "failing", "no client is serving"),
        ({"remaining_s": None}, "ok", None),  # long-term keys
        ({"cache_state": "retrying", "cache_error": "ecs: HTTP 503"}, "degraded", "HTTP 503"),
        ({"remaining_s": -3.0, "cache_state": "expired"}, "degraded", "expired 3.0 s ago"),
        ({"remaining_s": -3.0, "connections": 0}, "failing", "no connection is open"),
        ({"warmup_failures_in_a_row": 2, "last_warmup_error": "x"}, "degraded", "2 time(s)"),
    ],
)
def test_readiness_rules(changes: dict[str, Any], status: str, reason: str | None) -> None:
    """Each documented readiness condition gives its status and names itself in the reasons."""
    ready = assess(facts(**changes)).ready
    assert ready.status == status
    assert ready.passing == (status != "failing")
    if reason is None:
        assert ready.reasons == ()
    else:
        assert any(reason in r for r in ready.reasons), ready.reasons


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pool_state": "closed"}, "closed"),
        ({"dead_tasks": ("ClientPool.rotate",)}, "ClientPool.rotate"),
        ({"cache_state": "crashed"}, "crashed"),
        ({"warming_for_s": 71.0, "warmup_timeout": 30.0}, "it hangs"),
    ],
)
def test_liveness_fails_only_when_the_pool_is_stuck(changes: dict[str, Any], reason: str) -> None:
    """Liveness fails for a closed pool, a dead task, a crashed cache or a hung warm-up."""
    live = assess(facts(**changes)).live
    assert live.status == "failing"
    assert any(reason in r for r in live.reasons)


def test_liveness_survives_an_outage() -> None:
    """An AWS outage (refresh failing, credentials expired) is not a reason to restart."""
    live = assess(facts(remaining_s=-5.0, connections=0, cache_state="expired")).live
    assert live.status == "ok"


def test_probes_before_the_pool_opens() -> None:
    """With no pool open yet, readiness answers 503 and liveness 200 (the process is fine)."""
    from pool.integrations._probes import answer

    assert answer(None, "ready", 200)[0] == 503
    assert answer(None, "live", 200)[0] == 200


@pytest.fixture
async def ecs(authority: CredentialAuthority) -> AsyncIterator[AwsStandIns]:
    """The ECS endpoint (and friends) minting 4 s credentials the MongoDB stand-in accepts."""
    async with AwsStandIns(authority, lifetime=4.0) as group:
        yield group


def ecs_cache(ecs: AwsStandIns) -> CredentialCache:
    source = ContainerSource.from_env(ecs.env_for("ecs"))
    # Quick retries, so the restarted endpoint is noticed within a fraction of a second.
    return CredentialCache(
        source, owns_source=True, backoff_initial=0.2, backoff_max=0.4, same_credentials_retry=0.2
    )


async def test_fastapi_probes_follow_the_endpoint_stopped_and_restarted(
    driver: str, mongo: MongoStandIn, ecs: AwsStandIns
) -> None:
    """/healthz/ready: 200 ok, 200 degraded while the refresh fails and after expiry, ok again."""
    async with ecs_cache(ecs) as cache:
        cp = make_pool(mongo, cache, driver)
        app = FastAPI(lifespan=lifespan(cp))
        mount_health(app)
        mount_health(app, prefix="/strict", degraded_status=503)
        async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:

            async def probe(path: str) -> tuple[int, dict[str, Any]]:
                resp = await http.get(path)
                return resp.status_code, resp.json()

            assert await probe("/healthz/ready") == (200, {"status": "ok", "reasons": []})
            assert (await probe("/healthz/live"))[0] == 200
            stopped = ecs.faults.add("ecs:error=503")
            seen: list[tuple[int, dict[str, Any]]] = []

            async def expired() -> bool:
                seen.append(await probe("/healthz/ready"))
                return any("expired" in r for r in seen[-1][1]["reasons"])

            await _until_async(expired)
            code, body = seen[-1]
            assert (code, body["status"]) == (200, "degraded")
            assert any("refresh is failing" in r for r in body["reasons"])
            before_expiry = [
                b for _, b in seen if b["reasons"] and "expired" not in b["reasons"][0]
            ]
            assert any("refresh is failing" in b["reasons"][0] for b in before_expiry)
            assert (await probe("/strict/ready"))[0] == 503
            assert (await probe("/healthz/live"))[0] == 200  # an outage is no reason to restart
            assert status_ready(cp) is True  # degraded: the open connections still serve
            async with asyncio.timeout(5):
                assert await cp.run(lambda c: c.shop.items.count_documents({})) == 0

            ecs.faults.remove(stopped)

            async def recovered() -> bool:
                return await probe("/healthz/ready") == (200, {"status": "ok", "reasons": []})

            await _until_async(recovered)
            assert (await probe("/strict/ready"))[0] == 200


async def _until_async(check: Any, timeout: float = 15.0) -> None:
    """Poll an async condition (HTTP round trips) until it holds; the timeout catches hangs."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def test_aiohttp_probes_answer_503_when_not_ready(
    driver: str, mongo: MongoStandIn, ecs: AwsStandIns
) -> None:
    """aiohttp: 503 before startup and after cleanup, 200 while open, 503 degraded on demand."""
    async with ecs_cache(ecs) as cache:
        app = web.Application()
        app.cleanup_ctx.append(cleanup_ctx(lambda: make_pool(mongo, cache, driver)))
        add_health_routes(app, degraded_status=503)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
                async with http.get("/healthz/ready") as resp:
                    assert (resp.status, (await resp.json())["status"]) == (200, "ok")
                stopped = ecs.faults.add("ecs:error=503")
                with pytest.raises(Exception, match="503"):
                    await cache.refresh()
                async with http.get("/healthz/ready") as resp:
                    body = await resp.json()
                    assert (resp.status, body["status"]) == (503, "degraded")
                async with http.get("/healthz/live") as resp:
                    assert resp.status == 200
                ecs.faults.remove(stopped)
                await cache.refresh()
                await until(lambda: cache.status()["state"] == "valid")
                async with http.get("/healthz/ready") as resp:
                    assert resp.status == 200
        finally:
            await runner.cleanup()


async def test_expired_credentials_and_no_connection_is_not_ready(
    driver: str, mongo: MongoStandIn, ecs: AwsStandIns
) -> None:
    """Endpoint stopped, credentials expired, server connections gone: readiness fails.

    The issue's case: status()["ready"] was True while nothing could work. When
    the endpoint comes back the pool rotates and readiness is ok again.
    """
    async with ecs_cache(ecs) as cache, make_pool(mongo, cache, driver) as cp:
        stopped = ecs.faults.add("ecs:error=503")
        await until(lambda: any("expired" in r for r in cp.health().ready.reasons))
        mongo.drop_connections()  # the server (or a network blip) closes them
        with pytest.raises(Exception):  # noqa: B017 - whichever error the driver raises
            async with asyncio.timeout(10):
                await cp.run(lambda c: c.shop.items.count_documents({}), retry=False)
        await until(lambda: cp.health().ready.status == "failing")
        ready = cp.health().ready
        assert any("no connection is open" in r for r in ready.reasons), ready.reasons
        assert status_ready(cp) is False
        assert cp.health().live.status == "ok"
        ecs.faults.remove(stopped)
        await until(lambda: cp.health().ready.status == "ok")
        assert status_ready(cp) is True


async def test_a_dead_background_task_fails_liveness(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A pool whose rotation task ended while open is stuck: liveness fails, naming the task."""
    async with make_pool(mongo, cache, driver) as cp:
        assert cp.health().live.status == "ok"
        (rotate_task,) = [t for t in cp._tasks if t.get_name() == "ClientPool.rotate"]
        rotate_task.cancel()  # stands in for a bug that ends the task
        await asyncio.wait({rotate_task})
        live = cp.health().live
        assert live.status == "failing" and "ClientPool.rotate" in live.reasons[0]
