"""FastAPI / Starlette: open the pool in the lifespan, lease a database per request.

::

    from fastapi import Depends, FastAPI
    from pool.integrations.fastapi import leased_database, lifespan

    app = FastAPI(lifespan=lifespan(lambda: ClientPool(uri, credentials=source)))

    @app.get("/items/{item_id}")
    async def get_item(item_id: str, db=Depends(leased_database("shop"))):
        return await db.items.find_one({"_id": item_id}, {"_id": 0})

The lifespan opens the pool before the first request and closes it at
shutdown (after uvicorn has let requests in progress finish); the pool is in
the lifespan state (``request.state.mongo_pool``) and on ``app.state``.
:func:`leased_database` leases the current client for the whole request: with
FastAPI's default dependency scope the lease ends after the response has been
sent, so a ``StreamingResponse`` may iterate a cursor from it; rotations in
between never close that client under it.

Probes: ``mount_health(app)`` adds ``GET /healthz/live`` and
``GET /healthz/ready`` (200 or 503, with the reasons as JSON; see
:mod:`pool.integrations._probes` and :mod:`pool.client_pool.health`);
:func:`pool_status` is a dependency returning the full ``status()``.

FastAPI and Starlette are imported when these functions are called, not when
this module is imported. (No ``from __future__ import annotations`` here:
FastAPI resolves the dependency's parameter annotations at runtime.)
"""

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from pool.client_pool import ClientPool
from pool.integrations._probes import DEFAULT_PREFIX, ProbeName, answer, check_degraded_status

__all__ = ["STATE_KEY", "leased_database", "lifespan", "mount_health", "pool_status"]

STATE_KEY = "mongo_pool"

PoolFactory = Callable[[], "ClientPool[Any]"]


def lifespan(
    pool: "ClientPool[Any] | PoolFactory", *, state_key: str = STATE_KEY
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for ``FastAPI(lifespan=...)`` / ``Starlette(lifespan=...)``.

    ``pool`` is a :class:`pool.ClientPool` or a zero-argument function
    returning one (called at startup, so settings are read then). Startup
    fails, and the app does not start, when the first client cannot be warmed.
    """

    @contextlib.asynccontextmanager
    async def _lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        cp = pool if isinstance(pool, ClientPool) else pool()
        async with cp:
            setattr(app.state, state_key, cp)
            try:
                yield {state_key: cp}
            finally:
                delattr(app.state, state_key)

    return _lifespan


def _pool_of(request: Any, state_key: str) -> "ClientPool[Any]":
    cp = getattr(request.state, state_key, None)
    if cp is None:
        raise RuntimeError(
            f"no ClientPool in the request state under {state_key!r}: "
            "pass pool.integrations.fastapi.lifespan(...) to FastAPI(lifespan=...)"
        )
    return cp  # type: ignore[no-any-return]


def leased_database(name: str, *, state_key: str = STATE_KEY) -> Callable[..., Any]:
    """A dependency yielding database ``name`` of a client leased for the request."""
    from starlette.requests import Request

    async def dependency(request: Request) -> AsyncIterator[Any]:
        async with _pool_of(request, state_key).client() as client:
            yield client[name]

    return dependency


def pool_status(*, state_key: str = STATE_KEY) -> Callable[..., Any]:
    """A dependency returning ``pool.status().to_dict()``, for dashboards (probes: mount_health)."""
    from starlette.requests import Request

    async def dependency(request: Request) -> dict[str, Any]:  # async: on the loop
        return _pool_of(request, state_key).status().to_dict()

    return dependency


def mount_health(
    app: Any,
    *,
    prefix: str = DEFAULT_PREFIX,
    state_key: str = STATE_KEY,
    degraded_status: int = 200,
) -> None:
    """Add ``GET {prefix}/live`` and ``GET {prefix}/ready`` to a FastAPI or Starlette app.

    Each answers 200 or 503 with ``{"status", "reasons"}`` as JSON; a
    ``degraded`` answer gets ``degraded_status`` (200 or 503). Before the
    lifespan has opened the pool, readiness answers 503 and liveness 200.
    The routes stay out of the OpenAPI schema.
    """
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    check_degraded_status(degraded_status)

    def endpoint(probe: ProbeName) -> Callable[[Request], Any]:
        async def probe_endpoint(request: Request) -> JSONResponse:  # async: on the loop
            cp = getattr(request.app.state, state_key, None)
            status, body = answer(cp, probe, degraded_status)
            return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

        return probe_endpoint

    base = prefix.rstrip("/")
    app.add_route(f"{base}/live", endpoint("live"), methods=["GET"], include_in_schema=False)
    app.add_route(f"{base}/ready", endpoint("ready"), methods=["GET"], include_in_schema=False)
