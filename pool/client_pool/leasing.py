"""Leasing for :class:`pool.ClientPool`: ``client()``, ``run()`` and their retry rules.

A mixin, so :mod:`pool.client_pool.pool` keeps the lifecycle and this module
the hot path: one synchronous acquire on the
:class:`pool.client_pool.generations.GenerationBook`, the caller's operation,
one synchronous release (so a cancelled caller never keeps a lease). Under
``max_connections_per_member`` a lease may first wait for room
(:mod:`pool.client_pool.budget`); a failure that happened before the server
ran the command is retried once on the right client (:mod:`pool.client_pool.retry`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Generic, TypeVar

from pool._internal.clock import Clock
from pool._internal.log import get_logger, key_hint
from pool.cache import CredentialCache
from pool.client_pool.budget import ConnectionBudget
from pool.client_pool.drivers import DriverClient, is_auth_failure, is_pool_paused
from pool.client_pool.generations import GenerationBook
from pool.client_pool.lease import Lease
from pool.client_pool.retry import (
    auth_error,
    expired_lease_error,
    refused_not_primary,
    retry_worthy,
)
from pool.client_pool.rotation import Gen, Rotator
from pool.client_pool.status import PoolState
from pool.errors import PoolClosedError

if TYPE_CHECKING:
    from pool.telemetry.hooks import PoolTelemetry

__all__ = ["ClientT", "Leasing"]

ClientT = TypeVar("ClientT")
T = TypeVar("T")

_log = get_logger("pool.client_pool")


class Leasing(Generic[ClientT]):
    """The leasing half of :class:`pool.ClientPool` (which sets every attribute below)."""

    _state: PoolState
    _book: GenerationBook[DriverClient]
    _budget: ConnectionBudget | None
    _rot: Rotator
    _clock: Clock
    _cache: CredentialCache
    _tel: PoolTelemetry
    _warmup_timeout: float
    _retries: int
    _held: ContextVar[int]  # leases of this pool the current task holds (under a cap)

    def _check_usable(self) -> None:
        """Raise :class:`pool.PoolClosedError` naming the fix unless the pool is open."""
        if self._state == "new":
            raise PoolClosedError(
                "the ClientPool is not started: use `async with ClientPool(...) as cp:` "
                "or `await cp.start()` before leasing"
            )
        if self._state == "starting":
            raise PoolClosedError("the ClientPool is still starting: wait for `await cp.start()`")
        if self._state in ("closing", "closed"):
            # Refused from the moment aclose() begins, not only once the book is
            # closed: leases already held finish, new ones must not start.
            raise PoolClosedError(f"the ClientPool is {self._state}: it is not open for new leases")

    def client(self) -> AbstractAsyncContextManager[ClientT]:
        """``async with cp.client() as client:`` leases the current driver client.

        The client stays open until the block ends, whatever rotates
        meanwhile: run cursors, sessions, transactions and change streams
        inside the block. Cancelling the holder releases the lease. Raises
        :class:`pool.PoolClosedError` when the pool is not open. An
        authentication failure (code 18) escaping the block invalidates that
        client's credentials in the cache, once per credential set; once those
        credentials have expired it is raised as :class:`pool.LeaseExpiredError`
        instead (the lease needed a new connection, which expired credentials
        cannot open).
        """
        return Lease(self)

    async def run(self, fn: Callable[[ClientT], Awaitable[T]], *, retry: bool = True) -> T:
        """``await cp.run(lambda c: c.db.coll.find_one(...))``: one operation, retried right.

        When ``fn`` fails because its client's credentials were refused (code
        18, or the "connection pool paused" that follows one) or its client
        was closed under it (a lease dropped at the drain bound), ``fn`` is
        called once more on a newer client, waiting up to ``warmup_timeout``
        for one (less when the server refuses the newer credentials too).
        These failures happen before the server ran the failing command, so
        the retry is safe for a single operation, reads and writes alike.
        A command refused by a member that is no longer primary (10107,
        13435: an election) is retried once too, on the same client, which
        re-selects the new primary (see ``retry.refused_not_primary``).
        Any other error (a network timeout, say) is raised unchanged, even
        when the client was closed meanwhile: the server may have applied
        the write. Pass ``retry=False`` when ``fn`` performs more than one
        write and must not be repeated. An authentication failure that
        remains is raised as :class:`pool.AuthenticationError` (the driver's
        error as cause).
        """
        # The hot path: one acquire, one call, one release; no context manager object.
        if self._state != "open":
            self._check_usable()  # before start(): name the fix
        book = self._book
        first = book.acquire_gen()
        token = None
        if self._budget is not None:
            first, token = await self._capped(first)
        try:
            return await fn(first.handle.client)
        except BaseException as exc:
            self._report(first, exc)
            if not isinstance(exc, Exception):
                raise
            elsewhere = retry_worthy(first, exc)
            if not retry or not (elsewhere or refused_not_primary(exc)):
                if is_auth_failure(exc):
                    raise auth_error(first) from exc
                raise
            failure = exc
        finally:
            # Released synchronously first: a cancelled caller never keeps it.
            to_close = book.release_gen(first)
            if token is not None:
                self._uncapped(token)
            if to_close:
                await self._rot.close_gens(to_close)
        return await self._run_again(fn, first, failure, elsewhere)

    async def _run_again(
        self, fn: Callable[[ClientT], Awaitable[T]], first: Gen, failure: Exception, elsewhere: bool
    ) -> T:
        """The retry of :meth:`run`: on a newer generation than ``first`` when ``elsewhere``."""
        self._retries += 1
        self._tel.run_retried()
        _log.info("pool.run_retry", generation=first.number, error=type(failure).__name__)
        until = self._clock.monotonic() + self._warmup_timeout
        if not elsewhere:
            pass  # refused by a former primary: the same client re-selects the new one
        elif not await self._rot.wait_newer(first.number, until):
            if self._book.closed:
                raise PoolClosedError("the ClientPool closed while run() waited") from failure
            if is_auth_failure(failure) or is_pool_paused(failure):  # paused: by a refusal
                raise auth_error(first) from failure
            raise failure
        book = self._book
        second = book.acquire_gen()
        token = None
        if self._budget is not None:
            second, token = await self._capped(second)
        try:
            return await fn(second.handle.client)
        except BaseException as exc:
            self._report(second, exc)
            if is_auth_failure(exc):
                raise auth_error(second) from exc
            raise
        finally:
            to_close = book.release_gen(second)
            if token is not None:
                self._uncapped(token)
            if to_close:
                await self._rot.close_gens(to_close)

    async def _capped(self, gen: Gen) -> tuple[Gen, Token[int]]:
        """Under ``max_connections_per_member``: admit the lease just taken on ``gen``
        (waiting for room while other clients are open), and count it in this task's context.

        A task that already holds a lease of this pool is admitted at once: it
        may be what keeps the old client open, and waiting would deadlock.
        """
        if (len(self._book.generations) > 1 or self._rot.closing) and not self._held.get():
            gen = await self._admit(gen)
        return gen, self._held.set(self._held.get() + 1)

    def _uncapped(self, token: Token[int]) -> None:
        """The lease counted by :meth:`_capped` ended: uncount it, wake admissions waiting."""
        try:
            self._held.reset(token)
        except ValueError:  # ended in another context than it began (a lease handed over)
            self._held.set(max(0, self._held.get() - 1))
        budget = self._budget
        if budget is not None and budget.waiting:
            budget.notify()

    async def _admit(self, gen: Gen) -> Gen:
        """Hold a new lease back, holding nothing, until it fits ``max_connections_per_member``.

        Called only while more than one client is open (see
        :mod:`pool.client_pool.budget`); returns the generation leased. After
        ``warmup_timeout`` (real seconds) of waiting it is admitted anyway,
        with a ``pool.cap_wait_exceeded`` warning: a cap must not become a deadlock.
        """
        budget, book = self._budget, self._book
        assert budget is not None
        counted = False
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._warmup_timeout
        while others := self._rot.monitors_besides(gen):
            if budget.admits(gen, self._rot.held_besides(gen)):
                break
            if loop.time() >= give_up:
                budget.overruns += 1
                _log.warning(
                    "pool.cap_wait_exceeded",
                    generation=gen.number,
                    waited_s=self._warmup_timeout,
                    limit=budget.limit,
                    hint="a lease waited warmup_timeout for room under "
                    "max_connections_per_member and was admitted past it; leases held "
                    "on the old client (cursors, sessions) keep its connections open: set "
                    "drain_timeout, or raise the cap",
                )
                break
            to_close = book.release_gen(gen)
            if to_close:
                await self._rot.close_gens(to_close)
            if not counted:
                budget.waited += 1
                counted = True
            await budget.wait(others)
            if self._state != "open":
                self._check_usable()
            gen = book.acquire_gen()
        return gen

    def _lease_error(self, gen: Gen, exc: BaseException) -> BaseException | None:
        """What a ``cp.client()`` block that raised ``exc`` raises instead, if anything.

        :class:`pool.LeaseExpiredError` when ``gen``'s credentials have expired
        and ``exc`` says a new connection was refused; otherwise None, after
        reporting an authentication failure (see :meth:`_report`).
        """
        now = self._clock.monotonic()
        if gen.expired(now) and (error := expired_lease_error(gen, exc, now)) is not None:
            return error
        self._report(gen, exc)
        return None

    def _report(self, gen: Gen, exc: BaseException) -> None:
        """Invalidate ``gen``'s credentials once when ``exc`` holds an auth failure."""
        if isinstance(exc, BaseExceptionGroup):
            found = exc.split(is_auth_failure)[0] is not None
        else:
            found = is_auth_failure(exc)
        if found and gen is self._book.current:
            self._rot.hurry()  # the next client is needed now: no pacing
        if found and self._book.note_auth_failure(gen):
            _log.warning(
                "pool.auth_failed",
                generation=gen.number,
                key=key_hint(gen.credentials.access_key_id),
            )
            self._cache.invalidate(gen.credentials)
