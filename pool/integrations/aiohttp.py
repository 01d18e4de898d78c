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
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from pool.client_pool import ClientPool

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["cleanup_ctx", "get_pool", "pool_key"]


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
