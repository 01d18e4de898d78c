"""The HTTP client of the container and instance-metadata sources.

One long-lived :class:`aiohttp.ClientSession` per source, created lazily on
the first request (it must be created inside the running loop) and closed by
the source's ``aclose()``. Keep-alive connections are reused across fetches
and aiohttp's module-level default SSL context is used, so no fetch builds a
new TLS context (aiobotocore builds one per fetch, ~20 ms on loopback).

Every request has a tight timeout (connect and total), a capped body, no
redirects and no proxy from the environment (link-local endpoints must never
go through a proxy). aiohttp is imported on first use only, and in a worker
thread (:func:`load_aiohttp`): importing :mod:`pool.sources` for the
environment-variable path (Lambda) must not pay for it, and the import
itself blocks (tens of milliseconds, and it builds aiohttp's default SSL
contexts, reading the CA store). :func:`with_retries` retries retryable
failures a bounded number of times with a small jittered exponential backoff.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

import anyio

from pool._internal import skew
from pool._internal.backoff import backoff_delay
from pool._internal.log import get_logger
from pool._internal.redact import describe
from pool.errors import ConfigurationError, CredentialFetchError, PoolClosedError

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "HttpClient",
    "HttpResponse",
    "HttpSettings",
    "StatusHints",
    "describe_url",
    "load_aiohttp",
    "proxy_for",
    "status_error",
    "with_retries",
]

_log = get_logger("pool.sources")
T = TypeVar("T")
# Header values that are credentials: never quoted, even from a third party's error text.
_SECRET_HEADERS = frozenset(
    {"authorization", "x-aws-ec2-metadata-token", "x-amz-security-token", "x-amz-sso_bearer_token"}
)
_aiohttp: ModuleType | None = None


def _import_aiohttp() -> ModuleType:
    import aiohttp

    return aiohttp


async def load_aiohttp() -> ModuleType:
    """The :mod:`aiohttp` module, imported in a worker thread on first use.

    Importing aiohttp blocks for tens of milliseconds and builds its default
    SSL contexts (reading the system CA store), so it must not run on the
    event loop. Once per process: later calls return at once. Concurrent
    first calls each wait in a worker thread on Python's per-module import
    lock, so the import still runs once and the loop never blocks.
    """
    global _aiohttp
    if _aiohttp is None:
        _aiohttp = await anyio.to_thread.run_sync(_import_aiohttp)
    return _aiohttp


@dataclass(frozen=True)
class HttpSettings:
    """Timeouts, retries and limits of one source's HTTP requests.

    ``timeout`` bounds one attempt (connect, send, headers and body);
    ``attempts`` is the total number of tries for a retryable failure;
    the pause before retry *n* (1-based) is uniform in ``[b/2, b]`` with
    ``b = backoff * 2**(n-1)`` (:func:`pool._internal.backoff.backoff_delay`, equal jitter).
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
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # :99999, :abc
        port = ":<invalid port>"
    return f"{host}{port}{parts.path or '/'}"


def proxy_for(url: str, environ: Mapping[str, str]) -> str | None:
    """The proxy the AWS SDKs would use for ``url`` (``HTTPS_PROXY``/``HTTP_PROXY``,
    ``NO_PROXY``), for the endpoints that honour them (STS, the SSO portal).

    Loopback hosts are never proxied, whatever ``NO_PROXY`` says: the stand-ins
    and local agents must not be sent through a proxy.
    """
    import ipaddress

    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a name
    env = {k.lower(): v for k, v in environ.items() if k.lower().endswith("_proxy") and v}
    proxy = env.get(f"{parts.scheme}_proxy")
    if not proxy:
        return None
    for entry in env.get("no_proxy", "").replace(" ", "").split(","):
        name = entry.lstrip(".").split(":")[0].lower()
        if entry == "*" or (name and (host == name or host.endswith("." + name))):
            return None
    return proxy


def status_is_retryable(status: int) -> bool:
    """5xx, 429 (throttled) and 408 (request timeout) may succeed later; others not."""
    return status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class StatusHints:
    """What to tell the user about an unexpected HTTP status from one kind of endpoint.

    ``by_status`` wins; otherwise ``retry`` for retryable statuses and ``other``
    for the rest.
    """

    by_status: Mapping[int, str]
    retry: str
    other: str


def status_error(
    source: str,
    request: str,
    status: int,
    hints: StatusHints,
    *,
    code: str | None = None,
    retryable: bool = False,
) -> CredentialFetchError:
    """The error for an unexpected status: ``"<source>: <request> returned HTTP <n>; <hint>"``.

    Retryable when :func:`status_is_retryable` says so, or when ``retryable``
    is passed True. ``code`` (already checked with ``safe_code``) defaults to
    ``HTTP<n>``.
    """
    retryable = retryable or status_is_retryable(status)
    hint = hints.by_status.get(status) or (hints.retry if retryable else hints.other)
    return CredentialFetchError(
        f"{source}: {request} returned HTTP {status}{f' ({code})' if code else ''}; {hint}",
        source=source,
        retryable=retryable,
        status=status,
        code=code or f"HTTP{status}",
    )


