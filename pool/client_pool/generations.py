"""Pure, synchronous bookkeeping of client generations.

A *generation* is one driver client built for one credential set. It moves
through ``warming -> active -> draining -> closed`` (or ``warming -> closed``
when its warm-up fails). At most one generation is active: the one new
leases go to. A draining generation takes no new leases and is closed when
its last lease ends, or at its drain bound, whichever comes first; leases
still open at the bound are counted as *dropped*.

The drain rule: a replaced generation waits for its last lease, whatever its
credentials' expiry says. A MONGODB-AWS connection is authenticated once,
when it opens, and keeps working after the credentials expire; only *new*
connections fail, and a draining client opens none on its own (see
:mod:`pool.client_pool.drivers`). So a cursor, a session or a long
aggregation leased before a rotation finishes on its own client. The bound
(``drain_timeout``; by default :data:`DEFAULT_DRAIN_LIMIT`, one hour) only
catches leases that are never released (a leaked ``async with`` block).

Nothing here awaits, sleeps, does I/O or reads a clock, and every method
runs to completion without yielding, so on one event loop no lock is needed
(httpcore's ``_assign_requests_to_connections`` pattern). Methods that end a
generation's life *return* the generations the caller must close; the caller
closes them afterwards, shielded from cancellation. HikariCP's rule holds: a
generation with a lease open is never closed before its drain bound.

Times are readings of the pool's clock (:class:`pool._internal.clock.Clock`)
passed in as ``now``, and expiry times are on that same clock, so tests drive
the book with plain numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

from pool.credentials import Credentials
from pool.errors import InvariantError, PoolClosedError

__all__ = [
    "DEFAULT_DRAIN_LIMIT",
    "DRAIN_WARNING_EVERY",
    "Generation",
    "GenerationBook",
    "Lease",
    "State",
    "drain_deadline",
    "expiry_margin",
    "swap_by",
]

H = TypeVar("H")

# Without an explicit drain_timeout a replaced client waits this long for its
# last lease: generous on purpose (leases outlive their credentials; see the
# module docstring). Only a lease that is never released reaches it.
DEFAULT_DRAIN_LIMIT = 3600.0
# While a replaced client still waits for leases, one warning this often (as
# asyncpg's Pool.close() warns when it waits long).
DRAIN_WARNING_EVERY = 60.0
# A slow warm-up swaps in with fewer connections this long before the serving
# credentials expire: at most 30 s, a tenth of the lifetime for short ones.
MAX_EXPIRY_MARGIN = 30.0
EXPIRY_MARGIN_FRACTION = 0.1


class State(StrEnum):
    """Life stages of a generation."""

    WARMING = "warming"
    ACTIVE = "active"
    DRAINING = "draining"
    CLOSED = "closed"


@dataclass(eq=False)
class Generation(Generic[H]):
    """One client and the credentials it was built with. Mutated only by the book.

    ``expires_at`` is the credentials' expiry on the pool's clock (None for
    long-term keys); ``drain_started``/``deadline``/``next_warning`` are set
    when it starts draining.
    """

    number: int
    credentials: Credentials
    handle: H = field(repr=False)
    expires_at: float | None = None
    state: State = State.WARMING
    leases: int = 0
    drain_started: float | None = None
    deadline: float | None = None
    next_warning: float | None = None
    dropped: int = 0
    auth_failure_reported: bool = False

    def expired(self, now: float) -> bool:
        """True once the credentials have expired at ``now`` (never for long-term keys)."""
        return self.expires_at is not None and now >= self.expires_at


@dataclass(eq=False)
class Lease(Generic[H]):
    """A claim on a generation, released exactly once (extra releases are no-ops)."""

    generation: Generation[H]
    released: bool = False


def drain_deadline(now: float, drain_timeout: float | None) -> float:
    """When a generation that starts draining at ``now`` is closed even if still leased.

    ``drain_timeout`` when given (``math.inf``: never), else
    :data:`DEFAULT_DRAIN_LIMIT`. The credentials' expiry plays no part.
    """
    limit = DEFAULT_DRAIN_LIMIT if drain_timeout is None else max(0.0, drain_timeout)
    return now + limit


def expiry_margin(creds: Credentials) -> float:
    """How long before expiry a slow warm-up stops filling: <= 30 s, a tenth of the lifetime."""
    return min(MAX_EXPIRY_MARGIN, EXPIRY_MARGIN_FRACTION * max(creds.ttl_at_fetch or 0.0, 0.0))


def swap_by(gen: Generation[H]) -> float | None:
    """When the next client must be serving in place of ``gen`` (pool clock), or None.

    One margin before ``gen``'s credentials expire: after expiry the serving
    client can no longer open connections, so a warm-up still filling then
    stops and swaps with what it has (its credentials were already accepted).
    """
    if gen.expires_at is None:
        return None
    return gen.expires_at - expiry_margin(gen.credentials)


class GenerationBook(Generic[H]):
    """Every generation of one pool, the active one, and the counters for ``status()``.

    Not thread-safe; meant for one event loop, where its methods are atomic.
    """

    def __init__(
        self, *, drain_timeout: float | None = None, warn_every: float = DRAIN_WARNING_EVERY
    ) -> None:
        self.drain_timeout = drain_timeout
        self.warn_every = warn_every
        self.closed = False
        self.current: Generation[H] | None = None
        self.generations: list[Generation[H]] = []  # every generation not closed yet
        self.rotations = 0
        self.dropped_total = 0
        self._next_number = 1

    # -- generations --------------------------------------------------

    def begin(
        self, creds: Credentials, handle: H, *, expires_at: float | None = None
    ) -> Generation[H]:
        """Register a new, warming generation. Raises PoolClosedError after ``close``."""
        if self.closed:
            raise PoolClosedError("the ClientPool is closed; no new client is built")
        gen = Generation(self._next_number, creds, handle, expires_at)
        self._next_number += 1
        self.generations.append(gen)
        return gen

    def activate(self, gen: Generation[H], now: float) -> list[Generation[H]]:
        """Swap ``gen`` in as the active generation; the previous one starts draining.

        Returns the generations to close now: the previous one if nobody holds
        it, or ``gen`` itself when the book was closed while it warmed.
        """
        if gen.state is not State.WARMING:
            raise InvariantError(f"generation {gen.number} is {gen.state}, not warming")
        if self.closed:
            return self._finish(gen)
        old, self.current = self.current, gen
        gen.state = State.ACTIVE
        if old is None:
            return []
        self.rotations += 1
        return self._start_draining(old, now, drain_deadline(now, self.drain_timeout))

    def abandon(self, gen: Generation[H]) -> list[Generation[H]]:
        """A warming generation failed: it is closed without ever serving."""
        if gen.state is not State.WARMING:
            raise InvariantError(f"generation {gen.number} is {gen.state}, not warming")
        return self._finish(gen)

    def _start_draining(
        self, gen: Generation[H], now: float, deadline: float
    ) -> list[Generation[H]]:
        if gen.state is State.ACTIVE:
            gen.state = State.DRAINING
            gen.drain_started = now
            gen.next_warning = now + self.warn_every
        gen.deadline = deadline if gen.deadline is None else min(gen.deadline, deadline)
        return self._finish(gen) if gen.leases == 0 else []

    def _finish(self, gen: Generation[H]) -> list[Generation[H]]:
        if gen.state is State.CLOSED:
            raise InvariantError(f"generation {gen.number} closed twice")
        gen.state = State.CLOSED
        self.generations.remove(gen)
        if self.current is gen:
            self.current = None
        return [gen]

    # -- leases -------------------------------------------------------

    def acquire(self) -> Lease[H]:
        """A lease on the active generation. Raises PoolClosedError when there is none."""
        gen = self.current
        if self.closed or gen is None:
            raise PoolClosedError(
                "the ClientPool is not open: use it inside `async with ClientPool(...)` "
                "(or after `await cp.start()`) and not after aclose()"
            )
        gen.leases += 1
        return Lease(gen)

    def release(self, lease: Lease[H]) -> list[Generation[H]]:
        """End a lease. Returns the generation to close if this was its last lease."""
        if lease.released:
            return []
        lease.released = True
        gen = lease.generation
        if gen.state is State.CLOSED:
            return []  # closed at its drain bound; this lease was counted as dropped
        gen.leases -= 1
        if gen.leases < 0:
            raise InvariantError(f"generation {gen.number} has {gen.leases} leases")
        if gen.state is State.DRAINING and gen.leases == 0:
            return self._finish(gen)
        return []

    # -- deadlines, warnings and closing ------------------------------

    def expire(self, now: float) -> list[Generation[H]]:
        """Close every draining generation whose drain bound has passed.

        Leases still open are counted as dropped (``gen.dropped``); their later
        release is a no-op.
        """
        due = [
            g
            for g in self.generations
            if g.state is State.DRAINING and g.deadline is not None and g.deadline <= now
        ]
        for gen in due:
            gen.dropped = gen.leases
            self.dropped_total += gen.leases
            self._finish(gen)
        return due

    def slow_drains(self, now: float) -> list[Generation[H]]:
        """Draining generations due a "still waiting for leases" warning; schedules the next."""
        due = [
            g
            for g in self.generations
            if g.state is State.DRAINING and g.next_warning is not None and g.next_warning <= now
        ]
        for gen in due:
            assert gen.next_warning is not None
            while gen.next_warning <= now:
                gen.next_warning += self.warn_every
        return due

    def next_deadline(self) -> float | None:
        """The earliest drain bound or warning time among draining generations, if any."""
        times = [
            t
            for g in self.generations
            if g.state is State.DRAINING
            for t in (g.deadline, g.next_warning)
            if t is not None and t != math.inf
        ]
        return min(times, default=None)

    def close(self, now: float, timeout: float) -> list[Generation[H]]:
        """Stop taking leases; every serving generation drains for at most ``timeout``.

        Returns the generations nobody holds (close them now). Warming ones are
        left to whoever warms them: ``activate`` will hand them back.
        """
        self.closed = True
        to_close: list[Generation[H]] = []
        for gen in list(self.generations):
            if gen.state in (State.ACTIVE, State.DRAINING):
                to_close += self._start_draining(gen, now, now + timeout)
        self.current = None
        return to_close

    def note_auth_failure(self, gen: Generation[H]) -> bool:
        """True the first time an authentication failure is reported for ``gen``."""
        if gen.auth_failure_reported:
            return False
        gen.auth_failure_reported = True
        return True

    @property
    def idle(self) -> bool:
        """True when every generation is closed."""
        return not self.generations
