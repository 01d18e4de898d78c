"""Pure, synchronous bookkeeping of client generations.

A *generation* is one driver client built for one credential set. It moves
through ``warming -> active -> draining -> closed`` (or ``warming -> closed``
when its warm-up fails). At most one generation is active: the one new
leases go to. A draining generation takes no new leases and is closed when
its last lease ends, or at its deadline, whichever comes first; leases still
open at the deadline are counted as *dropped*.

Nothing here awaits, sleeps or does I/O, and every method runs to completion
without yielding, so on one event loop no lock is needed (httpcore's
``_assign_requests_to_connections`` pattern). Methods that end a
generation's life *return* the generations the caller must close; the caller
closes them afterwards, shielded from cancellation. HikariCP's rule holds:
a generation with a lease open is never closed, except at its deadline.

Times are :func:`time.monotonic` readings passed in as ``now``, so tests need
no clock and no sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pool._internal.log import key_hint
from pool.credentials import Credentials
from pool.errors import InvariantError, PoolClosedError

__all__ = [
    "Generation",
    "GenerationBook",
    "Lease",
    "State",
    "drain_deadline",
    "expiry_margin",
    "swap_by",
]

H = TypeVar("H")

# Without an explicit drain_timeout a draining client is closed this long
# before its credentials expire: at most 30 s, a tenth of the lifetime for
# short-lived test credentials.
MAX_EXPIRY_MARGIN = 30.0
EXPIRY_MARGIN_FRACTION = 0.1
# Even when rotation comes late, in-flight work gets this long: authenticated
# connections keep working after their credentials expire.
MIN_DRAIN = 1.0
# Long-term keys never expire; drain them for at most this long.
NO_EXPIRY_DRAIN = 300.0


class State(StrEnum):
    """Life stages of a generation."""

    WARMING = "warming"
    ACTIVE = "active"
    DRAINING = "draining"
    CLOSED = "closed"


@dataclass(eq=False)
class Generation(Generic[H]):
    """One client and the credentials it was built with. Mutated only by the book."""

    number: int
    credentials: Credentials
    handle: H = field(repr=False)
    state: State = State.WARMING
    leases: int = 0
    deadline: float | None = None
    dropped: int = 0
    auth_failure_reported: bool = False


@dataclass(eq=False)
class Lease(Generic[H]):
    """A claim on a generation, released exactly once (extra releases are no-ops)."""

    generation: Generation[H]
    released: bool = False


def drain_deadline(creds: Credentials, now: float, drain_timeout: float | None) -> float:
    """When a generation that starts draining at ``now`` must be closed.

    ``drain_timeout`` wins when given. Otherwise: shortly before the
    credentials expire (see ``MAX_EXPIRY_MARGIN``), but never sooner than
    ``MIN_DRAIN`` seconds from now; ``NO_EXPIRY_DRAIN`` for long-term keys.
    """
    if drain_timeout is not None:
        return now + max(0.0, drain_timeout)
    expiry = creds.monotonic_deadline
    if expiry is None:
        return now + NO_EXPIRY_DRAIN
    return max(now + MIN_DRAIN, expiry - expiry_margin(creds))


def expiry_margin(creds: Credentials) -> float:
    """How long before expiry a client stops being used: at most 30 s, a tenth of the lifetime."""
    return min(MAX_EXPIRY_MARGIN, EXPIRY_MARGIN_FRACTION * max(creds.ttl_at_fetch or 0.0, 0.0))


def swap_by(creds: Credentials) -> float | None:
    """When a client for ``creds`` should have been replaced (monotonic), or None.

    Two margins before expiry: one for the swap, one for draining the old
    client. A warm-up still filling connections then stops and swaps with
    what it has (the credentials were already accepted).
    """
    expiry = creds.monotonic_deadline
    return None if expiry is None else expiry - 2 * expiry_margin(creds)


class GenerationBook(Generic[H]):
    """Every generation of one pool, the active one, and the counters for ``status()``.

    Not thread-safe; meant for one event loop, where its methods are atomic.
    """

    def __init__(self, *, drain_timeout: float | None = None) -> None:
        self.drain_timeout = drain_timeout
        self.closed = False
        self.current: Generation[H] | None = None
        self.generations: list[Generation[H]] = []  # every generation not closed yet
        self.rotations = 0
        self.dropped_total = 0
        self._next_number = 1

    # -- generations --------------------------------------------------

    def begin(self, creds: Credentials, handle: H) -> Generation[H]:
        """Register a new, warming generation. Raises PoolClosedError after ``close``."""
        if self.closed:
            raise PoolClosedError("the ClientPool is closed; no new client is built")
        gen = Generation(number=self._next_number, credentials=creds, handle=handle)
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
        return self._start_draining(old, drain_deadline(old.credentials, now, self.drain_timeout))

    def abandon(self, gen: Generation[H]) -> list[Generation[H]]:
        """A warming generation failed: it is closed without ever serving."""
        if gen.state is not State.WARMING:
            raise InvariantError(f"generation {gen.number} is {gen.state}, not warming")
        return self._finish(gen)

    def _start_draining(self, gen: Generation[H], deadline: float) -> list[Generation[H]]:
        gen.state = State.DRAINING
        gen.deadline = deadline if gen.deadline is None else min(gen.deadline, deadline)
        return self._finish(gen) if gen.leases == 0 else []

    def _finish(self, gen: Generation[H]) -> list[Generation[H]]:
        gen.state = State.CLOSED
        self.generations.remove(gen)
        if self.current is gen:
            self.current = None
        return [gen]

    # -- leases -------------------------------------------------------

    def acquire(self) -> Lease[H]:
        """A lease on the active generation. Raises PoolClosedError when there is none."""
        return Lease(self.acquire_gen())

    def release(self, lease: Lease[H]) -> list[Generation[H]]:
        """End a lease. Returns the generation to close if this was its last lease."""
        if lease.released:
            return []
        lease.released = True
        return self.release_gen(lease.generation)

    def acquire_gen(self) -> Generation[H]:
        """The hot path of :meth:`acquire`: count a lease on the active generation, return it.

        The caller must call :meth:`release_gen` exactly once for it.
        Raises PoolClosedError when there is none.
        """
        gen = self.current
        if gen is None or self.closed:
            raise PoolClosedError(
                "the ClientPool is not open: use it inside `async with ClientPool(...)` "
                "and not after aclose()"
            )
        gen.leases += 1
        return gen

    def release_gen(self, gen: Generation[H]) -> list[Generation[H]]:
        """End one lease taken with :meth:`acquire_gen`; the generation to close, if its last."""
        state = gen.state
        if state is State.ACTIVE:
            gen.leases -= 1  # the common case: nothing else to decide
            if gen.leases < 0:
                raise InvariantError(f"generation {gen.number} has {gen.leases} leases")
            return []
        if state is State.CLOSED:
            return []  # closed at its deadline; this lease was counted as dropped
        gen.leases -= 1
        if gen.leases < 0:
            raise InvariantError(f"generation {gen.number} has {gen.leases} leases")
        if state is State.DRAINING and gen.leases == 0:
            return self._finish(gen)
        return []

    # -- deadlines and closing ----------------------------------------

    def expire(self, now: float) -> list[Generation[H]]:
        """Close every draining generation whose deadline has passed.

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

    def next_deadline(self) -> float | None:
        """The earliest deadline among draining generations, if any."""
        deadlines = [
            g.deadline
            for g in self.generations
            if g.state is State.DRAINING and g.deadline is not None
        ]
        return min(deadlines, default=None)

    def close(self, now: float, timeout: float) -> list[Generation[H]]:
        """Stop taking leases; every serving generation drains for at most ``timeout``.

        Returns the generations nobody holds (close them now). Warming ones are
        left to whoever warms them: ``activate`` will hand them back.
        """
        self.closed = True
        to_close: list[Generation[H]] = []
        for gen in list(self.generations):
            if gen.state in (State.ACTIVE, State.DRAINING):
                to_close += self._start_draining(gen, now + timeout)
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

    def status(self, now: float) -> dict[str, Any]:
        """Counters and per-generation state, JSON-able and free of secrets."""
        gens = [
            {
                "number": g.number,
                "state": str(g.state),
                "leases": g.leases,
                "key": key_hint(g.credentials.access_key_id),
                "drain_deadline_in": None if g.deadline is None else round(g.deadline - now, 3),
            }
            for g in self.generations
        ]
        return {
            "generation": None if self.current is None else self.current.number,
            "generations": gens,
            "leases": {str(g.number): g.leases for g in self.generations},
            "draining": [g.number for g in self.generations if g.state is State.DRAINING],
            "rotations": self.rotations,
            "dropped_leases": self.dropped_total,
        }
