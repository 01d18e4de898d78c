"""GenerationBook: the pool's synchronous bookkeeping, tested with no I/O and no clock."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from pool.client_pool.generations import (
    DEFAULT_DRAIN_LIMIT,
    DRAIN_WARNING_EVERY,
    GenerationBook,
    State,
    drain_deadline,
    swap_by,
)
from pool.credentials import Credentials
from pool.errors import InvariantError, PoolClosedError


def creds(n: int, lifetime: float | None = 3600.0) -> Credentials:
    exp = None if lifetime is None else datetime.now(UTC) + timedelta(seconds=lifetime)
    return Credentials(f"ASIAKEY{n:013d}", f"secret-{n}", f"token-{n}", exp, source="test")


def started(book: GenerationBook[str]) -> None:
    assert book.activate(book.begin(creds(1), "client1"), now=0.0) == []


def test_first_activation_serves_without_rotation() -> None:
    """The first generation becomes current and is not counted as a rotation."""
    book: GenerationBook[str] = GenerationBook()
    gen = book.begin(creds(1), "c1")
    assert gen.state is State.WARMING
    assert book.current is None
    assert book.activate(gen, now=0.0) == []
    assert book.current is gen and gen.state is State.ACTIVE
    assert book.rotations == 0


def test_swap_closes_idle_old_generation_at_once() -> None:
    """A replaced generation nobody holds is returned for closing by the swap itself."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    old = book.current
    new = book.begin(creds(2), "c2")
    assert book.activate(new, now=1.0) == [old]
    assert old is not None and old.state is State.CLOSED
    assert book.current is new and book.rotations == 1
    assert book.generations == [new]


def test_leased_old_generation_drains_until_last_release() -> None:
    """An in-use generation is never closed under its user: it closes on the last release."""
    book: GenerationBook[str] = GenerationBook(drain_timeout=60)
    started(book)
    a, b = book.acquire(), book.acquire()
    old = a.generation
    new = book.begin(creds(2), "c2")
    assert book.activate(new, now=10.0) == []
    assert old.state is State.DRAINING and old.deadline == 70.0
    assert book.acquire().generation is new, "new leases go to the new generation"
    assert book.release(a) == []
    assert book.release(b) == [old]
    assert old.state is State.CLOSED


def test_release_is_idempotent() -> None:
    """Releasing a lease twice does not steal another holder's count."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    a, b = book.acquire(), book.acquire()
    book.release(a)
    book.release(a)
    assert a.generation.leases == 1
    book.release(b)
    assert a.generation.leases == 0


def test_deadline_drops_open_leases_and_closes() -> None:
    """At the deadline the generation closes; open leases are counted as dropped, once."""
    book: GenerationBook[str] = GenerationBook(drain_timeout=5)
    started(book)
    lease = book.acquire()
    old = lease.generation
    book.activate(book.begin(creds(2), "c2"), now=0.0)
    assert book.next_deadline() == 5.0
    assert book.expire(now=4.9) == []
    assert book.expire(now=5.0) == [old]
    assert old.dropped == 1 and book.dropped_total == 1
    assert book.release(lease) == [], "a dropped lease's release closes nothing again"
    assert book.dropped_total == 1
    assert book.next_deadline() is None


def test_abandon_closes_a_failed_warmup_and_keeps_current() -> None:
    """A warm-up failure closes the new client only; the current one keeps serving."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    current = book.current
    failed = book.begin(creds(2), "c2")
    assert book.abandon(failed) == [failed]
    assert book.current is current and current is not None and current.state is State.ACTIVE
    assert book.rotations == 0


def test_close_drains_everything_and_refuses_leases() -> None:
    """close() stops leases, closes idle generations, gives held ones a deadline."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    lease = book.acquire()
    held = lease.generation
    assert book.close(now=100.0, timeout=3.0) == []
    assert held.state is State.DRAINING and held.deadline == 103.0
    with pytest.raises(PoolClosedError):
        book.acquire()
    assert book.release(lease) == [held]
    assert book.idle


def test_activate_after_close_hands_back_the_new_generation() -> None:
    """A client that finished warming after close() is closed, never served."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    warming = book.begin(creds(2), "c2")
    closed_now = book.close(now=0.0, timeout=1.0)
    assert book.activate(warming, now=0.0) == [warming]
    assert warming.state is State.CLOSED
    assert len(closed_now) == 1 and book.idle
    with pytest.raises(PoolClosedError):
        book.begin(creds(3), "c3")


