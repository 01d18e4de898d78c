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
from pool.client_pool.monitor import ConnectionMonitor
from pool.standins.mongo.cluster import MongoCluster
from pool.standins.mongo.server import MongoStandIn
from tests.client_pool.pool_helpers import FAST, make_pool, rotate
from tests.standins.net_guard import *  # noqa: F403

WARM = 4
SPREAD = 1.0  # one connection per member every 0.25 s


class _ReadyTimes(ConnectionMonitor):
    """When each connection became ready, per member (recording only while ``on``).

    The pool's own CMAP listener underneath, so every other event is handled
    (PyMongo's base listener raises NotImplementedError for each one left out).
    """

    def __init__(self) -> None:
        super().__init__()
        self.on = False
        self.times: dict[tuple[str, int | None], list[float]] = defaultdict(list)
        self._times_lock = threading.Lock()  # Motor publishes from its threads

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        super().connection_ready(event)
        if self.on:
            with self._times_lock:
                self.times[event.address].append(time.monotonic())


async def test_a_rotation_opens_one_connection_per_member_at_a_time(
    driver: str, rs: MongoCluster, cache: CredentialCache
) -> None:
    """warm_spread=1 s, warm_connections=4, 3 members: after the ping, each member's next
    connections open one round at a time, rounds at least 0.25 s apart, all before the swap."""
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
    # PyMongo's own once-a-second fill may coincide with one paced round and open one
    # more there (remove_stale_sockets checks `requests`, not the sum; see warmup.py).
    assert all(WARM <= n <= WARM + 1 for n in per_member.values()), per_member
    assert len(per_member) == 3, per_member
    gap = SPREAD / WARM
    for member, times in ready.times.items():
        # Rounds: connections ready within a tenth of the pause belong to one round.
        rounds = [times[0]]
        for t in times[1:]:
            if t - rounds[-1] >= gap / 10:
                rounds.append(t)
        # The primary's first round is the ping's; the others follow one pause apart.
        steps = [b - a for a, b in itertools.pairwise(rounds[1:])]
        assert len(rounds) >= WARM - 1 and all(step >= gap * 0.95 for step in steps), (
            member,
            steps,
        )
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


async def test_only_routine_rotations_are_paced(
    mongo: MongoStandIn, cache: CredentialCache, driver: str
) -> None:
    """The serving client refused (code 18) or its credentials expired: the next one is
    needed now and warms unpaced; a healthy serving client gets the configured spread."""
    async with make_pool(mongo, cache, driver, warm_spread=SPREAD) as cp:
        serving = cp._book.current
        assert serving is not None
        assert cp._rot._spread_for(None) == 0.0  # the first client
        assert cp._rot._spread_for(serving) == SPREAD
        serving.auth_failure_reported = True
        assert cp._rot._spread_for(serving) == 0.0
        serving.auth_failure_reported = False
        serving.expires_at = cp.clock.monotonic() - 1.0
        assert cp._rot._spread_for(serving) == 0.0
