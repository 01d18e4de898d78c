"""Fleet settings of the cache: throttled backoff, spread first fetch, spread refresh points."""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import pytest

from pool.cache import CredentialCache
from pool.cache import windows as w
from pool.errors import CredentialFetchError
from tests.cache.cache_fakes import FakeClock, FakeSource, settle


def _throttled() -> CredentialFetchError:
    return CredentialFetchError(
        "AssumeRoleWithWebIdentity failed: Throttling (HTTP 400): Rate exceeded",
        source="fake",
        retryable=True,
        status=400,
        code="Throttling",
    )


def test_throttled_classification() -> None:
    """STS Throttling (400) and any HTTP 429 are throttled; a 503 is not."""
    assert _throttled().throttled
    assert CredentialFetchError("x", retryable=True, status=429, code="HTTP429").throttled
    assert not CredentialFetchError("x", retryable=True, status=503).throttled


def test_throttled_delay_is_longer_and_never_immediate() -> None:
    """After a throttled answer the pause is at least half of a 5 s bound, doubling to the cap."""
    rng = random.Random(1)
    first = [w.throttled_delay(1, 1.0, 60.0, rng) for _ in range(200)]
    assert min(first) >= w.THROTTLED_BACKOFF_INITIAL / 2 and max(first) <= 5.0
    later = [w.throttled_delay(6, 1.0, 60.0, rng) for _ in range(200)]
    assert min(later) >= 30.0 and max(later) <= 60.0


async def test_throttled_fetch_backs_off_longer(
    make_cache: Callable[..., CredentialCache], source: FakeSource, clock: FakeClock
) -> None:
    """A throttled first fetch is retried no sooner than 2.5 s later; a 503 may retry at once."""
    source.script.append(_throttled())
    async with make_cache(source) as cache:
        with pytest.raises(CredentialFetchError, match="Throttling"):
            await cache.get()
        await settle()
        wait = cache.status()["next_refresh_in_s"]
        assert wait >= w.THROTTLED_BACKOFF_INITIAL / 2
        await clock.run_until(clock.now + wait)
        assert source.fetches == 2 and cache.current is not None


async def test_startup_spread_delays_first_fetch_and_callers_wait(
    make_cache: Callable[..., CredentialCache], source: FakeSource, clock: FakeClock
) -> None:
    """With startup_spread the first fetch waits its random delay; get() waits for it, no error."""
    fleet = w.Fleet(startup_spread=100.0)
    delay = w.startup_delay(fleet, random.Random(7))
    assert 0 < delay <= 100
    async with make_cache(source, fleet=fleet, rng=random.Random(7)) as cache:
        async with anyio.create_task_group() as tg:
            got: list[object] = []

            async def caller() -> None:
                got.append(await cache.get())

            tg.start_soon(caller)
            await clock.run_until(clock.now + delay - 0.01)
            assert source.fetches == 0 and not got
            await clock.run_until(clock.now + 0.02)
        assert source.fetches == 1 and len(got) == 1


def test_spread_refresh_point_without_fleet_is_refresh_point() -> None:
    """No fleet: exactly the library's default refresh point."""
    win = w.windows_for(3600)
    a = w.spread_refresh_point(0, 3600, win, 0.5, random.Random(3), None, first=True)
    b = w.refresh_point(3600, win, 0.5, random.Random(3))
    assert a == b


def test_staggered_first_refresh_covers_the_first_lifetime() -> None:
    """stagger_first_refresh spreads the first refresh point over most of the first lifetime."""
    win, rng = w.windows_for(3600), random.Random(5)
    fleet = w.Fleet(stagger_first_refresh=True)
    points = [
        w.spread_refresh_point(0, 3600, win, 0.5, rng, fleet, first=True) for _ in range(2000)
    ]
    assert min(points) < 600 and max(points) > 2900
    assert max(points) <= 3600 - win.advisory + 0.5 * (win.advisory - win.mandatory)
    later = [w.spread_refresh_point(0, 3600, win, 0.5, rng, fleet, first=False) for _ in range(200)]
    assert min(later) >= 3600 - win.advisory


