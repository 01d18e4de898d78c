"""aclose() during a fetch: no HTTP session or STS client is built after it, none leaks."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from pool import PoolClosedError
from pool.sources import ContainerSource, WebIdentitySource, _http
from pool.sources._http import HttpClient, HttpSettings
from pool.sources._sts import StsClient
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


class _RecordingContext:
    """Wraps the client's async context manager to record that it was exited."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.exited = False

    async def __aexit__(self, *exc: object) -> None:
        self.exited = True
        await self.inner.__aexit__(*exc)


async def test_sts_client_built_during_aclose_is_closed_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client whose build was under way when aclose() ran is closed, and the fetch fails."""
    started, release = anyio.Event(), threading.Event()
    built: list[_RecordingContext] = []
    original = StsClient._build

    def gated(self: StsClient) -> Any:
        anyio.from_thread.run_sync(started.set)
        release.wait()
        context, client = original(self)
        built.append(_RecordingContext(context))
        return built[-1], client

    monkeypatch.setattr(StsClient, "_build", gated)
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    source = WebIdentitySource(
        role_arn=ROLE, token_file=token, endpoint_url="http://127.0.0.1:9", attempts=1
    )

    async def fetch() -> None:
        with pytest.raises(PoolClosedError):
            await source.fetch()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fetch)
            await started.wait()
            tg.start_soon(source.aclose)
            await anyio.wait_all_tasks_blocked()  # aclose() waits for the build
            release.set()
    finally:
        release.set()
    assert len(built) == 1 and built[0].exited
    assert source.sts.client is None and source.sts.clients_created == 0


async def test_closed_sts_client_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """StsClient.call after aclose() raises PoolClosedError without building a client."""
    builds: list[object] = []
    monkeypatch.setattr(StsClient, "_build", lambda self: builds.append(self))
    sts = StsClient(
        source="test", region="us-east-1", endpoint_url=None, signed=False, settings=HttpSettings()
    )
    await sts.aclose()
    with pytest.raises(PoolClosedError):
        await sts.call("AssumeRoleWithWebIdentity", credentials=None, secrets=())
    assert builds == [] and sts.client is None


@pytest.mark.parametrize("how", ["asyncio.timeout", "task.cancel", "anyio scope"])
async def test_sts_client_built_while_the_fetch_was_cancelled_is_kept_and_closed(
    aws: AwsStandIns, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A fetch cancelled during the first client build: the built client is kept, then closed."""
    started, release, finished = anyio.Event(), threading.Event(), threading.Event()
    built: list[_RecordingContext] = []
    original = StsClient._build

    def gated(self: StsClient) -> Any:
        try:
            anyio.from_thread.run_sync(started.set)
            release.wait()
            context, client = original(self)
            built.append(_RecordingContext(context))
            return built[-1], client
        finally:
            finished.set()

    monkeypatch.setattr(StsClient, "_build", gated)
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
    expected = TimeoutError if how == "asyncio.timeout" else asyncio.CancelledError
    try:
        await started.wait()
        cancel[0]()
        await asyncio.sleep(0)  # the cancellation reaches the fetch while the build runs
        release.set()
        with pytest.raises(expected):
            await fetching
        await anyio.to_thread.run_sync(finished.wait)
        assert len(built) == 1
        assert source.sts.client is not None  # kept, not abandoned to the garbage collector
        creds = await source.fetch()  # and reused: no second build
        assert aws.authority.lookup(creds.access_key_id) is not None
        assert source.sts.clients_created == 1
    finally:
        release.set()
        await source.aclose()
    assert built[0].exited and source.sts.client is None


async def test_sts_client_close_finishes_under_native_cancel(
    aws: AwsStandIns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """task.cancel() on source.aclose() mid-close still closes the STS client's session."""
    source = WebIdentitySource.from_env(aws.env_for("eks_irsa"), attempts=1)
    await source.fetch()
    context = _SlowExit(source.sts._context)
    monkeypatch.setattr(source.sts, "_context", context)
    closer = asyncio.ensure_future(source.aclose())
    await context.entered.wait()
    closer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closer
    assert context.exited and source.sts.client is None


class _SlowExit(_RecordingContext):
    """A client context whose __aexit__ takes a while (a slow connector close)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.entered = anyio.Event()

    async def __aexit__(self, *exc: object) -> None:
        self.entered.set()
        await asyncio.sleep(0.05)
        await super().__aexit__(*exc)
