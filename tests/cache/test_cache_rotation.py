"""Same credentials again, late timers (frozen processes) and invalidation."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import anyio
import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from pool.errors import CredentialFetchError, CredentialsExpiredError
from tests.cache.cache_fakes import FakeClock, FakeSource, make_creds, settle

# -- the same credentials again ------------------------------------------------


def _again(source: FakeSource, times: int) -> None:
    """Make the next ``times`` fetches return the first set again, as IMDS does.

    The copy's expiration is moved back by the fake time elapsed since the
    first fetch, so its remaining lifetime agrees with the fake clock.
    """
    assert source.clock is not None
    clock = source.clock

    def copy_of_first(_: int) -> Credentials:
        first, elapsed = source.issued[0], clock.now - source.issued_at[0]
        assert first.expiration is not None
        return Credentials(
            access_key_id=first.access_key_id,
            secret_access_key=first.secret_access_key,
            session_token=first.session_token,
            expiration=first.expiration - timedelta(seconds=elapsed),
            source="fake",
        )

    source.script.extend([copy_of_first] * times)


async def test_same_credentials_are_not_a_rotation_and_are_retried_soon(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """IMDS hands back the same keys: nobody is notified, and the cache asks again soon."""
    seen: list[Credentials] = []
    cache.add_listener(seen.append)
    first = cache.current
    _again(source, 3)
    assert clock.next_timer is not None
    await clock.run_until(clock.next_timer)
    assert source.fetches == 2
    assert cache.current is first
    assert seen == []
    assert cache.status()["sets"] == 1
    assert clock.next_timer is not None
    assert clock.next_timer - clock.now <= 30  # seconds, not the rest of the hour
    for n in (3, 4, 5):
        await clock.run_until(clock.next_timer)
        assert source.fetches == n
    assert cache.current.access_key_id == "ASIAFAKE00000005"
    assert [c.access_key_id for c in seen] == ["ASIAFAKE00000005"]


async def test_same_credentials_retries_back_off_but_stay_before_mandatory(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """Repeated same-keys answers back off, and the cache never sleeps past the mandatory window."""
    status = cache.status()
    mandatory_at = clock.now + status["remaining_s"] - status["mandatory_window_s"]
    _again(source, 100)
    while clock.now < mandatory_at - 0.01:  # status() rounds to milliseconds
        assert clock.next_timer is not None
        assert clock.next_timer <= mandatory_at + 0.01
        await clock.run_until(clock.next_timer)
    assert 10 <= source.fetches <= 100  # a handful per window, not a hot loop


async def test_early_refresh_returning_same_keys_keeps_the_normal_schedule(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """refresh() long before the advisory window that returns the same keys changes no schedule."""
    due = clock.next_timer
    _again(source, 1)
    assert await cache.refresh() is cache.current
    assert clock.next_timer == due


# -- late timers ------------------------------------------------------------------


async def test_get_after_a_frozen_process_never_returns_expired_credentials(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """Time jumps past expiry without the timer running: get() notices and fetches."""
    clock.advance(2 * 3600, fire=False)
    with pytest.raises(CredentialsExpiredError, match="expired"):
        _ = cache.current
    creds = await cache.get()
    assert creds.access_key_id == "ASIAFAKE00000002"
    assert source.fetches == 2


async def test_get_in_advisory_window_with_late_timer_returns_at_once_and_refreshes(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """In the advisory window with a late timer, get() returns the valid set and kicks a refresh."""
    first = cache.current
    clock.advance(3600 - 200, fire=False)  # past the refresh point, before the mandatory window
    source.gate = anyio.Event()
    assert await cache.get() is first
    await settle()
    assert source.fetches == 2  # the refresh started without waiting for the timer
    source.gate.set()
    await settle()
    assert cache.current.access_key_id == "ASIAFAKE00000002"


async def test_get_in_mandatory_window_waits_for_the_refresh(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """In the mandatory window (timer late), get() waits for, and returns, the new set."""
    clock.advance(3600 - 10, fire=False)
    creds = await cache.get()
    assert creds.access_key_id == "ASIAFAKE00000002"


# -- invalidate ----------------------------------------------------------------------


async def test_invalidate_refreshes_at_once_and_stops_serving_the_set(
    cache: CredentialCache, source: FakeSource
) -> None:
    """invalidate(creds) drops the rejected set and fetches a new one immediately."""
    rejected = cache.current
    source.gate = anyio.Event()
    cache.invalidate(rejected)
    with pytest.raises(CredentialsExpiredError, match="rejected"):
        _ = cache.current
    await settle()
    assert source.fetches == 2
    source.gate.set()
    new = await cache.get()
    assert new.access_key_id == "ASIAFAKE00000002"


async def test_many_failing_operations_cause_one_refresh(
    cache: CredentialCache, source: FakeSource
) -> None:
    """A burst of invalidate() calls for the same set triggers exactly one fetch."""
    rejected = cache.current
    for _ in range(500):
        cache.invalidate(rejected)
    await settle()
    for _ in range(500):
        cache.invalidate(rejected)  # stragglers after the rotation: no-ops
    await settle()
    assert source.fetches == 2
    assert cache.current.access_key_id == "ASIAFAKE00000002"


async def test_invalidating_an_old_set_is_a_no_op(
    cache: CredentialCache, source: FakeSource
) -> None:
    """An operation that failed with a set already replaced does not cause another refresh."""
    old = cache.current
    await cache.refresh()
    cache.invalidate(old)
    cache.invalidate(make_creds(99))
    await settle()
    assert source.fetches == 2
    assert cache.current.access_key_id == "ASIAFAKE00000002"


async def test_invalidated_set_handed_back_is_used_again_once(
    cache: CredentialCache, source: FakeSource
) -> None:
    """If the source returns the rejected keys again they are served; further invalidations wait."""
    first = cache.current
    _again(source, 2)
    cache.invalidate()
    assert await cache.get() is first
    cache.invalidate(first)  # once per set: ignored now
    await settle()
    assert source.fetches == 2
    assert cache.current is first


async def test_invalidate_with_failing_source_raises_to_waiters(
    cache: CredentialCache, source: FakeSource
) -> None:
    """After invalidation, a failed refetch leaves no usable set: get() raises the fetch error."""
    source.script.append(CredentialFetchError("503", source="fake", retryable=True))
    cache.invalidate()
    with pytest.raises(CredentialFetchError, match="503"):
        await cache.get()


async def test_invalidate_before_any_credentials_or_after_close_is_harmless(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """invalidate() with nothing cached, or after close, does nothing and raises nothing."""
    cache = make_cache(source)
    cache.invalidate()
    async with cache:
        await cache.get()
    cache.invalidate()
    assert source.fetches == 1
