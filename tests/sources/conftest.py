"""Fixtures for the credential-source tests.

* ``aws``: the project's AWS stand-ins (STS, IMDS, ECS, EKS Pod Identity) on
  the test's loop, sharing the ``faults`` injector;
* ``mini``: a bare loopback HTTP server whose answer a test sets, for
  responses the stand-ins never give (garbage, missing fields, redirects);
* ``logs``: the library's log events captured for the test, to check for secrets.

Environments are passed to ``from_env``/``from_environment`` as explicit
dicts; ``os.environ`` is never touched.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from pool.standins.authority import CredentialAuthority
from pool.standins.aws import AwsStandIns
from pool.standins.faults import FaultInjector
from pool.standins.laptop import DeveloperHome
from tests.logcapture import capture_logs

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MiniServer:
    """A loopback aiohttp server: every request goes to ``handler``; ``requests`` records them."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.handler: Handler = self._default
        self._runner: web.AppRunner | None = None
        self.url = ""

    @staticmethod
    async def _default(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    def answer(self, status: int = 200, body: str | bytes = "", **headers: str) -> None:
        """Answer every request with this status, body and headers."""

        async def handler(request: web.Request) -> web.StreamResponse:
            data = body.encode() if isinstance(body, str) else body
            return web.Response(status=status, body=data, headers=headers)

        self.handler = handler

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.headers)))
        return await self.handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
def faults() -> FaultInjector:
    return FaultInjector()


@pytest.fixture
async def aws(faults: FaultInjector) -> AsyncIterator[AwsStandIns]:
    """The AWS stand-ins on the test's loop (credentials live one hour)."""
    async with AwsStandIns(faults=faults) as group:
        yield group


@pytest.fixture
async def home(aws: AwsStandIns) -> AsyncIterator[DeveloperHome]:
    """A temporary HOME with ~/.aws (config, credentials, SSO cache) for the stand-ins."""
    async with DeveloperHome(aws) as laptop:
        yield laptop


@pytest.fixture
async def stale_aws() -> AsyncIterator[AwsStandIns]:
    """Stand-ins whose clock runs two hours behind: everything they mint is already expired."""
    authority = CredentialAuthority(clock=lambda: time.time() - 7200)
    async with AwsStandIns(authority) as group:
        yield group


@pytest.fixture
async def mini() -> AsyncIterator[MiniServer]:
    server = MiniServer()
    await server.start()
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every library log event emitted during the test."""
    with capture_logs() as captured:
        yield captured


def _assert_secret_absent(
    secret: str, exc: BaseException | None, logs: list[dict[str, Any]]
) -> None:
    """``secret`` appears in neither the exception's str/repr nor any captured log event."""
    assert secret, "the test must plant a non-empty secret"
    if exc is not None:
        assert secret not in str(exc)
        assert secret not in repr(exc)
        assert secret not in repr(exc.args)
    for event in logs:
        assert secret not in repr(event), f"secret leaked into log event {event.get('event')}"


SecretCheck = Callable[[str, "BaseException | None"], None]


@pytest.fixture
def no_secret(logs: list[dict[str, Any]]) -> SecretCheck:
    """``no_secret(secret, exc)``: assert ``secret`` is absent from ``exc`` and the logs."""
    return lambda secret, exc: _assert_secret_absent(secret, exc, logs)
