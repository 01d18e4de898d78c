"""The lifetime rule shared by everything that owns a task or a socket.

Every :class:`AsyncResource` follows one rule:

* ``await x.start()`` means started: when it returns, the resource runs (its
  tasks exist, its first work has begun). ``async with x:`` calls
  :meth:`~AsyncResource.start` on entry and :meth:`~AsyncResource.aclose` on
  exit. ``start()`` again is a no-op; after ``aclose()`` it raises
  :class:`pool.PoolClosedError`. A resource with nothing to start (a
  credential source opens its connection on first use) is started from
  construction and its ``start()`` does nothing.
* ``aclose()`` is idempotent and finishes whatever cancels its caller
  (:func:`pool._internal.shield.finish`): the cancellation is re-raised once
  everything is released. A second ``aclose()`` while the first runs waits for
  it; one called from inside the cleanup itself returns at once.
* What happens on use before ``start()`` is documented by each resource.
* A resource started and garbage-collected without ``aclose()`` emits
  :class:`ResourceWarning`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from pool._internal.shield import finish

__all__ = ["AsyncResource"]


class AsyncResource:
    """``async with x:`` calls :meth:`start` on entry and :meth:`aclose` on exit.

    Subclasses override :meth:`start` (a no-op here) and implement
    :meth:`aclose`, usually as ``await self._close_once(self._release)``.
    """

    # Name-mangled (_AsyncResource__closing): subclasses keep their own names free.
    __closing: asyncio.Future[None] | None = None

    async def start(self) -> object:
        """Start the resource; when this returns it runs. A no-op unless overridden."""
        return None

    async def aclose(self) -> None:
        """Release everything; safe to call more than once."""
        raise NotImplementedError

    async def _close_once(self, release: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``release()`` once, to its end whatever cancels the caller; later callers wait.

        The first call runs it in a task of its own through :func:`finish` and
        raises what it raises (or the caller's cancellation, after it ended).
        Later calls wait for that task without raising its error; a call made
        from inside it returns at once (it would otherwise wait on itself).
        """
        closing = self.__closing
        if closing is None:
            loop = asyncio.get_running_loop()
            name = f"{type(self).__name__}.aclose"
            self.__closing = closing = loop.create_task(release(), name=name)
            await finish(closing)
            return
        if closing is asyncio.current_task() or closing.done():
            return
        await asyncio.wait([closing])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
