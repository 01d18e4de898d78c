"""Project-wide test configuration.

asyncio runs in debug mode so that never-awaited coroutines and slow
callbacks are reported; anyio's plugin (``anyio_mode = "auto"``) runs every
``async def`` test on asyncio, on a :class:`tests.fakes.SettlingLoop` (a plain
selector loop that counts scheduled callbacks, so ``tests.fakes.settle()``
needs no private attribute).
"""

from __future__ import annotations

import pytest

from tests.fakes import SettlingLoop


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Every async test runs on asyncio, in debug mode, on a loop ``settle()`` can read."""
    return ("asyncio", {"debug": True, "loop_factory": SettlingLoop})


@pytest.fixture(autouse=True)
def _unpaced_warmups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotations warm at once in-process: ``ClientPool``'s default ``warm_spread`` (5 s on
    the pool's clock) would make every rotation test wait; pacing's own tests pass it."""
    monkeypatch.setattr("pool.client_pool.pool.DEFAULT_WARM_SPREAD", 0.0)


@pytest.fixture(autouse=True)
def _no_measured_skew() -> None:
    """The measured clock skew is process-wide (one host, one clock): each test starts clean."""
    from pool._internal import skew

    skew.reset()
