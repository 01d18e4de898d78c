"""Every example runs against the stand-ins: Lambda, FastAPI under uvicorn, EKS worker, latency."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pool.client_pool.drivers import live_clients
from pool.errors import WarmupError
from pool.standins.authority import CredentialAuthority, aws_time
from pool.standins.aws import AwsStandIns
from pool.standins.mongo.server import MongoStandIn
from pool.standins.threaded import ThreadedStandIns
from tests.client_pool.pool_helpers import load_example, serve_asgi


def _lambda_env(monkeypatch: pytest.MonkeyPatch, mongo: MongoStandIn, driver: str) -> None:
    issued = mongo.authority.mint(lifetime=3600)
    assert issued.session_token and issued.expiration
    for key, value in {
        "MONGODB_URI": mongo.uri,
        "MONGODB_DRIVER": driver,
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_ACCESS_KEY_ID": issued.access_key_id,
        "AWS_SECRET_ACCESS_KEY": issued.secret_access_key,
        "AWS_SESSION_TOKEN": issued.session_token,
        "AWS_CREDENTIAL_EXPIRATION": aws_time(issued.expiration),
    }.items():
        monkeypatch.setenv(key, value)


def test_lambda_pool_reused_across_invocations(
    driver: str, authority: CredentialAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invocations share the module's pool: no new client or connection, no lease left over."""
    with ThreadedStandIns(lambda: MongoStandIn(authority), name="mongo") as group:
        mongo = group.value
        _lambda_env(monkeypatch, mongo, driver)
        live0 = live_clients()
        module = load_example("lambda_handler")
        try:
            first = module.handler({"id": 1, "value": "a"}, None)
            assert first["statusCode"] == 200
            pool = module.POOL
            opened = mongo.stats.connections_opened
            auths = mongo.stats.auth_successes
            for i in range(2, 6):
                result = module.handler({"id": i, "value": "b"}, None)
                assert '"value": "b"' in result["body"]
                assert module.POOL is pool
                status = pool.status()
                assert status.leases == {"1": 0}, "nothing held between invocations"
            assert mongo.stats.connections_opened == opened, "connections reused"
            assert mongo.stats.auth_successes == auths, "no new authentication"
            assert pool.status().credentials.source == "lambda"
            assert live_clients() == live0 + 1
        finally:
            module.shutdown()
        assert live_clients() == live0


def test_lambda_recovers_from_a_failed_first_start(
    driver: str, authority: CredentialAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold start the server refuses fails that invocation only; the next one serves."""
    with ThreadedStandIns(lambda: MongoStandIn(authority), name="mongo") as group:
        mongo = group.value
        _lambda_env(monkeypatch, mongo, driver)
        live0 = live_clients()
        module = load_example("lambda_handler")
        try:
            mongo.reject_auth(True)
            with pytest.raises(WarmupError, match="refused"):
                module.handler({"id": 1, "value": "a"}, None)
            assert live_clients() == live0, "the failed start closed its client"
            mongo.reject_auth(False)
            result = module.handler({"id": 2, "value": "b"}, None)
            assert result["statusCode"] == 200 and '"value": "b"' in result["body"]
            assert module.POOL.status().ready
        finally:
            module.shutdown()
        assert live_clients() == live0


async def test_fastapi_app_serves_over_http(
    driver: str, authority: CredentialAuthority, mongo: MongoStandIn
) -> None:
    """The ECS service runs under uvicorn with container credentials and answers over HTTP."""
    async with AwsStandIns(authority) as aws:
        env = {
            **aws.env_for("ecs"),
            "MONGODB_URI": mongo.uri,
            "MONGODB_DRIVER": driver,
            "MONGODB_WARM_CONNECTIONS": "2",
        }
        app = load_example("fastapi_app").create_app(env)
        async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
            assert (await http.put("/items/a", json={"colour": "red"})).json() == {"id": "a"}
            assert (await http.get("/items/a")).json() == {"colour": "red"}
            assert (await http.get("/items/zzz")).status_code == 404
            health = await http.get("/healthz")
            assert health.status_code == 200
            body: dict[str, Any] = health.json()
            assert body["ready"] and body["driver"] == driver
            assert body["credentials"]["source"] == "ecs"
            assert body["leases"] == {"1": 0}
            ready = await http.get("/healthz/ready")
            assert (ready.status_code, ready.json()["status"]) == (200, "ok")
            assert (await http.get("/healthz/live")).status_code == 200
    assert mongo.stats.auth_successes >= 2


@pytest.mark.slow
async def test_eks_worker_hundreds_of_tasks_through_rotation(
    threaded_mongo: MongoStandIn, authority: CredentialAuthority
) -> None:
    """200 worker tasks with Pod Identity credentials of 9 s: they rotate, nothing fails."""
    async with AwsStandIns(authority, lifetime=9.0) as aws:
        env = {**aws.env_for("eks_pod_identity"), "MONGODB_URI": threaded_mongo.uri}
        env["MONGODB_WARM_CONNECTIONS"] = "4"
        summary = await load_example("eks_worker").run(env, workers=200, duration=10.0, think=2.0)
    assert summary["failed"] == 0
    assert summary["done"] > 200
    assert summary["rotations"] >= 1, "credentials of 9 s must have rotated within 10 s"
    assert summary["dropped_leases"] == 0


async def test_latency_script_measures_through_rotations(
    authority: CredentialAuthority, mongo: MongoStandIn
) -> None:
    """latency.py measures steady and around-rotation latency with web identity credentials."""
    async with AwsStandIns(authority) as aws:
        env = {**aws.env_for("eks_irsa"), "MONGODB_URI": mongo.uri}
        result = await load_example("latency").measure(
            env, concurrency=5, seconds=3.0, rotate_every=0.8
        )
    assert result["failures"] == 0
    assert result["rotations"] >= 1
    assert result["steady"]["n"] > 0 and result["around_rotation"]["n"] > 0
    assert 0 < result["steady"]["p50"] <= result["steady"]["max"]
