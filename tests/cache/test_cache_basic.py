"""The cache's everyday behaviour: first fetch, reading, scheduled refresh, long-term keys."""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio
import pytest

from pool.cache import CredentialCache
from pool.errors import ConfigurationError, CredentialsExpiredError
from tests.cache.cache_fakes import FakeClock, FakeSource, make_creds, settle


async def test_first_fetch_starts_on_enter_without_any_caller(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Entering the context starts the first fetch in the background at once."""
    async with make_cache(source) as cache:
        await settle()
        assert source.fetches == 1
        assert cache.current.access_key_id == "ASIAFAKE00000001"


async def test_current_before_first_fetch_raises_clearly(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """``current`` never blocks: before the first fetch it raises CredentialsExpiredError."""
    source.gate = anyio.Event()
    async with make_cache(source) as cache:
        with pytest.raises(CredentialsExpiredError, match="no credentials fetched yet"):
            _ = cache.current
        source.gate.set()
        assert (await cache.get()).access_key_id == "ASIAFAKE00000001"
        assert cache.current.access_key_id == "ASIAFAKE00000001"


async def test_get_returns_cached_credentials_without_fetching(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """Valid credentials outside the mandatory window are returned at once, with no fetch."""
    first = await cache.get()
    clock.advance(1000)  # still before the advisory window (900 s of a 3600 s lifetime)
    for _ in range(100):
        assert await cache.get() is first
    assert source.fetches == 1


async def test_refresh_is_scheduled_inside_the_jittered_advisory_window(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """A 1-hour set is refreshed 15 min before expiry, jittered over half of 15 min - 1 min."""
    status = cache.status()
    assert status["advisory_window_s"] == pytest.approx(900, abs=0.5)
    assert status["mandatory_window_s"] == pytest.approx(60, abs=0.5)
    due = status["next_refresh_in_s"]
    assert 3600 - 900 - 0.5 <= due <= 3600 - 900 + 0.5 * 840 + 0.5
    assert clock.next_timer == pytest.approx(clock.now + due, abs=0.01)
    await clock.run_until(clock.now + due - 1)
    assert source.fetches == 1  # not before the refresh point
    await clock.run_until(clock.now + 1)
    assert source.fetches == 2
    assert cache.current.access_key_id == "ASIAFAKE00000002"


async def test_background_refresh_means_callers_never_wait(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """Across many lifetimes, every rotation happens before the old set's mandatory window."""
    for n in range(2, 12):
        status = cache.status()
        mandatory_starts = clock.now + status["remaining_s"] - status["mandatory_window_s"]
        assert clock.next_timer is not None
        await clock.run_until(clock.next_timer)
        assert source.fetches == n
        assert clock.now < mandatory_starts
        assert cache.current.access_key_id == f"ASIAFAKE{n:08d}"
    assert cache.status()["sets"] == 11


async def test_long_term_credentials_are_never_refreshed(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """Credentials without expiration (long-term keys) are fetched once and kept forever."""
    source = FakeSource(ttl=None)
    async with make_cache(source) as cache:
        creds = await cache.get()
        clock.advance(10 * 365 * 86400)
        await settle()
        assert await cache.get() is creds
        assert cache.current is creds
        assert source.fetches == 1
        status = cache.status()
        assert status["remaining_s"] is None and status["next_refresh_in_s"] is None


async def test_short_lifetimes_get_scaled_windows(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """A 6-second set gets a 2 s advisory and 0.5 s mandatory window, so demos can rotate fast."""
    source = FakeSource(ttl=6.0)
    async with make_cache(source) as cache:
        await cache.get()
        status = cache.status()
        assert status["advisory_window_s"] == pytest.approx(2.0, abs=0.01)
        assert status["mandatory_window_s"] == pytest.approx(0.5, abs=0.01)
        await clock.run_until(clock.now + 5.0)
        assert source.fetches == 2


async def test_status_is_json_and_names_the_state(
    cache: CredentialCache, source: FakeSource
) -> None:
    """``status()`` is a plain JSON-able dict with the state, counts and key hint."""
    status = cache.status()
    json.dumps(status)
    assert status["source"] == "fake"
    assert status["state"] == "valid"
    assert status["key"] == "ASIA…0001"
    assert status["fetches"] == 1 and status["failures"] == 0 and status["last_error"] is None
    assert status["remaining_s"] == pytest.approx(3600, abs=1)


def test_status_before_start_is_idle() -> None:
    """A cache that was never started reports ``idle`` and no credentials."""
    cache = CredentialCache(FakeSource())
    assert cache.status()["state"] == "idle"
    assert "fake" in repr(cache)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"advisory_window": -1},
        {"advisory_window": 10, "mandatory_window": 20},
        {"jitter": 1.5},
        {"backoff_initial": 0},
        {"backoff_initial": 10, "backoff_max": 5},
        {"same_credentials_retry": 0},
        {"subscriber_buffer": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, float]) -> None:
    """Impossible settings raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError):
        CredentialCache(FakeSource(), **kwargs)


def test_a_source_without_fetch_is_refused() -> None:
    """Anything without ``fetch()`` is refused at construction, naming what is needed."""
    with pytest.raises(ConfigurationError, match="fetch"):
        CredentialCache(object())


async def test_source_property_and_custom_credentials(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """The cache exposes its source and hands out exactly what the source returned."""
    wanted = make_creds(42)
    source.script.append(wanted)
    async with make_cache(source) as cache:
        assert cache.source is source
        assert await cache.get() is wanted
