"""Cleanup that no cancellation can interrupt: :func:`finish`.

Why not anyio's ``CancelScope(shield=True)``: on asyncio it shields only against
anyio's own cancel scopes. A native ``task.cancel()`` or an enclosing
``asyncio.timeout()`` still reaches the code inside it, so a close that awaits
anything (a socket, a thread, another task) can be cut half-way and leave what it
was closing open. Why not a bare ``asyncio.shield()``: the caller gets its
``CancelledError`` at once while the cleanup goes on unseen, so a second
``aclose()`` cannot tell that the first has not finished.

:func:`finish` runs the cleanup in a task of its own and waits for it through
``asyncio.shield``; when the caller is cancelled (by anyio, ``task.cancel()`` or
``asyncio.timeout()``) it goes on waiting until the cleanup has finished, then
re-raises that same cancellation, so ``asyncio.timeout()`` still turns it into
``TimeoutError`` and anyio scopes still see their cancellation. The cost of that
rule: the caller's cancellation is delayed by as long as the cleanup takes, so
every cleanup passed here must be bounded (the callers pass close timeouts).

Which primitive does what: asyncio's ``shield`` plus the re-wait loop stop the
native cancellations (``task.cancel()``, ``asyncio.timeout()``), which anyio
cannot; anyio's ``CancelScope(shield=True)`` around that wait stops anyio's own,
which asyncio cannot stop quietly: anyio re-delivers a scope's cancellation on
every loop iteration while a task stays inside it (anyio 4.16,
``CancelScope._deliver_cancellation``), so without it the wait would be a busy
loop. Once the cleanup ended, ``anyio.lowlevel.checkpoint_if_cancelled()``
hands a pending anyio cancellation on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["finish", "pending_cleanups"]

T = TypeVar("T")

# Cleanups still running; a strong reference so a task whose caller was
# cancelled is not garbage-collected half-way (asyncio keeps only weak ones).
_running: set[asyncio.Future[Any]] = set()


async def finish(cleanup: Coroutine[Any, Any, T] | Awaitable[T], *, name: str | None = None) -> T:
    """Run ``cleanup`` to its end, whatever cancels the caller meanwhile.

    Returns what ``cleanup`` returns and raises what it raises. If the caller
    was cancelled while waiting, the cancellation is re-raised once the cleanup
    has finished (a cleanup error is then attached as its ``__context__``).
    """
    task = asyncio.ensure_future(cleanup)
    if name is not None and isinstance(task, asyncio.Task):
        task.set_name(name)
    _running.add(task)
    task.add_done_callback(_running.discard)
    cancelled: BaseException | None = None
    with anyio.CancelScope(shield=True):  # anyio's cancellation: not re-delivered meanwhile
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError as exc:
                # The caller was cancelled (or the cleanup cancelled itself): either
                # way, wait on until the cleanup has ended.
                cancelled = exc
            except BaseException:
                break  # the cleanup failed: task.result() below re-raises it
    if cancelled is None:
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()  # an anyio scope cancelled meanwhile
        except BaseException as exc:
            cancelled = exc
    if cancelled is not None:
        error = None if task.cancelled() else task.exception()
        raise cancelled from error
    return task.result()


def pending_cleanups() -> int:
    """How many cleanups passed to :func:`finish` are still running (for tests)."""
    return len(_running)
