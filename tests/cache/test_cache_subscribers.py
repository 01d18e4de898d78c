"""Subscribers and listeners hear of each new set, in order, and can never block the cache."""

from __future__ import annotations

import gc
from collections.abc import Callable

import anyio

from pool.cache import CredentialCache
from pool.credentials import Credentials
from tests.cache.cache_fakes import FakeClock, FakeSource, settle
from tests.logcapture import capture_logs


async def _rotate(cache: CredentialCache, times: int) -> None:
    for _ in range(times):
        await cache.refresh()


async def test_subscribe_yields_current_then_each_new_set_in_order(
    cache: CredentialCache,
) -> None:
    """``async for`` gets the current set first, then every rotation in order."""
    got: list[str] = []
    async with anyio.create_task_group() as tg:

        async def consume() -> None:
            async for creds in cache.subscribe():
                got.append(creds.access_key_id)
                if len(got) == 4:
                    break

        tg.start_soon(consume)
        await settle()
        for _ in range(3):
            await cache.refresh()
            await settle()
    assert got == [f"ASIAFAKE{n:08d}" for n in (1, 2, 3, 4)]


async def test_slow_subscriber_never_blocks_and_keeps_the_newest(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A subscriber that never reads does not slow rotations; it keeps the newest sets."""
    async with make_cache(source, subscriber_buffer=3) as cache:
        await cache.get()
        sub = cache.subscribe()  # primed with set 1, then never read while rotating
        await _rotate(cache, 10)
        assert source.fetches == 11
        assert sub.dropped == 8
        got = []
        async for creds in sub:
            got.append(creds.access_key_id)
            if len(got) == 3:
                break
    assert got == [f"ASIAFAKE{n:08d}" for n in (9, 10, 11)]


async def test_subscriptions_end_when_the_cache_closes(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Iteration stops after the cache closes (buffered sets are still delivered first)."""
    got: list[str] = []
    cache = make_cache(source)
    async with cache:
        await cache.get()
        sub = cache.subscribe()
        await cache.refresh()
    async for creds in sub:
        got.append(creds.access_key_id)
    assert got == ["ASIAFAKE00000001", "ASIAFAKE00000002"]
    assert [c async for c in cache.subscribe()] == []


async def test_abandoned_subscription_is_forgotten(cache: CredentialCache) -> None:
    """A subscription nobody holds any more is dropped by the cache (weak reference)."""
    sub = cache.subscribe()
    assert cache.status()["subscribers"] == 1
    await sub.aclose()
    del sub
    gc.collect()
    assert cache.status()["subscribers"] == 0


async def test_sync_and_async_listeners_get_each_new_set_in_order(
    cache: CredentialCache,
) -> None:
    """Plain and async callbacks are called for every rotation, in order."""
    sync_seen: list[str] = []
    async_seen: list[str] = []

    async def on_new(creds: Credentials) -> None:
        await anyio.lowlevel.checkpoint()
        async_seen.append(creds.access_key_id)

    cache.add_listener(lambda c: sync_seen.append(c.access_key_id))
    cache.add_listener(on_new)
    await _rotate(cache, 5)
    await settle()
    expected = [f"ASIAFAKE{n:08d}" for n in range(2, 7)]
    assert sync_seen == expected
    assert async_seen == expected


async def test_slow_async_listener_does_not_block_rotation(
    cache: CredentialCache, source: FakeSource
) -> None:
    """An async listener stuck forever neither delays fetches nor leaks its task on close."""
    stuck = anyio.Event()

    async def never_returns(creds: Credentials) -> None:
        await stuck.wait()

    cache.add_listener(never_returns)
    await _rotate(cache, 3)
    assert source.fetches == 4


async def test_listener_exceptions_are_logged_and_do_not_break_the_cache(
    cache: CredentialCache, source: FakeSource
) -> None:
    """A raising listener (sync or async) is logged by class; the others still run."""
    seen: list[str] = []

    def bad(creds: Credentials) -> None:
        raise RuntimeError("boom " + creds.secret_access_key)

    async def bad_async(creds: Credentials) -> None:
        raise ValueError(creds.secret_access_key)

    cache.add_listener(bad)
    cache.add_listener(bad_async)
    cache.add_listener(lambda c: seen.append(c.access_key_id))
    with capture_logs() as logs:
        await _rotate(cache, 2)
        await settle()
    assert seen == ["ASIAFAKE00000002", "ASIAFAKE00000003"]
    failures = [e for e in logs if e["event"] == "cache.listener.failed"]
    assert sorted(e["error_class"] for e in failures) == ["RuntimeError"] * 2 + ["ValueError"] * 2
    assert "SeCrEt" not in repr(logs)
    assert cache.current.access_key_id == "ASIAFAKE00000003"


async def test_unsubscribe_stops_calls(cache: CredentialCache) -> None:
    """The function add_listener returns removes the listener (idempotently)."""
    seen: list[str] = []
    remove = cache.add_listener(lambda c: seen.append(c.access_key_id))
    await _rotate(cache, 1)
    remove()
    remove()
    await _rotate(cache, 1)
    assert seen == ["ASIAFAKE00000002"]
    assert cache.status()["listeners"] == 0


async def test_listeners_are_not_told_about_same_keys_or_failures(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """Only new sets are announced: a failed fetch announces nothing."""
    from pool.errors import CredentialFetchError

    seen: list[Credentials] = []
    cache.add_listener(seen.append)
    source.script.append(CredentialFetchError("x", source="fake", retryable=True))
    assert clock.next_timer is not None
    await clock.run_until(clock.next_timer)
    assert source.fetches == 2
    assert seen == []
