"""GenerationBook: the pool's synchronous bookkeeping, tested with no I/O and no clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pool.client_pool.generations import (
    MIN_DRAIN,
    NO_EXPIRY_DRAIN,
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


def test_default_deadline_is_shortly_before_expiry() -> None:
    """Without drain_timeout a client drains until a margin before its credentials expire."""
    c = creds(1, lifetime=3600)
    assert c.monotonic_deadline is not None
    deadline = drain_deadline(c, now=c.monotonic_deadline - 3600, drain_timeout=None)
    assert c.monotonic_deadline - 31 < deadline <= c.monotonic_deadline - 29.9
    short = creds(2, lifetime=10)
    assert short.monotonic_deadline is not None
    d2 = drain_deadline(short, now=short.monotonic_deadline - 10, drain_timeout=None)
    assert short.monotonic_deadline - 1.1 < d2 < short.monotonic_deadline - 0.9


def test_deadline_floor_and_overrides() -> None:
    """Late rotations still get MIN_DRAIN; drain_timeout and long-term keys override."""
    c = creds(1, lifetime=5)
    assert c.monotonic_deadline is not None
    late = c.monotonic_deadline + 100
    assert drain_deadline(c, now=late, drain_timeout=None) == late + MIN_DRAIN
    assert drain_deadline(c, now=7.0, drain_timeout=2.5) == 9.5
    assert drain_deadline(creds(2, lifetime=None), now=1.0, drain_timeout=None) == (
        1.0 + NO_EXPIRY_DRAIN
    )


def test_status_is_json_and_secret_free() -> None:
    """status() serialises to JSON and never contains a secret key or token."""
    book: GenerationBook[str] = GenerationBook(drain_timeout=9)
    started(book)
    lease = book.acquire()
    book.activate(book.begin(creds(2), "c2"), now=0.0)
    status = book.status(now=1.0)
    text = json.dumps(status)
    assert "secret-" not in text and "token-" not in text
    assert status["generation"] == 2
    assert status["leases"] == {"1": 1, "2": 0}
    assert status["draining"] == [1]
    assert status["rotations"] == 1
    book.release(lease)


def test_swap_by_leaves_two_margins_before_expiry() -> None:
    """A slow warm-up must swap two margins before expiry: one to swap, one to drain."""
    c = creds(1, lifetime=100)
    assert c.monotonic_deadline is not None
    due = swap_by(c)
    assert due is not None
    assert c.monotonic_deadline - 20.1 < due < c.monotonic_deadline - 19.9
    assert swap_by(creds(2, lifetime=None)) is None
