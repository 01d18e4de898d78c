"""``warm_spread``: a rotation opens its connections evenly, not in one burst.

A fleet's rotations are spread in time by the cache's jitter, but each
rotation used to open ``warm_connections x members`` connections within
milliseconds; paced, each member gets one connection per
``warm_spread / warm_connections`` seconds. Times are read from the CMAP
events; the assertions are lower bounds a sleep cannot undercut.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict

import pytest
from pymongo import monitoring

from pool import ClientPool, ConfigurationError
from pool.cache import CredentialCache
from pool.standins.mongo.cluster import MongoCluster
from tests.client_pool.pool_helpers import FAST, rotate
from tests.standins.net_guard import *  # noqa: F403

WARM = 4
SPREAD = 1.0  # one connection per member every 0.25 s


class _ReadyTimes(monitoring.ConnectionPoolListener):
    """When each connection became ready, per member (recording only while ``on``)."""

    def __init__(self) -> None:
        self.on = False
        self.times: dict[tuple[str, int], list[float]] = defaultdict(list)
        self._lock = threading.Lock()  # Motor publishes from its threads

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        if self.on:
            with self._lock:
                self.times[event.address].append(time.monotonic())

    def __getattr__(self, name: str) -> object:  # every other CMAP event: ignored
        if name.startswith(("pool_", "connection_")):
            return lambda event: None
        raise AttributeError(name)


async def test_a_rotation_opens_one_connection_per_member_at_a_time(
    driver: str, rs: MongoCluster, cache: CredentialCache
) -> None:
    """warm_spread=1 s, warm_connections=4, 3 members: after the ping, each member's next
    connections open at least 0.25 s apart, all four per member before the swap."""
    ready = _ReadyTimes()
    async with ClientPool(  # type: ignore[call-overload]
        rs.uri,
        credentials=cache,
        driver=driver,
        warm_connections=WARM,
        warm_spread=SPREAD,
        heartbeatFrequencyMS=500,
        event_listeners=[ready],
        **FAST,
    ) as cp:
        ready.on = True  # the first client warmed at once; now only the next one opens any
        await rotate(cp, cache)
        ready.on = False
        per_member = {m: len(t) for m, t in ready.times.items()}
        status = cp.status()
    assert sorted(per_member.values()) == [WARM] * 3, per_member  # no overshoot, none missing
    gap = SPREAD / WARM
    for member, times in ready.times.items():
        # The primary's first is the ping's; a member's others follow one per pause.
        steps = [b - a for a, b in itertools.pairwise(times[1:])]
        assert all(step >= gap * 0.95 for step in steps), (member, steps)
    assert status.partial_warmups == 0


@pytest.mark.parametrize("spread", [-1.0, 16.0])
def test_a_spread_that_cannot_fit_the_warm_up_names_the_fix(spread: float) -> None:
    """warm_spread below 0 or over half of warmup_timeout is refused at construction."""
    with pytest.raises(ConfigurationError, match="warm_spread must be between 0 and half"):
        ClientPool(
            "mongodb://127.0.0.1:1/",
            credentials=None,  # type: ignore[arg-type]  # refused before credentials are looked at
            warm_spread=spread,
            warmup_timeout=30.0,
        )
