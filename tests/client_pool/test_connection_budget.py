"""``max_connections_per_member``: a rotation never pushes a member past the cap.

Counted at the server, per member: ``authenticated_peak`` is the most
authenticated connections open at once (the application's; the drivers'
monitoring connections never authenticate).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pool import ClientPool, ConfigurationError
from pool.cache import CredentialCache
from pool.client_pool.budget import capped_warm, fits
from pool.standins.mongo.cluster import MongoCluster
from tests.client_pool.pool_helpers import FAST, Writers, rotate, until
from tests.standins.net_guard import *  # noqa: F403

A, B = ("a", 1), ("b", 1)
MAX_POOL = 6
CAP = 8  # room for the old client at full size and two more
WORKERS = MAX_POOL  # enough to hold the old client at maxPoolSize


def test_capped_warm_leaves_room_for_the_serving_client() -> None:
    """Warm-up opens at most the cap minus the serving client's busiest member, at least 1."""
    assert capped_warm(4, 10, Counter({A: 3, B: 7})) == 3
    assert capped_warm(4, 10, Counter({A: 1})) == 4
    assert capped_warm(4, 10, Counter({A: 10})) == 1  # the ping must prove the credentials
    assert capped_warm(4, 10, None) == 4


def test_fits_counts_only_leases_that_need_a_new_connection() -> None:
    """A lease an open connection can serve always fits; a new connection only under the cap."""
    own, others = Counter({A: 2}), Counter({A: 6})
    assert fits(2, 8, own, others, [A])  # served by the two open ones
    assert not fits(3, 8, own, others, [A])  # a third would make 6 + 3 = 9 > 8
    assert fits(3, 9, own, others, [A])
    assert not fits(1, 8, Counter(), Counter({B: 8}), [A, B])  # a member with no room


@pytest.mark.parametrize(
    ("cap", "options", "needle"),
    [
        (0, {"maxPoolSize": 4}, "integer >= 1"),
        (5, {}, "maxPoolSize=100 (default)"),
        (6, {"maxPoolSize": 6}, "raise the cap to 7 or pass maxPoolSize=5"),
        (8, {"maxPoolSize": 6, "minPoolSize": 3}, "needs minPoolSize=3"),
        (5, {"maxPoolSize": 0}, "needs a bounded pool"),
    ],
)
def test_a_cap_that_cannot_hold_names_the_fix(
    cap: int, options: dict[str, Any], needle: str
) -> None:
    """A cap with no room for a rotation next to a full client is refused, naming the fix."""
    with pytest.raises(ConfigurationError) as info:
        ClientPool(
            "mongodb://127.0.0.1:1/",
            credentials=None,  # type: ignore[arg-type]  # refused before credentials are looked at
            max_connections_per_member=cap,
            **options,
        )
    assert needle in str(info.value)


@pytest.mark.parametrize("cap", [CAP, None], ids=["capped", "uncapped"])
async def test_rotation_stays_under_the_cap_on_every_member(
    driver: str, cap: int | None, rs: MongoCluster, cache: CredentialCache
) -> None:
    """Old client held open at maxPoolSize through a rotation under load: per member never
    more than the cap, nothing failed or lost; without the cap the same run goes past it."""
    async with ClientPool(  # type: ignore[call-overload]
        rs.uri,
        credentials=cache,
        driver=driver,
        warm_connections=4,
        maxPoolSize=MAX_POOL,
        max_connections_per_member=cap,
        heartbeatFrequencyMS=500,
        **FAST,
    ) as cp:
        load = Writers(cp, workers=WORKERS)
        primary = rs.stats_by_member[rs.primary or 0]
        await until(lambda: primary.authenticated_open >= MAX_POOL)  # the old client is full
        for s in rs.stats_by_member:
            s.authenticated_peak = s.authenticated_open
        async with cp.client() as held:  # a long lease: the old client drains while held
            await rotate(cp, cache)
            await load.wait_progress(200)  # traffic on the new client while the old one is open
            await held.db.t.find_one({})
        await load.wait_progress(200)
        await load.stop()
        status = cp.status()
    peaks = [s.authenticated_peak for s in rs.stats_by_member]
    stored = {d["_id"] for d in rs.storage_client.db.acked.find({}, {"_id": 1})}
    assert load.failures == []
    assert set(load.acked) <= stored
    if cap is None:
        assert max(peaks) > CAP, "the scenario must reach past the cap when none is set"
    else:
        assert max(peaks) <= CAP, peaks
        assert status.max_connections_per_member == CAP
        assert status.capped_warmups == 1  # 4 wanted, 8 - 6 = 2 opened
        assert status.capped_leases > 0, "leases on the new client waited for room"