class HttpClient:
    """A lazily created, long-lived aiohttp session owned by one source.

    Not shared between event loops. ``connections_opened`` counts the TCP
    connections the session opened (keep-alive reuse keeps it at 1). After
    :meth:`aclose`, requests raise :class:`pool.PoolClosedError` and no new
    session is created, even by a request that was already under way.
    """

    def __init__(self, source: str, settings: HttpSettings) -> None:
        self.source = source
        self.settings = settings
        self.connections_opened = 0
        self.requests_sent = 0
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The current aiohttp session (None before the first request or after close)."""
        return self._session

    async def _get_session(self) -> aiohttp.ClientSession:
        aio = await load_aiohttp()
        # Checked after the await: aclose() may have run while aiohttp was being
        # imported, and a session created now would never be closed.
        if self._closed:
            raise PoolClosedError(
                f"{self.source}: the HTTP client was closed (source.aclose()); create a new source"
            )
        # No await between the check and the assignment: concurrent first
        # requests cannot create two sessions.
        if self._session is None:
            trace = aio.TraceConfig()
            trace.on_connection_create_end.append(self._on_connection)
            self._session = aio.ClientSession(
                connector=aio.TCPConnector(limit=8, ttl_dns_cache=300),
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
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        what: str,
        data: bytes | None = None,
        secrets: tuple[str, ...] = (),
        proxy: str | None = None,
    ) -> HttpResponse:
        """Send one request (no retry), with ``data`` as its body, and read the answer.

        Timeouts and connection failures become retryable
        :class:`CredentialFetchError`; an oversized body a non-retryable one.
        ``what`` names the step for messages (e.g. ``"token PUT"``); ``secrets``
        (e.g. a token in ``data``) are never quoted from a transport error.
        ``proxy``: an explicit proxy URL (the session itself ignores the
        environment's proxy variables: link-local endpoints must not use them).
        Raises :class:`pool.PoolClosedError` after :meth:`aclose`.
        """
        session = await self._get_session()
        aio = await load_aiohttp()  # already loaded: returns without suspending
        s = self.settings
        timeout = aio.ClientTimeout(total=s.timeout, sock_connect=s.connect_timeout)
        where = describe_url(url)
        self.requests_sent += 1
        try:
            async with session.request(
                method,
                url,
                headers=dict(headers),
                data=data,
                allow_redirects=False,
                timeout=timeout,
                proxy=proxy,
            ) as resp:
                body = await _read_capped(resp.content, s.max_body + 1)
                status, resp_headers = resp.status, dict(resp.headers)
                skew.observe(resp.headers.get("Date"), where)
        except (TimeoutError, aio.ClientError, ValueError) as exc:
            # ValueError: yarl refusing the URL (e.g. a host IDNA cannot encode).
            parts = urlsplit(url)
            hidden: list[str | None] = [
                v for k, v in headers.items() if k.lower() in _SECRET_HEADERS
            ]
            hidden += [parts.query, parts.password, *secrets]
            raise self._transport_error(exc, what, where, hidden) from exc
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

    def _transport_error(
        self, exc: Exception, what: str, where: str, secrets: list[str | None]
    ) -> CredentialFetchError:
        """A timeout or connection failure (retryable) or an unusable URL (not retryable).

        The error names the step and endpoint; aiohttp's message is quoted
        redacted, without ``secrets`` (header tokens, the URL's query and password).
        """
        if isinstance(exc, TimeoutError):
            return CredentialFetchError(
                f"{self.source}: {what} to {where} timed out after {self.settings.timeout:g} s; "
                "the endpoint is slow or unreachable (retry later, or raise the timeout)",
                source=self.source,
                retryable=True,
                code="Timeout",
            )
        # aiohttp.InvalidURL is a ValueError; certificate errors are too, but also
        # OSErrors (ssl.SSLError), and stay connection failures.
        if isinstance(exc, ValueError) and not isinstance(exc, OSError):
            return CredentialFetchError(
                f"{self.source}: {what} to {where} not sent: the URL is not valid "
                f"({describe(exc, *secrets)}); fix the endpoint URL",
                source=self.source,
                retryable=False,
                code="InvalidURL",
            )
        return CredentialFetchError(
            f"{self.source}: {what} to {where} failed ({describe(exc, *secrets)}); "
            "the endpoint refused or dropped the connection (is it running and reachable?)",
            source=self.source,
            retryable=True,
            code="ConnectionError",
        )

    async def aclose(self) -> None:
        """Close the session and its connections; later requests fail. Idempotent."""
        self._closed = True
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
            # Equal jitter: at least half the bound, so a retry never comes at once.
            pause = backoff_delay(attempt, settings.backoff, math.inf, floor=0.5)
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
