"""status() is typed (CacheStatus), JSON-serialisable, and keeps its keys in every state."""

from __future__ import annotations

import json
import typing
from collections.abc import Callable

import pytest

from pool.cache import CacheStatus, CredentialCache, ErrorStatus
from pool.cache.status import StateName
from pool.errors import CredentialFetchError
from tests.cache.cache_fakes import FakeSource


def _check(status: CacheStatus) -> None:
    assert set(status) == set(CacheStatus.__required_keys__)
    assert status["state"] in typing.get_args(StateName)
    assert json.loads(json.dumps(status)) == status
    if status["last_error"] is not None:
        assert set(status["last_error"]) == set(ErrorStatus.__required_keys__)


async def test_status_has_the_documented_keys_in_every_state(
    make_cache: Callable[..., CredentialCache],
) -> None:
    """Idle, failed, valid and closed snapshots all carry exactly CacheStatus's keys."""
    source = FakeSource()
    source.script.append(CredentialFetchError("503", source="fake", retryable=True))
    cache = make_cache(source)
    seen = [cache.status()]
    async with cache:
        with pytest.raises(CredentialFetchError):
            await cache.get()
        seen.append(cache.status())
        await cache.refresh()
        seen.append(cache.status())
    seen.append(cache.status())
    assert [s["state"] for s in seen] == ["idle", "failed", "valid", "closed"]
    for status in seen:
        _check(status)
    assert seen[1]["last_error"] == {
        "type": "CredentialFetchError",
        "message": "503",
        "retryable": True,
    }


def test_every_field_is_documented() -> None:
    """Each CacheStatus and ErrorStatus field has a docstring in the class body."""
    import inspect

    import pool.cache.status as module

    source = inspect.getsource(module)
    for cls in (CacheStatus, ErrorStatus):
        for field in cls.__required_keys__:
            line = next(x for x in source.splitlines() if x.strip().startswith(f"{field}:"))
            following = source.splitlines()[source.splitlines().index(line) + 1]
            assert following.strip().startswith('"""'), f"{cls.__name__}.{field} has no docstring"
