"""Warm-up for :class:`pool.client_pool.drivers.Driver`: ping, then fill, paced or not.

A mixin so the driver adapter keeps building and closing, and this module
the part with the rules (see :mod:`pool.client_pool.drivers` for why warm-up
raises ``minPoolSize`` step by step instead of building the client with it,
and :mod:`pool.client_pool.filling` for the PyMongo details):

* the ping connects, selects the server and authenticates one connection, so
  refused credentials fail fast (:class:`pool.CredentialsRefusedError`), and
  an unreachable server as soon as the driver's monitor has seen every server
  fail (:class:`pool.ServerUnreachableError`);
* the fill opens connections until every data-bearing member has
  ``connections`` (:func:`pool.client_pool.monitor.warm_members`), at most
  ``maxConnecting`` at a time and never past the target; with ``spread`` it
  opens one per member at a time, evenly over that many seconds.

One residual race, named: PyMongo's own periodic task (once a second) reads
the same raised minimum, and if it runs during one of our fill steps both
open a connection (``remove_stale_sockets`` compares ``requests``, not the
connections being opened, to the minimum), so that round may end one over.
Nothing public stops the driver's task; the tests allow that one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pymongo.errors import PyMongoError

from pool._internal.clock import SYSTEM_CLOCK, Clock, fail_after, move_on_after
from pool.client_pool import diagnose, filling
from pool.client_pool.monitor import warm_members

if TYPE_CHECKING:
    from pool.client_pool.drivers import DriverClient

__all__ = ["Warming"]

# Real seconds a warm-up waits for a connection event before running the fill
# step again (the driver's periodic task may hold the maxConnecting slots).
_RECHECK = 0.25


class Warming:
    """The warm-up half of a driver adapter (which supplies the four methods below)."""

    name: str

    def _core(self, client: Any) -> Any:
        raise NotImplementedError

    async def _ping(self, client: Any) -> None:
        raise NotImplementedError

    async def _fill_once(self, client: Any) -> None:
        raise NotImplementedError

    async def warm(
        self,
        handle: DriverClient,
        connections: int,
        *,
        within: float,
        fill_until: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        startup: bool = False,
        key: str = "-",
        source: str = "",
        spread: float = 0.0,
    ) -> bool:
        """Connect, ping (authenticating one connection), then open up to ``connections``.

        Returns True when all ``connections`` are ready, False when filling
        stopped at ``fill_until`` (a ``clock.monotonic()`` reading) with fewer:
        the caller needs the client sooner than a full warm-up allows. Raises
        :class:`pool.WarmupError` (the driver's error as ``__cause__``) when the
        ping fails or after ``within`` seconds on ``clock``. Cancellable
        between connection attempts (see :mod:`pool.client_pool.filling`); the
        caller closes the client on failure. An unreachable server fails it as
        soon as the driver's monitor has seen every server fail, not after
        ``within`` (:class:`pool.ServerUnreachableError`); refused credentials
        raise :class:`pool.CredentialsRefusedError`. ``startup`` (the pool's
        first client), ``key`` (a key hint) and ``source`` only shape the message.
        ``spread`` (seconds on ``clock``) paces the filling: one connection per
        member at a time, evenly over that long, so a fleet's rotations do not
        open their connections in bursts; it is shortened to half the time left
        before ``fill_until``, so pacing never makes a warm-up partial.
        """
        started = clock.monotonic()
        try:
            async with fail_after(clock, within):
                await self._ping_or_unreachable(handle, startup)
                # Pacing never takes more than half of what is left of ``within``
                # either: a paced fill must not turn into a failed warm-up.
                spread = min(spread, max(0.0, within - (clock.monotonic() - started)) / 2)
                if fill_until is None:
                    await self._fill(handle, connections, clock, spread)
                    return True
                left = max(0.0, fill_until - clock.monotonic())
                try:
                    async with fail_after(clock, left):
                        await self._fill(handle, connections, clock, min(spread, left / 2))
                    return True
                except TimeoutError:
                    return False
        except (PyMongoError, TimeoutError) as exc:
            error = diagnose.warmup_error(
                self.name, exc, handle.secrets, client=handle.client, within=within,
                startup=startup, key=key, source=source,
            )  # fmt: skip
            # A warm-up timeout's own chain is only CancelledError -> TimeoutError:
            # the server's last error says more.
            cause = exc if isinstance(exc, PyMongoError) else diagnose.first_error(handle.client)
            raise error from (cause or exc)

    async def _ping_or_unreachable(self, handle: DriverClient, startup: bool) -> None:
        """The ping, ended early when the driver's monitor finds every server unreachable."""
        loop = asyncio.get_running_loop()
        ping = loop.create_task(self._ping(handle.client))
        watch = loop.create_task(diagnose.watch_unreachable(handle.client, handle.secrets))
        try:
            await asyncio.wait({ping, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (ping, watch):
                task.cancel()
            await asyncio.wait({ping, watch})
        if not ping.cancelled():  # the ping ended first: its answer, or its error, wins
            ping.result()
            return
        refused = diagnose.auth_failure(handle.client)
        if refused is not None:
            # The server was reached: a connection's handshake got code 18 and the
            # driver marked the server unknown with it. Reported as the refusal.
            raise refused
        error = diagnose.unreachable_error(self.name, watch.result(), startup=startup)
        raise error from diagnose.first_error(handle.client)

    async def _fill(
        self, handle: DriverClient, target: int, clock: Clock = SYSTEM_CLOCK, spread: float = 0.0
    ) -> None:
        client = self._core(handle.client)
        max_connecting = max(1, int(filling.pool_options(client).max_connecting))
        parallel = 1 if spread > 0 else max_connecting
        pause = spread / max(1, target)
        try:
            # warm_connections is per member (see monitor.warm_members).
            while handle.monitor.short_of(target, members := warm_members(handle.client)):
                before = handle.monitor.ready
                if handle.hurry.is_set():  # needed now: no more pacing
                    pause, parallel = 0.0, max_connecting
                # Concurrent steps each loop in PyMongo 4.20's remove_stale_sockets,
                # which compares `len(conns) + active` and `requests` to the minimum
                # apart and never counts connections still being opened: s steps
                # overshoot a minimum by up to s - 1. So parallel rounds aim s - 1
                # short, and the last connections come one step at a time.
                steps = max(1, min(parallel, handle.monitor.smallest_shortfall(target, members)))
                goal = target - (steps - 1)
                if pause > 0:
                    # Paced, one round raises the minimum just past the emptiest
                    # member's count: one connection per short member.
                    goal = min(target, handle.monitor.fewest(members) + 1)
                filling.set_min_pool_size(client, max(goal, handle.min_pool_size))
                await filling.run_step(client, [self._step_of(handle.client)] * steps)
                if pause > 0 and handle.monitor.short_of(target, warm_members(handle.client)):
                    # Paced: the minimum goes back meanwhile, so the driver's own
                    # periodic fill does not open the rest at once; a hurry ends the pause.
                    filling.set_min_pool_size(client, handle.min_pool_size)
                    async with move_on_after(clock, pause):
                        await handle.hurry.wait()
                    continue
                if handle.monitor.ready <= before:
                    # Another filler (the driver's periodic task) held the
                    # maxConnecting slots, or the step is unavailable: wait
                    # for the next connection event.
                    await handle.monitor.wait_change(_RECHECK)
        finally:
            if not handle.filling_stopped:
                filling.set_min_pool_size(client, handle.min_pool_size)

    def _step_of(self, client: Any) -> Any:
        async def step() -> None:
            await self._fill_once(client)

        return step
