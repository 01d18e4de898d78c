"""aclose() during a fetch: no HTTP session is created after it, none leaks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest

from pool import PoolClosedError
from pool.sources import ContainerSource, WebIdentitySource, _http
from pool.sources._http import HttpClient, HttpSettings
from pool.sources._sts import StsClient
from pool.sources._sts_endpoint import resolve_sts_endpoint
from pool.standins.aws import AwsStandIns

ROLE = "arn:aws:iam::123456789012:role/app"


async def test_http_session_not_created_when_aclose_runs_during_first_fetch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fetch already past the closed check when aclose() runs creates no session."""
    gate = anyio.Event()
    real = _http.load_aiohttp

    async def gated() -> Any:
        await gate.wait()
        return await real()

    monkeypatch.setattr(_http, "load_aiohttp", gated)
    source = ContainerSource(full_uri="http://127.0.0.1:9/creds")

    async def fetch() -> None:
        with pytest.raises(PoolClosedError):
            await source.fetch()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch)
        await anyio.wait_all_tasks_blocked()
        await source.aclose()
        gate.set()
    assert source.http.session is None and source.http.requests_sent == 0


async def test_closed_http_client_refuses_requests() -> None:
    """HttpClient.request after aclose() raises PoolClosedError and opens nothing."""
    client = HttpClient("test", HttpSettings())
    await client.aclose()
    with pytest.raises(PoolClosedError):
        await client.request("GET", "http://127.0.0.1:9/", headers={}, what="GET")
    assert client.session is None


async def test_sts_session_not_created_when_aclose_runs_during_first_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An STS fetch under way when aclose() runs creates no session, and the fetch fails."""
    gate = anyio.Event()
    real = _http.load_aiohttp

    async def gated() -> Any:
        await gate.wait()
        return await real()

    monkeypatch.setattr(_http, "load_aiohttp", gated)
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    source = WebIdentitySource(
        role_arn=ROLE, token_file=token, endpoint_url="http://127.0.0.1:9", attempts=1
    )

    async def fetch() -> None:
        with pytest.raises(PoolClosedError):
            await source.fetch()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch)
        await anyio.wait_all_tasks_blocked()
        await source.aclose()
        gate.set()
    assert source.sts.client is None and source.sts.clients_created == 0


async def test_closed_sts_client_sends_nothing() -> None:
    """StsClient.call after aclose() raises PoolClosedError without opening a session."""
    sts = StsClient(
        source="test",
        endpoint=resolve_sts_endpoint({}),
        signed=False,
        settings=HttpSettings(),
    )
    await sts.aclose()
    with pytest.raises(PoolClosedError):
        await sts.call("AssumeRoleWithWebIdentity", credentials=None, secrets=())
    assert sts.client is None and sts.clients_created == 0


@pytest.mark.parametrize("how", ["asyncio.timeout", "task.cancel", "anyio scope"])
async def test_fetch_cancelled_during_the_first_session_set_up_leaves_no_session(
    aws: AwsStandIns, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A first fetch cancelled while the STS session is set up leaks nothing; the next one works."""
    entered, gate = anyio.Event(), anyio.Event()
    real = _http.load_aiohttp

    async def gated() -> Any:
        entered.set()
        await gate.wait()
        return await real()

    monkeypatch.setattr(_http, "load_aiohttp", gated)
    source = WebIdentitySource.from_env(aws.env_for("eks_irsa"), attempts=1)
    cancel: list[Any] = []

    async def fetch_then_cancelled() -> None:
        if how == "asyncio.timeout":
            async with asyncio.timeout(None) as timeout:
                loop = asyncio.get_running_loop()
                cancel.append(lambda: timeout.reschedule(loop.time()))  # the deadline passes
                await source.fetch()
        elif how == "anyio scope":
            with anyio.CancelScope() as scope:
                cancel.append(scope.cancel)
                await source.fetch()
            raise asyncio.CancelledError  # the scope swallowed it: report it the same way
        else:
            await source.fetch()

    fetching = asyncio.ensure_future(fetch_then_cancelled())
    if how == "task.cancel":
        cancel.append(fetching.cancel)
    try:
        await entered.wait()
        cancel[0]()
        with pytest.raises(TimeoutError if how == "asyncio.timeout" else asyncio.CancelledError):
            await fetching
        assert source.sts.client is None  # nothing half-made
        gate.set()
        creds = await source.fetch()
        assert aws.authority.lookup(creds.access_key_id) is not None
        session = source.sts.client
        assert session is not None
    finally:
        gate.set()
        await source.aclose()
    assert session.closed and source.sts.client is None


async def test_source_close_finishes_under_native_cancel(
    aws: AwsStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """task.cancel() on source.aclose() while the STS session closes: it still closes."""
    source = WebIdentitySource.from_env(aws.env_for("eks_irsa"), attempts=1)
    await source.fetch()
    session = source.sts.client
    assert session is not None
    closing, real_close = asyncio.Event(), session.close

    async def slow_close() -> None:
        closing.set()
        await asyncio.sleep(0.05)  # a connector that takes a moment to close
        await real_close()

    monkeypatch.setattr(session, "close", slow_close)
    closer = asyncio.ensure_future(source.aclose())
    await closing.wait()
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert session.closed
    await source.aclose()  # idempotent
