"""Failed refreshes: serve what is still valid, back off with jitter, fail fast when told to."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from pool.cache import CredentialCache
from pool.errors import (
    ConfigurationError,
    CredentialFetchError,
    CredentialsExpiredError,
    PoolClosedError,
)
from tests.cache.cache_fakes import FakeClock, FakeSource, make_creds, settle
from tests.logcapture import capture_logs


def _retryable(msg: str = "IMDS answered 503") -> CredentialFetchError:
    return CredentialFetchError(msg, source="fake", retryable=True, status=503)


def _fatal(msg: str = "AccessDenied: not authorized to assume role") -> CredentialFetchError:
    return CredentialFetchError(msg, source="fake", retryable=False, status=403)


async def _to_refresh_point(clock: FakeClock) -> None:
    assert clock.next_timer is not None
    await clock.run_until(clock.next_timer)


async def test_failed_refresh_keeps_serving_valid_credentials(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """A refresh that fails in the advisory window changes nothing for callers."""
    first = cache.current
    source.script.append(_retryable())
    await _to_refresh_point(clock)
    assert source.fetches == 2
    assert cache.current is first
    assert await cache.get() is first
    status = cache.status()
    assert status["state"] == "retrying"
    assert status["failures"] == 1
    assert status["last_error"]["type"] == "CredentialFetchError"
    assert status["last_error"]["retryable"] is True


async def test_retries_back_off_exponentially_with_full_jitter(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """Consecutive failures wait at most initial * 2**(n-1), up to the cap, before retrying."""
    source = FakeSource()
    source.script.extend([_retryable() for _ in range(8)])
    async with make_cache(source, backoff_initial=1.0, backoff_max=20.0):
        delays = []
        for n in range(1, 9):
            await settle()
            assert source.fetches == n
            assert clock.next_timer is not None
            delays.append(clock.next_timer - clock.now)
            await clock.run_until(clock.next_timer)
        assert source.fetches == 9  # the ninth attempt succeeds
    bounds = [min(20.0, 2.0 ** (n - 1)) for n in range(1, 9)]
    assert all(0 <= d <= b + 1e-9 for d, b in zip(delays, bounds, strict=True)), delays
    assert max(delays) > 4  # the bound grew: not a fixed short interval


async def test_failing_refresh_retries_before_the_mandatory_window(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """However long the backoff, one more attempt happens when the mandatory window begins."""
    source.script.extend([_fatal(), _retryable()])
    status = cache.status()
    mandatory_at = clock.now + status["remaining_s"] - status["mandatory_window_s"]
    await _to_refresh_point(clock)  # non-retryable: would wait 30-60 s by itself
    assert clock.next_timer is not None and clock.next_timer <= mandatory_at + 1e-6


async def test_failure_in_mandatory_window_still_serves_valid_credentials(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """In the mandatory window get() waits for the attempt; if it fails, the still-valid set is returned."""  # noqa: E501
    first = cache.current
    clock.advance(3600 - 30, fire=False)  # inside the 60 s mandatory window, timer late
    source.script.append(_retryable())
    assert await cache.get() is first
    assert source.fetches == 2
    assert await cache.get() is first  # backing off: no new fetch per call
    assert source.fetches == 2


async def test_non_retryable_error_is_surfaced_at_once_and_not_hammered(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """A non-retryable error reaches the waiting caller; later calls fail fast without fetching."""
    source = FakeSource()
    source.script.append(_fatal())
    async with make_cache(source) as cache:
        with pytest.raises(CredentialFetchError, match="AccessDenied") as info:
            await cache.get()
        assert info.value.retryable is False
        for _ in range(50):
            with pytest.raises(CredentialFetchError, match="AccessDenied") as again:
                await cache.get()
            assert again.value is info.value
        with pytest.raises(CredentialsExpiredError, match="AccessDenied"):
            _ = cache.current
        assert source.fetches == 1
        assert clock.next_timer is not None
        assert clock.next_timer - clock.now >= 30  # half the 60 s cap at least
        assert cache.status()["state"] == "failed"
        await clock.run_until(clock.next_timer)
        assert (await cache.get()).access_key_id == "ASIAFAKE00000002"


async def test_retryable_error_at_cold_start_raises_to_waiters(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """With nothing cached, the waiters of a failed first fetch get its error (the same object)."""
    source.script.append(_retryable("connection refused"))
    async with make_cache(source) as cache:
        with pytest.raises(CredentialFetchError, match="connection refused") as info:
            await cache.get()
        assert info.value.retryable is True
        with pytest.raises(CredentialsExpiredError) as later:
            _ = cache.current
        assert isinstance(later.value.__cause__, CredentialFetchError)


async def test_credentials_that_arrive_expired_are_rejected(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """A source returning an already-expired set is a failure, never handed out."""
    source = FakeSource()
    source.script.append(make_creds(1, ttl=-5))
    async with make_cache(source) as cache:
        with pytest.raises(CredentialFetchError, match="already expired") as info:
            await cache.get()
        assert "SeCrEt" not in str(info.value)
        with pytest.raises(CredentialsExpiredError):
            _ = cache.current
        assert clock.next_timer is not None
        await clock.run_until(clock.next_timer)
        assert (await cache.get()).access_key_id == "ASIAFAKE00000002"


async def test_credentials_inside_mandatory_window_are_rejected(
    make_cache: Callable[..., CredentialCache],
) -> None:
    """With an explicit 60 s mandatory window, a set with 30 s left is rejected as an error."""
    source = FakeSource()
    source.script.append(make_creds(1, ttl=30))
    async with make_cache(source, advisory_window=300, mandatory_window=60) as cache:
        with pytest.raises(CredentialFetchError, match="mandatory"):
            await cache.get()


async def test_unknown_exceptions_are_wrapped_and_retried(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """A custom source's OSError becomes a retryable CredentialFetchError with the cause kept."""
    source = FakeSource()
    source.script.append(ConnectionResetError("peer reset"))
    async with make_cache(source) as cache:
        with pytest.raises(CredentialFetchError, match="ConnectionResetError: peer reset") as info:
            await cache.get()
        assert info.value.retryable is True
        assert isinstance(info.value.__cause__, ConnectionResetError)
        assert clock.next_timer is not None and clock.next_timer - clock.now <= 1.0


