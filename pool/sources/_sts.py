"""One aioboto3 STS client per source: created once, lazily, off the event loop.

Building a botocore client loads JSON service models and endpoint rules and
reads the shared config files: tens of milliseconds of blocking work. It runs
in a worker thread (with its own short-lived event loop, since aiobotocore's
factory is a coroutine that never actually waits) and the finished client is
used from the caller's loop; its aiohttp session is created there on the
first request and reused afterwards.

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
import re
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import anyio

from ..credentials import Credentials
from ..errors import ConfigurationError, CredentialFetchError, InvariantError
from ._http import HttpSettings, describe_url
from .base import ensure_not_expired, parse_expiration

__all__ = [
    "StsClient",
    "check_duration",
    "check_role_arn",
    "check_session_name",
    "credentials_from_sts",
    "sts_location",
]

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
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
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


class StsClient:
    """A lazily built, reused aioboto3 STS client owned by one source.

    ``settings.timeout`` bounds one attempt (enforced around the whole call);
    retries are :func:`pool.sources._http.with_retries`'s, not botocore's.
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
        self._lock = anyio.Lock()

    @property
    def client(self) -> Any:
        """The aiobotocore client, or ``None`` before the first call / after close."""
        return self._client

    def _build(self) -> tuple[Any, Any]:
        """Runs in a worker thread: imports and constructs everything blocking."""
        import aioboto3
        from aiobotocore.session import AioSession
        from botocore import UNSIGNED
        from botocore.config import Config

        options: dict[str, Any] = {
            "region_name": self.region,
            "connect_timeout": self.settings.connect_timeout,
            "read_timeout": self.settings.timeout,
            "retries": {"mode": "standard", "total_max_attempts": 1},
            # The endpoint comes from our own environ mapping, not os.environ.
            "ignore_configured_endpoint_urls": True,
            "user_agent_extra": "mongodb-aws-pool",
        }
        botocore_session = AioSession()
        if self.signed:
            botocore_session.register_component("credential_provider", _CallCredentialProvider())
        else:
            options["signature_version"] = UNSIGNED
        session = aioboto3.Session(botocore_session=botocore_session)
        # A plain-http endpoint (a local stand-in) needs no TLS: verify=False spares the
        # CA-bundle load aiobotocore would otherwise do on the loop at the first request.
        plain_http = (self.endpoint_url or "").lower().startswith("http://")
        context = session.client(
            "sts",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            config=Config(**options),
            verify=False if plain_http else None,
        )
        # The factory is a coroutine that does not wait on I/O: run it to completion
        # on a private loop in this thread.
        client = asyncio.run(context.__aenter__())
        return context, client

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                # Shielded: a cancelled caller must not abandon a half-built client.
                with anyio.CancelScope(shield=True):
                    try:
                        context, client = await anyio.to_thread.run_sync(self._build)
                    except Exception as exc:
                        # No secret is involved in building the client: keep the cause.
                        raise ConfigurationError(
                            f"{self.source}: cannot create the STS client "
                            f"({type(exc).__name__}: {exc}); check AWS_PROFILE/AWS_CONFIG_FILE "
                            "and the region"
                        ) from exc
                self._context, self._client = context, client
                self.clients_created += 1
        return self._client

    async def call(
        self,
        operation: str,
        *,
        credentials: Credentials | None,
        secrets: tuple[str, ...],
        **params: Any,
    ) -> dict[str, Any]:
        """One STS call (no retry). Errors become :class:`CredentialFetchError`.

        ``secrets`` are scrubbed from any server message quoted in an error.
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
                f"{where} failed: {type(exc).__name__}; check network access to STS "
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
        """Close the client's HTTP session. Idempotent."""
        async with self._lock:
            context, self._context, self._client = self._context, None, None
            if context is not None:
                with anyio.CancelScope(shield=True):
                    await context.__aexit__(None, None, None)


def _client_error(
    source: str, where: str, response: Mapping[str, Any], secrets: tuple[str, ...]
) -> CredentialFetchError:
    """Classify an STS error answer; its message is quoted with ``secrets`` scrubbed."""
    error = response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    message = _scrub(str(error.get("Message") or ""), secrets)[:300]
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


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def check_role_arn(role_arn: str, *, source: str, var: str) -> str:
    """Reject what cannot be a role ARN, before any call (ConfigurationError)."""
    if not isinstance(role_arn, str) or not role_arn.startswith("arn:") or len(role_arn) < 20:
        raise ConfigurationError(
            f"{source}: the role ARN must look like arn:aws:iam::123456789012:role/NAME; "
            f"fix {var} or the role_arn argument"
        )
    return role_arn


def check_session_name(name: str, *, source: str) -> str:
    """STS's rule for RoleSessionName: 2..64 of ``[\\w+=,.@-]``."""
    if not _SESSION_NAME.match(name):
        raise ConfigurationError(
            f"{source}: role session name {name!r} must be 2-64 characters of letters, "
            "digits and +=,.@_-; fix AWS_ROLE_SESSION_NAME or session_name"
        )
    return name


def check_duration(duration: int | None, *, source: str) -> int | None:
    """``None`` or 900..43200 seconds, as STS (and botocore, client-side) require."""
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or not 900 <= duration <= 43200
    ):
        raise ConfigurationError(
            f"{source}: duration_seconds must be an integer from 900 to 43200 (the role's "
            "maximum session duration caps it; role chaining caps it at 3600)"
        )
    return duration


def credentials_from_sts(response: Mapping[str, Any], *, source: str, where: str) -> Credentials:
    """Credentials from an ``AssumeRole*`` response; malformed ones are non-retryable."""
    doc = response.get("Credentials")
    fields = ("AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    missing = [f for f in fields if not isinstance(doc, Mapping) or not doc.get(f)]
    if missing:
        raise CredentialFetchError(
            f"{source}: STS at {where} answered without the Credentials field(s) "
            f"{', '.join(missing)}; "
            "is the endpoint really STS?",
            source=source,
            retryable=False,
            code="MalformedResponse",
        )
    assert isinstance(doc, Mapping)
    try:
        expiration = parse_expiration(doc["Expiration"], what="Credentials.Expiration")
    except ValueError as exc:
        raise CredentialFetchError(
            f"{source}: STS at {where} answered a malformed response: {exc}",
            source=source,
            retryable=False,
            code="MalformedResponse",
        ) from None
    creds = Credentials(
        access_key_id=str(doc["AccessKeyId"]),
        secret_access_key=str(doc["SecretAccessKey"]),
        session_token=str(doc["SessionToken"]),
        expiration=expiration,
        source=source,
    )
    return ensure_not_expired(creds, endpoint=f"STS at {where}")
