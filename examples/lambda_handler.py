"""AWS Lambda: one ClientPool per sandbox, created at module level, reused by every invocation.

Lambda runs a Python handler synchronously, one invocation at a time per
sandbox, and freezes the sandbox between invocations. Hence:

* the pool and the event loop it runs on live at module level. The first
  invocation opens the pool (one authenticated connection, warmed); later
  invocations reuse it: no new client, no new connection, no STS call on
  Atlas's side per invocation;
* a pool whose ``start()`` failed (server unreachable, credentials refused)
  is closed for good, so it is dropped and the next invocation builds a new
  one: a bad cold start fails that invocation, not the whole sandbox;
* each invocation runs to completion on that loop, so its leases end with it
  and nothing carries over to the next one;
* while the sandbox is frozen nothing runs (no refresh timer, no heartbeat).
  Lambda's own credentials (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
  ``AWS_SESSION_TOKEN`` in the environment, read by ``EnvironmentSource``) last
  the sandbox's lifetime; should the server refuse them anyway, ``run()``
  invalidates them, re-reads the environment and retries once.

Writes use ``replace_one(..., upsert=True)``: idempotent, so ``run()``'s
retry is safe. Settings: ``MONGODB_URI`` (no credentials in it), optionally
``MONGODB_DRIVER`` (``pymongo`` or ``motor``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pool import ClientPool
from pool.sources import EnvironmentSource

# The loop is created at import (Lambda's init phase); the pool by the first invocation.
_LOOP = asyncio.new_event_loop()
POOL: ClientPool[Any] | None = None


def _new_pool() -> ClientPool[Any]:
    return ClientPool(
        os.environ.get("MONGODB_URI", "mongodb://localhost:27017/"),
        credentials=EnvironmentSource(),
        driver=os.environ.get("MONGODB_DRIVER", "pymongo"),
        warm_connections=1,  # one invocation at a time per sandbox
        maxPoolSize=4,
        serverSelectionTimeoutMS=5000,
    )


async def _open_pool() -> ClientPool[Any]:
    """The sandbox's pool, started on first use; a failed start is retried next time."""
    global POOL
    if POOL is None:
        pool = _new_pool()
        await pool.start()  # on failure it closed what it opened; POOL stays None
        POOL = pool
    return POOL


async def _handle(event: dict[str, Any]) -> dict[str, Any]:
    pool = await _open_pool()
    item = {"_id": str(event["id"]), "value": event.get("value")}
    await pool.run(lambda c: c.app.items.replace_one({"_id": item["_id"]}, item, upsert=True))
    stored = await pool.run(lambda c: c.app.items.find_one({"_id": item["_id"]}))
    return {"statusCode": 200, "body": json.dumps(stored)}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point (``lambda_handler.handler``)."""
    return _LOOP.run_until_complete(_handle(event))


def shutdown() -> None:
    """Close the pool and the loop (local runs and tests; Lambda just ends the process)."""
    if not _LOOP.is_closed():
        if POOL is not None:
            _LOOP.run_until_complete(POOL.aclose())
        _LOOP.close()


if __name__ == "__main__":
    try:
        print(handler({"id": "local", "value": 1}, None))
    finally:
        shutdown()
