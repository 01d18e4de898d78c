"""The cache's pre-``Clock`` keywords (``clock=<callable>``, ``sleep=``), kept for one release.

Deprecated: pass one :class:`pool._internal.clock.Clock` as ``clock`` instead.
Remove this module in the release after next.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable

from pool._internal.clock import Clock

__all__ = ["clock_from"]


class _CallableClock:
    """A :class:`Clock` made of a monotonic callable and a matching sleep."""

    __slots__ = ("_monotonic", "_sleep")

    def __init__(
        self, monotonic: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        self._monotonic, self._sleep = monotonic, sleep

    def monotonic(self) -> float:
        return self._monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


def clock_from(
    clock: Clock | Callable[[], float], sleep: Callable[[float], Awaitable[None]] | None
) -> Clock:
    """``clock`` itself, or the old callable/``sleep`` pair wrapped (with a warning)."""
    if isinstance(clock, Clock) and sleep is None:
        return clock
    warnings.warn(
        "CredentialCache(clock=<callable>, sleep=...) is deprecated; pass one "
        "pool._internal.clock.Clock as clock= (it has monotonic(), time() and sleep())",
        DeprecationWarning,
        stacklevel=3,
    )
    if isinstance(clock, Clock):
        return _CallableClock(clock.monotonic, sleep or clock.sleep)
    return _CallableClock(clock, sleep or asyncio.sleep)
