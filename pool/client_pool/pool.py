"""``ClientPool``: one warmed MongoDB client per AWS credential set, swapped without dropping work.

A MONGODB-AWS connection is authenticated once, when it opens; when its
credentials expire it keeps working, but every *new* connection fails. So the
pool builds one driver client per credential set (a *generation*), warms it
(connections opened and authenticated, a ping) before moving traffic to it,
and closes the previous client only when the last piece of work leased on it
has finished: ``close()`` on either driver would otherwise fail operations
waiting for a connection and cursors at their next ``getMore``, and a session
only works on the client that started it.

Concurrency model: all bookkeeping is :class:`pool.client_pool.generations.GenerationBook`,
synchronous and atomic on the event loop; clients are built, warmed and
closed outside it, closing through :func:`pool._internal.shield.finish`. Three
background tasks run while the pool is open: one follows the cache's
subscription, one rotates (build, warm, swap; backoff on failure), one warns
about and closes draining generations. Every timer runs on one
:class:`pool._internal.clock.Clock` (``clock=``), shared with the cache the
pool creates.

Lifetime: ``start()`` (or ``async with``) opens the pool; :meth:`client`,
:meth:`run` and :meth:`wait_for_generation` before it, or after
:meth:`aclose`, raise :class:`pool.PoolClosedError` naming the fix.
``aclose()`` is idempotent, and also closes a pool that was never started.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, overload

from pool._internal.clock import SYSTEM_CLOCK, Clock
from pool._internal.log import get_logger
from pool._internal.resource import AsyncResource
from pool._internal.shield import finish
from pool.cache import CredentialCache
from pool.client_pool.budget import ConnectionBudget
from pool.client_pool.diagnose import with_role
from pool.client_pool.drivers import DriverClient, get_driver
from pool.client_pool.generations import GenerationBook
from pool.client_pool.health import Health, pool_health
from pool.client_pool.leasing import ClientT, Leasing
from pool.client_pool.options import DEFAULT_WARM_SPREAD, check_settings
from pool.client_pool.rotation import Rotator
from pool.client_pool.status import PoolState, PoolStatus, snapshot
from pool.errors import ConfigurationError, CredentialsRefusedError, PoolClosedError
from pool.sources.base import CredentialSource
from pool.telemetry import Telemetry, default_telemetry
from pool.telemetry.classify import pool_name

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

__all__ = ["ClientPool"]


_log = get_logger("pool.client_pool")

DEFAULT_WARM_CONNECTIONS = 4


def _cache_for(source: CredentialSource, clock: Clock, telemetry: Telemetry) -> CredentialCache:
    """The cache a pool creates for ``source``, on the pool's clock and telemetry."""
    return CredentialCache(source, owns_source=True, clock=clock, telemetry=telemetry)


