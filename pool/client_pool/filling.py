"""Opening a client's connections ahead of traffic, and stopping it: the PyMongo details.

Two behaviours of PyMongo 4.20 (read in 4.20.1's sources) shape this module.

**Who opens connections on their own.** ``Pool.remove_stale_sockets``
(``pymongo/asynchronous/pool.py``, and ``synchronous/pool.py`` under Motor)
opens connections until the pool holds ``min_pool_size``; it re-reads
``self.opts.min_pool_size`` before each one. It runs from the client's
``_process_periodic_tasks`` (``Topology.update_pool``), which PyMongo's own
periodic executor calls every second for as long as the client is open. So a
client built with ``minPoolSize`` keeps opening connections in the background,
and once its credentials have expired each attempt fails with code 18 and
makes the driver clear the whole pool (SDAM's rule for handshake errors),
under the operations still using it. Hence the pool never builds a client
with more than the user's own ``minPoolSize`` (0 by default): it raises the
minimum only while it warms a client, by one step at a time, and sets it to
0 when the client is replaced (:func:`stop_filling`). Every server's pool
reads the client's one :class:`pymongo.pool_options.PoolOptions` object
(``Topology._create_pool_for_server`` passes ``settings.pool_options``), which
stores the value in the name-mangled ``_PoolOptions__min_pool_size``; that is
the one private attribute written here (``tests/client_pool/test_pymongo_guards.py``
fails if it moves).

**A connection attempt must not be cancelled half-way.**
``_async_create_connection`` (``pymongo/pool_shared.py``) closes the socket it
created only on ``OSError``/``TimeoutError``; a ``CancelledError`` during the
TCP connect leaves it to the garbage collector (an unclosed-socket
``ResourceWarning``). So a fill step is never cancelled: when the caller is
cancelled (``aclose()``, the warm-up deadline), the minimum drops to 0, so
the step ends after the connections already in flight, and :func:`run_step`
waits for it, shielded by :func:`pool._internal.shield.finish`, before
re-raising. That wait is bounded by the driver's ``connectTimeoutMS`` (which
bounds the TCP connect); past it, the step is cancelled, which is then safe
(PyMongo closes a connection cancelled during its handshake).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pool._internal.shield import finish

__all__ = [
    "MIN_POOL_SIZE_ATTRIBUTE",
    "connect_grace",
    "max_pool_size",
    "min_pool_size",
    "pool_options",
    "run_step",
    "set_min_pool_size",
]

# PyMongo 4.20.1, pymongo/pool_options.py: PoolOptions.__slots__ has "__min_pool_size".
MIN_POOL_SIZE_ATTRIBUTE = "_PoolOptions__min_pool_size"
_DEFAULT_CONNECT_TIMEOUT = 20.0  # PyMongo's connectTimeoutMS default, in seconds


def pool_options(client: Any) -> Any:
    """The client's shared ``PoolOptions``.

    ``client`` is a PyMongo client (``AsyncMongoClient``, or the ``MongoClient``
    a Motor client delegates to).
    """
    return client.options.pool_options


def min_pool_size(client: Any) -> int:
    """The minimum the client's pools fill up to right now."""
    return int(pool_options(client).min_pool_size)


def max_pool_size(client: Any) -> float:
    """The most connections one of the client's pools opens (``inf`` when unlimited)."""
    size = pool_options(client).max_pool_size
    return float("inf") if not size else float(size)


def set_min_pool_size(client: Any, size: int) -> None:
    """Make every pool of ``client`` fill up to ``size`` from its next attempt on.

    Thread-safe enough for Motor: one attribute store, read by the fill loop
    before each new connection.
    """
    options = pool_options(client)
    if not hasattr(options, MIN_POOL_SIZE_ATTRIBUTE):  # a PyMongo that moved it
        return
    setattr(options, MIN_POOL_SIZE_ATTRIBUTE, max(0, int(size)))


def connect_grace(client: Any) -> float:
    """How long a connection attempt in flight may take to finish: ``connectTimeoutMS`` + 1 s."""
    timeout = getattr(pool_options(client), "connect_timeout", None)
    return (timeout or _DEFAULT_CONNECT_TIMEOUT) + 1.0


async def run_step(client: Any, steps: list[Callable[[], Awaitable[None]]]) -> None:
    """Run the fill ``steps`` concurrently and wait for them; never cancel one half-way.

    When the caller is cancelled, the pools' minimum drops to 0 (the steps
    end after the connections in flight), the steps are awaited up to
    :func:`connect_grace` real seconds (shielded), then the cancellation is
    re-raised. Errors of the steps themselves are swallowed: PyMongo's
    ``_process_periodic_tasks`` logs and swallows its own too.
    """
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(_quiet(step)) for step in steps]
    try:
        await asyncio.shield(asyncio.wait(tasks))
    except asyncio.CancelledError:
        set_min_pool_size(client, 0)
        await finish(_settle(tasks, connect_grace(client)), name="pool.fill-settle")
        raise


async def _quiet(step: Callable[[], Awaitable[None]]) -> None:
    try:
        await step()
    except Exception:  # the warm-up counts connections, not the step's errors
        pass


async def _settle(tasks: list[asyncio.Task[None]], grace: float) -> None:
    """Wait for ``tasks`` up to ``grace`` real seconds (real I/O), then cancel the rest."""
    _done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()  # past the TCP connect by now: PyMongo closes what it opened
    if pending:
        await asyncio.wait(pending)
