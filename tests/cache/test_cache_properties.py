"""Properties (hypothesis): the refresh windows, the backoff, and the refresh state machine.

The machine is driven directly, as the cache and its task drive it, by random
sequences of events: starts, due timers, fetch successes (new keys or the same
keys again), failures, forced refreshes, invalidations, crashes and closes.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pool._internal.backoff import backoff_delay
from pool.cache import windows as w
from pool.cache.policy import Policy
from pool.cache.refresh import TRANSITIONS, Fetch, Phase, RefreshMachine, Sleep
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, InvariantError, PoolClosedError, PoolError

# No per-example deadline and no "too slow" health check: on a loaded machine a
# slow example is not a failure (these properties are about values, not speed).
pure = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

lifetimes = st.floats(min_value=1e-3, max_value=30 * 86400, allow_nan=False)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
unit = st.floats(min_value=0.0, max_value=1.0)


# -- the windows ---------------------------------------------------------------------------


@pure
@given(lifetime=lifetimes, jitter=unit, seed=seeds, now=st.floats(0, 1e9))
def test_refresh_point_lies_inside_the_lifetime_and_before_the_mandatory_window(
    lifetime: float, jitter: float, seed: int, now: float
) -> None:
    """With the sized windows, the refresh point is after now and before the mandatory window."""
    windows = w.windows_for(lifetime)
    deadline = now + lifetime
    point = w.refresh_point(deadline, windows, jitter, random.Random(seed))
    tolerance = 1e-9 * max(1.0, abs(deadline))
    assert now - tolerance <= point <= deadline - windows.mandatory + tolerance
    assert 0 <= windows.mandatory <= windows.advisory <= lifetime


@pure
@given(
    lifetime=lifetimes,
    advisory=st.none() | st.floats(0, 1e6),
    mandatory=st.none() | st.floats(0, 1e6),
    jitter=unit,
    seed=seeds,
)
def test_explicit_windows_keep_the_point_between_the_window_starts(
    lifetime: float, advisory: float | None, mandatory: float | None, jitter: float, seed: int
) -> None:
    """Whatever the explicit windows, the point lies in [advisory start, mandatory start]."""
    windows = w.windows_for(lifetime, advisory, mandatory)
    deadline = 1e6
    point = w.refresh_point(deadline, windows, jitter, random.Random(seed))
    assert windows.mandatory <= windows.advisory
    assert deadline - windows.advisory - 1e-6 <= point <= deadline - windows.mandatory + 1e-6


@pure
@given(
    initial=st.floats(1e-3, 100),
    cap=st.floats(1e-3, 1e4),
    floor=unit,
    seed=seeds,
    attempts=st.integers(1, 80),
)
def test_backoff_delays_stay_within_their_bounds_and_bounds_never_shrink(
    initial: float, cap: float, floor: float, seed: int, attempts: int
) -> None:
    """Each delay is in [floor * bound, bound]; the bound grows with the attempt up to the cap."""
    rng = random.Random(seed)
    previous = 0.0
    for attempt in range(1, attempts + 1):
        bound = min(cap, initial * 2.0 ** min(attempt - 1, 62))
        delay = backoff_delay(attempt, initial, cap, rng, floor=floor)
        assert floor * bound - 1e-9 <= delay <= bound + 1e-9
        assert bound >= previous
        previous = bound


@pure
@given(streak=st.integers(1, 100), retry=st.floats(1e-3, 600), lifetime=lifetimes, seed=seeds)
def test_same_credentials_delay_never_passes_a_twelfth_of_the_advisory_window(
    streak: int, retry: float, lifetime: float, seed: int
) -> None:
    """Retries after the same keys come back are bounded by max(first delay, advisory / 12)."""
    advisory = w.advisory_for(lifetime)
    delay = w.same_credentials_delay(streak, retry, advisory, random.Random(seed))
    assert 0 <= delay <= max(min(retry, advisory / 10), advisory / 12) + 1e-9


# -- the state machine -----------------------------------------------------------------------


class _Quiet:
    """A logger that drops everything (the properties are about state, not log lines)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _creds(n: int, ttl: float | None) -> Credentials:
    return Credentials(
        access_key_id=f"ASIAPROP{n:08d}",
        secret_access_key=f"secret-{n}",
        session_token=None if ttl is None else f"token-{n}",
        expiration=None if ttl is None else datetime.now(UTC) + timedelta(seconds=ttl),
    )


EVENTS = [
    "start",
    "step",
    "new_keys",
    "same_keys",
    "expired_keys",
    "fail_retryable",
    "fail_fatal",
    "refresh",
    "get",
    "invalidate",
    "advance",
    "crash",
    "close",
]


