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
    assert w.retry_cap(60.0, 3600.0, fleet, serving=True) == fleet.retry_spread
    assert w.retry_cap(60.0, 3600.0, fleet, serving=False) == 60.0  # callers are waiting
    assert w.retry_cap(60.0, 3600.0, None, serving=True) == 60.0
    with pytest.raises(ValueError):
        w.Fleet(startup_spread=-1)
