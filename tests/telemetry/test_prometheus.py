"""The Prometheus endpoint: scraped over HTTP on loopback and parsed as the text format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pool import ClientPool, CredentialCache
from pool.errors import ConfigurationError
from pool.standins.authority import CredentialAuthority
from pool.standins.mongo.server import MongoStandIn
from pool.telemetry.prometheus import PrometheusEndpoint, serve_prometheus
from tests.client_pool.pool_helpers import FAST, MintingSource, rotate


@pytest.fixture
def endpoint() -> Iterator[PrometheusEndpoint]:
    ep = serve_prometheus(port=0, install_global=False)
    yield ep
    ep.close()


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def test_scrape_over_http_parses_and_names_follow_prometheus(
    mongo: MongoStandIn, authority: CredentialAuthority, endpoint: PrometheusEndpoint
) -> None:
    """GET /metrics on loopback returns the text format with the pool's series, secret-free."""
    source = MintingSource(authority, lifetime=900)
    async with (
        CredentialCache(source, telemetry=endpoint.telemetry) as cache,
        ClientPool(
            mongo.uri,
            credentials=cache,
            name="shop",
            telemetry=endpoint.telemetry,
            warm_connections=2,
            **FAST,
        ) as cp,  # fmt: skip
    ):
        await rotate(cp, cache)
        async with cp.client():
            assert endpoint.url is not None and endpoint.url.startswith("http://127.0.0.1:")
            async with aiohttp.ClientSession() as http, http.get(endpoint.url) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
    samples = _samples(text)
    (rotations,) = samples["mongodb_aws_pool_rotations_total"]
    assert rotations.value == 2 and rotations.labels["mongodb_aws_pool_outcome"] == "swapped"
    assert rotations.labels["mongodb_aws_pool_pool_name"] == "shop"
    leases = {
        s.labels["mongodb_aws_pool_generation_state"]: s.value
        for s in samples["mongodb_aws_pool_lease_count"]
    }
    assert leases == {"active": 1.0, "draining": 0.0}
    (expiry,) = samples["mongodb_aws_pool_credential_time_to_expiry_seconds"]
    assert 0 < expiry.value <= 901  # the stand-in rounds expiry to the second
    idle = [
        s for s in samples["db_client_connection_count"]
        if s.labels["db_client_connection_state"] == "idle"
    ]  # fmt: skip
    assert [s.labels["db_client_connection_pool_name"] for s in idle] == ["shop#2"]
    assert "mongodb_aws_pool_credential_refresh_duration_seconds_bucket" in samples
    assert "db_client_connection_create_time_seconds_count" in samples
    assert not [s for s in source.secrets() if s in text]
    assert not [c.access_key_id for c in source.minted if c.access_key_id in text]


async def test_aiohttp_and_asgi_handlers_serve_the_same_registry(
    endpoint: PrometheusEndpoint,
) -> None:
    """The handlers frameworks mount at /metrics return the endpoint's series."""
    from aiohttp.test_utils import make_mocked_request

    endpoint.telemetry.i["mongodb_aws_pool.rotations"].add(1, {"mongodb_aws_pool.outcome": "x"})
    response = await endpoint.aiohttp_handler(make_mocked_request("GET", "/metrics"))
    assert response.status == 200 and b"mongodb_aws_pool_rotations_total" in response.body
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [],
             "query_string": b""}  # fmt: skip
    await endpoint.asgi_app()(scope, receive, send)
    assert sent[0]["status"] == 200
    assert b"mongodb_aws_pool_rotations_total" in b"".join(m.get("body", b"") for m in sent)


def test_a_configured_global_provider_is_not_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a MeterProvider already global, serve_prometheus() says how to add the reader."""
    import opentelemetry.metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider()
    monkeypatch.setattr(otel_metrics, "get_meter_provider", lambda: provider)
    with pytest.raises(ConfigurationError, match="PrometheusMetricReader"):
        serve_prometheus(port=None)
    provider.shutdown()


async def test_demo_panel_reads_the_pools_back_from_the_scrape(
    mongo: MongoStandIn, authority: CredentialAuthority
) -> None:
    """The demo's live panel shows expiry, rotations, leases and connections per generation."""
    from pool.cli.demo_panel import MetricsPanel

    panel = MetricsPanel()
    try:
        async with ClientPool(
            mongo.uri, credentials=MintingSource(authority, lifetime=900), name="ecs",
            telemetry=panel.telemetry, warm_connections=2, **FAST,
        ) as cp, cp.client():  # fmt: skip
            row = panel.rows()["ecs"]
            assert panel.table() is not None
    finally:
        panel.close()
    assert 0 < row["expires_in"] <= 901
    assert row["rotations"] == {"swapped": 1.0}
    assert row["leases"] == {"active": 1.0, "draining": 0.0}
    assert set(row["conns"]) == {"1"} and row["conns"]["1"]["used"] == 0