class _Driver:
    """Plays the cache and its task against one machine, checking invariants after each event."""

    def __init__(self, seed: int, ttl: float | None) -> None:
        policy = Policy(None, None, 0.5, 1.0, 60.0, 30.0)
        self.m = RefreshMachine(policy, "prop", random.Random(seed), _Quiet())
        self.ttl = ttl
        self.now = 1000.0
        self.running: Fetch | None = None  # the fetch the task is performing
        self.steps = 0
        self.keys = 0
        self.fetches_at_close: int | None = None

    def play(self, event: str, amount: float) -> None:
        before = self.m.phase
        try:
            getattr(self, "_" + event)(amount)
        except PoolClosedError:
            assert self.m.phase is Phase.CLOSED
        except InvariantError as exc:
            assert exc is self.m.crash, f"{event}: unexpected {exc}"  # the crash, re-raised
        except PoolError:
            assert event == "get"  # backing off: the last error, or "nothing valid"
        after = self.m.phase
        assert after is before or after in TRANSITIONS[before], f"{event}: {before} -> {after}"
        self._check()

    def _check(self) -> None:
        m = self.m
        assert (m.phase is Phase.FETCHING) == (m.flight is not None)
        if self.running is not None and m.phase is Phase.FETCHING:
            assert m.flight is self.running.flight  # one flight: the one the task runs
        assert m.fetches == self.steps
        if self.fetches_at_close is not None:
            assert m.phase is Phase.CLOSED and m.fetches == self.fetches_at_close
            assert m.entry is None and m.flight is None

    def _start(self, _: float) -> None:
        self.m.start()

    def _step(self, _: float) -> None:
        if self.running is not None or self.m.phase is Phase.CRASHED:
            return  # the task is busy fetching, or gone
        step = self.m.next_step(self.now)
        if isinstance(step, Fetch):
            self.steps += 1
            self.running = step
        elif step is None:
            assert self.m.phase in (Phase.IDLE, Phase.CLOSED)
        else:
            assert isinstance(step, Sleep) and step.seconds > 0

    def _report(self, creds: object, error: PoolError | None) -> None:
        if self.running is None:
            return
        flight, self.running = self.running.flight, None
        was_closed = self.m.phase in (Phase.CLOSED, Phase.CRASHED)
        self.m.fetch_done(creds, error, self.now, 0.0)
        assert flight.done.is_set()  # its waiters are woken, whatever happened
        if was_closed:
            assert self.m.entry is None or self.m.phase is Phase.CRASHED

    def _new_keys(self, _: float) -> None:
        self.keys += 1
        self._report(_creds(self.keys, self.ttl), None)

    def _same_keys(self, _: float) -> None:
        entry = self.m.entry
        if entry is None:
            return self._new_keys(_)
        c = entry.creds
        again = Credentials(c.access_key_id, c.secret_access_key, c.session_token, c.expiration)
        self._report(again, None)

    def _expired_keys(self, _: float) -> None:
        self.keys += 1
        self._report(_creds(self.keys, -5.0), None)

    def _fail_retryable(self, _: float) -> None:
        self._report(None, CredentialFetchError("503", source="prop", retryable=True))

    def _fail_fatal(self, _: float) -> None:
        self._report(None, CredentialFetchError("denied", source="prop", retryable=False))

    def _refresh(self, _: float) -> None:
        if self.m.phase is not Phase.IDLE:
            flight = self.m.flight
            join = self.m.request("refresh")
            assert flight is None or join.flight is flight  # joined, not a second fetch

    def _get(self, _: float) -> None:
        if self.m.phase is not Phase.IDLE:
            self.m.for_caller(self.now)

    def _invalidate(self, _: float) -> None:
        self.m.invalidate(None)

    def _advance(self, amount: float) -> None:
        self.now += amount

    def _crash(self, _: float) -> None:
        if self.m.phase is not Phase.IDLE:
            self.m.task_ended(None)
            self.running = None  # the task is gone

    def _close(self, _: float) -> None:
        self.m.close()
        self.fetches_at_close = self.m.fetches
        assert self.m.next_step(self.now) is None


@settings(pure, max_examples=300)
@given(
    seed=seeds,
    ttl=st.sampled_from([None, 6.0, 120.0, 900.0, 3600.0, 21600.0]),
    events=st.lists(
        st.tuples(st.sampled_from(EVENTS), st.floats(0, 7200, allow_nan=False)),
        max_size=60,
    ),
)
async def test_random_event_sequences_keep_the_machine_consistent(
    seed: int, ttl: float | None, events: list[tuple[str, float]]
) -> None:
    """No event order breaks the transition table, single-flight, or the finality of close."""
    driver = _Driver(seed, ttl)
    for event, amount in events:
        driver.play(event, amount)
    driver.play("close", 0.0)
    for event, amount in events:  # nothing after close fetches or changes state again
        driver.play(event, amount)
    assert driver.m.phase is Phase.CLOSED
    assert not math.isnan(driver.m.wake_at)
