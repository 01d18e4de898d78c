"""One aioboto3 STS client per source: created once, lazily, off the event loop.

Building a botocore client loads JSON service models and endpoint rules and
reads the shared config files: tens of milliseconds of blocking work. It runs
in a worker thread (with its own short-lived event loop, since aiobotocore's
factory is a coroutine that never actually waits) and the finished client is
used from the caller's loop; its aiohttp session is created there on the
first request and reused afterwards.

For an https endpoint, aiobotocore 2.25.1 builds the TLS context (and loads
the CA bundle) when its HTTP session creates its connector, on the loop at
the first request; the client here uses an HTTP session class that builds
that context at construction instead, which happens in the worker thread.

Signed calls (``AssumeRole``) take the signing credentials per call: the
client's credential provider reads them from a context variable set around
the call, so one client serves every rotation of the base credentials and
concurrent calls cannot mix them up. ``AssumeRoleWithWebIdentity`` is sent
unsigned (botocore's ``UNSIGNED``), as it needs no credentials.

boto3, botocore, aiobotocore and aioboto3 are imported here only inside
functions: importing :mod:`pool.sources` must not load them.

Caveat outside our control: botocore's own stdlib loggers at DEBUG level
print request parameters and canonical requests (the web identity token,
the session token). Keep the ``botocore`` logger above DEBUG in production.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import anyio

from pool._internal.redact import describe, redact
from pool._internal.shield import finish
from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialFetchError, InvariantError, PoolClosedError
from pool.sources._http import HttpSettings, describe_url

__all__ = ["StsClient", "sts_location"]

# STS error codes worth retrying; everything else is the caller's to fix.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
        "IDPCommunicationError",
        "RequestTimeout",
    }
)
HINTS = {
    "AccessDenied": "the role's trust policy does not allow this caller; check the role ARN "
    "and its trust relationship",
    "InvalidIdentityToken": "STS rejected the web identity token; check the OIDC provider "
    "registered in IAM and the token's audience (sts.amazonaws.com)",
    "ExpiredTokenException": "the web identity token expired; the token file is not being "
    "refreshed (check the projected service account token volume)",
    "ExpiredToken": "the base credentials used to sign the request expired",
    "InvalidClientTokenId": "the base credentials are unknown to STS",
    "SignatureDoesNotMatch": "the base credentials' secret is wrong or the clock is skewed",
    "RegionDisabledException": "STS is not activated in this region; set AWS_REGION to an "
    "active one or activate it in IAM",
    "ValidationError": "a parameter was rejected (DurationSeconds above the role's maximum?)",
}
_CALL_CREDENTIALS: ContextVar[Credentials | None] = ContextVar("pool_sts_credentials", default=None)


def sts_location(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(region, endpoint_url) from the standard variables.

    Region: ``AWS_REGION``, then ``AWS_DEFAULT_REGION``, then ``us-east-1``.
    Endpoint: ``AWS_ENDPOINT_URL_STS``, then ``AWS_ENDPOINT_URL``, unless
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS`` is true; ``None`` lets botocore
    pick the regional endpoint.
    """
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true":
        return region, None
    return region, environ.get("AWS_ENDPOINT_URL_STS") or environ.get("AWS_ENDPOINT_URL") or None


def _call_credentials() -> Any:
    """aiobotocore credentials whose value is the current call's (a context variable).

    Built on first use: subclassing aiobotocore's class at import time would
    import botocore with :mod:`pool.sources`.
    """
    from aiobotocore.credentials import AioCredentials
    from botocore.credentials import ReadOnlyCredentials

    class CallCredentials(AioCredentials):  # type: ignore[misc]
        async def get_frozen_credentials(self) -> Any:
            creds = _CALL_CREDENTIALS.get()
            if creds is None:
                raise InvariantError("signed STS call made without credentials in context")
            return ReadOnlyCredentials(
                creds.access_key_id, creds.secret_access_key, creds.session_token
            )

    # The placeholder keys are never used for signing: get_frozen_credentials is.
    return CallCredentials("unused", "unused", method="pool-source")


class _CallCredentialProvider:
    async def load_credentials(self) -> Any:
        return _call_credentials()


