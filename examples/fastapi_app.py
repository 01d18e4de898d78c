"""A FastAPI service for ECS or EC2: credentials from the task role or the instance profile.

Run with ``uvicorn examples.fastapi_app:app``. Settings come from the
environment: ``MONGODB_URI`` (no credentials in it), optionally
``MONGODB_DRIVER`` (``pymongo``/``motor``) and ``MONGODB_WARM_CONNECTIONS``
(about the number of requests you serve concurrently). The credential source
is detected: ECS sets ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (or ``..._FULL_URI``
with an authorization token), and on EC2 the instance metadata service answers.

* The pool opens in the lifespan: the service starts only once a warmed,
  authenticated client is ready, and at shutdown it closes after uvicorn has
  let requests in progress finish.
* Each request leases the current client through a dependency, so a rotation
  in the middle of a request never closes that request's client.
* ``/healthz/ready`` and ``/healthz/live`` are the Kubernetes / load balancer
  probes (200, or 503 when not ready / stuck; see the README's "Health
  probes"); ``/healthz`` returns the pool's full status for dashboards, with
  the readiness code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse

from pool import ClientPool
from pool.integrations.fastapi import leased_database, lifespan, mount_health, pool_status
from pool.sources import from_environment

# Parameters FastAPI fills per request: a database of the leased client, the pool status.
Shop = Annotated[Any, Depends(leased_database("shop"))]
Status = Annotated[dict[str, Any], Depends(pool_status())]


def create_app(environ: Mapping[str, str] | None = None) -> FastAPI:
    """The application; ``environ`` defaults to :data:`os.environ`, read at startup."""
    env = os.environ if environ is None else environ

    def make_pool() -> ClientPool[Any]:
        return ClientPool(
            env["MONGODB_URI"],
            credentials=from_environment(env),
            driver=env.get("MONGODB_DRIVER", "pymongo"),
            warm_connections=int(env.get("MONGODB_WARM_CONNECTIONS", "8")),
            serverSelectionTimeoutMS=5000,
        )

    app = FastAPI(lifespan=lifespan(make_pool))
    mount_health(app)  # GET /healthz/live, GET /healthz/ready

    @app.get("/healthz")
    async def healthz(status: Status) -> JSONResponse:
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    @app.put("/items/{item_id}")
    async def put_item(item_id: str, body: dict[str, Any], db: Shop) -> dict[str, Any]:
        await db.items.replace_one({"_id": item_id}, {"_id": item_id, **body}, upsert=True)
        return {"id": item_id}

    @app.get("/items/{item_id}")
    async def get_item(item_id: str, db: Shop) -> dict[str, Any]:
        doc = await db.items.find_one({"_id": item_id}, {"_id": 0})
        if doc is None:
            raise HTTPException(status_code=404, detail="no such item")
        return dict(doc)

    return app


app = create_app()
