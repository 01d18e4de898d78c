"""Shared aiohttp plumbing for the AWS stand-ins: start/stop on loopback, faults, counters.

Each stand-in subclasses :class:`HttpStandIn`, adds its routes in
:meth:`HttpStandIn.setup_routes`, names each request's operation in
:meth:`HttpStandIn.operation_of` and shapes its error answers. The fault
middleware consults the shared :class:`~pool.standins.faults.FaultInjector`
under ``(endpoint, operation)`` before the handler runs.

A server runs on the event loop that called :meth:`HttpStandIn.start`; drive
blocking clients (boto3, PyMongo's own lookup) from another thread (see
:mod:`pool.standins.threaded`). Counters are plain ints updated on that loop;
reading them from another thread is safe under the GIL.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Self

from aiohttp import web

from pool._internal.log import get_logger
from pool._internal.resource import AsyncResource
from pool.standins.faults import Fault, FaultInjector
from pool.standins.throttle import Throttle

__all__ = ["MAX_BODY", "HttpStandIn"]

MAX_BODY = 64 * 1024  # credential requests are tiny; bigger bodies get 413
_log = get_logger("pool.standins")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Dropped(Exception):
    """Raised after a fault closed the connection, so no response is written."""


class HttpStandIn(AsyncResource):
    """An aiohttp server on loopback with fault injection and per-operation counters.

    Async context manager; ``aclose()`` is idempotent and releases hung
    requests. ``requests`` counts every request by operation, faulted or not.
    ``throttle`` (shared between stand-ins) rate-limits and counts calls per
    second; a refused call gets :meth:`throttle_response`, before any fault.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        faults: FaultInjector | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.faults = faults if faults is not None else FaultInjector()
        self.throttle = throttle
        self.requests: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._closing: asyncio.Event | None = None
        self._closed = False

    # -- subclass hooks ------------------------------------------------------

    def setup_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def operation_of(self, request: web.Request) -> str:
        """The operation name faults and counters use for this request."""
        return "other"

    def error_response(self, status: int) -> web.Response:
        """The answer to an injected ``error=STATUS`` fault."""
        return web.Response(status=status, text=f"injected error {status}\n")

    def throttle_response(self) -> web.Response:
        """The answer to an injected ``throttle`` fault (IMDS/ECS: 429)."""
        return web.Response(status=429, text="Too Many Requests\n")

    # -- lifecycle -------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``, without a trailing slash."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started; call start() first")
        return self._url

    @property
    def started(self) -> bool:
        return self._url is not None and not self._closed

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (port 0: any free one) and return the base URL."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._middleware])
        self.setup_routes(app)
        # handler_cancellation: a client that gives up on a hung request frees it.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=2.0
        )
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self._url = f"http://{shown}:{bound_port}"
        _log.debug("standin.started", endpoint=self.endpoint, url=self._url)
        return self._url

    async def aclose(self) -> None:
        """Stop listening and release hung requests. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._closing is not None:
            self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    def __del__(self) -> None:
        if self._runner is not None and not self._closed:
            warnings.warn(
                f"{type(self).__name__} at {self._url} was never closed; use 'async with' "
                "or await aclose()",
                ResourceWarning,
                stacklevel=1,
            )

    # -- middleware --------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            operation = await self.operation_of(request)
        except web.HTTPException:
            # e.g. 413 from reading an oversized body: aiohttp's own answer is right.
            self.requests["invalid"] += 1
            raise
        self.requests[operation] += 1
        if self.throttle is not None and not self.throttle.admit(self.endpoint, operation):
            return self.throttle_response()
        try:
            taken = self.faults.take(self.endpoint, operation)
            for fault in taken:
                answer = await self._apply(fault, request)
                if answer is not None:
                    return answer
            return self._dated(await handler(request))
        except _Dropped:
            # The transport is closed; an empty response is never written.
            return web.Response()

    def _dated(self, response: web.StreamResponse) -> web.StreamResponse:
        """``Date`` from the stand-in's credential clock, as a real endpoint's follows its own:
        stand-ins with a skewed clock show the skew a client measures (pool._internal.skew)."""
        authority = getattr(self, "authority", None)
        clock = getattr(authority, "clock", None)
        if callable(clock) and not response.prepared:
            when = datetime.fromtimestamp(clock(), UTC)
            response.headers["Date"] = format_datetime(when, usegmt=True)
        return response

    async def _apply(self, fault: Fault, request: web.Request) -> web.Response | None:
        _log.info("standin.fault", endpoint=self.endpoint, kind=fault.kind, target=fault.target)
        if fault.kind == "latency":
            await asyncio.sleep(fault.delay)
            return None
        if fault.kind == "error":
            return self.error_response(fault.status)
        if fault.kind == "throttle":
            return self.throttle_response()
        if fault.kind == "hang":
            assert self._closing is not None
            await self._closing.wait()
        # drop, or a hang released by aclose(): close without answering.
        if request.transport is not None:
            request.transport.abort()
        raise _Dropped