@functools.cache
def _primed_http_session_cls() -> type[Any]:
    """aiobotocore's HTTP session, building its TLS context when constructed.

    aiobotocore 2.25.1's ``AIOHTTPSession._create_connector`` creates the
    SSLContext and runs ``load_verify_locations`` (the CA bundle) at the
    first request, on the event loop. The session object itself is
    constructed with the client, i.e. in :meth:`StsClient._build`'s worker
    thread: this subclass does the TLS work there and hands the finished
    context to the connector. Requests through a proxy keep aiobotocore's
    own path. Built on first use so that importing this module loads no
    aiobotocore.
    """
    import aiohttp
    from aiobotocore.httpsession import AIOHTTPSession
    from botocore.httpsession import get_cert_path

    class PrimedAIOHTTPSession(AIOHTTPSession):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._primed_ssl: Any = None
            if self._verify:
                # The same steps as AIOHTTPSession._create_connector without a proxy.
                context = self._get_ssl_context()
                if self._cert_file:
                    context.load_cert_chain(self._cert_file, self._key_file)
                ca_certs = get_cert_path(self._verify)
                if ca_certs:
                    context.load_verify_locations(ca_certs, None, None)
                self._primed_ssl = context

        def _create_connector(self, proxy_url: str | None) -> Any:
            if proxy_url:
                return super()._create_connector(proxy_url)
            return aiohttp.TCPConnector(
                limit=self._max_pool_connections,
                ssl=self._primed_ssl or False,
                **self._connector_args,
            )

    return PrimedAIOHTTPSession


