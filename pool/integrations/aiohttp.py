"""aiohttp.web: open the pool with the application, lease clients in handlers.

::

    from aiohttp import web
    from pool.integrations.aiohttp import cleanup_ctx, get_pool

    async def get_item(request: web.Request) -> web.Response:
        async with get_pool(request).client() as client:
            doc = await client.shop.items.find_one({"_id": request.match_info["id"]}, {"_id": 0})
        return web.json_response(doc)

    app = web.Application()
    app.cleanup_ctx.append(cleanup_ctx(lambda: ClientPool(uri, credentials=source)))

The pool opens at application startup (startup fails when the first client
cannot be warmed) and closes at cleanup, after the server stopped taking
requests. It is stored under an ``aiohttp.web.AppKey`` (:func:`pool_key`), so
aiohttp raises no ``NotAppKeyWarning``. aiohttp is imported on first use.

Probes: ``add_health_routes(app)`` adds ``GET /healthz/live`` and
``GET /healthz/ready`` (200 or 503 with the reasons as JSON; see
:mod:`pool.client_pool.health`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from pool.client_pool import ClientPool
from pool.integrations._probes import DEFAULT_PREFIX, ProbeName, answer, check_degraded_status

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["add_health_routes", "cleanup_ctx", "get_pool", "pool_key"]


@functools.cache
def pool_key() -> web.AppKey[ClientPool[Any]]:
    """The application key the pool is stored under (one per process)."""
    from aiohttp import web

    return web.AppKey("mongo_pool", ClientPool)


def cleanup_ctx(
    pool: ClientPool[Any] | Callable[[], ClientPool[Any]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An entry for ``app.cleanup_ctx``: opens ``pool`` at startup, closes it at cleanup.

    ``pool`` is a :class:`pool.ClientPool` or a zero-argument function returning
    one (called at startup).
    """

    async def _ctx(app: web.Application) -> AsyncIterator[None]:
        cp = pool if isinstance(pool, ClientPool) else pool()
        async with cp:
            app[pool_key()] = cp
            yield

    return _ctx


def get_pool(request_or_app: web.Request | web.Application) -> ClientPool[Any]:
    """The application's pool, from a request or the application itself."""
    from aiohttp import web

    app = request_or_app.app if isinstance(request_or_app, web.Request) else request_or_app
    try:
        return app[pool_key()]
    except KeyError:
        raise RuntimeError(
            "no ClientPool on this application: "
            "app.cleanup_ctx.append(pool.integrations.aiohttp.cleanup_ctx(...))"
        ) from None


def add_health_routes(
    app: web.Application, *, prefix: str = DEFAULT_PREFIX, degraded_status: int = 200
) -> None:
    """Add ``GET {prefix}/live`` and ``GET {prefix}/ready`` to ``app``.

    Each answers 200 or 503 with ``{"status", "reasons"}`` as JSON; a
    ``degraded`` answer gets ``degraded_status`` (200 or 503). Before
    ``cleanup_ctx`` has opened the pool, readiness answers 503 and liveness 200.
    """
    from aiohttp import web

    check_degraded_status(degraded_status)

    def handler(probe: ProbeName) -> Callable[[web.Request], Any]:
        async def probe_handler(request: web.Request) -> web.Response:
            cp = request.app.get(pool_key())
            status, body = answer(cp, probe, degraded_status)
            return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

        return probe_handler

    base = prefix.rstrip("/")
    app.router.add_get(f"{base}/live", handler("live"))
    app.router.add_get(f"{base}/ready", handler("ready"))