class ClientPool(AsyncResource, Leasing[ClientT]):
    """Hands out the current driver client; rotates it when the credentials rotate.

    ``credentials`` is a :class:`pool.CredentialCache` (which must stay open
    while the pool is; the pool never closes it) or a
    :class:`pool.CredentialSource` (then the pool creates, opens and closes a
    cache on its clock, and the cache closes the source). ``driver`` picks
    PyMongo's ``AsyncMongoClient`` (``"pymongo"``) or Motor's
    ``AsyncIOMotorClient`` (``"motor"``); any ``str`` is accepted and checked
    here (:class:`pool.ConfigurationError`). ``client_options`` go to every
    client, except the credential options, which come from the cache as
    keyword options and never through the URI.

    ``warm_connections`` connections are opened and authenticated on each new
    client before it takes traffic (set it near your steady concurrency).
    Should the serving client's credentials come close to expiry while the
    next one warms, the swap happens as soon as the next one has
    authenticated a connection. A replaced client opens no connection on its
    own and is closed when its last lease ends: leases (cursors, sessions,
    long aggregations) outlive their credentials, because an authenticated
    connection keeps working after they expire; a lease that needs a *new*
    connection after expiry fails with :class:`pool.LeaseExpiredError`.
    ``drain_timeout`` bounds that wait (default: one hour, with a
    ``pool.drain_slow`` warning every minute while leases remain).
    ``max_connections_per_member`` (default: no cap) bounds the application
    connections this pool holds to one member across the clients open during
    a rotation, for fleets near their tier's connection limit; it must be at
    least ``maxPoolSize`` (see :mod:`pool.client_pool.budget` for the rules
    and their cost).
    ``warm_spread`` (default 5 s) paces a rotation's warm-up: one connection
    per member at a time, evenly over that many seconds (never past the
    serving credentials' swap deadline; the first client warms at once), so
    a fleet's rotations open connections at a steady rate instead of in
    bursts; 0 opens them as fast as the driver allows.
    ``warmup_timeout`` bounds one warm-up and how long :meth:`run` waits for a
    newer client; ``close_timeout`` how long :meth:`aclose` waits for leases.
    ``clock`` runs every timer (tests pass a fake one). ``name`` (default: the
    URI's hosts) labels the pool's metrics and spans, reported through
    ``telemetry`` (default: the global OpenTelemetry providers; see
    :mod:`pool.telemetry`).

    Use it as ``async with ClientPool(...) as cp:``; event-loop only.
    """

    @overload
    def __init__(
        self: ClientPool[AsyncMongoClient[dict[str, Any]]],
        uri: str,
        *,
        credentials: CredentialCache | CredentialSource,
        driver: Literal["pymongo"] = "pymongo",
        warm_connections: int = DEFAULT_WARM_CONNECTIONS,
        drain_timeout: float | None = None,
        warmup_timeout: float = 30.0,
        close_timeout: float = 10.0,
        name: str | None = None,
        telemetry: Telemetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_connections_per_member: int | None = None,
        warm_spread: float | None = None,
        **client_options: Any,
    ) -> None: ...

    @overload
    def __init__(
        self: ClientPool[Any],
        uri: str,
        *,
        credentials: CredentialCache | CredentialSource,
        driver: str,
        warm_connections: int = DEFAULT_WARM_CONNECTIONS,
        drain_timeout: float | None = None,
        warmup_timeout: float = 30.0,
        close_timeout: float = 10.0,
        name: str | None = None,
        telemetry: Telemetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_connections_per_member: int | None = None,
        warm_spread: float | None = None,
        **client_options: Any,
    ) -> None: ...

    def __init__(
        self,
        uri: str,
        *,
        credentials: CredentialCache | CredentialSource,
        driver: str = "pymongo",
        warm_connections: int = DEFAULT_WARM_CONNECTIONS,
        drain_timeout: float | None = None,
        warmup_timeout: float = 30.0,
        close_timeout: float = 10.0,
        name: str | None = None,
        telemetry: Telemetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_connections_per_member: int | None = None,
        warm_spread: float | None = None,
        **client_options: Any,
    ) -> None:
        spread = DEFAULT_WARM_SPREAD if warm_spread is None else warm_spread
        check_settings(
            uri,
            warm=warm_connections,
            drain_timeout=drain_timeout,
            warmup_timeout=warmup_timeout,
            close_timeout=close_timeout,
            options=client_options,
            max_per_member=max_connections_per_member,
            warm_spread=spread,
        )
        telemetry = telemetry or default_telemetry()
        adapter = get_driver(driver)
        if isinstance(credentials, CredentialCache):
            self._cache, self._owns_cache = credentials, False
        elif callable(getattr(credentials, "fetch", None)):
            self._cache, self._owns_cache = _cache_for(credentials, clock, telemetry), True
        else:
            raise ConfigurationError(
                "credentials must be a pool.CredentialCache or a pool.CredentialSource "
                f"(an object with `async def fetch()`), not {type(credentials).__name__}"
            )
        self._clock = clock
        self._warmup_timeout = warmup_timeout
        self._close_timeout = close_timeout
        self._book: GenerationBook[DriverClient] = GenerationBook(drain_timeout=drain_timeout)
        cap = max_connections_per_member
        self._budget = None if cap is None else ConnectionBudget(cap)
        self._held: ContextVar[int] = ContextVar(f"pool.leases.{id(self)}", default=0)
        self._tel = telemetry.for_pool(name or pool_name(uri), self._book, clock.monotonic)
        self._rot = Rotator(
            uri=uri,
            driver=adapter,
            options=client_options,
            warm_connections=warm_connections,
            warmup_timeout=warmup_timeout,
            book=self._book,
            on_auth_failure=lambda creds: self._cache.invalidate(creds),
            clock=clock,
            telemetry=self._tel,
            max_per_member=max_connections_per_member,
            warm_spread=spread,
        )
        self._state: PoolState = "new"
        self._tasks: list[asyncio.Task[None]] = []
        self._closed_event = asyncio.Event()
        self._retries = 0

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Fetch credentials, build and warm the first client, start the background tasks.

        When it returns, the pool is open. Raises :class:`pool.WarmupError`
        when the first client cannot be warmed (there is no older one to fall
        back on), or the cache's :class:`pool.CredentialError`; everything
        started is closed again and the pool stays closed (create a new one
        to try again). :meth:`aclose` called meanwhile stops the warm-up;
        ``start()`` then raises :class:`pool.PoolClosedError`.
        """
        if self._state != "new":
            raise PoolClosedError(
                "ClientPool.start() was already called, or the pool was closed; create a new pool"
            )
        self._state = "starting"
        loop = asyncio.get_running_loop()
        # Its own task, which aclose() cancels like the background tasks.
        first = loop.create_task(self._open_first(), name="ClientPool.start")
        self._tasks.append(first)
        try:
            try:
                await first  # our own cancellation propagates into it
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if (task is not None and task.cancelling()) or self._state == "starting":
                    raise
                raise PoolClosedError("aclose() was called while start() ran") from None
            if self._state != "starting":  # aclose() came after the warm-up
                raise PoolClosedError("aclose() was called while start() ran")
            self._tasks.remove(first)
            for name, coro in (
                ("follow", self._rot.follow(self._cache.subscribe())),
                ("rotate", self._rot.rotate_forever()),
                ("expire", self._rot.expire_forever()),
            ):
                self._tasks.append(loop.create_task(coro, name=f"ClientPool.{name}"))
            self._state = "open"
        except BaseException:
            await self.aclose()
            raise

    async def _open_first(self) -> None:
        if self._owns_cache:
            await self._cache.__aenter__()
        try:
            await self._rot.rotate_to(await self._cache.get())
        except CredentialsRefusedError as exc:  # name the role, when the source knows it
            role = getattr(self._cache.source, "role_arn", None)
            named = with_role(exc, role if isinstance(role, str) else None, self._rot.driver.name)
            raise named from exc.__cause__

    async def aclose(self) -> None:
        """Stop rotating, let leases finish (up to ``close_timeout``), close every client.

        Idempotent and safe to call concurrently (later calls wait for the
        first to finish); a pool never started is simply marked closed.
        Cancelling it (``task.cancel()``, ``asyncio.timeout()``, an anyio scope)
        closes everything at once (leases still open are counted as dropped)
        before the cancellation propagates. Closes the cache only when the
        pool created it.
        """
        if self._state in ("closing", "closed"):
            await self._closed_event.wait()
            return
        self._state = "closing"
        try:
            await self._drain_for_close()
        finally:
            await finish(self._finish_close(), name="ClientPool.aclose")

    async def _drain_for_close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.shield(asyncio.wait(self._tasks))
        now = self._clock.monotonic()
        to_close = self._book.close(now, self._close_timeout)
        self._rot.notify()  # run() and wait_for_generation() waiters give up now
        await self._rot.close_gens(to_close)
        await self._rot.wait_idle(now + self._close_timeout)

    async def _finish_close(self) -> None:
        try:
            tasks, self._tasks = self._tasks, []
            if tasks:  # cancelled above; a cancelled aclose() may not have waited for them
                await asyncio.wait(tasks)
            # Cancelled before the book was closed, or while leases still held:
            # close everything now (open leases are counted as dropped).
            to_close = [] if self._book.closed else self._book.close(self._clock.monotonic(), 0.0)
            self._rot.notify()
            await self._rot.close_gens(to_close + self._rot.expire(math.inf))
            await self._rot.wait_closers()
            if self._owns_cache:
                await self._cache.aclose()
        finally:
            self._state = "closed"
            self._tel.closed()
            self._closed_event.set()

    async def wait_for_generation(self, number: int) -> int:
        """Wait until generation ``number``, or a newer one, serves; return the serving number.

        Generation numbers only grow, and a failed warm-up uses one too, so
        this waits for *a* generation numbered ``number`` or more. To wait for
        the next rotation: ``n = cp.status().generation``, trigger it (for
        example ``await cp.cache.refresh()``), then
        ``await cp.wait_for_generation(n + 1)``. Returns at once when such a
        generation already serves; raises :class:`pool.PoolClosedError` when
        the pool is not started yet, or is or becomes closed first. No
        timeout of its own: wrap it in ``asyncio.timeout(...)``; cancelling it
        is safe.
        """
        self._check_usable()
        await self._rot.wait_generation(number, None)
        current = self._book.current
        if current is not None and current.number >= number:
            return current.number
        raise PoolClosedError(f"the ClientPool closed before generation {number} served")

    @property
    def cache(self) -> CredentialCache:
        """The credential cache the pool follows; ``await cp.cache.refresh()`` rotates now."""
        return self._cache

    @property
    def clock(self) -> Clock:
        """The clock every timer of this pool runs on."""
        return self._clock

    def __repr__(self) -> str:
        current = self._book.current
        number = None if current is None else current.number
        return f"<ClientPool {self._rot.driver.name} {self._state} generation={number}>"

    def __del__(self, _warn: Any = warnings.warn) -> None:
        if getattr(self, "_state", "new") in ("starting", "open"):
            _warn(
                "ClientPool was never closed: use `async with` or await aclose()",
                ResourceWarning,
                stacklevel=2,
            )

    # -- status ------------------------------------------------------------

    def status(self) -> PoolStatus:
        """A typed snapshot for readiness probes and dashboards; never a secret.

        See :class:`pool.PoolStatus` for every field;
        ``cp.status().to_dict()`` is its JSON-serialisable form.
        """
        return snapshot(
            health=self.health(),
            now=self._clock.monotonic(),
            state=self._state,
            driver=self._rot.driver.name,
            book=self._book,
            rotator=self._rot,
            run_retries=self._retries,
            cache=self._cache.status(),
            telemetry=self._tel,
            budget=self._budget,
        )

    def health(self) -> Health:
        """Readiness and liveness now, with reasons (see :mod:`pool.client_pool.health`).

        Never blocks, never does I/O: built for probes called every few seconds.
        """
        return pool_health(
            now=self._clock.monotonic(),
            state=self._state,
            current=self._book.current,
            rotator=self._rot,
            cache=self._cache.status(),
            tasks=self._tasks,
            warmup_timeout=self._warmup_timeout,
        )