_VAULT_TOKEN = "hvs.CAESIJ5xSECRETtoken123"
_VAULT_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_VAULT_ERROR = f"GET https://vault/v1/creds?token={_VAULT_TOKEN} failed: secret={_VAULT_SECRET}"


def _assert_no_vault_secret(text: str) -> None:
    for secret in (_VAULT_TOKEN, _VAULT_SECRET, "SECRETtoken", "EXAMPLEKEY", "MDENG"):
        assert secret not in text, f"{secret!r} leaked into: {text}"


async def test_third_party_error_text_is_redacted_everywhere(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """A source error quoting a token or a secret leaves no trace in logs, status, errors."""
    source = FakeSource()
    source.script.extend([RuntimeError(_VAULT_ERROR) for _ in range(3)])
    texts: list[str] = []
    with capture_logs() as logs:
        async with make_cache(source) as cache:
            subscription = cache.subscribe()
            with pytest.raises(CredentialFetchError) as cold:
                await cache.get()  # nothing cached: the waiter gets the error
            with pytest.raises(CredentialsExpiredError) as expired:
                _ = cache.current
            status = cache.status()
            texts += [str(cold.value), repr(cold.value), str(expired.value), repr(expired.value)]
            texts += [json.dumps(status), repr(cache)]
            assert clock.next_timer is not None
            await clock.run_until(clock.next_timer)  # the retry: also the secret error
            with pytest.raises(CredentialFetchError) as again:
                await cache.refresh()
            texts += [str(again.value), repr(again.value), json.dumps(cache.status())]
        texts += [repr(item) async for item in subscription]
    texts.append(repr(logs))
    blob = "\n".join(texts)
    _assert_no_vault_secret(blob)
    assert "RuntimeError" in str(cold.value) and "https://vault/v1/creds" in str(cold.value)
    assert status["last_error"]["type"] == "CredentialFetchError"
    assert "RuntimeError" in status["last_error"]["message"]
    assert status["last_error"]["retryable"] is True
    assert isinstance(cold.value.__cause__, RuntimeError)  # the original, for tracebacks only
    failed = [e for e in logs if e["event"] == "cache.fetch.failed"]
    assert failed and all(e["cause_class"] == "RuntimeError" for e in failed)


async def test_library_misuse_errors_from_a_source_are_not_retried_soon(
    make_cache: Callable[..., CredentialCache], clock: FakeClock
) -> None:
    """The library's own errors from a source pass through unwrapped and are not retried soon."""
    source = FakeSource()
    source.script.extend([ConfigurationError("bad role ARN"), PoolClosedError("source closed")])
    async with make_cache(source) as cache:
        with pytest.raises(ConfigurationError):
            await cache.get()
        assert clock.next_timer is not None and clock.next_timer - clock.now >= 30
        with pytest.raises(PoolClosedError, match="source closed"):
            await cache.refresh()
        assert cache.status()["last_error"]["retryable"] is False


async def test_expired_while_backing_off_fails_fast(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """Once the set expired and a retry is scheduled, get() raises at once without fetching."""
    source.script.extend([_retryable() for _ in range(3)])
    clock.advance(3601, fire=False)
    with pytest.raises(CredentialFetchError):
        await cache.get()
    fetches = source.fetches
    with pytest.raises(CredentialFetchError):
        await cache.get()
    with pytest.raises(CredentialsExpiredError, match="next try in"):
        _ = cache.current
    assert source.fetches == fetches


async def test_refresh_raises_its_own_failure_but_keeps_credentials(
    cache: CredentialCache, source: FakeSource
) -> None:
    """A forced refresh that fails raises to its caller; the valid set stays current."""
    first = cache.current
    source.script.append(_retryable("throttled"))
    with pytest.raises(CredentialFetchError, match="throttled"):
        await cache.refresh()
    assert cache.current is first
    assert await cache.get() is first
    assert cache.status()["state"] == "valid"  # an early forced refresh keeps the schedule
