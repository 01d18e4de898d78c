"""What the STS sources (web identity, assume role) share besides the client.

Parameter checks made before any call, the parsing of an ``AssumeRole*``
answer, and :class:`StsSourceBase`: session name default, settings, one
:class:`~pool.sources._sts.StsClient`, retries and closing. Imports no AWS SDK.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pool.credentials import Credentials
from pool.errors import ConfigurationError, CredentialFetchError
from pool.sources._http import HttpSettings, with_retries
from pool.sources._sts import StsClient
from pool.sources._sts_endpoint import StsEndpoint, resolve_sts_endpoint
from pool.sources.arn import check_role_arn as _check_arn
from pool.sources.base import SourceBase, ensure_not_expired, parse_expiration

__all__ = [
    "StsSourceBase",
    "check_duration",
    "check_role_arn",
    "check_session_name",
    "credentials_from_sts",
    "endpoint_options",
    "make_endpoint",
]

_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)


def check_role_arn(role_arn: str, *, source: str, var: str = "role_arn") -> str:
    """Reject what cannot be a role ARN, before any call (see :mod:`pool.sources.arn`)."""
    return _check_arn(role_arn, source=source, origin=var)


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


def make_endpoint(
    region: str, endpoint_url: str | None, endpoint: StsEndpoint | None
) -> StsEndpoint:
    """``endpoint`` if given; else ``endpoint_url`` signed for ``region``; else the
    SDKs' regional endpoint for ``region``."""
    if endpoint is not None:
        return endpoint
    if endpoint_url:
        return StsEndpoint(
            endpoint_url.rstrip("/"), region, "endpoint_url", configured=endpoint_url
        )
    return resolve_sts_endpoint({"AWS_REGION": region})


def endpoint_options(environ: Mapping[str, str], options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``from_env`` keywords for where STS is: the resolved endpoint, unless the caller
    passed ``region``/``endpoint_url``/``endpoint`` (those win)."""
    if {"region", "endpoint_url", "endpoint"} & set(options):
        return {}
    endpoint = resolve_sts_endpoint(environ)
    return {"region": endpoint.region, "endpoint": endpoint}


class StsSourceBase(SourceBase):
    """What the STS sources share: session name, settings, one client, retries, closing.

    Subclasses set ``name`` and call :meth:`_setup_sts` in ``__init__``.
    """

    sts: StsClient
    session_name: str
    _settings: HttpSettings

    def _setup_sts(
        self,
        *,
        role_arn: str,
        role_var: str,
        duration_seconds: int | None,
        session_name: str | None,
        endpoint: StsEndpoint,
        signed: bool,
        connect_timeout: float,
        timeout: float,
        attempts: int,
        backoff: float,
    ) -> None:
        """Check the role ARN, duration and session name (default
        ``mongodb-aws-pool-<unix time>``); make the STS client."""
        # role_var names the environment variable; here the value is the argument
        # (from_env checks the variable's value first, naming the variable).
        self.role_arn = check_role_arn(role_arn, source=self.name, var="role_arn")
        self.duration_seconds = check_duration(duration_seconds, source=self.name)
        self.session_name = check_session_name(
            session_name or f"mongodb-aws-pool-{int(time.time())}", source=self.name
        )
        self._settings = HttpSettings(
            connect_timeout=connect_timeout, timeout=timeout, attempts=attempts, backoff=backoff
        )
        self.sts = StsClient(
            source=self.name,
            endpoint=endpoint,
            signed=signed,
            settings=self._settings,
        )

    async def _with_retries(self, attempt: Callable[[], Awaitable[Credentials]]) -> Credentials:
        return await with_retries(attempt, settings=self._settings, source=self.name)

    def _holds_resources(self) -> bool:
        return self.sts.client is not None

    async def _aclose(self) -> None:
        await self.sts.aclose()