def test_outage_tolerance_and_refresh_spread_bound_the_window() -> None:
    """outage_tolerance ends the window that long before the mandatory window; spread widens it."""
    win, rng = w.windows_for(3600), random.Random(9)
    fleet = w.Fleet(refresh_spread=1200.0, outage_tolerance=900.0)
    points = [
        w.spread_refresh_point(0, 3600, win, 0.5, rng, fleet, first=False) for _ in range(2000)
    ]
    end = 3600 - win.mandatory - 900
    assert max(points) <= end
    assert min(points) >= end - 1200 and min(points) < end - 1000


def test_for_budget_spreads_over_processes_per_budget() -> None:
    """Fleet.for_budget(10000, 50): mean + 4 sigma fits 50/s, so ~350 s of spread everywhere."""
    fleet = w.Fleet.for_budget(10_000, 50.0)
    mean = 10_000 / fleet.startup_spread
    assert mean + 4 * mean**0.5 == pytest.approx(50.0)
    assert fleet.startup_spread == fleet.refresh_spread == fleet.retry_spread
    assert 340 < fleet.startup_spread < 360
    assert fleet.stagger_first_refresh and fleet.outage_tolerance == 900.0
    with pytest.raises(ValueError):
        w.Fleet(startup_spread=-1)


def _retry(attempt: int, rng: random.Random, fleet: w.Fleet | None, **kw: object) -> float:
    args: dict[str, object] = {"throttled": False, "retryable": True, "serving": True}
    args |= {"backoff_initial": 1.0, "backoff_max": 60.0, "lifetime": 3600.0} | kw
    return w.retry_delay(attempt, rng, fleet=fleet, **args)  # type: ignore[arg-type]


def test_fleet_retry_delay_averages_the_spread() -> None:
    """A fleet retry waits uniform(S/2, 3S/2): never sooner than half the spread, S on average."""
    rng = random.Random(11)
    delays = [w.fleet_retry_delay(350.0, rng) for _ in range(4000)]
    assert min(delays) >= 175.0 and max(delays) <= 525.0
    assert sum(delays) / len(delays) == pytest.approx(350.0, rel=0.02)


def test_serving_fleet_retries_do_not_ramp_from_a_second() -> None:
    """While serving, every attempt (first to tenth, throttled or not) waits S on average."""
    fleet, rng = w.Fleet.for_budget(10_000, 50.0), random.Random(12)
    spread = fleet.retry_spread
    for throttled in (False, True):
        for attempt in range(1, 11):
            delays = [_retry(attempt, rng, fleet, throttled=throttled) for _ in range(400)]
            assert min(delays) >= spread / 2, (attempt, throttled)
            assert sum(delays) / len(delays) == pytest.approx(spread, rel=0.06)


