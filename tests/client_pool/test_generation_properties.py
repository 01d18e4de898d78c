"""Properties of GenerationBook over random sequences of acquire, release, rotate, failed
warm-ups, clock moves, drain bounds and close (hypothesis' stateful testing)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pool.client_pool.generations import Generation, GenerationBook, Lease, State
from pool.credentials import Credentials
from pool.errors import PoolClosedError

_EXP = datetime.now(UTC) + timedelta(hours=1)


def _creds(n: int) -> Credentials:
    return Credentials(f"ASIAPROP{n:012d}", f"secret-{n}", f"token-{n}", _EXP, source="prop")


class BookMachine(RuleBasedStateMachine):
    """Drives one book; checks every generation it hands back for closing."""

    def __init__(self) -> None:
        super().__init__()
        self.drain_timeout: float | None = None
        self.book: GenerationBook[int] = GenerationBook()
        self.now = 0.0
        self.leases: list[Lease[int]] = []
        self.begun: list[Generation[int]] = []
        self.closed: Counter[int] = Counter()

    @rule(timeout=st.one_of(st.none(), st.floats(0, 100), st.just(math.inf)))
    def configure(self, timeout: float | None) -> None:
        """Any drain_timeout, set before the first generation."""
        if not self.begun:
            self.book = GenerationBook(drain_timeout=timeout)
            self.drain_timeout = timeout

    def _take(self, gens: list[Generation[int]], *, at_bound: bool = False) -> None:
        for gen in gens:
            self.closed[gen.number] += 1
            assert gen.state is State.CLOSED
            if gen.dropped:
                assert at_bound, "a generation with leases closed other than at its bound"
                assert gen.deadline is not None and gen.deadline <= self.now
            else:
                assert gen.leases == 0 or at_bound

    @rule()
    def rotate(self) -> None:
        """Build a generation and swap it in."""
        if self.book.closed:
            return
        gen = self.book.begin(_creds(len(self.begun) + 1), len(self.begun) + 1)
        self.begun.append(gen)
        self._take(self.book.activate(gen, self.now))

    @rule()
    def failed_warmup(self) -> None:
        """Build a generation whose warm-up fails."""
        if self.book.closed:
            return
        gen = self.book.begin(_creds(len(self.begun) + 1), len(self.begun) + 1)
        self.begun.append(gen)
        self._take(self.book.abandon(gen))

    @rule()
    def acquire(self) -> None:
        """Lease the active generation (refused when there is none or the book is closed)."""
        try:
            self.leases.append(self.book.acquire())
        except PoolClosedError:
            assert self.book.closed or self.book.current is None

    @precondition(lambda self: bool(self.leases))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Release any lease, sometimes twice."""
        lease = data.draw(st.sampled_from(self.leases))
        self._take(self.book.release(lease))
        if data.draw(st.booleans()):
            assert self.book.release(lease) == []
        self.leases.remove(lease)

    @rule(dt=st.floats(0, 200))
    def advance(self, dt: float) -> None:
        """Time passes; the expirer closes what is past its bound and warns about the rest."""
        self.now += dt
        self.book.slow_drains(self.now)
        self._take(self.book.expire(self.now), at_bound=True)

    @rule(timeout=st.floats(0, 50))
    def close(self, timeout: float) -> None:
        """aclose(): no more leases; held generations drain for at most ``timeout``."""
        if not self.book.closed:
            self._take(self.book.close(self.now, timeout))

    @invariant()
    def bookkeeping_is_consistent(self) -> None:
        """Each generation closes once; what is open is leased, active or warming; counts match."""
        assert all(n == 1 for n in self.closed.values()), self.closed
        for gen in self.book.generations:
            assert self.closed[gen.number] == 0
            if gen.state is State.DRAINING:
                assert gen.leases > 0, "an unleased draining generation stays open"
                assert gen.deadline is not None
        open_leases = Counter(
            lease.generation.number
            for lease in self.leases
            if lease.generation.state is not State.CLOSED
        )
        assert {g.number: g.leases for g in self.book.generations if g.leases} == dict(open_leases)
        if self.book.closed:
            assert self.book.current is None

    def teardown(self) -> None:
        """After close, releasing every lease (or passing every bound) leaves nothing open."""
        if not self.book.closed:
            self.close(0.0)
        for lease in list(self.leases):
            self._take(self.book.release(lease))
        self._take(self.book.expire(math.inf), at_bound=True)
        assert self.book.idle
        assert sorted(self.closed) == [g.number for g in self.begun]
        assert all(n == 1 for n in self.closed.values())


def test_generation_book_properties() -> None:
    """Random acquire/release/rotate/drain/close sequences: a leased generation is never
    closed before its drain bound, each is closed exactly once, nothing stays open."""
    run_state_machine_as_test(
        BookMachine, settings=settings(max_examples=300, stateful_step_count=40, deadline=None)
    )
