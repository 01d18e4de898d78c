"""The cache's refresh hooks report what its state machine decided, on the cache's clock."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from pool.cache import CredentialCache
from pool.errors import CredentialFetchError
from tests.cache.cache_fakes import make_creds
from tests.fakes import FakeClock, settle
from tests.telemetry.otel_helpers import Otel, values

P = "mongodb_aws_pool."


class Scripted:
    """Returns the scripted values in turn (anything, even not Credentials)."""

    name = "scripted"

    def __init__(self, *items: object) -> None:
        self.items: deque[object] = deque(items)
        self.gate: anyio.Event | None = None
        self.swallow_cancel = False  # a misbehaving source: returns even when cancelled

    async def fetch(self) -> Any:
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                if not self.swallow_cancel:
                    raise
        return self.items.popleft()


@pytest.fixture
def otel() -> Iterator[Otel]:
    o = Otel()
    yield o
    o.shutdown()


async def test_machine_rejections_are_counted_with_their_error_type(otel: Otel) -> None:
    """Not-Credentials and expired-on-arrival fetches count as malformed/expired failures."""
    first = make_creds(1)
    source = Scripted(first, {"AccessKeyId": "not a set"}, make_creds(2, ttl=-10.0), first)
    cache = CredentialCache(
        source, clock=FakeClock(), rng=random.Random(7), telemetry=otel.telemetry
    )
    async with cache:
        assert await cache.get() == first
        with pytest.raises(CredentialFetchError) as malformed:
            await cache.refresh()
        assert malformed.value.code == "MalformedResponse"
        with pytest.raises(CredentialFetchError) as expired:
            await cache.refresh()
        assert expired.value.code == "ExpiredOnArrival"
        assert await cache.refresh() == first  # the same keys again
        status = cache.status()
    points = otel.points()
    refreshes = values(points[P + "credential.refreshes"], P + "refresh.reason", P + "outcome")
    assert refreshes == {("initial", "rotated"): 1, ("forced", "failed"): 2, ("forced", "same"): 1}
    failures = values(points[P + "credential.refresh.failures"], "error.type")
    assert failures == {("malformed",): 1, ("expired",): 1}
    assert status["refreshes"] == {"rotated": 1, "same": 1, "failed": 2}
    assert (status["fetches"], status["sets"], status["failures"]) == (4, 1, 2)
    assert status["state"] == "valid", "the hooks leave the machine's decisions alone"


@pytest.mark.parametrize("swallow", [False, True], ids=["cancelled", "swallowed"])
async def test_close_during_a_fetch_counts_nothing(otel: Otel, swallow: bool) -> None:
    """A fetch still running when the cache closes ends its span as cancelled, counted nowhere."""
    source = Scripted(make_creds(1))
    source.gate, source.swallow_cancel = anyio.Event(), swallow
    cache = CredentialCache(source, clock=FakeClock(), telemetry=otel.telemetry)
    await cache.start()
    await settle()
    await cache.aclose()
    assert P + "credential.refreshes" not in otel.points()
    assert cache.status()["refreshes"] == {"rotated": 0, "same": 0, "failed": 0}
    (span,) = otel.spans.get_finished_spans()
    assert span.attributes is not None and span.attributes[P + "outcome"] == "cancelled"


async def test_fetch_duration_is_read_on_the_caches_clock(otel: Otel) -> None:
    """A fetch that takes 2.5 s on the cache's fake clock is recorded as 2.5 s."""
    clock = FakeClock()

    class Slow(Scripted):
        async def fetch(self) -> Any:
            clock.now += 2.5  # time passes on the cache's clock only
            return await super().fetch()

    async with CredentialCache(Slow(make_creds(1)), clock=clock, telemetry=otel.telemetry) as c:
        await c.get()
    ((_, point),) = otel.points()[P + "credential.refresh.duration"]
    assert point.count == 1 and point.sum == pytest.approx(2.5)
