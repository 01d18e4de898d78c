"""The HTTP client of the container and instance-metadata sources.

One long-lived :class:`aiohttp.ClientSession` per source, created lazily on
the first request (it must be created inside the running loop) and closed by
the source's ``aclose()``. Keep-alive connections are reused across fetches
and aiohttp's module-level default SSL context is used, so no fetch builds a
new TLS context (aiobotocore builds one per fetch, ~20 ms on loopback).

Every request has a tight timeout (connect and total), a capped body, no
redirects and no proxy from the environment (link-local endpoints must never
go through a proxy). aiohttp is imported on first use only: importing
:mod:`pool.sources` for the environment-variable path (Lambda) must not pay
for it. :func:`with_retries` retries retryable failures a
bounded number of times with a small jittered exponential backoff.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import anyio

from .._log import get_logger
from ..errors import ConfigurationError, CredentialFetchError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpClient", "HttpResponse", "HttpSettings", "describe_url", "with_retries"]

_log = get_logger("pool.sources")
T = TypeVar("T")


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts, retries and limits of one source's HTTP requests.

    ``timeout`` bounds one attempt (connect, send, headers and body);
    ``attempts`` is the total number of tries for a retryable failure;
    the pause before retry *n* (1-based) is ``backoff * 2**(n-1)``, jittered ±50 %.
    """

    connect_timeout: float = 1.0
    timeout: float = 2.0
    attempts: int = 3
    backoff: float = 0.1
    max_body: int = 64 * 1024

    def __post_init__(self) -> None:
        if not (self.connect_timeout > 0 and self.timeout > 0):
            raise ConfigurationError("HTTP timeouts must be positive numbers of seconds")
        if self.attempts < 1:
            raise ConfigurationError("attempts must be at least 1")
        if self.backoff < 0 or self.max_body < 1:
            raise ConfigurationError("backoff must be >= 0 and max_body >= 1")


@dataclass(frozen=True)
class HttpResponse:
    """A completed response: status, headers and the (capped) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def describe_url(url: str) -> str:
    """``host[:port]/path`` of a URL, for messages: no scheme, query or userinfo.

    Queries and userinfo may carry tokens, so they never reach a message.
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or '/'}"


def status_is_retryable(status: int) -> bool:
    """5xx, 429 (throttled) and 408 (request timeout) may succeed later; others not."""
    return status >= 500 or status in (408, 429)


class HttpClient:
    """A lazily created, long-lived aiohttp session owned by one source.

    Not shared between event loops. ``connections_opened`` counts the TCP
    connections the session opened (keep-alive reuse keeps it at 1).
    """

    def __init__(self, source: str, settings: HttpSettings) -> None:
        self.source = source
        self.settings = settings
        self.connections_opened = 0
        self.requests_sent = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The current aiohttp session (None before the first request or after close)."""
        return self._session

    def _get_session(self) -> aiohttp.ClientSession:
        # No await between the check and the assignment: concurrent first
        # requests cannot create two sessions.
        if self._session is None:
            import aiohttp

            trace = aiohttp.TraceConfig()
            trace.on_connection_create_end.append(self._on_connection)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=8, ttl_dns_cache=300),
                trust_env=False,
                trace_configs=[trace],
                # auto_decompress off: credential endpoints do not compress, and a
                # compressed body could expand past the size cap unseen.
                auto_decompress=False,
            )
        return self._session

    async def _on_connection(
        self, _s: aiohttp.ClientSession, _c: SimpleNamespace, _p: object
    ) -> None:
        self.connections_opened += 1

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], what: str
    ) -> HttpResponse:
        """Send one request (no retry) and read its body.

        Timeouts and connection failures become retryable
        :class:`CredentialFetchError`; an oversized body a non-retryable one.
        ``what`` names the step for messages (e.g. ``"token PUT"``).
        """
        import aiohttp

        s = self.settings
        timeout = aiohttp.ClientTimeout(total=s.timeout, sock_connect=s.connect_timeout)
        where = describe_url(url)
        self.requests_sent += 1
        try:
            async with self._get_session().request(
                method, url, headers=dict(headers), allow_redirects=False, timeout=timeout
            ) as resp:
                body = await _read_capped(resp.content, s.max_body + 1)
                status, resp_headers = resp.status, dict(resp.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise self._transport_error(exc, what, where) from exc
        if len(body) > s.max_body:
            raise CredentialFetchError(
                f"{self.source}: {what} to {where} returned a body larger than "
                f"{s.max_body} bytes; this is not a credentials endpoint",
                source=self.source,
                retryable=False,
                status=status,
                code="ResponseTooLarge",
            )
        if 300 <= status < 400:
            raise CredentialFetchError(
                f"{self.source}: {what} to {where} answered a redirect (HTTP {status}); "
                "redirects are not followed, point the source at the final URL",
                source=self.source,
                retryable=False,
                status=status,
                code="Redirect",
            )
        return HttpResponse(status, resp_headers, body)

    def _transport_error(self, exc: Exception, what: str, where: str) -> CredentialFetchError:
        """A timeout or connection failure, as a retryable error naming the step and endpoint."""
        if isinstance(exc, TimeoutError):
            return CredentialFetchError(
                f"{self.source}: {what} to {where} timed out after {self.settings.timeout:g} s; "
                "the endpoint is slow or unreachable (retry later, or raise the timeout)",
                source=self.source,
                retryable=True,
                code="Timeout",
            )
        return CredentialFetchError(
            f"{self.source}: {what} to {where} failed: {type(exc).__name__}; "
            "the endpoint refused or dropped the connection (is it running and reachable?)",
            source=self.source,
            retryable=True,
            code="ConnectionError",
        )

    async def aclose(self) -> None:
        """Close the session and its connections. Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _read_capped(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """Read until EOF or ``limit`` bytes, whichever comes first.

    One ``read(n)`` returns what is buffered, possibly less than the body.
    """
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        chunk = await stream.read(limit - total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


async def with_retries(
    operation: Callable[[], Awaitable[T]], *, settings: HttpSettings, source: str
) -> T:
    """Run ``operation``, retrying retryable :class:`CredentialFetchError` up to ``attempts``.

    Non-retryable errors and the last retryable one propagate unchanged.
    """
    for attempt in range(1, settings.attempts + 1):
        try:
            return await operation()
        except CredentialFetchError as exc:
            if not exc.retryable or attempt >= settings.attempts:
                raise
            pause = settings.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            _log.debug(
                "credentials.fetch.retry",
                source=source,
                attempt=attempt,
                pause_s=round(pause, 3),
                status=exc.status,
                code=exc.code,
            )
            await anyio.sleep(pause)
    raise AssertionError("unreachable: attempts >= 1")  # pragma: no cover
