"""The FastAPI and aiohttp glue: pool opened with the app, leases held per request."""

from __future__ import annotations

import asyncio
import sys
from types import SimpleNamespace
from typing import Annotated, Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from fastapi import Depends, FastAPI

from pool.cache import CredentialCache
from pool.integrations.aiohttp import cleanup_ctx, get_pool
from pool.integrations.fastapi import leased_database, lifespan
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import make_pool, serve_asgi

Shop = Annotated[Any, Depends(leased_database("shop"))]


async def test_fastapi_lease_spans_the_request_and_pool_closes(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """A leased database is held for the request; the lifespan closes the pool at shutdown."""
    cp = make_pool(mongo, cache, driver)
    app = FastAPI(lifespan=lifespan(cp))
    seen: list[dict[str, int]] = []

    @app.get("/count")
    async def count(db: Shop) -> dict[str, int]:
        seen.append(cp.status().leases)
        return {"n": await db.items.count_documents({})}

    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/count")).json() == {"n": 0}
        assert cp.status().state == "open"
    assert seen == [{"1": 1}]
    assert cp.status().state == "closed"


async def test_fastapi_without_lifespan_says_what_is_missing() -> None:
    """Using the dependency without the lifespan fails with a message naming the fix."""
    dependency = leased_database("shop")
    request = SimpleNamespace(state=SimpleNamespace())
    with pytest.raises(RuntimeError, match=r"FastAPI\(lifespan=\.\.\.\)"):
        await dependency(request).__anext__()


async def test_fastapi_import_is_lazy() -> None:
    """Importing the integrations imports neither FastAPI nor aiohttp by itself."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys, pool.integrations.fastapi, pool.integrations.aiohttp; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'aiohttp') if m in sys.modules))",
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert out.decode().strip() == "[]"


async def test_aiohttp_cleanup_ctx_opens_and_closes_the_pool(
    driver: str, mongo: MongoStandIn, cache: CredentialCache
) -> None:
    """cleanup_ctx opens the pool at startup and closes it at cleanup; handlers lease clients."""
    pools: list[Any] = []

    def factory() -> Any:
        pools.append(make_pool(mongo, cache, driver))
        return pools[-1]

    async def handler(request: web.Request) -> web.Response:
        async with get_pool(request).client() as client:
            await client.shop.items.insert_one({"_id": request.match_info["id"]})
            n = await client.shop.items.count_documents({})
        return web.json_response({"n": n})

    app = web.Application()
    app.cleanup_ctx.append(cleanup_ctx(factory))
    app.router.add_post("/items/{id}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            for i in range(3):
                async with http.post(f"http://127.0.0.1:{port}/items/{i}") as resp:
                    assert (await resp.json()) == {"n": i + 1}
        assert get_pool(app) is pools[0] and pools[0].status().ready
    finally:
        await runner.cleanup()
    assert pools[0].status().state == "closed"