class StsClient:
    """A lazily built, reused aioboto3 STS client owned by one source.

    ``settings.timeout`` bounds one attempt (enforced around the whole call);
    retries are :func:`pool.sources._http.with_retries`'s, not botocore's.
    After :meth:`aclose`, calls raise :class:`pool.PoolClosedError`; a client
    whose build was under way when ``aclose()`` ran is closed, not kept.
    """

    def __init__(
        self,
        *,
        source: str,
        region: str,
        endpoint_url: str | None,
        signed: bool,
        settings: HttpSettings,
    ) -> None:
        self.source = source
        self.region = region
        self.endpoint_url = endpoint_url
        self.signed = signed
        self.settings = settings
        self.where = describe_url(endpoint_url) if endpoint_url else f"sts.{region}.amazonaws.com/"
        self.clients_created = 0
        self._context: Any = None
        self._client: Any = None
        self._closed = False
        self._lock = anyio.Lock()

    @property
    def client(self) -> Any:
        """The aiobotocore client, or ``None`` before the first call / after close."""
        return self._client

    def _build(self) -> tuple[Any, Any]:
        """Runs in a worker thread: imports and constructs everything blocking."""
        import aioboto3
        from aiobotocore.config import AioConfig
        from aiobotocore.session import AioSession
        from botocore import UNSIGNED

        options: dict[str, Any] = {
            "region_name": self.region,
            "connect_timeout": self.settings.connect_timeout,
            "read_timeout": self.settings.timeout,
            "retries": {"mode": "standard", "total_max_attempts": 1},
            # The endpoint comes from our own environ mapping, not os.environ.
            "ignore_configured_endpoint_urls": True,
            "user_agent_extra": "mongodb-aws-pool",
            "http_session_cls": _primed_http_session_cls(),
        }
        botocore_session = AioSession()
        if self.signed:
            botocore_session.register_component("credential_provider", _CallCredentialProvider())
        else:
            options["signature_version"] = UNSIGNED
        session = aioboto3.Session(botocore_session=botocore_session)
        # A plain-http endpoint (a local stand-in) needs no TLS: verify=False spares
        # building a TLS context and loading the CA bundle at all.
        plain_http = (self.endpoint_url or "").lower().startswith("http://")
        context = session.client(
            "sts",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=AioConfig(**options),
            verify=False if plain_http else None,
        )
        # The factory is a coroutine that does not wait on I/O: run it to completion
        # on a private loop in this thread.
        client = asyncio.run(context.__aenter__())
        return context, client

    def _check_open(self) -> None:
        if self._closed:
            raise PoolClosedError(
                f"{self.source}: the STS client was closed (source.aclose()); create a new source"
            )

    async def _get_client(self) -> Any:
        self._check_open()
        if self._client is not None:
            return self._client
        async with self._lock:
            self._check_open()  # aclose() may have run while this call waited
            if self._client is None:
                # finish(): a caller cancelled in any way (anyio, task.cancel(),
                # asyncio.timeout()) waits for the build, so no built client is abandoned.
                await finish(self._build_client(), name=f"{self.source}: STS client build")
        return self._client

    async def _build_client(self) -> None:
        try:
            context, client = await anyio.to_thread.run_sync(self._build)
        except Exception as exc:
            raise ConfigurationError(
                f"{self.source}: cannot create the STS client ({describe(exc)}); "
                "check AWS_PROFILE/AWS_CONFIG_FILE and the region"
            ) from exc
        if self._closed:
            # aclose() ran during the build: nobody else would close this one.
            try:
                await context.__aexit__(None, None, None)
            finally:
                self._check_open()
        self._context, self._client = context, client
        self.clients_created += 1

    async def call(
        self,
        operation: str,
        *,
        credentials: Credentials | None,
        secrets: tuple[str, ...],
        **params: Any,
    ) -> dict[str, Any]:
        """One STS call (no retry). Errors become :class:`CredentialFetchError`.

        ``secrets`` (and anything secret-shaped) are removed from any
        third-party message quoted in an error. Raises
        :class:`pool.PoolClosedError` after :meth:`aclose`.
        """
        client = await self._get_client()
        reset = _CALL_CREDENTIALS.set(credentials)
        try:
            with anyio.fail_after(self.settings.timeout):
                response: dict[str, Any] = await getattr(client, _snake(operation))(**params)
                return response
        except Exception as exc:
            raise self._classify(operation, exc, secrets) from None
        finally:
            _CALL_CREDENTIALS.reset(reset)

    def _classify(
        self, operation: str, exc: Exception, secrets: tuple[str, ...]
    ) -> CredentialFetchError:
        from botocore.exceptions import ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.parsers import ResponseParserError

        where = f"{self.source}: STS {operation} at {self.where}"
        if isinstance(exc, TimeoutError):
            return CredentialFetchError(
                f"{where} timed out after {self.settings.timeout:g} s; STS is slow or "
                "unreachable (retry later, or raise the timeout)",
                source=self.source,
                retryable=True,
                code="Timeout",
            )
        if isinstance(exc, BotoConnectionError | HTTPClientError):
            return CredentialFetchError(
                f"{where} failed ({describe(exc, *secrets)}); check network access to STS "
                "(or AWS_ENDPOINT_URL_STS)",
                source=self.source,
                retryable=True,
                code="ConnectionError",
            )
        if isinstance(exc, ClientError):
            return _client_error(self.source, where, exc.response, secrets)
        if isinstance(exc, ResponseParserError):
            return CredentialFetchError(
                f"{where} returned a response that is not STS XML; is the endpoint "
                "really STS (AWS_ENDPOINT_URL_STS)?",
                source=self.source,
                retryable=False,
                code="MalformedResponse",
            )
        # ParamValidationError and friends can quote parameter values (the token):
        # only the class name is reported.
        return CredentialFetchError(
            f"{where} could not be sent: {type(exc).__name__}; check the source's parameters",
            source=self.source,
            retryable=False,
            code=type(exc).__name__,
        )

    async def aclose(self) -> None:
        """Close the client's HTTP session; later calls fail. Idempotent.

        Waits for a client build under way (it is then closed as well).
        """
        self._closed = True
        async with self._lock:
            context, self._context, self._client = self._context, None, None
            if context is not None:
                await finish(context.__aexit__(None, None, None), name=f"{self.source}: STS close")


def _client_error(
    source: str, where: str, response: Mapping[str, Any], secrets: tuple[str, ...]
) -> CredentialFetchError:
    """Classify an STS error answer; its message is quoted redacted, without ``secrets``."""
    error = response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = redact(str(error.get("Message") or ""), *secrets, limit=300)
    retryable = code in RETRYABLE_CODES or (
        isinstance(status, int) and (status >= 500 or status == 429)
    )
    hint = HINTS.get(code) or ("retry later" if retryable else "see the message")
    return CredentialFetchError(
        f"{where} failed: {code} (HTTP {status}): {message}; {hint}",
        source=source,
        retryable=retryable,
        status=status if isinstance(status, int) else None,
        code=code,
    )


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