def test_acquire_before_start_says_how_to_fix() -> None:
    """Leasing from a pool that is not open names the fix."""
    book: GenerationBook[str] = GenerationBook()
    with pytest.raises(PoolClosedError, match="async with ClientPool"):
        book.acquire()


def test_invariants_are_enforced() -> None:
    """Activating or abandoning a generation twice is a bug, reported as InvariantError."""
    book: GenerationBook[str] = GenerationBook()
    gen = book.begin(creds(1), "c1")
    book.activate(gen, 0.0)
    with pytest.raises(InvariantError):
        book.activate(gen, 0.0)
    with pytest.raises(InvariantError):
        book.abandon(gen)


def test_auth_failure_reported_once_per_generation() -> None:
    """Many failing operations on one credential set invalidate it once."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    gen = book.current
    assert gen is not None
    assert book.note_auth_failure(gen) is True
    assert book.note_auth_failure(gen) is False
    book.activate(book.begin(creds(2), "c2"), 1.0)
    assert book.current is not None and book.note_auth_failure(book.current) is True


def test_default_drain_waits_for_the_last_lease_whatever_the_expiry() -> None:
    """Without drain_timeout a replaced generation keeps its leases past its credentials'
    expiry: the bound is DEFAULT_DRAIN_LIMIT from the swap, not a margin before expiry."""
    book: GenerationBook[str] = GenerationBook()
    first = book.begin(creds(1, lifetime=6), "c1", expires_at=6.0)
    book.activate(first, now=0.0)
    lease = book.acquire()
    book.activate(book.begin(creds(2), "c2", expires_at=10.0), now=4.0)
    assert first.deadline == 4.0 + DEFAULT_DRAIN_LIMIT
    assert book.expire(now=3600.0) == [], "long past expiry, still open for its lease"
    assert first.expired(3600.0) and first.state is State.DRAINING
    assert book.release(lease) == [first]


def test_drain_deadline_overrides() -> None:
    """drain_timeout sets the bound (math.inf: none); the credentials play no part."""
    assert drain_deadline(7.0, 2.5) == 9.5
    assert drain_deadline(7.0, None) == 7.0 + DEFAULT_DRAIN_LIMIT
    assert drain_deadline(7.0, math.inf) == math.inf
    assert drain_deadline(7.0, -1.0) == 7.0


def test_slow_drains_warn_periodically_and_wake_the_expirer() -> None:
    """A drain still waiting is reported every DRAIN_WARNING_EVERY, and next_deadline says when."""
    book: GenerationBook[str] = GenerationBook()
    started(book)
    lease = book.acquire()
    book.activate(book.begin(creds(2), "c2"), now=100.0)
    assert book.next_deadline() == 100.0 + DRAIN_WARNING_EVERY
    assert book.slow_drains(100.0 + DRAIN_WARNING_EVERY - 1) == []
    assert book.slow_drains(100.0 + DRAIN_WARNING_EVERY) == [lease.generation]
    assert book.slow_drains(100.0 + DRAIN_WARNING_EVERY) == [], "once per period"
    assert book.next_deadline() == 100.0 + 2 * DRAIN_WARNING_EVERY
    book.release(lease)
    assert book.next_deadline() is None


def test_swap_by_leaves_a_margin_before_expiry() -> None:
    """A slow warm-up must swap a margin (a tenth of the lifetime, <= 30 s) before expiry."""
    book: GenerationBook[str] = GenerationBook()
    short = book.begin(creds(1, lifetime=100), "c1", expires_at=500.0)
    due = swap_by(short)
    assert due is not None and 489.9 < due < 490.1
    long = book.begin(creds(2, lifetime=3600), "c2", expires_at=5000.0)
    assert swap_by(long) == pytest.approx(4970.0, abs=0.1)
    assert swap_by(book.begin(creds(3, lifetime=None), "c3")) is None