def test_waiting_fleet_fits_its_budget_whatever_attempt_each_is_at() -> None:
    """1,000 processes failing at the same instant retry at about N / retry_spread calls/s."""
    fleet, rng = w.Fleet.for_budget(1_000, 10.0), random.Random(13)
    spread = fleet.retry_spread
    per_10s = [0] * 400
    for _ in range(1_000):
        t, attempt = 0.0, 1
        while True:
            t += _retry(attempt, rng, fleet)
            if t >= 4000:
                break
            per_10s[int(t // 10)] += 1
            attempt += 1
    assert sum(per_10s[: int(spread / 2 // 10)]) == 0  # nobody comes straight back
    assert max(per_10s) <= 10 * 10.0  # the budget, 10 calls/s, over every 10 s


def test_fleet_retry_spread_changes_nothing_once_callers_wait() -> None:
    """Expiring or expired (throttled or not), or a first fetch refused: the lone backoff."""
    fleet = w.Fleet.for_budget(10_000, 50.0)
    for attempt in range(1, 8):
        lone = _retry(attempt, random.Random(attempt), None, serving=False)
        assert _retry(attempt, random.Random(attempt), fleet, serving=False) == lone
        assert _retry(attempt, random.Random(attempt), fleet, serving=False, first=True) == lone
        assert _retry(attempt, random.Random(attempt), None, serving=True) == lone
        assert lone <= min(60.0, 2.0 ** (attempt - 1))
        kw = {"serving": False, "throttled": True}
        lone = _retry(attempt, random.Random(attempt), None, **kw)
        assert _retry(attempt, random.Random(attempt), fleet, **kw) == lone <= 60.0


def test_throttled_first_fetch_of_a_fleet_waits_its_turn() -> None:
    """A fleet's first fetch throttled (STS: the fleet is over its limit) waits S/2..3S/2."""
    fleet, rng = w.Fleet.for_budget(10_000, 50.0), random.Random(15)
    spread = fleet.retry_spread
    kw = {"serving": False, "first": True, "throttled": True, "lifetime": None}
    delays = [_retry(attempt, rng, fleet, **kw) for attempt in (1, 2, 3) for _ in range(300)]
    assert min(delays) >= spread / 2 and max(delays) <= 1.5 * spread
    assert max(_retry(1, rng, None, **kw) for _ in range(300)) <= w.THROTTLED_BACKOFF_INITIAL


def test_fleet_retry_is_never_sooner_than_a_lone_process_and_fits_short_lifetimes() -> None:
    """A tiny retry_spread keeps the lone backoff (throttled floor too); 8 s creds cap it at 3 s."""
    tiny = w.Fleet(retry_spread=0.01)
    for attempt in range(1, 8):
        for throttled in (False, True):
            kw = {"throttled": throttled}
            lone = _retry(attempt, random.Random(attempt), None, **kw)
            assert _retry(attempt, random.Random(attempt), tiny, **kw) >= lone
    big, rng = w.Fleet(retry_spread=350.0), random.Random(14)
    short = [_retry(3, rng, big, lifetime=8.0) for _ in range(200)]
    assert min(short) >= 1.0 and max(short) <= 3.0  # spread cut to lifetime / 4 = 2 s


async def test_fleet_cache_spreads_its_retry_while_serving(
    make_cache: Callable[..., CredentialCache], source: FakeSource, clock: FakeClock
) -> None:
    """A fleet cache whose refresh fails while serving retries S/2..3S/2 later, not in a second."""
    fleet = w.Fleet(retry_spread=300.0)
    async with make_cache(source, fleet=fleet) as cache:
        first = await cache.get()
        await settle()
        source.script.append(_throttled())
        assert clock.next_timer is not None
        await clock.run_until(clock.next_timer)
        status = cache.status()
        assert source.fetches == 2 and status["state"] == "retrying"
        assert 150.0 <= status["next_refresh_in_s"] <= 450.0
        assert await cache.get() is first  # still served meanwhile
        assert clock.next_timer is not None
        await clock.run_until(clock.next_timer)
        assert source.fetches == 3 and cache.current is not first


async def test_fleet_cache_throttled_at_startup_is_not_hammered(
    make_cache: Callable[..., CredentialCache], source: FakeSource, clock: FakeClock
) -> None:
    """A fleet cache's throttled first fetch: callers get the error, the source waits S/2..3S/2."""
    source.script.append(_throttled())
    async with make_cache(source, fleet=w.Fleet(retry_spread=300.0)) as cache:
        with pytest.raises(CredentialFetchError, match="Throttling"):
            await cache.get()
        await settle()
        assert 150.0 <= cache.status()["next_refresh_in_s"] <= 450.0
        with pytest.raises(CredentialFetchError, match="Throttling"):
            await cache.get()  # backing off: the last error, no new call
        assert source.fetches == 1
        assert clock.next_timer is not None
        await clock.run_until(clock.next_timer)
        assert source.fetches == 2 and cache.current is not None
