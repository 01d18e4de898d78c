"""The pool's rotation, integration and topology tests again, on uvloop.

FastAPI users run uvicorn, which picks uvloop when it is installed. The
tests are imported from their modules and collected here a second time; the
module-level ``anyio_backend`` fixture below puts every one of them on a
uvloop event loop. That includes the pool through ``mongodb+srv``: uvloop
resolves names with libuv, not ``socket.getaddrinfo``, and
``loopback_resolution`` hooks ``uvloop.Loop.getaddrinfo`` for the stand-in's
zone (``pool.standins.mongo.resolution``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("uvloop")

from tests.client_pool.test_connection_budget import (
    test_rotation_stays_under_the_cap_on_every_member,
)
from tests.client_pool.test_integrations import (
    test_aiohttp_cleanup_ctx_opens_and_closes_the_pool,
    test_fastapi_lease_spans_the_request_and_pool_closes,
)
from tests.client_pool.test_rotation import (
    test_cursor_survives_two_rotations,
    test_rotation_under_load,
    test_run_retries_once_on_newer_client_after_drop,
    test_session_opened_before_rotation_completes,
    test_slow_warmup_swaps_partially_before_expiry,
    test_warmup_failure_keeps_serving_then_recovers,
)
from tests.client_pool.test_topologies import (
    test_failover_loses_no_operation,
    test_pool_through_mongodb_srv_as_users_write_it,
    test_transaction_begun_before_a_swap_commits_after_it,
    test_warm_means_warm_on_every_member,
)
from tests.client_pool.test_warm_spread import (
    test_a_rotation_opens_one_connection_per_member_at_a_time,
)
from tests.standins.net_guard import *  # noqa: F403  (loopback_only, for the srv test)

__all__ = [
    "test_a_rotation_opens_one_connection_per_member_at_a_time",
    "test_aiohttp_cleanup_ctx_opens_and_closes_the_pool",
    "test_cursor_survives_two_rotations",
    "test_failover_loses_no_operation",
    "test_fastapi_lease_spans_the_request_and_pool_closes",
    "test_pool_through_mongodb_srv_as_users_write_it",
    "test_rotation_stays_under_the_cap_on_every_member",
    "test_rotation_under_load",
    "test_run_retries_once_on_newer_client_after_drop",
    "test_session_opened_before_rotation_completes",
    "test_slow_warmup_swaps_partially_before_expiry",
    "test_transaction_begun_before_a_swap_commits_after_it",
    "test_warm_means_warm_on_every_member",
    "test_warmup_failure_keeps_serving_then_recovers",
]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """Every test collected in this module runs on uvloop."""
    return ("asyncio", {"use_uvloop": True})


async def test_the_loop_is_uvloop() -> None:
    """The fixture above is in force: the running loop is uvloop's."""
    import uvloop

    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
