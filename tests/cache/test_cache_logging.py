"""Structured logs tell what happened (fetches, schedule, failures) and never leak a secret."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from pool.cache import CredentialCache
from pool.credentials import Credentials
from pool.errors import CredentialFetchError
from pool.sources.base import SourceBase
from tests.cache.cache_fakes import SECRET_MARK, TOKEN_MARK, FakeClock, FakeSource, settle
from tests.logcapture import capture_logs


def _events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_fetch_start_end_and_schedule_are_logged(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """Each fetch logs start and end (duration, source, key hint) and the next refresh's delay."""
    with capture_logs() as logs:
        async with make_cache(source) as cache:
            await cache.get()
    (start,) = _events(logs, "cache.fetch.start")
    assert start["source"] == "fake" and start["reason"] == "initial"
    (end,) = _events(logs, "cache.fetch.end")
    assert end["source"] == "fake"
    assert end["outcome"] == "rotated"
    assert end["key"] == "ASIA…0001"
    assert end["duration_ms"] >= 0
    assert end["expires_in"] == pytest.approx(3600, abs=1)
    (scheduled,) = _events(logs, "cache.refresh.scheduled")
    assert 2700 - 1 <= scheduled["in_s"] <= 3120 + 1


async def test_failures_are_logged_with_their_class(
    cache: CredentialCache, source: FakeSource, clock: FakeClock
) -> None:
    """A failed refresh logs the class and the decision (retry in N s, serving M s more)."""
    source.script.append(CredentialFetchError("ECS said 500", source="fake", retryable=True))
    with capture_logs() as logs:
        assert clock.next_timer is not None
        await clock.run_until(clock.next_timer)
    (failed,) = _events(logs, "cache.fetch.failed")
    assert failed["error_class"] == "CredentialFetchError"
    assert failed["retryable"] is True
    assert failed["log_level"] == "warning"
    assert clock.next_timer is not None
    assert failed["retry_in_s"] == pytest.approx(clock.next_timer - clock.now, abs=1e-3)
    assert failed["serving_current"] is True
    assert failed["valid_for_s"] == pytest.approx(cache.status()["remaining_s"], abs=1e-3)
    assert "ECS said 500" not in repr(failed)  # the source's own line carries the reason
    assert _events(logs, "cache.refresh.scheduled")[-1]["reason"] == "retry"


async def test_cold_failure_log_says_nothing_valid_is_served(
    make_cache: Callable[..., CredentialCache], source: FakeSource, clock: FakeClock
) -> None:
    """A failed first fetch logs that no valid credentials are served, and when it retries."""
    source.script.append(CredentialFetchError("refused", source="fake", retryable=True))
    with capture_logs() as logs:
        async with make_cache(source) as cache:
            with pytest.raises(CredentialFetchError):
                await cache.get()
            assert clock.next_timer is not None
            retry_in = clock.next_timer - clock.now
    (failed,) = _events(logs, "cache.fetch.failed")
    assert failed["serving_current"] is False and failed["valid_for_s"] is None
    assert failed["retry_in_s"] == pytest.approx(retry_in, abs=1e-3)


class _FailingBuiltin(SourceBase):
    name = "builtin"

    async def _fetch(self) -> Credentials:
        raise CredentialFetchError(
            "container endpoint answered 503 Slow Down", source=self.name, retryable=True
        )


async def test_a_failed_fetch_is_explained_once_not_twice(
    make_cache: Callable[..., CredentialCache],
) -> None:
    """Only the source's warning carries the failure's message; the cache's adds its decision."""
    with capture_logs() as logs:
        async with make_cache(_FailingBuiltin()) as cache:
            with pytest.raises(CredentialFetchError):
                await cache.get()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    explaining = [e for e in warnings if "503 Slow Down" in repr(e)]
    assert len(explaining) == 1, explaining
    (failed,) = _events(logs, "cache.fetch.failed")
    assert failed not in explaining
    assert failed["error_class"] == "CredentialFetchError"


async def test_no_secret_in_logs_status_errors_or_reprs(
    make_cache: Callable[..., CredentialCache], source: FakeSource, clock: FakeClock
) -> None:
    """Across a full life (fetch, rotate, fail, invalidate, close) no secret or token escapes."""
    from tests.cache.cache_fakes import make_creds

    texts: list[str] = []
    with capture_logs() as logs:
        async with make_cache(source) as cache:
            await cache.get()
            texts += [repr(cache), repr(cache.current), json.dumps(cache.status())]
            await cache.refresh()
            source.script.append(make_creds(50, ttl=-1))
            with pytest.raises(CredentialFetchError) as info:
                await cache.refresh()
            texts += [str(info.value), repr(info.value), json.dumps(cache.status())]
            cache.invalidate()
            await settle()
            texts.append(json.dumps(cache.status()))
    texts.append(repr(logs))
    blob = "\n".join(texts)
    assert SECRET_MARK not in blob
    assert TOKEN_MARK not in blob
    assert "ASIAFAKE0000" not in blob  # key ids appear only as hints (ASIA…0001)
    assert len(_events(logs, "cache.fetch.end")) >= 3


async def test_custom_source_failure_is_logged_with_its_redacted_message(
    make_cache: Callable[..., CredentialCache], source: FakeSource
) -> None:
    """A custom source's RuntimeError: the log line, status() and the error say why, redacted."""
    hex_token = "0123456789abcdef0123456789abcdef"
    dotted = "abcdefghij123456.ABCDEFGHIJ654321.0123456789abcdef"
    source.script.append(
        RuntimeError(f"vault 403 for token {hex_token} lease {dotted} password=hunter2")
    )
    with capture_logs() as logs:
        async with make_cache(source) as cache:
            with pytest.raises(CredentialFetchError) as info:
                await cache.get()
            status = json.dumps(cache.status())
    (failed,) = _events(logs, "cache.fetch.failed")
    assert failed["cause_class"] == "RuntimeError"
    assert "vault 403" in failed["reason"], "the operator sees why"
    for text in (repr(failed), str(info.value), status):
        assert hex_token not in text and "ABCDEFGHIJ654321" not in text and "hunter2" not in text
        assert "vault 403" in text
