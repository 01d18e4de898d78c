"""arq workers: one pool per worker process, opened at startup, closed at shutdown.

::

    from arq.connections import RedisSettings
    from pool import ClientPool
    from pool.integrations.arq import PoolHooks, get_pool
    from pool.sources import from_environment

    hooks = PoolHooks(lambda: ClientPool(uri, credentials=from_environment()))

    async def save_order(ctx, order):
        cp = get_pool(ctx)
        await cp.run(lambda c: c.shop.orders.replace_one({"_id": order["_id"]}, order, upsert=True))

    class WorkerSettings:
        functions = [save_order]
        on_startup = hooks.on_startup
        on_shutdown = hooks.on_shutdown
        redis_settings = RedisSettings()

Why arq: it is asyncio-native (each worker process runs up to ``max_jobs`` jobs
as tasks on one event loop, which is what one :class:`~pool.ClientPool` per
process serves), it hands every job the worker's ``ctx`` dict, and its
``on_startup``/``on_shutdown`` hooks run once per process around all jobs.
Scale out by running more worker processes; each opens its own pool. A
worker whose pool cannot be warmed at startup fails to start, as it should.

Nothing here imports arq (``ctx`` is a plain dict), so the module is free to
import anywhere. To run your own startup code as well, call
:meth:`PoolHooks.on_startup` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pool.client_pool import ClientPool

__all__ = ["DEFAULT_KEY", "PoolHooks", "get_pool"]

#: The ``ctx`` key the pool is stored under unless told otherwise.
DEFAULT_KEY = "mongo_pool"


class PoolHooks:
    """``on_startup``/``on_shutdown`` for arq's ``WorkerSettings``.

    ``pool`` is a :class:`pool.ClientPool` or a zero-argument function
    returning one (called in the worker process at startup, the usual choice:
    a pool belongs to one event loop). ``key`` is where it goes in ``ctx``.
    """

    def __init__(
        self,
        pool: ClientPool[Any] | Callable[[], ClientPool[Any]],
        *,
        key: str = DEFAULT_KEY,
    ) -> None:
        self._pool = pool
        self.key = key

    async def on_startup(self, ctx: dict[str, Any]) -> None:
        """Open the pool (first client warmed) and put it in ``ctx[key]``."""
        cp = self._pool if isinstance(self._pool, ClientPool) else self._pool()
        try:
            await cp.start()
        except BaseException:
            await cp.aclose()
            raise
        ctx[self.key] = cp

    async def on_shutdown(self, ctx: dict[str, Any]) -> None:
        """Close the pool (waits for leases still held, then closes every client). Idempotent."""
        cp = ctx.pop(self.key, None)
        if cp is not None:
            await cp.aclose()


def get_pool(ctx: dict[str, Any], key: str = DEFAULT_KEY) -> ClientPool[Any]:
    """The worker's pool, from a job's ``ctx``."""
    try:
        cp = ctx[key]
    except KeyError:
        raise RuntimeError(
            f"no ClientPool in the arq ctx under {key!r}: set WorkerSettings.on_startup = "
            "PoolHooks(...).on_startup (and on_shutdown)"
        ) from None
    if not isinstance(cp, ClientPool):
        raise RuntimeError(f"ctx[{key!r}] is a {type(cp).__name__}, not a ClientPool")
    return cp
