"""The rotation engine behind :class:`pool.ClientPool`: build, warm, swap, drain, close.

:class:`Rotator` owns the I/O side of the generations that
:class:`pool.generation.GenerationBook` accounts for. Three coroutines run
as background tasks while the pool is open:

* :meth:`Rotator.follow` records the newest credential set the cache
  publishes (only the newest matters: a set superseded while a warm-up runs
  is skipped);
* :meth:`Rotator.rotate_forever` builds and warms a client for it, then swaps
  it in; a failed warm-up leaves the current client serving and is retried
  with jittered exponential backoff, sooner when a newer set arrives;
* :meth:`Rotator.expire_forever` closes draining generations at their deadline.

Closing always happens in a task of its own awaited through
:func:`asyncio.shield`, so a cancelled caller (a lease holder, ``aclose()``)
never leaves a client half-closed; :meth:`Rotator.wait_closers` joins them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from typing import Any

from ._log import get_logger, key_hint
from .credentials import Credentials
from .drivers import Driver, DriverClient
from .errors import WarmupError
from .generation import Generation, GenerationBook, swap_by

__all__ = ["BACKOFF_INITIAL", "BACKOFF_MAX", "Gen", "Rotator"]

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0

Gen = Generation[DriverClient]

_log = get_logger("pool.client_pool")


class Rotator:
    """Builds, warms, swaps and closes the generations of one pool. Event-loop only."""

    def __init__(
        self,
        *,
        uri: str,
        driver: Driver,
        options: Mapping[str, Any],
        warm_connections: int,
        warmup_timeout: float,
        book: GenerationBook[DriverClient],
    ) -> None:
        self.uri = uri
        self.driver = driver
        self.options = options
        self.warm = warm_connections
        self.warmup_timeout = warmup_timeout
        self.book = book
        self.closers: set[asyncio.Task[None]] = set()
        self._wanted: Credentials | None = None
        self._wanted_changed = asyncio.Event()
        self._deadlines_changed = asyncio.Event()
        self._swapped = asyncio.Event()  # set, then replaced, at each swap
        self._gen_closed = asyncio.Event()  # set, then replaced, when generations close
        self.warmup_failures = 0
        self.failures_in_a_row = 0
        self.partial_warmups = 0
        self.last_error: tuple[float, WarmupError] | None = None

    # -- one rotation --------------------------------------------------------

    async def rotate_to(self, creds: Credentials) -> None:
        """Build and warm a client for ``creds``, then swap it in (the one await-free step).

        Raises :class:`pool.WarmupError` (or the driver adapter's
        :class:`pool.ConfigurationError`) and closes the new client on failure.
        """
        handle = await self.driver.build(self.uri, creds, self.options, warm_connections=self.warm)
        try:
            gen = self.book.begin(creds, handle)
        except BaseException:
            await asyncio.shield(self.driver.close(handle))
            raise
        previous = self.book.current
        fill_until = None if previous is None else swap_by(previous.credentials)
        try:
            full = await self.driver.warm(
                handle, self.warm, within=self.warmup_timeout, fill_until=fill_until
            )
        except BaseException:
            await self.close_gens(self.book.abandon(gen))
            raise
        if not full:
            self.partial_warmups += 1
            _log.warning(
                "pool.warmup_partial",
                generation=gen.number,
                connections=handle.monitor.ready,
                wanted=self.warm,
                hint="the serving client's credentials expire soon; swapping with fewer "
                "connections (lower warm_connections or refresh earlier)",
            )
        to_close = self.book.activate(gen, time.monotonic())
        self.failures_in_a_row = 0
        self._swapped.set()
        self._swapped = asyncio.Event()
        self._deadlines_changed.set()
        _log.info(
            "pool.rotated",
            generation=gen.number,
            previous=None if previous is None else previous.number,
            key=key_hint(creds.access_key_id),
            connections=handle.monitor.ready,
        )
        await self.close_gens(to_close)

    # -- background tasks ----------------------------------------------------

    async def follow(self, subscription: Any) -> None:
        """Record each set ``subscription`` (the cache's) yields as the one wanted."""
        async for creds in subscription:
            self._wanted = creds
            self._wanted_changed.set()
        if not self.book.closed:
            _log.warning(
                "pool.cache_closed",
                hint="the credential cache closed while the pool is open: no more rotations; "
                "keep the cache open until the pool is closed",
            )

    async def rotate_forever(self) -> None:
        """Rotate to the wanted set whenever it differs from the serving one."""
        delay = BACKOFF_INITIAL
        while True:
            await self._wanted_changed.wait()
            self._wanted_changed.clear()
            creds, current = self._wanted, self.book.current
            if creds is None or (current is not None and current.credentials.same_keys(creds)):
                continue
            try:
                await self.rotate_to(creds)
            except Exception as exc:  # keep serving on the current client
                self._record_failure(exc)
                try:  # back off; a newer credential set cuts the wait short
                    async with asyncio.timeout(delay * (0.5 + random.random() / 2)):
                        await self._wanted_changed.wait()
                except TimeoutError:
                    pass
                self._wanted_changed.set()
                delay = min(delay * 2, BACKOFF_MAX)
            else:
                delay = BACKOFF_INITIAL

    async def expire_forever(self) -> None:
        """Close each draining generation when its deadline passes."""
        while True:
            nxt = self.book.next_deadline()
            timeout = None if nxt is None else max(0.0, nxt - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    await self._deadlines_changed.wait()
            except TimeoutError:
                pass
            self._deadlines_changed.clear()
            await self.close_gens(self.expire(time.monotonic()))

    def _record_failure(self, exc: Exception) -> None:
        error = exc if isinstance(exc, WarmupError) else WarmupError(
            f"building the next client failed: {type(exc).__name__}; "
            "the current client keeps serving"
        )  # fmt: skip
        self.warmup_failures += 1
        self.failures_in_a_row += 1
        self.last_error = (time.monotonic(), error)
        _log.warning(
            "pool.warmup_failed",
            error=str(error),
            cause=type(exc.__cause__ or exc).__name__,
            in_a_row=self.failures_in_a_row,
        )

    # -- closing -------------------------------------------------------------

    def expire(self, now: float) -> list[Gen]:
        """Close (in the book) every generation past its deadline; log dropped leases."""
        expired = self.book.expire(now)
        for gen in expired:
            if gen.dropped:
                _log.warning(
                    "pool.leases_dropped",
                    generation=gen.number,
                    dropped=gen.dropped,
                    hint="a lease outlived the drain deadline; its client was closed under it",
                )
        return expired

    async def close_gens(self, gens: list[Gen]) -> None:
        """Close ``gens``' clients in their own task, shielded from the caller's cancellation."""
        if not gens:
            return
        task = asyncio.get_running_loop().create_task(self._close_clients(gens))
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)
        await asyncio.shield(task)

    async def _close_clients(self, gens: list[Gen]) -> None:
        await asyncio.gather(*(self.driver.close(g.handle) for g in gens))
        for gen in gens:
            _log.debug("pool.generation_closed", generation=gen.number, dropped=gen.dropped)
        self._gen_closed.set()
        self._gen_closed = asyncio.Event()

    async def wait_closers(self) -> None:
        """Wait until every close started so far has finished."""
        while self.closers:
            await asyncio.wait(set(self.closers))

    # -- waiting -------------------------------------------------------------

    async def wait_newer(self, number: int, until: float) -> bool:
        """Wait until a generation newer than ``number`` serves; False at ``until`` or close."""
        while True:
            current = self.book.current
            if current is not None and current.number > number:
                return True
            left = until - time.monotonic()
            if self.book.closed or left <= 0:
                return False
            try:
                async with asyncio.timeout(left):
                    await self._swapped.wait()
            except TimeoutError:
                pass

    async def wait_idle(self, until: float) -> None:
        """Wait until every generation is closed, or until ``until`` (monotonic)."""
        while not self.book.idle and (left := until - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    await self._gen_closed.wait()
            except TimeoutError:
                return

    def error_status(self, now: float) -> dict[str, Any]:
        """Warm-up failure counters and the last error (message only; never a secret)."""
        error = None
        if self.last_error is not None:
            at, exc = self.last_error
            error = {"message": str(exc), "seconds_ago": round(now - at, 3)}
        return {
            "warmup_failures": self.warmup_failures,
            "warmup_failures_in_a_row": self.failures_in_a_row,
            "partial_warmups": self.partial_warmups,
            "last_warmup_error": error,
        }
