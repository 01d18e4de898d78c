"""Every instrument after a scripted life: cold start, forced rotation, refused warm-up,
failed refresh, dropped lease, on both drivers, through the SDK's in-memory readers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pool import ClientPool, CredentialCache
from pool.errors import CredentialFetchError
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn
from pool.telemetry import INSTRUMENTS
from tests.client_pool.pool_helpers import FAST, rotate, until
from tests.telemetry.otel_helpers import Otel, ScriptedSource, values

P = "mongodb_aws_pool."
NAME = "telemetry-test"
LIFETIME = 900.0  # long: no scheduled refresh may run during the test


@pytest.fixture
def otel() -> Any:
    o = Otel()
    yield o
    o.shutdown()


@pytest.fixture
def scripted(authority: CredentialAuthority) -> ScriptedSource:
    return ScriptedSource(authority, lifetime=LIFETIME)


@pytest.fixture
async def tcache(scripted: ScriptedSource, otel: Otel) -> AsyncIterator[CredentialCache]:
    async with CredentialCache(scripted, telemetry=otel.telemetry) as c:
        yield c


async def _scripted_life(
    cp: ClientPool[Any], cache: CredentialCache, source: ScriptedSource, otel: Otel
) -> None:
    """The five events, each awaited to its end."""
    # 2. A forced rotation while a lease holds generation 1.
    async with cp.client():
        await rotate(cp, cache)
        leases = values(otel.points()[P + "lease.count"], P + "generation.state")
        assert leases == {("active",): 0, ("draining",): 1}
    await until(lambda: cp.status().draining == ())
    # 3. A refused warm-up (generation 3): the set is invalidated, the next one serves (4).
    source.refuse_next = True
    await cache.refresh()
    async with asyncio.timeout(15):
        assert await cp.wait_for_generation(4) == 4
    # 4. A failed refresh (throttled); the serving set stays.
    source.fail_next = CredentialFetchError(
        "test: throttled", source="test", retryable=True, status=400, code="Throttling"
    )
    with pytest.raises(CredentialFetchError):
        await cache.refresh()
    # 5. A run() whose lease outlives generation 4's drain deadline (2 s): dropped, its
    # client closed under it, so run() retries once on generation 5.
    calls: list[Any] = []
    dropped = asyncio.Event()

    async def op(client: Any) -> Any:
        calls.append(client)
        if len(calls) == 1:
            await dropped.wait()
        return await client.db.t.find_one({})

    task = asyncio.create_task(cp.run(op))
    await until(lambda: bool(calls))
    await rotate(cp, cache)
    await until(lambda: cp.status().dropped_leases == 1)
    await until(lambda: not cp._rot.closers)  # generation 4's client closed: its drain ended
    dropped.set()
    await task
    assert len(calls) == 2 and cp.status().run_retries == 1


async def test_every_instrument_reports_the_expected_values(
    driver: str, mongo: MongoStandIn, tcache: CredentialCache, scripted: ScriptedSource, otel: Otel
) -> None:
    """After the scripted life each instrument holds exactly the expected points."""
    async with ClientPool(  # type: ignore[call-overload]
        mongo.uri, credentials=tcache, driver=driver, name=NAME, telemetry=otel.telemetry,
        warm_connections=2, drain_timeout=2.0, **FAST,
    ) as cp:  # fmt: skip
        # 1. The cold start.
        first = otel.points()
        assert values(first[P + "rotations"], P + "outcome") == {("swapped",): 1}
        assert values(first[P + "credential.refreshes"], P + "refresh.reason", P + "outcome") == {
            ("initial", "rotated"): 1
        }
        await _scripted_life(cp, tcache, scripted, otel)
        points = otel.points()
        monitor = cp._book.current.handle.monitor.snapshot()  # type: ignore[union-attr]
        status = cp.status()

    assert set(points) == set(INSTRUMENTS), "every instrument reported"
    refreshes = values(points[P + "credential.refreshes"], P + "refresh.reason", P + "outcome")
    assert refreshes == {
        ("initial", "rotated"): 1,
        ("forced", "rotated"): 3,
        ("invalidated", "rotated"): 1,
        ("forced", "failed"): 1,
    }
    assert values(points[P + "credential.refresh.failures"], "error.type") == {("throttled",): 1}
    durations = values(points[P + "credential.refresh.duration"], P + "outcome")
    assert durations == {("rotated",): 5, ("failed",): 1}
    assert values(points[P + "rotations"], P + "outcome") == {("swapped",): 4, ("refused",): 1}
    assert values(points[P + "warmup.duration"], P + "outcome") == {("full",): 4, ("refused",): 1}
    assert values(points[P + "drain.duration"], P + "outcome") == {("drained",): 2, ("dropped",): 1}
    assert values(points[P + "lease.drops"]) == {(): 1}
    assert values(points[P + "run.retries"]) == {(): 1}
    leases = values(points[P + "lease.count"], P + "generation.state")
    assert leases == {("active",): 0, ("draining",): 0}
    (expiry,) = points[P + "credential.time_to_expiry"]
    assert expiry[0][P + "generation"] == 5 and 0 < expiry[1].value <= LIFETIME + 1

    conn = f"{NAME}#5"
    counts = values(
        points["db.client.connection.count"],
        "db.client.connection.pool.name",
        "db.client.connection.state",
    )
    assert counts == {(conn, "idle"): monitor.open - monitor.in_use, (conn, "used"): 0}
    assert monitor.open >= 2
    pool_names = ("db.client.connection.pool.name",)
    assert values(points["db.client.connection.max"], *pool_names) == {(conn,): 100}
    assert values(points["db.client.connection.pending_requests"], *pool_names) == {(conn,): 0}
    created = values(points["db.client.connection.create_time"], *pool_names)
    assert created[(conn,)] == monitor.created
    assert set(created) == {(f"{NAME}#{n}",) for n in (1, 2, 4, 5)}, "refused #3: none ready"
    assert values(points["db.client.connection.wait_time"], *pool_names)[(conn,)] >= 1
    for name, rows in points.items():
        for attrs, _ in rows:
            labelled = attrs.get("db.system.name") == "mongodb"
            assert labelled or attrs.get(P + "credential.source") == "test", (name, attrs)

    assert status.refreshes == {"rotated": 5, "same": 0, "failed": 1}
    assert status.last_warmup_s is not None and status.last_warmup_s > 0
    assert status.last_drain_s is not None and status.last_drain_s >= 2.0


async def test_spans_cover_fetches_and_rotations_without_secrets(
    driver: str, mongo: MongoStandIn, tcache: CredentialCache, scripted: ScriptedSource, otel: Otel
) -> None:
    """A span per fetch and per rotation, warm-up and drain, with outcomes; no secret anywhere."""
    async with ClientPool(  # type: ignore[call-overload]
        mongo.uri, credentials=tcache, driver=driver, name=NAME, telemetry=otel.telemetry,
        warm_connections=2, drain_timeout=2.0, **FAST,
    ) as cp:  # fmt: skip
        await _scripted_life(cp, tcache, scripted, otel)
    spans = otel.spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    fetches = [s.attributes[P + "outcome"] for s in by_name[P + "credential.fetch"]]
    assert sorted(fetches) == ["failed"] + ["rotated"] * 5
    rotations = {
        s.attributes[P + "generation"]: s.attributes[P + "outcome"] for s in by_name[P + "rotation"]
    }
    assert rotations == {1: "swapped", 2: "swapped", 3: "refused", 4: "swapped", 5: "swapped"}
    warmups = sorted(s.attributes[P + "outcome"] for s in by_name[P + "warmup"])
    assert warmups == ["full"] * 4 + ["refused"]
    drains = {
        s.attributes[P + "generation"]: s.attributes[P + "outcome"] for s in by_name[P + "drain"]
    }
    assert drains == {1: "drained", 2: "drained", 4: "dropped"}
    swap_events = [e for s in by_name[P + "rotation"] for e in s.events if e.name == "swap"]
    assert len(swap_events) == 4
    for warm in by_name[P + "warmup"]:
        assert warm.parent is not None, "a warm-up is a child of its rotation"

    exported = json.dumps(
        [
            [dict(s.attributes or {}), [dict(e.attributes or {}) for e in s.events], s.name]
            for s in spans
        ]
        + [[name, [a for a, _ in rows]] for name, rows in otel.points().items()],
        default=str,
    )
    secrets = scripted.secrets()
    assert secrets and not [s for s in secrets if s in exported]
    for creds in scripted.minted:
        assert creds.access_key_id not in exported, "not even the key id is a label"
