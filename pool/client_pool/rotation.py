"""The rotation engine behind :class:`pool.ClientPool`: build, warm, swap, drain, close.

:class:`Rotator` owns the I/O side of the generations that
:class:`pool.client_pool.generations.GenerationBook` accounts for. Three coroutines run
as background tasks while the pool is open:

* :meth:`Rotator.follow` records the newest credential set the cache
  publishes (only the newest matters: a set superseded while a warm-up runs
  is skipped);
* :meth:`Rotator.rotate_forever` builds and warms a client for it, then swaps
  it in; a failed warm-up leaves the current client serving and is retried
  with jittered exponential backoff, sooner when a newer set arrives;
* :meth:`Rotator.expire_forever` warns about replaced generations that still
  wait for leases (every ``DRAIN_WARNING_EVERY``) and closes them at their
  drain bound.

A replaced generation stops opening connections on its own the moment it
starts draining (:meth:`pool.client_pool.drivers.Driver.stop_filling`).
Closing always goes through :func:`pool._internal.shield.finish`, so a
cancelled caller (a lease holder, ``aclose()``) never leaves a client
half-closed; :meth:`Rotator.wait_closers` joins the closes still running.
Every timer (warm-up deadline, backoff, drain bounds, warnings) runs on the
pool's :class:`pool._internal.clock.Clock`.

A warm-up the server refuses (code 18) reports the credential set through
``on_auth_failure`` (the pool invalidates it in the cache), once per set, and
ends :meth:`Rotator.wait_newer` early: a ``run()`` waiting for a newer client
then fails at once instead of after ``warmup_timeout``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterable, Callable, Coroutine, Mapping
from typing import Any

from pool._internal.backoff import backoff_delay
from pool._internal.clock import SYSTEM_CLOCK, Clock, move_on_after
from pool._internal.log import get_logger, key_hint
from pool._internal.shield import finish
from pool.client_pool.budget import capped_warm, holding
from pool.client_pool.drivers import Driver, DriverClient, is_auth_failure
from pool.client_pool.generations import Generation, GenerationBook, State, swap_by
from pool.client_pool.monitor import Address, ConnectionMonitor
from pool.client_pool.status import WarmupFailure
from pool.credentials import Credentials
from pool.errors import WarmupError
from pool.telemetry import Telemetry
from pool.telemetry.hooks import PoolTelemetry

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
        on_auth_failure: Callable[[Credentials], object] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        telemetry: PoolTelemetry | None = None,
        max_per_member: int | None = None,
        warm_spread: float = 0.0,
    ) -> None:
        self.uri = uri
        self.warm_spread = warm_spread
        self.max_per_member = max_per_member
        self.driver = driver
        self.options = options
        self.warm = warm_connections
        self.warmup_timeout = warmup_timeout
        self.book = book
        self.on_auth_failure = on_auth_failure
        self.clock = clock
        self.telemetry = telemetry or Telemetry(enabled=False).for_pool("", book, clock.monotonic)
        self.closers: set[asyncio.Task[None]] = set()
        self.closing: list[DriverClient] = []  # clients whose close is under way
        self._wanted: Credentials | None = None
        self._wanted_changed = asyncio.Event()
        self._deadlines_changed = asyncio.Event()
        # Set, then replaced, at each swap, failed warm-up and close: wakes waiters.
        self._progress = asyncio.Event()
        self._rotating = 0  # rotate_to() calls under way (build + warm-up)
        self.warming_since: float | None = None  # monotonic start of the oldest under way
        self._refused_number = 0  # the newest generation whose warm-up got code 18
        self._refused_key: str | None = None  # the last set reported as refused
        self._gen_closed = asyncio.Event()  # set, then replaced, when generations close
        self.warmup_failures = 0
        self.failures_in_a_row = 0
        self.partial_warmups = 0
        self.capped_warmups = 0
        self.last_error: tuple[float, WarmupError] | None = None

    # -- one rotation --------------------------------------------------------

    async def rotate_to(self, creds: Credentials) -> None:
        """Build and warm a client for ``creds``, then swap it in (the one await-free step).

        Raises :class:`pool.WarmupError` (or the driver adapter's
        :class:`pool.ConfigurationError`) and closes the new client on failure.
        """
        self.telemetry.rotation_started(creds.source)
        if not self._rotating:
            self.warming_since = self.clock.monotonic()
        self._rotating += 1
        try:
            gen = await self._build_and_warm(creds)
        except BaseException as exc:
            self.telemetry.rotation_failed(exc)
            raise
        finally:
            self._rotating -= 1
            if not self._rotating:
                self.warming_since = None
            self.notify()  # wait_newer() looks at _rotating
        previous = self.book.current
        to_close = self.book.activate(gen, self.clock.monotonic())
        self.telemetry.rotated(gen, previous)
        if previous is not None and previous.state is State.DRAINING:
            self.driver.stop_filling(previous.handle)  # its leases keep what they have
        self.failures_in_a_row = 0
        self.notify()
        self._deadlines_changed.set()
        _log.info(
            "pool.rotated",
            generation=gen.number,
            previous=None if previous is None else previous.number,
            key=key_hint(creds.access_key_id),
            connections=gen.handle.monitor.ready,
            per_member=gen.handle.monitor.ready_by_member(),
        )
        await self.close_gens(to_close)

    async def _build_and_warm(self, creds: Credentials) -> Gen:
        handle = await self.driver.build(self.uri, creds, self.options)
        try:
            gen = self.book.begin(creds, handle, expires_at=self.expires_at(creds))
        except BaseException:
            await self._closing(self._close_all([handle]))
            raise
        previous = self.book.current
        fill_until = None if previous is None else swap_by(previous)
        warm = self._warm_target(gen, previous)
        self.telemetry.warmup_started(gen)
        try:
            full = await self.driver.warm(
                handle,
                warm,
                within=self.warmup_timeout,
                fill_until=fill_until,
                clock=self.clock,
                startup=previous is None,
                key=key_hint(creds.access_key_id),
                source=creds.source,
                spread=self._spread_for(previous),
            )
        except BaseException as exc:
            refused = is_auth_failure(exc.__cause__ or exc)
            self.telemetry.warmup_failed(exc, refused)
            if refused:
                self._refused(gen)
            await self.close_gens(self.book.abandon(gen))
            raise
        # Not partial when the driver's own minPoolSize filling got there meanwhile.
        partial = not full and handle.monitor.ready < warm
        self.telemetry.warmup_ended("partial" if partial else "full")
        if partial:
            self.partial_warmups += 1
            _log.warning(
                "pool.warmup_partial",
                generation=gen.number,
                connections=handle.monitor.ready,
                wanted=warm,
                hint="the serving client's credentials expire soon; swapping with fewer "
                "connections (lower warm_connections or refresh earlier)",
            )
        return gen

    def hurry(self) -> None:
        """The serving client cannot open connections any more: warm-ups under way stop pacing."""
        for gen in self.book.generations:
            if gen.state is State.WARMING:
                gen.handle.hurry.set()

    def _spread_for(self, previous: Gen | None) -> float:
        """``warm_spread`` for a routine rotation; 0 when nothing healthy serves meanwhile.

        Pacing is for fleets' steady state. The first client, a replacement
        for a client whose credentials the server refused, and one for expired
        credentials are needed now, so they warm at once.
        """
        if previous is None or previous.auth_failure_reported:
            return 0.0
        if previous.expired(self.clock.monotonic()):
            return 0.0
        return self.warm_spread

    def _warm_target(self, gen: Gen, previous: Gen | None) -> int:
        """``warm_connections``, lowered to fit ``max_connections_per_member`` next to
        the serving client's connections (see :mod:`pool.client_pool.budget`)."""
        if self.max_per_member is None or previous is None:
            return self.warm
        serving = self.held_besides(gen)
        warm = capped_warm(self.warm, self.max_per_member, serving)
        gen.handle.reserved = warm
        if warm < self.warm:
            self.capped_warmups += 1
            _log.info(
                "pool.warmup_capped",
                generation=gen.number,
                connections=warm,
                wanted=self.warm,
                serving_busiest_member=max(serving.values(), default=0),
                limit=self.max_per_member,
            )
        return warm

    def held_besides(self, gen: Gen) -> Counter[Address]:
        """Per member, what every client open next to ``gen``'s may hold, closing ones too
        (:func:`pool.client_pool.budget.holding`): the warm-up's and admission's one count."""
        held: Counter[Address] = Counter()
        for other in self.book.generations:
            if other is not gen:
                held.update(holding(other))
        for handle in self.closing:
            held.update(handle.monitor.open_by_member())
        return held

    def monitors_besides(self, gen: Gen) -> list[ConnectionMonitor]:
        """The connection counters of every client open next to ``gen``'s, closing ones too."""
        others = [g.handle.monitor for g in self.book.generations if g is not gen]
        return others + [h.monitor for h in self.closing]

    def expires_at(self, creds: Credentials) -> float | None:
        """``creds``' expiry on the pool's clock (placed there through its wall clock)."""
        if creds.expiration is None:
            return None
        return self.clock.monotonic() + (creds.expiration.timestamp() - self.clock.time())

    def _refused(self, gen: Gen) -> None:
        """The server refused ``gen``'s credentials at warm-up: report them once, wake waiters."""
        self._refused_number = max(self._refused_number, gen.number)
        self.notify()
        key = gen.credentials.access_key_id
        if self._refused_key == key:
            return
        self._refused_key = key
        _log.warning("pool.warmup_auth_failed", generation=gen.number, key=key_hint(key))
        if self.on_auth_failure is not None:
            self.on_auth_failure(gen.credentials)

    # -- background tasks ----------------------------------------------------

    async def follow(self, subscription: AsyncIterable[Credentials]) -> None:
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
        attempt = 0
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
                attempt += 1
                await self._back_off(
                    backoff_delay(attempt, BACKOFF_INITIAL, BACKOFF_MAX, floor=0.5)
                )
                self._wanted_changed.set()
            else:
                attempt = 0

    async def _back_off(self, delay: float) -> None:
        """Pause after a failed rotation; a newer set cuts the first pause short.

        Only the first: a refused warm-up invalidates its set, and a source
        that mints new keys on each fetch (STS) would otherwise be asked again
        at the pace of failing handshakes.
        """
        if self.failures_in_a_row > 1:
            await self.clock.sleep(delay)
            return
        async with move_on_after(self.clock, delay):
            await self._wanted_changed.wait()

    async def expire_forever(self) -> None:
        """Warn about slow drains and close each draining generation at its drain bound."""
        while True:
            nxt = self.book.next_deadline()
            timeout = None if nxt is None else max(0.0, nxt - self.clock.monotonic())
            async with move_on_after(self.clock, timeout):
                await self._deadlines_changed.wait()
            self._deadlines_changed.clear()
            now = self.clock.monotonic()
            self._warn_slow_drains(now)
            await self.close_gens(self.expire(now))

    def _warn_slow_drains(self, now: float) -> None:
        for gen in self.book.slow_drains(now):
            _log.warning(
                "pool.drain_slow",
                generation=gen.number,
                leases=gen.leases,
                draining_for_s=round(now - (gen.drain_started or now), 1),
                closes_in_s=None if gen.deadline is None else round(gen.deadline - now, 1),
                expired=gen.expired(now),
                hint="a replaced client still waits for leases (cursors, sessions, "
                "`async with cp.client()` blocks); it closes when the last one ends",
            )

    def _record_failure(self, exc: Exception) -> None:
        error = exc if isinstance(exc, WarmupError) else WarmupError(
            f"building the next client failed: {type(exc).__name__}; "
            "the current client keeps serving"
        )  # fmt: skip
        self.warmup_failures += 1
        self.failures_in_a_row += 1
        self.last_error = (self.clock.monotonic(), error)
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
                self.telemetry.leases_dropped(gen.dropped)
                _log.warning(
                    "pool.leases_dropped",
                    generation=gen.number,
                    dropped=gen.dropped,
                    hint="a lease outlived the drain bound (drain_timeout); its client was "
                    "closed under it",
                )
        return expired

    async def close_gens(self, gens: list[Gen]) -> None:
        """Close ``gens``' clients; the close finishes whatever cancels the caller."""
        if gens:
            # Counted as closing from now on, not from the close task's first step.
            self.closing.extend(g.handle for g in gens)
            await self._closing(self._close_clients(gens))

    async def _closing(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run ``cleanup`` through :func:`finish`, tracked so :meth:`wait_closers` can join it."""
        task = asyncio.get_running_loop().create_task(cleanup)
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)
        await finish(task)

    async def _close_clients(self, gens: list[Gen]) -> None:
        await self._close_all([g.handle for g in gens], registered=True)
        for gen in gens:
            self.telemetry.generation_closed(gen)
            _log.debug("pool.generation_closed", generation=gen.number, dropped=gen.dropped)
        self._gen_closed.set()
        self._gen_closed = asyncio.Event()

    async def _close_all(self, handles: list[DriverClient], registered: bool = False) -> None:
        # Counted by max_connections_per_member until closed: their sockets are open.
        if not registered:
            self.closing.extend(handles)
        try:
            await asyncio.gather(*(self.driver.close(h) for h in handles))
        finally:
            for handle in handles:
                self.closing.remove(handle)

    async def wait_closers(self) -> None:
        """Wait until every close started so far has finished."""
        while self.closers:
            await asyncio.wait(set(self.closers))

    # -- waiting -------------------------------------------------------------

    def notify(self) -> None:
        """Wake every :meth:`wait_newer`/:meth:`wait_generation` waiter to look again."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def _wait_for(self, check: Callable[[], bool | None], until: float | None) -> bool:
        """Wait until ``check()`` returns a bool (returned); False at ``until`` (monotonic)."""
        while True:
            result = check()
            if result is not None:
                return result
            left = None if until is None else until - self.clock.monotonic()
            if left is not None and left <= 0:
                return False
            async with move_on_after(self.clock, left):
                await self._progress.wait()

    def _serving_from(self, number: int) -> bool | None:
        current = self.book.current
        if current is not None and current.number >= number:
            return True
        return False if self.book.closed else None

    async def wait_generation(self, number: int, until: float | None) -> bool:
        """Wait until generation ``number`` or a newer one serves; False at ``until`` or close."""
        return await self._wait_for(lambda: self._serving_from(number), until)

    async def wait_newer(self, number: int, until: float) -> bool:
        """Wait until a generation newer than ``number`` serves; False at ``until`` or close.

        Also False, early, when the server refused (code 18) the warm-up of a
        generation newer than ``number`` and no other warm-up is under way:
        the credentials a retry would get are refused too.
        """

        def check() -> bool | None:
            serving = self._serving_from(number + 1)
            if serving is None and self._refused_number > number and not self._rotating:
                return False
            return serving

        return await self._wait_for(check, until)

    async def wait_idle(self, until: float) -> None:
        """Wait until every generation is closed, or until ``until`` (pool clock)."""
        while not self.book.idle and (left := until - self.clock.monotonic()) > 0:
            async with move_on_after(self.clock, left):
                await self._gen_closed.wait()

    def last_failure(self, now: float) -> WarmupFailure | None:
        """The last warm-up failure (message only; never a secret), or None."""
        if self.last_error is None:
            return None
        at, exc = self.last_error
        return WarmupFailure(message=str(exc), seconds_ago=round(now - at, 3))
