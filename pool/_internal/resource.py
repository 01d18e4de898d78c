"""The async-context-manager shape shared by everything that owns a task or a socket."""

from __future__ import annotations

from types import TracebackType
from typing import Self

__all__ = ["AsyncResource"]


class AsyncResource:
    """``async with x:`` calls :meth:`start` on entry and :meth:`aclose` on exit.

    Subclasses override :meth:`start` (a no-op here) and implement an
    idempotent :meth:`aclose`.
    """

    async def start(self) -> object:
        """Acquire what the resource owns. A no-op unless overridden."""
        return None

    async def aclose(self) -> None:
        """Release everything; safe to call more than once."""
        raise NotImplementedError

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
