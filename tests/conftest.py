"""Project-wide test configuration.

asyncio runs in debug mode so that never-awaited coroutines and slow
callbacks are reported; anyio's plugin (``anyio_mode = "auto"``) runs every
``async def`` test on asyncio.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Every async test runs on asyncio, in debug mode."""
    return ("asyncio", {"debug": True})
