"""Telemetry costs nothing where it must: no API installed, no SDK, the lease hot path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

from pool import ClientPool, CredentialCache
from pool.errors import CredentialFetchError
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn
from pool.telemetry import INSTRUMENTS, Telemetry
from pool.telemetry.classify import error_type, pool_name, refresh_reason
from tests.client_pool.pool_helpers import FAST, MintingSource

_WITHOUT_OTEL = textwrap.dedent(
    """
    import asyncio, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
    from pool import CredentialCache
    from pool.sources import StaticSource
    from pool.telemetry import default_telemetry

    async def main():
        source = StaticSource(access_key_id="AKIAEXAMPLE1234", secret_access_key="secret")
        async with CredentialCache(source) as cache:
            await cache.get()
            print(default_telemetry().enabled, cache.status()["refreshes"])
    asyncio.run(main())
    assert not any(m.startswith("opentelemetry") for m in sys.modules)
    """
)


def test_the_core_install_runs_without_opentelemetry() -> None:
    """With opentelemetry-api absent, caches work and every instrument is a no-op."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OTEL], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "False {'rotated': 1, 'same': 0, 'failed': 0}" in done.stdout.splitlines()


def test_import_pool_imports_no_opentelemetry() -> None:
    """`import pool` stays cheap: OpenTelemetry loads with the first pool or cache, not before."""
    code = "import sys, pool; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr[-2000:]


class _Counting:
    """An instrument that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def add(self, *_: Any) -> None:
        self.calls += 1

    record = add


async def test_leases_and_run_call_no_instrument(
    mongo: MongoStandIn, authority: CredentialAuthority
) -> None:
    """`async with cp.client()` and `cp.run()` touch no instrument: their counts are observed."""
    tel = Telemetry()
    counting = {name: _Counting() for name in INSTRUMENTS}
    async with (
        CredentialCache(MintingSource(authority), telemetry=tel) as cache,
        ClientPool(mongo.uri, credentials=cache, telemetry=tel, warm_connections=1, **FAST) as cp,
    ):
        tel.i.update(counting)

        async def nothing(client: Any) -> None:
            return None

        for _ in range(50):
            async with cp.client():
                pass
            await cp.run(nothing)
    assert {n: c.calls for n, c in counting.items() if c.calls} == {}


async def test_a_lease_is_one_slotted_object(
    mongo: MongoStandIn, authority: CredentialAuthority
) -> None:
    """cp.client() allocates one object without a __dict__, and never reuses it twice."""
    async with ClientPool(
        mongo.uri, credentials=MintingSource(authority), warm_connections=1, **FAST
    ) as cp:
        lease = cp.client()
        assert not hasattr(lease, "__dict__")
        async with lease:
            with pytest.raises(RuntimeError, match="twice"):
                await lease.__aenter__()
        assert cp.status().leases == {"1": 0}


def test_refresh_reasons() -> None:
    """The cache's own words for an attempt map onto the five documented reasons."""
    inf = float("inf")
    assert refresh_reason("initial", False, 0.0, 1.0) == "initial"
    assert refresh_reason("retry", False, 0.0, 1.0) == "initial"
    assert refresh_reason("refresh", True, 10.0, 1.0) == "forced"
    assert refresh_reason("invalidate", True, -inf, 1.0) == "invalidated"
    assert refresh_reason("retry", True, -inf, 1.0) == "invalidated"
    assert refresh_reason("scheduled", True, 10.0, 1.0) == "advisory"
    assert refresh_reason("get", True, 10.0, 11.0) == "mandatory"


def test_error_types_come_from_codes_and_statuses_only() -> None:
    """Failures map onto a few bounded words, never onto their message."""

    def err(code: str | None = None, status: int | None = None) -> CredentialFetchError:
        return CredentialFetchError("m", retryable=True, code=code, status=status)

    assert error_type(err("Throttling", 400)) == "throttled"
    assert error_type(err("HTTP429", 429)) == "throttled"
    assert error_type(err("Timeout")) == "timeout"
    assert error_type(err("AccessDenied", 403)) == "access_denied"
    assert error_type(err("InvalidIdentityToken", 400)) == "access_denied"
    assert error_type(err("ExpiredToken", 400)) == "expired"
    assert error_type(err("ExpiredOnArrival")) == "expired"
    assert error_type(err("MalformedResponse")) == "malformed"
    assert error_type(err("HTTP503", 503)) == "unavailable"
    assert error_type(ValueError("secret text")) == "other"


def test_default_pool_name_is_the_host_list() -> None:
    """The default pool name keeps the hosts and drops user info, path and options."""
    assert pool_name("mongodb+srv://cluster0.example.mongodb.net/?authSource=x") == (
        "cluster0.example.mongodb.net"
    )
    assert pool_name("mongodb://user:pw@h1:27017,h2:27017/db?tls=true") == "h1:27017,h2:27017"
